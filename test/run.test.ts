/**
 * `miq run` / `miq shell` (issue 15): real Debian 12 packages (python3 and its libraries, bash),
 * ingested with --usrmerge into a profile, run in bubblewrap with the generation as /usr,
 * without a mount (a private one for the command) and through a running `miq mount`.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { debianPackage } from './helpers/corpus.js';
import { isCleanError, json, miq, miqAsync, tempDir } from './helpers/cli.js';
import { startMiqMount } from './helpers/fuse.js';

const PKGS = ['python3-minimal', 'python3.11-minimal', 'libpython3.11-minimal', 'libc6', 'libgcc-s1', 'zlib1g', 'libexpat1', 'libssl3', 'bash', 'libtinfo6'];
const tmp = tempDir();
after(() => tmp.cleanup());
const storeDir = join(tmp.dir, 'store');
const S = ['--store', storeDir];
const mounted = () => readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(storeDir) || l.includes(tmp.dir));

test('ingest --usrmerge lays Debian packages out as a /usr', () => {
  const paths: string[] = [];
  for (const p of PKGS) {
    const r = miq([...S, 'ingest', '--usrmerge', debianPackage(p), '--name', p, '--json']);
    assert.equal(r.code, 0, `${p}: ${r.stderr}`);
    paths.push(json<{ path: string }>(r).path);
  }
  const names = (p: string) => json<{ name: string }[]>(miq([...S, 'ls', p, '--json'])).map((e) => e.name).sort();
  assert.deepEqual(names('libc6'), ['etc', 'lib', 'lib64', 'share'], 'libc6: /lib and /usr/lib merged, /lib64 kept, /etc under it');
  assert.ok(names('bash').includes('bin') && !names('bash').includes('usr'));
  assert.equal(miq([...S, 'cat', 'libc6/lib64/ld-linux-x86-64.so.2']).code, 2, 'the loader is a symlink (cat refuses it)');
  const sw = miq([...S, 'profile', 'switch', 'system', ...paths]);
  assert.equal(sw.code, 0, sw.stderr);
  assert.deepEqual(readdirSync(join(storeDir, 'tmp')), [], 'the staged copies are gone');
});

test('miq run without a mount: python3 in the profile, fresh /tmp, cwd bound, exit status passed on', () => {
  const r = miq([...S, 'run', '--profile', 'system', '--', 'python3', '-c', 'print(1)']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '1\n');
  const work = join(tmp.dir, 'work');
  mkdirSync(work);
  const w = miq([...S, 'run', '--', 'python3', '-c', [
    'import os, sys',
    'open("out.txt", "w").write(os.getcwd())',
    'print(sorted(os.listdir("/tmp")), os.path.realpath("/bin"), os.path.exists("/miq/store"), sys.version_info[:2])',
    'sys.exit(7)',
  ].join('\n')], { cwd: work });
  assert.equal(w.code, 7, w.stderr);
  // /tmp is fresh: only the way to the bound working directory (under the host's /tmp here) is in it.
  const top = work.startsWith('/tmp/') ? `'${work.split('/')[2]}'` : '';
  assert.equal(w.stdout.trim(), `[${top}] /usr/bin False (3, 11)`);
  assert.equal(readFileSync(join(work, 'out.txt'), 'utf8'), work, 'the working directory is bound read-write');
  assert.deepEqual(mounted(), [], 'the private mount is gone');
  assert.ok(!existsSync(join(storeDir, 'run', `run-${process.pid}`)));
});

test('miq shell gives the profile\'s bash; --store-view shows /miq/store; through a running mount', async () => {
  const sh = miq([...S, 'shell', 'system', '--store-view'], { input: 'echo "$BASH_VERSION"; echo /miq/store/*python3-minimal*; exit 4\n' });
  assert.equal(sh.code, 4, sh.stderr);
  assert.match(sh.stdout, /^5\.2\./);
  assert.match(sh.stdout, /\/miq\/store\/python3-minimal-[0-9a-f]{32}/);

  const mnt = join(tmp.dir, 'mnt');
  mkdirSync(mnt);
  const m = await startMiqMount([...S, 'mount', mnt, '--json']);
  try {
    const r = await miqAsync([...S, 'run', '--', 'python3', '-c', 'print(1)']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '1\n');
    const none = await miqAsync([...S, 'run', '--profile', 'nothing', '--', 'true']);
    assert.ok(isCleanError(none) && /profile nothing has no current generation/.test(none.stderr), none.stderr);
  } finally {
    await m.stop();
  }
  assert.deepEqual(mounted(), []);
});
