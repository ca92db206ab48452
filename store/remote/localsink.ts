/**
 * Where `miq fetch` writes: any store with the write capability, through its crash-safe batches.
 * Chunks, file records and trees are collected and written together (the store makes chunk
 * bodies durable before its index names them), so a crash leaves unreferenced bytes at worst. A
 * store path goes in only after everything it names is written.
 */
import type { Store, WriteStore } from '../api.js';
import { writerOf } from '../api.js';
import { MiqError } from '../errors.js';
import { type Id, idOf } from '../ids.js';
import type { FileRecord, StorePathRecord, Tree } from '../objects.js';
import type { FetchSink } from './fetch.js';

const FLUSH_BYTES = 32 << 20;

/** A fetch sink writing into `store` (which must be writable from this process). */
export function localSink(store: Store): FetchSink & { flush(): Promise<void> } {
  return writeSink(writerOf(store, 'fetching into the store'), store);
}

export function writeSink(w: WriteStore, store: Pick<Store, 'chunks' | 'putStorePath'>): FetchSink & { flush(): Promise<void> } {
  let chunks: { id: Id; plain: Buffer }[] = [];
  const pendingIds = new Set<Id>();
  let files: FileRecord[] = [];
  let trees: { id: Id; entries: Tree['entries'] }[] = [];
  let bytes = 0;
  let chain: Promise<void> = Promise.resolve();

  const flush = (): Promise<void> => {
    const batch = { chunks, files, trees };
    chunks = [];
    files = [];
    trees = [];
    bytes = 0;
    const run = chain.then(async () => {
      if (batch.chunks.length || batch.files.length || batch.trees.length) await w.writeObjects(batch);
      for (const c of batch.chunks) pendingIds.delete(c.id);
    });
    chain = run.catch(() => {});
    return run;
  };

  return {
    flush,
    async hasChunk(id) {
      return pendingIds.has(id) || (await store.chunks.has(id));
    },
    async putChunk(id, plain) {
      if (pendingIds.has(id)) return;
      if (idOf(plain) !== id) throw new MiqError('MIQ_CORRUPT', `chunk ${id} does not hash to its id`);
      pendingIds.add(id);
      chunks.push({ id, plain });
      bytes += plain.length;
      if (bytes >= FLUSH_BYTES) await flush();
    },
    async putFile(rec: FileRecord) {
      files.push(rec);
    },
    async putTree(id: Id, t: Tree) {
      trees.push({ id, entries: t.entries });
    },
    async putStorePath(rec: StorePathRecord) {
      await flush();
      await store.putStorePath(rec);
    },
  };
}
