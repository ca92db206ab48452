/**
 * Temporary GC roots (Nix's temproots): a running build roots every store path it will use or
 * make, so a `miq gc` in another process (a build no longer holds the store while its script runs,
 * cli/lease.ts) cannot delete a dependency the build's output will reference.
 *
 * They are meta keys `temproots/<pid>-<start>-<n>` → JSON list of store paths, not files under
 * <store>/run: a meta key is written through the Store interface, so it works the same when the
 * store is served by a mount's process (the build talks to it over the socket) and gc's mark reads
 * it from the same LevelDB, in the same lock, as everything else it marks from. A build that dies
 * leaves its key; the owner is identified by pid AND the process's start time (field 22 of
 * /proc/PID/stat), so a dead owner, or a reused pid, is seen as gone: gc ignores such a key and
 * deletes it.
 */
import { readFileSync } from 'node:fs';
import type { MetaStore } from './api.js';

export const TEMP_ROOT_PREFIX = 'temproots/';

/** The start time (clock ticks since boot) of process `pid`; undefined when there is none. */
export function processStart(pid: number | 'self'): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: fields after it start past the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return rest[19]; // field 22: starttime
}

const KEY = /^temproots\/(\d+)-(\d+)-\d+$/;

/** Whether the process that wrote temporary root `key` is still running. */
export function tempRootOwnerAlive(key: string): boolean {
  const m = KEY.exec(key);
  if (!m) return false;
  return processStart(Number(m[1])) === m[2];
}

/** Store paths under live temporary roots; `stale` receives the keys whose owner is gone. */
export async function liveTempRoots(store: MetaStore, stale?: string[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (const { key, value } of await store.listMeta(TEMP_ROOT_PREFIX)) {
    if (!tempRootOwnerAlive(key)) {
      stale?.push(key);
      continue;
    }
    let paths: unknown;
    try {
      paths = JSON.parse(value.toString());
    } catch {
      paths = undefined;
    }
    // A torn or foreign value of a live owner: keep nothing from it rather than fail every gc.
    if (Array.isArray(paths)) for (const p of paths) if (typeof p === 'string') out.add(p);
  }
  return out;
}

/** Deletes temporary roots whose owner is gone; returns how many. */
export async function cleanTempRoots(store: MetaStore): Promise<number> {
  const stale: string[] = [];
  await liveTempRoots(store, stale);
  if (stale.length) await store.batchMeta(stale.map((key) => ({ key, value: undefined })));
  return stale.length;
}

let seq = 0;

/** This process's temporary roots for one job: `add` before checking a path exists (so a gc cannot
 * delete it between the check and its use); `release` when the job's results are pinned or it is
 * over. A crash skips `release`; gc cleans the key up once this process is gone. */
export class TempRoots {
  readonly key: string;
  readonly #paths = new Set<string>();
  #chain: Promise<void> = Promise.resolve();

  constructor(private readonly store: MetaStore) {
    this.key = `${TEMP_ROOT_PREFIX}${process.pid}-${processStart('self') ?? 0}-${seq++}`;
  }

  /** Resolves once `paths` are rooted (writes are serialised so the last value holds them all). */
  add(paths: Iterable<string>): Promise<void> {
    let grew = false;
    for (const p of paths) if (!this.#paths.has(p)) { this.#paths.add(p); grew = true; }
    if (!grew) return this.#chain;
    const value = Buffer.from(JSON.stringify([...this.#paths]));
    this.#chain = this.#chain.catch(() => undefined).then(() => this.store.batchMeta([{ key: this.key, value }]));
    return this.#chain;
  }

  async release(): Promise<void> {
    await this.#chain.catch(() => undefined);
    await this.store.batchMeta([{ key: this.key, value: undefined }]);
  }
}
