/**
 * A package repository published on a miq remote (issue 14 §2): `miq push --repo` writes the
 * verified index and a signed pointer with a sequence number; a client with only the remote's URL
 * and key (`miq repo pull`) gets every package's metadata from it with the distribution out of
 * reach (its repository folder deleted, the Debian mirror pointed at a closed port), follows a
 * newer pointer, and refuses an older one, an unsigned one, and one signed by another key.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { hasGpg, makeKey, stanza, writeSuite } from './helpers/signedrepo.js';
import { isCleanError, json, miq, tempDir } from './helpers/cli.js';
import { freePort, startNginx, type Nginx } from './helpers/nginx.js';

const T = tempDir('miq-reporemote-');
const noGpg = hasGpg() ? false : 'gpg is not installed (apt-get install gpg)';
const repo = join(T.dir, 'debian');
const pub = join(T.dir, 'remote');
let nginx: Nginx | undefined;
let closed: number;
const day = (n: number): Date => new Date(Date.UTC(2026, 0, n));
const A = (...a: string[]) => miq(['--store', join(T.dir, 'a'), ...a]);
const B = (...a: string[]) => miq(['--store', join(T.dir, 'b'), ...a], { env: { MIQ_MIRROR_DEBIAN: `http://127.0.0.1:${closed}/` } });

before(async () => {
  closed = await freePort();
});
after(async () => {
  await nginx?.stop();
  T.cleanup();
});

test('push --repo publishes a signed repository; repo pull takes it with the distribution unreachable; rollback and foreign keys refused', { skip: noGpg, timeout: 300_000 }, async () => {
  const gpg = makeKey(T.dir, 'miq test <test@miq.invalid>');
  const v1 = stanza('hello', '2.10-3', { Depends: 'libc6 (>= 2.34)' }) + '\n' + stanza('libc6', '2.36-9', { Priority: 'required' });
  writeSuite(repo, 'stable', v1, { home: gpg.home, date: day(10) });
  let r = A('repo', 'add', 'debian', '--url', pathToFileURL(repo).href + '/', '--suites', 'stable', '--components', 'main', '--arch', 'amd64', '--keyring', gpg.keyring);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(A('repo', 'update', 'debian').code, 0);
  const k = json<{ publicText: string }>(A('key', 'generate', 'site', '--dir', join(T.dir, 'keys'), '--json'));
  const other = json<{ publicText: string }>(A('key', 'generate', 'mallory', '--dir', join(T.dir, 'keys'), '--json'));
  const push = (): { repo: { sequence: number; written: boolean; index: string } } => {
    const p = A('push', pub, '--repo', 'debian', '--sign-key', join(T.dir, 'keys', 'site.key'), '--json');
    assert.equal(p.code, 0, p.stderr);
    return json(p);
  };
  const p1 = push();
  assert.equal(p1.repo.sequence, 1);
  assert.equal(push().repo.written, false, 'an unchanged repository keeps its sequence');
  assert.ok(isCleanError(A('push', pub, '--repo', 'debian')), 'an unsigned repository pointer is refused');
  nginx = await startNginx(pub);

  // The client: an empty store, the distribution gone, the mirror a closed port.
  const pull = B('repo', 'pull', 'debian', '--remote', nginx.url, '--trusted-key', k.publicText, '--json');
  assert.equal(pull.code, 0, pull.stderr);
  assert.deepEqual([json<{ sequence: number }>(pull).sequence, json<{ index: string }>(pull).index], [1, p1.repo.index]);
  rmSync(repo, { recursive: true, force: true });
  const show = B('show', 'hello', '--json');
  assert.equal(show.code, 0, show.stderr);
  assert.equal(json<{ version: string }>(show).version, '2.10-3');
  assert.ok(json<{ root: string }[]>(B('roots', '--json')).some((x) => x.root === 'repo-debian'), 'the pulled index is a GC root');

  // A newer publication is followed; the older one, replayed, is refused.
  const oldDoc = readFileSync(join(pub, 'repos', 'debian'));
  const v2 = stanza('hello', '2.10-4', { Depends: 'libc6 (>= 2.34)' }) + '\n' + stanza('libc6', '2.36-9', { Priority: 'required' });
  writeSuite(repo, 'stable', v2, { home: gpg.home, date: day(11) });
  assert.equal(A('repo', 'update', 'debian').code, 0);
  assert.equal(push().repo.sequence, 2);
  rmSync(repo, { recursive: true, force: true });
  const pull2 = B('repo', 'pull', 'debian', '--remote', nginx.url, '--trusted-key', k.publicText, '--json');
  assert.equal(pull2.code, 0, pull2.stderr);
  assert.equal(json<{ version: string }>(B('show', 'hello', '--json')).version, '2.10-4');
  const newDoc = readFileSync(join(pub, 'repos', 'debian'));
  writeFileSync(join(pub, 'repos', 'debian'), oldDoc);
  const back = B('repo', 'pull', 'debian', '--remote', nginx.url, '--trusted-key', k.publicText);
  assert.ok(isCleanError(back), back.stderr);
  assert.match(back.stderr, /went back from sequence 2 to 1/);
  writeFileSync(join(pub, 'repos', 'debian'), newDoc);
  const foreign = miq(['--store', join(T.dir, 'c'), 'repo', 'pull', 'debian', '--remote', nginx.url, '--trusted-key', other.publicText]);
  assert.ok(isCleanError(foreign), foreign.stderr);
  assert.equal(json<{ version: string }>(B('show', 'hello', '--json')).version, '2.10-4', 'nothing moved');
});
