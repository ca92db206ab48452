/**
 * install / upgrade / remove / why against a tiny signed repository of real .debs (built with
 * dpkg-deb, served from a folder): no network, a second or two per step. A .deb that does not
 * match the verified index is refused before anything is unpacked, and nothing changes.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { isCleanError, json, miq, tempDir } from './helpers/cli.js';
import { hasGpg, makeDeb, makeKey, writeSuite } from './helpers/signedrepo.js';

const T = tempDir('miq-pkgup-');
after(() => T.cleanup());
const noGpg = hasGpg() ? false : 'gpg is not installed (apt-get install gpg)';
const repo = join(T.dir, 'repo');
const m = (...a: string[]) => miq(['--store', join(T.dir, 'store'), ...a], { env: { MIQ_CACHE: join(T.dir, 'cache') } });
let key: { home: string; keyring: string };
type R = { generation: number; packages: number; added: string[]; removed: string[]; uncoveredScripts: string[]; world: string[] };

function publish(day: number, pkgs: string[]): void {
  writeSuite(repo, 'stable', pkgs.join('\n'), { home: key.home, date: new Date(Date.UTC(2026, 0, day)) });
  const r = m('repo', 'update');
  assert.equal(r.code, 0, r.stderr);
}

before(() => {
  if (noGpg) return;
  key = makeKey(T.dir, 'miq test <test@miq.invalid>');
});

test('install, why, upgrade (what nothing needs goes), remove; a tampered .deb is refused', { skip: noGpg }, () => {
  const v1 = [
    makeDeb(repo, 'hello', '1.0', { depends: 'libold (>= 1)', files: { 'usr/bin/hello': '#!/bin/sh\necho hello 1.0\n' }, postinst: '#!/bin/sh\necho configuring\n' }),
    makeDeb(repo, 'libold', '1.2', { files: { 'usr/share/doc/libold/README': 'old\n' } }),
    makeDeb(repo, 'tool', '3', { files: { 'bin/tool': '#!/bin/sh\necho tool\n' } }),
  ];
  let r = m('repo', 'add', 'tiny', '--url', pathToFileURL(repo).href + '/', '--suites', 'stable', '--components', 'main', '--arch', 'amd64', '--keyring', key.keyring);
  assert.equal(r.code, 0, r.stderr);
  publish(10, v1);
  r = m('install', '--profile', 't', 'hello', 'tool', '--json');
  assert.equal(r.code, 0, r.stderr);
  const a = json<R>(r);
  assert.equal(a.packages, 3);
  assert.deepEqual(a.world, ['hello', 'tool']);
  assert.deepEqual(a.uncoveredScripts, ['hello'], 'hello has a postinst no trigger covers');
  assert.ok(a.added.some((p) => p.startsWith('hello-1.0-')));
  // usr-merge: tool's /bin/tool is under usr/bin, and the top-level links are their own path.
  r = m('ls', `${a.added.find((p) => p.startsWith('tool-3-'))}/usr/bin`);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /tool/);
  r = m('why', 'libold', '--profile', 't');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /<- hello \(libold \(>= 1\)\)/);

  // A new release: hello 1.1 needs libnew instead of libold.
  const v2 = [
    makeDeb(repo, 'hello', '1.1', { depends: 'libnew', files: { 'usr/bin/hello': '#!/bin/sh\necho hello 1.1\n' } }),
    makeDeb(repo, 'libold', '1.2', { files: { 'usr/share/doc/libold/README': 'old\n' } }),
    makeDeb(repo, 'libnew', '2.0', { files: { 'usr/share/doc/libnew/README': 'new\n' } }),
    makeDeb(repo, 'tool', '3', { files: { 'bin/tool': '#!/bin/sh\necho tool\n' } }),
  ];
  publish(11, v2);
  // The .deb of hello 1.1 is damaged on the mirror: refused before unpacking, nothing changes.
  const deb = join(repo, 'pool', 'main', 'hello_1.1_amd64.deb');
  const good = readFileSync(deb);
  const bad = Buffer.from(good);
  bad[bad.length - 10] ^= 0x01;
  writeFileSync(deb, bad);
  r = m('upgrade', '--profile', 't');
  assert.notEqual(r.code, 0);
  assert.ok(isCleanError(r), r.stderr);
  assert.match(r.stderr, /sha256 .* the verified index says .* nothing was unpacked/);
  assert.match(m('why', 'hello', '--profile', 't').stdout, /^hello 1\.0: you asked for it/);
  assert.ok(!json<{ path: string }[]>(m('paths', '--json')).some((p) => p.path.startsWith('hello-1.1-')), 'nothing of hello 1.1 entered the store');
  writeFileSync(deb, good);
  r = m('upgrade', '--profile', 't', '--json');
  assert.equal(r.code, 0, r.stderr);
  const up = json<R>(r);
  assert.ok(up.added.some((p) => p.startsWith('hello-1.1-')) && up.added.some((p) => p.startsWith('libnew-2.0-')));
  assert.ok(up.removed.some((p) => p.startsWith('hello-1.0-')) && up.removed.some((p) => p.startsWith('libold-1.2-')), 'libold goes: nothing needs it');
  r = m('remove', '--profile', 't', 'libnew');
  assert.ok(isCleanError(r), 'removing a dependency you did not ask for is refused with a reason');
  assert.match(r.stderr, /miq why libnew/);
  r = m('remove', '--profile', 't', 'hello', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(json<R>(r).packages, 1);
});
