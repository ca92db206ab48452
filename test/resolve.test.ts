/**
 * One rule for naming store paths in every command (issue 15): an exact name wins over a prefix;
 * NAME-HASH, a hash prefix and a path under a miq mountpoint work; an ambiguity lists the
 * candidates. Also the key lookup (`--sign-key NAME`) and `fetch --profile` making the profile.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isCleanError, json, miq, miqAsync, tempDir } from './helpers/cli.js';
import { startMiqMount } from './helpers/fuse.js';

const tmp = tempDir();
after(() => tmp.cleanup());
const S = ['--store', join(tmp.dir, 'store')];

function tree(name: string, content: string): string {
  const d = join(tmp.dir, 'src', name);
  mkdirSync(join(d, 'sub'), { recursive: true });
  writeFileSync(join(d, 'sub', `${name}.txt`), content);
  return d;
}
const ingest = (dir: string, name: string): string => {
  const r = miq([...S, 'ingest', dir, '--name', name, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return json<{ path: string }>(r).path;
};

const paths: Record<string, string> = {};

test('the resolver: exact name, NAME-HASH, hash prefix, unique prefix, ambiguity lists candidates', () => {
  for (const n of ['site', 'site2', 'sitew']) paths[n] = ingest(tree(n, `${n}\n`), n);
  const dupA = ingest(tree('dupa', 'a\n'), 'dup');
  const dupB = ingest(tree('dupb', 'b\n'), 'dup');
  const cat = (arg: string) => miq([...S, 'cat', arg]);

  assert.equal(cat('site/sub/site.txt').stdout, 'site\n', 'an exact name wins over site2 and sitew');
  assert.equal(cat(`${paths.site2}/sub/site2.txt`).stdout, 'site2\n', 'full NAME-HASH');
  assert.equal(cat(`/miq/store/${paths.sitew}/sub/sitew.txt`).stdout, 'sitew\n', 'under /miq/store/');
  const hash = paths.sitew!.slice('sitew-'.length);
  assert.equal(cat(`${hash.slice(0, 8)}/sub/sitew.txt`).stdout, 'sitew\n', 'hash prefix');
  assert.equal(cat(`${paths.site2!.slice(0, 10)}/sub/site2.txt`).stdout, 'site2\n', 'unique prefix of NAME-HASH');

  const amb = cat('sit/sub/site.txt');
  assert.ok(isCleanError(amb) && amb.code === 2, amb.stderr);
  for (const n of ['site', 'site2', 'sitew']) assert.ok(amb.stderr.includes(paths[n]!), `candidates listed: ${amb.stderr}`);
  const two = miq([...S, 'ls', 'dup', '--json']);
  assert.ok(isCleanError(two), two.stderr);
  assert.match(two.stderr, /2 store paths are named "dup"/);
  assert.ok(two.stderr.includes(dupA) && two.stderr.includes(dupB), two.stderr);
  const jsonErr = json<{ error: { code: string; details: { candidates: string[] } } }>(two);
  assert.deepEqual(jsonErr.error.details.candidates.sort(), [dupA, dupB].sort());

  const none = cat('nothing/x');
  assert.ok(isCleanError(none) && none.code === 2, none.stderr);
  const outside = cat('/etc/passwd');
  assert.ok(isCleanError(outside) && /not under/.test(outside.stderr), outside.stderr);

  // The same rule in the other commands that take a store path.
  for (const args of [['ls', 'site'], ['export', 'site', join(tmp.dir, 'exp')], ['pin', 'site2'], ['unpin', 'site2'], ['profile', 'switch', 'p', 'site', 'sitew'], ['profile', 'add', 'p', 'site2']]) {
    const r = miq([...S, ...args]);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  }
  const gens = json<{ generations: { paths: string[] }[] }>(miq([...S, 'profile', 'generations', 'p', '--json']));
  assert.deepEqual([...gens.generations.at(-1)!.paths].sort(), [paths.site, paths.site2, paths.sitew].sort());
  const log = miq([...S, 'log', 'site']);
  assert.ok(isCleanError(log) && /was not built by miq/.test(log.stderr), `log resolves the name first: ${log.stderr}`);
});

test('a path under a running miq mountpoint names its store path', async () => {
  const mnt = join(tmp.dir, 'mnt');
  mkdirSync(mnt);
  const m = await startMiqMount([...S, 'mount', mnt, '--profile', 'p', '--json']);
  try {
    const r = await miqAsync([...S, 'cat', `${mnt}/store/${paths.site2}/sub/site2.txt`]);
    assert.equal(r.stdout, 'site2\n', r.stderr);
    const ls = await miqAsync([...S, 'ls', `${mnt}/store/${paths.site}/sub`, '--json']);
    assert.equal(json<{ name: string }[]>(ls)[0]!.name, 'site.txt', ls.stderr);
  } finally {
    await m.stop();
  }
});

test('--sign-key NAME finds <store>/keys/NAME.key; fetch --profile makes the local profile', () => {
  const k = miq([...S, 'key', 'generate', 'mykey', '--json']);
  assert.equal(k.code, 0, k.stderr);
  const remote = join(tmp.dir, 'remote');
  for (const key of ['mykey', 'mykey.key']) {
    const p = miq([...S, 'push', remote, '--profile', 'p', '--sign-key', key, '--json']);
    assert.equal(p.code, 0, `--sign-key ${key}: ${p.stderr}`);
    assert.ok(!p.stderr.includes('without --sign-key'));
  }
  const missing = miq([...S, 'push', remote, 'site', '--sign-key', 'nokey']);
  assert.ok(isCleanError(missing) && /miq key generate nokey/.test(missing.stderr), missing.stderr);

  const pub = json<{ publicFile: string }>(k).publicFile;
  const S2 = ['--store', join(tmp.dir, 'store2')];
  const f = miq([...S2, 'fetch', '--remote', remote, '--trusted-key', pub, '--profile', 'p', '--json']);
  assert.equal(f.code, 0, f.stderr);
  assert.deepEqual(json<{ local: unknown }>(f).local, { generation: 1, changed: true });
  const cur = json<{ current: number; generations: { generation: number; paths: string[]; tree: string }[] }>(miq([...S2, 'profile', 'generations', 'p', '--json']));
  const src = json<{ generations: { paths: string[]; tree: string }[] }>(miq([...S, 'profile', 'generations', 'p', '--json'])).generations.at(-1)!;
  assert.equal(cur.current, 1);
  assert.equal(cur.generations[0]!.tree, src.tree);
  assert.deepEqual([...cur.generations[0]!.paths].sort(), [...src.paths].sort());
  const again = miq([...S2, 'fetch', '--remote', remote, '--trusted-key', pub, '--profile', 'p', '--json']);
  assert.deepEqual(json<{ local: unknown }>(again).local, { generation: 1, changed: false }, 'a second fetch keeps the generation');
  assert.equal(miq([...S2, 'cat', 'site/sub/site.txt']).stdout, 'site\n', 'the closure is local');
});
