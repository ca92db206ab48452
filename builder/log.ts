/** Build logs: each built store path records the file id of the log its build wrote. */
import type { MetaStore, ObjectReader, Store } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import type { Id } from '../store/ids.js';

/** Accepts `<name>-<hash>` or a path ending in one (`/miq/store/hello-2.10-…/bin/hello`). */
export function storePathOf(arg: string): string {
  const m = /(?:^|\/)([A-Za-z0-9+_][A-Za-z0-9+._-]*-[0-9a-f]{32})(?:\/|$)/.exec(arg);
  if (!m) throw new MiqError('MIQ_BAD_INPUT', `"${arg}" is not a store path (expected <name>-<32 hex characters>)`);
  return m[1]!;
}

/** Meta key naming the log of the last failed build of a store path (its file id). */
const failedKey = (path: string): string => `failed-log/${path}`;

/** Keeps a failed build's log in the store (until the next gc) and returns its file id. */
export async function keepFailedLog(store: Store, path: string, log: Buffer): Promise<string> {
  const rec = await store.putBytes(log);
  await store.batchMeta([{ key: failedKey(path), value: Buffer.from(rec.id) }]);
  return rec.id;
}

export async function forgetFailedLog(store: MetaStore, path: string): Promise<void> {
  await store.batchMeta([{ key: failedKey(path), value: undefined }]);
}

export async function readBuildLog(store: ObjectReader & MetaStore, arg: string): Promise<Buffer> {
  const path = storePathOf(arg);
  const rec = await store.getStorePath(path);
  if (!rec) {
    const failed = await store.getMeta(failedKey(path));
    const f = failed ? await store.getFile(failed.toString() as Id) : undefined;
    if (f) return store.readFile(f, 0, f.size);
    throw new MiqError('MIQ_NOT_FOUND', `store path ${path} is not in the store${failed ? ' (the log of its failed build was freed by gc)' : ''}`, { details: { path } });
  }
  if (rec.made.kind !== 'build' || !rec.made.log) throw new MiqError('MIQ_NOT_FOUND', `${path} was not built by miq (it was ${rec.made.kind === 'build' ? 'built without a log' : 'ingested'}), so it has no build log`, { details: { path } });
  const f = await store.getFile(rec.made.log);
  if (!f) throw new MiqError('MIQ_MISSING', `the build log ${rec.made.log} of ${path} is missing from the store`, { details: { path, log: rec.made.log } });
  return store.readFile(f, 0, f.size);
}
