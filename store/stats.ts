/** What the store holds and what each store path costs. */
import type { Id } from './ids.js';
import type { PruneStore } from './api.js';
import { visitTree } from './reach.js';
import { listGenerations, listProfiles } from './profiles.js';

export interface PathStats {
  path: string;
  logicalBytes: number;
  /** Stored bytes of chunks this path shares with at least one other path. */
  sharedBytes: number;
  /** Stored bytes of chunks only this path uses. */
  uniqueBytes: number;
}

export interface StoreStats {
  storePaths: number;
  logicalBytes: number;
  /** Bytes on disk: packs + database. */
  storedBytes: number;
  packBytes: number;
  dbBytes: number;
  /** Compressed bodies of indexed chunks (without pack headers or garbage). */
  chunkBytes: number;
  uniqueChunks: number;
  plainChunkBytes: number;
  /** logicalBytes / storedBytes: data only, so making profiles does not raise it. */
  dedupRatio: number;
  paths: PathStats[];
  /**
   * The merged trees of profile generations (`env` store paths): their files are the members'
   * files, so they cost index entries, not chunks. Counted here, apart from the data above.
   */
  generations: { envPaths: number; logicalBytes: number };
}

export async function storeStats(store: PruneStore): Promise<StoreStats> {
  const stored = new Map<string, number>();
  let chunkBytes = 0, plainChunkBytes = 0;
  for await (const c of store.listChunks()) {
    stored.set(c.id, c.stored);
    chunkBytes += c.stored;
    plainChunkBytes += c.plain;
  }
  const envs = new Set<string>();
  for (const p of await listProfiles(store)) for (const g of await listGenerations(store, p.name)) envs.add(g.env);
  const all = await store.listStorePaths();
  const records = all.filter((r) => !envs.has(r.path));
  const envRecords = all.filter((r) => envs.has(r.path));
  const users = new Map<string, number>();
  const perPath = new Map<string, Set<string>>();
  for (const r of records) {
    const chunks = new Set<string>();
    await visitTree(store, r.tree, { chunk: (id: Id) => { chunks.add(id); } }, new Set(), new Set());
    perPath.set(r.path, chunks);
    for (const c of chunks) users.set(c, (users.get(c) ?? 0) + 1);
  }
  const paths: PathStats[] = records.map((r) => {
    let shared = 0, unique = 0;
    for (const c of perPath.get(r.path)!) {
      const s = stored.get(c) ?? 0;
      if ((users.get(c) ?? 0) > 1) shared += s;
      else unique += s;
    }
    return { path: r.path, logicalBytes: r.size, sharedBytes: shared, uniqueBytes: unique };
  });
  const disk = await store.diskUsage();
  const logical = records.reduce((a, r) => a + r.size, 0);
  const storedBytes = disk.packs + disk.db;
  return {
    storePaths: records.length,
    logicalBytes: logical,
    storedBytes,
    packBytes: disk.packs,
    dbBytes: disk.db,
    chunkBytes,
    uniqueChunks: stored.size,
    plainChunkBytes,
    dedupRatio: storedBytes > 0 ? logical / storedBytes : 0,
    paths,
    generations: { envPaths: envRecords.length, logicalBytes: envRecords.reduce((a, r) => a + r.size, 0) },
  };
}
