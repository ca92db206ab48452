/**
 * The FUSE operations as a factory over an injected view, object reader and chunk reader, so
 * most of their behaviour is testable by calling them directly (test/fs-ops.test.ts).
 * Read-only: every op that would change something answers EROFS.
 *
 * An open handle holds the file record it resolved at open time, so a handle opened before a
 * profile switch keeps reading the content it opened.
 */
import type { ObjectReader } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import { ERRNO, FsError, toErrno, type Logger } from './errno.js';
import { ChunkReader, openFile, type OpenFile } from './reader.js';
import type { Listing, Node, View } from './views.js';
import { displayName } from './trees.js';
import type { Id } from '../store/ids.js';

/** Fixed metadata, as Nix normalises it: owner root, mtime 1 s after the epoch. */
const EPOCH1 = new Date(1000);
const O_ACCMODE = 3, O_TRUNC = 0o1000, O_APPEND = 0o2000, O_CREAT = 0o100;
const W_OK = 2;
/** Advertised I/O size: cp/cat read in max(128 KiB, st_blksize) pieces. */
const BLKSIZE = 128 * 1024;

export interface Stat {
  mode: number; uid: number; gid: number; size: number; nlink: number; blksize: number; blocks: number;
  mtime: Date; atime: Date; ctime: Date;
}

export function statOf(n: Node): Stat {
  const base = { uid: 0, gid: 0, blksize: BLKSIZE, mtime: EPOCH1, atime: EPOCH1, ctime: EPOCH1 };
  if (n.type === 'dir') return { ...base, mode: 0o40555, size: 4096, nlink: 2, blocks: 8 };
  if (n.type === 'symlink') return { ...base, mode: 0o120777, size: n.target.length, nlink: 1, blocks: 0 };
  return { ...base, mode: n.exe ? 0o100555 : 0o100444, size: n.size, nlink: 1, blocks: Math.ceil(n.size / 512) };
}

export const XATTR_ID = 'user.miq.id';
export const XATTR_PATH = 'user.miq.path';

function xattrs(n: Node): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  const id = n.type === 'file' ? n.id : n.type === 'dir' ? n.tree : undefined;
  if (id) m.set(XATTR_ID, Buffer.from(id));
  if (n.storePath) m.set(XATTR_PATH, Buffer.from(n.storePath));
  return m;
}

type Cb = (err: number, ...rest: unknown[]) => void;

export interface OpsOptions {
  view: View;
  reader: ObjectReader;
  chunks: ChunkReader;
  log?: Logger;
  /** statfs figures (bytes, files), or undefined for zeros. */
  totals?: () => { bytes: number; files: number };
  /**
   * The view never changes what a path names (store paths, numbered generations). Then there are
   * no open handles (with fuse-native each hop into JavaScript costs tens of microseconds, more
   * than a warm read of a small file): reads resolve the path through a cache. Writes are refused
   * by the kernel: such a mount is made `ro`.
   */
  immutable?: boolean;
}

export interface FsOps {
  [op: string]: (...args: never[]) => void;
}

export interface OpsHandle {
  ops: Record<string, (...args: any[]) => void>;
  /** Open file handles right now (for tests and `status`). */
  openHandles(): number;
}

/** One stat object per node and one stat list per tree: the FUSE adapter caches their encoding. */
function statCache(): { stat: (n: Node) => Stat; listing: (n: Node & { type: 'dir' }, l: Listing) => { names: string[]; stats: Stat[] | undefined }; cachedListing: (tree: Id) => { names: string[]; stats: Stat[] } | undefined } {
  const stats = new WeakMap<Node, Stat>();
  const listings = new Map<Id, { names: string[]; stats: Stat[] }>();
  return {
    stat: (n) => {
      let st = stats.get(n);
      if (!st) stats.set(n, (st = statOf(n)));
      return st;
    },
    listing: (n, l) => {
      if (!n.tree || !l.nodes) return { names: l.names, stats: undefined };
      let hit = listings.get(n.tree);
      if (!hit) {
        hit = { names: l.names, stats: l.nodes.map(statOf) };
        listings.set(n.tree, hit);
        if (listings.size > 4096) listings.delete(listings.keys().next().value as Id);
      }
      return hit;
    },
    cachedListing: (tree) => listings.get(tree),
  };
}

interface PathNodes {
  /** The node at a path, from the caches alone (immutable views), or undefined. */
  cached(path: string): Node | undefined;
  /** The node at a path, looked up when not cached; ENOENT when there is none. */
  must(path: string): Promise<Node>;
  /** The node at a path if this exact path is cached. */
  exact(path: string): Node | undefined;
}

/**
 * Path -> node. Immutable views cache it, bounded: every lookup and every read would otherwise
 * walk the trees from the root again (measured: a fifth of the serving thread's time on a cold
 * read). A name inside a cached directory whose tree is in memory resolves from that listing
 * (measured: a cold lookup of a new file otherwise costs one awaited tree step per path
 * component on the serving thread).
 */
function pathNodes(view: View, immutable: boolean): PathNodes {
  const nodes = new Map<string, Node>();
  const NODE_CACHE = 65_536;
  const children = new Map<Id, Map<string, Node>>();
  const CHILD_DIRS = 1024;
  const remember = (path: string, n: Node): void => {
    nodes.set(path, n);
    if (nodes.size > NODE_CACHE) nodes.delete(nodes.keys().next().value as string);
  };
  const cached = (path: string): Node | undefined => {
    if (!immutable) return undefined;
    const hit = nodes.get(path);
    if (hit || path === '/') return hit;
    const cut = path.lastIndexOf('/');
    const d = nodes.get(cut <= 0 ? '/' : path.slice(0, cut));
    if (d?.type !== 'dir' || !d.tree || d.storePath === undefined) return undefined;
    let byName = children.get(d.tree);
    if (!byName) {
      const l = view.listCached?.(d);
      if (!l?.nodes) return undefined;
      byName = new Map();
      for (let k = 0; k < l.names.length; k++) byName.set(l.names[k]!, l.nodes[k]!);
      children.set(d.tree, byName);
      if (children.size > CHILD_DIRS) children.delete(children.keys().next().value as Id);
    }
    const n = byName.get(path.slice(cut + 1));
    if (n) remember(path, n);
    return n;
  };
  return {
    cached,
    exact: (path) => (immutable ? nodes.get(path) : undefined),
    async must(path) {
      const hit = cached(path);
      if (hit) return hit;
      const n = await view.lookup(path);
      if (!n) throw new FsError('ENOENT');
      // Only what lies in a store path or a numbered generation (both carry `storePath`) is
      // immutable; the top directories and profiles/<name>/current change.
      if (immutable && n.storePath !== undefined) remember(path, n);
      return n;
    },
  };
}

interface PathFiles {
  resolveFile(path: string): Promise<OpenFile>;
  /** Immutable views: the open file of a path, through a bounded cache (Map order = LRU order). */
  fileAt(path: string): Promise<OpenFile>;
  /** The open file of a path if already resolved. */
  opened(path: string): OpenFile | undefined;
  prefetchSiblings(path: string): void;
}

/**
 * Programs that read a whole tree (cp -r, tar, a package manager's verify) read the files of a
 * directory one after another, and each cold read waits for a record lookup, a location lookup
 * and a decode. On the first read in a directory, load the records and chunk locations of all
 * its files together (two database round trips instead of two per file: readers that take the
 * files in another order than ours, such as a list made on another copy, gain too); on every
 * first read of a file, keep the next PREFETCH siblings' first chunks decoding ahead of it.
 */
function pathFiles(o: OpsOptions, nodes: PathNodes): PathFiles {
  const PREFETCH = 8;
  const DIR_FILES = 4096;
  const PATH_CACHE = 8192;
  const byPath = new Map<string, Promise<OpenFile>>();
  const opened = new Map<string, OpenFile>();
  const resolveFile = async (path: string): Promise<OpenFile> => {
    const n = await nodes.must(path);
    if (n.type === 'dir') throw new FsError('EISDIR');
    if (n.type !== 'file') throw new FsError('EINVAL');
    const rec = await o.reader.getFile(n.id);
    if (!rec) throw new MiqError('MIQ_MISSING', `file record ${n.id} is missing from the store`, { details: { id: n.id } });
    return openFile(rec);
  };
  const fileAt = (path: string): Promise<OpenFile> => {
    let p = byPath.get(path);
    if (p) {
      byPath.delete(path);
    } else {
      p = resolveFile(path);
      p.then((f) => {
        if (byPath.has(path)) opened.set(path, f);
      }, () => byPath.delete(path));
    }
    byPath.set(path, p);
    if (byPath.size > PATH_CACHE) {
      const old = byPath.keys().next().value as string;
      byPath.delete(old);
      opened.delete(old);
    }
    return p;
  };
  interface DirInfo { parent: string; names: string[]; nodes: Node[]; index: Map<string, number>; loaded: boolean }
  const dirs = new Map<string, Promise<DirInfo | undefined>>();
  const dirInfo = (parent: string): Promise<DirInfo | undefined> => {
    let p = dirs.get(parent);
    if (!p) {
      p = (async () => {
        const dir = await nodes.must(parent);
        if (dir.type !== 'dir' || dir.storePath === undefined) return undefined;
        const l = await o.view.list(parent, dir);
        if (!l.nodes) return undefined;
        return { parent: parent === '/' ? '' : parent, names: l.names, nodes: l.nodes, index: new Map(l.names.map((n, k) => [n, k])), loaded: false };
      })().catch(() => undefined);
      dirs.set(parent, p);
      if (dirs.size > 256) dirs.delete(dirs.keys().next().value as string);
    }
    return p;
  };
  const loadDir = (d: DirInfo): void => {
    d.loaded = true;
    const files: Promise<OpenFile | undefined>[] = [];
    for (let k = 0; k < d.nodes.length && files.length < DIR_FILES; k++) {
      const node = d.nodes[k]!;
      if (node.type === 'file' && node.size > 0) files.push(fileAt(`${d.parent}/${d.names[k]}`).catch(() => undefined));
    }
    void Promise.all(files).then((fs) => o.chunks.locateAll(fs.filter((f): f is OpenFile => f !== undefined)));
  };
  const prefetchSiblings = (path: string): void => {
    const cut = path.lastIndexOf('/');
    const parent = cut <= 0 ? '/' : path.slice(0, cut);
    const name = path.slice(cut + 1);
    void dirInfo(parent).then((d) => {
      if (!d) return;
      if (!d.loaded) loadDir(d);
      const i = d.index.get(name);
      if (i === undefined) return;
      let n = 0;
      for (let k = i + 1; k < d.names.length && n < PREFETCH; k++) {
        const node = d.nodes[k]!;
        if (node.type !== 'file' || node.size === 0) continue;
        n++;
        const sib = `${d.parent}/${d.names[k]}`;
        const f = opened.get(sib);
        if (f) o.chunks.prefetch(f);
        else void fileAt(sib).then((f2) => o.chunks.prefetch(f2)).catch(() => {});
      }
    });
  };
  return { resolveFile, fileAt, opened: (path) => opened.get(path), prefetchSiblings };
}

/** Everything that would change the tree: EROFS. */
function refusingOps(): Record<string, (...args: any[]) => void> {
  const erofs = (cb: Cb): void => cb(-ERRNO.EROFS);
  return {
    write(_p: string, _fd: number, _b: Buffer, _l: number, _pos: number, cb: Cb) { erofs(cb); },
    create(_p: string, _m: number, cb: Cb) { erofs(cb); },
    mknod(_p: string, _m: number, _d: number, cb: Cb) { erofs(cb); },
    mkdir(_p: string, _m: number, cb: Cb) { erofs(cb); },
    rmdir(_p: string, cb: Cb) { erofs(cb); },
    unlink(_p: string, cb: Cb) { erofs(cb); },
    rename(_s: string, _d: string, cb: Cb) { erofs(cb); },
    link(_s: string, _d: string, cb: Cb) { erofs(cb); },
    symlink(_s: string, _d: string, cb: Cb) { erofs(cb); },
    chmod(_p: string, _m: number, cb: Cb) { erofs(cb); },
    chown(_p: string, _u: number, _g: number, cb: Cb) { erofs(cb); },
    truncate(_p: string, _s: number, cb: Cb) { erofs(cb); },
    ftruncate(_p: string, _fd: number, _s: number, cb: Cb) { erofs(cb); },
    utimens(_p: string, _a: number, _m: number, cb: Cb) { erofs(cb); },
    setxattr(_p: string, _n: string, _v: Buffer, _pos: number, _f: number, cb: Cb) { erofs(cb); },
    removexattr(_p: string, _n: string, cb: Cb) { erofs(cb); },
  };
}

export function createOps(o: OpsOptions): OpsHandle {
  const { stat, listing, cachedListing } = statCache();
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const immutable = o.immutable === true;
  const nodes = pathNodes(o.view, immutable);
  const files = pathFiles(o, nodes);
  const must = nodes.must;
  const handles = new Map<number, OpenFile>();
  let nextFd = 1;
  const fail = (cb: Cb, op: string, path: string, e: unknown, ...defaults: unknown[]): void => cb(toErrno(e, op, path, log), ...defaults);

  const ops: Record<string, (...args: any[]) => void> = {
    getattr(path: string, cb: Cb) {
      const hit = nodes.cached(path);
      if (hit) return cb(0, stat(hit));
      must(path).then((n) => cb(0, stat(n)), (e) => fail(cb, 'getattr', path, e));
    },
    fgetattr(path: string, _fd: number, cb: Cb) {
      ops.getattr!(path, cb);
    },
    readdir(path: string, cb: Cb) {
      const hit = nodes.exact(path);
      if (hit?.type === 'dir' && hit.tree) {
        const c = cachedListing(hit.tree);
        if (c) return cb(0, c.names, c.stats);
        const l = o.view.listCached?.(hit);
        if (l) {
          const r = listing(hit, l);
          return cb(0, r.names, r.stats);
        }
      }
      must(path)
        .then(async (n) => {
          if (n.type !== 'dir') throw new FsError('ENOTDIR');
          return listing(n, await o.view.list(path, n));
        })
        .then((r) => cb(0, r.names, r.stats), (e) => fail(cb, 'readdir', path, e));
    },
    readlink(path: string, cb: Cb) {
      must(path).then((n) => {
        if (n.type !== 'symlink') throw new FsError('EINVAL');
        // fuse-native hands the target to C as a UTF-8 string: bytes that are not UTF-8 are
        // escaped as names are (a relative target into the same tree then still resolves).
        cb(0, displayName(n.target));
      }).catch((e) => fail(cb, 'readlink', path, e));
    },
    access(path: string, mode: number, cb: Cb) {
      must(path).then(() => cb(mode & W_OK ? -ERRNO.EROFS : 0), (e) => fail(cb, 'access', path, e));
    },
    open(path: string, flags: number, cb: Cb) {
      if ((flags & O_ACCMODE) !== 0 || flags & (O_TRUNC | O_APPEND | O_CREAT)) return cb(-ERRNO.EROFS);
      files.resolveFile(path)
        .then((f) => {
          const fd = nextFd++;
          if (nextFd > 0x7fffffff) nextFd = 1;
          handles.set(fd, f);
          cb(0, fd);
        })
        .catch((e) => fail(cb, 'open', path, e));
    },
    release(_path: string, fd: number, cb: Cb) {
      handles.delete(fd);
      cb(0);
    },
    read(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
      // Fast path: everything in memory, answer without a promise.
      const f0 = handles.get(fd) ?? (immutable ? files.opened(path) : undefined);
      if (f0) {
        const n = o.chunks.readCached(f0, pos, len, buf);
        if (n !== undefined) {
          // A prefetched file: keep the siblings' window moving ahead of the reader.
          if (pos === 0 && immutable) files.prefetchSiblings(path);
          return cb(n);
        }
      }
      const h = handles.get(fd);
      if (h) return void o.chunks.readInto(h, pos, len, buf).then((n) => cb(n), (e) => fail(cb, 'read', path, e));
      if (!immutable) return cb(-ERRNO.EBADF);
      if (pos === 0) files.prefetchSiblings(path);
      files.fileAt(path).then((f) => o.chunks.readInto(f, pos, len, buf)).then((n) => cb(n), (e) => fail(cb, 'read', path, e));
    },
    getxattr(path: string, name: string, _pos: number, cb: Cb) {
      must(path).then((n) => {
        const v = xattrs(n).get(name);
        cb(v ? 0 : -ERRNO.ENODATA, v);
      }).catch((e) => fail(cb, 'getxattr', path, e));
    },
    listxattr(path: string, cb: Cb) {
      must(path).then((n) => cb(0, [...xattrs(n).keys()]), (e) => fail(cb, 'listxattr', path, e));
    },
    statfs(_path: string, cb: Cb) {
      const t = o.totals?.() ?? { bytes: 0, files: 0 };
      cb(0, { bsize: 4096, frsize: 4096, blocks: Math.ceil(t.bytes / 4096), bfree: 0, bavail: 0, files: t.files, ffree: 0, favail: 0, fsid: 0, flag: 1, namemax: 255 });
    },
    ...refusingOps(),
  };
  if (immutable) {
    // ENOSYS from OPEN makes the kernel stop sending OPEN and RELEASE on this connection
    // (fc->no_open) while keeping the page cache: a warm read of a small file then costs no
    // round trip to this process at all. fuse-native needs a numeric fd even on error.
    ops.open = (_path: string, _flags: number, cb: Cb) => cb(-ERRNO.ENOSYS, 0);
    delete ops.release;
  }
  return { ops, openHandles: () => handles.size };
}
