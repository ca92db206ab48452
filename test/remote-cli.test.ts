/**
 * The remote commands as a user runs them: key generate, push (twice), fetch into an empty store,
 * and a fetch killed mid-download that leaves the store clean for `miq verify`.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBadServer, type BadServer } from './helpers/badserver.js';
import { exited, isCleanError, json, miq, miqAsync, ROOT, spawnMiq, tempDir } from './helpers/cli.js';

describe('miq key / push / fetch', () => {
  const t = tempDir('miq-remote-cli-');
  const env = (store: string) => ({ MIQ_HOME: join(t.dir, store) });
  let path: string;
  let pub: string;
  let srv: BadServer;

  before(async () => {
    cpSync(join(ROOT, 'node_modules', 'typescript'), join(t.dir, 'tree'), { recursive: true });
    const k = miq(['key', 'generate', 'ci-1', '--dir', join(t.dir, 'keys'), '--json'], { env: env('a') });
    assert.equal(k.code, 0, k.stderr);
    pub = json<{ publicText: string }>(k).publicText;
    const ing = miq(['ingest', join(t.dir, 'tree'), '--name', 'ts', '--json'], { env: env('a') });
    assert.equal(ing.code, 0, ing.stderr);
    path = json<{ path: string }>(ing).path;
    srv = await startBadServer(join(t.dir, 'remote'));
  });
  after(async () => {
    await srv?.close();
    t.cleanup();
  });

  it('push writes once; a second push writes nothing', () => {
    const first = json<{ chunksWritten: number; pathsWritten: string[] }>(miq(['push', join(t.dir, 'remote'), path, '--sign-key', join(t.dir, 'keys', 'ci-1.key'), '--json'], { env: env('a') }));
    assert.ok(first.chunksWritten > 50);
    assert.deepEqual(first.pathsWritten, [path]);
    const again = json<{ bytesWritten: number; pathsWritten: string[] }>(miq(['push', `file://${join(t.dir, 'remote')}`, path, '--sign-key', join(t.dir, 'keys', 'ci-1.key'), '--json'], { env: env('a') }));
    assert.equal(again.bytesWritten, 0);
    assert.deepEqual(again.pathsWritten, []);
    assert.ok(isCleanError(miq(['push', 'http://127.0.0.1:1/x', path], { env: env('a') })));
  });

  it('a profile whose members conflict, settled by --priority, pulls into an empty store with the same tree', () => {
    const mk = (n: string, text: string): string => {
      const d = join(t.dir, `prio-${n}`);
      mkdirSync(join(d, 'bin'), { recursive: true });
      writeFileSync(join(d, 'bin', 'tool'), `#!/bin/sh\necho ${text}\n`, { mode: 0o755 });
      const r = miq(['ingest', d, '--name', `tool-${n}`, '--json'], { env: env('a') });
      assert.equal(r.code, 0, r.stderr);
      return json<{ path: string }>(r).path;
    };
    const a = mk('a', 'A');
    const b = mk('b', 'B');
    assert.equal(miq(['profile', 'switch', 'prio', a], { env: env('a') }).code, 0);
    const add = miq(['profile', 'add', 'prio', b, '--priority', '1'], { env: env('a') });
    assert.equal(add.code, 0, add.stderr);
    const p = miq(['push', join(t.dir, 'remote-prio'), '--profile', 'prio', '--sign-key', join(t.dir, 'keys', 'ci-1.key'), '--json'], { env: env('a') });
    assert.equal(p.code, 0, p.stderr);
    const ptr = JSON.parse(readFileSync(join(t.dir, 'remote-prio', 'profiles', 'prio'), 'utf8')) as { priorities?: Record<string, number>; tree: string };
    assert.deepEqual(ptr.priorities, { [b]: 1 }, 'the signed pointer carries the priority');
    const pull = miq(['profile', 'pull', 'prio', '--remote', join(t.dir, 'remote-prio'), '--trusted-key', pub, '--json'], { env: env('prio-client') });
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(json<{ tree: string; changed: boolean }>(pull).tree, ptr.tree);
    const g = json<{ generations: { priorities: Record<string, number> }[] }>(miq(['profile', 'generations', 'prio', '--json'], { env: env('prio-client') }));
    assert.deepEqual(g.generations.at(-1)!.priorities, { [b]: 1 });
  });

  // The server lives in this process: commands that talk to it must not block the event loop.
  it('fetch without a trusted key is a clean error; with one it fills an empty store that verifies', async () => {
    const r = await miqAsync(['fetch', path, '--remote', srv.url], { env: env('b') });
    assert.ok(isCleanError(r), r.stderr);
    assert.match(r.stderr, /no trusted keys/);
    const ok = await miqAsync(['fetch', path, '--remote', srv.url, '--trusted-key', pub, '--json'], { env: env('b') });
    assert.equal(ok.code, 0, ok.stderr);
    const v = miq(['verify'], { env: env('b') });
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const cat = miq(['paths'], { env: env('b') });
    assert.match(cat.stdout, new RegExp(path));
  });

  it('a fetch killed mid-download leaves a store that verifies clean, and fetching again completes', async () => {
    srv.rule('*', { kind: 'slow', ms: 30 });
    const before = srv.served.length;
    const child = spawnMiq(['fetch', path, '--remote', srv.url, '--trusted-key', pub], { env: env('c') });
    try {
      // Kill after it has fetched some chunks, while others are still in flight.
      while (srv.served.slice(before).filter((s) => s.path.startsWith('chunks/')).length < 40) {
        if (child.exitCode !== null) break;
        await new Promise((res) => setTimeout(res, 10));
      }
      child.kill('SIGKILL');
      await exited(child);
    } finally {
      srv.rule('*', undefined);
    }
    assert.equal(child.signalCode, 'SIGKILL', 'killed mid-download, not finished');
    assert.ok(readdirSync(join(t.dir, 'c')).length > 0, 'the fetch had started writing the store');
    const v = miq(['verify'], { env: env('c') });
    assert.equal(v.code, 0, `verify after kill: ${v.stdout}${v.stderr}`);
    const again = await miqAsync(['fetch', path, '--remote', srv.url, '--trusted-key', pub], { env: env('c') });
    assert.equal(again.code, 0, again.stderr);
    const v2 = miq(['verify'], { env: env('c') });
    assert.equal(v2.code, 0, v2.stdout + v2.stderr);
    assert.match(v2.stdout, /\b1 store path\b/);
  });
});
