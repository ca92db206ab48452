/**
 * A lazy mount's store (`miq mount --remote`): the remote layered over the local store, the
 * profile's pointer pulled before serving and again every pull interval, the remote's prefetch
 * hints started, and the chunks read recorded as a hints list when asked.
 */
import { writeFile } from 'node:fs/promises';
import type { Store } from '../store/api.js';
import { ioError, isMiqError } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import { current } from '../store/profiles.js';
import { encodeHints } from '../store/remote/layout.js';
import { generationPaths, layeredStore, openRemoteFor, pullProfile, rememberRemote, type LayeredStore } from '../store/remote/index.js';
import type { MountHandle } from './daemon.js';

export interface LazyMountOptions {
  remote: string;
  /** Trusted key files (already resolved). */
  trustedKeys: string[];
  profile: string;
  /** Seconds between pulls of the profile's pointer while mounted; 0: never. */
  pullSeconds: number;
  /** false: ignore the remote's prefetch list. */
  hints?: boolean;
  /** Write the chunks read, in order, as a prefetch list to this file when stopped. */
  recordHints?: string;
  /** A forward (site) proxy for the remote; default from http_proxy/no_proxy. */
  proxy?: string;
  /** The remote's disk cache in bytes (default 1 GiB). */
  cacheBytes?: number;
  /** Where progress lines go (default: stderr, prefixed `miq: `). */
  say?: (line: string) => void;
}

export interface LazyMount {
  store: LayeredStore;
  started(h: MountHandle): void;
  stop(): Promise<void>;
}

/**
 * Layers the remote over `local`, pulls the profile's pointer (the remote being down is not fatal
 * when a generation is already recorded), loads the records the kept generations name, and
 * returns hooks for the mount's pull interval.
 */
export async function openLazy(local: Store, o: LazyMountOptions): Promise<LazyMount> {
  const say = o.say ?? ((l: string): void => { process.stderr.write(`miq: ${l}\n`); });
  if (o.recordHints) {
    // Fail now, not after an hour of serving: the list is written here when the mount stops.
    await writeFile(o.recordHints, encodeHints([])).catch((e: unknown) => { throw ioError(e, 'cannot write the hints file', o.recordHints!); });
  }
  const remote = await openRemoteFor(local.dir, o.remote, o.trustedKeys, { cacheBytes: o.cacheBytes, recordHints: !!o.recordHints, proxy: o.proxy });
  const store = layeredStore(local, remote);
  await rememberRemote(store, o.remote, o.trustedKeys);
  const pull = async (): Promise<boolean> => {
    const r = await pullProfile(store, remote, o.profile);
    if (r.changed) say(`${o.profile}: generation ${r.generation} from ${remote.url} (sequence ${r.sequence}${r.stale ? ', remote unreachable: last verified pointer' : ''})`);
    return r.changed;
  };
  try {
    await pull();
  } catch (e) {
    // With a generation recorded the mount can serve it (offline, or a pointer refused);
    // an empty store without a pointer has nothing to show at DIR/usr.
    const have = isMiqError(e) && (e.code === 'MIQ_NOT_FOUND' || (await current(store, o.profile).catch(() => undefined)) !== undefined);
    if (!have) {
      await remote.close();
      throw e;
    }
    say(`warning: cannot pull ${o.profile} from ${remote.url}: ${(e as Error).message}`);
  }
  await store.loadClosure(await generationPaths(store)).catch((e: unknown) => say(`warning: loading generation records: ${(e as Error).message}`));
  if (o.hints !== false) {
    const gen = await current(store, o.profile).catch(() => undefined);
    if (gen) void remote.startHints(gen.tree as Id);
  }
  let timer: NodeJS.Timeout | undefined;
  let busy = false;
  return {
    store,
    started(h) {
      if (!o.pullSeconds) return;
      timer = setInterval(() => {
        if (busy) return;
        busy = true;
        pull().then((changed) => (changed ? h.refresh() : undefined))
          .catch((e: unknown) => say(`warning: pull ${o.profile}: ${(e as Error).message}`))
          .finally(() => { busy = false; });
      }, o.pullSeconds * 1000);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      if (o.recordHints) {
        const ids = remote.recordedHints();
        await writeFile(o.recordHints, encodeHints(ids)).catch((e: unknown) => say(`warning: ${(ioError(e, 'cannot write the hints file', o.recordHints!)).message}`));
        say(`${ids.length} chunk ids written to ${o.recordHints} (publish with: miq push DEST --profile ${o.profile} --hints ${o.recordHints})`);
      }
    },
  };
}
