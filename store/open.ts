/** One factory turns a location into a store; the rest of the code never names a class. */
import type { Store } from './api.js';
import { LocalStore, type LocalStoreOptions } from './local.js';

export async function openStore(dir: string, opts?: LocalStoreOptions): Promise<Store> {
  const s = new LocalStore(dir, opts);
  await s.open();
  return s;
}

export type { Store };
