/**
 * A remote read as a store: the read interfaces of store/api.ts over a Transport, with a verified
 * local read-through cache. Nothing from the network or the cache is used before it is checked:
 * chunks and trees against their ids, file records against the signed per-path index, path
 * documents and pointers against trusted keys (and pointers against rollback).
 */
import { chunkSpan, chunkStarts, readRange } from '../range.js';
import type { ChunkSource, ObjectReader } from '../api.js';
import { MiqError, fromRemote, isMiqError } from '../errors.js';
import { EMPTY_ID, type Id, idOf } from '../ids.js';
import { decodeFileRecord, decodeTree, type FileRecord, type StorePathRecord, type Tree } from '../objects.js';
import type { DiskCache } from './cache.js';
import { MAX_DOC_BYTES, decodeFileIndex, parsePathDoc, parsePointer, type Pointer } from './docs.js';
import type { TrustedKey } from './keys.js';
import { bundleMaxBytes, bundleParts, bundlePath, chunkPath, decodeChunk, decodeHints, hintsMaxBytes, hintsPath, objectPath, pathDocPath, profilePath, splitBundle, splitTreePack, TREE_PACK_MAX, treePackPath, type BundlePart } from './layout.js';
import { Limiter } from './limit.js';
import { Lru } from '../lru.js';
import type { SeenPointers } from './seen.js';
import type { Transport, TransportStats } from './transport.js';

/** Trees and file records are small but a hostile server could claim otherwise. */
const MAX_OBJECT_BYTES = 16 * 1024 * 1024;
/** A multi-chunk file this size or smaller is fetched whole, in the background, once one of its
 * chunks has to come from the network: exec faults a binary's pages in one at a time, and each
 * would otherwise cost a round trip of its own. */
const WHOLE_FILE_MAX = 64 * 1024 * 1024;
/** Fetches in flight for that background work; demand reads keep the rest of the transport's. */
const BACKGROUND_FETCHES = 4;
/** Fetches in flight for a prefetch list (hints), and the most it may bring in. */
const HINT_FETCHES = 8;
const HINT_BYTES_MAX = 256 * 1024 * 1024;
const HINT_MISSES_MAX = 32;

/** When a second bundle part of a directory is needed, its neighbours up to this many plain bytes
 * follow in the background: a program that has read from two parts of a directory (python's
 * imports from its __pycache__) tends to read from all; one that read one file (a shell running
 * `wc` out of /usr/bin) does not. */
const SIBLING_BYTES = 8 * 1024 * 1024;

interface BundleRef {
  readonly tree: Id;
  readonly part: BundlePart;
  /** Every part of the tree, this one included. */
  readonly all: readonly BundleRef[];
  /** Parts of the tree asked for by reads so far (shared by all of them). */
  readonly demanded: { n: number };
}

export interface RemoteReader extends ObjectReader {
  readonly url: string;
  readonly chunks: ChunkSource & { getSized(id: Id, length: number): Promise<Buffer | undefined> };
  /** The current pointer, fetched now, signature- and rollback-checked; its member paths are
   * loaded so their files resolve. Falls back to the last verified copy when the remote is down. */
  getProfile(name: string): Promise<(Pointer & { stale: boolean }) | undefined>;
  /** Loads every tree under `root` from its tree pack, when the remote has one; the count. */
  loadTreePack(root: Id): Promise<number>;
  /** Fetches the prefetch list of a profile tree, if the remote has one, and starts fetching its
   * chunks in the background; resolves with the list's length once they are queued. */
  startHints(tree: Id): Promise<number>;
  /** With `recordHints`: the chunk ids asked for so far, first ask first. */
  recordedHints(): Id[];
  stats(): { transport: TransportStats; cache?: ReturnType<DiskCache['snapshot']>; memory: number; prefetch: { bundles: number; bundleChunks: number; bundleFailures: number; wholeFiles: number; hints: number; hintBytes: number } };
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
  /** Multi-chunk files up to this size are fetched whole once a chunk of theirs is read from the
   * network (default 64 MiB; 0 turns it off). */
  wholeFileMax?: number;
  /** Fetch small files through their directory's bundles (default true). */
  bundles?: boolean;
  /** Keep the order in which chunks are first asked for (`miq mount --record-hints`). */
  recordHints?: boolean;
}

export function remoteReader(p: ReaderParts): RemoteReader {
  return remoteFaults(new Reader(p));
}

/** Every error out of the reader (and its `chunks`) marked as the remote's (see fromRemote). */
function remoteFaults<T extends object>(target: T): T {
  return new Proxy(target, {
    get(t, prop) {
      const v = Reflect.get(t, prop, t) as unknown;
      if (prop === 'chunks' && v && typeof v === 'object') return remoteFaults(v);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]): unknown => {
        let r: unknown;
        try {
          r = (v as (...a: unknown[]) => unknown).apply(t, args);
        } catch (e) {
          throw fromRemote(e);
        }
        return r instanceof Promise ? r.catch((e: unknown) => { throw fromRemote(e); }) : r;
      };
    },
  });
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
  /** Small file (= chunk) id → the bundle part that carries it, from the trees loaded. */
  private readonly bundleOf = new Lru<string, BundleRef>(1 << 20, () => 1);
  private readonly bundleRuns = new Map<string, Promise<void>>();
  /** Bundles that were missing or bad: their members are fetched one by one. */
  private readonly badBundles = new Set<string>();
  /** Bundles fetched (their members may since have left memory; the disk cache has them). */
  private readonly bundlesDone = new Lru<string, true>(1 << 16, () => 1);
  /** Chunk id → the multi-chunk file it belongs to, for whole-file background fetches. */
  private readonly owner = new Lru<string, FileRecord>(1 << 18, () => 1);
  private readonly wholeStarted = new Lru<string, true>(1 << 16, () => 1);
  private readonly background = new Limiter(BACKGROUND_FETCHES);
  private readonly cacheWrites = new Set<Promise<unknown>>();
  private readonly counts = { bundles: 0, bundleChunks: 0, bundleFailures: 0, wholeFiles: 0, hints: 0, hintBytes: 0, refetched: 0 };
  private readonly hintLimit = new Limiter(HINT_FETCHES);
  private readonly asked: { list: Id[]; set: Set<Id> } | undefined;
  private closed = false;

  constructor(private readonly p: ReaderParts) {
    this.t = p.transport;
    this.url = p.transport.url;
    this.cache = p.cache;
    this.maxChunk = p.maxChunk ?? 16 * 1024 * 1024;
    this.chunkMem = new Lru<string, Buffer>(p.memoryBytes ?? 32 * 1024 * 1024, (b) => b.length);
    this.asked = p.recordHints ? { list: [], set: new Set() } : undefined;
    this.chunks = {
      get: (id) => { this.note(id); return this.chunk(id, undefined); },
      getSized: (id, length) => { this.note(id); return this.chunk(id, length); },
      has: async (id) => this.chunkMem.get(id) !== undefined || !!this.cache?.has(chunkPath(id)) || (await this.chunk(id, undefined)) !== undefined,
    };
  }

  /** With `recordHints`: remembers a chunk asked for by a reader (not by background work). */
  private note(id: Id): void {
    if (this.asked && !this.asked.set.has(id)) {
      this.asked.set.add(id);
      this.asked.list.push(id);
    }
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
      let b = await this.t.get(rel, max);
      if (b === undefined) return undefined;
      let v: T;
      try {
        v = verify(b);
      } catch (e) {
        // A cache between here and the origin (a site proxy) may hold damaged bytes: ask once
        // more past every cache; the origin's copy is verified the same way.
        if (!isMiqError(e, 'MIQ_CORRUPT')) throw e;
        this.counts.refetched++;
        b = await this.t.get(rel, max, { fresh: true });
        if (b === undefined) return undefined;
        v = verify(b);
      }
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
    const rel = chunkPath(id);
    if (!this.inflight.has(rel) && !this.cache?.has(rel)) {
      // Going to the network: a small file's whole directory part comes in one response, and a
      // bigger file's other chunks follow in the background.
      const ref = this.p.bundles === false ? undefined : this.bundleOf.get(id);
      if (ref) {
        await this.bundle(ref);
        const b = this.chunkMem.get(id);
        if (b && (length === undefined || b.length === length)) return b;
      }
      const f = this.owner.get(id);
      if (f && !this.wholeStarted.get(f.id)) this.wholeFile(f, id);
    }
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
    this.remember(id, t);
    return t;
  }

  private remember(id: Id, t: Tree): void {
    this.trees.set(id, t);
    for (const e of t.entries) if (e.id && (e.kind === 'file' || e.kind === 'exe')) this.sizes.set(e.id, e.size);
    // Push's rule (layout.ts): a part is written when it carries two or more single-chunk files.
    const all: BundleRef[] = [];
    const demanded = { n: 0 };
    for (const part of bundleParts(t.entries)) {
      const singles = part.members.filter((x) => !this.recordHashes.has(x.id));
      if (singles.length < 2) continue;
      const ref: BundleRef = { tree: id, part: { part: part.part, members: singles }, all, demanded };
      all.push(ref);
      for (const x of singles) if (!this.bundleOf.get(x.id)) this.bundleOf.set(x.id, ref);
    }
  }

  async loadTreePack(root: Id): Promise<number> {
    if (this.p.bundles === false || this.trees.get(root)) return 0;
    const rel = treePackPath(root);
    let b: Buffer | undefined;
    try {
      b = await this.t.get(rel, TREE_PACK_MAX);
    } catch {
      return 0; // a transport: the tree files are still there
    }
    if (!b) return 0;
    let items: { id: Id; stored: Buffer }[];
    try {
      items = splitTreePack(b, rel);
    } catch {
      return 0;
    }
    let n = 0;
    for (const { id, stored } of items) {
      if (this.trees.get(id)) continue;
      let t: Tree;
      try {
        t = decodeTree(stored, id);
      } catch {
        continue; // fetched on its own when needed, and checked then
      }
      this.remember(id, t);
      if (this.cache && !this.cache.has(objectPath(id))) this.track(this.cache.put(objectPath(id), Buffer.from(stored)));
      n++;
    }
    return n;
  }

  /**
   * Fetches one bundle part and keeps each member that verifies against its id and size, in
   * memory and in the disk cache. Anything else in it is ignored: the caller then fetches its
   * chunk on its own, so a bad bundle costs time, never bytes served.
   */
  private bundle(ref: BundleRef, demand = true): Promise<void> {
    const rel = bundlePath(ref.tree, ref.part.part);
    if (this.badBundles.has(rel) || this.bundlesDone.get(rel)) return Promise.resolve();
    let run = this.bundleRuns.get(rel);
    if (run) return run;
    if (demand && ++ref.demanded.n === 2) this.siblings(ref);
    run = (async () => {
      let b: Buffer | undefined;
      try {
        b = await this.t.get(rel, bundleMaxBytes(ref.part));
        if (!b) throw new MiqError('MIQ_REMOTE', `the remote has no bundle ${rel}`);
        const want = new Map(ref.part.members.map((x) => [x.id, x.size]));
        this.counts.bundles++;
        for (const { id, stored } of splitBundle(b, rel)) {
          const size = want.get(id);
          if (size === undefined || this.chunkMem.get(id)) continue;
          let plain: Buffer;
          try {
            plain = decodeChunk(id, stored, size, this.maxChunk);
          } catch {
            this.counts.bundleFailures++;
            continue;
          }
          this.counts.bundleChunks++;
          this.chunkMem.set(id, plain);
          if (this.cache) this.track(this.cache.put(chunkPath(id), Buffer.from(stored)));
        }
        this.bundlesDone.set(rel, true);
      } catch {
        this.counts.bundleFailures++;
        this.badBundles.add(rel);
      } finally {
        this.bundleRuns.delete(rel);
      }
    })();
    this.bundleRuns.set(rel, run);
    return run;
  }

  async startHints(tree: Id): Promise<number> {
    if (this.p.bundles === false) return 0;
    const rel = hintsPath(tree);
    let ids: Id[];
    try {
      const b = await this.t.get(rel, hintsMaxBytes());
      if (!b) return 0;
      ids = decodeHints(b, `${this.url}${rel}`);
    } catch {
      return 0; // advisory: without it, reads fetch as they come
    }
    this.counts.hints = ids.length;
    // A list naming chunks the remote does not have (stale, or hostile) stops after a few misses.
    let misses = 0;
    for (const id of ids) {
      this.track(this.hintLimit.run(async () => {
        if (this.closed || this.counts.hintBytes > HINT_BYTES_MAX || misses >= HINT_MISSES_MAX) return;
        if (this.chunkMem.get(id) || this.cache?.has(chunkPath(id))) return;
        const b = await this.chunk(id, undefined).catch(() => undefined);
        if (b) this.counts.hintBytes += b.length;
        else misses++;
      }));
    }
    return ids.length;
  }

  recordedHints(): Id[] {
    return [...(this.asked?.list ?? [])];
  }

  /** Queues the parts nearest to `ref` in its directory, up to SIBLING_BYTES, as background work. */
  private siblings(ref: BundleRef): void {
    const k = ref.all.indexOf(ref);
    let budget = SIBLING_BYTES;
    for (let d = 1; d < ref.all.length; d++) {
      for (const j of [k + d, k - d]) {
        const r = ref.all[j];
        if (!r) continue;
        const bytes = r.part.members.reduce((a, m) => a + m.size, 0);
        if (bytes > budget) return;
        budget -= bytes;
        this.track(this.background.run(() => this.bundle(r, false)));
      }
    }
  }

  /** Fetches the rest of a multi-chunk file in the background, a few chunks at a time. */
  private wholeFile(f: FileRecord, asked: Id): void {
    this.wholeStarted.set(f.id, true);
    if (f.size > (this.p.wholeFileMax ?? WHOLE_FILE_MAX)) return;
    this.counts.wholeFiles++;
    for (const c of f.chunks) {
      if (c.id === asked || this.chunkMem.get(c.id) || this.inflight.has(chunkPath(c.id)) || this.cache?.has(chunkPath(c.id))) continue;
      this.track(this.background.run(() => this.chunk(c.id, c.length)));
    }
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch(() => undefined);
    this.cacheWrites.add(q);
    void q.then(() => this.cacheWrites.delete(q));
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
      if (!rec) throw new MiqError('MIQ_MISSING', `the remote lacks file record ${id} that its index names`, { details: { id, source: 'remote' } });
      for (const c of rec.chunks) this.owner.set(c.id, rec);
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
      if (!idx) throw new MiqError('MIQ_MISSING', `the remote lacks the file index of ${path}`, { details: { path, source: 'remote' } });
      for (const [f, h] of idx) this.recordHashes.set(f, h);
    }
    this.paths.set(path, doc.record);
    return doc.record;
  }

  async listStorePaths(): Promise<StorePathRecord[]> {
    return [...this.paths.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  async readFile(file: FileRecord, offset: number, length: number): Promise<Buffer> {
    const { lo, hi } = chunkSpan(chunkStarts(file), file.chunks.length, file.size, offset, length);
    for (let i = lo; i < hi; i++) this.note(file.chunks[i]!.id);
    return readRange(file, offset, length, (id, len) => this.readLimit.run(() => this.chunk(id, len)),
      (id) => new MiqError('MIQ_MISSING', `the remote lacks chunk ${id} of file ${file.id}`, { details: { id, file: file.id, source: 'remote' } }));
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
      if (!(await this.getStorePath(path))) throw new MiqError('MIQ_MISSING', `profile ${name} names ${path}, which the remote lacks`, { details: { path, source: 'remote' } });
    })));
    return { ...ptr, stale };
  }

  stats(): ReturnType<RemoteReader['stats']> {
    return { transport: { ...this.t.stats }, ...(this.cache ? { cache: this.cache.snapshot() } : {}), memory: this.chunkMem.weight, prefetch: { ...this.counts } };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inflight.values(), ...this.bundleRuns.values(), ...this.cacheWrites]);
    await this.t.close();
  }
}
