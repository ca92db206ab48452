/**
 * The walk's traversal, run in an ingest worker (walk.ts `walkInPool`): readdir, lstat and
 * readlink, sent to the main thread in packed batches over a MessagePort.
 *
 * Why a worker: on the many-small-files corpus (25k entries) the walk through fs/promises cost
 * the main thread ~0.9 s of CPU (a promise and a thread-pool hop per entry), and the main thread
 * was what held the scanning workers up. Here that cost falls on a worker.
 *
 * A batch is a few typed arrays (paths, numbers, link targets) rather than an object per entry,
 * so that posting it costs one copy of each array.
 */
import type { Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import type { MessagePort } from 'node:worker_threads';
import { MiqError, ioError } from './errors.js';

export const KIND_FILE = 0;
export const KIND_DIR = 1;
export const KIND_LINK = 2;
export const KIND_OTHER = 3;
/** Numbers per entry in `num`: size, mode, dev, ino, mtimeMs, ctimeMs. */
export const NUMS = 6;
const BATCH_ENTRIES = 512;
const LSTAT_PARALLEL = 64;
const DIRS_PARALLEL = 4;

export interface WalkBatch {
  type: 'batch';
  count: number;
  /** Every entry's full path, one after another; `ends[i]` is where entry i's ends. */
  paths: Uint8Array;
  ends: Uint32Array;
  /** The directory holding entry i: 0 is the root, then directories in the order sent. */
  parent: Uint32Array;
  kind: Uint8Array;
  num: Float64Array;
  /** Link targets, for the KIND_LINK entries in order. */
  targets: Uint8Array;
  targetEnds: Uint32Array;
}
export type WalkMessage = WalkBatch | { type: 'end' } | { type: 'error'; error: { code: string; message: string; details?: Record<string, unknown> } };

const SLASH = Buffer.from('/');

class Batcher {
  private paths: Buffer[] = [];
  private parent: number[] = [];
  private kind: number[] = [];
  private num: number[] = [];
  private targets: Buffer[] = [];

  constructor(private readonly port: MessagePort) {}

  add(path: Buffer, parent: number, kind: number, st: Stats, target?: Buffer): void {
    this.paths.push(path);
    this.parent.push(parent);
    this.kind.push(kind);
    this.num.push(st.size, st.mode, st.dev, st.ino, st.mtimeMs, st.ctimeMs);
    if (target) this.targets.push(target);
    if (this.paths.length >= BATCH_ENTRIES) this.flush();
  }

  flush(): void {
    if (this.paths.length === 0) return;
    const ends = new Uint32Array(this.paths.length);
    let at = 0;
    this.paths.forEach((p, i) => { ends[i] = at += p.length; });
    const targetEnds = new Uint32Array(this.targets.length);
    at = 0;
    this.targets.forEach((t, i) => { targetEnds[i] = at += t.length; });
    const msg: WalkBatch = {
      type: 'batch', count: this.paths.length,
      paths: Buffer.concat(this.paths), ends,
      parent: Uint32Array.from(this.parent), kind: Uint8Array.from(this.kind), num: Float64Array.from(this.num),
      targets: Buffer.concat(this.targets), targetEnds,
    };
    this.port.postMessage(msg);
    this.paths = [];
    this.parent = [];
    this.kind = [];
    this.num = [];
    this.targets = [];
  }
}

/**
 * Walks `root`, posting batches and then `end` (or `error`) on `port`. Several directories and
 * up to LSTAT_PARALLEL entries of each at once: on a tree not in the page cache every lstat is a
 * disk read, and one at a time (synchronous calls) the full corpus's first ingest took 67 s
 * instead of 30 (2026-12-02, cold). The promises cost this worker, not the main thread.
 */
export async function walkToPort(root: string, port: MessagePort): Promise<void> {
  const out = new Batcher(port);
  const stack: { path: Buffer; index: number }[] = [{ path: Buffer.from(root), index: 0 }];
  let dirs = 0;
  const visit = async (dir: { path: Buffer; index: number }): Promise<void> => {
    let names: Buffer[];
    try {
      names = await readdir(dir.path, { encoding: 'buffer' });
    } catch (e) {
      throw ioError(e, 'cannot read directory', dir.path.toString());
    }
    for (let i = 0; i < names.length; i += LSTAT_PARALLEL) {
      const got = await Promise.all(names.slice(i, i + LSTAT_PARALLEL).map(async (name) => {
        const path = Buffer.concat([dir.path, SLASH, name]);
        let st: Stats;
        try {
          st = await lstat(path);
        } catch (e) {
          throw ioError(e, 'cannot stat', path.toString());
        }
        if (!st.isSymbolicLink()) return { path, st };
        try {
          return { path, st, target: await readlink(path, { encoding: 'buffer' }) };
        } catch (e) {
          throw ioError(e, 'cannot read symlink', path.toString());
        }
      }));
      for (const { path, st, target } of got) {
        if (st.isFile()) {
          out.add(path, dir.index, KIND_FILE, st);
        } else if (st.isDirectory()) {
          // Indices follow the order entries are sent: the main thread numbers them the same way.
          out.add(path, dir.index, KIND_DIR, st);
          stack.push({ path, index: ++dirs });
        } else {
          out.add(path, dir.index, target ? KIND_LINK : KIND_OTHER, st, target);
        }
      }
    }
  };
  try {
    await new Promise<void>((resolve, reject) => {
      let active = 0;
      let failed = false;
      const pump = (): void => {
        while (!failed && active < DIRS_PARALLEL && stack.length > 0) {
          active++;
          visit(stack.pop()!).then(() => {
            active--;
            pump();
          }, (e: unknown) => {
            failed = true;
            reject(e);
          });
        }
        if (!failed && active === 0 && stack.length === 0) resolve();
      };
      pump();
    });
    out.flush();
    port.postMessage({ type: 'end' } satisfies WalkMessage);
  } catch (e) {
    out.flush();
    const error = e instanceof MiqError ? e.toJSON() : { code: 'MIQ_IO', message: `cannot walk ${root}: ${String((e as Error)?.message ?? e)}` };
    port.postMessage({ type: 'error', error } satisfies WalkMessage);
  }
}
