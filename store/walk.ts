/**
 * Walks a directory into an in-memory skeleton (no file contents). Names are raw bytes; links
 * are recorded, never followed; special files are refused (or skipped with `lenient`).
 */
import { MessageChannel } from 'node:worker_threads';
import { MiqError, ioError } from './errors.js';
import { miqchunkExport } from './miqchunk.js';
import { runInPool } from './pool.js';
import { KIND_DIR, KIND_FILE, KIND_LINK, NUMS, SLOW_NS, traverse, type WalkBatch, type WalkMessage } from './walk-sync.js';

/** What a walk keeps of a file's lstat (a Stats has it all; the pool walk sends just this). */
export interface FileStat {
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mode: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
}

export interface FileNode {
  readonly t: 'file';
  readonly name: Buffer;
  readonly path: Buffer;
  readonly size: number;
  readonly exe: boolean;
  readonly stat: FileStat;
  id?: string;
  /** The id came from the stat cache (the file was not read). */
  statHit?: boolean;
}
export interface LinkNode {
  readonly t: 'link';
  readonly name: Buffer;
  readonly target: Buffer;
}
export interface DirNode {
  readonly t: 'dir';
  readonly name: Buffer;
  readonly path: Buffer;
  readonly children: Node[];
  id?: string;
  size?: number;
}
export type Node = FileNode | LinkNode | DirNode;

export interface WalkResult {
  root: DirNode;
  files: FileNode[];
  dirs: number;
  links: number;
  bytes: number;
  droppedModeBits: number;
  /** Files and directories other users could not read here (no o+r, or a directory without
   * o+rx): the store serves everything to every user, so ingest names them. */
  notWorldReadable: number;
  notWorldReadablePaths: string[];
  skipped: { path: string; why: string }[];
}

/** How many such paths are named; the count is always exact. */
export const NOT_WORLD_READABLE_NAMED = 100;

const S_IFMT = 0o170000;

function kindOf(mode: number): string {
  switch (mode & S_IFMT) {
    case 0o010000: return 'a fifo';
    case 0o140000: return 'a socket';
    case 0o020000: return 'a character device';
    case 0o060000: return 'a block device';
    default: return 'an unsupported file type';
  }
}

function newResult(rootPath: string): WalkResult {
  const root: DirNode = { t: 'dir', name: Buffer.alloc(0), path: Buffer.from(rootPath), children: [] };
  return { root, files: [], dirs: 1, links: 0, bytes: 0, droppedModeBits: 0, notWorldReadable: 0, notWorldReadablePaths: [], skipped: [] };
}

/** Records one entry of `dir`; returns the new node when it is a directory (to walk into). */
function record(res: WalkResult, dir: DirNode, name: Buffer, path: Buffer, st: FileStat, target: Buffer | undefined, lenient: boolean, onFile?: (f: FileNode) => void): DirNode | undefined {
  const fmt = st.mode & S_IFMT;
  const isFile = fmt === 0o100000, isDir = fmt === 0o040000;
  if (st.mode & 0o7000) res.droppedModeBits++;
  if ((isFile && !(st.mode & 0o004)) || (isDir && (st.mode & 0o005) !== 0o005)) {
    if (res.notWorldReadable++ < NOT_WORLD_READABLE_NAMED) res.notWorldReadablePaths.push(path.toString());
  }
  if (isFile) {
    const f: FileNode = { t: 'file', name, path, size: st.size, exe: (st.mode & 0o111) !== 0, stat: st };
    dir.children.push(f);
    res.files.push(f);
    res.bytes += st.size;
    onFile?.(f);
  } else if (isDir) {
    const d: DirNode = { t: 'dir', name, path, children: [] };
    dir.children.push(d);
    res.dirs++;
    return d;
  } else if (fmt === 0o120000) {
    dir.children.push({ t: 'link', name, target: target! });
    res.links++;
  } else {
    const why = `${path.toString()} is ${kindOf(st.mode)}`;
    if (!lenient) throw new MiqError('MIQ_BAD_INPUT', `${why}; miq stores only regular files, directories and symlinks (use --lenient to skip such entries)`, { details: { path: path.toString() } });
    res.skipped.push({ path: path.toString(), why: kindOf(st.mode) });
  }
  return undefined;
}

/** `onFile` sees each regular file as soon as it is found, so reading can start during the walk.
 * On the calling thread, with asynchronous calls only (its event loop stays free). */
export function walk(rootPath: string, lenient: boolean, onFile?: (f: FileNode) => void): Promise<WalkResult> {
  return walkWith(rootPath, lenient, onFile, { sync: false });
}

/** The walk on the calling thread, traverse's options as given. */
async function walkWith(rootPath: string, lenient: boolean, onFile: ((f: FileNode) => void) | undefined, opts: { sync: boolean; yieldEntries?: number }): Promise<WalkResult> {
  const res = newResult(rootPath);
  const dirs: DirNode[] = [res.root];
  await traverse(rootPath, (e) => {
    const parent = dirs[e.parent]!;
    const d = record(res, parent, e.path.subarray(parent.path.length + 1), e.path, e.st, e.target, lenient, e.kind === KIND_FILE ? onFile : undefined);
    if (e.kind === KIND_DIR) dirs.push(d!);
  }, opts);
  return res;
}

/** Entries a walk on the main thread hands out between turns of the event loop: ~5-10 ms of
 * listing at ~14 us an entry. */
const HERE_YIELD_ENTRIES = 512;

/** Records a batch of entries (walkToPort's, or walkTree's) in `res`; `dirs` are the directories
 * by number, in the order the walk handed them out. */
function recordBatch(res: WalkResult, dirs: DirNode[], m: Omit<WalkBatch, 'type'>, lenient: boolean, onFile: ((f: FileNode) => void) | undefined): void {
  const paths = Buffer.from(m.paths.buffer, m.paths.byteOffset, m.paths.byteLength);
  const targets = Buffer.from(m.targets.buffer, m.targets.byteOffset, m.targets.byteLength);
  let start = 0, link = 0;
  for (let i = 0; i < m.count; i++) {
    const end = m.ends[i]!;
    const parent = dirs[m.parent[i]!]!;
    const path = paths.subarray(start, end);
    start = end;
    const n = i * NUMS;
    const st: FileStat = { size: m.num[n]!, mode: m.num[n + 1]!, dev: m.num[n + 2]!, ino: m.num[n + 3]!, mtimeMs: m.num[n + 4]!, ctimeMs: m.num[n + 5]! };
    let target: Buffer | undefined;
    if (m.kind[i] === KIND_LINK) {
      target = targets.subarray(link === 0 ? 0 : m.targetEnds[link - 1]!, m.targetEnds[link]!);
      link++;
    }
    const d = record(res, parent, path.subarray(parent.path.length + 1), path, st, target, lenient, m.kind[i] === KIND_FILE ? onFile : undefined);
    if (m.kind[i] === KIND_DIR) dirs.push(d!);
  }
}

/** A batch of native/miqchunk.c `walkTree`: WalkBatch's arrays, `end` on the last, `error` when
 * the walk stopped at one (after this batch's entries). */
interface TreeBatch extends Omit<WalkBatch, 'type'> {
  end: boolean;
  error?: { code: string; message: string; path: Buffer; what: 'dir' | 'stat' | 'link' };
}
type WalkTree = (root: Uint8Array, slowNs: number, onBatch: (b: TreeBatch) => boolean) => void;
/** native/miqchunk.c `walkTree`: the synchronous walk's listing (listDir's, the same entries,
 * order and directory numbers) on a thread of the addon's own; undefined without the addon or
 * with MIQ_JS_WALK=1 (the walk then lists from JS, as before). */
const nativeWalkTree = miqchunkExport<WalkTree>('walkTree', 'MIQ_JS_WALK');

/** Whether walkHere lists on the addon's thread (tests). */
export const THREADED_WALK = nativeWalkTree !== undefined;

const WHAT = { dir: 'cannot read directory', stat: 'cannot stat', link: 'cannot read symlink' } as const;

/**
 * walkHere with the listing on walkTree's thread: this thread only records the batches, one per
 * turn of its event loop (so index lookups and task results are handled between them). In small
 * N+1 the listing was ~70 ms of the ~130 ms the synchronous walk held this thread, before the
 * first changed file (about a third into the walk) was found and its first task could start.
 */
function walkThreaded(walkTree: WalkTree, rootPath: string, lenient: boolean, onFile: ((f: FileNode) => void) | undefined): Promise<WalkResult> {
  const res = newResult(rootPath);
  const dirs: DirNode[] = [res.root];
  const queue: TreeBatch[] = [];
  let failed = false, scheduled = false;
  let settle: { resolve: (r: WalkResult) => void; reject: (e: unknown) => void } | undefined;
  const walked = new Promise<WalkResult>((resolve, reject) => { settle = { resolve, reject }; });
  const next = (): void => {
    scheduled = false;
    const b = queue.shift();
    if (!b || failed) return;
    try {
      recordBatch(res, dirs, b, lenient, onFile);
      const e = b.error;
      if (e) throw ioError(Object.assign(new Error(e.message), { code: e.code }), WHAT[e.what], e.path.toString());
      if (b.end) return settle!.resolve(res);
    } catch (e) {
      failed = true;
      return settle!.reject(e);
    }
    if (queue.length > 0) {
      scheduled = true;
      setImmediate(next);
    }
  };
  // Outside the promise: if walkTree throws (no thread, a root it refuses), walkHere walks here.
  walkTree(Buffer.from(rootPath), Number(SLOW_NS), (b) => {
    // True stops the thread: the walk failed already.
    if (failed) return true;
    queue.push(b);
    if (!scheduled) {
      scheduled = true;
      setImmediate(next);
    }
    return false;
  });
  return walked;
}

/**
 * The synchronous walk (walk-sync.ts: listDir in C, warmTree on a cold tree) for the calling
 * thread: with the addon on walkTree's thread (walkThreaded), else on this thread, letting its
 * event loop run every HERE_YIELD_ENTRIES entries. For an update whose hash pass runs on libuv's
 * threads (ingest.ts): the walk then needs no worker isolate either. `threaded: false` (tests):
 * on this thread even with the addon.
 */
export function walkHere(rootPath: string, lenient: boolean, onFile?: (f: FileNode) => void, opts: { threaded?: boolean } = {}): Promise<WalkResult> {
  if (nativeWalkTree && opts.threaded !== false) {
    try {
      return walkThreaded(nativeWalkTree, rootPath, lenient, onFile);
    } catch {
      // No thread for it (walkTree threw): the walk on this thread.
    }
  }
  return walkWith(rootPath, lenient, onFile, { sync: true, yieldEntries: HERE_YIELD_ENTRIES });
}

/**
 * The same walk with its traversal in an ingest worker (walk-sync.ts): the main thread only
 * assembles the skeleton from packed batches. Used by ingest, whose pool is running anyway.
 */
export function walkInPool(rootPath: string, lenient: boolean, onFile?: (f: FileNode) => void): Promise<WalkResult> {
  const res = newResult(rootPath);
  const dirs: DirNode[] = [res.root];
  const { port1, port2 } = new MessageChannel();
  return new Promise<WalkResult>((resolve, reject) => {
    const done = (e?: unknown): void => {
      port1.close();
      if (e === undefined) resolve(res);
      else reject(e);
    };
    port1.on('message', (m: WalkMessage) => {
      try {
        if (m.type === 'end') return done();
        if (m.type === 'error') return done(MiqError.fromJSON(m.error as never));
        recordBatch(res, dirs, m, lenient, onFile);
      } catch (e) {
        done(e);
      }
    });
    runInPool({ type: 'walk', root: rootPath, port: port2 }, { transferList: [port2] }).catch((e: unknown) => done(e instanceof MiqError ? e : new MiqError('MIQ_IO', `cannot walk ${rootPath}: ${(e as Error).message}`, { cause: e })));
  });
}
