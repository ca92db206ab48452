/**
 * What a mount's start read, remembered for the next mount of the same store and profile (issue
 * 11: a program's cold start through `usr`). The way systemd-readahead did it for a boot: a mount
 * records the files whose bytes were used in the first WINDOW_MS after its first request (in the
 * order of first use, RECALL bytes of files at most, none larger than a whole-ahead file), writes
 * that list to `<store>/run/mount-recall.<profile>` (when the window closes, or at the mount's
 * stop), and the next mount decodes those files into its cache, in that order, before it reports
 * `mounted` (at most RECALL_MS in mount/daemon.ts; the reading goes on behind it): a program
 * started later finds its libraries and modules offered to the binding (and pushed into the page
 * cache) as they are looked up, not decoded while it waits. (Replaying on the first request
 * instead was slower: the replay took the cores from the program it was for; .notes/fuse-needs.md
 * §26.)
 *
 * The list is local and made by normal use; it holds content ids and sizes only. Replaying it
 * reads files from the store's own records and checks every chunk against its id as any READ
 * does: a damaged or hand-edited list can waste work, never serve wrong bytes (an id the store
 * lacks is skipped). MIQ_MOUNT_RECALL: the bytes of files remembered (default 32 MiB); 0 turns
 * recording and replaying off.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isId, type Id } from '../store/ids.js';
import { privateDir, runDirOf } from '../store/private-dir.js';

/** Recording stops this long after the mount's first request (a program start, or a few). */
const WINDOW_MS = 10_000;
/** Files remembered at most. */
const MAX_FILES = 4096;
/** Directories below usr remembered at most (looked up by name: their listings are registered
 * with the binding before `mounted`). */
const MAX_DIRS = 256;
const HEADER = 'miq-mount-recall 1';
const SLASH = Buffer.from('/');
const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

export interface Recalled {
  readonly id: Id;
  readonly size: number;
}

export function recallBytes(): number {
  const v = process.env.MIQ_MOUNT_RECALL;
  if (v === undefined || v === '') return 32 << 20;
  const n = Number(v);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** The list's file for a store and profile. */
export function recallPath(storeDir: string, profile: string): string {
  return join(runDirOf(storeDir), `mount-recall.${profile.replace(/[^A-Za-z0-9._-]/g, '_')}`);
}

export class Recall {
  /** What the last mount remembered, in order (read once, at the start). */
  private last: Recalled[] = [];
  private readonly lastIds = new Set<Id>();
  /** The last mount's directories below usr, as their names from usr down, in order. */
  private lastDirs: Buffer[][] = [];
  /** This mount's list so far. */
  private readonly now = new Map<Id, number>();
  private readonly nowDirs = new Map<string, true>();
  private bytes = 0;
  private started = 0;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private saving: Promise<void> | undefined;

  constructor(
    private readonly path: string,
    private readonly maxBytes: number,
    /** Largest file remembered (larger ones are read in parts, by page faults or in order). */
    private readonly maxFile: number,
    private readonly log: (l: string) => void,
  ) {}

  /** Reads the last mount's list (a missing or unreadable one is an empty list). */
  async load(): Promise<readonly Recalled[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch {
      return [];
    }
    const lines = text.split('\n');
    if (lines[0] !== HEADER) {
      this.log(`miq mount: ${this.path} is not a recall list (first line "${lines[0]?.slice(0, 40) ?? ''}"); ignored, a new one is written after this start`);
      return [];
    }
    let bytes = 0;
    for (const l of lines.slice(1)) {
      if (l.startsWith('d ')) {
        // A directory: its path below usr, hex (names are bytes; '/' is in none of them).
        const hex = l.slice(2);
        if (this.lastDirs.length >= MAX_DIRS || !/^([0-9a-f]{2})+$/.test(hex)) continue;
        const names = Buffer.from(hex, 'hex').toString('latin1').split('/').map((n) => Buffer.from(n, 'latin1'));
        if (names.every((n) => n.length > 0 && !n.equals(DOT) && !n.equals(DOTDOT))) this.lastDirs.push(names);
        continue;
      }
      const [id, s] = l.split(' ');
      const size = Number(s);
      if (!id || !isId(id) || !Number.isSafeInteger(size) || size <= 0 || size > this.maxFile || this.lastIds.has(id)) continue;
      if ((bytes += size) > this.maxBytes || this.last.length >= MAX_FILES) break;
      this.last.push({ id, size });
      this.lastIds.add(id);
    }
    return this.last;
  }

  /** The last mount's directories below usr (each as its names from usr down), in order. */
  dirs(): readonly Buffer[][] {
    return this.lastDirs;
  }

  /** A directory below usr (its names from usr down) was looked up by name. */
  noteDir(names: readonly Buffer[]): void {
    if (this.closed || !this.started || names.length === 0 || this.nowDirs.size >= MAX_DIRS) return;
    if (Date.now() - this.started > WINDOW_MS) return void this.save();
    this.nowDirs.set(Buffer.concat(names.flatMap((n, k) => (k ? [SLASH, n] : [n]))).toString('hex'), true);
  }

  /** Whether the last mount's list holds `id`. */
  had(id: Id): boolean {
    return this.lastIds.has(id);
  }

  /** The first request: the window opens. */
  begin(): void {
    if (this.started || this.closed) return;
    this.started = Date.now();
    this.timer = setTimeout(() => void this.save(), WINDOW_MS);
    this.timer.unref();
  }

  /** File `id` (`size` bytes) was used: its READ reached JS, or a file of the last list was
   * looked up (its bytes were offered, so its READs no longer show). */
  note(id: Id, size: number): void {
    if (this.closed || !this.started || size <= 0 || size > this.maxFile || this.now.has(id)) return;
    if (Date.now() - this.started > WINDOW_MS) return void this.save();
    if (this.bytes + size > this.maxBytes || this.now.size >= MAX_FILES) return;
    this.now.set(id, size);
    this.bytes += size;
  }

  /** Writes this mount's list (once: at the window's end or the mount's stop), if it saw any
   * request; never throws. */
  save(): Promise<void> {
    if (this.saving) return this.saving;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.started) return (this.saving = Promise.resolve());
    const body = [HEADER, ...[...this.nowDirs.keys()].map((h) => `d ${h}`), ...[...this.now].map(([id, size]) => `${id} ${size}`)].join('\n') + '\n';
    this.saving = (async () => {
      // The store's runtime directory, checked as the mount's views are (a planted link or a
      // foreign owner is refused: root must not be steered into writing elsewhere).
      const dir = await privateDir(dirname(this.path));
      const path = join(dir, basename(this.path));
      const tmp = `${path}.${process.pid}.tmp`;
      await writeFile(tmp, body, { mode: 0o600 });
      await rename(tmp, path);
    })().catch((e: unknown) => this.log(`miq mount: could not write the recall list ${this.path}: ${(e as Error).message} (the next mount starts without it)`));
    return this.saving;
  }
}
