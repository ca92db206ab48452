/**
 * Mark from the roots (pins, profile generations), then let the store prune the rest (DESIGN §4):
 * the mark is generic over the store's read interface, the sweep and repack are the store's own
 * (it knows its storage and the crash-safe order).
 */
import type { LiveSet, PruneReport, PruneStore } from './api.js';
import type { Id } from './ids.js';
import { addDeltaBases, closure, rootPaths, visitTree } from './reach.js';
import { cleanTempRoots, liveTempRoots } from './temproots.js';

export type GcReport = PruneReport;

/** Everything the roots reach, with the delta bases of reached chunks. */
export async function markLive(store: PruneStore): Promise<LiveSet> {
  const roots = await rootPaths(store);
  // Running builds' temporary roots (store/temproots.ts); those of dead processes are ignored.
  for (const p of await liveTempRoots(store)) roots.add(p);
  const live = await closure(store, roots);
  const trees = new Set<string>();
  const files = new Set<string>();
  const chunks = new Set<string>();
  for (const r of live.values()) {
    await visitTree(store, r.tree, { chunk: (id) => { chunks.add(id); } }, trees, files);
  }
  const refsOf = new Map<string, readonly Id[]>();
  for await (const c of store.listChunks()) if (c.bases) refsOf.set(c.id, c.bases);
  addDeltaBases(chunks, refsOf);
  return { paths: new Set(live.keys()), trees, files, chunks, roots: roots.size };
}

export async function gcStore(store: PruneStore, opts: { dryRun?: boolean; onProgress?: (phase: string, done: number) => void } = {}): Promise<GcReport> {
  // Stale temporary roots go first: they are ignored by the mark anyway, and this keeps prune's
  // write-locked section free of meta writes.
  if (!opts.dryRun) await cleanTempRoots(store);
  return store.prune(() => markLive(store), opts);
}
