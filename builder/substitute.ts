/**
 * Substitution from another store: any `ObjectReader` (a second local store, or a remote one
 * opened through the store factory). The path's tree is read through the reader, which verifies
 * every chunk, and ingested locally under the same key; the result must have the same tree id,
 * else the remote lied and nothing is kept. References are substituted first so the closure is
 * complete before the path appears.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ObjectReader, Store } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import { type FetchSink, type RemoteReader, prefetch } from '../store/remote/index.js';
import type { Substituter } from './build.js';
import { materialize, rmTree } from './materialize.js';

export function storeSubstituter(name: string, remote: ObjectReader, opts: { tmpDir?: string; pin?: boolean } = {}): Substituter {
  const fetchPath = async (path: string, store: Store, depth: number): Promise<boolean> => {
    if (await store.getStorePath(path)) return true;
    const rec = await remote.getStorePath(path);
    if (!rec) return false;
    if (depth > 1000) throw new MiqError('MIQ_REMOTE', `substituter ${name}: reference chain too deep at ${path}`);
    for (const ref of rec.references) {
      if (ref !== path && !(await fetchPath(ref, store, depth + 1))) {
        throw new MiqError('MIQ_REMOTE', `substituter ${name} has ${path} but not ${ref}, which it references`);
      }
    }
    const dir = await mkdtemp(join(opts.tmpDir ?? tmpdir(), 'miq-subst-'));
    try {
      const tree = await materialize(remote, path, dir);
      const made = rec.made.kind === 'build' ? { kind: 'build' as const, recipe: rec.made.recipe } : rec.made;
      const res = await store.ingest(tree, { name: rec.name, key: rec.key, made, pin: depth === 0 && (opts.pin ?? true) });
      if (res.tree !== rec.tree || res.path !== path) {
        throw new MiqError('MIQ_CORRUPT', `substituter ${name}: ${path} ingested as tree ${res.tree}, but the remote record says ${rec.tree}`);
      }
    } finally {
      await rmTree(dir);
    }
    return true;
  };
  return {
    name,
    substitute: async (path: string, key: Id, store: Store): Promise<boolean> => {
      const rec = await remote.getStorePath(path);
      if (!rec) return false;
      if (rec.key !== key) throw new MiqError('MIQ_REMOTE', `substituter ${name}: ${path} has key ${rec.key}, expected ${key}`);
      return fetchPath(path, store, 0);
    },
  };
}

/**
 * Substitution from a signed remote (store/remote): objects are copied as they are, chunk by
 * chunk, each verified against its id by the reader, through a sink that writes them in the
 * store's crash-safe order; nothing is re-chunked.
 */
export function remoteSubstituter(
  remote: RemoteReader,
  sinkFor: (store: Store) => FetchSink & { flush(): Promise<void> },
  opts: { pin?: boolean } = {},
): Substituter {
  return {
    name: remote.url,
    substitute: async (path: string, key: Id, store: Store): Promise<boolean> => {
      const rec = await remote.getStorePath(path);
      if (!rec) return false;
      if (rec.key !== key) throw new MiqError('MIQ_REMOTE', `substituter ${remote.url}: ${path} has key ${rec.key}, expected ${key}`);
      const sink = sinkFor(store);
      await prefetch(remote, { paths: [path] }, sink);
      await sink.flush();
      if (opts.pin ?? true) await store.pin(path);
      return true;
    },
  };
}
