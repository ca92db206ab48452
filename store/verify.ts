/**
 * Re-hashes everything reachable from every store path: trees (by their encoding), files (whole
 * content), chunks (plain bytes). Names each damaged object and the store paths that use it.
 */
import { MiqError, isMiqError } from './errors.js';
import { IdHasher, type Id } from './ids.js';
import type { PruneStore } from './api.js';
import type { FileRecord, Tree } from './objects.js';
import { addDeltaBases } from './reach.js';

export interface Damage {
  kind: 'chunk' | 'file' | 'tree' | 'path';
  id: string;
  problem: 'missing' | 'corrupt';
  detail: string;
  paths: string[];
}

export interface VerifyReport {
  ok: boolean;
  paths: number;
  trees: number;
  files: number;
  chunks: number;
  bytes: number;
  damaged: Damage[];
  /** Indexed chunks that no store path uses, directly or as a delta's base: left by an ingest
   * that was killed or failed (or one still running), or by an unpin without gc. Not damage:
   * `miq gc` reclaims them. */
  unreferenced: { chunks: number; storedBytes: number };
  seconds: number;
}

export async function verifyStore(store: PruneStore, onProgress?: (p: { paths: number; total: number; bytes: number }) => void): Promise<VerifyReport> {
  const t0 = performance.now();
  const damage = new Map<string, Damage>();
  const chunkOk = new Map<string, boolean>();
  const fileBad = new Map<string, string[]>(); // file id → damage keys
  const treeBad = new Map<string, string[]>();
  let bytes = 0;

  const note = (kind: Damage['kind'], id: string, problem: Damage['problem'], detail: string): string => {
    const k = `${kind}:${id}`;
    if (!damage.has(k)) damage.set(k, { kind, id, problem, detail, paths: [] });
    return k;
  };

  /** Verifies a chunk once; returns its damage key, or its bytes when this call read them (the
   * file check hashes those rather than decoding the chunk a second time). */
  const checkChunk = async (id: Id, length: number): Promise<{ bad?: string; plain?: Buffer }> => {
    const known = chunkOk.get(id);
    if (known === true) return {};
    if (known === false) return { bad: `chunk:${id}` };
    try {
      const plain = await store.checkChunk(id);
      if (!plain) {
        chunkOk.set(id, false);
        return { bad: note('chunk', id, 'missing', 'not in the chunk index') };
      }
      if (plain.length !== length) throw new MiqError('MIQ_CORRUPT', `has ${plain.length} bytes, expected ${length}`);
      chunkOk.set(id, true);
      bytes += plain.length;
      return { plain };
    } catch (e) {
      if (!isMiqError(e)) throw e;
      chunkOk.set(id, false);
      return { bad: note('chunk', id, 'corrupt', e.message) };
    }
  };

  const checkFile = async (id: Id): Promise<string[]> => {
    const memo = fileBad.get(id);
    if (memo) return memo;
    const bad: string[] = [];
    let rec: FileRecord | undefined;
    let broken: string | undefined;
    try {
      rec = await store.getFile(id);
    } catch (e) {
      if (!isMiqError(e, 'MIQ_CORRUPT')) throw e;
      broken = e.message;
    }
    if (broken !== undefined) {
      bad.push(note('file', id, 'corrupt', broken));
    } else if (!rec) {
      bad.push(note('file', id, 'missing', 'file record not in the store'));
    } else {
      {
        // Whole-content hash as well: catches a record whose chunk list is wrong. A file that is
        // one chunk has the chunk's id, so the chunk check covers it.
        const h = rec.chunks.length === 1 && rec.chunks[0]!.id === id ? undefined : new IdHasher();
        for (const c of rec.chunks) {
          const { bad: k, plain } = await checkChunk(c.id, c.length);
          if (k) bad.push(k);
          else if (h) h.update(plain ?? (await store.checkChunk(c.id))!);
        }
        if (h && bad.length === 0 && h.digest() !== id) bad.push(note('file', id, 'corrupt', 'content does not hash to the file id'));
      }
    }
    fileBad.set(id, bad);
    return bad;
  };

  const checkTree = async (id: Id): Promise<string[]> => {
    const memo = treeBad.get(id);
    if (memo) return memo;
    const bad: string[] = [];
    let t: Tree | undefined;
    let broken: string | undefined;
    try {
      t = await store.getTree(id);
    } catch (e) {
      if (!isMiqError(e, 'MIQ_CORRUPT')) throw e;
      broken = e.message;
    }
    if (broken !== undefined) {
      bad.push(note('tree', id, 'corrupt', broken));
    } else if (!t) {
      bad.push(note('tree', id, 'missing', 'tree not in the store'));
    } else {
      {
        for (const e of t.entries) {
          if (e.kind === 'dir') bad.push(...(await checkTree(e.id!)));
          else if (e.kind === 'file' || e.kind === 'exe') bad.push(...(await checkFile(e.id!)));
        }
      }
    }
    const uniq = [...new Set(bad)];
    treeBad.set(id, uniq);
    return uniq;
  };

  const records = await store.listStorePaths();
  let n = 0;
  for (const r of records) {
    const bad = await checkTree(r.tree);
    for (const ref of r.references) {
      if (ref !== r.path && !(await store.getStorePath(ref))) bad.push(note('path', ref, 'missing', `referenced by ${r.path}`));
    }
    for (const k of bad) damage.get(k)!.paths.push(r.path);
    n++;
    onProgress?.({ paths: n, total: records.length, bytes });
  }
  for (const d of damage.values()) d.paths = [...new Set(d.paths)].sort();

  // Everything the index holds that the walk above did not reach (bases of deltas count as
  // reached: gc keeps them for their deltas).
  const stored = new Map<string, number>();
  const refsOf = new Map<string, readonly string[]>();
  for await (const c of store.listChunks()) {
    stored.set(c.id, c.stored);
    if (c.bases) refsOf.set(c.id, c.bases);
  }
  const reached = new Set(chunkOk.keys());
  addDeltaBases(reached, refsOf);
  const unreferenced = { chunks: 0, storedBytes: 0 };
  for (const [id, n] of stored) {
    if (reached.has(id)) continue;
    unreferenced.chunks++;
    unreferenced.storedBytes += n;
  }
  return {
    unreferenced,
    ok: damage.size === 0,
    paths: records.length,
    trees: treeBad.size,
    files: fileBad.size,
    chunks: chunkOk.size,
    bytes,
    damaged: [...damage.values()],
    seconds: (performance.now() - t0) / 1000,
  };
}
