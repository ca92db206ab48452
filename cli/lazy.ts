/** CLI glue for `miq mount --remote` and `miq profile pull`: parses the options and resolves key
 * names; the lazy mount itself is mount/lazy.ts, the store's remote store/remote/stored.ts. */
import { openLazy as openLazyMount, type LazyMount } from '../mount/index.js';
import type { Store } from '../store/api.js';
import { openRemoteFor as openStoreRemote, type RemoteReader } from '../store/remote/index.js';
import { parseSeconds, parseSize } from './args.js';
import { trustedKeyFiles } from './context.js';

export { rememberRemote, rememberedRemote } from '../store/remote/index.js';

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

const cacheBytesOf = (cacheSize: string | undefined): number | undefined =>
  cacheSize === undefined ? undefined : parseSize(cacheSize, '--cache-size', { bare: 'M', min: 1 << 20 });

/** The verified remote reader of a store: its disk cache and rollback record live in the store. */
export function openRemoteFor(storeDir: string, url: string, keys: readonly string[], cacheSize?: string, recordHints = false, proxy?: string): Promise<RemoteReader> {
  return openStoreRemote(storeDir, url, keys, { cacheBytes: cacheBytesOf(cacheSize), recordHints, proxy });
}

export function openLazy(local: Store, o: LazyOptions, cacheSize: string | undefined): Promise<LazyMount> {
  o.trustedKey = trustedKeyFiles({ store: local.dir }, o.trustedKey);
  return openLazyMount(local, {
    remote: o.remote!, trustedKeys: o.trustedKey, profile: o.profile,
    pullSeconds: o.pullInterval === undefined ? 0 : parseSeconds(o.pullInterval, '--pull-interval'),
    hints: o.hints, recordHints: o.recordHints, proxy: o.proxy, cacheBytes: cacheBytesOf(cacheSize),
  });
}
