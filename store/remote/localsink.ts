/**
 * Where `miq fetch` writes: the local store, in its crash-safe order. Chunk bodies are appended
 * to a pack in batches and synced; then one LevelDB batch indexes them together with the file
 * records and trees that name them, so a crash leaves unreferenced pack bytes at worst. A store
 * path goes in only after everything it names is indexed.
 *
 * Uses LocalStore internals (pack writer, db); see .notes/remote-needs.md for the API that would
 * replace them.
 */
import { encodeChunk } from '../codec.js';
import { MiqError } from '../errors.js';
import { type Id, idOf } from '../ids.js';
import { kChunk, kFile, kTree } from '../keys.js';
import type { LocalStore } from '../local.js';
import { encodeFileRecord, encodeTree, type FileRecord, type StorePathRecord, type Tree } from '../objects.js';
import { encodeLocation } from '../pack.js';
import type { FetchSink } from './fetch.js';

const FLUSH_BYTES = 32 << 20;

export function localSink(store: LocalStore): FetchSink & { flush(): Promise<void> } {
  let chunks: { id: Id; flags: number; plain: number; body: Buffer }[] = [];
  const pendingIds = new Set<Id>();
  let objects: { key: string; value: Buffer }[] = [];
  let bytes = 0;

  const flush = (): Promise<void> => store.writeLock.run(async () => {
    const cs = chunks;
    const os = objects;
    chunks = [];
    objects = [];
    bytes = 0;
    const ops: { type: 'put'; key: string; value: Buffer }[] = [];
    if (cs.length) {
      const w = await store.packWriter();
      const locs = await w.append(cs);
      await w.sync();
      cs.forEach((c, i) => ops.push({ type: 'put', key: kChunk(c.id), value: encodeLocation(locs[i]!) }));
    }
    for (const o of os) ops.push({ type: 'put', ...o });
    if (ops.length) await store.db.batch(ops);
    for (const c of cs) pendingIds.delete(c.id);
  });

  return {
    flush,
    async hasChunk(id) {
      return pendingIds.has(id) || (await store.hasChunk(id));
    },
    async putChunk(id, plain) {
      if (pendingIds.has(id)) return;
      if (idOf(plain) !== id) throw new MiqError('MIQ_CORRUPT', `chunk ${id} does not hash to its id`);
      pendingIds.add(id);
      const { flags, body } = encodeChunk(plain);
      chunks.push({ id, flags, plain: plain.length, body: Buffer.from(body) });
      bytes += body.length;
      if (bytes >= FLUSH_BYTES) await flush();
    },
    async putFile(rec: FileRecord) {
      objects.push({ key: kFile(rec.id), value: encodeFileRecord(rec) });
    },
    async putTree(id: Id, t: Tree) {
      const b = encodeTree(t.entries);
      if (idOf(b) !== id) throw new MiqError('MIQ_CORRUPT', `tree ${id} does not re-encode to its id`);
      objects.push({ key: kTree(id), value: b });
    },
    async putStorePath(rec: StorePathRecord) {
      await flush();
      await store.putStorePath(rec);
    },
  };
}
