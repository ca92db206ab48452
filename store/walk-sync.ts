/**
 * The walk's traversal (readdir, lstat, readlink), shared by `walk` (on the calling thread) and
 * `walkToPort` (in an ingest worker, walk.ts `walkInPool`, posting packed batches to the main
 * thread over a MessagePort).
 *
 * Why a worker: on the many-small-files corpus (25k entries) the walk through fs/promises cost
 * the main thread ~0.9 s of CPU (a promise and a thread-pool hop per entry), and the main thread
 * was what held the scanning workers up. Here that cost falls on a worker.
 *
 * Synchronous calls while the tree is in the page cache, concurrent ones while it is not: on
 * the small corpus's release N (25k entries, warm) the concurrent walk cost 1.6 s of CPU (user
 * + sys: a thread-pool hop, a futex wake and a promise per entry) against 0.45 s synchronous;
 * but one lstat at a time serialised the disk reads of a cold tree (the full corpus's first
 * ingest: 67 s against 30 with the concurrent walk). A directory is walked synchronously until
 * lstat calls turn slow (disk reads); then, with the addon, warmTree reads the whole tree ahead on
 * threads of its own and the walk stays synchronous (small N+1 on a cold tree: walk mark 1.30 ->
 * 1.11 s, ingest 2.25 -> 2.00 s); without it the walk goes concurrent for a while and tries again.
 *
 * A batch is a few typed arrays (paths, numbers, link targets) rather than an object per entry,
 * so that posting it costs one copy of each array.
 */
import type { Stats } from 'node:fs';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import type { MessagePort } from 'node:worker_threads';
import { MiqError, ioError } from './errors.js';
import { miqchunkExport } from './miqchunk.js';

/** What the walk keeps of an entry's lstat (a Stats has it; so does what listDir returns). */
export interface EntryStat {
  readonly size: number;
  readonly mode: number;
  readonly dev: number;
  readonly ino: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
}

type ListDir = (dir: Uint8Array, slowNs: number, maxSlow: number) => [Buffer, Uint32Array, number, Float64Array, Buffer, Uint32Array, string | null];

/**
 * One directory's names and lstat numbers in one call (native/miqchunk.c `listDir`): the
 * synchronous walk of the small corpus's release N+1 (25k entries) cost ~0.45-0.6 s of CPU with
 * readdirSync and an lstatSync per entry (each a Stats object with four Dates in Node 20),
 * `find` ~0.12 s. Without the addon (no compiler at install) or with MIQ_JS_WALK=1 the calls are
 * made from JS as before; a unit test compares both.
 */
const nativeListDir = miqchunkExport<ListDir>('listDir', 'MIQ_JS_WALK');

/** native/miqchunk.c `warmTree`: lists and lstats a whole tree on threads of its own, results
 * dropped (see there). Started once per walk, when the walk finds its tree cold. */
const nativeWarmTree = miqchunkExport<(root: Uint8Array, threads: number) => void>('warmTree', 'MIQ_JS_WALK');
/** The warming threads: reads of directories and inode blocks kept in flight at once. */
const WARM_THREADS = 8;

/** Starts warmTree on `root`; whether it runs (it is only a head start: the walk makes every
 * call itself either way). */
function startWarming(root: string): boolean {
  try {
    nativeWarmTree!(Buffer.from(root), WARM_THREADS);
    return true;
  } catch {
    return false;
  }
}

/** Whether the synchronous walk lists directories in C (tests). */
export const NATIVE_WALK = nativeListDir !== undefined;

/**
 * NAME_ORDER: a directory's entries are handed out in byte order of their names: libuv's
 * scandir (readdirSync, readdir) sorts them with strcmp, and listDir sorts them in C the same
 * way, not in readdir's hash order (ext4). The ingest schedules files in the walk's order and
 * small ones share compressed frames in that order, so names that sort together (a package's
 * siblings and versions) land in one frame: with readdir's order (77e828d to this change) the
 * small corpus's release N stored 0.5 MB (0.4 %) more in packs (2 runs each: 124.49-124.50 MB
 * against 123.94-123.98 MB sorted).
 */
export const KIND_FILE = 0;
export const KIND_DIR = 1;
export const KIND_LINK = 2;
export const KIND_OTHER = 3;
/** Numbers per entry in `num`: size, mode, dev, ino, mtimeMs, ctimeMs. */
export const NUMS = 6;
const BATCH_ENTRIES = 512;
const LSTAT_PARALLEL = 64;
const DIRS_PARALLEL = 4;
/** An lstat slower than this read the disk (a cached one takes ~10-50 µs here, under load). */
export const SLOW_NS = 1_000_000n;
/** Slow calls in one directory after which the walk turns concurrent. */
const SLOW_CALLS = 3;
/** Directories walked concurrently before synchronous calls are tried again. */
const COLD_DIRS = 32;

/** One entry as the traversal finds it. Directories are numbered in the order their entries are
 * handed out (the root is 0): `parent` is that number. */
export interface Entry {
  path: Buffer;
  parent: number;
  kind: number;
  st: EntryStat;
  target?: Buffer;
}

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

  add(e: Entry): void {
    const st = e.st;
    this.paths.push(e.path);
    this.parent.push(e.parent);
    this.kind.push(e.kind);
    this.num.push(st.size, st.mode, st.dev, st.ino, st.mtimeMs, st.ctimeMs);
    if (e.target) this.targets.push(e.target);
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

const S_IFMT = 0o170000, S_IFREG = 0o100000, S_IFDIR = 0o040000, S_IFLNK = 0o120000;

function kindOf(st: EntryStat, target: Buffer | undefined): number {
  const fmt = st.mode & S_IFMT;
  return fmt === S_IFREG ? KIND_FILE : fmt === S_IFDIR ? KIND_DIR : target ? KIND_LINK : KIND_OTHER;
}

interface Dir { path: Buffer; index: number }

/**
 * Walks `root`, handing every entry to `onEntry` (a directory before anything in it). With
 * `sync`, warm directories are read with synchronous calls (see the top of this file), in C when
 * the addon loaded (`native: false`, tests: from JS); without, every call is concurrent and
 * asynchronous (the calling thread's event loop stays free). `slowNs` (tests) is the time from
 * which an lstat counts as slow. `yieldEntries`: after that many entries the walk lets the event
 * loop run before its next directory (a synchronous walk chains its directories through promises
 * alone, which never let it run: the I/O callbacks a caller on the same thread waits for, such as
 * the hash pass's results and index lookups, would all wait for the walk's end).
 */
export async function traverse(root: string, onEntry: (e: Entry) => void, opts: { sync: boolean; slowNs?: bigint; native?: boolean; yieldEntries?: number }): Promise<void> {
  const slowNs = opts.slowNs ?? SLOW_NS;
  let sinceYield = 0;
  const list = opts.native === false ? undefined : nativeListDir;
  const stack: Dir[] = [{ path: Buffer.from(root), index: 0 }];
  let dirs = 0;
  /** Directories left to walk concurrently before synchronous calls are tried again. */
  let cold = opts.sync ? 0 : Infinity;
  /** The first slow calls of a synchronous walk start warmTree on the whole tree (once). */
  let warming = !opts.sync || opts.native === false || nativeWarmTree === undefined;
  /** warmTree runs: its threads keep the reads in flight, so the walk stays synchronous (the
   * concurrent calls cost ~3x the CPU per entry: a promise and a thread-pool hop each). */
  let warmed = false;
  const turnedCold = (): void => {
    if (!warming) warmed = startWarming(root);
    warming = true;
    if (!warmed) cold = COLD_DIRS;
  };
  const emit = (parent: number, path: Buffer, st: EntryStat, target?: Buffer): void => {
    const kind = kindOf(st, target);
    onEntry({ path, parent, kind, st, ...(target ? { target } : {}) });
    sinceYield++;
    // Indices follow the order entries are handed out: the receiver numbers them the same way.
    if (kind === KIND_DIR) stack.push({ path, index: ++dirs });
  };
  /** The whole directory in C (see nativeListDir); returns how many entries were done, fewer
   * once calls turned slow. `names` is filled for the caller's concurrent rest. */
  const visitNative = (dir: Dir, list: ListDir, names: Buffer[]): number => {
    let got: ReturnType<ListDir>;
    try {
      got = list(dir.path, Number(slowNs), warmed ? 0 : SLOW_CALLS);
    } catch (e) {
      throw ioError(e, 'cannot read directory', dir.path.toString());
    }
    const [nameBytes, ends, done, num, targets, targetEnds, error] = got;
    let start = 0, link = 0;
    for (let i = 0; i < ends.length; i++) {
      names.push(nameBytes.subarray(start, ends[i]!));
      start = ends[i]!;
    }
    for (let i = 0; i < done; i++) {
      const path = Buffer.concat([dir.path, SLASH, names[i]!]);
      const n = i * NUMS;
      const st: EntryStat = { size: num[n]!, mode: num[n + 1]!, dev: num[n + 2]!, ino: num[n + 3]!, mtimeMs: num[n + 4]!, ctimeMs: num[n + 5]! };
      let target: Buffer | undefined;
      if ((st.mode & S_IFMT) === S_IFLNK) {
        target = targets.subarray(link === 0 ? 0 : targetEnds[link - 1]!, targetEnds[link]!);
        link++;
      }
      emit(dir.index, path, st, target);
    }
    if (error !== null) {
      const path = Buffer.concat([dir.path, SLASH, names[done]!]).toString();
      // The entry's lstat failed, or (for a link) its readlink: say which, as the JS calls do.
      let isLink = false;
      try {
        isLink = lstatSync(path).isSymbolicLink();
      } catch {
        // the lstat it was
      }
      throw ioError(Object.assign(new Error(error), { code: error }), isLink ? 'cannot read symlink' : 'cannot stat', path);
    }
    if (done < ends.length) turnedCold();
    return done;
  };
  /** The entries of `dir`, synchronously; returns how many were done (fewer once calls turn slow). */
  const visitSync = (dir: Dir, names: Buffer[]): number => {
    let slow = 0;
    for (let i = 0; i < names.length; i++) {
      const path = Buffer.concat([dir.path, SLASH, names[i]!]);
      const t = process.hrtime.bigint();
      let st: Stats, target: Buffer | undefined;
      try {
        st = lstatSync(path);
      } catch (e) {
        throw ioError(e, 'cannot stat', path.toString());
      }
      if (st.isSymbolicLink()) {
        try {
          target = readlinkSync(path, { encoding: 'buffer' });
        } catch (e) {
          throw ioError(e, 'cannot read symlink', path.toString());
        }
      }
      emit(dir.index, path, st, target);
      if (process.hrtime.bigint() - t >= slowNs && ++slow >= SLOW_CALLS) {
        turnedCold();
        return i + 1;
      }
    }
    return names.length;
  };
  const visit = async (dir: Dir): Promise<void> => {
    if (opts.yieldEntries !== undefined && sinceYield >= opts.yieldEntries) {
      sinceYield = 0;
      await new Promise<void>((r) => setImmediate(r));
    }
    const warm = cold === 0;
    if (!warm) cold--;
    let names: Buffer[] = [];
    let from = 0;
    if (warm && list) {
      from = visitNative(dir, list, names);
    } else {
      try {
        names = warm ? readdirSync(dir.path, { encoding: 'buffer' }) : await readdir(dir.path, { encoding: 'buffer' });
      } catch (e) {
        throw ioError(e, 'cannot read directory', dir.path.toString());
      }
      if (warm) from = visitSync(dir, names);
    }
    for (let i = from; i < names.length; i += LSTAT_PARALLEL) {
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
      for (const { path, st, target } of got) emit(dir.index, path, st, target);
    }
  };
  await new Promise<void>((resolve, reject) => {
    let active = 0;
    let failed = false;
    const pump = (): void => {
      // Synchronous directories one at a time (they block anyway); cold ones several at once.
      while (!failed && active < (cold === 0 ? 1 : DIRS_PARALLEL) && stack.length > 0) {
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
}

/** Walks `root` (see traverse), posting batches and then `end` (or `error`) on `port`. */
export async function walkToPort(root: string, port: MessagePort): Promise<void> {
  const out = new Batcher(port);
  try {
    await traverse(root, (e) => out.add(e), { sync: true });
    out.flush();
    port.postMessage({ type: 'end' } satisfies WalkMessage);
  } catch (e) {
    out.flush();
    const error = e instanceof MiqError ? e.toJSON() : { code: 'MIQ_IO', message: `cannot walk ${root}: ${String((e as Error)?.message ?? e)}` };
    port.postMessage({ type: 'error', error } satisfies WalkMessage);
  }
}
