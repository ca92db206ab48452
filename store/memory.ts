/**
 * `memory:` — a whole store in memory: the reference implementation of the Store family (read,
 * write, prune) for tests and tools that must not touch a disk. Chunks are kept as plain bytes
 * and re-hashed on every read, like every other store: a test may damage them and must see
 * MIQ_CORRUPT, never the damaged bytes.
 */
import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { ChunkInfo, ChunkSource, IngestOptions, IngestResult, LiveSet, ObjectBatch, PruneOptions, PruneReport, PruneStore, Store, WriteStore } from './api.js';
import { ROOT_PREFIX } from './api.js';
import { Chunker, DEFAULT_CHUNK_PARAMS, type ChunkParams } from './chunker.js';
import { MiqError, ioError } from './errors.js';
import { type Id, idOf } from './ids.js';
import { buildTrees } from './ingest-trees.js';
import { Mutex } from './lru.js';
import { decodeTree, encodeTree, parseStorePath, storePathName, treeId, type FileRecord, type StorePathRecord, type Tree, type TreeEntry } from './objects.js';
import { walk } from './walk.js';

export class MemoryStore implements Store, WriteStore, PruneStore {
  readonly dir = 'memory:';
  readonly maintenance: PruneStore = this;
  readonly writer: WriteStore = this;
  readonly chunks: ChunkSource;
  /** Exposed so tests can damage what the store holds (and see it detected). */
  readonly chunkMap = new Map<Id, Buffer>();
  readonly fileMap = new Map<Id, FileRecord>();
  readonly treeMap = new Map<Id, Buffer>();
  readonly pathMap = new Map<string, StorePathRecord>();
  private readonly meta = new Map<string, Buffer>();
  private readonly lock = new Mutex();
  private closed = false;

  constructor(private readonly params: ChunkParams = DEFAULT_CHUNK_PARAMS) {
    this.chunks = {
      get: async (id) => this.getChunk(id),
      has: async (id) => this.live().chunkMap.has(id),
    };
  }

  private live(): this {
    if (this.closed) throw new MiqError('MIQ_CLOSED', 'the memory store is closed');
    return this;
  }

  private getChunk(id: Id): Buffer | undefined {
    const b = this.live().chunkMap.get(id);
    if (b === undefined) return undefined;
    if (idOf(b) !== id) throw new MiqError('MIQ_CORRUPT', `chunk ${id} is corrupt: its bytes do not match its hash`, { details: { id, kind: 'chunk' } });
    return Buffer.from(b);
  }

  async open(): Promise<void> {}

  async close(): Promise<void> {
    await this.lock.run(async () => { this.closed = true; });
  }

  // --- reads ------------------------------------------------------------------------------

  async getFile(id: Id): Promise<FileRecord | undefined> {
    return this.live().fileMap.get(id);
  }

  async getTree(id: Id): Promise<Tree | undefined> {
    const b = this.live().treeMap.get(id);
    return b === undefined ? undefined : decodeTree(b, id);
  }

  async getStorePath(path: string): Promise<StorePathRecord | undefined> {
    return this.live().pathMap.get(path);
  }

  async listStorePaths(): Promise<StorePathRecord[]> {
    return [...this.live().pathMap.values()];
  }

  async readFile(file: FileRecord, offset: number, length: number): Promise<Buffer> {
    const { readRange } = await import('./range.js');
    return readRange(file, offset, length, (id) => this.chunks.get(id));
  }

  // --- writes -----------------------------------------------------------------------------

  async writeObjects(batch: ObjectBatch): Promise<void> {
    this.live();
    for (const c of batch.chunks ?? []) if (idOf(c.plain) !== c.id) throw new MiqError('MIQ_CORRUPT', `chunk ${c.id} does not hash to its id`, { details: { id: c.id, kind: 'chunk' } });
    const trees = (batch.trees ?? []).map((t) => {
      const b = encodeTree(t.entries);
      if (idOf(b) !== t.id) throw new MiqError('MIQ_CORRUPT', `tree ${t.id} does not re-encode to its id`, { details: { id: t.id, kind: 'tree' } });
      return { id: t.id, b };
    });
    await this.lock.run(async () => {
      for (const c of batch.chunks ?? []) if (batch.replace || !this.chunkMap.has(c.id)) this.chunkMap.set(c.id, Buffer.from(c.plain));
      for (const f of batch.files ?? []) this.fileMap.set(f.id, f);
      for (const t of trees) this.treeMap.set(t.id, t.b);
    });
  }

  async putTree(entries: readonly TreeEntry[]): Promise<Id> {
    const { id, bytes } = treeId(entries);
    for (const e of entries) {
      if (e.kind === 'dir' && !this.live().treeMap.has(e.id!)) throw new MiqError('MIQ_MISSING', `tree ${e.id} (entry ${e.name.toString()}) is not in the store`);
      if ((e.kind === 'file' || e.kind === 'exe') && !this.fileMap.has(e.id!)) throw new MiqError('MIQ_MISSING', `file ${e.id} (entry ${e.name.toString()}) is not in the store`);
    }
    this.treeMap.set(id, bytes);
    return id;
  }

  async putBytes(bytes: Buffer): Promise<FileRecord> {
    const rec = this.chunkFile(bytes);
    await this.writeObjects({ chunks: rec.pieces, files: [rec.file] });
    return rec.file;
  }

  private chunkFile(bytes: Buffer): { file: FileRecord; pieces: { id: Id; plain: Buffer }[] } {
    const id = idOf(bytes);
    const pieces: { id: Id; plain: Buffer }[] = [];
    let s = 0;
    for (const n of new Chunker(this.params).cutAll(bytes)) {
      const plain = bytes.subarray(s, s + n);
      pieces.push({ id: n === bytes.length ? id : idOf(plain), plain });
      s += n;
    }
    return { file: { id, size: bytes.length, chunks: pieces.map((p) => ({ id: p.id, length: p.plain.length })) }, pieces };
  }

  async putStorePath(rec: StorePathRecord): Promise<void> {
    parseStorePath(rec.path);
    if (!this.live().treeMap.has(rec.tree)) throw new MiqError('MIQ_MISSING', `store path ${rec.path}: its tree ${rec.tree} is not in the store`);
    for (const r of rec.references) if (r !== rec.path && !this.pathMap.has(r)) throw new MiqError('MIQ_MISSING', `store path ${rec.path} refers to ${r}, which is not in the store`);
    this.pathMap.set(rec.path, rec);
  }

  /** Walks `dir` like the local store's ingest (same trees, ids and store path), without its
   * delta compression, stat cache or reference scan. */
  async ingest(dirArg: string, opts: IngestOptions = {}): Promise<IngestResult> {
    const t0 = performance.now();
    const dir = resolve(dirArg);
    const name = opts.name ?? (basename(dir).replace(/[^A-Za-z0-9+._-]/g, '_').replace(/^\.+/, '') || 'tree');
    storePathName(name, '0'.repeat(64) as Id);
    const w = await walk(dir, opts.lenient ?? false);
    let newBytes = 0, newChunks = 0, chunks = 0, done = 0;
    for (const f of w.files) {
      let bytes: Buffer;
      try {
        bytes = await readFile(f.path);
      } catch (e) {
        throw ioError(e, 'cannot read', f.path.toString());
      }
      const { file, pieces } = this.chunkFile(bytes);
      for (const p of pieces) if (!this.chunkMap.has(p.id)) { newChunks++; newBytes += p.plain.length; }
      chunks += pieces.length;
      await this.writeObjects({ chunks: pieces, files: [file] });
      f.id = file.id;
      done += bytes.length;
      opts.onProgress?.({ files: w.files.indexOf(f) + 1, bytes: done, totalFiles: w.files.length, totalBytes: w.bytes, newBytes });
    }
    const trees = buildTrees(w.root);
    for (const [id, b] of trees) this.treeMap.set(id, b);
    const tree = w.root.id as Id;
    const key = opts.key ?? tree;
    const path = storePathName(name, key);
    const record: StorePathRecord = { path, name, key, tree, references: [], size: w.bytes, files: w.files.length, made: opts.made ?? { kind: 'ingest' }, signatures: [] };
    if (!this.pathMap.has(path)) this.pathMap.set(path, record);
    if (opts.pin ?? true) this.meta.set(ROOT_PREFIX + path, Buffer.from(path));
    return {
      path, tree, key, files: w.files.length, scanned: w.files.length, dirs: w.dirs, symlinks: w.links, bytes: w.bytes, newBytes, newChunks, chunks,
      seconds: (performance.now() - t0) / 1000, references: [], droppedModeBits: w.droppedModeBits, notWorldReadable: w.notWorldReadable, notWorldReadablePaths: w.notWorldReadablePaths, skipped: w.skipped,
    };
  }

  // --- meta and roots ---------------------------------------------------------------------

  async getMeta(key: string): Promise<Buffer | undefined> {
    return this.live().meta.get(key);
  }

  async batchMeta(ops: { key: string; value: Buffer | undefined }[]): Promise<void> {
    this.live();
    for (const o of ops) {
      if (o.value === undefined) this.meta.delete(o.key);
      else this.meta.set(o.key, Buffer.from(o.value));
    }
  }

  async listMeta(prefix: string): Promise<{ key: string; value: Buffer }[]> {
    return [...this.live().meta].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, value]) => ({ key, value }));
  }

  async pin(path: string, root?: string): Promise<void> {
    if (!this.live().pathMap.has(path)) throw new MiqError('MIQ_NOT_FOUND', `no store path ${path}; \`miq paths\` lists them`);
    this.meta.set(ROOT_PREFIX + (root ?? path), Buffer.from(path));
  }

  async unpin(rootOrPath: string): Promise<boolean> {
    const hit = (await this.listRoots()).filter((r) => r.root === rootOrPath || r.path === rootOrPath);
    for (const r of hit) this.meta.delete(ROOT_PREFIX + r.root);
    return hit.length > 0;
  }

  async listRoots(): Promise<{ root: string; path: string }[]> {
    return (await this.listMeta(ROOT_PREFIX)).map(({ key, value }) => ({ root: key.slice(ROOT_PREFIX.length), path: value.toString() }));
  }

  // --- prune ------------------------------------------------------------------------------

  async *listChunks(): AsyncIterable<ChunkInfo> {
    for (const [id, b] of [...this.live().chunkMap]) yield { id, stored: b.length, plain: b.length };
  }

  async checkChunk(id: Id): Promise<Buffer | undefined> {
    return this.getChunk(id);
  }

  async prune(mark: () => Promise<LiveSet>, opts: PruneOptions = {}): Promise<PruneReport> {
    return this.lock.run(async () => {
      const t0 = performance.now();
      const live = await mark();
      const dead = <K>(m: Map<K, unknown>, keep: ReadonlySet<string>): K[] => [...m.keys()].filter((k) => !keep.has(k as string));
      const paths = dead(this.pathMap, live.paths), trees = dead(this.treeMap, live.trees), files = dead(this.fileMap, live.files), chunks = dead(this.chunkMap, live.chunks);
      const deadBytes = chunks.reduce((a, id) => a + this.chunkMap.get(id)!.length, 0);
      if (!opts.dryRun) {
        for (const p of paths) this.pathMap.delete(p);
        for (const t of trees) this.treeMap.delete(t);
        for (const f of files) this.fileMap.delete(f);
        for (const c of chunks) this.chunkMap.delete(c);
      }
      return {
        dryRun: opts.dryRun ?? false, roots: live.roots, livePaths: live.paths.size, deadPaths: paths.sort(), deadTrees: trees.length, deadFiles: files.length,
        deadChunks: chunks.length, deadChunkBytes: deadBytes, freedBytes: deadBytes, repackedPacks: 0, removedPacks: 0, seconds: (performance.now() - t0) / 1000,
      };
    });
  }

  async diskUsage(): Promise<{ packs: number; db: number }> {
    return { packs: 0, db: 0 };
  }
}
