/**
 * Installing by package name from a miq remote alone (issue 14 §2). A publisher installs python3
 * from Debian and pushes the profile with the repository (`miq push --profile --repo`); nginx
 * serves it. A second machine (an empty store, an empty .deb cache, the Debian mirrors pointed at
 * a closed port) mounts the remote lazily, pulls the repository through the mount, and runs
 * `miq install python3`: every package's store path is found on the remote, so nothing is
 * downloaded from Debian and the files stay on the remote until first use; python3 then runs from
 * the mount. The env tree equals the publisher's. Bytes the origin served are reported.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { debianStore, noAptLists } from './helpers/apt.js';
import { json, miq, spawnMiq, tempDir } from './helpers/cli.js';
import { CACHE } from './helpers/corpus.js';
import { sh, waitExit } from './helpers/fuse.js';
import { freePort, startNginx, type Nginx } from './helpers/nginx.js';

const skip = noAptLists() ?? (spawnSync('bwrap', ['--version']).status !== 0 ? 'bubblewrap is not installed' : undefined);
const T = tempDir('miq-install-remote-');
let nginx: Nginx | undefined;
let server: ChildProcess | undefined;
const mnt = join(T.dir, 'mnt');

after(async () => {
  if (server && server.exitCode === null && server.signalCode === null) {
    server.kill('SIGTERM');
    await waitExit(server);
  }
  await sh(`mountpoint -q ${mnt}/usr && umount -l ${mnt}/usr; mountpoint -q ${mnt} && umount -l ${mnt}`);
  await nginx?.stop();
  T.cleanup();
});

type Result = { packages: number; tree: string; fetched: number; downloadedBytes: number; triggers: { name: string; cached: boolean }[] };

test('a machine with only the remote and its key installs python3 and runs it from the lazy mount', { skip: skip ?? false, timeout: 1_200_000 }, async (t) => {
  const t0 = performance.now();
  const lap = (): string => `${((performance.now() - t0) / 1000).toFixed(0)} s`;
  const laps: string[] = [];
  const A = (...a: string[]) => miq(['--store', join(T.dir, 'a'), ...a], { env: { MIQ_CACHE: CACHE } });
  // The publisher's repository as `repo add debian --from-apt && repo update` make it (shared with
  // the package tests; test/packages-repo runs the real update).
  debianStore(join(T.dir, 'a'), (args) => miq(args, { env: { MIQ_CACHE: CACHE } }));
  let r = A('install', 'python3', '--json');
  assert.equal(r.code, 0, r.stderr);
  const fromDebian = json<Result>(r);
  laps.push(`publisher installed at ${lap()}`);
  const k = json<{ publicText: string }>(A('key', 'generate', 'site', '--dir', join(T.dir, 'keys'), '--json'));
  r = A('push', join(T.dir, 'remote'), '--profile', 'system', '--repo', 'debian', '--sign-key', join(T.dir, 'keys', 'site.key'), '--json');
  assert.equal(r.code, 0, r.stderr);
  nginx = await startNginx(join(T.dir, 'remote'));
  laps.push(`pushed at ${lap()}`);

  // The second machine: nothing of Debian's is reachable.
  const closed = await freePort();
  const env = {
    MIQ_CACHE: join(T.dir, 'empty-deb-cache'), MIQ_MIRROR_DEBIAN: `http://127.0.0.1:${closed}/`, MIQ_MIRROR_DEBIAN_SECURITY: `http://127.0.0.1:${closed}/`,
    MIQ_CONFIG: join(T.dir, 'no-config.json'),
  };
  const B = (...a: string[]) => miq(['--store', join(T.dir, 'b'), ...a], { env });
  mkdirSync(mnt);
  server = spawnMiq(['--store', join(T.dir, 'b'), 'mount', mnt, '--remote', nginx.url, '--trusted-key', k.publicText, '--profile', 'mine', '--json'], { env });
  let err = '';
  server.stderr!.on('data', (d) => (err += d));
  await new Promise<void>((res, rej) => {
    let out = '';
    server!.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('"mounted":true')) res();
    });
    server!.once('exit', (c) => rej(new Error(`miq mount exited ${c}: ${err}`)));
  });
  await nginx.clearLog();
  const origin = async (): Promise<{ requests: number; bytes: number }> => {
    const log = await nginx!.log();
    return { requests: log.length, bytes: log.reduce((s, l) => s + l.bytes, 0) };
  };

  r = B('repo', 'pull', 'debian', '--remote', nginx.url, '--trusted-key', k.publicText, '--json');
  assert.equal(r.code, 0, r.stderr + err);
  assert.equal(json<{ lazy: boolean }>(r).lazy, true);
  laps.push(`mounted and pulled at ${lap()}`);
  r = B('install', '--profile', 'mine', 'python3', '--json');
  assert.equal(r.code, 0, r.stderr + err);
  const fromRemote = json<Result>(r);
  const atInstall = await origin();
  laps.push(`installed from the remote at ${lap()}`);
  assert.equal(fromRemote.downloadedBytes, 0, 'nothing came from Debian');
  assert.equal(fromRemote.packages, fromDebian.packages);
  assert.equal(fromRemote.tree, fromDebian.tree, 'the same env tree as installing from Debian');
  assert.ok(fromRemote.triggers.every((x) => x.cached), 'trigger outputs came from the remote');

  await nginx.clearLog();
  const view = join(mnt, 'usr');
  const binds = readdirSync(view).flatMap((e) => ['--ro-bind', join(view, e), `/${e}`]);
  const py = spawnSync('bwrap', ['--unshare-all', '--die-with-parent', '--tmpfs', '/', ...binds, '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', '--setenv', 'PATH', '/usr/bin', '--setenv', 'LC_ALL', 'C',
    '/usr/bin/python3', '-c', 'import json, sys; print(json.dumps([sys.version_info[0], 6 * 7]))'], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(py.status, 0, py.stderr + err);
  assert.deepEqual(JSON.parse(py.stdout), [3, 42]);
  const atRun = await origin();
  laps.push(`ran at ${lap()}`);
  t.diagnostic(laps.join('; '));
  const pushed = Number((await sh(`du -sb --exclude=bundles ${join(T.dir, 'remote')} | cut -f1`)).stdout.trim());
  t.diagnostic(`${fromRemote.packages} packages, env tree ${fromRemote.tree.slice(0, 16)}… (same as from Debian); install from the remote: ${atInstall.requests} requests, ${atInstall.bytes} bytes; first python3 run: ${atRun.requests} requests, ${atRun.bytes} bytes; remote holds ${pushed} bytes (without bundles)`);
});
