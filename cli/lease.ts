/**
 * A store held only while it is used. A build spends most of its time in its script, which needs
 * nothing from the store; holding LevelDB's lock through it locked every other command out for
 * the whole build. Here each call opens the store if it is closed and, once no call has been in
 * flight for IDLE_MS, the store is closed again (lock and holder record released). A call that
 * finds the store held by another process waits for it, up to WAIT_MS.
 *
 * While the lock is free a `miq gc` may run: a build keeps what it uses with temporary roots
 * (store/temproots.ts, written in builder/build.ts), which gc honours.
 */
import { isMiqError, MiqError, openStore, type Store } from '../store/index.js';

const IDLE_MS = 150;
const WAIT_MS = 10 * 60_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Lease {
  readonly store: Store;
  close(): Promise<void>;
}

export function leaseStore(dir: string, onWait?: (e: MiqError) => void): Lease {
  let open: Promise<Store> | undefined;
  let users = 0;
  let timer: NodeJS.Timeout | undefined;
  let closing: Promise<void> = Promise.resolve();

  const openNow = async (): Promise<Store> => {
    await closing;
    const until = Date.now() + WAIT_MS;
    let told = false;
    for (;;) {
      try {
        return await openStore(dir);
      } catch (e) {
        if (!isMiqError(e, 'MIQ_STORE_LOCKED') || Date.now() > until) throw e;
        if (!told) onWait?.(e);
        told = true;
        await sleep(200);
      }
    }
  };
  const closeNow = (): void => {
    const s = open;
    open = undefined;
    if (s) closing = s.then((x) => x.close()).catch(() => undefined);
  };
  const acquire = (): Promise<Store> => {
    users++;
    if (timer) clearTimeout(timer);
    timer = undefined;
    open ??= openNow();
    // A failed open is not kept: the next call tries again.
    open.catch(() => { open = undefined; });
    return open;
  };
  const release = (): void => {
    if (--users > 0) return;
    timer = setTimeout(closeNow, IDLE_MS);
  };
  const call = async <T>(fn: (s: Store) => Promise<T>): Promise<T> => {
    const s = await acquire().catch((e: unknown) => { users--; throw e; });
    try {
      return await fn(s);
    } finally {
      release();
    }
  };
  /** Methods of `pick(store)` (a store, or one of its parts), each run under the lease. */
  const wrap = <O extends object>(pick: (s: Store) => O | undefined): O =>
    new Proxy({} as O, {
      get(_t, key) {
        return (...args: unknown[]) => call(async (s) => {
          const o = pick(s);
          if (!o) throw new MiqError('MIQ_BAD_INPUT', `the store at ${dir} cannot do this from this process`);
          return (o as Record<PropertyKey, (...a: unknown[]) => unknown>)[key]!.apply(o, args);
        });
      },
    });
  const parts: Record<PropertyKey, unknown> = {
    dir,
    chunks: wrap((s) => s.chunks),
    writer: wrap((s) => s.writer),
    maintenance: wrap((s) => s.maintenance),
    open: async () => {},
    close: async () => {},
    then: undefined,
  };
  const store = new Proxy({} as Store, {
    get(_t, key) {
      if (key in parts) return parts[key];
      return (...args: unknown[]) => call((s) => (s as unknown as Record<PropertyKey, (...a: unknown[]) => Promise<unknown>>)[key]!.apply(s, args));
    },
  });
  return {
    store,
    async close() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      closeNow();
      await closing;
    },
  };
}
