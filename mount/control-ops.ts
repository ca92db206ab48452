/** The operations the serving process answers on its control socket. */
import { maintenanceOf, type Store } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import * as P from '../store/profiles.js';
import type { ControlOp } from './control.js';

const STORE_METHODS = ['getFile', 'getTree', 'getStorePath', 'listStorePaths', 'readFile', 'putTree', 'putBytes', 'putStorePath', 'pin', 'unpin', 'listRoots', 'getMeta', 'listMeta'] as const;

/** `onProfileChange` runs after any op that may have moved a profile pointer, before the reply:
 * so when a client's switch returns, the mount already serves the new generation. */
export function controlOps(store: Store, hooks: { onProfileChange(): Promise<void>; status(): unknown }): Record<string, ControlOp> {
  const changed = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } finally {
      await hooks.onProfileChange();
    }
  };
  const ops: Record<string, ControlOp> = {};
  for (const m of STORE_METHODS) {
    ops[`store.${m}`] = async (args: unknown[]) => (store[m] as (...a: unknown[]) => Promise<unknown>).apply(store, args.map((a) => (a === null ? undefined : a)));
  }
  ops['store.chunks.get'] = async ([id]: [Id]) => store.chunks.get(id);
  ops['store.chunks.has'] = async ([id]: [Id]) => store.chunks.has(id);
  ops['store.batchMeta'] = async ([list]: [{ key: string; value: Buffer | null }[]]) => changed(store.batchMeta(list.map((o) => ({ key: o.key, value: o.value ?? undefined }))));
  // `ingest --watch` through the socket: the stat cache lives here, one per client session (a
  // random token), so a re-ingest reads only changed files. The newest STAT_SESSIONS are kept.
  const statCaches = new Map<string, Map<string, unknown>>();
  const STAT_SESSIONS = 8;
  ops['store.ingest'] = async ([dir, opts]: [string, Record<string, unknown> | null], emit) => {
    if (typeof dir !== 'string' || !dir.startsWith('/')) throw new MiqError('MIQ_BAD_INPUT', 'ingest over the control socket needs an absolute directory');
    const { statCacheSession, ...rest } = opts ?? {};
    let statCache: Map<string, unknown> | undefined;
    if (typeof statCacheSession === 'string' && /^[0-9a-f]{32}$/.test(statCacheSession)) {
      statCache = statCaches.get(statCacheSession) ?? new Map<string, unknown>();
      statCaches.delete(statCacheSession);
      statCaches.set(statCacheSession, statCache);
      while (statCaches.size > STAT_SESSIONS) statCaches.delete(statCaches.keys().next().value as string);
    }
    let last = 0;
    return store.ingest(dir, {
      ...rest,
      ...(statCache ? { statCache } : {}),
      onProgress: (p) => {
        const now = Date.now();
        if (now - last > 200 || p.phase === 'commit') {
          last = now;
          emit(p);
        }
      },
    });
  };
  // Profile operations run here, one at a time per store (profiles.ts serialises them).
  ops['profile.switch'] = ({ profile, members }) => changed(P.switchProfile(store, profile, members));
  ops['profile.add'] = ({ profile, members }) => changed(P.addToProfile(store, profile, members));
  ops['profile.remove'] = ({ profile, paths }) => changed(P.removeFromProfile(store, profile, paths));
  ops['profile.rollback'] = ({ profile, to }) => changed(P.rollback(store, profile, to ?? undefined));
  ops['profile.switchTo'] = ({ profile, paths, tree, priorities }) => changed(P.switchTo(store, profile, { paths, tree, priorities }));
  ops['profile.deleteGenerations'] = ({ profile, olderThanDays, keep }) => changed(P.deleteGenerations(store, profile, { olderThanDays: olderThanDays ?? undefined, keep: keep ?? undefined }));
  ops['profile.list'] = () => P.listProfiles(store);
  ops['profile.generations'] = async ({ profile }) => ({ current: await P.currentNumber(store, profile), generations: await P.listGenerations(store, profile) });
  ops['profile.diff'] = ({ profile, a, b }) => P.diffGenerations(store, profile, a, b);
  ops['mount.status'] = async () => hooks.status();
  // Whole-store maintenance, on the store's maintenance capability (a layered store's local part).
  ops.gc = async (args: { dryRun?: boolean } | null, emit) => {
    const { gcStore } = await import('../store/gc.js');
    return gcStore(maintenanceOf(store, 'gc'), { dryRun: args?.dryRun ?? false, onProgress: (phase, done) => emit({ phase, done }) });
  };
  ops.verify = async (_args, emit) => {
    const { verifyStore } = await import('../store/verify.js');
    return verifyStore(maintenanceOf(store, 'verify'), (p) => emit(p));
  };
  ops.stats = async () => {
    const { storeStats } = await import('../store/stats.js');
    return storeStats(maintenanceOf(store, 'stats'));
  };
  return ops;
}
