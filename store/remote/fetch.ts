/**
 * `miq fetch`: pulls a whole closure from a remote, verified, for offline use. Writes go to the
 * sink in the store's crash-safe order (chunks, file records, trees bottom-up, then the store path
 * after the paths it references), so an interrupted fetch leaves nothing that names a missing
 * object. Without a sink it only warms the reader's cache.
 */
import { MiqError } from '../errors.js';
import type { Id } from '../ids.js';
import type { FileRecord, StorePathRecord, Tree } from '../objects.js';
import { forEachLimit } from './limit.js';
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
  profile?: { name: string; sequence: number; generation: number; tree: Id };
}

export async function prefetch(remote: RemoteReader, what: { paths?: readonly string[]; profile?: string }, sink?: FetchSink, concurrency = 16): Promise<FetchResult> {
  const res: FetchResult = { paths: [], files: 0, chunks: 0, bytes: 0 };
  const roots = [...(what.paths ?? [])];
  let mergedTree: Id | undefined;
  if (what.profile) {
    const ptr = await remote.getProfile(what.profile);
    if (!ptr) throw new MiqError('MIQ_NOT_FOUND', `the remote has no profile ${what.profile}`);
    roots.push(...ptr.paths);
    mergedTree = ptr.tree;
    res.profile = { name: ptr.profile, sequence: ptr.sequence, generation: ptr.generation, tree: ptr.tree };
  }
  const doneTrees = new Set<Id>();
  const doneFiles = new Set<Id>();
  const tree = async (id: Id): Promise<void> => {
    if (doneTrees.has(id)) return;
    const t = await remote.getTree(id);
    if (!t) throw new MiqError('MIQ_REMOTE', `the remote lacks tree ${id}`, { details: { id } });
    await forEachLimit(t.entries.filter((e) => (e.kind === 'file' || e.kind === 'exe') && !doneFiles.has(e.id!)), concurrency, async (e) => {
      doneFiles.add(e.id!);
      const rec = await remote.getFile(e.id!);
      if (!rec) throw new MiqError('MIQ_REMOTE', `the remote lacks file ${e.id}`, { details: { id: e.id } });
      for (const c of rec.chunks) {
        if (sink && (await sink.hasChunk(c.id))) continue;
        const b = await remote.chunks.getSized(c.id, c.length);
        if (!b) throw new MiqError('MIQ_REMOTE', `the remote lacks chunk ${c.id}`, { details: { id: c.id } });
        await sink?.putChunk(c.id, b);
        res.chunks++;
        res.bytes += b.length;
      }
      await sink?.putFile(rec);
      res.files++;
    });
    for (const e of t.entries) if (e.kind === 'dir') await tree(e.id!);
    await sink?.putTree(id, t);
    doneTrees.add(id);
  };
  const state = new Map<string, boolean>();
  const path = async (p: string): Promise<void> => {
    if (state.has(p)) return;
    state.set(p, false);
    const rec = await remote.getStorePath(p);
    if (!rec) throw new MiqError('MIQ_NOT_FOUND', `the remote has no store path ${p}`, { details: { path: p } });
    for (const r of rec.references) if (r !== p) await path(r);
    await tree(rec.tree);
    await sink?.putStorePath(rec);
    state.set(p, true);
    res.paths.push(p);
  };
  for (const r of roots) await path(r);
  if (mergedTree) await tree(mergedTree);
  return res;
}
