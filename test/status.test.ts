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
import { MIQ, ROOT, isCleanError, json, miq, tempDir } from './helpers/cli.js';

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

test('a running build holds the store: the lock message names it; a killed build leaves nothing the next build keeps', async () => {
  assert.equal(miq([...S, 'ingest', join(ROOT, 'node_modules', 'commander'), '--name', 'commander']).code, 0);
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.MIQ_CACHE;
  delete env.XDG_CACHE_HOME;
  const slow = spawn(process.execPath, [MIQ, ...S, 'build', recipeFile('slow', 'sleep 60; mkdir -p "$out"')], { env, stdio: 'ignore', detached: true });
  try {
    const mine = join(store, 'tmp', `build-${slow.pid}`);
    for (let i = 0; i < 100 && !existsSync(mine); i++) await sleep(100);
    assert.ok(existsSync(mine), 'the build directory is under the store');
    await sleep(1500);
    const locked = miq([...S, 'paths']);
    assert.ok(isCleanError(locked) && locked.code === 4, locked.stderr);
    assert.match(locked.stderr, new RegExp(`in use by another miq process: pid ${slow.pid} \\(\`miq --store \\S+ build \\S+slow\\.mjs\`, since \\d\\d:\\d\\d:\\d\\d UTC\\)`));
    const st = json<{ lock: { free: boolean; holder: { pid: number } } }>(miq([...S, 'status', '--json']));
    assert.equal(st.lock.free, false);
    assert.equal(st.lock.holder.pid, slow.pid);
    process.kill(-slow.pid!, 'SIGKILL');
    await new Promise((r) => slow.once('exit', r));
    assert.ok(existsSync(mine), 'SIGKILL leaves the directory (nothing can clean up after a SIGKILL)');
    const tiny = miq([...S, 'build', recipeFile('quick', 'mkdir -p "$out"; echo ok > "$out/ok"')], { env });
    assert.equal(tiny.code, 0, tiny.stderr);
    assert.deepEqual(readdirSync(join(store, 'tmp')), [], 'the next build swept the dead one, and removed its own');
    assert.ok(!existsSync(join(store, 'run', 'holder.json')), 'the holder record goes with the lock');
    assert.equal(json<{ lock: { free: boolean } }>(miq([...S, 'status', '--json'])).lock.free, true);
  } finally {
    try { process.kill(-slow.pid!, 'SIGKILL'); } catch { /* gone */ }
  }
});

test('mount --background, status, umount; umount also clears a killed server\'s mount', async () => {
  const mnt = join(tmp.dir, 'mnt');
  mkdirSync(mnt);
  try {
    const bg = miq([...S, 'mount', mnt, '--background', '--json']);
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

    const bg2 = miq([...S, 'mount', mnt, '--background', '--json']);
    assert.equal(bg2.code, 0, bg2.stderr);
    process.kill(json<{ pid: number }>(bg2).pid, 'SIGKILL');
    await sleep(300);
    const cleared = miq([...S, 'umount', mnt, '--json']);
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.equal(json<{ result: string }>(cleared).result, 'cleared');
    assert.deepEqual(mounted().filter((l) => l.includes(` ${mnt} `)), []);
    const not = miq([...S, 'umount', mnt]);
    assert.ok(isCleanError(not) && /is not a miq mount/.test(not.stderr), not.stderr);
  } finally {
    for (const l of mounted().reverse()) spawn('umount', ['-l', l.split(' ')[1]!]);
    await sleep(200);
  }
});
