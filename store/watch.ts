/**
 * `ingest --watch`: re-ingest a build directory as it changes. A stat cache means only changed
 * files are re-read; an alias (`roots/<name>`) follows the newest result, so it is a GC root and
 * older results become collectable.
 */
import type { IngestResult, Store } from './api.js';
import { MiqError } from './errors.js';
import { defaultName } from './ingest.js';
import { ROOT_PREFIX } from './keys.js';

export type WatchEvent =
  | { type: 'result'; result: IngestResult; alias: string }
  | { type: 'error'; error: MiqError };

export async function watchIngest(store: Store, dir: string, opts: { name?: string; lenient?: boolean; debounceMs?: number; signal?: AbortSignal }, onEvent: (e: WatchEvent) => void): Promise<void> {
  // chokidar is loaded here, not with this module: a one-shot ingest never watches.
  const { watch } = await import('chokidar');
  const name = opts.name ?? defaultName(dir);
  const alias = `alias:${name}`;
  const statCache = new Map<string, unknown>();
  let last: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let again = false;
  const once = async (): Promise<void> => {
    try {
      const r = await store.ingest(dir, { name, lenient: opts.lenient, pin: false, statCache });
      if (r.path !== last) {
        await store.batchMeta([{ key: ROOT_PREFIX + alias, value: Buffer.from(r.path) }]);
        last = r.path;
        onEvent({ type: 'result', result: r, alias });
      }
    } catch (e) {
      onEvent({ type: 'error', error: e instanceof MiqError ? e : new MiqError('MIQ_IO', String((e as Error).message)) });
    }
  };
  const schedule = (): void => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      if (again) return;
      again = true;
      running = running.then(() => {
        again = false;
        return once();
      });
    }, opts.debounceMs ?? 300);
  };
  await once();
  const w = watch(dir, { ignoreInitial: true, followSymlinks: false, awaitWriteFinish: { stabilityThreshold: 200, pollInterval: 50 } });
  w.on('all', schedule);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    opts.signal?.addEventListener('abort', stop);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  if (timer) clearTimeout(timer);
  await w.close();
  await running;
}
