/** A store's own remote: the verified reader whose disk cache and rollback record live in the
 * store, and the remote a lazy store was last mounted from (remembered in its meta records). */
import { join } from 'node:path';
import type { Store } from '../api.js';
import { MiqError } from '../errors.js';
import { loadTrustedKeys } from './keys.js';
import { REMOTE_URL_KEY } from './layered.js';
import { openRemote } from './open.js';
import type { RemoteReader } from './reader.js';

export function openRemoteFor(storeDir: string, url: string, keys: readonly string[], o: { cacheBytes?: number; recordHints?: boolean; proxy?: string } = {}): Promise<RemoteReader> {
  return openRemote(url, { cacheDir: join(storeDir, 'remote-cache'), cacheSize: o.cacheBytes ?? 1024 ** 3, trustedKeys: loadTrustedKeys(storeDir, keys), seenFile: join(storeDir, 'remote-seen.json'), recordHints: o.recordHints ?? false, http: { proxy: o.proxy } });
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
