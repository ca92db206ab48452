/**
 * Recipe modules are programs: `miq recipe show` and `miq build` evaluate them in a sandbox with
 * no network, no writable file system and a time limit. A recipe that tries to write, connect or
 * run a program at load time changes nothing on the machine; one that loops ends with an error.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isCleanError, json, miqAsync, ROOT, tempDir } from './helpers/cli.js';

const t = tempDir('miq-recipe-box-');
const RECIPE = join(ROOT, 'dist', 'builder', 'recipe.js');
let server: Server;
let hits = 0;
let port = 0;

before(async () => {
  server = createServer((_req, res) => { hits++; res.end('reached'); });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  port = (server.address() as AddressInfo).port;
});
after(async () => {
  await new Promise<void>((res) => server.close(() => res()));
  t.cleanup();
});

test('a recipe that writes, connects and runs programs at load time changes nothing', async () => {
  const marker = join(t.dir, 'written-by-recipe');
  const touched = join(t.dir, 'touched-by-recipe');
  const file = join(t.dir, 'hostile.mjs');
  writeFileSync(file, `
import { recipe } from ${JSON.stringify(RECIPE)};
import { writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
const outcome = {};
try { writeFileSync(${JSON.stringify(marker)}, 'pwned'); outcome.WRITE = 'ok'; } catch (e) { outcome.WRITE = e.code; }
try { const r = await fetch('http://127.0.0.1:${port}/'); outcome.NET = 'ok ' + r.status; } catch (e) { outcome.NET = String(e.cause?.code ?? e.message); }
const s = spawnSync('touch', [${JSON.stringify(touched)}]);
outcome.SPAWN = String(s.status);
export default recipe({ name: 'hostile', version: '1', env: outcome, script: 'true' });
`);
  const r = await miqAsync(['--store', join(t.dir, 'store'), 'recipe', 'show', file, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const env = json<{ env: Record<string, string> }>(r).env;
  assert.equal(env.WRITE, 'EROFS', 'the file system is read-only in the box');
  assert.notEqual(env.NET.slice(0, 2), 'ok', `no network in the box: ${env.NET}`);
  assert.notEqual(env.SPAWN, '0', 'a program it runs cannot write either');
  assert.equal(existsSync(marker), false);
  assert.equal(existsSync(touched), false);
  assert.equal(hits, 0, 'the server on the host loopback was never reached');
});

test('a recipe with while (true) {} ends with a clear error, for recipe show and build, and leaves no process', async () => {
  const file = join(t.dir, 'loop.mjs');
  writeFileSync(file, `import { recipe } from ${JSON.stringify(RECIPE)};\nwhile (true) {}\nexport default recipe({ name: 'loop', version: '1', script: 'true' });\n`);
  for (const cmd of [['recipe', 'show', file], ['build', file]]) {
    const started = Date.now();
    const r = await miqAsync(['--store', join(t.dir, 'store'), ...cmd], { env: { MIQ_RECIPE_TIMEOUT: '3' } });
    assert.equal(r.code, 2, `${cmd.join(' ')}: ${r.stderr}`);
    assert.ok(isCleanError(r), r.stderr);
    assert.match(r.stderr, /^miq: recipe .*loop\.mjs: evaluation did not finish within 3 s .*MIQ_RECIPE_TIMEOUT/);
    assert.ok(Date.now() - started < 60_000);
  }
  const left = (() => { try { return execFileSync('pgrep', ['-f', file], { encoding: 'utf8' }); } catch { return ''; } })();
  assert.equal(left.trim(), '', 'the looping evaluation was killed with its sandbox');
});

test('recipes evaluated in the box keep their graph: thunk dependencies, shared dependencies, errors', async () => {
  const dep = join(t.dir, 'dep.mjs');
  const top = join(t.dir, 'top.mjs');
  const bad = join(t.dir, 'bad.mjs');
  writeFileSync(dep, `import { recipe } from ${JSON.stringify(RECIPE)};\nexport default recipe({ name: 'dep', version: '1', script: 'true', sources: [{ url: 'file:///nonexistent/x.tar', sha256: '${'a'.repeat(64)}' }] });\n`);
  writeFileSync(top, `import { recipe } from ${JSON.stringify(RECIPE)};\nimport dep from './dep.mjs';\nexport default recipe({ name: 'top', version: '2', script: 'echo hi', buildDeps: [() => dep], runDeps: [dep] });\n`);
  writeFileSync(bad, `import { recipe } from ${JSON.stringify(RECIPE)};\nexport default recipe({ name: 'bad', version: '1', script: 'true', buildDeps: [() => { throw new Error('no such thing'); }] });\n`);
  const s = await miqAsync(['recipe', 'show', top, '--json']);
  assert.equal(s.code, 0, s.stderr);
  const info = json<{ buildDeps: { name: string; path: string }[]; runDeps: { name: string; path: string }[] }>(s);
  assert.equal(info.buildDeps[0]!.name, 'dep');
  assert.equal(info.buildDeps[0]!.path, info.runDeps[0]!.path);
  const d = json<{ path: string; sources: { hash: string }[] }>(await miqAsync(['recipe', 'show', dep, '--json']));
  assert.equal(d.path, info.buildDeps[0]!.path, 'the same key whether loaded alone or as a dependency');
  assert.equal(d.sources[0]!.hash, 'a'.repeat(64));
  const b = await miqAsync(['recipe', 'show', bad]);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /^miq: recipe bad: buildDeps\[0\] could not be resolved: no such thing/);
});
