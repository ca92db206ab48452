/**
 * Fixtures for push and fetch on the `memory:` store (store/memory.ts): a tree ingested with
 * fixed-size chunks, and a merged profile tree. The memory store is the push source and, through
 * `localSink`, the fetch sink: there is no second in-memory store shape.
 */
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { MiqError } from '../errors.js';
import { type Id, idOf } from '../ids.js';
import type { MemoryStore } from '../memory.js';
import { storePathName, treeId, type FileRecord, type StorePathRecord, type Tree, type TreeEntry } from '../objects.js';

/** Fixed-size chunks: the remote format does not depend on where chunk boundaries fall. */
export async function ingestToMemory(store: MemoryStore, dir: string, name: string, o: { chunkSize?: number; references?: string[] } = {}): Promise<StorePathRecord> {
  const cs = o.chunkSize ?? 64 * 1024;
  const batch = { chunks: [] as { id: Id; plain: Buffer }[], files: [] as FileRecord[], trees: [] as { id: Id; entries: TreeEntry[] }[] };
  let files = 0;
  const walk = async (d: string): Promise<{ id: Id; size: number }> => {
    const entries: TreeEntry[] = [];
    let total = 0;
    for (const n of await readdir(d)) {
      const full = join(d, n);
      const st = await lstat(full);
      const nb = Buffer.from(n);
      if (st.isDirectory()) {
        const sub = await walk(full);
        entries.push({ name: nb, kind: 'dir', size: sub.size, id: sub.id });
        total += sub.size;
      } else if (st.isSymbolicLink()) {
        const target = Buffer.from(await readlink(full));
        entries.push({ name: nb, kind: 'symlink', size: target.length, target });
      } else if (st.isFile()) {
        const bytes = await readFile(full);
        const chunks = [];
        for (let o2 = 0; o2 < bytes.length; o2 += cs) {
          const c = bytes.subarray(o2, o2 + cs);
          const id = idOf(c);
          batch.chunks.push({ id, plain: Buffer.from(c) });
          chunks.push({ id, length: c.length });
        }
        const rec: FileRecord = { id: idOf(bytes), size: bytes.length, chunks };
        batch.files.push(rec);
        entries.push({ name: nb, kind: st.mode & 0o111 ? 'exe' : 'file', size: bytes.length, id: rec.id });
        total += bytes.length;
        files++;
      }
    }
    const { id } = treeId(entries);
    batch.trees.push({ id, entries });
    return { id, size: total };
  };
  const root = await walk(dir);
  await store.writer.writeObjects(batch);
  const rec: StorePathRecord = {
    path: storePathName(name, root.id), name, key: root.id, tree: root.id,
    references: [...(o.references ?? [])].sort(), size: root.size, files, made: { kind: 'ingest' }, signatures: [],
  };
  await store.putStorePath(rec);
  return rec;
}

/** A tree that is the union of `ids` (directories merged, a clash of non-directories is an error). */
export async function mergeTrees(store: MemoryStore, ids: readonly Id[]): Promise<Id> {
  const get = async (id: Id): Promise<Tree> => {
    const t = await store.getTree(id);
    if (!t) throw new MiqError('MIQ_MISSING', `tree ${id} is not in the store`, { details: { id, kind: 'tree' } });
    return t;
  };
  const merge = async (trees: Tree[]): Promise<Id> => {
    const by = new Map<string, TreeEntry[]>();
    for (const t of trees) for (const e of t.entries) by.set(e.name.toString('latin1'), [...(by.get(e.name.toString('latin1')) ?? []), e]);
    const out: TreeEntry[] = [];
    for (const [name, es] of by) {
      if (es.length === 1) out.push(es[0]!);
      else if (es.every((e) => e.kind === 'dir')) {
        const id = await merge(await Promise.all(es.map((e) => get(e.id!))));
        out.push({ name: es[0]!.name, kind: 'dir', size: es.reduce((a, e) => a + e.size, 0), id });
      } else throw new MiqError('MIQ_CONFLICT', `profile members clash at ${name}`);
    }
    return store.putTree(out);
  };
  return merge(await Promise.all(ids.map(get)));
}
