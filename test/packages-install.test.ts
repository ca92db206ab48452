/**
 * Install by name, end to end, as a new user would: `miq install --profile t python3 perl` into
 * an empty store (the .debs come through the configured mirror, cached across runs in
 * $MIQ_TEST_CACHE), `miq mount`, then python3 and perl run in a bubblewrap sandbox rooted in the
 * view, the ldconfig trigger's cache lists the generation's libraries, a second empty store gives
 * the same env tree, remove drops what only python3 needed, rollback brings it back, and gc after
 * delete-generations frees the rest.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { debianStore, noAptLists } from './helpers/apt.js';
import { json, miq, spawnMiq, tempDir } from './helpers/cli.js';
import { CACHE } from './helpers/corpus.js';
import { resolveStoreArg } from '../store/index.js';
import { openStore } from '../store/index.js';

const skip = noAptLists() ?? (spawnSync('bwrap', ['--version']).status !== 0 ? 'bubblewrap is not installed' : undefined);
if (skip) console.log(`# packages-install: skipped: ${skip}`);
const T = tempDir('miq-install-');
after(() => T.cleanup());
const env = { MIQ_CACHE: CACHE };
const at = (store: string) => (...a: string[]) => miq(['--store', join(T.dir, store), ...a], { env });

type Result = { generation: number; packages: number; tree: string; env: string; added: string[]; removed: string[]; triggers: { name: string; path?: string; cached: boolean }[]; uncoveredScripts: string[] };

/** An empty store with the verified Debian index (packages-repo.test.ts tests making it). */
const setup = (store: string): void => debianStore(join(T.dir, store), miq);

let first: Result;
const A = at('a');

before(() => {
  if (skip) return;
  setup('a');
  const r = A('install', '--profile', 't', 'python3', 'perl', '--json');
  assert.equal(r.code, 0, r.stderr);
  first = json<Result>(r);
});

function sandbox(view: string, cmd: string[]): { code: number; stdout: string; stderr: string } {
  const binds = readdirSync(view).flatMap((e) => ['--ro-bind', join(view, e), `/${e}`]);
  const r = spawnSync('bwrap', ['--unshare-all', '--die-with-parent', '--tmpfs', '/', ...binds, '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', '--setenv', 'PATH', '/usr/bin', '--setenv', 'LC_ALL', 'C', ...cmd], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

test('installed into an empty store: mounted, python3 and perl run in a sandbox rooted in the view', { skip: skip ?? false, timeout: 600_000 }, async () => {
  assert.ok(first.packages >= 40, `${first.packages} packages`);
  for (const t of ['ldconfig', 'python']) assert.ok(first.triggers.some((x) => x.name === t && x.path), `trigger ${t} ran`);
  const mnt = join(T.dir, 'mnt');
  mkdirSync(mnt);
  const server = spawnMiq(['--store', join(T.dir, 'a'), 'mount', mnt, '--profile', 't', '--json'], { env });
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      server.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve();
      });
      server.on('exit', (c) => reject(new Error(`miq mount exited ${c}`)));
      setTimeout(() => reject(new Error('miq mount did not report within 60 s')), 60_000);
    });
    const view = join(mnt, 'usr');
    const py = sandbox(view, ['/usr/bin/python3', '-c', 'import json, sqlite3, ssl, sys; print(json.dumps([sys.version_info[0], sqlite3.sqlite_version > "3", ssl.OPENSSL_VERSION.split()[0]]))']);
    assert.equal(py.code, 0, py.stderr);
    assert.deepEqual(JSON.parse(py.stdout), [3, true, 'OpenSSL']);
    // The byte-compile trigger's unchecked-hash pycs are used as they are: importing with
    // -B (never write) and verbose import tracing shows them loaded, not recompiled.
    const pyc = sandbox(view, ['/usr/bin/python3', '-B', '-v', '-c', 'import json']);
    assert.match(pyc.stderr, /matches \/usr\/lib\/python3\.\d+\/json\/__init__\.py/);
    const pl = sandbox(view, ['/usr/bin/perl', '-e', 'print "perl ", join(",", map { $_ * 2 } 1..3), "\\n"']);
    assert.equal(pl.code, 0, pl.stderr);
    assert.equal(pl.stdout, 'perl 2,4,6\n');
    const ld = spawnSync('ldconfig', ['-p', '-C', join(view, 'etc', 'ld.so.cache')], { encoding: 'utf8' });
    assert.equal(ld.status, 0, ld.stderr);
    for (const lib of ['libc.so.6', 'libssl.so.3', 'libsqlite3.so.0', 'libz.so.1', 'libcrypt.so.1']) assert.match(ld.stdout, new RegExp(`\\b${lib.replace(/\./g, '\\.')} .*=> /usr/lib/x86_64-linux-gnu/${lib.replace(/\./g, '\\.')}`), lib);
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => { server.once('exit', r); setTimeout(r, 15_000); });
    spawnSync('umount', ['-l', join(mnt, 'usr')]);
    spawnSync('umount', ['-l', mnt]);
  }
});

test('the same request in a second empty store gives the same env tree id; installing again is a no-op', { skip: skip ?? false, timeout: 600_000 }, async () => {
  const B = at('b');
  setup('b');
  const r = B('install', '--profile', 't', 'python3', 'perl', '--json');
  assert.equal(r.code, 0, r.stderr);
  const second = json<Result>(r);
  assert.equal(second.tree, first.tree);
  assert.equal(second.env, first.env);
  const again = json<Result & { fetched: number }>(B('install', '--profile', 't', 'python3', 'perl', '--json'));
  assert.equal(again.fetched, 0);
  assert.equal(again.tree, first.tree);
  assert.ok(again.triggers.every((t) => t.cached));
  // update-alternatives: mawk's postinst links /usr/bin/awk.
  const w = B('install', '--profile', 't', 'mawk', '--json');
  assert.equal(w.code, 0, w.stderr);
  const withAwk = json<Result>(w);
  const s = await openStore(join(T.dir, 'b'));
  try {
    const link = await resolveStoreArg(s, `${withAwk.env}/usr/bin/awk`);
    assert.equal(link.kind, 'symlink');
    assert.equal(link.kind === 'symlink' && link.target.toString(), '/etc/alternatives/awk');
    const alt = await resolveStoreArg(s, `${withAwk.env}/etc/alternatives/awk`);
    assert.equal(alt.kind === 'symlink' && alt.target.toString(), '/usr/bin/mawk');
  } finally {
    await s.close();
  }
});

test('remove drops what only python3 needed; rollback brings it back; gc after delete-generations frees the rest', { skip: skip ?? false, timeout: 600_000 }, () => {
  let r = A('remove', '--profile', 't', 'python3', '--json');
  assert.equal(r.code, 0, r.stderr);
  const rem = json<Result>(r);
  const gone = rem.removed.map((p) => p.replace(/-[^-]+$/, ''));
  for (const p of ['python3-', 'python3.11-minimal-', 'libpython3.11-stdlib-', 'libsqlite3-0-']) assert.ok(gone.some((g) => g.startsWith(p)), `${p} removed: ${gone.join(' ')}`);
  assert.ok(!gone.some((g) => g.startsWith('perl-base-') || g.startsWith('libc6-')), 'perl and libc6 stay');
  const perlOnly = json<{ packages: unknown[] }>(A('resolve', 'perl', '--json'));
  assert.equal(rem.packages, perlOnly.packages.length, 'the generation holds exactly what perl needs');
  let why = A('why', 'python3', '--profile', 't');
  assert.notEqual(why.code, 0);
  r = A('profile', 'rollback', 't');
  assert.equal(r.code, 0, r.stderr);
  why = A('why', 'libsqlite3-0', '--profile', 't');
  assert.equal(why.code, 0, why.stderr);
  assert.match(why.stdout, /<- python3\.11/);
  // Forward again, drop every older generation, and gc frees python's store paths.
  r = A('remove', '--profile', 't', 'python3', '--json');
  assert.equal(r.code, 0, r.stderr);
  r = A('profile', 'delete-generations', 't', '--keep', '1');
  assert.equal(r.code, 0, r.stderr);
  r = A('gc', '--json');
  assert.equal(r.code, 0, r.stderr);
  const gc = json<{ deadPaths: string[] }>(r);
  for (const p of rem.removed.filter((x) => !x.startsWith('env-'))) assert.ok(gc.deadPaths.includes(p), `gc freed ${p}`);
  assert.ok(!gc.deadPaths.some((p) => p.startsWith('perl-base-')));
});
