/**
 * The operations layer for the libfuse 3 low-level backend (mount/fuse3.ts): requests come by
 * node id, not by path, so this keeps the node table.
 *
 * Node ids are content (issue 11): a file is one node per (content id, exec bit), a symlink one
 * per target, wherever they appear (in any store path, generation or the usr view), so the
 * kernel's page cache and attributes of immutable things are shared and never need
 * invalidation. A directory is one node per (parent node, name, tree): the kernel allows one
 * dentry per directory inode, and equal trees (every empty directory) appear in many places.
 * Under an immutable parent the tree is fixed by the name; under `usr` (whose entries change on
 * a switch) a new tree is a new node, so nothing cached about the old one is ever wrong, and a
 * switch only has to drop the names of `usr` itself that now point elsewhere.
 *
 * The kernel counts lookups of each node (every entry reply, and every READDIRPLUS entry) and
 * FORGETs them; a node leaves the table when its count reaches 0 (the special directories
 * never leave).
 *
 * File nodes are the binding's (native/miqfuse.c "File nodes", numbered from FBASE): it makes
 * them when a listing is registered from its tree (namesTree) or when this table hands one to
 * the kernel (fileIno), counts their lookups and applies their FORGETs itself. This table makes
 * an object for a file only when it has to do with it (a READ or xattr that reaches JS, a
 * lookup, an offer: cFile) and drops it when the binding lets the node go (OP.FREED): a cold
 * walk's ~69k listed files cost JS nothing per file (fuse-needs §41).
 */
import type { ObjectReader } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import type { PackedTree } from '../store/objects.js';
import { ERRNO, FsError, toErrno, type Logger } from './errno.js';
import { XATTR_ID, XATTR_PATH, statOf } from './ops.js';
import { ChunkReader, WHOLE_BYTES, openFile, type OpenFile } from './reader.js';
import type { Recall, Recalled } from './recall.js';
import { nodeAt, type Node, type View } from './views.js';
import { subdirIds, type TreeCache } from './trees.js';

/** Request codes of native/miqfuse.c. */
export const OP = { LOOKUP: 1, FORGET: 2, GETATTR: 3, READLINK: 4, READ: 5, READDIRPLUS: 6, READDIR: 7, STATFS: 8, GETXATTR: 9, LISTXATTR: 10, END: 11, LOOKED: 12, LISTED: 13, UNLISTED: 14, UNNAMED: 15, STREAMED: 16, FREED: 17 } as const;

/** What the operations need from the binding (replies by request slot). */
export interface Replier {
  replyErr(slot: number, errno: number): number;
  replyEntry(slot: number, ino: number, mode: number, size: number, entryTimeout: number, attrTimeout: number): number;
  replyAttr(slot: number, ino: number, mode: number, size: number, attrTimeout: number): number;
  replyBuf(slot: number, buf: Buffer, len: number): number;
  /** A READ's data as several buffers (one writev); optional (else one copy and replyBuf). */
  replyBufs?(slot: number, bufs: Buffer[]): number;
  replyReadlink(slot: number, target: Buffer): number;
  replyXattr(slot: number, size: number): number;
  replyStatfs(slot: number, blocks: number, files: number): number;
  replyDir(slot: number, plus: boolean, size: number, packed: Buffer, count: number, firstOff: number, entryTimeout: number, attrTimeout: number): number;
  /** Hands the whole, verified content of file node `ino` to the binding, which then answers its
   * READs itself (native/miqfuse.c), and with `push` (the kernel knows the node) puts it into
   * the page cache at once; optional. */
  offer?(ino: number, bytes: Buffer, push?: boolean): void;
  /** The bytes a decode thread offered for node `ino` (loadWhole's `ino`) go into the page cache
   * now, if still in the binding's table (the kernel knows the node). Optional. */
  pushOffered?(ino: number): void;
  /** A READ that reached JS answered from node `ino`'s offered bytes in the binding; false (the
   * slot still ours) when it has none. Optional. */
  serveOffered?(slot: number, ino: number, size: number, off: number): boolean;
  /** Registers the listing of an immutable directory (packed as for replyDir) with the binding,
   * which then answers its LOOKUPs (a name not in it as a miss the kernel keeps, as lookup()
   * does) and READDIR(PLUS)es itself and tells us (OP.LOOKED, OP.LISTED); false when it was not
   * taken. Trees' directories are registered with namesTree; this is the root's (registerRoot). */
  names?(parent: number, packed: Buffer, count: number, timeout: number): boolean;
  /** Drops a registration; OP.UNNAMED follows whatever was answered from it. */
  unnames?(parent: number): boolean;
  /** Node `ino`'s attributes never change: the binding answers its GETATTRs from now on (the
   * root's). Optional. */
  attrs?(ino: number, mode: number, size: number, timeout: number): boolean;
  /** names() of a tree's directory from the tree's own encoding: `inos` holds the node ids of
   * its directories and symlinks (by entry), the binding writes its files' (its file nodes, held
   * while registered). Optional. */
  namesTree?(parent: number, tree: Buffer, timeout: number, inos: Float64Array): boolean;
  /** File nodes are the binding's (one per content id and exec bit): the node id of one, made if
   * new and counted `count` lookups (0: only if it exists, else 0). */
  fileIno(id: Id, exe: boolean, size: number, count: number): number;
  /** A file node of the binding's table: [id, exe, size, first listed in (0: none), at index]. */
  fileNode(ino: number): [string, boolean, number, number, number] | null;
  /** Lowers a file node's lookup count (a reply made with it did not reach the kernel). */
  fileForget(ino: number, n: number): void;
}

const DAY = 86_400;
export const ROOT_INO = 1;
/** File nodes are the binding's, numbered from here (native/miqfuse.c FBASE); JS's own nodes
 * (directories, symlinks) count up from ROOT_INO and never get there. */
const FBASE = 2 ** 40;

interface Entry {
  readonly ino: number;
  node: Node;
  readonly key: string;
  nlookup: number;
  /** Directories outside any tree (/, /store, /profiles, …): their path in the view. */
  readonly path?: string;
  /** Never leaves the table; its listing is rebuilt on every read from offset 0. */
  readonly pinned?: boolean;
  /** Seconds the kernel may keep this node's children (entries) and their attributes. */
  readonly childTimeout: number;
  file?: Promise<OpenFile>;
  opened?: OpenFile;
  listing?: Child[];
  /** Where the node was last listed or looked up (directory and position): sibling prefetch. */
  parent?: Entry;
  index?: number;
  /** Its name there (directories: a store path's name, for the gc check). */
  name?: Buffer;
  /** The records and chunk locations of this directory's files were loaded together. */
  loaded?: boolean;
  /** This directory's files read through a record so far, and the last one (prefetchSiblings). */
  reads?: number;
  lastRead?: Id;
  /** This directory's small files were started whole (loadDir). */
  wholeLoaded?: boolean;
  /** Files of this directory looked up so far (fileLooked). */
  looks?: number;
  /** A file looked up by name (not only listed). */
  looked?: boolean;
  /** A file whose bytes were offered to the binding or read through JS already. */
  offered?: boolean;
  /** This directory's entries are registered with the binding (register). */
  registered?: boolean;
  /** While registered: its children's entries, in listing order (files: undefined, their nodes
   * are the binding's), and every child's node id. */
  kids?: (Entry | undefined)[];
  kidInos?: Float64Array;
  /** The tree it was registered from (kids' and kidInos' order). */
  kidTree?: PackedTree;
  /** Counted in namedDirs (dirLooked). */
  named?: boolean;
  /** Levels of subdirectories below it registered ahead so far (dirLooked). */
  ahead?: number;
  /** Registered listings that hold it (the binding may hand out its id at any time): it stays
   * in the table while this is above 0. */
  kept?: number;
}

/**
 * A file node's entry, which is also its Node (`node` is the entry itself), with every field a
 * walk sets declared when it is made. A cold `find` interns every file of every tree it lists
 * (~69k of 74k entries in the bench tree); as an Entry, a Node and the property array the fields
 * added later needed, that was three objects per file that all survive the young generation
 * (copied by each scavenge, then promoted): notes §15.
 */
function fileEntry(ino: number, exe: boolean, id: Id, size: number, storePath: string | undefined): Entry {
  const e = {
    ino, node: undefined as unknown as Node, key: '', nlookup: 0, childTimeout: 0,
    parent: undefined as Entry | undefined, index: undefined as number | undefined, kept: 0,
    type: 'file' as const, exe, id, size, storePath,
  };
  e.node = e;
  return e;
}

interface Child {
  name: Buffer;
  node: Node;
  path?: string;
  /** keyOf(parent, this), made once (listings are kept per directory). */
  key?: string;
}

/** The bytes one entry takes in a buffer packEntry writes (24 + its name, padded to 8), and the
 * kernel's room for it in a READDIR (plus: a READDIRPLUS) reply, which sendDir counts against. */
function entryBytes(name: Buffer, plus = false): number {
  return ((plus ? 152 : 24) + name.length + 7) & ~7;
}

/** Writes one entry as native/miqfuse.c's replyDir and names read it: f64 ino, f64 size, u32
 * mode, u32 name length, the name, padded to 8; returns the next offset. */
function packEntry(out: Buffer, at: number, ino: number, n: Node, name: Buffer): number {
  out.writeDoubleLE(ino, at);
  out.writeDoubleLE(n.type === 'dir' ? 4096 : n.type === 'symlink' ? n.target.length : n.size, at + 8);
  out.writeUInt32LE(n.type === 'dir' ? 0o40555 : n.type === 'symlink' ? 0o120777 : n.exe ? 0o100555 : 0o100444, at + 16);
  out.writeUInt32LE(name.length, at + 20);
  name.copy(out, at + 24);
  return at + entryBytes(name);
}

/** The `usr` directory: the current generation's tree, or nothing. */
export interface UsrSource {
  (): { tree: Id; env?: string } | undefined;
}

export interface InodeOptions {
  view: View;
  trees: TreeCache;
  reader: ObjectReader;
  chunks: ChunkReader;
  /** Serve DIR/usr as the current generation (one mount for everything). */
  usr?: UsrSource;
  log?: Logger;
  totals?: () => { bytes: number; files: number };
  /** What the last mount's start read, and this one's record of it (fs/recall.ts). */
  recall?: Recall;
}

/** The table key of a child that is not a file (files are keyed by content id: Inodes.files). */
const keyOf = (parent: number, c: Child): string => {
  const n = c.node;
  if (n.type === 'file') throw new Error('internal: files are keyed by content');
  if (n.type === 'symlink') return `l${n.target.toString('latin1')}`;
  if (c.path !== undefined) return `p${c.path}`;
  return `d${parent}/${n.tree ?? ''}/${c.name.toString('latin1')}`;
};

/** A directory's children as Child objects (names are views into the tree's encoding). */
function childrenOf(t: PackedTree, storePath: string | undefined): Child[] {
  const out = new Array<Child>(t.length);
  for (let i = 0; i < t.length; i++) out[i] = { name: t.name(i), node: nodeAt(t, i, storePath) };
  return out;
}

const SMALL_DIR_FILES = 128;
const SMALL_DIR_BYTES = 1 << 20;
const PREFETCH = 8;
/** MIQ_DEBUG_LATENCY: log every request answered from JS with its latency (see traced). */
const LATENCY = !!process.env.MIQ_DEBUG_LATENCY;
/** Files of a directory read through a record before its siblings are loaded ahead (and at
 * least one in fifty of its entries; see prefetchSiblings). */
const SIBLING_READS = 2;
/** A directory's small files read ahead together, at most this many bytes. */
const DIR_WHOLE_BYTES = 32 << 20;
/** Files of a directory looked up before its other small files are read ahead (and at least
 * one in fifty of them). */
const DIR_LOOKS = 3;
/** A program starting, with small files' maps: the part of a directory looked up before its
 * other small files are read ahead (see fileLooked). */
const START_DIR_PART = 4;
/** Subdirectories' trees loaded ahead when a directory is listed (each level). */
const TREE_AHEAD = 256;
/** Listings after which a mount registers WALK_DEPTH levels ahead (see aheadDepth). */
const WALK_LISTINGS = 64;
/** Small files of one READDIRPLUS reply whose maps go to the binding at most (mapListed). */
const MAP_LISTED = 512;
const WALK_WIDTH = 8192;
/** Walked tops remembered at most (see walkAll). */
const WALKED_MAX = 4096;
/** Trees below a walked top loaded ahead at most (see walkAll). */
const WALK_TREES = 8192;
/** Directories looked up by name after which lookups register subdirectories ahead (a walk by
 * name; see dirLooked). Python's start (import json, sqlite3, ssl) looks up 18. */
const NAMED_WALK = 128;
/** A directory of at most this many subdirectories is a narrow level of a walk (see
 * registerSubdirs). */
const NARROW = 2;
/** Whether a tree has at most NARROW subdirectories. */
function narrow(t: PackedTree): boolean {
  let n = 0;
  for (let i = 0; i < t.length; i++) if (t.isDir(i) && ++n > NARROW) return false;
  return true;
}
const WALK_DEPTH = Number(process.env.MIQ_MOUNT_WALK_DEPTH) > 0 ? Number(process.env.MIQ_MOUNT_WALK_DEPTH) : 3;
/** Entries of registered listings kept at most (MIQ_MOUNT_NAMES): beyond, the least recently used
 * directories are unregistered. ~250 bytes an entry between the binding and this table. */
const MAX_NAMES = Number(process.env.MIQ_MOUNT_NAMES) > 0 ? Number(process.env.MIQ_MOUNT_NAMES) : 1 << 18;
/** Files up to this size are one chunk with the default chunker (its minimum): preloadFiles
 * leaves them out (wholeOf reads them without a record). */
const PRELOAD_MIN = 32 << 10;
/** Executables of usr/bin whose heads are read for their ELF interpreter at most (interpreter). */
const INTERP_TRIES = 4;

/** The PT_INTERP path of a 64-bit little-endian ELF file's head, or undefined. */
export function elfInterp(h: Buffer): string | undefined {
  if (h.length < 64 || h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2 || h[5] !== 1) return undefined;
  const phoff = Number(h.readBigUInt64LE(0x20)), size = h.readUInt16LE(0x36), count = h.readUInt16LE(0x38);
  if (size < 56) return undefined;
  for (let k = 0; k < count; k++) {
    const at = phoff + k * size;
    if (at + 56 > h.length) return undefined;
    if (h.readUInt32LE(at) !== 3) continue;
    const off = Number(h.readBigUInt64LE(at + 8)), len = Number(h.readBigUInt64LE(at + 32));
    if (len < 2 || len > 256 || off + len > h.length) return undefined;
    const s = h.subarray(off, off + len);
    const end = s.indexOf(0);
    return (end < 0 ? s : s.subarray(0, end)).toString();
  }
  return undefined;
}

/** File records kept from loading ahead (a directory's files are loaded up to 4096 at a time). */
const LOADED_FILES = 16_384;

export class Inodes {
  private readonly byIno = new Map<number, Entry>();
  private readonly byKey = new Map<string, Entry>();
  /** The objects made for file nodes (the binding's, see cFile) by content id, without and with
   * the exec bit. Only for the files JS has had to do with (a lookup, a read, an offer): a cold
   * walk's ~69k listed files have none (fuse-needs §40, §41). */
  private readonly files: [Map<Id, Entry>, Map<Id, Entry>] = [new Map(), new Map()];
  /** File objects made so far (MIQ_DEBUG_COUNTS). */
  fileObjects = 0;
  /**
   * File records loaded ahead (a directory's files on its first read, the sibling window), by
   * content id, bounded (Map order = age). A file looked up later starts with its record in hand,
   * so its first READ is answered from the decoded cache without a database round trip on the
   * libuv pool (measured on a cold read of include/: fuse-native's path table did this and read
   * 25 % faster than fuse3 without it).
   */
  private readonly loadedFiles = new Map<Id, OpenFile>();
  private next = ROOT_INO + 1;
  /** Registered directories, least recently used first, and their entry counts (see MAX_NAMES). */
  private readonly registered = new Map<number, { e: Entry; count: number }>();
  private registeredNames = 0;
  /** Directories listed from the start so far (see aheadDepth). */
  private listings = 0;
  /** Directories looked up by name so far (see dirLooked). */
  private namedDirs = 0;
  /** Unregistered listings whose OP.UNNAMED has not come yet, in order. */
  private readonly unnamed: { ino: number; kids: (Entry | undefined)[] }[] = [];
  private scratch = Buffer.alloc(0);
  private readonly log: Logger;
  readonly usrIno: number;

  constructor(private readonly o: InodeOptions, private readonly r: Replier) {
    this.log = o.log ?? ((l) => process.stderr.write(`${l}\n`));
    if (LATENCY) this.r = this.traced(r);
    // The root's entries (profiles, store, usr) are fixed for the mount's life, as their node ids
    // are: the kernel keeps them a day (a 1 s timeout sent a LOOKUP of usr to this thread per
    // program start more than a second after the last; a switch invalidates usr's children and
    // listing, never usr's own entry).
    this.put({ ino: ROOT_INO, node: { type: 'dir', size: 0 }, key: 'p/', nlookup: 1, path: '/', pinned: true, childTimeout: DAY });
    this.usrIno = o.usr ? this.special('/usr', DAY).ino : 0;
  }

  private put(e: Entry): Entry {
    this.byIno.set(e.ino, e);
    this.byKey.set(e.key, e);
    return e;
  }

  private special(path: string, childTimeout: number): Entry {
    const key = `p${path}`;
    return this.byKey.get(key) ?? this.put({ ino: this.next++, node: { type: 'dir', size: 0 }, key, nlookup: 0, path, pinned: true, childTimeout });
  }

  /** How long the kernel may keep the children of a special directory. */
  private timeoutBelow(path: string): number {
    // New store paths appear (never cached as misses), a present one never changes.
    if (path === '/store') return DAY;
    // `current` and the list of generations change with every switch.
    return path.startsWith('/profiles') ? 0 : 1;
  }

  /** The node of a child if the table has it. */
  private known(parent: number, c: Child): Entry | undefined {
    const n = c.node;
    if (n.type === 'file') return this.files[n.exe ? 1 : 0].get(n.id);
    return this.byKey.get((c.key ??= keyOf(parent, c)));
  }

  /** The node of a tree's entry i that is not a file, made if new (as intern). */
  private internAt(parent: Entry, t: PackedTree, i: number, storePath: string | undefined): Entry {
    if (t.isFile(i)) throw new Error('internal: file nodes are the binding\'s');
    return this.intern(parent, { name: t.name(i), node: nodeAt(t, i, storePath) });
  }

  /**
   * The object of file node `ino` (the binding's table: native/miqfuse.c "File nodes"), made on
   * first need from `n` or from what the binding says of it (its first listing gives its parent
   * and store path). It holds what JS keeps per file (its record, offered, looked); it counts no
   * lookups (the binding does) and goes at OP.FREED.
   */
  private cFile(ino: number, n?: { exe: boolean; id: Id; size: number; storePath?: string }): Entry | undefined {
    const had = this.byIno.get(ino);
    if (had) return had;
    let parent: Entry | undefined, index: number | undefined;
    if (!n) {
      const f = this.r.fileNode(ino);
      if (!f) return undefined;
      parent = f[3] ? this.byIno.get(f[3]) : undefined;
      if (parent) index = f[4];
      n = { id: f[0] as Id, exe: f[1], size: f[2], storePath: parent ? this.nodeOf(parent).storePath : undefined };
    }
    const e = fileEntry(ino, n.exe, n.id, n.size, n.storePath);
    e.parent = parent;
    e.index = index;
    this.byIno.set(ino, e);
    this.files[n.exe ? 1 : 0].set(n.id, e);
    this.fileObjects++;
    return e;
  }

  /** The binding let file node `ino` go (OP.FREED): so does this table. */
  private freed(ino: number): void {
    const e = this.byIno.get(ino);
    if (e?.node.type !== 'file') return;
    this.byIno.delete(ino);
    const m = this.files[e.node.exe ? 1 : 0];
    if (m.get(e.node.id) === e) m.delete(e.node.id);
  }

  /** Interns a child: a file's node is the binding's, counted one lookup there (the caller hands
   * it to the kernel). */
  private intern(parent: Entry, c: Child): Entry {
    const n = c.node;
    if (n.type === 'file') {
      const ino = this.r.fileIno(n.id, n.exe, n.size, 1);
      if (!ino) throw new FsError('EIO');
      return this.cFile(ino, n)!;
    }
    const key = (c.key ??= keyOf(parent.ino, c));
    let e = this.byKey.get(key);
    if (!e) {
      if (c.path !== undefined) e = this.special(c.path, this.timeoutBelow(c.path));
      else e = this.put({ ino: this.next++, node: c.node, key, nlookup: 0, childTimeout: parent.node.type === 'dir' && c.node.type === 'dir' ? DAY : 0 });
    }
    return e;
  }

  /** The node `usr` names right now (its tree changes on a switch). */
  private usrNode(): Node {
    const p = this.o.usr?.();
    return p ? { type: 'dir', tree: p.tree, size: 0, storePath: p.env } : { type: 'dir', names: [], size: 0 };
  }

  private nodeOf(e: Entry): Node {
    return e.ino === this.usrIno && this.usrIno !== 0 ? this.usrNode() : e.node;
  }

  /** A directory's children as Child objects, made on first need from its cached tree
   * (register does not keep them; reads use them for their sibling prefetch). */
  private listingOf(e: Entry): Child[] | undefined {
    if (e.listing) return e.listing;
    const n = e.node;
    if (e.ino === this.usrIno || n.type !== 'dir' || !n.tree) return undefined;
    const t = this.o.trees.peek(n.tree);
    if (!t) return undefined;
    return (e.listing = childrenOf(t.tree, n.storePath));
  }

  /** The children of a directory, in order. */
  private async children(e: Entry): Promise<Child[]> {
    const n = this.nodeOf(e);
    if (n.type !== 'dir') throw new FsError('ENOTDIR');
    if (n.tree) {
      if (e.listing && e.ino !== this.usrIno) return e.listing;
      const t = this.o.trees.peek(n.tree) ?? (await this.o.trees.get(n.tree));
      const out = childrenOf(t.tree, n.storePath);
      // A listed directory is mostly walked next (find, du, ls -R): its subdirectories' trees
      // are loaded ahead, two levels, instead of one database round trip per step down.
      this.o.trees.prefetch(subdirIds(t.tree, TREE_AHEAD), 1);
      if (e.ino !== this.usrIno) e.listing = out;
      return out;
    }
    if (n.names) return [];
    const path = e.path!;
    const names = path === '/' ? (this.o.usr ? ['profiles', 'store', 'usr'] : ['profiles', 'store']) : (await this.o.view.list(path, n)).names;
    const out: Child[] = [];
    for (const name of names) {
      const c = await this.childByPath(path, name);
      if (c) out.push(c);
    }
    return out;
  }

  private async childByPath(dir: string, name: string): Promise<Child | undefined> {
    const path = dir === '/' ? `/${name}` : `${dir}/${name}`;
    if (path === '/usr' && this.o.usr) return { name: Buffer.from(name), node: this.usrNode(), path };
    const node = await this.o.view.lookup(path);
    if (!node) return undefined;
    // Directories outside trees keep their path; a store path's root or a generation is a tree.
    return { name: Buffer.from(name), node, path: node.type === 'dir' && !node.tree ? path : undefined };
  }

  /** One child by its raw name (latin1: one char per byte). */
  private async child(e: Entry, name: string): Promise<Child | undefined> {
    const n = this.nodeOf(e);
    if (n.type !== 'dir') throw new FsError('ENOTDIR');
    if (n.tree) {
      const t = this.o.trees.peek(n.tree) ?? (await this.o.trees.get(n.tree));
      const i = t.tree.find(Buffer.from(name, 'latin1'));
      return i >= 0 ? { name: t.tree.name(i), node: nodeAt(t.tree, i, n.storePath) } : undefined;
    }
    if (n.names || e.path === undefined) return undefined;
    const utf8 = Buffer.from(name, 'latin1').toString('utf8');
    if (name.includes('/') || utf8 === '.' || utf8 === '..') return undefined;
    if (e.path === '/' && !['profiles', 'store', 'usr'].includes(utf8)) return undefined;
    return this.childByPath(e.path, utf8);
  }

  private fail(slot: number, op: string, ino: number, e: unknown): void {
    const errno = -toErrno(e, op, `node ${ino}`, this.log);
    this.r.replyErr(slot, errno);
  }

  private entry(ino: number): Entry {
    const e = this.byIno.get(ino) ?? (ino >= FBASE ? this.cFile(ino) : undefined);
    if (!e) {
      this.outOfStep(`a request for node ${ino}`);
      throw new FsError('ENOENT');
    }
    return e;
  }

  private readonly pending = new Map<number, { op: number; ino: number; a: unknown; b: unknown; t: number }>();

  /** MIQ_DEBUG_LATENCY: one log line per answered request (op, node, args, start, duration). */
  private traced(r: Replier): Replier {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(Object.getPrototypeOf(r)).concat(Object.keys(r))) {
      const f = (r as unknown as Record<string, unknown>)[k];
      if (typeof f !== 'function') continue;
      out[k] = (...args: unknown[]): unknown => {
        if (k.startsWith('reply')) {
          const p = this.pending.get(args[0] as number);
          if (p) {
            this.pending.delete(args[0] as number);
            const now = performance.now();
            const e = this.byIno.get(p.ino);
            const what = e?.node.type === 'file' ? `${e.node.id.slice(0, 8)} size=${e.node.size}` : (e?.name?.toString() ?? '');
            this.log(`lat op=${p.op} ino=${p.ino} a=${String(p.a)} b=${String(p.b)} at=${p.t.toFixed(1)} ms=${(now - p.t).toFixed(1)} ${what}`);
          }
        }
        return (f as (...x: unknown[]) => unknown).apply(r, args);
      };
    }
    return out as unknown as Replier;
  }

  /** The kernel named a node this table let go: its lookup counts and ours went out of step.
   * That is a bug (it turns into ENOENT for a file that exists), so it is always said, a few
   * times at most. */
  private outOfStep(what: string): void {
    if (this.stepLogs++ < 20) this.log(`miq mount: internal: ${what}, which this mount had let go (lookup counts out of step)`);
  }
  private stepLogs = 0;

  /** The dispatcher: (op, slot, ino, a, b) as native/miqfuse.c calls it. */
  readonly handle = (op: number, slot: number, ino: number, a: unknown, b: unknown): void => {
    if (LATENCY && slot) this.pending.set(slot, { op, ino, a, b, t: performance.now() });
    try {
      switch (op) {
        case OP.LOOKUP: return this.lookup(slot, ino, a as string);
        case OP.FORGET: return this.forget(ino, a as number);
        case OP.LOOKED: return this.looked(ino, a as number, b as number);
        case OP.FREED: return this.freed(ino);
        case OP.LISTED: return this.listed(ino, a as number, b as number, 1);
        case OP.UNLISTED: return this.listed(ino, a as number, b as number, -1);
        case OP.UNNAMED: return this.unnamedDone(ino);
        case OP.GETATTR: return this.getattr(slot, ino);
        case OP.READLINK: return this.readlink(slot, ino);
        case OP.READ: return this.read(slot, ino, a as number, b as number);
        case OP.STREAMED: return this.streamed(ino, a as number, b as number);
        case OP.READDIRPLUS: return this.readdir(slot, ino, a as number, b as number, true);
        case OP.READDIR: return this.readdir(slot, ino, a as number, b as number, false);
        case OP.STATFS: {
          const t = this.o.totals?.() ?? { bytes: 0, files: 0 };
          this.r.replyStatfs(slot, Math.ceil(t.bytes / 4096), t.files);
          return;
        }
        case OP.GETXATTR: return this.getxattr(slot, ino, a as string, b as number);
        case OP.LISTXATTR: return this.listxattr(slot, ino, a as number);
        default:
          if (slot) this.r.replyErr(slot, ERRNO.ENOSYS);
      }
    } catch (e) {
      if (slot) this.fail(slot, `op ${op}`, ino, e);
    }
  };

  private lookup(slot: number, parent: number, name: string): void {
    const pe = this.entry(parent);
    const answer = (c: Child | undefined): void => {
      if (!c) {
        // A miss inside a tree never turns into a hit (the tree is immutable; `usr` drops every
        // name a switch adds), so the kernel may remember it: program start-up probes many
        // names that do not exist (search paths). Elsewhere (store/, profiles/) names appear.
        const n = this.nodeOf(pe);
        if (n.type === 'dir' && n.tree) return void this.r.replyEntry(slot, 0, 0, 0, pe.childTimeout, 0);
        return void this.r.replyErr(slot, ERRNO.ENOENT);
      }
      const e = this.intern(pe, c);
      if (e.node.type !== 'file') e.nlookup++;
      e.parent = pe;
      if (e.node.type === 'dir') {
        e.name = c.name;
        this.dirLooked(e, 1, true);
        this.noteDir(e);
      } else if (e.node.type === 'file') this.fileLooked(pe, e);
      const st = statOf(e.ino === this.usrIno ? this.usrNode() : e.node);
      const t = pe.childTimeout;
      // A failed reply (the lookup was interrupted) was not counted by the kernel.
      if (this.r.replyEntry(slot, e.ino, st.mode, st.size, t, t) !== 0) this.unref(e, 1);
    };
    const treeBefore = parent === this.usrIno ? this.o.usr?.()?.tree : undefined;
    this.child(pe, name).then(async (c) => {
      // A switch while this lookup waited: answer from the new generation (the switch's
      // invalidation may already have run and would not cover an answer sent after it).
      if (parent === this.usrIno && this.o.usr?.()?.tree !== treeBefore) c = await this.child(pe, name);
      answer(c);
      this.register(pe);
    }).catch((e) => this.fail(slot, 'lookup', parent, e));
  }

  /**
   * A file was looked up: if its bytes are in memory, hand them to the binding before the entry
   * is answered (its READ then never reaches JS); else start it. Once a reader has looked up
   * several files of a directory (cp -r, tar, cat of a list: it reads them all), its other small
   * files are started whole too, offered as they arrive. Not on the first: a program starting
   * up looks up a few libraries in a directory of thousands (measured: python's cold start
   * through usr spent more CPU on a directory batch of 1000 files it never read than before).
   */
  private fileLooked(pe: Entry, e: Entry, answered = false): void {
    const n = e.node;
    e.looked = true;
    if (n.type !== 'file' || n.size === 0) return;
    // A start's files are the ones it looks up by name or reads through JS (the READs of files
    // offered to the binding never show here).
    this.o.recall?.note(n.id, n.size);
    if (e.offered) {
      // Its offered bytes may have left the binding since (served, or pushed out): a READ the
      // binding holds for a map goes to JS.
      if (answered) this.o.chunks.unpend(e.ino);
      return;
    }
    if (n.size > WHOLE_BYTES) {
      // Read whole ahead (the recall list): the binding answers its READs.
      const b = this.r.offer && this.o.chunks.cachedWhole(n);
      if (b) {
        e.offered = true;
        this.r.offer!(e.ino, b, answered);
      }
      return;
    }
    pe.looks = (pe.looks ?? 0) + 1;
    const b = this.o.chunks.cachedWhole(n);
    if (b) {
      if (this.r.offer) {
        e.offered = true;
        // Answered already (by the binding): the kernel knows the node, push now.
        this.r.offer(e.ino, b, answered);
      }
      return;
    }
    // A program starting: its map to the binding as soon as its location is in (its READs are held
    // there until then). A walk by name (a reader of every file): read whole here and by the
    // directory's batch, as without maps (mapped, the cold read of every file took 5-10 % longer,
    // its READs' frames decoded again by the read threads: fuse-needs §37).
    const starting = this.namedDirs < NAMED_WALK && this.listings <= WALK_LISTINGS;
    // From the walk on the binding marks no lookup pending: a READ would wait for JS to unpend it.
    if (!starting) this.o.chunks.holdNoMore();
    if (!(starting && this.o.chunks.mapLooked(n, e.ino, !answered))) {
      if (answered) this.o.chunks.unpend(e.ino);
      void this.o.chunks.wholeOf(n).then((w) => w && this.onWhole(n.id, w), () => {});
    }
    const pn = this.nodeOf(pe);
    const files = pn.type === 'dir' && pn.tree ? (this.o.trees.peek(pn.tree)?.tree.length ?? 0) : 0;
    // With small files' maps (their READs held in the binding until the map comes) a program
    // starting has each file it reads decoded by the read threads as it reads it: a directory's
    // batch only once it has read a quarter of it. Its batches of small directories and of
    // python3.11/__pycache__ (at its 4th of ~200 files) decoded hundreds of files it never read
    // while it waited for the CPU (fuse-needs §37: serving CPU 0.30 -> 0.17 s a start). A walk by
    // name (a reader of every file) keeps them: its READs would otherwise be decoded one by one.
    if (this.o.chunks.holdsSmall && starting) {
      if (pe.looks >= Math.max(DIR_LOOKS, files / START_DIR_PART)) this.loadDir(pe);
    } else if (pe.looks >= Math.max(DIR_LOOKS, files / 50) || (pe.looks === 1 && pn.type === 'dir' && pn.tree && this.smallDir(pn.tree))) this.loadDir(pe);
  }

  /** A directory of a few small files (at most SMALL_DIR_FILES entries, SMALL_DIR_BYTES of files
   * in all): its first file looked up starts them all, as the third does elsewhere. A program
   * starting reads on in such a directory (python's packages and their __pycache__: __init__
   * first, then each module as it is imported, each of those READs waiting in JS for its own
   * record and decode). Python's cold start: READs reaching JS 37 -> 29-31. */
  private smallDir(tree: Id): boolean {
    const t = this.o.trees.peek(tree)?.tree;
    if (!t || t.length > SMALL_DIR_FILES) return false;
    let bytes = 0;
    for (let i = 0; i < t.length; i++) if (t.isFile(i) && (bytes += t.size(i)) > SMALL_DIR_BYTES) return false;
    return true;
  }

  /** A LOOKUP the binding answered from a registered name: count it, and do what a lookup here
   * would have done. */
  private looked(ino: number, parent: number, index: number): void {
    const e = this.byIno.get(ino) ?? (ino >= FBASE ? this.cFile(ino) : undefined);
    if (!e) return;
    if (e.node.type === 'file') {
      // A file node: counted by the binding; it says where it was looked up.
      const pe = this.byIno.get(parent);
      if (pe) {
        e.parent = pe;
        e.index = index;
      }
    } else e.nlookup++;
    if (e.parent) this.touch(e.parent);
    if (e.node.type === 'dir') {
      this.dirLooked(e, 1, true);
      this.noteDir(e);
    } else if (e.node.type === 'file' && e.parent) this.fileLooked(e.parent, e, true);
  }

  /** A directory was looked up or listed: load its tree and register its entries, and its
   * subdirectories' (a reader inside looks names up next, or lists them: find, du, ls -R; one
   * level ahead, the binding answers those too; `depth` levels once a walk is seen). */
  private dirLooked(e: Entry, depth = 1, byName = false): void {
    const n = e.node;
    if (n.type !== 'dir' || !n.tree || (e.ahead ?? 0) >= depth || !this.r.namesTree) return;
    // Looked up by name, by a program starting (not a walk): its own listing is registered (its
    // next lookups are answered by the binding), its subdirectories' are not. Python's start
    // looked up usr/lib and registered lib/x86_64-linux-gnu's ~100 subdirectories (and python3.11's
    // packages) ahead: 6643 names interned for ~50 lookups, 3081 without; its serving CPU -18 %
    // (median of 6 runs at load 3.6-4). A walk by name (cat of a file list, a build stat-ing
    // deep paths) looks up many directories: past NAMED_WALK of them lookups register ahead too.
    if (byName && this.namedDirs < NAMED_WALK) {
      if (!e.named) {
        e.named = true;
        this.namedDirs++;
      }
      if (!e.registered) this.o.trees.get(n.tree).then(() => setImmediate(() => this.register(e)), () => {});
      return;
    }
    e.ahead = depth;
    // A walk's listing (not a lookup by name) whose tree is at hand: registered now, and its
    // subdirectories queued, without waiting a turn per level.
    const hit = this.o.trees.peek(n.tree);
    if (hit) {
      this.register(e);
      this.registerSubdirs(e, hit.tree, n.storePath, depth);
      return;
    }
    // Registered in a later turn: a LOOKUP that waits for the same tree is answered first
    // (python's start had its lookup of ld-linux-x86-64.so.2 wait ~180 ms at load 14 behind the
    // registration of lib/x86_64-linux-gnu's 1150 entries, whose tree both were waiting for).
    this.o.trees.get(n.tree).then((t) => setImmediate(() => {
      this.register(e);
      this.registerSubdirs(e, t.tree, n.storePath, depth);
    }), () => {});
  }

  /** How many levels of subdirectories a listing registers ahead: one, until this mount has
   * listed WALK_LISTINGS directories (a walk: find, du, ls -R, cp -r). A walk goes depth first
   * and, answered by the binding, outran a one-level lookahead at every first subdirectory (a
   * cold find of the bench tree had ~1250 of its 4947 listings wait for this thread). A program
   * start lists a few directories: it keeps the one level (registering deeper would keep this
   * thread busy while its lookups wait). */
  private aheadDepth(): number {
    return this.listings > WALK_LISTINGS ? WALK_DEPTH : 1;
  }

  /**
   * A walk: every tree below the top of the tree the listed directory is in (usr, a store path)
   * is loaded, behind what the registrations ahead of it wait for (TreeCache.prefetchAll), once
   * per top. The registrations WALK_DEPTH levels ahead then find their trees in memory instead
   * of each level waiting for the index.
   */
  private walkAll(e: Entry): void {
    let top = e;
    for (let p = e.parent; p && !(p.pinned && p.ino !== this.usrIno); p = p.parent) top = p;
    const n = this.nodeOf(top);
    if (n.type !== 'dir' || !n.tree || this.walked.has(n.tree)) return;
    // Once per top while it is likely still cached; forgotten in bulk so that a mount that walks
    // store path after store path for days does not keep every id it ever walked.
    if (this.walked.size >= WALKED_MAX) this.walked.clear();
    this.walked.add(n.tree);
    this.o.trees.prefetchAll([n.tree], WALK_TREES);
  }
  private readonly walked = new Set<Id>();

  private registerSubdirs(e: Entry, t: PackedTree, storePath: string | undefined, depth = 1): void {
    // In a walk a narrow level costs no depth: find lists a chain of small directories at
    // ~0.1 ms a level, three levels within the hold of the listing notices that would register
    // further (native/miqfuse.c "Notices"). Of a cold find's ~155 READDIRPLUS that reached JS
    // (the bench tree), ~130 were of directories first asked for in the batch their own
    // READDIRPLUS flushed; with narrow levels free ~35 (fuse-needs §44). Bounded: it registers
    // only what the walk lists anyway, a little earlier.
    if (this.listings > WALK_LISTINGS && narrow(t)) depth++;
    // A walk lists every subdirectory: all of them (share/doc has 734; the 478 past the first
    // TREE_AHEAD each waited for this thread).
    const width = depth > 1 ? WALK_WIDTH : TREE_AHEAD;
    let k = 0;
    for (let i = 0; i < t.length; i++) {
      if (!t.isDir(i) || k++ >= width) continue;
      const node = nodeAt(t, i, storePath) as Node & { type: 'dir' };
      const ce = this.byKey.get(keyOf(e.ino, { name: t.name(i), node }));
      if (!ce) continue;
      if (depth > 1) this.o.trees.getAhead(node.tree!).then(() => this.dirLooked(ce, depth - 1), () => {});
      else if (!ce.registered) this.o.trees.getAhead(node.tree!).then(() => this.register(ce), () => {});
    }
  }

  /**
   * Registers an immutable directory's listing with the binding (see Replier.namesTree), once. Its
   * children are interned now (node ids fixed) and kept while it is registered: the binding may
   * hand out their ids at any time. `usr` too, as its current generation's tree (a switch
   * registers it again before the kernel's entries are invalidated: usrSwitched); never the
   * directories outside trees. At most MAX_NAMES entries stay registered (least recently used
   * directories are dropped): a walk of a huge store does not grow the mount without bound.
   */
  private register(pe: Entry): void {
    if (pe.registered || !this.r.namesTree || (pe.pinned && pe.ino !== this.usrIno) || !this.byIno.has(pe.ino)) return;
    const n = this.nodeOf(pe);
    const t = n.type === 'dir' && n.tree ? this.o.trees.peek(n.tree) : undefined;
    if (!t || n.type !== 'dir') return;
    // Straight from the tree's encoding: the binding packs the listing and keeps the file
    // nodes (a cold find registers every directory: ~69k files in the bench tree, whose objects
    // here were a third of this thread's walk and half its garbage collection, fuse-needs §40).
    // Only the directories and symlinks are interned here.
    const es = t.tree;
    const inos = new Float64Array(es.length);
    const kids = new Array<Entry | undefined>(es.length);
    for (let k = 0; k < es.length; k++) {
      if (es.isFile(k)) continue;
      const ce = this.internAt(pe, es, k, n.storePath);
      kids[k] = ce;
      inos[k] = ce.ino;
      ce.parent ??= pe;
      if (ce.node.type === 'dir') ce.name ??= es.name(k);
    }
    if (!this.r.namesTree?.(pe.ino, es.bytes, pe.childTimeout, inos)) return;
    for (const ce of kids) if (ce) ce.kept = (ce.kept ?? 0) + 1;
    pe.registered = true;
    pe.kids = kids;
    pe.kidInos = inos;
    pe.kidTree = es;
    this.registered.set(pe.ino, { e: pe, count: es.length });
    this.registeredNames += es.length;
    for (const [ino, r] of this.registered) {
      if (this.registeredNames <= MAX_NAMES || ino === pe.ino) break;
      this.unregister(r.e);
    }
  }

  /**
   * Before the mount reports `mounted`: the root's attributes and its listing (profiles, store,
   * usr: fixed for the mount's life, as their node ids are) go to the binding, which answers the
   * root's GETATTR and LOOKUPs from then on. After a cache drop the kernel forgets the root's
   * children, and every program start through usr sent the root's GETATTR and the LOOKUP of usr
   * here, ~1-2 ms each (fuse-needs §45, §46). The binding's LOOKUPs are counted here as OP.LOOKED
   * (looked); a name not in the root is a miss the kernel keeps (there are no others, ever). The
   * registration is never dropped (the root is marked registered but never enters the map
   * `registered`, whose least recently used listings are evicted); a switch changes what usr's
   * node lists, never the root's entry for it.
   */
  async registerRoot(): Promise<void> {
    const root = this.byIno.get(ROOT_INO)!;
    const st = statOf(root.node);
    this.r.attrs?.(ROOT_INO, st.mode, st.size, DAY);
    if (root.registered || !this.r.names) return;
    const cs = await this.children(root);
    const kids = cs.map((c) => this.intern(root, c));
    const out = Buffer.alloc(cs.reduce((a, c) => a + entryBytes(c.name), 0));
    let at = 0;
    for (let k = 0; k < cs.length; k++) {
      const ce = kids[k]!;
      ce.parent ??= root;
      ce.name ??= cs[k]!.name;
      at = packEntry(out, at, ce.ino, this.nodeOf(ce), cs[k]!.name);
    }
    if (root.registered || !this.r.names(ROOT_INO, out, cs.length, root.childTimeout)) return;
    for (const ce of kids) ce.kept = (ce.kept ?? 0) + 1;
    root.registered = true;
    root.kids = kids;
    root.kidInos = Float64Array.from(kids, (e) => e.ino);
  }

  /**
   * Registers the listings of the directories on the path `parts` below usr, usr's and the last
   * one's included (their trees loaded now, each after the one above it), as preregister does
   * for usr's top levels: a program's lookups there are then the binding's. Stops where the
   * path is not a directory. Returns the number of listings registered.
   */
  async registerBelowUsr(parts: Buffer[]): Promise<number> {
    let e = this.usrIno ? this.byIno.get(this.usrIno) : undefined;
    let n = e ? this.usrNode() : undefined;
    let count = 0;
    for (let d = 0; e && n?.type === 'dir' && n.tree; d++) {
      const t = this.o.trees.peek(n.tree) ?? (await this.o.trees.get(n.tree));
      if (!e.registered) {
        this.register(e);
        if (e.registered) count++;
      }
      const i = d < parts.length ? t.tree.find(parts[d]!) : -1;
      if (i < 0 || !t.tree.isDir(i)) break;
      const ce: Entry = this.internAt(e, t.tree, i, n.storePath);
      ce.parent ??= e;
      ce.name ??= t.tree.name(i);
      e = ce;
      n = ce.node;
    }
    return count;
  }

  /**
   * Registers with the binding the listings of `usr`'s directories whose trees are in the cache
   * already (mount/daemon.ts loads the top levels before the mount is announced): `depth` levels
   * below usr (1: usr/bin, usr/lib, …; 2: also usr/lib/x86_64-linux-gnu, usr/share/locale, …), at
   * most `max` names. A program's first lookups there are then answered by the binding instead
   * of each a round trip to this thread (python's cold start: python3, ld-linux-x86-64.so.2 twice,
   * x86_64-linux-gnu, python3.11, locale, …), and the registrations (interning every entry) are
   * not made on this thread while the program waits for its READs. Nothing is read here. The
   * entries below usr are interned as a lookup there would intern them (same keys), so the
   * kernel's later LOOKUP of usr/bin, answered here, finds the registered node. Returns the
   * number of names registered.
   */
  preregister(depth: number, max: number, deeper?: { name: Buffer; depth: number }): number {
    const ue = this.usrIno ? this.byIno.get(this.usrIno) : undefined;
    const un = this.usrNode();
    const ut = ue && un.type === 'dir' && un.tree ? this.o.trees.peek(un.tree) : undefined;
    if (!ue || !ut || !this.r.namesTree || depth < 1 || un.type !== 'dir') return 0;
    // Half of what may stay registered at most: what a program or walk registers later must not
    // push these out at once.
    max = Math.min(max, MAX_NAMES / 2);
    // usr itself: its lookups (usr/bin, usr/lib, …) were each a round trip to JS.
    this.register(ue);
    let level: Entry[] = [];
    for (let i = 0; i < ut.tree.length; i++) {
      if (!ut.tree.isDir(i)) continue;
      const e = this.internAt(ue, ut.tree, i, un.storePath);
      e.parent ??= ue;
      e.name ??= ut.tree.name(i);
      level.push(e);
    }
    let names = ue.registered ? ut.tree.length : 0;
    // `deeper`: below usr/<name> (lib: the runtimes' module trees), `deeper.depth` levels.
    const top = deeper ? level.find((e) => e.name?.equals(deeper.name)) : undefined;
    const last = top ? Math.max(depth, deeper!.depth) : depth;
    const under = new Set<Entry>(top ? [top] : []);
    for (let d = 0; d < last && level.length > 0; d++) {
      const next: Entry[] = [];
      for (const e of level) {
        if (d >= depth && !under.has(e)) continue;
        const n = e.node;
        const t = n.type === 'dir' && n.tree ? this.o.trees.peek(n.tree) : undefined;
        if (!t || names + t.tree.length > max) continue;
        if (!e.registered) {
          this.register(e);
          if (!e.registered) continue;
          names += t.tree.length;
        }
        if (d + 1 < last) for (const k of e.kids!) if (k?.node.type === 'dir') {
          next.push(k);
          if (under.has(e)) under.add(k);
        }
      }
      level = next;
    }
    return names;
  }

  /**
   * Before the mount reports `mounted`: the records and chunk locations of the files in usr's
   * registered directories (preregister's levels: bin, lib/x86_64-linux-gnu, …) that may be more
   * than one chunk (over PRELOAD_MIN), at most `max`. A program's start maps its executable and
   * libraries from there, and on a cold index each one's first READ waited for its record and
   * then its chunk locations, two dependent database round trips (python3.11's: 5 + 8 ms), before
   * any decode could start. Kept in loadedFiles (fileOf takes them from there). And the
   * one-chunk maps of the small files there (up to PRELOAD_MIN, at most `maxSmall`; their
   * locations in one database call): python's .pyc READs were held in the binding until JS,
   * told of the LOOKUP, had located the file and handed its map (mapLooked; fuse-needs §39).
   * Returns the number of multi-chunk files.
   */
  async preloadFiles(max: number, maxChunks: number, maxSmall = 0): Promise<number> {
    const ids: Id[] = [];
    const inos: number[] = [];
    const seen = new Set<Id>();
    const small: { id: Id; size: number; ino: number }[] = [];
    for (const { e } of this.registered.values()) {
      const t = e.kidTree, kin = e.kidInos;
      if (!t || !kin) continue;
      for (let k = 0; k < t.length; k++) {
        if (!t.isFile(k)) continue;
        const id = t.id(k)!, size = t.size(k), ino = kin[k]!;
        if (size > 0 && size <= PRELOAD_MIN && small.length < maxSmall && !seen.has(id)) {
          seen.add(id);
          small.push({ id, size, ino });
        }
        if (size <= PRELOAD_MIN || seen.has(id) || this.loadedFiles.has(id)) continue;
        seen.add(id);
        ids.push(id);
        inos.push(ino);
        if (ids.length >= max) break;
      }
      if (ids.length >= max) break;
    }
    const fs: { f: OpenFile; ino: number }[] = [];
    const ones: { id: Id; size: number; ino: number }[] = [];
    let chunks = 0;
    for (const [k, f] of (await Promise.all(ids.map((id) => this.loadAhead(id)))).entries()) {
      // One chunk (libraries up to ~256 KiB): its map too, with small-file maps.
      if (f && f.rec.chunks.length === 1 && f.rec.size <= WHOLE_BYTES) ones.push({ id: f.rec.id, size: f.rec.size, ino: inos[k]! });
      if (!f || f.rec.chunks.length < 2) continue;
      if ((chunks += f.rec.chunks.length) > maxChunks) break;
      fs.push({ f, ino: inos[k]! });
    }
    this.o.chunks.locateAll(fs.map((x) => x.f));
    const locs = await Promise.all(fs.map((x) => x.f.locs));
    // Their nodes are known (registered listings): the binding gets their chunk maps now, so the
    // first READ of each (a program mapping its libraries) is answered without JS (mapAhead).
    fs.forEach(({ f, ino }, k) => this.o.chunks.mapAhead(f, ino, locs[k]));
    // The one-chunk files of both kinds: their locations in one database call.
    await this.o.chunks.mapWholeAhead(ones.concat(small));
    return fs.length;
  }

  /**
   * After a switch moved usr's pointer (and its new tree is loaded: switchInvalidations), before
   * the kernel's entries are invalidated: usr's registration, if any, is dropped and made again
   * from the new generation. A LOOKUP the binding answered from the old one came before the drop
   * (under its lock), so the invalidation that follows covers it, as it covers the kernel's
   * cached entries.
   */
  usrSwitched(): void {
    const ue = this.usrIno ? this.byIno.get(this.usrIno) : undefined;
    if (!ue?.registered) return;
    this.unregister(ue);
    this.register(ue);
  }

  /** Drops a directory's registration; its children are let go when OP.UNNAMED comes (after
   * every lookup and listing the binding answered from it has been counted). */
  private unregister(pe: Entry): void {
    const r = this.registered.get(pe.ino);
    if (!r) return;
    this.registered.delete(pe.ino);
    this.registeredNames -= r.count;
    pe.registered = false;
    pe.ahead = 0;
    const kids = pe.kids!;
    pe.kids = undefined;
    pe.kidInos = undefined;
    pe.kidTree = undefined;
    if (this.r.unnames?.(pe.ino)) this.unnamed.push({ ino: pe.ino, kids });
  }

  private unnamedDone(ino: number): void {
    const u = this.unnamed.shift();
    if (!u || u.ino !== ino) {
      this.log(`miq mount: internal: unregistered listing ${ino} out of order`);
      return;
    }
    for (const ce of u.kids) {
      if (!ce?.kept) continue;
      ce.kept--;
      if (ce.nlookup <= 0 && !ce.kept && !ce.pinned && this.byIno.get(ce.ino) === ce) this.drop(ce);
    }
  }

  /** A registered directory was used: it is the last to be unregistered. */
  private touch(pe: Entry): void {
    const r = this.registered.get(pe.ino);
    if (r) {
      this.registered.delete(pe.ino);
      this.registered.set(pe.ino, r);
    }
  }

  /** The binding answered a READDIRPLUS of a registered directory: entries [first, first + n)
   * were counted by the kernel (by = -1: they were not after all). */
  private listed(ino: number, first: number, n: number, by: 1 | -1): void {
    const pe = this.byIno.get(ino);
    // Still registered, or unregistered with OP.UNNAMED still to come: its kids are kept.
    const kids = pe?.kids ?? this.unnamed.find((u) => u.ino === ino)?.kids;
    if (!pe || !kids) return;
    for (let k = first; k < first + n && k < kids.length; k++) {
      // A file's node: the binding counted it.
      const ce = kids[k];
      if (!ce) continue;
      if (by < 0) {
        this.unref(ce, 1);
        continue;
      }
      ce.nlookup++;
      ce.parent = pe;
      ce.index = k;
    }
    if (by > 0) {
      this.touch(pe);
      if (first === 0) this.listings++;
      this.listedAhead(pe);
      if (this.listings <= WALK_LISTINGS && pe.kidTree && pe.kidInos) this.mapListed(this.smallFiles(pe.kidTree, pe.kidInos, first, first + n));
    }
  }

  /** The small files of entries [from, to) of a registered tree, with their node ids (for
   * mapListed). */
  private smallFiles(t: PackedTree, inos: Float64Array, from: number, to: number): { id: Id; size: number; ino: number }[] {
    const files: { id: Id; size: number; ino: number }[] = [];
    for (let k = from; k < to && k < t.length && files.length < MAP_LISTED; k++) {
      if (!t.isFile(k)) continue;
      const size = t.size(k), id = t.id(k)!;
      if (this.toMap(id, size, t.kind(k) === 'exe')) files.push({ id, size, ino: inos[k]! });
    }
    return files;
  }

  /** A listed file whose map goes to the binding (mapListed): small, not empty, not offered yet. */
  private toMap(id: Id, size: number, exe: boolean): boolean {
    return size > 0 && size <= WHOLE_BYTES && !this.files[exe ? 1 : 0].get(id)?.offered;
  }

  /**
   * Entries a READDIRPLUS handed the kernel (the binding's or ours): their small files' maps go to
   * the binding (one database call for their locations): a program that lists a directory opens
   * some of its files by the names it got, with no LOOKUP, and each first READ of those reached
   * JS (python's start: lib-dynload's modules, dist-packages' .pth files; fuse-needs §37). Not in
   * a walk (past WALK_LISTINGS listings: find, du, cp -r list thousands of directories).
   */
  private mapListed(files: readonly { id: Id; size: number; ino: number }[]): void {
    if (this.listings > WALK_LISTINGS || files.length === 0) return;
    void this.o.chunks.mapWholeAhead(files.map(({ id, size, ino }) => ({ id, size, ino })), true).catch(() => {});
  }

  /** Offers a small file that arrived whole to every node of it the kernel knows or may learn
   * from the binding (a registered name). */
  private readonly onWhole = (id: Id, b: Buffer, offered?: number): void => {
    if (offered !== undefined) {
      // Offered by the decode thread (loadDir): its bytes are in the binding, not here.
      const e = this.byIno.get(offered) ?? (offered >= FBASE ? this.cFile(offered) : undefined);
      if (!e || e.node.type !== 'file' || e.node.id !== id) return;
      e.offered = true;
      if (LATENCY) this.log(`offered ino=${e.ino}`);
      if (e.looked === true) this.r.pushOffered?.(e.ino);
      return;
    }
    if (!this.r.offer) return;
    for (const exe of [false, true]) {
      // A file node exists while the kernel knows it or a registered listing holds it.
      const ino = this.r.fileIno(id, exe, 0, 0);
      const e = ino ? this.cFile(ino) : undefined;
      if (!e || e.offered) continue;
      e.offered = true;
      if (LATENCY) this.log(`offered ino=${e.ino}`);
      // Pushed into the page cache only for a node looked up (about to be read), not for one the
      // kernel knows from a listing.
      this.r.offer(e.ino, b, e.looked === true);
    }
  };

  /** A directory below usr looked up by name goes on the recall list, as its names from usr
   * down (its node and tree may differ at the next mount: a switch). */
  private noteDir(e: Entry): void {
    if (!this.o.recall || !this.usrIno) return;
    const names: Buffer[] = [];
    let x = e;
    while (x.ino !== this.usrIno) {
      if (!x.name || !x.parent || x.pinned || names.length >= 32) return;
      names.push(x.name);
      x = x.parent;
    }
    this.o.recall.noteDir(names.reverse());
  }

  /**
   * The directories of the last start's list (fs/recall.ts), each as its names from usr down:
   * their listings (and their parents', on the way) are registered with the binding, as
   * preregister does for usr's top levels: the next start's lookups there are the binding's, and
   * the recalled files in them have node ids, to which recallFiles' bytes are offered as they
   * arrive (their READs are then the binding's from the first).
   */
  async recallDirs(dirs: readonly Buffer[][]): Promise<void> {
    const ue = this.usrIno ? this.byIno.get(this.usrIno) : undefined;
    if (!ue || !this.r.namesTree) return;
    const ready = async (e: Entry): Promise<PackedTree | undefined> => {
      const n = this.nodeOf(e);
      if (n.type !== 'dir' || !n.tree) return undefined;
      const t = this.o.trees.peek(n.tree) ?? (await this.o.trees.get(n.tree).catch(() => undefined));
      if (!t) return undefined;
      this.register(e);
      return e.registered ? t.tree : undefined;
    };
    for (const path of dirs) {
      let e: Entry | undefined = ue;
      for (const name of path) {
        const t: PackedTree | undefined = await ready(e);
        const i = t ? t.find(name) : -1;
        e = i >= 0 ? e.kids?.[i] : undefined;
        if (!e || e.node.type !== 'dir') break;
      }
      if (e && e.node.type === 'dir') await ready(e);
    }
  }

  /**
   * The ELF interpreter (PT_INTERP: the dynamic loader) of the first executables in usr/bin, as
   * the file it names in this view (a leading /usr dropped, /lib64/… as usr/lib64/…: a merged
   * /usr; symlinks followed in registered listings only), or undefined. Every dynamically linked
   * program's exec reads it right after the program's own head (Inodes.preloadInterpreter).
   */
  async interpreter(): Promise<{ path: string; file: Recalled } | undefined> {
    const bin = this.entryAt(['bin']);
    const t = bin?.kidTree;
    let tries = 0;
    for (let k = 0; t && k < t.length; k++) {
      if (t.kind(k) !== 'exe' || t.size(k) < 64) continue;
      if (++tries > INTERP_TRIES) break;
      const f = await this.loadAhead(t.id(k)!);
      if (!f) continue;
      // Its first chunk only (no readahead: the executable itself is not read ahead).
      const c0 = f.rec.chunks[0];
      const head = c0 ? await this.o.chunks.chunk(c0.id, c0.length, f.rec.id).catch(() => Buffer.alloc(0)) : Buffer.alloc(0);
      // Not kept: which program starts first is not this mount's to guess.
      if (c0) this.o.chunks.drop(c0.id);
      const path = elfInterp(head);
      if (path === undefined) continue;
      const file = this.resolve(path);
      return file ? { path, file } : undefined;
    }
    return undefined;
  }

  /** An entry below usr by names, through registered listings (kids) only: a directory's or a
   * symlink's Entry, or a file's node (files have no Entry there). */
  private nodeAtPath(names: readonly string[]): { e?: Entry; node: Node } | undefined {
    let e: Entry | undefined = this.usrIno ? this.byIno.get(this.usrIno) : undefined;
    if (!e) return undefined;
    let node: Node = this.nodeOf(e);
    for (const name of names) {
      if (name === '' || name === '.') continue;
      if (name === '..' || !e) return undefined;
      const pn: Node = this.nodeOf(e);
      const t: PackedTree | undefined = e.kids ? e.kidTree : undefined;
      const i: number = t ? t.find(Buffer.from(name)) : -1;
      if (!t || i < 0) return undefined;
      e = e.kids![i];
      node = e ? e.node : nodeAt(t, i, pn.storePath);
    }
    return { e, node };
  }

  /** A directory's Entry below usr by names (see nodeAtPath). */
  private entryAt(names: readonly string[]): Entry | undefined {
    return this.nodeAtPath(names)?.e;
  }

  /** An absolute path in a merged-/usr system to the file it names below usr, symlinks followed. */
  private resolve(path: string): Recalled | undefined {
    let parts = path.split('/').filter((x) => x !== '' && x !== '.');
    for (let hop = 0; hop < 8; hop++) {
      if (parts[0] === 'usr') parts = parts.slice(1);
      const n = this.nodeAtPath(parts)?.node;
      if (!n) return undefined;
      if (n.type === 'file') return { id: n.id, size: n.size };
      if (n.type !== 'symlink') return undefined;
      const t = n.target.toString();
      const target = t.split('/').filter((x) => x !== '' && x !== '.');
      if (t.startsWith('/')) parts = target;
      else {
        const dir = parts.slice(0, -1);
        for (const x of target) {
          if (x === '..') {
            if (dir.length === 0) return undefined;
            dir.pop();
          } else dir.push(x);
        }
        parts = dir;
      }
    }
    return undefined;
  }

  /** Offers the recalled files now in memory to their nodes the binding knows (recallDirs may
   * have registered them after the bytes arrived). */
  offerRecalled(list: readonly Recalled[]): void {
    for (const f of list) {
      const b = this.o.chunks.cachedWhole(f);
      if (b) this.onWhole(f.id, b);
    }
  }

  /**
   * Starts reading the files of the last start's list (fs/recall.ts), in the order they were
   * first used: small files whole in groups (one location lookup each), larger ones through their
   * records, read whole and joined (ChunkReader.readWhole). Each is offered to the binding as it
   * arrives for the nodes the kernel knows, and at its lookup for those it learns later.
   */
  recallFiles(list: readonly Recalled[]): Promise<unknown> {
    const done: Promise<unknown>[] = [];
    let group: Recalled[] = [];
    // Through its record, read whole and joined: a file over WHOLE_BYTES, or one under it that is
    // more than one chunk (wholeOf: undefined; ld-linux is 3), which was left out before.
    const whole = (f: Recalled): Promise<unknown> => this.loadAhead(f.id)
      .then((of) => (of && of.rec.size === f.size ? this.o.chunks.readWhole(of) : undefined))
      .then((b) => b && this.onWhole(f.id, b), () => {});
    const flush = (): void => {
      if (group.length === 0) return;
      this.o.chunks.loadWhole(group, this.onWhole);
      for (const f of group) done.push(this.o.chunks.wholeOf(f).then((w) => (w ? w : whole(f)), () => undefined));
      group = [];
    };
    for (const f of list) {
      if (f.size <= WHOLE_BYTES) {
        group.push(f);
        continue;
      }
      flush();
      done.push(whole(f));
    }
    flush();
    return Promise.all(done);
  }

  /** Starts a directory's small files whole, once (see fileLooked). */
  private loadDir(pe: Entry): void {
    if (pe.wholeLoaded) return;
    const n = this.nodeOf(pe);
    const t = n.type === 'dir' && n.tree ? this.o.trees.peek(n.tree) : undefined;
    if (!t) return;
    pe.wholeLoaded = true;
    const files: { id: Id; size: number; ino?: number }[] = [];
    let bytes = 0;
    const es = t.tree;
    const direct = this.r.serveOffered !== undefined;
    const kin = pe.kids && pe.kidTree === es ? pe.kidInos : undefined;
    for (let i = 0; i < es.length; i++) {
      if (!es.isFile(i)) continue;
      const size = es.size(i);
      if (size === 0 || size > WHOLE_BYTES) continue;
      if ((bytes += size) > DIR_WHOLE_BYTES) break;
      const id = es.id(i)!;
      // A node onWhole would offer the bytes to (the kernel knows it, or a registered listing
      // holds it: it exists in the binding's table): the decode thread offers them itself
      // (ChunkReader.loadWhole), JS never holds them.
      const exe = es.kind(i) === 'exe';
      const ino = direct ? kin?.[i] || this.r.fileIno(id, exe, size, 0) : 0;
      files.push(ino && !this.files[exe ? 1 : 0].get(id)?.offered ? { id, size, ino } : { id, size });
    }
    this.o.chunks.loadWhole(files, this.onWhole);
  }

  private unref(e: Entry, n: number): void {
    if (e.node.type === 'file') return this.r.fileForget(e.ino, n);
    e.nlookup -= n;
    if (e.nlookup <= 0 && !e.pinned && !e.kept) {
      e.nlookup = 0;
      this.drop(e);
    }
  }

  private drop(e: Entry): void {
    // Its node id is never handed out again: a registration of its listing is dead weight.
    if (e.registered) this.unregister(e);
    this.byIno.delete(e.ino);
    if (e.node.type === 'file') {
      const m = this.files[e.node.exe ? 1 : 0];
      if (m.get(e.node.id) === e) m.delete(e.node.id);
    } else this.byKey.delete(e.key);
  }

  private forget(ino: number, n: number): void {
    const e = this.byIno.get(ino);
    if (e) this.unref(e, n);
    else this.outOfStep(`a FORGET of node ${ino} (${n})`);
  }

  private getattr(slot: number, ino: number): void {
    const e = this.entry(ino);
    const st = statOf(this.nodeOf(e));
    // Every directory's attributes are constant (statOf); the special ones whose listings change
    // (store/, profiles/) keep 1 s, / and usr (whose listing a switch invalidates) a day.
    this.r.replyAttr(slot, ino, st.mode, st.size, e.pinned && ino !== ROOT_INO && ino !== this.usrIno ? 1 : DAY);
  }

  private readlink(slot: number, ino: number): void {
    const n = this.entry(ino).node;
    if (n.type !== 'symlink') throw new FsError('EINVAL');
    this.r.replyReadlink(slot, n.target);
  }

  private fileOf(e: Entry): Promise<OpenFile> {
    if (!e.file) {
      const n = e.node;
      if (n.type !== 'file') return Promise.reject(new FsError(n.type === 'dir' ? 'EISDIR' : 'EINVAL'));
      const ahead = this.loadedFiles.get(n.id);
      if (ahead) {
        e.opened = ahead;
        return (e.file = Promise.resolve(ahead));
      }
      e.file = this.o.reader.getFile(n.id).then((rec) => {
        if (!rec) throw new MiqError('MIQ_MISSING', `file record ${n.id} is missing from the store`, { details: { id: n.id } });
        return (e.opened = openFile(rec));
      });
      e.file.catch(() => (e.file = undefined));
    }
    return e.file;
  }

  /** A file's record, loaded ahead of its lookup (see loadedFiles). */
  private loadAhead(id: Id): Promise<OpenFile | undefined> {
    const hit = this.loadedFiles.get(id);
    if (hit) return Promise.resolve(hit);
    return this.o.reader.getFile(id).then((rec) => {
      if (!rec) return undefined;
      const f = openFile(rec);
      this.loadedFiles.set(id, f);
      if (this.loadedFiles.size > LOADED_FILES) this.loadedFiles.delete(this.loadedFiles.keys().next().value as Id);
      return f;
    }, () => undefined);
  }

  private replySlice(slot: number, b: Buffer, off: number, size: number): void {
    this.r.replyBuf(slot, off === 0 ? b : b.subarray(Math.min(off, b.length)), Math.max(0, Math.min(size, b.length - off)));
  }

  private read(slot: number, ino: number, size: number, off: number): void {
    const e = this.entry(ino);
    const n = e.node;
    if (n.type === 'file') this.o.recall?.note(n.id, n.size);
    if (n.type === 'file' && n.size > WHOLE_BYTES && !e.offered && this.r.offer) {
      // Read whole ahead (the recall list) after its lookup: the binding answers the rest.
      const b = this.o.chunks.cachedWhole(n);
      if (b) {
        e.offered = true;
        this.r.offer(ino, b, true);
        return this.replySlice(slot, b, off, size);
      }
    }
    if (n.type === 'file' && n.size <= WHOLE_BYTES && !e.opened && !((this.loadedFiles.get(n.id)?.rec.chunks.length ?? 0) > 1)) {
      // Small files are read whole, without their record when they are one chunk (wholeOf).
      e.offered = true;
      const b = this.o.chunks.cachedWhole(n);
      if (b) return this.replySlice(slot, b, off, size);
      this.o.chunks.wholeOf(n)
        // No bytes: not one chunk, or offered to the binding by a decode thread (loadDir) while
        // this READ was on its way here: answered from there when it has them.
        .then((w) => (w ? this.replySlice(slot, w, off, size) : this.r.serveOffered?.(slot, ino, size, off) || this.readRecord(slot, e, ino, size, off)))
        .catch((err) => this.fail(slot, 'read', ino, err));
      return;
    }
    this.readRecord(slot, e, ino, size, off);
  }

  /** A READ the binding answered from its stream table: the readahead moves on. */
  private streamed(ino: number, size: number, off: number): void {
    const f = this.byIno.get(ino)?.opened;
    if (f) this.o.chunks.progress(f, off, size);
  }

  private readRecord(slot: number, e: Entry, ino: number, size: number, off: number): void {
    if (!e.opened && !e.file && e.node.type === 'file' && this.loadedFiles.has(e.node.id)) void this.fileOf(e);
    const f0 = e.opened;
    if (f0) {
      f0.ino = ino;
      const parts = this.o.chunks.cachedParts(f0, off, size);
      if (parts) {
        if (off === 0) this.prefetchSiblings(e);
        this.replyParts(slot, parts);
        return;
      }
    }
    if (off === 0) this.prefetchSiblings(e);
    // A file of several chunks whose map the binding holds (or is handed now): answered by the
    // binding's read threads (fs/reader.ts mapRead), as every later READ of it.
    if (f0 && this.o.chunks.mapRead(f0, slot, ino, off, size, () => this.readOpened(slot, f0, ino, size, off))) return;
    // A large file read in order: answered by the binding from the chunks the decode threads
    // offer it (fs/reader.ts streamRead), else here.
    if (f0 && this.o.chunks.streamRead(f0, slot, ino, off, size)) return;
    this.fileOf(e)
      .then((f) => {
        if (f !== f0 && this.o.chunks.mapRead(f, slot, ino, off, size, () => this.readOpened(slot, f, ino, size, off))) return;
        this.readOpened(slot, f, ino, size, off, f === f0);
      })
      .catch((err) => this.fail(slot, 'read', ino, err));
  }

  /** A READ of an opened file answered the JS way: from the stream table, or here. */
  private readOpened(slot: number, f: OpenFile, ino: number, size: number, off: number, streamTried = false): void {
    if (!streamTried && this.o.chunks.streamRead(f, slot, ino, off, size)) return;
    f.ino = ino;
    this.o.chunks
      .readParts(f, off, size)
      .then((parts) => this.replyParts(slot, parts))
      .catch((err) => this.fail(slot, 'read', ino, err));
  }

  private replyParts(slot: number, parts: Buffer[]): void {
    if (parts.length === 1) this.r.replyBuf(slot, parts[0]!, parts[0]!.length);
    else if (this.r.replyBufs && parts.length <= 256) this.r.replyBufs(slot, parts);
    else {
      const b = Buffer.concat(parts);
      this.r.replyBuf(slot, b, b.length);
    }
  }

  /**
   * On the first read of a file, start the next few files of the directory it was found in:
   * programs that read a tree read a directory's files one after another, and each cold read
   * would otherwise wait for a record lookup and a decode in turn.
   */
  private prefetchSiblings(e: Entry): void {
    const p = e.parent;
    const listing = p && this.listingOf(p);
    if (!p || !listing || e.node.type !== 'file') return;
    // Not for the first file read: one large file read alone (dd of a library in a directory of
    // thousands) had its own record and chunk locations wait behind its siblings' on a cold index
    // and its chunks' decoding behind theirs; a reader of the whole directory comes back.
    // Nor while a program start-up reads a few libraries of a directory of thousands: python's
    // second library read in lib/x86_64-linux-gnu (1150 entries) loaded the records and
    // locations of its ~300 large files, and libm's first READ waited 135 ms behind them on the
    // libuv pool. A reader of the whole directory reads one in fifty of it first.
    if (p.lastRead !== e.node.id) {
      p.lastRead = e.node.id;
      p.reads = (p.reads ?? 0) + 1;
    }
    if (p.reads! < Math.max(SIBLING_READS, listing.length / 50)) return;
    if (!p.loaded) {
      // The first read in a directory: its files' records and chunk locations in two database
      // round trips instead of two per file (a reader of the whole tree then waits only for
      // decodes, in whatever order it reads).
      p.loaded = true;
      const recs: Promise<OpenFile | undefined>[] = [];
      for (const c of listing.slice(0, 4096)) {
        if (c.node.type !== 'file' || c.node.size <= WHOLE_BYTES) continue;
        const s = this.known(p.ino, c);
        recs.push(s ? this.fileOf(s).catch(() => undefined) : this.loadAhead(c.node.id));
      }
      void Promise.all(recs).then((fs) => this.o.chunks.locateAll(fs.filter((f): f is OpenFile => f !== undefined)));
    }
    let i = e.index;
    const at = i === undefined ? undefined : listing[i]?.node;
    if (i === undefined || at?.type !== 'file' || e.node.type !== 'file' || at.id !== e.node.id) {
      i = listing.findIndex((c) => c.node.type === 'file' && e.node.type === 'file' && c.node.id === e.node.id);
      if (i < 0) return;
    }
    let n = 0;
    for (let k = i + 1; k < listing.length && n < PREFETCH; k++) {
      const c = listing[k]!;
      if (c.node.type !== 'file' || c.node.size <= WHOLE_BYTES) continue;
      n++;
      const s = this.known(p.ino, c);
      if (s?.opened) this.o.chunks.prefetch(s.opened);
      else {
        void this.loadAhead(c.node.id).then((f) => f && this.o.chunks.prefetch(f));
      }
    }
  }

  private readdir(slot: number, ino: number, size: number, off: number, plus: boolean): void {
    const e = this.entry(ino);
    const treeBefore = ino === this.usrIno ? this.o.usr?.()?.tree : undefined;
    // Special directories change (new store paths, generations): read them afresh from the
    // start; a listing continued at an offset uses the same one.
    if (e.pinned && off === 0 && e.ino !== this.usrIno) e.listing = undefined;
    const list = e.pinned && e.ino !== this.usrIno && e.listing ? Promise.resolve(e.listing) : this.children(e);
    list.then(async (cs) => {
      if (ino === this.usrIno && this.o.usr?.()?.tree !== treeBefore) cs = await this.children(e);
      if (e.pinned && e.ino !== this.usrIno) e.listing = cs;
      // Registered before the first part is answered (its tree is at hand): the kernel asks for
      // the rest (at least once more: it ends a listing only on an empty answer) at once, and
      // that is answered by the binding, not another round trip to this thread.
      if (plus && off === 0) this.register(e);
      this.sendDir(slot, e, cs, size, off, plus);
      // The rest of this listing (the kernel asks again until an empty answer) and the listings
      // below it are answered by the binding: a cold find waited on two round trips to this
      // thread per directory.
      if (!plus) return;
      if (off === 0) this.listings++;
      this.listedAhead(e);
    }).catch((err) => this.fail(slot, 'readdir', ino, err));
  }

  /** A directory was listed (here or by the binding): what is below it is registered ahead. */
  private listedAhead(e: Entry): void {
    if (this.listings > WALK_LISTINGS) this.walkAll(e);
    if (e.ino === this.usrIno) {
      const n = this.usrNode();
      const t = n.type === 'dir' && n.tree ? this.o.trees.peek(n.tree) : undefined;
      if (t && n.type === 'dir') this.registerSubdirs(e, t.tree, n.storePath, this.aheadDepth());
    } else this.dirLooked(e, this.aheadDepth());
  }

  private sendDir(slot: number, e: Entry, cs: Child[], size: number, off: number, plus: boolean): void {
    // One scratch buffer, no per-entry objects: a cold `find` of 64k entries spent a third of
    // this thread in the garbage collector with a Buffer and a stat object per entry.
    const out = (this.scratch = this.scratch.length >= size ? this.scratch : Buffer.allocUnsafe(size));
    // Directories and symlinks (counted here), or files' node ids (the binding's, counted there).
    const took: (Entry | number)[] = [];
    const small: { id: Id; size: number; ino: number; k: number }[] = [];
    let used = 0, at = 0, count = 0;
    for (let k = off; k < cs.length; k++) {
      const c = cs[k]!;
      const len = entryBytes(c.name, plus);
      if (used + len > size) break;
      used += len;
      const n = c.node;
      let ino: number;
      if (plus && n.type === 'file') {
        // No object for it: the binding counts it.
        ino = this.r.fileIno(n.id, n.exe, n.size, 1);
        if (!ino) break;
        took.push(ino);
        if (small.length < MAP_LISTED && this.toMap(n.id, n.size, n.exe)) small.push({ id: n.id, size: n.size, ino, k: took.length });
      } else {
        const ce = plus ? this.intern(e, c) : this.known(e.ino, c);
        if (plus) {
          ce!.nlookup++;
          ce!.parent = e;
          ce!.index = k;
          took.push(ce!);
        }
        ino = ce?.ino ?? 0xffffffff;
      }
      at = packEntry(out, at, ino, ino === this.usrIno ? this.usrNode() : c.node, c.name);
      count++;
    }
    const sent = this.r.replyDir(slot, plus, size, out.subarray(0, at), count, off, e.childTimeout, e.childTimeout);
    // Entries the kernel did not get were not counted by it.
    const got = typeof sent === 'number' && sent >= 0 ? sent : 0;
    for (let j = got; j < took.length; j++) {
      const x = took[j]!;
      if (typeof x === 'number') this.r.fileForget(x, 1);
      else this.unref(x, 1);
    }
    if (plus) this.mapListed(small.filter((f) => f.k <= got));
  }


  private xattrs(n: Node): Map<string, Buffer> {
    const m = new Map<string, Buffer>();
    const id = n.type === 'file' ? n.id : n.type === 'dir' ? n.tree : undefined;
    if (id) m.set(XATTR_ID, Buffer.from(id));
    if (n.storePath) m.set(XATTR_PATH, Buffer.from(n.storePath));
    return m;
  }

  private getxattr(slot: number, ino: number, name: string, size: number): void {
    const v = this.xattrs(this.nodeOf(this.entry(ino))).get(name);
    if (!v) return void this.r.replyErr(slot, ERRNO.ENODATA);
    if (size === 0) return void this.r.replyXattr(slot, v.length);
    if (v.length > size) return void this.r.replyErr(slot, ERRNO.ERANGE);
    this.r.replyBuf(slot, v, v.length);
  }

  private listxattr(slot: number, ino: number, size: number): void {
    const names = [...this.xattrs(this.nodeOf(this.entry(ino))).keys()];
    const v = Buffer.from(names.map((n) => `${n}\0`).join(''));
    if (size === 0) return void this.r.replyXattr(slot, v.length);
    if (v.length > size) return void this.r.replyErr(slot, ERRNO.ERANGE);
    this.r.replyBuf(slot, v, v.length);
  }

  /**
   * What a switch of `usr` from tree `from` to tree `to` must drop from the kernel's caches:
   * the names of `usr` whose entry differs (an added, removed or changed name), then the
   * listing of `usr` itself (the node id list as [ino, name | null]). Everything below those
   * names is a different node in the new generation, so it needs nothing.
   */
  async switchInvalidations(from: Id | undefined, to: Id | undefined): Promise<{ inos: number[]; names: (Buffer | null)[] }> {
    const inos: number[] = [], names: (Buffer | null)[] = [];
    if (!this.usrIno || from === to) return { inos, names };
    const a = from ? (await this.o.trees.get(from)).tree.entries : [];
    const b = to ? (await this.o.trees.get(to)).tree.entries : [];
    const sig = (x: (typeof a)[number]): string => `${x.kind}:${x.id ?? x.target?.toString('hex')}`;
    const old = new Map(a.map((x) => [x.name.toString('latin1'), sig(x)]));
    const seen = new Set<string>();
    for (const x of b) {
      const k = x.name.toString('latin1');
      seen.add(k);
      if (old.get(k) !== sig(x)) {
        inos.push(this.usrIno);
        names.push(x.name);
      }
    }
    for (const x of a) {
      if (!seen.has(x.name.toString('latin1'))) {
        inos.push(this.usrIno);
        names.push(x.name);
      }
    }
    inos.push(this.usrIno);
    names.push(null);
    return { inos, names };
  }

  /** The special directories whose listings change as the store changes. */
  mutableDirs(): number[] {
    return [...this.byIno.values()].filter((e) => e.pinned && e.ino !== this.usrIno).map((e) => e.ino);
  }

  /** The store paths the kernel may hold entries for that the store no longer has (after gc):
   * [ino of /store, name] pairs to invalidate. */
  async goneStorePaths(exists: (name: string) => Promise<boolean>): Promise<{ inos: number[]; names: Buffer[] }> {
    const store = this.byKey.get('p/store');
    const inos: number[] = [], names: Buffer[] = [];
    if (!store) return { inos, names };
    for (const e of this.byIno.values()) {
      if (e.parent !== store || !e.name) continue;
      if (!(await exists(e.name.toString('utf8')).catch(() => true))) {
        inos.push(store.ino);
        names.push(e.name);
      }
    }
    return { inos, names };
  }

  get size(): number {
    return this.byIno.size;
  }
}
