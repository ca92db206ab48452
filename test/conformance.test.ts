/**
 * The Store conformance suite (test/conformance/suite.ts) against every implementation, each
 * opened through the one factory, openStore: memory:, a local directory, a local store layered
 * over a remote (lazy), a remote over HTTP (a real nginx on 127.0.0.1), and the mount's control
 * socket proxy (a real socket served by controlOps over a local store, as `miq mount` does).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { connectControl, remoteStore, socketPath } from '../mount/client.js';
import { controlOps } from '../mount/control-ops.js';
import { listenControl, type ControlServer } from '../mount/control.js';
import type { Store } from '../store/api.js';
import type { Id } from '../store/ids.js';
import { openStore } from '../store/open.js';
import { MemoryStore } from '../store/memory.js';
import { chunkPath } from '../store/remote/layout.js';
import { generateKey, loadSigningKey } from '../store/remote/keys.js';
import { push } from '../store/remote/push.js';
import { startNginx, type Nginx } from './helpers/nginx.js';
import { flipChunkByte } from './helpers/packs.js';
import { flipFileByte, storeConformance, type Harness } from './conformance/suite.js';

const root = await mkdtemp(join(tmpdir(), 'miq-conformance-'));
after(() => rm(root, { recursive: true, force: true }));
let n = 0;
const fresh = (what: string): string => join(root, `${what}-${n++}`);

/** A remote folder holding the fixture (pushed from a memory store), served by nginx. */
async function servedRemote(fixture: string): Promise<{ dir: string; path: string; nginx: Nginx; trusted: string }> {
  const src = await openStore('memory:');
  const { path } = await src.ingest(fixture, { name: 'fixture' });
  const dir = fresh('remote');
  const k = await generateKey(fresh('keys'), 'conformance');
  await push(src as MemoryStore, `file://${dir}`, { paths: [path], key: loadSigningKey(k.secretFile) });
  await src.close();
  return { dir, path, nginx: await startNginx(dir), trusted: k.publicText };
}

storeConformance({
  name: 'memory',
  async setup(fixture) {
    const store = await openStore('memory:');
    const { path } = await store.ingest(fixture, { name: 'fixture' });
    const mem = store as MemoryStore;
    return {
      store, path, writable: true,
      async damage(id: Id) {
        mem.chunkMap.get(id)![7] ^= 0x20;
        return store;
      },
      cleanup: () => store.close(),
    };
  },
}, () => root);

storeConformance({
  name: 'local',
  async setup(fixture) {
    const dir = fresh('local');
    const h: Harness = {
      store: await openStore(`file://${dir}`),
      path: '', writable: true,
      async damage(id: Id) {
        await h.store.close();
        flipChunkByte(dir, id);
        return openStore(dir);
      },
      async reopen() {
        await h.store.close();
        await h.store.close();
        return openStore(dir);
      },
      cleanup: () => h.store.close(),
    };
    h.path = (await h.store.ingest(fixture, { name: 'fixture' })).path;
    return h;
  },
}, () => root);

/** A harness over a served remote: damage flips a byte of the chunk's file in the remote folder
 * (and runs `forget`, to drop what the store cached of it) and reopens. */
async function remoteHarness(r: { dir: string; path: string; nginx: Nginx }, open: () => Promise<Store>, writable: boolean, forget?: () => Promise<void>): Promise<Harness> {
  const h: Harness = {
    store: await open(),
    path: r.path, writable,
    async damage(id: Id) {
      await h.store.close();
      await flipFileByte(join(r.dir, chunkPath(id)));
      await forget?.();
      return open();
    },
    async reopen() {
      await h.store.close();
      return open();
    },
    async cleanup() {
      await h.store.close();
      await r.nginx.stop();
    },
  };
  return h;
}

storeConformance({
  name: 'http',
  async setup(fixture) {
    const r = await servedRemote(fixture);
    const seenFile = join(fresh('seen'), 'seen.json');
    return remoteHarness(r, () => openStore(r.nginx.url, { remote: { seenFile, trustedKeys: [r.trusted] } }), false);
  },
}, () => root);

storeConformance({
  name: 'layered',
  async setup(fixture) {
    const r = await servedRemote(fixture);
    const dir = fresh('lazy');
    return remoteHarness(r, () => openStore(dir, { lazy: r.nginx.url, remote: { trustedKeys: [r.trusted] } }), true, () => rm(join(dir, 'remote-cache'), { recursive: true, force: true }));
  },
}, () => root);

storeConformance({
  name: 'control-socket proxy',
  async setup(fixture) {
    const dir = fresh('served');
    let local: Store | undefined, server: ControlServer | undefined, proxy: Store | undefined;
    const serve = async (): Promise<Store> => {
      local = await openStore(dir);
      server = await listenControl(socketPath(dir), controlOps(local, { onProfileChange: async () => {}, status: () => ({}) }), () => {});
      const client = await connectControl(dir);
      if (!client) throw new Error('the control socket does not answer');
      proxy = remoteStore(client, dir);
      return proxy;
    };
    const stop = async (): Promise<void> => {
      await proxy?.close();
      await server?.close();
      await local?.close();
    };
    const h: Harness = {
      store: await serve(),
      path: '', writable: true,
      async damage(id: Id) {
        await stop();
        flipChunkByte(dir, id);
        return serve();
      },
      async reopen() {
        await stop();
        return serve();
      },
      cleanup: stop,
    };
    h.path = (await h.store.ingest(fixture, { name: 'fixture' })).path;
    return h;
  },
}, () => root);
