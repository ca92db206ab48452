/**
 * `miq export` run by root against a real unprivileged local user who can write the destination
 * (an account made with useradd, acting through runuser). The user plants symlinks inside DEST
 * while the export runs; nothing outside DEST may change, and a destination that changed is an
 * error, not something to follow.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isCleanError, json, miq, tempDir } from './helpers/cli.js';

const tmp = tempDir();
const user = `miqx${randomBytes(4).toString('hex')}`;
let uid = 0;
// The user must reach the arena; mkdtemp makes it 0700.
chmodSync(tmp.dir, 0o755);
const store = ['--store', join(tmp.dir, 'store')];

before(() => {
  execFileSync('useradd', ['-M', '-N', '-s', '/usr/sbin/nologin', user]);
  uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
});
after(() => {
  try { execFileSync('userdel', [user]); } catch { /* already gone */ }
  tmp.cleanup();
});

/** A shell loop as the hostile user, in its own process group so it can be stopped for good. */
function asUser(script: string): ChildProcess {
  return spawn('runuser', ['-u', user, '--', 'sh', '-c', script], { detached: true, stdio: 'ignore' });
}
function stop(c: ChildProcess): Promise<void> {
  return new Promise((res) => {
    if (c.exitCode !== null || c.signalCode !== null) return res();
    c.once('exit', () => res());
    try { process.kill(-c.pid!, 'SIGKILL'); } catch { res(); }
  });
}

/** Root-owned files outside DEST that a followed link would overwrite. */
function victims(name: string): { dir: string; check(): void } {
  const dir = join(tmp.dir, `outside-${name}`);
  mkdirSync(dir, { mode: 0o755 });
  const f = join(dir, 'victim');
  writeFileSync(f, 'root only\n', { mode: 0o600 });
  chmodSync(f, 0o600);
  return {
    dir,
    check() {
      assert.deepEqual(readdirSync(dir), ['victim'], `nothing new outside DEST (${dir})`);
      assert.equal(readFileSync(f, 'utf8'), 'root only\n', 'the root-owned file outside DEST is untouched');
      assert.equal(lstatSync(f).mode & 0o777, 0o600);
    },
  };
}

let src = '';
let path = '';
test('setup: a tree with many files before a subdirectory holding a file named like the victim', () => {
  src = join(tmp.dir, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  for (let i = 0; i < 600; i++) writeFileSync(join(src, `f${String(i).padStart(4, '0')}`), `file ${i}\n`);
  writeFileSync(join(src, 'sub', 'victim'), 'written by export\n');
  path = json<{ path: string }>(miq([...store, 'ingest', src, '--json'])).path;
  assert.ok(path);
});

test('a directory symlink planted inside DEST during the export is not followed; the export fails cleanly', async () => {
  let attacked = 0;
  for (let round = 0; round < 3; round++) {
    const v = victims(`dir${round}`);
    const dest = join(tmp.dir, `dest-dir${round}`);
    mkdirSync(dest, { mode: 0o755 });
    chownSync(dest, uid, 100);
    // Wait until root's export has started writing (DEST must be empty when it starts), then
    // keep planting the link where export will create `sub`.
    const planter = asUser(`while [ ! -e '${dest}/f0000' ]; do sleep 0.005; done; while :; do ln -s '${v.dir}' '${dest}/sub' 2>/dev/null; done`);
    try {
      const r = miq([...store, 'export', path, dest]);
      v.check();
      if (lstatSync(join(dest, 'sub')).isSymbolicLink()) {
        attacked++;
        assert.ok(isCleanError(r), `exit ${r.code}: ${r.stderr}`);
        assert.equal(r.code, 2);
        assert.match(r.stderr, /^miq: export destination changed while exporting: .*\/sub appeared/);
      } else {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(readFileSync(join(dest, 'sub', 'victim'), 'utf8'), 'written by export\n');
      }
    } finally {
      await stop(planter);
    }
  }
  assert.ok(attacked > 0, 'the planted link won the race at least once, so the attack was really tried');
});

test('a single-file export refuses an existing file unless --force, and --force replaces a planted link, not its target', () => {
  const v = victims('file');
  const dest = join(tmp.dir, 'dest-file');
  mkdirSync(dest, { mode: 0o755 });
  chownSync(dest, uid, 100);
  const target = join(dest, 'out');
  execFileSync('runuser', ['-u', user, '--', 'sh', '-c', `echo mine > '${target}'`]);
  const r = miq([...store, 'export', `${path}/sub/victim`, target]);
  assert.ok(isCleanError(r), r.stderr);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /already exists; give --force/);
  assert.equal(readFileSync(target, 'utf8'), 'mine\n');

  const link = join(dest, 'link');
  execFileSync('runuser', ['-u', user, '--', 'ln', '-s', join(v.dir, 'victim'), link]);
  const refused = miq([...store, 'export', `${path}/sub/victim`, link]);
  assert.equal(refused.code, 2, refused.stderr);
  v.check();
  const forced = miq([...store, 'export', `${path}/sub/victim`, link, '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  v.check();
  assert.ok(lstatSync(link).isFile(), 'the link itself was replaced by the file');
  assert.equal(readFileSync(link, 'utf8'), 'written by export\n');
  assert.deepEqual(readdirSync(dest).sort(), ['link', 'out'], 'no temporary file left behind');
});

test('a symlink given as the export destination itself is refused, not followed', () => {
  const v = victims('root');
  const dest = join(tmp.dir, 'dest-link');
  symlinkSync(v.dir, dest);
  const r = miq([...store, 'export', path, dest]);
  assert.ok(isCleanError(r), r.stderr);
  assert.match(r.stderr, /is (a symlink|not empty)/);
  v.check();
  const empty = join(tmp.dir, 'empty-target');
  mkdirSync(empty);
  const dest2 = join(tmp.dir, 'dest-link2');
  symlinkSync(empty, dest2);
  const r2 = miq([...store, 'export', path, dest2]);
  assert.equal(r2.code, 2, r2.stderr);
  assert.match(r2.stderr, /is a symlink; give the directory itself/);
  assert.equal(existsSync(join(empty, 'sub')), false);
});
