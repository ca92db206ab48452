/**
 * A read-through Store for the lazy mount (DESIGN §8): the local store first, then a remote.
 *
 *  - meta (profiles, generations, pins) lives in the local store only; every write goes there.
 *  - store paths, trees, file records and chunks come from the local store when it has them, else
 *    from the remote reader, which verifies every byte and keeps a size-bounded disk cache. Remote
 *    bytes never enter the local packs or index, so the local store stays self-consistent (`miq
 *    verify` checks it as ever) and a killed mount leaves at most a torn temp file in the cache.
 *  - objects the local store refuses because they name remote-only children (the merged trees and
 *    env path of a profile pulled from a remote) are kept under meta keys `lazy/…`, re-hashed when
 *    read back. GC and verify do not walk meta, so they neither need nor drop them.
 */
import type { ChunkSource, IngestOptions, IngestResult, PruneStore, Store, WriteStore } from '../api.js';
import { MiqError, isMiqError } from '../errors.js';
import type { Id } from '../ids.js';
import { ROOT_PREFIX } from '../keys.js';
import { decodeStorePath, decodeTree, encodeStorePath, treeId, type FileRecord, type StorePathRecord, type Tree, type TreeEntry } from '../objects.js';
import { forEachLimit } from './limit.js';
import type { RemoteReader } from './reader.js';

const TREE_KEY = 'lazy/tree/';
const PATH_KEY = 'lazy/path/';
/** Meta key: JSON {url, trustedKeys} of the remote a lazy store was mounted from (`miq profile pull`'s default). */
export const REMOTE_URL_KEY = 'lazy/remote';

export interface LayeredStore extends Store {
  readonly local: Store;
  readonly remote: RemoteReader;
  /** Loads the records of `paths` and everything they reference, so their files resolve. */
  loadClosure(paths: Iterable<string>): Promise<void>;
}

export function layeredStore(local: Store, remote: RemoteReader): LayeredStore {
  return new Layered(local, remote);
}

class Layered implements LayeredStore {
  readonly dir: string;
  readonly chunks: ChunkSource;
  /** gc, verify and stats work on the local part: remote bytes never enter it. */
  readonly maintenance: PruneStore | undefined;
  readonly writer: WriteStore | undefined;
  private readonly overlayTrees = new Map<Id, Tree>();
  private readonly overlayPaths = new Map<string, StorePathRecord>();
  private closing: Promise<void> | undefined;

  constructor(readonly local: Store, readonly remote: RemoteReader) {
    this.dir = local.dir;
    this.maintenance = local.maintenance;
    this.writer = local.writer;
    this.chunks = {
      get: async (id) => (await local.chunks.get(id)) ?? remote.chunks.get(id),
      has: async (id) => (await local.chunks.has(id)) || remote.chunks.has(id),
    };
  }

  open(): Promise<void> {
    return this.local.open();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.remote.close().catch(() => undefined);
      await this.local.close();
    })();
    return this.closing;
  }

  // --- reads: local, overlay, remote ------------------------------------------------------

  async getFile(id: Id): Promise<FileRecord | undefined> {
    return (await this.local.getFile(id)) ?? this.remote.getFile(id);
  }

  async getTree(id: Id): Promise<Tree | undefined> {
    return (await this.local.getTree(id)) ?? (await this.overlayTree(id)) ?? this.remote.getTree(id);
  }

  private async overlayTree(id: Id): Promise<Tree | undefined> {
    const m = this.overlayTrees.get(id);
    if (m) return m;
    const b = await this.local.getMeta(TREE_KEY + id);
    if (!b) return undefined;
    const t = decodeTree(b, id);
    this.overlayTrees.set(id, t);
    return t;
  }

  async getStorePath(path: string): Promise<StorePathRecord | undefined> {
    return (await this.local.getStorePath(path)) ?? (await this.overlayPath(path)) ?? this.remote.getStorePath(path);
  }

  private async overlayPath(path: string): Promise<StorePathRecord | undefined> {
    const m = this.overlayPaths.get(path);
    if (m) return m;
    const b = await this.local.getMeta(PATH_KEY + path);
    if (!b) return undefined;
    const r = decodeStorePath(b);
    if (r.path !== path) throw new MiqError('MIQ_CORRUPT', `lazy store path record ${path} names ${r.path}`);
    this.overlayPaths.set(path, r);
    return r;
  }

  /** Local and overlay records, and the remote paths known so far (a static server cannot list). */
  async listStorePaths(): Promise<StorePathRecord[]> {
    const by = new Map<string, StorePathRecord>();
    for (const r of await this.remote.listStorePaths()) by.set(r.path, r);
    for (const { value } of await this.local.listMeta(PATH_KEY)) {
      const r = decodeStorePath(value);
      by.set(r.path, r);
    }
    for (const r of await this.local.listStorePaths()) by.set(r.path, r);
    return [...by.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  async readFile(file: FileRecord, offset: number, length: number): Promise<Buffer> {
    try {
      return await this.local.readFile(file, offset, length);
    } catch (e) {
      if (!isMiqError(e, 'MIQ_MISSING')) throw e;
      return this.remote.readFile(file, offset, length);
    }
  }

  async loadClosure(paths: Iterable<string>): Promise<void> {
    const seen = new Set<string>();
    let todo = [...paths];
    while (todo.length) {
      const next: string[] = [];
      await forEachLimit(todo.filter((p) => !seen.has(p)), 8, async (p) => {
        if (seen.has(p)) return;
        seen.add(p);
        const r = await this.getStorePath(p);
        if (r) for (const ref of r.references) if (!seen.has(ref)) next.push(ref);
      });
      todo = next;
    }
  }

  // --- writes: local, else the overlay --------------------------------------------------

  async putTree(entries: readonly TreeEntry[]): Promise<Id> {
    const { id, bytes } = treeId(entries);
    if (await this.local.getTree(id)) return id;
    try {
      return await this.local.putTree(entries);
    } catch (e) {
      if (!isMiqError(e, 'MIQ_MISSING')) throw e;
    }
    if (await this.overlayTree(id)) return id;
    // A merged directory of a pushed profile is on the remote already; offline, keep our own.
    const there = await this.remote.getTree(id).catch(() => undefined);
    if (there) return id;
    for (const e of entries) {
      if (e.kind === 'dir' && !(await this.getTree(e.id!))) throw new MiqError('MIQ_MISSING', `tree ${e.id} (entry ${e.name.toString()}) is neither local nor on the remote`);
    }
    await this.local.batchMeta([{ key: TREE_KEY + id, value: bytes }]);
    return id;
  }

  putBytes(bytes: Buffer): Promise<FileRecord> {
    return this.local.putBytes(bytes);
  }

  async putStorePath(rec: StorePathRecord): Promise<void> {
    try {
      return await this.local.putStorePath(rec);
    } catch (e) {
      if (!isMiqError(e, 'MIQ_MISSING')) throw e;
    }
    if (!(await this.getTree(rec.tree))) throw new MiqError('MIQ_MISSING', `store path ${rec.path}: its tree ${rec.tree} is neither local nor on the remote`);
    for (const r of rec.references) {
      if (r !== rec.path && !(await this.getStorePath(r))) throw new MiqError('MIQ_MISSING', `store path ${rec.path} refers to ${r}, which is neither local nor on the remote`);
    }
    await this.local.batchMeta([{ key: PATH_KEY + rec.path, value: encodeStorePath(rec) }]);
    this.overlayPaths.set(rec.path, rec);
  }

  ingest(dir: string, opts?: IngestOptions): Promise<IngestResult> {
    return this.local.ingest(dir, opts);
  }

  async pin(path: string, root?: string): Promise<void> {
    if (await this.local.getStorePath(path)) return this.local.pin(path, root);
    if (!(await this.getStorePath(path))) throw new MiqError('MIQ_NOT_FOUND', `no store path ${path}, locally or on ${this.remote.url}`);
    await this.local.batchMeta([{ key: ROOT_PREFIX + (root ?? path), value: Buffer.from(path) }]);
  }

  unpin(rootOrPath: string): Promise<boolean> {
    return this.local.unpin(rootOrPath);
  }

  listRoots(): Promise<{ root: string; path: string }[]> {
    return this.local.listRoots();
  }

  getMeta(key: string): Promise<Buffer | undefined> {
    return this.local.getMeta(key);
  }

  batchMeta(ops: { key: string; value: Buffer | undefined }[]): Promise<void> {
    return this.local.batchMeta(ops);
  }

  listMeta(prefix: string): Promise<{ key: string; value: Buffer }[]> {
    return this.local.listMeta(prefix);
  }
}
