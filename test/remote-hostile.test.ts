/**
 * A scripted misbehaving server: every lie or failure gives a clear MiqError for that one
 * request, nothing wrong is cached, bodies are cut off at their expected size, and the reader
 * keeps serving everything else.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isMiqError, type MiqErrorCode } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import type { FileRecord, StorePathRecord } from '../store/objects.js';
import { generateKey, ingestToMemory, loadSigningKey, openRemote, push, type HttpOptions, type RemoteReader, type SigningKey } from '../store/remote/index.js';
import { MemoryStore } from '../store/memory.js';
import { chunkPath, decodeChunk, objectPath, pathDocPath, profilePath } from '../store/remote/layout.js';
import { startBadServer, type BadServer } from './helpers/badserver.js';

async function makeFixture(root: string): Promise<{ lib: string; app: string }> {
  const lib = join(root, 'libfoo');
  const app = join(root, 'hello');
  await mkdir(join(lib, 'lib'), { recursive: true });
  await mkdir(join(app, 'bin'), { recursive: true });
  await writeFile(join(lib, 'lib', 'libfoo.so'), randomBytes(300 * 1024 + 17));
  await writeFile(join(lib, 'lib', 'other.so'), randomBytes(100 * 1024));
  await writeFile(join(app, 'bin', 'hello'), '#!/bin/sh\necho hello\n', { mode: 0o755 });
  return { lib, app };
}

const FAST: HttpOptions = { connectMs: 500, idleMs: 300, totalMs: 2500, attempts: 3, backoffMs: 10 };

const code = (c: MiqErrorCode, re?: RegExp) => (e: unknown): boolean => {
  assert.ok(isMiqError(e, c), `expected ${c}, got ${String((e as Error)?.stack ?? e)}`);
  if (re) assert.match((e as Error).message, re);
  return true;
};

async function cachedFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const n of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (n.isDirectory()) await walk(join(d, n.name));
      else out.push(join(d, n.name).slice(dir.length + 1));
    }
  };
  await walk(dir);
  return out;
}

describe('hostile or broken servers', () => {
  let tmp: string;
  let src: MemoryStore;
  let lib: StorePathRecord;
  let app: StorePathRecord;
  let key: SigningKey;
  let pub: string;
  let srv: BadServer;
  let big: FileRecord;
  let small: FileRecord;
  let n = 0;
  const open = async (o: { trusted?: string[]; seenFile?: string } = {}): Promise<{ r: RemoteReader; cacheDir: string }> => {
    const cacheDir = join(tmp, `cache-${n++}`);
    const r = await openRemote(srv.url, { cacheDir, trustedKeys: o.trusted ?? [pub], http: FAST, memoryBytes: 0, seenFile: o.seenFile });
    return { r, cacheDir };
  };

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'miq-hostile-'));
    const fx = await makeFixture(join(tmp, 'src'));
    src = new MemoryStore();
    lib = await ingestToMemory(src, fx.lib, 'libfoo');
    app = await ingestToMemory(src, fx.app, 'hello', { references: [lib.path] });
    const k = await generateKey(join(tmp, 'keys'), 'k1');
    key = loadSigningKey(k.secretFile);
    pub = k.publicText;
    await push(src, join(tmp, 'remote'), { paths: [app.path], profile: { name: 'system', generation: 1, paths: [app.path], tree: app.tree }, key });
    big = [...src.fileMap.values()].find((f) => f.chunks.length === 5)!;
    small = [...src.fileMap.values()].find((f) => f.chunks.length === 1 && f.size < 100)!;
    srv = await startBadServer(join(tmp, 'remote'));
  });
  after(async () => {
    await srv?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  /** The reader still serves a file the server is honest about. */
  async function stillServes(r: RemoteReader): Promise<void> {
    const rec = await r.getFile(small.id);
    const b = await r.readFile(rec!, 0, rec!.size);
    assert.equal(b.length, small.size);
  }

  async function failingChunk(m: Parameters<BadServer['rule']>[1], check: (e: unknown) => boolean): Promise<{ cacheDir: string; served: number }> {
    const { r, cacheDir } = await open();
    try {
      await r.getStorePath(lib.path);
      const c = big.chunks[2]!;
      srv.rule(chunkPath(c.id), m);
      const before = srv.served.length;
      await assert.rejects(r.readFile(big, 2 * 65536 + 5, 100), check);
      const served = srv.served.slice(before).filter((s) => s.path === chunkPath(c.id)).length;
      assert.ok(!(await cachedFiles(cacheDir)).includes(chunkPath(c.id)), 'nothing wrong cached');
      await stillServes(r);
      srv.rule(chunkPath(c.id), undefined);
      const ok = await r.readFile(big, 2 * 65536 + 5, 100);
      assert.equal(ok.length, 100, 'a later honest answer is accepted: no poisoned state');
      return { cacheDir, served };
    } finally {
      srv.rule(chunkPath(big.chunks[2]!.id), undefined);
      await r.close();
    }
  }

  it('wrong bytes: MIQ_CORRUPT, not cached', async () => {
    await failingChunk({ kind: 'wrong' }, code('MIQ_CORRUPT', /corrupt/));
  });

  it('truncated body: MIQ_REMOTE after bounded retries', async () => {
    const { served } = await failingChunk({ kind: 'truncate' }, code('MIQ_REMOTE', /truncated|closed/));
    assert.equal(served, FAST.attempts);
  });

  it('oversized body: cut off at the expected size, memory stays bounded', async (t) => {
    const before = srv.served.length;
    const total = 200 * 1024 * 1024;
    await failingChunk({ kind: 'oversize', total }, code('MIQ_CORRUPT', /more than the expected 65537 bytes/));
    const sent = srv.served.slice(before).filter((s) => s.path.startsWith('chunks/')).reduce((a, s) => Math.max(a, s.sent), 0);
    assert.ok(sent < 16 * 1024 * 1024, `server got to send only ${sent} of ${total} bytes`);
    t.diagnostic(`oversized: server managed to send ${sent} of ${total} bytes before the client hung up`);
    // Many at once: each body is cut at its own bound, so memory does not grow with the lies.
    const { r } = await open();
    try {
      await r.getStorePath(lib.path);
      srv.rule('*', { kind: 'oversize', total });
      global.gc?.();
      const base = process.memoryUsage().arrayBuffers;
      const results = await Promise.allSettled(big.chunks.map((c) => r.chunks.getSized(c.id, c.length)));
      assert.ok(results.every((x) => x.status === 'rejected' && isMiqError(x.reason, 'MIQ_CORRUPT')));
      const grown = process.memoryUsage().arrayBuffers - base;
      assert.ok(grown < 64 * 1024 * 1024, `array buffers grew by ${grown}`);
      t.diagnostic(`5 concurrent 200 MiB bodies: array buffers grew by ${grown} bytes`);
    } finally {
      srv.rule('*', undefined);
      await r.close();
    }
  });

  it('a server that stalls after the headers, or before them: MIQ_TIMEOUT within the deadline', async () => {
    await failingChunk({ kind: 'stall' }, code('MIQ_TIMEOUT', /timed out|no time/));
    await failingChunk({ kind: 'stallHeaders' }, code('MIQ_TIMEOUT', /timed out|no time/));
  });

  it('404 and 500', async () => {
    const { served } = await failingChunk({ kind: 'status', status: 500 }, code('MIQ_REMOTE', /500/));
    assert.equal(served, FAST.attempts, '5xx is retried');
    const r404 = await failingChunk({ kind: 'status', status: 404 }, code('MIQ_MISSING', /lacks chunk/));
    assert.equal(r404.served, 1, '404 is an answer, not retried');
    const { r } = await open();
    try {
      assert.equal(await r.getStorePath(`gone-${'1'.repeat(32)}`), undefined, 'a missing path is a value');
      srv.rule(objectPath(lib.tree), { kind: 'status', status: 503 });
      await r.getStorePath(lib.path);
      await assert.rejects(r.getTree(lib.tree), code('MIQ_REMOTE', /503/));
    } finally {
      srv.rule(objectPath(lib.tree), undefined);
      await r.close();
    }
  });

  it('redirects: same host followed, another host refused', async () => {
    const c = big.chunks[2]!;
    const { r } = await open();
    try {
      await r.getStorePath(lib.path);
      srv.rule('moved/x', { kind: 'body', bytes: await readFile(join(tmp, 'remote', chunkPath(c.id))) });
      srv.rule(chunkPath(c.id), { kind: 'redirect', location: '/moved/x' });
      assert.equal((await r.readFile(big, 2 * 65536, 10)).length, 10);
    } finally {
      await r.close();
    }
    await failingChunk({ kind: 'redirect', location: `http://127.0.0.2:${srv.port}/${chunkPath(c.id)}` }, code('MIQ_REMOTE', /redirect to another host \(http:\/\/127\.0\.0\.2/));
    srv.rule('moved/x', undefined);
  });

  it('a record signed with an untrusted key is refused', async () => {
    const rogue = loadSigningKey((await generateKey(join(tmp, 'keys'), 'rogue')).secretFile);
    const evil = new MemoryStore();
    const fx = await makeFixture(join(tmp, 'evil'));
    const rec = await ingestToMemory(evil, fx.lib, 'libfoo');
    await push(evil, join(tmp, 'evilremote'), { paths: [rec.path], key: rogue });
    // The server swaps in its own record under the real path's name...
    srv.rule(pathDocPath(lib.path), { kind: 'body', bytes: await readFile(join(tmp, 'evilremote', pathDocPath(rec.path))) });
    const { r, cacheDir } = await open();
    try {
      await assert.rejects(r.getStorePath(lib.path), code('MIQ_CORRUPT', /describes/));
      // ...or serves it under its own name, signed by a key nobody trusts.
      srv.rule(pathDocPath(lib.path), undefined);
      srv.rule(pathDocPath(rec.path), { kind: 'body', bytes: await readFile(join(tmp, 'evilremote', pathDocPath(rec.path))) });
      await assert.rejects(r.getStorePath(rec.path), code('MIQ_UNTRUSTED', /signed only by "rogue"/));
      assert.equal((await cachedFiles(cacheDir)).filter((f) => f.startsWith('paths/')).length, 0);
      assert.ok(await r.getStorePath(lib.path), 'the honest record still loads');
    } finally {
      srv.rule(pathDocPath(rec.path), undefined);
      await r.close();
    }
  });

  it('a file record that does not match the signed index is refused', async () => {
    const { r } = await open();
    try {
      await r.getStorePath(lib.path);
      const other = [...src.fileMap.values()].find((f) => f.chunks.length > 1 && f.id !== big.id)!;
      srv.rule(objectPath(big.id), { kind: 'body', bytes: await readFile(join(tmp, 'remote', objectPath(other.id))) });
      await assert.rejects(r.getFile(big.id), code('MIQ_CORRUPT', /signed index/));
    } finally {
      srv.rule(objectPath(big.id), undefined);
      await r.close();
    }
  });

  it('a rolled-back pointer is refused', async () => {
    const seenFile = join(tmp, 'seen.json');
    const old = await readFile(join(tmp, 'remote', profilePath('system')));
    await push(src, join(tmp, 'remote'), { profile: { name: 'system', generation: 2, paths: [lib.path], tree: lib.tree }, key });
    const { r } = await open({ seenFile });
    try {
      assert.equal((await r.getProfile('system'))?.sequence, 2);
      srv.rule(profilePath('system'), { kind: 'body', bytes: old });
      await assert.rejects(r.getProfile('system'), code('MIQ_UNTRUSTED', /from sequence 2 to 1; refusing the rollback/));
      // Equal sequence, other content: also refused.
      const forged = JSON.parse((await readFile(join(tmp, 'remote', profilePath('system')))).toString());
      forged.tree = app.tree;
      srv.rule(profilePath('system'), { kind: 'body', bytes: Buffer.from(JSON.stringify(forged)) });
      await assert.rejects(r.getProfile('system'), code('MIQ_UNTRUSTED'));
    } finally {
      srv.rule(profilePath('system'), undefined);
      await r.close();
    }
  });

  it('every cached chunk verifies after a reader is killed mid-download', async () => {
    const { spawn } = await import('node:child_process');
    const cacheDir = join(tmp, 'killed');
    srv.rule('*', { kind: 'slow', ms: 50 });
    const script = `
      const { openRemote, prefetch } = await import(${JSON.stringify(new URL('../store/remote/index.js', import.meta.url).href)});
      const r = await openRemote(${JSON.stringify(srv.url)}, { cacheDir: ${JSON.stringify(cacheDir)}, trustedKeys: [${JSON.stringify(pub)}] });
      await prefetch(r, { paths: [${JSON.stringify(app.path)}] });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    const before = srv.served.length;
    try {
      while (srv.served.slice(before).filter((s) => s.path.startsWith('chunks/')).length < 4) await new Promise((res) => setTimeout(res, 10));
      child.kill('SIGKILL');
      await new Promise((res) => child.once('exit', res));
    } finally {
      srv.rule('*', undefined);
    }
    const files = await cachedFiles(cacheDir);
    assert.ok(files.some((f) => f.includes('.tmp-')) || files.length > 0, 'the child had started writing');
    const { r } = { r: await openRemote(srv.url, { cacheDir, trustedKeys: [pub] }) };
    try {
      const after = await cachedFiles(cacheDir);
      assert.ok(after.every((f) => !f.includes('.tmp-')), 'temp files cleared on open');
      for (const f of after.filter((x) => x.startsWith('chunks/'))) {
        const id = f.split('/').pop() as Id;
        decodeChunk(id, await readFile(join(cacheDir, f)), undefined, 1 << 24); // throws if torn
      }
      await r.getStorePath(lib.path);
      assert.equal((await r.readFile(big, 0, big.size)).length, big.size);
    } finally {
      await r.close();
    }
  });
});
