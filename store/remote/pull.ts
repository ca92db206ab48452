/**
 * `miq profile pull` and the mount's pull interval: a remote's signed, rollback-checked pointer
 * becomes a local generation (store/profiles.ts `switchTo`), so rollback, the generation list and
 * the mount's pointer view work as for a local profile. The switch is one atomic meta batch.
 */
import type { ObjectReader, Store } from '../api.js';
import { forEachLimit } from './limit.js';
import { MiqError } from '../errors.js';
import type { Id } from '../ids.js';
import * as P from '../profiles.js';
import type { RemoteReader } from './reader.js';

export interface PullResult {
  profile: string;
  /** False when the local current generation already is the remote's. */
  changed: boolean;
  generation: number | undefined;
  previous: number | undefined;
  sequence: number;
  remoteGeneration: number;
  tree: Id;
  /** The remote was unreachable: the last verified pointer was used. */
  stale: boolean;
}

/** Where the pulled pointer is remembered (meta key; JSON {url, sequence, generation}). */
export const pulledKey = (profile: string): string => `lazy/pulled/${profile}`;

/**
 * Fetches the pointer and applies it. `apply` makes the generation: `switchTo` on `store` by
 * default; a CLI talking to a running mount passes the control socket's `profile.switchTo`, so
 * the serving process switches (serialised with its other profile operations) and refreshes.
 */
export async function pullProfile(
  store: Store,
  remote: RemoteReader,
  profile: string,
  apply: (want: { profile: string; paths: string[]; tree: Id; priorities?: Readonly<Record<string, number>> }) => Promise<{ generation: number; previous: number | undefined }> = (w) => P.switchTo(store, w.profile, w),
): Promise<PullResult> {
  P.checkProfileName(profile);
  const ptr = await remote.getProfile(profile);
  if (!ptr) throw new MiqError('MIQ_NOT_FOUND', `the remote ${remote.url} has no profile ${profile}`, { details: { profile } });
  const cur = await P.current(store, profile);
  const base = { profile, sequence: ptr.sequence, remoteGeneration: ptr.generation, tree: ptr.tree, stale: ptr.stale };
  if (cur && cur.tree === ptr.tree && [...cur.paths].sort().join('\n') === [...ptr.paths].sort().join('\n')) {
    return { ...base, changed: false, generation: cur.generation, previous: cur.generation };
  }
  // Making the generation merges the members' trees again: their directories too, one tree pack
  // per member, all at once.
  await forEachLimit(ptr.paths, 16, async (p) => {
    const rec = await remote.getStorePath(p);
    if (rec) await remote.loadTreePack(rec.tree);
  });
  await prefetchTrees(remote, ptr.tree);
  const r = await apply({ profile, paths: [...ptr.paths], tree: ptr.tree, ...(ptr.priorities ? { priorities: ptr.priorities } : {}) });
  await store.batchMeta([{ key: pulledKey(profile), value: Buffer.from(JSON.stringify({ url: remote.url, sequence: ptr.sequence, generation: ptr.generation, tree: ptr.tree })) }]);
  return { ...base, changed: true, generation: r.generation, previous: r.previous };
}

/**
 * Loads every directory of a tree, level by level with many requests in flight. Making the
 * generation walks the whole tree anyway (one request after another: a round trip per directory);
 * afterwards every lookup under DIR/usr is answered without the network. Files are not touched.
 */
export async function prefetchTrees(reader: Pick<ObjectReader, 'getTree'> & Partial<Pick<RemoteReader, 'loadTreePack'>>, root: Id, concurrency = 16): Promise<number> {
  // One request for all of them when the remote has the root's tree pack; the walk then only
  // checks that none is missing.
  await reader.loadTreePack?.(root);
  const seen = new Set<Id>([root]);
  let level: Id[] = [root];
  while (level.length) {
    const next: Id[] = [];
    await forEachLimit(level, concurrency, async (id) => {
      const t = await reader.getTree(id);
      if (!t) throw new MiqError('MIQ_MISSING', `the remote lacks tree ${id}`, { details: { id, source: 'remote' } });
      for (const e of t.entries) if (e.kind === 'dir' && !seen.has(e.id!)) { seen.add(e.id!); next.push(e.id!); }
    });
    level = next;
  }
  return seen.size;
}

/** Every store path any kept generation of any profile names (to load their records at start). */
export async function generationPaths(store: Store): Promise<string[]> {
  const out = new Set<string>();
  for (const p of await P.listProfiles(store)) {
    for (const g of await P.listGenerations(store, p.name)) {
      for (const path of g.paths) out.add(path);
      out.add(g.env);
    }
  }
  return [...out];
}
