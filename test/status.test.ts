/**
 * Where miq keeps its state and who holds the store (issue 15): the lock message names the
 * holder; a build's directories live under <store>/tmp and a killed build's are swept by the next
 * one; `miq status`; `miq mount --background` and `miq umount` (also of a killed server's mount).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, test } from 'node:test';
import { MIQ, ROOT, exited, isCleanError, json, miq, tempDir } from './helpers/cli.js';

const tmp = tempDir();
after(() => tmp.cleanup());
const store = join(tmp.dir, 'store');
const S = ['--store', store];
const mounted = () => readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(tmp.dir));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function recipeFile(name: string, script: string): string {
  const f = join(tmp.dir, `${name}.mjs`);
  const mod = pathToFileURL(join(ROOT, 'dist', 'builder', 'recipe.js')).href;
  writeFileSync(f, `import { recipe } from ${JSON.stringify(mod)};\nexport default recipe({ name: ${JSON.stringify(name)}, version: '1', host: ['toolchain'], script: ${JSON.stringify(script)} });\n`);
  return f;
}

/** What a run left where miq must not keep state: the private TMPDIR every miq process of this
 * file gets (os.tmpdir() users land there), and miq-named entries of /tmp and /var/cache (paths
 * written into the code; other sessions' tests may add other names there at the same time). */
const TMPDIR = join(tmp.dir, 'tmpdir');
mkdirSync(TMPDIR);
const outside = (): string[] => [
  ...readdirSync(TMPDIR).map((n) => `$TMPDIR/${n}`),
  ...readdirSync('/tmp').filter((n) => /^miq-(build|views)|^miq$/.test(n)).map((n) => `/tmp/${n}`),
  ...(existsSync('/var/cache') ? readdirSync('/var/cache').filter((n) => n === 'miq').map((n) => `/var/cache/${n}`) : []),
];
const before = outside();
const ENV: NodeJS.ProcessEnv = { ...process.env, TMPDIR };
delete ENV.MIQ_CACHE;
delete ENV.XDG_CACHE_HOME;

function collect(c: ReturnType<typeof spawn>): { text: () => string; done: Promise<number> } {
  let out = '';
  c.stdout?.on('data', (d) => (out += d));
  c.stderr?.on('data', (d) => (out += d));
  return { text: () => out, done: new Promise((r) => c.once('close', (code) => r(code ?? 128))) };
}

test('a build holds the store only while it uses it: other commands run during its script; -L streams its log, log -f follows it; a killed build leaves nothing the next build keeps', async () => {
  assert.equal(miq([...S, 'ingest', join(ROOT, 'node_modules', 'commander'), '--name', 'commander'], { env: ENV }).code, 0);
  const b = spawn(process.execPath, [MIQ, ...S, 'build', '-L', recipeFile('slow', 'echo first line; sleep 4; echo second line; mkdir -p "$out"; echo ok > "$out/ok"')], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const build = collect(b);
  const slow = spawn(process.execPath, [MIQ, ...S, 'build', '-L', recipeFile('slower', 'echo started; sleep 900; mkdir -p "$out"')], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const slower = collect(slow);
  try {
    const logDir = join(store, 'tmp', `build-${b.pid}`);
    for (let i = 0; i < 150 && !build.text().includes('slow-1> first line'); i++) await sleep(100);
    assert.match(build.text(), /slow-1> first line/, 'the script has started and -L shows its output');
    assert.ok(existsSync(logDir), 'the build directory is under the store');
    const follow = collect(spawn(process.execPath, [MIQ, ...S, 'log', '-f', 'slow'], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] }));
    // The store is free while the scripts sleep: a command that opens it directly works. Both
    // builds are in their scripts first, and their leases closed (IDLE_MS after their last use:
    // the holder record goes with the lock); a clean-clone run at stop 39 ran `paths` while the
    // second build, started a moment after the first, still held the store before its script.
    for (let i = 0; i < 150 && !slower.text().includes('slower-1> started'); i++) await sleep(100);
    assert.match(slower.text(), /slower-1> started/, 'the second build is in its script');
    for (let i = 0; i < 50 && existsSync(join(store, 'run', 'holder.json')); i++) await sleep(100);
    const paths = miq([...S, 'paths', '--json'], { env: ENV });
    assert.equal(paths.code, 0, paths.stderr);
    assert.equal(await build.done, 0, build.text());
    assert.match(build.text(), /slow-1> second line\n[^]*\nslow-1-[0-9a-f]{32}\n$/);
    assert.equal(await follow.done, 0, follow.text());
    assert.match(follow.text(), /^miq: building slow-1-[0-9a-f]{32}\n[^]*first line\nsecond line\n$/);

    // Who holds the store, when one does: an ingest --watch keeps it open.
    const w = spawn(process.execPath, [MIQ, ...S, 'ingest', '--watch', join(ROOT, 'node_modules', 'commander'), '--name', 'cw'], { env: ENV, stdio: 'ignore' });
    try {
      // Wait for the watcher's own holder record, not for a failing `miq paths`: a polling
      // `miq paths` holds the lock for a moment itself, and a watcher whose open lands in that
      // moment exits "in use" (CI at stop 21 saw exactly that: 50 polls, all free).
      const holder = join(store, 'run', 'holder.json');
      const holds = (): boolean => { try { return (JSON.parse(readFileSync(holder, 'utf8')) as { pid: number }).pid === w.pid; } catch { return false; } };
      for (let i = 0; i < 600 && !holds() && w.exitCode === null; i++) await sleep(100);
      assert.ok(holds(), `the watcher holds the store (it exited ${w.exitCode})`);
      const locked = miq([...S, 'paths'], { env: ENV });
      assert.ok(isCleanError(locked) && locked.code === 4, locked.stderr);
      assert.match(locked.stderr, new RegExp(`in use by another miq process: pid ${w.pid} \\(\`miq --store \\S+ ingest --watch \\S+commander --name cw\`, since \\d\\d:\\d\\d:\\d\\d UTC\\)`));
      const st = json<{ lock: { free: boolean; holder: { pid: number } } }>(miq([...S, 'status', '--json'], { env: ENV }));
      assert.deepEqual([st.lock.free, st.lock.holder.pid], [false, w.pid]);
    } finally {
      w.kill('SIGTERM');
      await exited(w);
    }

    const mine = join(store, 'tmp', `build-${slow.pid}`);
    for (let i = 0; i < 100 && !existsSync(mine); i++) await sleep(100);
    assert.equal(slow.exitCode, null, 'the slow build is still in its script');
    process.kill(-slow.pid!, 'SIGKILL');
    await exited(slow);
    assert.ok(existsSync(mine), 'SIGKILL leaves the directory (nothing can clean up after a SIGKILL)');
    const tiny = miq([...S, 'build', recipeFile('quick', 'mkdir -p "$out"; echo ok > "$out/ok"')], { env: ENV });
    assert.equal(tiny.code, 0, tiny.stderr);
    assert.deepEqual(readdirSync(join(store, 'tmp')), [], 'the next build swept the dead one, and removed its own');
    assert.ok(!existsSync(join(store, 'run', 'holder.json')), 'the holder record goes with the lock');
    assert.equal(json<{ lock: { free: boolean } }>(miq([...S, 'status', '--json'], { env: ENV })).lock.free, true);
    assert.deepEqual(outside(), before, 'nothing new in TMPDIR, /tmp or /var/cache after builds and a killed build');
  } finally {
    for (const c of [b, slow]) try { process.kill(-c.pid!, 'SIGKILL'); } catch { /* gone */ }
  }
});

test('mount --background, status, umount; umount also clears a killed server\'s mount', async () => {
  const mnt = join(tmp.dir, 'mnt');
  mkdirSync(mnt);
  try {
    const bg = miq([...S, 'mount', mnt, '--background', '--json'], { env: ENV });
    assert.equal(bg.code, 0, bg.stderr);
    const pid = json<{ pid: number; dir: string }>(bg).pid;
    assert.ok(readdirSync(join(mnt, 'store')).some((n) => n.startsWith('commander-')), 'it serves once the command returns');
    const st = json<{ mount: { dir: string; pid: number } }>(miq([...S, 'status', '--json']));
    assert.deepEqual([st.mount.dir, st.mount.pid], [mnt, pid]);
    assert.match(miq([...S, 'status']).stdout, new RegExp(`mounted: ${mnt} by pid ${pid}`));
    const again = miq([...S, 'mount', mnt, '--background']);
    assert.ok(isCleanError(again), again.stderr);
    const um = miq([...S, 'umount', mnt, '--json']);
    assert.equal(um.code, 0, um.stderr);
    assert.deepEqual(json(um), { dir: mnt, result: 'stopped', pid });
    assert.deepEqual(mounted(), []);

    const bg2 = miq([...S, 'mount', mnt, '--background', '--json'], { env: ENV });
    assert.equal(bg2.code, 0, bg2.stderr);
    process.kill(json<{ pid: number }>(bg2).pid, 'SIGKILL');
    await sleep(300);
    const cleared = miq([...S, 'umount', mnt, '--json']);
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.equal(json<{ result: string }>(cleared).result, 'cleared');
    assert.deepEqual(mounted().filter((l) => l.includes(` ${mnt} `)), []);
    const not = miq([...S, 'umount', mnt]);
    assert.ok(isCleanError(not) && /is not a miq mount/.test(not.stderr), not.stderr);
    assert.deepEqual(outside(), before, 'nothing new in TMPDIR, /tmp or /var/cache after mounts, a killed one included');
  } finally {
    for (const l of mounted().reverse()) spawn('umount', ['-l', l.split(' ')[1]!]);
    await sleep(200);
  }
});
