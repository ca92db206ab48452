/**
 * `miq fetch`: pulls a whole closure from a remote, verified, for offline use. Writes go to the
 * sink in the store's crash-safe order (chunks, file records, trees bottom-up, then the store path
 * after the paths it references), so an interrupted fetch leaves nothing that names a missing
 * object. Without a sink it only warms the reader's cache.
 */
import { fromRemote, MiqError } from '../errors.js';
import type { Id } from '../ids.js';
import type { FileRecord, StorePathRecord, Tree } from '../objects.js';
import { forEachLimit, Limiter } from './limit.js';
import type { RemoteReader } from './reader.js';

export interface FetchSink {
  hasChunk(id: Id): Promise<boolean>;
  putChunk(id: Id, plain: Buffer): Promise<void>;
  putFile(rec: FileRecord): Promise<void>;
  putTree(id: Id, tree: Tree): Promise<void>;
  putStorePath(rec: StorePathRecord): Promise<void>;
}

export interface FetchResult {
  paths: string[];
  files: number;
  chunks: number;
  bytes: number;
  profile?: { name: string; sequence: number; generation: number; tree: Id; paths: readonly string[]; priorities?: Readonly<Record<string, number>> };
}

export interface FetchProgress {
  files: number;
  filesTotal: number;
  bytes: number;
}

/**
 * Three passes, so the network stays busy: the closure's records; every tree (one tree pack per
 * root where the remote has one); then all files at once, `concurrency` files and as many chunk
 * requests in flight (a directory's small files come as bundles). Trees and store paths go to the
 * sink only after everything they name.
 */
export async function prefetch(
  remote: RemoteReader,
  what: { paths?: readonly string[]; profile?: string },
  sink?: FetchSink,
  concurrency = 16,
  onProgress?: (p: FetchProgress) => void,
): Promise<FetchResult> {
  const res: FetchResult = { paths: [], files: 0, chunks: 0, bytes: 0 };
  const roots = [...(what.paths ?? [])];
  const named = new Set(what.paths ?? []);
  let mergedTree: Id | undefined;
  if (what.profile) {
    const ptr = await remote.getProfile(what.profile);
    if (!ptr) throw new MiqError('MIQ_NOT_FOUND', `the remote has no profile ${what.profile}`);
    roots.push(...ptr.paths);
    mergedTree = ptr.tree;
    res.profile = { name: ptr.profile, sequence: ptr.sequence, generation: ptr.generation, tree: ptr.tree, paths: ptr.paths, priorities: ptr.priorities };
  }

  // 1. The closure: records found breadth first, many at once; then ordered here, each path
  // after the paths it references.
  const recs = new Map<string, StorePathRecord>();
  for (let level = [...new Set(roots)]; level.length;) {
    const next = new Set<string>();
    await forEachLimit(level, concurrency, async (p) => {
      const rec = await remote.getStorePath(p);
      // A root the caller named is NOT_FOUND; a reference or a profile's member the remote's own
      // records name is MISSING: the remote is incomplete (errors.ts).
      if (!rec) throw named.has(p) ? new MiqError('MIQ_NOT_FOUND', `the remote has no store path ${p}`, { details: { path: p } }) : fromRemote(new MiqError('MIQ_MISSING', `the remote has no store path ${p}, which its own records name; the remote is incomplete (push the closure again)`, { details: { path: p } }));
      recs.set(p, rec);
    });
    for (const p of level) for (const r of recs.get(p)!.references) if (!recs.has(r)) next.add(r);
    level = [...next];
  }
  const order: StorePathRecord[] = [];
  const placed = new Set<string>();
  const place = (p: string): void => {
    if (placed.has(p)) return;
    placed.add(p); // before the references: a cycle is cut, not followed forever
    for (const r of recs.get(p)!.references) place(r);
    order.push(recs.get(p)!);
  };
  for (const r of roots) place(r);

  // 2. Every tree, level by level; `post` lists them children first.
  const tops = [...order.map((r) => r.tree), ...(mergedTree ? [mergedTree] : [])];
  await forEachLimit(new Set(tops), 4, async (t) => { await remote.loadTreePack(t); });
  const trees = new Map<Id, Tree>();
  const post: Id[] = [];
  const files = new Map<Id, number>();
  let level = [...new Set(tops)];
  const levels: Id[][] = [];
  while (level.length) {
    const next = new Set<Id>();
    await forEachLimit(level, concurrency, async (id) => {
      const t = await remote.getTree(id);
      if (!t) throw new MiqError('MIQ_MISSING', `the remote lacks tree ${id}`, { details: { id, source: 'remote' } });
      trees.set(id, t);
    });
    for (const id of level) {
      for (const e of trees.get(id)!.entries) {
        if (e.kind === 'dir' && !trees.has(e.id!)) next.add(e.id!);
        else if ((e.kind === 'file' || e.kind === 'exe') && !files.has(e.id!)) files.set(e.id!, e.size);
      }
    }
    levels.push(level);
    level = [...next];
  }
  for (let i = levels.length - 1; i >= 0; i--) post.push(...levels[i]!);

  // 3. Files: chunks, then the record that names them.
  const filesTotal = files.size;
  const chunkLimit = new Limiter(concurrency);
  let lastShown = 0;
  await forEachLimit(files.keys(), concurrency, async (fid) => {
    const rec = await remote.getFile(fid);
    if (!rec) throw new MiqError('MIQ_MISSING', `the remote lacks file ${fid}`, { details: { id: fid, source: 'remote' } });
    await Promise.all(rec.chunks.map((c) => chunkLimit.run(async () => {
      if (sink && (await sink.hasChunk(c.id))) return;
      const b = await remote.chunks.getSized(c.id, c.length);
      if (!b) throw new MiqError('MIQ_MISSING', `the remote lacks chunk ${c.id}`, { details: { id: c.id, source: 'remote' } });
      await sink?.putChunk(c.id, b);
      res.chunks++;
      res.bytes += b.length;
    })));
    await sink?.putFile(rec);
    res.files++;
    const now = performance.now();
    if (onProgress && now - lastShown > 100) {
      lastShown = now;
      onProgress({ files: res.files, filesTotal, bytes: res.bytes });
    }
  });

  // 4. Trees bottom-up, then the store paths in reference order.
  if (sink) for (const id of post) await sink.putTree(id, trees.get(id)!);
  for (const rec of order) {
    await sink?.putStorePath(rec);
    res.paths.push(rec.path);
  }
  return res;
}
