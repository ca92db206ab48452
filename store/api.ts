/**
 * The narrow interfaces the rest of miq codes against. `store` implements them; `fs`, `mount`,
 * `builder` and the CLI never name a concrete class.
 */
import type { Id } from './ids.js';
import type { FileRecord, StorePathRecord, Tree, TreeEntry } from './objects.js';

/** Read-only chunk bodies. `get` resolves to undefined when absent and throws MIQ_CORRUPT when
 * the bytes do not hash to `id`: a caller never sees unverified bytes. */
export interface ChunkSource {
  get(id: Id): Promise<Buffer | undefined>;
  has(id: Id): Promise<boolean>;
}

export interface WritableChunkSource extends ChunkSource {
  put(id: Id, plain: Buffer): Promise<void>;
}

/** Read access to objects and store paths. Every "missing" is `undefined`, faults throw. */
export interface ObjectReader {
  getFile(id: Id): Promise<FileRecord | undefined>;
  getTree(id: Id): Promise<Tree | undefined>;
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
  skipped: { path: string; why: string }[];
}

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
}
