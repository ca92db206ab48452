/**
 * The local store: chunk bodies in append-only packs, everything else in LevelDB (DESIGN §4).
 * One process owns it (LevelDB's lock); while a mount serves it, other commands go through the
 * mount's control socket.
 */
import { statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChunkInfo, ChunkLocator, ChunkSource, IngestOptions, IngestResult, LiveSet, ObjectBatch, PruneOptions, PruneReport, PruneStore, Store, WriteStore } from './api.js';
import { CHUNKER_ALGO, DEFAULT_CHUNK_PARAMS, checkChunkParams, parseChunkParams, type ChunkParams } from './chunker.js';
import { decodeFrame, decodeVerified, sliceVerified } from './chunkread.js';
import { encodeChunk } from './codec.js';
import { MiqError } from './errors.js';
import { type Id, idOf } from './ids.js';
import { K_FORMAT, ROOT_PREFIX, kChunk, kFile, kMeta, kPath, kTree, range } from './keys.js';
import { ByteLru, Mutex } from './lru.js';
import type { Db, LocalParts } from './local-parts.js';
import { decodeFileRecord, decodeStorePath, decodeTree, decodeTreePacked, encodeFileIndexRecord, encodeStorePath, encodeTree, parseStorePath, treeId, type FileRecord, type PackedTree, type StorePathRecord, type Tree, type TreeEntry } from './objects.js';
import { destroyPool } from './pool.js';
import { PackReader, PackWriter, decodeLocation, encodeLocation, packFileName, type ChunkLocation } from './pack.js';
import { mkdirp } from './mkdirp.js';
import { describeHolder, recordHolder, releaseHolder } from './holder.js';
import { readRange } from './range.js';
import { openIndex } from './open-index.js';

/**
 * 2: packs may hold shared zstd frames of small chunks (codec.ts FLAG_FRAME). A version-1 miq
 * would take a framed chunk for a damaged one, so this miq raises a version-1 store's header to 2
 * as soon as it opens it writable (it may add frames from then on); the older miq then refuses
 * the store with "upgrade miq" instead of reporting damage. Version 1 stores read unchanged.
 */
export const FORMAT_VERSION = 3;
/**
 * 3: the index keeps a one-chunk file's record as its size only (objects.ts
 * encodeFileIndexRecord), which a version-2 miq would report as a malformed record. Raised the
 * same way as 2: versions 1 and 2 read unchanged, and their header becomes 3 when this miq opens
 * them writable; an older miq then says "upgrade miq".
 */
const READABLE_VERSIONS = [1, 2, 3];

export interface FormatHeader {
  format: 'miq-store';
  version: number;
  chunker: { algo: string } & ChunkParams;
  hash: 'blake3';
  compression: 'zstd';
}

export interface LocalStoreOptions {
  /** Chunk sizes for a new store (ignored for an existing one; they are in its header). */
  chunkParams?: ChunkParams;
  /** Decoded-chunk cache size in bytes. */
  cacheBytes?: number;
}

export class LocalStore implements Store, PruneStore, WriteStore {
  readonly dir: string;
  readonly chunks: ChunkSource & ChunkLocator;
  readonly maintenance: PruneStore = this;
  readonly writer: WriteStore = this;
  // The LevelDB handle and packs are private: store-internal modules (ingest, prune) get them
  // through `parts`, never from outside the store.
  #db!: Db;
  #header!: FormatHeader;
  #packs!: PackReader;
  #writer: PackWriter | undefined;
  /** Why this store is read-only in this process (a read-only or full disk), if it is. */
  #readOnly: string | undefined;
  #cleanupIndex: () => Promise<void> = async () => {};
  /** The holder record being written (see doOpen). */
  #holding: Promise<void> | undefined;
  readonly #writeLock = new Mutex();
  readonly #parts: LocalParts;
  private readonly cache: ByteLru<string, Buffer>;
  /** Decoded shared frames by pack and offset: a directory's small files share a few frames, and
   * reading them one by one should decode each frame once. Bounded, and dropped by prune. */
  private readonly frames = new ByteLru<string, Buffer>(8 << 20);
  private readonly frameReads = new Map<string, Promise<Buffer>>();
  private opened: Promise<void> | undefined;
  private closed = false;

  constructor(dir: string, private readonly opts: LocalStoreOptions = {}) {
    this.dir = dir;
    this.cache = new ByteLru(opts.cacheBytes ?? 64 << 20);
    this.chunks = {
      get: (id) => this.getChunk(id),
      has: (id) => this.hasChunk(id),
      locate: async (ids) => (await this.#db.getMany(ids.map(kChunk))).map((v) => (v === undefined ? undefined : decodeLocation(v))),
      packPath: (pack) => join(this.packDir, packFileName(pack)),
      readAt: (id, loc) => this.readChunkAt(id, loc),
    };
    const self = this; // eslint-disable-line @typescript-eslint/no-this-alias
    this.#parts = {
      dir,
      get db() { return self.#db; },
      get packs() { return self.#packs; },
      get packDir() { return self.packDir; },
      get params() { return self.params; },
      writeLock: this.#writeLock,
      objects: this,
      packWriter: () => this.packWriter(),
      openPack: () => this.#writer?.openPack,
      readAt: (id, loc) => this.readChunkAt(id, loc),
    };
  }

  private get packDir(): string {
    return join(this.dir, 'packs');
  }

  /** Chunk sizes of this store (from its header). */
  get params(): ChunkParams {
    const { min, avg, max } = this.#header.chunker;
    return { min, avg, max };
  }

  open(): Promise<void> {
    this.opened ??= this.doOpen();
    return this.opened;
  }

  private async doOpen(): Promise<void> {
    try {
      await mkdirp(join(this.dir, 'packs'));
    } catch (e) {
      throw new MiqError('MIQ_IO', `cannot create the store at ${this.dir}: ${(e as Error).message}; pass --store DIR or set MIQ_HOME to a writable directory`, { cause: e });
    }
    let db: Db;
    try {
      const idx = await openIndex(this.dir, (l) => process.stderr.write(`miq: warning: ${l}\n`));
      db = idx.db;
      this.#readOnly = idx.readOnly;
      this.#cleanupIndex = idx.cleanup;
    } catch (e) {
      if (e instanceof MiqError) throw e;
      const cause = (e as { cause?: { code?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') {
        // The holder writes its record just after it takes the lock: a miq that arrives in between
        // waits a moment for the record instead of naming nobody.
        let who = await describeHolder(this.dir);
        for (let i = 0; i < 10 && who === undefined; i++) {
          await new Promise((r) => setTimeout(r, 100));
          who = await describeHolder(this.dir);
        }
        throw new MiqError('MIQ_STORE_LOCKED', `the store at ${this.dir} is in use by another miq process: ${who ?? 'a running ingest, gc, build or mount; wait for it to finish, or stop it'}`, { cause: e });
      }
      throw dbOpenError(this.dir, e);
    }
    this.#db = db;
    const raw = await db.get(K_FORMAT);
    if (raw === undefined) {
      const params = checkChunkParams(this.opts.chunkParams ?? (process.env.MIQ_CHUNK ? parseChunkParams(process.env.MIQ_CHUNK) : DEFAULT_CHUNK_PARAMS));
      this.#header = { format: 'miq-store', version: FORMAT_VERSION, chunker: { algo: CHUNKER_ALGO, ...params }, hash: 'blake3', compression: 'zstd' };
      await db.put(K_FORMAT, Buffer.from(JSON.stringify(this.#header)), { sync: true });
    } else {
      let h: FormatHeader;
      try {
        h = JSON.parse(raw.toString()) as FormatHeader;
      } catch (e) {
        await db.close();
        throw new MiqError('MIQ_FORMAT', `the store at ${this.dir} has an unreadable format header`, { cause: e });
      }
      if (h.format !== 'miq-store' || !READABLE_VERSIONS.includes(h.version) || h.chunker?.algo !== CHUNKER_ALGO) {
        await db.close();
        const newer = typeof h.version === 'number' && h.version > FORMAT_VERSION;
        throw new MiqError('MIQ_FORMAT', `the store at ${this.dir} has format version ${String(h.version)} (${String(h.chunker?.algo)}); this miq reads versions ${READABLE_VERSIONS.slice(0, -1).join(', ')} and ${READABLE_VERSIONS.at(-1)}: ${newer ? 'upgrade miq to use it' : 'it was written by an older miq; migrate it with that version (export and re-ingest)'}`);
      }
      if (h.version < FORMAT_VERSION && !this.#readOnly) {
        h = { ...h, version: FORMAT_VERSION };
        await db.put(K_FORMAT, Buffer.from(JSON.stringify(h)), { sync: true });
      }
      this.#header = h;
    }
    this.#packs = new PackReader(this.packDir);
    // Best effort and never failing (holder.ts): the store is usable at once, and close() waits
    // for the record before it removes it (~1 ms of file writes off every command's start).
    this.#holding = recordHolder(this.dir);
  }

  async close(): Promise<void> {
    if (!this.opened || this.closed) return;
    this.closed = true;
    await this.opened.catch(() => {});
    await this.#writeLock.run(async () => {
      await this.#writer?.close();
      this.#writer = undefined;
    });
    await this.#packs?.close();
    await destroyPool();
    if (this.#db && this.#db.status === 'open') {
      await this.#holding;
      await releaseHolder(this.dir);
      await this.#db.close();
    }
    await this.#cleanupIndex().catch(() => {});
  }

  /** Set when the index could only be opened from a private read-only copy (see open-index.ts). */
  get readOnly(): string | undefined {
    return this.#readOnly;
  }

  /** The pack writer, created on first write so read-only sessions make no pack. */
  private async packWriter(): Promise<PackWriter> {
    if (this.#readOnly) throw new MiqError('MIQ_READ_ONLY', this.#readOnly);
    if (!this.#writer) {
      const w = new PackWriter(this.packDir);
      await w.open();
      this.#writer = w;
    }
    return this.#writer;
  }

  // --- chunks ---------------------------------------------------------------------------

  private async chunkLocation(id: Id): Promise<ChunkLocation | undefined> {
    const v = await this.#db.get(kChunk(id));
    return v === undefined ? undefined : decodeLocation(v);
  }

  private async hasChunk(id: Id): Promise<boolean> {
    return (await this.#db.get(kChunk(id))) !== undefined;
  }

  /** Verified plain bytes, or undefined when the index does not know the chunk. */
  private async getChunk(id: Id): Promise<Buffer | undefined> {
    const hit = this.cache.get(id);
    if (hit) return hit;
    const loc = await this.chunkLocation(id);
    if (!loc) return undefined;
    const plain = await this.readChunkAt(id, loc);
    this.cache.set(id, plain);
    return plain;
  }

  private async frameAt(id: Id, loc: ChunkLocation & { frame: { size: number } }): Promise<Buffer> {
    const key = `${loc.pack}.${loc.offset}`;
    const hit = this.frames.get(key);
    if (hit) return hit;
    let p = this.frameReads.get(key);
    if (!p) {
      p = this.#packs.read(loc, id).then((body) => decodeFrame(body, loc.frame.size, id));
      this.frameReads.set(key, p);
      p.then((f) => this.frames.set(key, f), () => {}).finally(() => this.frameReads.delete(key));
    }
    return p;
  }

  private async readChunkAt(id: Id, loc: ChunkLocation): Promise<Buffer> {
    if (loc.frame) return sliceVerified(id, await this.frameAt(id, loc as ChunkLocation & { frame: { size: number } }), loc.frame.off, loc.plain);
    const body = await this.#packs.read(loc, id);
    let dict: Buffer | undefined;
    if (loc.refs) {
      const parts: Buffer[] = [];
      for (const r of loc.refs) {
        const b = await this.getChunk(r as Id);
        if (!b) throw new MiqError('MIQ_MISSING', `chunk ${id} is a delta against chunk ${r}, which is missing`, { details: { id, kind: 'chunk' } });
        parts.push(b);
      }
      dict = Buffer.concat(parts);
    }
    return decodeVerified(id, loc.flags, body, loc.plain, dict);
  }

  /** Stores one chunk (compressing it here); used for small writes outside the ingest pipeline. */
  private async putChunk(id: Id, plain: Buffer): Promise<number> {
    if (await this.hasChunk(id)) return 0;
    const w = await this.packWriter();
    const { flags, body } = encodeChunk(plain);
    const [loc] = await w.append([{ id, flags, plain: plain.length, body: Buffer.from(body) }]);
    await w.sync();
    await this.#db.put(kChunk(id), encodeLocation(loc!));
    return body.length;
  }

  // --- objects --------------------------------------------------------------------------

  async getFile(id: Id): Promise<FileRecord | undefined> {
    const v = await this.#db.get(kFile(id));
    return v === undefined ? undefined : decodeFileRecord(v, id);
  }

  async getTree(id: Id): Promise<Tree | undefined> {
    const v = await this.#db.get(kTree(id));
    return v === undefined ? undefined : decodeTree(v, id);
  }

  async getTreePacked(id: Id): Promise<PackedTree | undefined> {
    const v = await this.#db.get(kTree(id));
    return v === undefined ? undefined : decodeTreePacked(v, id);
  }

  /** Several trees in one index read (the mount loads a listed directory's subdirectories
   * together: one pool job instead of one per tree). */
  async getTreesPacked(ids: readonly Id[]): Promise<(PackedTree | undefined)[]> {
    const vs = await this.#db.getMany(ids.map(kTree));
    return vs.map((v, i) => (v === undefined ? undefined : decodeTreePacked(v, ids[i])));
  }

  async getStorePath(path: string): Promise<StorePathRecord | undefined> {
    const v = await this.#db.get(kPath(path));
    return v === undefined ? undefined : decodeStorePath(v);
  }

  async listStorePaths(): Promise<StorePathRecord[]> {
    const out: StorePathRecord[] = [];
    for await (const [, v] of this.#db.iterator(range('p/'))) out.push(decodeStorePath(v));
    return out;
  }

  async readFile(file: FileRecord, offset: number, length: number): Promise<Buffer> {
    return readRange(file, offset, length, (id) => this.getChunk(id));
  }

  async putTree(entries: readonly TreeEntry[]): Promise<Id> {
    const { id, bytes } = treeId(entries);
    for (const e of entries) {
      if (e.kind === 'dir' && !(await this.#db.get(kTree(e.id!)))) throw new MiqError('MIQ_MISSING', `tree ${e.id} (entry ${e.name.toString()}) is not in the store`);
      if ((e.kind === 'file' || e.kind === 'exe') && !(await this.#db.get(kFile(e.id!)))) throw new MiqError('MIQ_MISSING', `file ${e.id} (entry ${e.name.toString()}) is not in the store`);
    }
    await this.#db.put(kTree(id), bytes);
    return id;
  }

  async putBytes(bytes: Buffer): Promise<FileRecord> {
    return this.#writeLock.run(async () => {
      const id = idOf(bytes);
      const existing = await this.getFile(id);
      if (existing) return existing;
      const chunks: { id: Id; length: number }[] = [];
      const step = this.params.max;
      for (let s = 0; s < bytes.length; s += step) {
        const piece = bytes.subarray(s, Math.min(bytes.length, s + step));
        const cid = bytes.length <= step ? id : idOf(piece);
        await this.putChunk(cid, Buffer.from(piece));
        chunks.push({ id: cid, length: piece.length });
      }
      const rec: FileRecord = { id, size: bytes.length, chunks };
      await this.#db.put(kFile(id), encodeFileIndexRecord(rec));
      return rec;
    });
  }

  async putStorePath(rec: StorePathRecord): Promise<void> {
    parseStorePath(rec.path);
    if (!(await this.#db.get(kTree(rec.tree)))) throw new MiqError('MIQ_MISSING', `store path ${rec.path}: its tree ${rec.tree} is not in the store`);
    for (const r of rec.references) {
      if (r !== rec.path && !(await this.#db.get(kPath(r)))) throw new MiqError('MIQ_MISSING', `store path ${rec.path} refers to ${r}, which is not in the store`);
    }
    await this.#db.put(kPath(rec.path), encodeStorePath(rec), { sync: true });
  }

  // --- meta and roots -------------------------------------------------------------------

  async getMeta(key: string): Promise<Buffer | undefined> {
    return this.#db.get(kMeta(key));
  }

  async batchMeta(ops: { key: string; value: Buffer | undefined }[]): Promise<void> {
    await this.#db.batch(ops.map((o) => (o.value === undefined ? { type: 'del' as const, key: kMeta(o.key) } : { type: 'put' as const, key: kMeta(o.key), value: o.value })), { sync: true });
  }

  async listMeta(prefix: string): Promise<{ key: string; value: Buffer }[]> {
    const out: { key: string; value: Buffer }[] = [];
    for await (const [k, v] of this.#db.iterator(range(kMeta(prefix)))) out.push({ key: k.slice(2), value: v });
    return out;
  }

  async pin(path: string, root?: string): Promise<void> {
    if (!(await this.getStorePath(path))) throw new MiqError('MIQ_NOT_FOUND', `no store path ${path}; \`miq paths\` lists them`);
    await this.batchMeta([{ key: ROOT_PREFIX + (root ?? path), value: Buffer.from(path) }]);
  }

  async unpin(rootOrPath: string): Promise<boolean> {
    const roots = await this.listRoots();
    const hit = roots.filter((r) => r.root === rootOrPath || r.path === rootOrPath);
    if (hit.length === 0) return false;
    await this.batchMeta(hit.map((r) => ({ key: ROOT_PREFIX + r.root, value: undefined })));
    return true;
  }

  async listRoots(): Promise<{ root: string; path: string }[]> {
    return (await this.listMeta(ROOT_PREFIX)).map(({ key, value }) => ({ root: key.slice(ROOT_PREFIX.length), path: value.toString() }));
  }

  async ingest(dir: string, opts: IngestOptions = {}): Promise<IngestResult> {
    const { ingestTree } = await import('./ingest.js');
    return this.#writeLock.run(() => ingestTree(this.#parts, dir, opts));
  }

  // --- WriteStore -----------------------------------------------------------------------

  async writeObjects(batch: ObjectBatch): Promise<void> {
    const chunks = (batch.chunks ?? []).map((c) => {
      if (idOf(c.plain) !== c.id) throw new MiqError('MIQ_CORRUPT', `chunk ${c.id} does not hash to its id`, { details: { id: c.id, kind: 'chunk' } });
      return c;
    });
    const ops: { type: 'put'; key: string; value: Buffer }[] = [];
    for (const t of batch.trees ?? []) {
      const b = encodeTree(t.entries);
      if (idOf(b) !== t.id) throw new MiqError('MIQ_CORRUPT', `tree ${t.id} does not re-encode to its id`, { details: { id: t.id, kind: 'tree' } });
      ops.push({ type: 'put', key: kTree(t.id), value: b });
    }
    for (const f of batch.files ?? []) ops.push({ type: 'put', key: kFile(f.id), value: encodeFileIndexRecord(f) });
    await this.#writeLock.run(async () => {
      const fresh: { id: Id; flags: number; plain: number; body: Buffer }[] = [];
      const seen = new Set<Id>();
      const known = chunks.length ? await this.#db.getMany(chunks.map((c) => kChunk(c.id))) : [];
      chunks.forEach((c, i) => {
        if ((known[i] !== undefined && !batch.replace) || seen.has(c.id)) return;
        seen.add(c.id);
        const { flags, body } = encodeChunk(c.plain);
        fresh.push({ id: c.id, flags, plain: c.plain.length, body: Buffer.from(body) });
      });
      if (fresh.length) {
        const w = await this.packWriter();
        const locs = await w.append(fresh);
        await w.sync(); // bodies on disk before the index names them
        fresh.forEach((c, i) => ops.unshift({ type: 'put', key: kChunk(c.id), value: encodeLocation(locs[i]!) }));
      }
      if (ops.length) await this.#db.batch(ops);
    });
  }

  // --- PruneStore -----------------------------------------------------------------------

  async *listChunks(): AsyncIterable<ChunkInfo> {
    for await (const [k, v] of this.#db.iterator(range('c/'))) {
      const id = k.slice(2) as Id;
      let loc: ChunkLocation;
      try {
        loc = decodeLocation(v);
      } catch {
        yield { id, stored: v.length, plain: 0 };
        continue;
      }
      // A chunk in a shared frame is counted at its share of the frame's stored bytes.
      const stored = loc.frame ? Math.round((loc.stored * loc.plain) / Math.max(1, loc.frame.size)) : loc.stored;
      yield loc.refs ? { id, stored, plain: loc.plain, bases: loc.refs as Id[] } : { id, stored, plain: loc.plain };
    }
  }

  async checkChunk(id: Id): Promise<Buffer | undefined> {
    const loc = await this.chunkLocation(id);
    return loc ? this.readChunkAt(id, loc) : undefined;
  }

  async prune(mark: () => Promise<LiveSet>, opts?: PruneOptions): Promise<PruneReport> {
    // The index is a private copy: deleting packs by it would be deleting by a stale picture.
    if (this.#readOnly && !opts?.dryRun) throw new MiqError('MIQ_READ_ONLY', `cannot collect garbage: ${this.#readOnly}`);
    const { pruneLocal } = await import('./local-prune.js');
    const report = await pruneLocal(this.#parts, mark, opts);
    this.cache.clear();
    this.frames.clear();
    return report;
  }

  /** Bytes the store occupies on disk (packs + database). */
  async diskUsage(): Promise<{ packs: number; db: number }> {
    const { readdir } = await import('node:fs/promises');
    const sum = async (d: string): Promise<number> => {
      let t = 0;
      for (const n of await readdir(d).catch(() => [] as string[])) {
        const s = await stat(join(d, n)).catch(() => undefined);
        if (s?.isFile()) t += s.size;
      }
      return t;
    };
    return { packs: await sum(this.packDir), db: await sum(join(this.dir, 'db')) };
  }
}

/**
 * Why LevelDB would not open, as the user can act on it. LevelDB reports file errors as text
 * ("IO error: …/LOCK: Permission denied", "Corruption: …"), with no errno, so the text is all
 * there is to go on.
 */
export function dbOpenError(dir: string, e: unknown): MiqError {
  const db = join(dir, 'db');
  const why = String((e as { cause?: { message?: string } }).cause?.message ?? (e as Error)?.message ?? e);
  if (/permission denied/i.test(why)) {
    let owner = '';
    try {
      const uid = statSync(db).uid;
      if (uid !== process.geteuid?.()) owner = ` (it belongs to uid ${uid}${uid === 0 ? ', root' : ''}; you are uid ${process.geteuid?.()})`;
    } catch { /* the message stands without the owner */ }
    return new MiqError('MIQ_IO', `permission denied: cannot open the store at ${dir}${owner}; run miq as the store's owner, or use a store of your own (--store DIR or MIQ_HOME)`, { cause: e, details: { path: db, errno: 'EACCES' } });
  }
  if (/no space left/i.test(why)) {
    return new MiqError('MIQ_IO', `no space left on the device of ${dir}: cannot open the store database; free space there (\`miq gc\` frees store space once it can run), then retry`, { cause: e, details: { path: db, errno: 'ENOSPC' } });
  }
  if (/^corruption/i.test(why)) {
    return new MiqError('MIQ_CORRUPT', `the store database at ${db} is damaged (${why}); restore it from a backup or re-ingest into a new store`, { cause: e, details: { path: db } });
  }
  return new MiqError('MIQ_IO', `cannot open the store database at ${db}: ${why}`, { cause: e, details: { path: db } });
}

