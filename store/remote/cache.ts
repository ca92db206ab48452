/**
 * A size-bounded local cache of remote files, evicting the least recently used. It holds the
 * bytes exactly as the remote serves them and the reader verifies them on every load, so a file
 * cut short by a crash, or flipped on disk, is found, dropped and fetched again, never served.
 * Files appear by temp file + rename: a killed process leaves only `.…tmp-…` names, removed at
 * the next open.
 */
import { readdir, readFile, stat, unlink, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ioError } from '../errors.js';
import { writeAtomic } from './atomic.js';
import { mkdirp } from '../mkdirp.js';

const TOP = ['chunks', 'objects', 'paths', 'profiles'];

export interface CacheStats {
  hits: number;
  misses: number;
  evictions: number;
  used: number;
  entries: number;
}

/**
 * A temp file whose writer is gone. Two processes share one cache (a lazy mount, and `miq profile
 * pull` run beside it): removing the other's in-flight temp file would fail its rename.
 */
function abandoned(name: string): boolean {
  const pid = Number(/\.tmp-(\d+)-/.exec(name)?.[1]);
  // (A reused pid keeps a dead writer's temp file until that process ends too: harmless.)
  if (!pid || pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export class DiskCache {
  /** rel → stored size; Map order is recency (oldest first). */
  private readonly lru = new Map<string, number>();
  private used = 0;
  private opened: Promise<void> | undefined;
  private readonly dirs = new Set<string>();
  readonly stats: Omit<CacheStats, 'used' | 'entries'> = { hits: 0, misses: 0, evictions: 0 };

  constructor(readonly dir: string, readonly maxBytes: number) {}

  open(): Promise<void> {
    this.opened ??= this.scan();
    return this.opened;
  }

  private async scan(): Promise<void> {
    const found: { rel: string; size: number; mtime: number }[] = [];
    for (const top of TOP) {
      let subs: string[] = [];
      try {
        subs = await readdir(join(this.dir, top));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw ioError(e, 'cannot read cache', join(this.dir, top));
      }
      for (const sub of subs) {
        const full = join(this.dir, top, sub);
        const st = await stat(full);
        if (st.isFile()) {
          if (sub.startsWith('.')) {
            if (abandoned(sub)) await unlink(full).catch(() => undefined);
          }
          else found.push({ rel: `${top}/${sub}`, size: st.size, mtime: st.mtimeMs });
          continue;
        }
        for (const name of await readdir(full)) {
          const f = join(full, name);
          if (name.startsWith('.')) {
            if (abandoned(name)) await unlink(f).catch(() => undefined);
            continue;
          }
          const s = await stat(f);
          found.push({ rel: `${top}/${sub}/${name}`, size: s.size, mtime: s.mtimeMs });
        }
      }
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) {
      this.lru.set(f.rel, f.size);
      this.used += f.size;
    }
    await this.evict();
  }

  snapshot(): CacheStats {
    return { ...this.stats, used: this.used, entries: this.lru.size };
  }

  has(rel: string): boolean {
    return this.lru.has(rel);
  }

  async get(rel: string): Promise<Buffer | undefined> {
    await this.open();
    const size = this.lru.get(rel);
    if (size === undefined) {
      this.stats.misses++;
      return undefined;
    }
    try {
      const b = await readFile(join(this.dir, rel));
      // An eviction may have forgotten the entry during the read: putting it back here without
      // counting it made `used` drift low and the disk outgrow its bound.
      if (this.lru.has(rel)) {
        this.lru.delete(rel);
        this.lru.set(rel, size);
      }
      this.stats.hits++;
      // Recency survives a restart through mtime; losing one of these updates costs nothing.
      const now = new Date();
      utimes(join(this.dir, rel), now, now).catch(() => undefined);
      return b;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(e, 'cannot read cache file', join(this.dir, rel));
      this.forget(rel);
      this.stats.misses++;
      return undefined;
    }
  }

  async put(rel: string, bytes: Buffer): Promise<void> {
    await this.open();
    if (bytes.length > this.maxBytes || this.lru.has(rel)) return;
    const file = join(this.dir, rel);
    const d = dirname(file);
    if (!this.dirs.has(d)) {
      await mkdirp(d);
      this.dirs.add(d);
    }
    await writeAtomic(file, bytes, { sync: false, what: 'cannot write cache file' });
    if (!this.lru.has(rel)) {
      this.lru.set(rel, bytes.length);
      this.used += bytes.length;
    }
    await this.evict();
  }

  /** Drops an entry that failed verification. */
  async delete(rel: string): Promise<void> {
    this.forget(rel);
    await unlink(join(this.dir, rel)).catch(() => undefined);
  }

  private forget(rel: string): void {
    const s = this.lru.get(rel);
    if (s === undefined) return;
    this.lru.delete(rel);
    this.used -= s;
  }

  private async evict(): Promise<void> {
    while (this.used > this.maxBytes && this.lru.size > 0) {
      const [rel] = this.lru.keys();
      this.forget(rel!);
      this.stats.evictions++;
      await unlink(join(this.dir, rel!)).catch(() => undefined);
    }
  }
}
