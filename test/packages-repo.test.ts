/**
 * Repositories: a tiny repository signed with a throwaway key is accepted; a bad signature, a
 * flipped byte (in the signed text or in a Packages file) and an older Date are refused with a
 * clear error and nothing changed. Then this machine's real apt lists.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { isCleanError, json, miq, tempDir } from './helpers/cli.js';
import { hasGpg, makeKey, stanza, writeSuite } from './helpers/signedrepo.js';
import { noAptLists } from './helpers/apt.js';

const T = tempDir('miq-pkgrepo-');
after(() => T.cleanup());
const noGpg = hasGpg() ? false : 'gpg is not installed (apt-get install gpg)';

let key: { home: string; keyring: string };
let other: { home: string; keyring: string };
const repo = join(T.dir, 'repo');
const store = join(T.dir, 'store');
const m = (...a: string[]) => miq(['--store', store, ...a]);
const day = (n: number) => new Date(Date.UTC(2026, 0, n));
const PKGS = stanza('hello', '2.10-3', { Depends: 'libc6 (>= 2.34)' }) + '\n' + stanza('libc6', '2.36-9', { Priority: 'required', Description: 'GNU C Library: Shared libraries' });

before(() => {
  if (noGpg) return;
  key = makeKey(T.dir, 'miq test <test@miq.invalid>');
  other = makeKey(T.dir, 'mallory <m@miq.invalid>');
});

function state(): { index?: string; suites: { dateText: string }[] } {
  return json(m('repo', 'show', 't', '--json'));
}

test('a signed repository is added, updated, listed, searched and shown', { skip: noGpg }, () => {
  writeSuite(repo, 'stable', PKGS, { home: key.home, date: day(10) });
  let r = m('repo', 'add', 't', '--url', pathToFileURL(repo).href + '/', '--suites', 'stable', '--components', 'main', '--arch', 'amd64', '--keyring', key.keyring);
  assert.equal(r.code, 0, r.stderr);
  r = m('repo', 'update', 't', '--json');
  assert.equal(r.code, 0, r.stderr);
  const u = json<{ index: string; suites: { packages: number }[] }>(r);
  assert.match(u.index, /^repo-t-[0-9a-f]{32}$/);
  assert.equal(u.suites[0]!.packages, 2);
  assert.ok(json<{ root: string; path: string }[]>(m('roots', '--json')).some((x) => x.root === 'repo-t' && x.path === u.index), 'the index is pinned');
  const list = json<{ config: { name: string } }[]>(m('repo', 'list', '--json'));
  assert.deepEqual(list.map((x) => x.config.name), ['t']);
  const hits = json<{ name: string }[]>(m('search', 'C Library', '--json'));
  assert.deepEqual(hits.map((h) => h.name), ['libc6']);
  const show = json<{ version: string; fields: Record<string, string> }>(m('show', 'hello', '--json'));
  assert.equal(show.version, '2.10-3');
  assert.equal(show.fields.Depends, 'libc6 (>= 2.34)');
  r = m('show', 'nosuch');
  assert.ok(isCleanError(r), r.stderr);
});

function refused(what: string, prepare: () => void, expect: RegExp): void {
  const before = state();
  prepare();
  const r = m('repo', 'update', 't');
  assert.notEqual(r.code, 0, `${what}: accepted`);
  assert.ok(isCleanError(r), `${what}: ${r.stderr}`);
  assert.match(r.stderr, expect, what);
  assert.deepEqual(state(), before, `${what}: the repository state changed`);
}

test('bad signature, flipped bytes and an older Date are refused; nothing changes', { skip: noGpg }, () => {
  const rel = join(repo, 'dists', 'stable', 'InRelease');
  const pk = join(repo, 'dists', 'stable', 'main', 'binary-amd64', 'Packages');
  refused('signed by another key', () => writeSuite(repo, 'stable', PKGS, { home: other.home, date: day(11) }), /signature does not verify/);
  refused('a flipped byte in the signed text', () => {
    writeSuite(repo, 'stable', PKGS, { home: key.home, date: day(11) });
    const b = readFileSync(rel);
    const i = b.indexOf('Origin: miq-test') + 9;
    b[i] ^= 0x01;
    writeFileSync(rel, b);
  }, /signature does not verify/);
  refused('a flipped byte in Packages', () => {
    writeSuite(repo, 'stable', PKGS, { home: key.home, date: day(11) });
    const b = readFileSync(pk);
    b[20] ^= 0x01;
    writeFileSync(pk, b);
  }, /sha256 .* the signed release says/);
  refused('an older Date', () => writeSuite(repo, 'stable', PKGS, { home: key.home, date: day(9) }), /older than the one accepted before/);
  // A newer, good release is accepted.
  writeSuite(repo, 'stable', PKGS + '\n' + stanza('extra', '1'), { home: key.home, date: day(12) });
  const r = m('repo', 'update', 't', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(json<{ suites: { packages: number }[] }>(r).suites[0]!.packages, 3);
});

test("this machine's apt lists: repo add --from-apt, update, show", { skip: noAptLists() ?? false }, () => {
  const s = join(T.dir, 'real');
  let r = miq(['--store', s, 'repo', 'add', 'debian', '--from-apt', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!/\/\/[a-z]/.test(JSON.stringify(json<{ config: { sources: { url: string }[] } }>(r).config.sources.map((x) => x.url)).replace(/mirror:\/\/debian(-security)?\//g, '')), 'sources are mirror:// URLs');
  r = miq(['--store', s, 'repo', 'update', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const u = json<{ suites: { packages: number }[] }>(r);
  assert.ok(u.suites.reduce((n, x) => n + x.packages, 0) > 1000);
  r = miq(['--store', s, 'show', 'bash', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(json<{ fields: Record<string, string> }>(r).fields.Essential, 'yes');
});
