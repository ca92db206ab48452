/**
 * One factory turns a location into a store; the rest of the code never names a class.
 *   DIR, file://DIR    a local store (created on first use); file://DIR holding a remote's
 *                      layout (written by `miq push`) opens that remote, read-only
 *   http(s)://…        a remote, read-only, every byte verified
 *   memory:            a store in memory (tests, tools)
 * Lazy layering is composition: `lazy` puts a remote under a local store (reads fall through
 * to it, writes stay local).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Store } from './api.js';
import { MiqError } from './errors.js';
import { LocalStore, type LocalStoreOptions } from './local.js';

export interface RemoteStoreOptions {
  /** Keys whose signatures on profile pointers are trusted (`name:base64`, or files). */
  trustedKeys?: readonly string[];
  /** Verified read-through cache on disk (default: memory only). */
  cacheDir?: string;
  /** Where the pointer sequences seen are remembered (rollback protection). */
  seenFile?: string;
  proxy?: string;
}

export interface OpenStoreOptions extends LocalStoreOptions {
  /** For a remote location, or the remote under `lazy`. */
  remote?: RemoteStoreOptions;
  /** A remote location layered under the local store (the lazy mount's store). */
  lazy?: string;
}

const isRemoteUrl = (l: string): boolean => /^https?:\/\//i.test(l);

/** A file:// location that holds a remote's layout rather than a store. */
function isRemoteFolder(dir: string): boolean {
  return !existsSync(join(dir, 'db')) && (existsSync(join(dir, 'paths')) || existsSync(join(dir, 'chunks')) || existsSync(join(dir, 'objects')));
}

async function openRemoteReader(location: string, o: RemoteStoreOptions = {}) {
  const { openRemote } = await import('./remote/open.js');
  if (!o.seenFile && !o.cacheDir) throw new MiqError('MIQ_BAD_INPUT', `remote ${location}: give a cache directory or a seen-pointers file (rollback protection needs somewhere to remember)`);
  return openRemote(location, { trustedKeys: o.trustedKeys ?? [], cacheDir: o.cacheDir, seenFile: o.seenFile, http: { proxy: o.proxy } });
}

export async function openStore(location: string, opts: OpenStoreOptions = {}): Promise<Store> {
  if (location === 'memory:') {
    const { MemoryStore } = await import('./memory.js');
    return new MemoryStore(opts.chunkParams);
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(location) && !location.startsWith('file:') && !isRemoteUrl(location)) {
    throw new MiqError('MIQ_BAD_INPUT', `cannot open a store at ${location}: a store is a directory, file://DIR, http(s)://… or memory:`);
  }
  if (isRemoteUrl(location) || (location.startsWith('file:') && isRemoteFolder(fileURLToPath(location)))) {
    const { readOnlyStore } = await import('./remote/store.js');
    return readOnlyStore(await openRemoteReader(location, opts.remote));
  }
  const dir = location.startsWith('file:') ? fileURLToPath(location) : resolve(location);
  const s = new LocalStore(dir, opts);
  await s.open();
  if (!opts.lazy) return s;
  try {
    const remote = await openRemoteReader(opts.lazy, { cacheDir: join(dir, 'remote-cache'), seenFile: join(dir, 'remote-seen.json'), ...opts.remote });
    const { layeredStore } = await import('./remote/layered.js');
    return layeredStore(s, remote);
  } catch (e) {
    await s.close();
    throw e;
  }
}

export type { Store };
