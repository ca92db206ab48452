/**
 * A hostile local user against root's miq (issue 16, items 1 and 2), with a real unprivileged
 * account and `runuser`. Both attacks worked before: a user who took the name `$TMPDIR/miq-views`
 * first (as a symlink) chose where root's world-readable pointer view was mounted, and a planted
 * `$TMPDIR/miq-failed-<path>.log` symlink made a failed build overwrite any file root owns.
 * Here TMPDIR is a fresh sticky, world-writable directory standing in for /tmp.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { MIQ, ROOT, json, miq, spawnMiq } from './helpers/cli.js';
import { cleanup, fixtureTree, tmp, waitExit } from './helpers/fuse.js';

const USER = 'miqlocaluser';
let base: string, T: string, store: string[];

const asUser = (cmd: string): { code: number; out: string } => {
  const r = spawnSync('runuser', ['-u', USER, '--', 'sh', '-c', cmd], { encoding: 'utf8', cwd: '/' });
  return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}` };
};

before(async () => {
  spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/bin/sh', USER]);
  assert.equal(spawnSync('id', ['-u', USER]).status, 0, `cannot create the test user ${USER}`);
  base = await tmp('miq-local-user-');
  chmodSync(base, 0o755);
  T = join(base, 'tmp');
  mkdirSync(T);
  chmodSync(T, 0o1777);
  store = ['--store', join(base, 'store')];
});
after(async () => {
  await cleanup(base);
});

const mountsUnder = (dir: string): string[] =>
  readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m === dir || m.startsWith(`${dir}/`));

async function mountOnce(mnt: string, whileUp: () => void = () => {}): Promise<{ code: number | null; err: string; usr: string[] }> {
  const c = spawnMiq([...store, 'mount', mnt, '--json'], { env: { TMPDIR: T } });
  let err = '';
  c.stderr!.on('data', (d) => (err += d));
  try {
    const up = await new Promise<boolean>((resolve) => {
      let o = '';
      c.stdout!.on('data', (d) => {
        o += d;
        if (o.includes('\n')) resolve(true);
      });
      c.once('exit', () => resolve(false));
    });
    assert.ok(up, `root's miq mount did not start: ${err}`);
    const usr = readdirSync(join(mnt, 'usr'));
    whileUp();
    c.kill('SIGTERM');
    return { code: await waitExit(c), err, usr };
  } finally {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

test('a user who plants $TMPDIR/miq-views (symlink, then file) can neither move root\'s view nor stop the mount', async () => {
  const src = join(base, 'src');
  await fixtureTree(src, 1);
  const p = json<{ path: string }>(miq([...store, 'ingest', src, '--json'])).path;
  assert.equal(miq([...store, 'profile', 'switch', 'system', p]).code, 0);
  const mnt = join(base, 'mnt');
  mkdirSync(mnt);

  // The user's own directory, and the old predictable name pointing at it.
  const mine = join(T, 'mine');
  assert.equal(asUser(`mkdir ${mine} && ln -s ${mine} ${join(T, 'miq-views')}`).code, 0);
  const first = await mountOnce(mnt, () => {
    assert.deepEqual(mountsUnder(mine), [], 'nothing of root\'s is mounted where the user chose');
    assert.deepEqual(readdirSync(mine), [], 'nothing was created in the user\'s directory');
  });
  assert.equal(first.code, 0, first.err);
  assert.deepEqual(first.usr.sort(), ['abs-link', 'bin', 'empty', 'share'], 'the view serves the profile');

  // A plain file at the old name (which made mkdir fail) does not stop the mount either.
  assert.equal(asUser(`rm ${join(T, 'miq-views')} && echo x > ${join(T, 'miq-views')}`).code, 0);
  const second = await mountOnce(mnt);
  assert.equal(second.code, 0, second.err);
  assert.deepEqual(second.usr.sort(), ['abs-link', 'bin', 'empty', 'share']);

  // Where the view does live: a directory of the store only root can enter, left empty.
  const run = join(base, 'store', 'run');
  assert.equal(statSync(run).mode & 0o777, 0o700);
  assert.equal(statSync(join(run, 'views')).mode & 0o777, 0o700);
  assert.deepEqual(readdirSync(join(run, 'views')), [], 'no mountpoint left behind');
  assert.notEqual(asUser(`mkdir ${join(run, 'views', 'x')}`).code, 0, 'the user cannot create anything there');
  assert.deepEqual(mountsUnder(base), [], 'nothing left mounted');
});

test('root refuses a planted runtime directory: a symlink or a foreign owner at <store>/run', async () => {
  const other = ['--store', join(base, 'store2')];
  const src = join(base, 'src2');
  await fixtureTree(src, 2);
  assert.equal(miq([...other, 'ingest', src]).code, 0);
  const mnt = join(base, 'mnt2');
  mkdirSync(mnt);
  // Only root could plant these in root's store; the check is what keeps a store on a shared
  // filesystem, or one a user was once allowed into, from being steered.
  const target = join(T, 'elsewhere');
  mkdirSync(target);
  rmSync(join(base, 'store2', 'run'), { recursive: true, force: true });
  symlinkSync(target, join(base, 'store2', 'run'));
  const s = spawnSync(process.execPath, [MIQ, ...other, 'mount', mnt], { encoding: 'utf8', env: { ...process.env, TMPDIR: T }, timeout: 60_000, killSignal: 'SIGTERM' });
  const r = { code: s.status ?? 1, stderr: s.stderr };
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^miq: .*run is not a directory miq made \(it is a symbolic link\)/);
  assert.deepEqual(mountsUnder(mnt), []);
  assert.deepEqual(mountsUnder(target), []);
});

test('a failed build keeps its log in the store: a planted /tmp symlink cannot make root overwrite a file', async () => {
  const recipe = join(ROOT, 'test/fixtures/recipes/fails.ts');
  const shown = json<{ path: string }>(miq([...store, 'recipe', 'show', recipe, '--json']));
  assert.match(shown.path, /^fails-1-[0-9a-f]{32}$/);
  const victim = join(base, 'root-secret');
  writeFileSync(victim, 'root only\n', { mode: 0o600 });
  const planted = join(T, `miq-failed-${shown.path}.log`);
  assert.equal(asUser(`ln -s ${victim} ${planted}`).code, 0);

  const b = miq([...store, 'build', recipe], { env: { TMPDIR: T } });
  assert.equal(await readFile(victim, 'utf8'), 'root only\n', 'the victim file is untouched');
  assert.equal(statSync(victim).mode & 0o777, 0o600, 'and keeps its mode');
  assert.equal(b.code, 6, b.stderr);
  assert.match(b.stderr, new RegExp(`full log: miq log ${shown.path}`));
  assert.ok(lstatSync(planted).isSymbolicLink());
  assert.ok(!readdirSync(T).some((n) => n.startsWith('miq-failed-') && n !== `miq-failed-${shown.path}.log`));

  const log = miq([...store, 'log', shown.path]);
  assert.equal(log.code, 0, log.stderr);
  assert.match(log.stdout, /compiling the thing/);
  assert.match(log.stdout, /error: the thing is broken/);
  assert.ok(existsSync(victim));
});
