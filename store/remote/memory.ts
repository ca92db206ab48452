/**
 * `memory:` — an in-memory store with the read side push needs and the write side fetch fills.
 * It serves tests and benchmarks that must not depend on the local store, and documents the
 * smallest thing `push` and `prefetch` talk to.
 */
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChunkSource } from '../api.js';
import { MiqError } from '../errors.js';
import { type Id, idOf } from '../ids.js';
import { storePathName, treeId, type FileRecord, type StorePathRecord, type Tree, type TreeEntry } from '../objects.js';
import type { FetchSink } from './fetch.js';
import type { PushSource } from './push.js';

export class MemorySource implements PushSource, FetchSink {
  readonly chunkMap = new Map<Id, Buffer>();
  readonly fileMap = new Map<Id, FileRecord>();
  readonly treeMap = new Map<Id, Tree>();
  readonly pathMap = new Map<string, StorePathRecord>();
  readonly chunks: ChunkSource = {
    get: async (id) => this.chunkMap.get(id),
    has: async (id) => this.chunkMap.has(id),
  };
  async getStorePath(p: string) { return this.pathMap.get(p); }
  async getTree(id: Id) { return this.treeMap.get(id); }
  async getFile(id: Id) { return this.fileMap.get(id); }
  async hasChunk(id: Id) { return this.chunkMap.has(id); }
  async putChunk(id: Id, plain: Buffer) {
    if (idOf(plain) !== id) throw new MiqError('MIQ_CORRUPT', `chunk ${id} does not hash to its id`);
    this.chunkMap.set(id, plain);
  }
  async putFile(rec: FileRecord) { this.fileMap.set(rec.id, rec); }
  async putTree(id: Id, t: Tree) { this.treeMap.set(id, t); }
  async putStorePath(rec: StorePathRecord) { this.pathMap.set(rec.path, rec); }

  /** A tree that is the union of `ids` (directories merged, a clash of non-directories is an error). */
  mergeTrees(ids: readonly Id[]): Id {
    const merge = (trees: Tree[]): Id => {
      const by = new Map<string, TreeEntry[]>();
      for (const t of trees) for (const e of t.entries) by.set(e.name.toString('latin1'), [...(by.get(e.name.toString('latin1')) ?? []), e]);
      const out: TreeEntry[] = [];
      for (const [name, es] of by) {
        if (es.length === 1) out.push(es[0]!);
        else if (es.every((e) => e.kind === 'dir')) {
          const id = merge(es.map((e) => this.treeMap.get(e.id!)!));
          out.push({ name: es[0]!.name, kind: 'dir', size: es.reduce((a, e) => a + e.size, 0), id });
        } else throw new MiqError('MIQ_CONFLICT', `profile members clash at ${name}`);
      }
      const { id } = treeId(out);
      this.treeMap.set(id, { entries: out });
      return id;
    };
    return merge(ids.map((i) => this.treeMap.get(i)!));
  }
}

/** Fixed-size chunks: the remote format does not depend on where chunk boundaries fall. */
export async function ingestToMemory(src: MemorySource, dir: string, name: string, o: { chunkSize?: number; references?: string[] } = {}): Promise<StorePathRecord> {
  const cs = o.chunkSize ?? 64 * 1024;
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
          src.chunkMap.set(id, Buffer.from(c));
          chunks.push({ id, length: c.length });
        }
        const rec: FileRecord = { id: idOf(bytes), size: bytes.length, chunks };
        src.fileMap.set(rec.id, rec);
        entries.push({ name: nb, kind: st.mode & 0o111 ? 'exe' : 'file', size: bytes.length, id: rec.id });
        total += bytes.length;
        files++;
      }
    }
    const { id } = treeId(entries);
    src.treeMap.set(id, { entries });
    return { id, size: total };
  };
  const root = await walk(dir);
  const rec: StorePathRecord = {
    path: storePathName(name, root.id), name, key: root.id, tree: root.id,
    references: [...(o.references ?? [])].sort(), size: root.size, files, made: { kind: 'ingest' }, signatures: [],
  };
  src.pathMap.set(rec.path, rec);
  return rec;
}
