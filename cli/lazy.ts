/** Glue for `miq mount --remote` and `miq profile pull`: which remote, which keys, which cache. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MountHandle } from '../mount/daemon.js';
import type { Store } from '../store/api.js';
import { MiqError, ioError, isMiqError } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import { encodeHints } from '../store/remote/layout.js';
import { current } from '../store/profiles.js';
import { trustedKeyFiles } from './context.js';
import { parseSeconds, parseSize } from './args.js';
import {
  REMOTE_URL_KEY, generationPaths, layeredStore, loadTrustedKeys, openRemote, pullProfile, type LayeredStore, type RemoteReader,
} from '../store/remote/index.js';

export interface LazyOptions {
  remote?: string;
  trustedKey: string[];
  pullInterval?: string;
  profile: string;
  /** false with --no-hints: ignore the remote's prefetch list. */
  hints?: boolean;
  /** --record-hints FILE: write the chunks read, in order, as a prefetch list when stopped. */
  recordHints?: string;
  /** --proxy URL: a forward (site) proxy for the remote; default from http_proxy/no_proxy. */
  proxy?: string;
}

/** The verified remote reader of a store: its disk cache and rollback record live in the store. */
export function openRemoteFor(storeDir: string, url: string, keys: readonly string[], cacheSize?: string, recordHints = false, proxy?: string): Promise<RemoteReader> {
  const size = cacheSize === undefined ? 1024 ** 3 : parseSize(cacheSize, '--cache-size', { bare: 'M', min: 1 << 20 });
  return openRemote(url, { cacheDir: join(storeDir, 'remote-cache'), cacheSize: size, trustedKeys: loadTrustedKeys(storeDir, keys), seenFile: join(storeDir, 'remote-seen.json'), recordHints, http: { proxy } });
}

/** The remote a lazy store was last mounted from, and the keys it was told to trust. */
export async function rememberedRemote(store: Store): Promise<{ url: string; trustedKeys: string[] }> {
  const v = await store.getMeta(REMOTE_URL_KEY);
  if (!v) throw new MiqError('MIQ_BAD_INPUT', 'no remote known for this store: pass --remote URL (a `miq mount --remote URL` remembers it)');
  return JSON.parse(v.toString()) as { url: string; trustedKeys: string[] };
}

/** Makes `url` (and the keys given with it) the default remote of `miq profile pull`. */
export async function rememberRemote(store: Store, url: string, trustedKeys: readonly string[]): Promise<void> {
  await store.batchMeta([{ key: REMOTE_URL_KEY, value: Buffer.from(JSON.stringify({ url, trustedKeys })) }]);
}

const say = (l: string): void => { process.stderr.write(`miq: ${l}\n`); };

/**
 * Layers the remote over `local`, pulls the profile's pointer (the remote being down is not fatal
 * when a generation is already recorded), loads the records the kept generations name, and
 * returns hooks for the mount's pull interval.
 */
export async function openLazy(local: Store, o: LazyOptions, cacheSize: string | undefined): Promise<{ store: LayeredStore; started(h: MountHandle): void; stop(): Promise<void> }> {
  if (o.recordHints) {
    // Fail now, not after an hour of serving: the list is written here when the mount stops.
    await writeFile(o.recordHints, encodeHints([])).catch((e: unknown) => { throw ioError(e, 'cannot write the hints file', o.recordHints!); });
  }
  o.trustedKey = trustedKeyFiles({ store: local.dir }, o.trustedKey);
  const remote = await openRemoteFor(local.dir, o.remote!, o.trustedKey, cacheSize, !!o.recordHints, o.proxy);
  const store = layeredStore(local, remote);
  await rememberRemote(store, o.remote!, o.trustedKey);
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
      const secs = o.pullInterval === undefined ? 0 : parseSeconds(o.pullInterval, '--pull-interval');
      if (!secs) return;
      timer = setInterval(() => {
        if (busy) return;
        busy = true;
        pull().then((changed) => (changed ? h.refresh() : undefined))
          .catch((e: unknown) => say(`warning: pull ${o.profile}: ${(e as Error).message}`))
          .finally(() => { busy = false; });
      }, secs * 1000);
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
