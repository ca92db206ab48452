/**
 * Issue 5's end to end: a recipe built from its upstream tarball runs from its store path and
 * through a mounted profile that includes it, printing what upstream's program prints.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, json, miqAsync, spawnMiq } from './helpers/cli.js';
import { cleanup, sh, tmp, waitExit } from './helpers/fuse.js';

test('miq build recipes/hello.ts: the program runs from the store path and from a mounted profile', { timeout: 600_000 }, async () => {
  const b = await tmp('miq-build-mount-');
  let child: ReturnType<typeof spawnMiq> | undefined;
  try {
    const S = ['--store', join(b, 'store')];
    const built = await miqAsync([...S, 'build', join(ROOT, 'recipes', 'hello.ts'), '--json']);
    assert.equal(built.code, 0, built.stderr);
    const hello = json<{ results: { path: string; status: string }[] }>(built).results[0]!;
    assert.match(hello.path, /^hello-2\.10-[0-9a-f]{32}$/);

    // From the store path, exported as a user would run it without a mount.
    const out = join(b, 'out');
    assert.equal((await miqAsync([...S, 'export', hello.path, out])).code, 0);
    assert.equal((await sh(`${out}/bin/hello`)).stdout, 'Hello, world!\n');

    // Through a mounted profile.
    assert.equal((await miqAsync([...S, 'profile', 'switch', 'system', hello.path])).code, 0);
    const mnt = join(b, 'mnt');
    await mkdir(mnt);
    child = spawnMiq([...S, 'mount', mnt, '--json']);
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    await new Promise<void>((resolve, reject) => {
      let o = '';
      child!.stdout!.on('data', (d) => {
        o += d;
        if (o.includes('\n')) resolve();
      });
      child!.on('exit', (code) => reject(new Error(`miq mount exited ${code}: ${err}`)));
    });
    const viaUsr = await sh(`${mnt}/usr/bin/hello`);
    assert.equal(viaUsr.stdout, 'Hello, world!\n', viaUsr.stderr);
    const viaStore = await sh(`${mnt}/store/${hello.path}/bin/hello --greeting=miq`);
    assert.equal(viaStore.stdout, 'miq\n', viaStore.stderr);
    child.kill('SIGTERM');
    assert.equal(await waitExit(child), 0);
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await cleanup(b);
  }
});
