/**
 * A remote read as a store: the read interfaces of store/api.ts over a Transport, with a verified
 * local read-through cache. Nothing from the network or the cache is used before it is checked:
 * chunks and trees against their ids, file records against the signed per-path index, path
 * documents and pointers against trusted keys (and pointers against rollback).
 */
import type { ChunkSource, ObjectReader } from '../api.js';
import { MiqError, isMiqError } from '../errors.js';
import { EMPTY_ID, type Id, idOf } from '../ids.js';
import { decodeFileRecord, decodeTree, type FileRecord, type StorePathRecord, type Tree } from '../objects.js';
import type { DiskCache } from './cache.js';
import { MAX_DOC_BYTES, decodeFileIndex, parsePathDoc, parsePointer, type Pointer } from './docs.js';
import type { TrustedKey } from './keys.js';
import { chunkPath, decodeChunk, objectPath, pathDocPath, profilePath } from './layout.js';
import { Limiter } from './limit.js';
import { Lru } from '../lru.js';
import type { SeenPointers } from './seen.js';
import type { Transport, TransportStats } from './transport.js';

/** Trees and file records are small but a hostile server could claim otherwise. */
const MAX_OBJECT_BYTES = 16 * 1024 * 1024;

export interface RemoteReader extends ObjectReader {
  readonly url: string;
  readonly chunks: ChunkSource & { getSized(id: Id, length: number): Promise<Buffer | undefined> };
  /** The current pointer, fetched now, signature- and rollback-checked; its member paths are
   * loaded so their files resolve. Falls back to the last verified copy when the remote is down. */
  getProfile(name: string): Promise<(Pointer & { stale: boolean }) | undefined>;
  stats(): { transport: TransportStats; cache?: ReturnType<DiskCache['snapshot']>; memory: number };
  close(): Promise<void>;
}

export interface ReaderParts {
  transport: Transport;
  cache?: DiskCache;
  trusted: readonly TrustedKey[];
  seen: SeenPointers;
  /** Largest chunk accepted when no record gives its length. */
  maxChunk?: number;
  /** Bytes of decoded chunks kept in memory. */
  memoryBytes?: number;
}

export function remoteReader(p: ReaderParts): RemoteReader {
  return new Reader(p);
}

class Reader implements RemoteReader {
  readonly url: string;
  readonly chunks: RemoteReader['chunks'];
  private readonly t: Transport;
  private readonly cache: DiskCache | undefined;
  private readonly maxChunk: number;
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly chunkMem: Lru<string, Buffer>;
  private readonly trees = new Lru<string, Tree>(8192, () => 1);
  private readonly files = new Lru<string, FileRecord>(16384, () => 1);
  /** Sizes of files seen in trees: a single-chunk file's record is then known without a fetch. */
  private readonly sizes = new Lru<string, number>(1 << 20, () => 1);
  /** file id → BLAKE3(record bytes), from the signed indexes of the paths loaded. */
  private readonly recordHashes = new Map<Id, Id>();
  private readonly paths = new Map<string, StorePathRecord>();
  private readonly readLimit = new Limiter(8);

  constructor(private readonly p: ReaderParts) {
    this.t = p.transport;
    this.url = p.transport.url;
    this.cache = p.cache;
    this.maxChunk = p.maxChunk ?? 16 * 1024 * 1024;
    this.chunkMem = new Lru<string, Buffer>(p.memoryBytes ?? 32 * 1024 * 1024, (b) => b.length);
    this.chunks = {
      get: (id) => this.chunk(id, undefined),
      getSized: (id, length) => this.chunk(id, length),
      has: async (id) => this.chunkMem.get(id) !== undefined || !!this.cache?.has(chunkPath(id)) || (await this.chunk(id, undefined)) !== undefined,
    };
  }

  /**
   * Cache first, then the network; `verify` runs on both, and only verified network bytes enter
   * the cache. Concurrent requests for one file share a fetch.
   */
  private load<T>(rel: string, max: number, verify: (b: Buffer) => T, cacheIt = true): Promise<T | undefined> {
    const running = this.inflight.get(rel) as Promise<T | undefined> | undefined;
    if (running) return running;
    const p = (async () => {
      if (this.cache && cacheIt) {
        const b = await this.cache.get(rel);
        if (b) {
          try {
            return verify(b);
          } catch (e) {
            if (!isMiqError(e, 'MIQ_CORRUPT')) throw e;
            await this.cache.delete(rel);
          }
        }
      }
      const b = await this.t.get(rel, max);
      if (b === undefined) return undefined;
      const v = verify(b);
      // The bytes are verified and in hand: a cache that cannot take them (disk full, a
      // directory removed under it) costs a later refetch, not this read.
      if (this.cache && cacheIt) await this.cache.put(rel, b).catch(() => undefined);
      return v;
    })();
    this.inflight.set(rel, p);
    const clear = (): void => { this.inflight.delete(rel); };
    p.then(clear, clear);
    return p;
  }

  private async chunk(id: Id, length: number | undefined): Promise<Buffer | undefined> {
    const m = this.chunkMem.get(id);
    if (m) return m;
    // A raw chunk is one flag byte longer than its plain bytes, and a compressed one is shorter.
    const max = length !== undefined ? length + 1 : this.maxChunk + 1;
    const b = await this.load(chunkPath(id), max, (s) => decodeChunk(id, s, length, this.maxChunk));
    if (b) this.chunkMem.set(id, b);
    return b;
  }

  async getTree(id: Id): Promise<Tree | undefined> {
    const m = this.trees.get(id);
    if (m) return m;
    const t = await this.load(objectPath(id), MAX_OBJECT_BYTES, (b) => decodeTree(b, id));
    if (!t) return undefined;
    this.trees.set(id, t);
    for (const e of t.entries) if (e.id && (e.kind === 'file' || e.kind === 'exe')) this.sizes.set(e.id, e.size);
    return t;
  }

  async getFile(id: Id): Promise<FileRecord | undefined> {
    const m = this.files.get(id);
    if (m) return m;
    let rec: FileRecord | undefined;
    const rh = this.recordHashes.get(id);
    if (rh) {
      rec = await this.load(objectPath(id), MAX_OBJECT_BYTES, (b) => {
        if (idOf(b) !== rh) throw new MiqError('MIQ_CORRUPT', `file record ${id} from the remote does not match the signed index`, { details: { id } });
        return decodeFileRecord(b, id);
      });
      if (!rec) throw new MiqError('MIQ_REMOTE', `the remote lacks file record ${id} that its index names`, { details: { id } });
    } else if (id === EMPTY_ID) {
      rec = { id, size: 0, chunks: [] };
    } else {
      // Not in any loaded index: a single-chunk file, whose one chunk has the file's id.
      let size = this.sizes.get(id);
      if (size === undefined) {
        const c = await this.chunk(id, undefined);
        if (!c) return undefined;
        size = c.length;
      }
      rec = { id, size, chunks: [{ id, length: size }] };
    }
    this.files.set(id, rec);
    return rec;
  }

  async getStorePath(path: string): Promise<StorePathRecord | undefined> {
    const m = this.paths.get(path);
    if (m) return m;
    const doc = await this.load(pathDocPath(path), MAX_DOC_BYTES, (b) => parsePathDoc(b, path, this.p.trusted));
    if (!doc) return undefined;
    if (doc.index) {
      const idx = await this.load(objectPath(doc.index), MAX_OBJECT_BYTES, (b) => decodeFileIndex(b, doc.index!));
      if (!idx) throw new MiqError('MIQ_REMOTE', `the remote lacks the file index of ${path}`, { details: { path } });
      for (const [f, h] of idx) this.recordHashes.set(f, h);
    }
    this.paths.set(path, doc.record);
    return doc.record;
  }

  async listStorePaths(): Promise<StorePathRecord[]> {
    return [...this.paths.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  async readFile(file: FileRecord, offset: number, length: number): Promise<Buffer> {
    const end = Math.min(file.size, offset + Math.max(0, length));
    if (offset >= end) return Buffer.alloc(0);
    const want: { id: Id; length: number; start: number }[] = [];
    let pos = 0;
    for (const c of file.chunks) {
      if (pos + c.length > offset && pos < end) want.push({ ...c, start: pos });
      pos += c.length;
      if (pos >= end) break;
    }
    const bodies = await Promise.all(want.map((c) => this.readLimit.run(async () => {
      const b = await this.chunk(c.id, c.length);
      if (!b) throw new MiqError('MIQ_REMOTE', `the remote lacks chunk ${c.id} of file ${file.id}`, { details: { id: c.id, file: file.id } });
      return b;
    })));
    const out = Buffer.allocUnsafe(end - offset);
    bodies.forEach((b, i) => {
      const c = want[i]!;
      const from = Math.max(offset, c.start);
      const to = Math.min(end, c.start + c.length);
      b.copy(out, from - offset, from - c.start, to - c.start);
    });
    return out;
  }

  async getProfile(name: string): Promise<(Pointer & { stale: boolean }) | undefined> {
    const rel = profilePath(name);
    let bytes: Buffer | undefined;
    let stale = false;
    try {
      bytes = await this.t.get(rel, MAX_DOC_BYTES);
    } catch (e) {
      const cached = this.cache && (isMiqError(e, 'MIQ_REMOTE') || isMiqError(e, 'MIQ_TIMEOUT')) ? await this.cache.get(rel) : undefined;
      if (!cached) throw e;
      bytes = cached;
      stale = true;
    }
    if (!bytes) return undefined;
    const ptr = parsePointer(bytes, name, this.p.trusted);
    await this.p.seen.check(this.url, name, ptr.sequence, ptr.tree);
    if (!stale && this.cache) {
      await this.cache.delete(rel);
      await this.cache.put(rel, bytes);
    }
    const lim = new Limiter(8);
    await Promise.all(ptr.paths.map((path) => lim.run(async () => {
      if (!(await this.getStorePath(path))) throw new MiqError('MIQ_REMOTE', `profile ${name} names ${path}, which the remote lacks`, { details: { path } });
    })));
    return { ...ptr, stale };
  }

  stats(): ReturnType<RemoteReader['stats']> {
    return { transport: { ...this.t.stats }, ...(this.cache ? { cache: this.cache.snapshot() } : {}), memory: this.chunkMem.weight };
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()]);
    await this.t.close();
  }
}
