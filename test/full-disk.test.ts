/**
 * A store on a full disk (a small tmpfs filled up for real) and on a read-only file system (a
 * read-only bind mount): the failing ingest says ENOSPC and leaves no torn pack; paths, cat,
 * verify and gc work on the full disk; after space is freed the next ingest succeeds; the
 * read-only store is listed, read, verified, exported and mounted, and refuses changes cleanly.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isCleanError, json, miq, spawnMiq, tempDir } from './helpers/cli.js';
import { cleanup, sh } from './helpers/fuse.js';

const t = tempDir('miq-disk-');
const fs = join(t.dir, 'fs');
const ro = join(t.dir, 'ro');
const mounted: string[] = [];

before(() => {
  mkdirSync(fs);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', fs]);
  mounted.push(fs);
});
after(() => {
  // Deepest first; lazily, so a busy mount never hangs the suite.
  for (const m of mounted.reverse()) spawnSync('umount', ['-l', m]);
  t.cleanup();
});

const S = ['--store', join(fs, 'store')];
const packBytes = (): number => readdirSync(join(fs, 'store', 'packs')).reduce((a, n) => a + statSync(join(fs, 'store', 'packs', n)).size, 0);
let small = '';
let path = '';

test('full disk: the ingest fails with ENOSPC and the fix, and leaves no torn pack', () => {
  small = join(t.dir, 'small');
  mkdirSync(small);
  writeFileSync(join(small, 'hello'), 'hello from a full disk\n');
  const first = miq([...S, 'ingest', small, '--json']);
  assert.equal(first.code, 0, first.stderr);
  path = json<{ path: string }>(first).path;
  const before = packBytes();
  const big = join(t.dir, 'big');
  mkdirSync(big);
  for (let i = 0; i < 4; i++) writeFileSync(join(big, `r${i}`), randomBytes(15 << 20));
  const r = miq([...S, 'ingest', big]);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(isCleanError(r), r.stderr);
  assert.match(r.stderr, /^miq: no space left on the device holding the store at .*`miq gc`/m);
  assert.equal(packBytes(), before, 'what the failed ingest appended was cut off again');
  assert.equal(miq([...S, 'verify']).code, 0);
  rmSync(big, { recursive: true });
});

test('full disk: paths, cat, verify and gc work; after space is freed the next ingest succeeds', () => {
  // Fill what is left, to the last block.
  spawnSync('dd', ['if=/dev/zero', `of=${join(fs, 'filler')}`, 'bs=1M'], { stdio: 'ignore' });
  const df = execFileSync('df', ['--output=avail', fs], { encoding: 'utf8' }).trim().split('\n').pop()!.trim();
  assert.equal(df, '0', 'the disk is full');
  const paths = miq([...S, 'paths', '--json']);
  assert.equal(paths.code, 0, paths.stderr);
  assert.deepEqual(json<{ path: string }[]>(paths).map((p) => p.path), [path]);
  assert.match(paths.stderr, /warning: the disk holding the store at .* is full/);
  const cat = miq([...S, 'cat', `${path}/hello`]);
  assert.equal(cat.stdout, 'hello from a full disk\n', cat.stderr);
  assert.equal(miq([...S, 'verify']).code, 0);
  assert.equal(miq([...S, 'unpin', path]).code, 0, 'a small write works on the full disk too');
  const gc = miq([...S, 'gc', '--json']);
  assert.equal(gc.code, 0, gc.stderr);
  assert.deepEqual(json<{ deadPaths: string[] }>(gc).deadPaths, [path]);
  rmSync(join(fs, 'filler'));
  const again = miq([...S, 'ingest', small, '--json']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(json<{ path: string }>(again).path, path);
  assert.equal(miq([...S, 'cat', `${path}/hello`]).stdout, 'hello from a full disk\n');
  assert.equal(miq([...S, 'verify']).code, 0);
});

test('a store on a read-only file system is listed, read, verified, exported and mounted; changes are refused', async () => {
  assert.equal(miq([...S, 'profile', 'switch', 'system', path]).code, 0);
  mkdirSync(ro);
  execFileSync('mount', ['--bind', join(fs, 'store'), ro]);
  mounted.push(ro);
  execFileSync('mount', ['-o', 'remount,bind,ro', ro]);
  const R = ['--store', ro];
  const p = miq([...R, 'paths', '--json']);
  assert.equal(p.code, 0, p.stderr);
  assert.ok(json<{ path: string }[]>(p).some((x) => x.path === path));
  assert.match(p.stderr, /read-only file system; opened a private copy of its index read-only/);
  assert.equal(miq([...R, 'ls', path, '--json']).code, 0);
  assert.equal(miq([...R, 'cat', `${path}/hello`]).stdout, 'hello from a full disk\n');
  assert.equal(miq([...R, 'verify']).code, 0);
  const out = join(t.dir, 'exported');
  assert.equal(miq([...R, 'export', path, out]).code, 0);
  assert.equal(readFileSync(join(out, 'hello'), 'utf8'), 'hello from a full disk\n');
  for (const args of [['gc'], ['ingest', small], ['pin', path]]) {
    const r = miq([...R, ...args]);
    assert.ok(isCleanError(r), `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /read-only file system: it can be listed, read, verified, exported and mounted, not changed/);
  }
  const mnt = join(t.dir, 'mnt');
  mkdirSync(mnt);
  const c = spawnMiq([...R, 'mount', mnt, '--json']);
  try {
    let outText = '', err = '';
    c.stderr!.on('data', (d) => (err += d));
    await new Promise<void>((resolve, reject) => {
      c.stdout!.on('data', (d) => { outText += d; if (outText.includes('\n')) resolve(); });
      c.on('exit', (code) => reject(new Error(`miq mount exited ${code}: ${err}`)));
    });
    assert.equal((await sh(`cat ${mnt}/store/${path}/hello ${mnt}/usr/hello`)).stdout, 'hello from a full disk\nhello from a full disk\n');
    c.kill('SIGTERM');
    const code = await new Promise<number | null>((res) => (c.exitCode !== null ? res(c.exitCode) : c.once('exit', (x) => res(x))));
    assert.equal(code, 0, err);
  } finally {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await cleanup(mnt);
  }
});
