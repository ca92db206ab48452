/**
 * The narrow interfaces the rest of miq codes against. `store` implements them; `fs`, `mount`,
 * `builder` and the CLI never name a concrete class.
 */
import { MiqError } from './errors.js';
import type { Id } from './ids.js';
import type { FileRecord, PackedTree, StorePathRecord, Tree, TreeEntry } from './objects.js';

/** Read-only chunk bodies. `get` resolves to undefined when absent and throws MIQ_CORRUPT when
 * the bytes do not hash to `id`: a caller never sees unverified bytes. */
export interface ChunkSource {
  get(id: Id): Promise<Buffer | undefined>;
  has(id: Id): Promise<boolean>;
}

/** Where a chunk's stored bytes lie in a local store's packs. */
export interface ChunkLocation {
  pack: number;
  /** Offset of the body (after the entry header). */
  offset: number;
  stored: number;
  plain: number;
  flags: number;
  /** For a delta chunk (flags 2): the chunks whose plain bytes, concatenated, are its zstd
   * dictionary, and its chain depth (1 + the deepest ref). */
  refs?: string[];
  depth?: number;
  /** For a chunk inside a shared frame (flags 3): the stored body is one zstd frame holding
   * several small chunks; this chunk is `plain` bytes at `off` of the frame's `size` plain bytes. */
  frame?: { off: number; size: number };
}

/** Raw access for readers that decode chunks off their serving thread (the mount's reader): where
 * chunks lie, many in one index call, and the file holding a pack. A local store's `chunks` has
 * it; the caller verifies every chunk it decodes itself. */
export interface ChunkLocator {
  locate(ids: readonly Id[]): Promise<(ChunkLocation | undefined)[]>;
  packPath(pack: number): string;
  /** Verified plain bytes of a chunk at a known location (no index lookup). */
  readAt(id: Id, loc: ChunkLocation): Promise<Buffer>;
}

/** One write, applied in the crash-safe order: chunk bodies are durable before any index entry
 * names them, and chunks, file records and trees become visible together. Every chunk is
 * re-hashed and every tree re-encoded against its id first; a mismatch is MIQ_CORRUPT and
 * nothing of the batch is written. Store paths go in separately (`putStorePath`), after the
 * batches holding everything they name. */
export interface ObjectBatch {
  chunks?: readonly { id: Id; plain: Buffer }[];
  files?: readonly FileRecord[];
  trees?: readonly { id: Id; entries: readonly TreeEntry[] }[];
  /** Write these chunks even where the index already names them, and point the index at the
   * new copy (`miq repair`: the indexed copy failed its hash). The old body stays in its pack,
   * unnamed, until gc rewrites the pack. */
  replace?: boolean;
}

/** The write capability (desync's WriteStore): batched, crash-safe object writes. */
export interface WriteStore {
  writeObjects(batch: ObjectBatch): Promise<void>;
}

/** What the index knows of one chunk without reading it. */
export interface ChunkInfo {
  id: Id;
  /** Stored (compressed) bytes. */
  stored: number;
  plain: number;
  /** Chunks this one is delta-compressed against: they live as long as it does. */
  bases?: readonly Id[];
}

/** What stays when a store is pruned; everything else goes. */
export interface LiveSet {
  paths: ReadonlySet<string>;
  trees: ReadonlySet<string>;
  files: ReadonlySet<string>;
  /** Including the delta bases of live chunks. */
  chunks: ReadonlySet<string>;
  roots: number;
}

export interface PruneOptions {
  dryRun?: boolean;
  onProgress?: (phase: string, done: number) => void;
}

export interface PruneReport {
  dryRun: boolean;
  roots: number;
  livePaths: number;
  deadPaths: string[];
  deadTrees: number;
  deadFiles: number;
  deadChunks: number;
  /** Stored bytes of the dead chunks (reclaimed on disk only when their pack is rewritten). */
  deadChunkBytes: number;
  /** Bytes freed on disk (dead chunk bodies removed by repack or dropped packs) — an estimate in --dry-run. */
  freedBytes: number;
  repackedPacks: number;
  removedPacks: number;
  seconds: number;
}

/** Pruning and iterating (desync's PruneStore): what gc, verify and stats need. */
export interface PruneStore extends ObjectReader, MetaStore {
  /** Every chunk in the index, in no particular order. */
  listChunks(): AsyncIterable<ChunkInfo>;
  /** Verified plain bytes read from storage, past every cache; undefined when not indexed,
   * MIQ_CORRUPT/MIQ_MISSING (a delta base) when damaged. */
  checkChunk(id: Id): Promise<Buffer | undefined>;
  /** Under the store's write lock (no ingest interleaves): `mark` says what stays, the rest is
   * deleted in an order that keeps a crash harmless, and space is reclaimed. */
  prune(mark: () => Promise<LiveSet>, opts?: PruneOptions): Promise<PruneReport>;
  /** Bytes on disk: chunk storage and index. */
  diskUsage(): Promise<{ packs: number; db: number }>;
}

/** Read access to objects and store paths. Every "missing" is `undefined`, faults throw. */
export interface ObjectReader {
  getFile(id: Id): Promise<FileRecord | undefined>;
  getTree(id: Id): Promise<Tree | undefined>;
  /** Optional: getTree in packed form (the mount keeps thousands of trees). */
  getTreePacked?(id: Id): Promise<PackedTree | undefined>;
  /** Optional: several packed trees in one index read (same answers as getTreePacked, in order). */
  getTreesPacked?(ids: readonly Id[]): Promise<(PackedTree | undefined)[]>;
  getStorePath(path: string): Promise<StorePathRecord | undefined>;
  listStorePaths(): Promise<StorePathRecord[]>;
  /** Bytes [offset, offset+length) of a file, verified chunk by chunk; short at EOF. */
  readFile(file: FileRecord, offset: number, length: number): Promise<Buffer>;
}

export interface IngestOptions {
  name?: string;
  lenient?: boolean;
  /** Pin the result as a GC root (default true). */
  pin?: boolean;
  /** Progress callback (the CLI draws it on a TTY). */
  onProgress?: (p: IngestProgress) => void;
  /** Re-use results for files whose (dev, ino, size, mtime, ctime) did not change (--watch). */
  statCache?: Map<string, unknown>;
  /** Recorded in the store path record; key overrides the content-addressed key (builds). */
  made?: StorePathRecord['made'];
  key?: Id;
}

export interface IngestProgress {
  /** scan: the walk is still finding files (totals grow); store: totals are final, files are
   * being chunked and written; commit: everything is read, the index, trees and store path are
   * being written. */
  phase?: 'scan' | 'store' | 'commit';
  files: number;
  bytes: number;
  totalFiles?: number;
  totalBytes?: number;
  newBytes: number;
}

export interface IngestResult {
  path: string;
  tree: Id;
  key: Id;
  files: number;
  /** Files actually read (the rest were unchanged per the stat cache). */
  scanned: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  newBytes: number;
  newChunks: number;
  chunks: number;
  seconds: number;
  references: string[];
  droppedModeBits: number;
  /** Files and directories in DIR other users could not read (the store is readable by all);
   * the first 100 are named. */
  notWorldReadable: number;
  notWorldReadablePaths: string[];
  skipped: { path: string; why: string }[];
}

/** Meta keys under this prefix are pins (GC roots): `roots/<name>` → a store path. */
export const ROOT_PREFIX = 'roots/';

/** Small mutable records (profiles, roots, pointers) kept in the store's database. */
export interface MetaStore {
  getMeta(key: string): Promise<Buffer | undefined>;
  /** Atomic batch of puts (value) and deletes (undefined). */
  batchMeta(ops: { key: string; value: Buffer | undefined }[]): Promise<void>;
  listMeta(prefix: string): Promise<{ key: string; value: Buffer }[]>;
}

export interface Store extends ObjectReader, MetaStore {
  readonly dir: string;
  readonly chunks: ChunkSource;
  open(): Promise<void>;
  close(): Promise<void>;
  ingest(dir: string, opts?: IngestOptions): Promise<IngestResult>;
  /** Writes a tree (its children must already exist) and returns its id. */
  putTree(entries: readonly TreeEntry[]): Promise<Id>;
  /** Writes a file from memory (build logs, small generated files). */
  putBytes(bytes: Buffer): Promise<FileRecord>;
  putStorePath(rec: StorePathRecord): Promise<void>;
  pin(path: string, root?: string): Promise<void>;
  unpin(rootOrPath: string): Promise<boolean>;
  listRoots(): Promise<{ root: string; path: string }[]>;
  /** Whole-store maintenance (gc, verify, stats) when it can run in this process: the local
   * store itself, a layered store's local part; absent for a store served over a mount's
   * control socket (those operations run in the serving process). */
  readonly maintenance?: PruneStore;
  /** Batched object writes (fetch, substitution), when this process can write the store. */
  readonly writer?: WriteStore;
}

/** The maintenance capability of `store`, or a MiqError naming what to do instead. */
export function maintenanceOf(store: Store, what: string): PruneStore {
  if (store.maintenance) return store.maintenance;
  throw new MiqError('MIQ_BAD_INPUT', `${what} is not supported on the store at ${store.dir} from this process; run it where the store is opened directly (or through its mount's control socket)`);
}

/** The write capability of `store`, or a MiqError naming what to do instead. */
export function writerOf(store: Store, what: string): WriteStore {
  if (store.writer) return store.writer;
  throw new MiqError('MIQ_STORE_LOCKED', `${what} is not supported yet while the store at ${store.dir} is mounted; unmount it (\`miq umount\`) and run it again`);
}
