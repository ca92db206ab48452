/**
 * The client side of the control socket, and `withStore`: any command that needs the store calls
 * `withStore(dir, fn)`; if a mount is serving the store, `fn` gets a Store that forwards every
 * call over the socket, else the store opened directly. LevelDB allows one process, so this is
 * how commands keep working while the store is mounted.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { maintenanceOf, type ChunkSource, type IngestOptions, type IngestResult, type PruneStore, type Store } from '../store/api.js';
import { MiqError, type MiqErrorCode } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import type { FileRecord, StorePathRecord, Tree, TreeEntry } from '../store/objects.js';
import { openStore } from '../store/open.js';
import { line, lineReader, SOCKET_NAME, type Reply } from './protocol.js';

export const socketPath = (storeDir: string): string => join(storeDir, SOCKET_NAME);

export interface ControlClient {
  call<T = unknown>(op: string, args?: unknown, onEvent?: (e: unknown) => void): Promise<T>;
  close(): void;
}

function dial(path: string): Promise<Socket | undefined> {
  // No file, no server: a connect would fail the same way (ENOENT), but the first socket of a
  // process costs ~1.6 ms (a store that no mount serves, i.e. nearly every command's start).
  if (!existsSync(path)) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => resolve(s));
    s.once('error', () => resolve(undefined));
  });
}

/** True when a server answers on `path` (a leftover socket file refuses the connection). */
export async function probeSocket(path: string): Promise<boolean> {
  const s = await dial(path);
  s?.destroy();
  return s !== undefined;
}

/** A non-root user's own socket (mount/users.ts), tried before the store's: whatever arrives on
 * it is that user's, and the server allows accordingly. */
function userSocket(storeDir: string): string | undefined {
  if (process.getuid?.() === 0) return undefined;
  try {
    return join(storeDir, 'users', userInfo().username, SOCKET_NAME);
  } catch {
    return undefined;
  }
}

export async function connectControl(storeDir: string): Promise<ControlClient | undefined> {
  const mine = userSocket(storeDir);
  const sock = (mine ? await dial(mine) : undefined) ?? await dial(socketPath(storeDir));
  if (!sock) return undefined;
  let next = 1;
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void; onEvent?: (e: unknown) => void }>();
  const failAll = (why: string): void => {
    for (const w of waiting.values()) w.reject(new MiqError('MIQ_IO', why));
    waiting.clear();
  };
  sock.on('data', lineReader((m) => {
    const r = m as Reply;
    const w = waiting.get(r.id);
    if (!w) return;
    if ('event' in r) return w.onEvent?.(r.event);
    waiting.delete(r.id);
    if (r.ok) w.resolve(r.result);
    else w.reject(MiqError.fromJSON({ ...r.error, code: r.error.code as MiqErrorCode }));
  }));
  sock.on('close', () => failAll('the serving miq closed the control connection before answering (did the mount stop?)'));
  sock.on('error', () => {});
  return {
    call<T>(op: string, args?: unknown, onEvent?: (e: unknown) => void): Promise<T> {
      const id = next++;
      return new Promise<T>((resolve, reject) => {
        waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, onEvent });
        sock.write(line({ id, op, args: args ?? null }));
      });
    },
    close() {
      sock.end();
    },
  };
}

const REMOTE = Symbol('miq.remoteStore');

const sessions = new WeakMap<object, string>();
function sessionOf(cache: object): string {
  let t = sessions.get(cache);
  if (!t) {
    t = randomBytes(16).toString('hex');
    sessions.set(cache, t);
  }
  return t;
}

/** A Store whose every method runs in the serving process. */
export function remoteStore(client: ControlClient, dir: string): Store & { readonly [REMOTE]: ControlClient } {
  const c = <T>(op: string, args: unknown[]): Promise<T> => client.call<T>(`store.${op}`, args);
  const chunks: ChunkSource = { get: (id: Id) => c<Buffer | undefined>('chunks.get', [id]).then((b) => b ?? undefined), has: (id: Id) => c<boolean>('chunks.has', [id]) };
  return {
    [REMOTE]: client,
    dir,
    chunks,
    open: async () => {},
    close: async () => client.close(),
    getFile: (id: Id) => c<FileRecord | undefined>('getFile', [id]).then((v) => v ?? undefined),
    getTree: (id: Id) => c<Tree | undefined>('getTree', [id]).then((v) => v ?? undefined),
    getStorePath: (p: string) => c<StorePathRecord | undefined>('getStorePath', [p]).then((v) => v ?? undefined),
    listStorePaths: () => c<StorePathRecord[]>('listStorePaths', []),
    readFile: (f: FileRecord, off: number, len: number) => c<Buffer>('readFile', [f, off, len]),
    ingest: (d: string, o: IngestOptions = {}) => {
      // A stat cache (ingest --watch) cannot cross the socket: the serving process keeps one per
      // session, named by a random token tied to this client's Map.
      const { onProgress, statCache, ...rest } = o;
      const args = statCache ? { ...rest, statCacheSession: sessionOf(statCache) } : rest;
      return client.call<IngestResult>('store.ingest', [d, args], onProgress ? (e) => onProgress(e as never) : undefined);
    },
    putTree: (e: readonly TreeEntry[]) => c<Id>('putTree', [e]),
    putBytes: (b: Buffer) => c<FileRecord>('putBytes', [b]),
    putStorePath: (r: StorePathRecord) => c<void>('putStorePath', [r]),
    pin: (p: string, root?: string) => c<void>('pin', [p, root]),
    unpin: (r: string) => c<boolean>('unpin', [r]),
    listRoots: () => c<{ root: string; path: string }[]>('listRoots', []),
    getMeta: (k: string) => c<Buffer | undefined>('getMeta', [k]).then((v) => v ?? undefined),
    batchMeta: (ops) => c<void>('batchMeta', [ops.map((o) => ({ key: o.key, value: o.value ?? null }))]),
    listMeta: (p: string) => c<{ key: string; value: Buffer }[]>('listMeta', [p]),
  };
}

/** The control client behind a store from `withStore`, if it is one. */
export function controlOf(store: unknown): ControlClient | undefined {
  return (store as { [REMOTE]?: ControlClient } | null)?.[REMOTE];
}

/**
 * Runs `fn` against the store at `dir`: through the mount's control socket when a mount serves
 * it, else opened directly (and closed after).
 */
export async function withStore<T>(dir: string, fn: (store: Store) => Promise<T>): Promise<T> {
  const client = await connectControl(dir);
  if (client) {
    try {
      return await fn(remoteStore(client, dir));
    } finally {
      client.close();
    }
  }
  const uid = process.getuid?.();
  if (uid !== undefined && uid !== 0) {
    const owner = await stat(dir).then((s) => s.uid, () => undefined);
    if (owner !== undefined && owner !== uid) {
      throw new MiqError('MIQ_PERMISSION', `permission denied: cannot open the store at ${dir}: it belongs to uid ${owner}, and no mount serves you a socket (${join(dir, 'users', userInfo().username, SOCKET_NAME)}); ask its owner to run \`miq mount DIR --users ${userInfo().username}\`, or use a store of your own (--store)`);
    }
  }
  const store = await openStore(dir);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/**
 * For whole-store maintenance (gc, verify, stats): run `op` in the serving process when `store`
 * is a forwarding one, else `local` here on the store's maintenance capability.
 */
export async function viaServer<T>(store: Store, op: string, args: unknown, local: (s: PruneStore) => Promise<T>, onEvent?: (e: unknown) => void): Promise<T> {
  const c = controlOf(store);
  return c ? c.call<T>(op, args, onEvent) : local(maintenanceOf(store, op));
}
