/**
 * The lazy mount as a user runs it (issue 4): real Debian packages and a small fixture tree are
 * pushed to a directory that a real nginx serves on 127.0.0.1; `miq mount --remote` from an EMPTY
 * store shows store/, usr/ and profiles/ from the remote's records and fetches chunks on first
 * read. Bytes are counted from nginx's access log. The mount runs in a child process (`miq
 * mount`), so the test process may touch the mount synchronously through child commands.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../store/open.js';
import { checkCache } from '../store/remote/index.js';
import * as P from '../store/profiles.js';
import { debianPackage } from './helpers/corpus.js';
import { isCleanError, json, miq, miqAsync } from './helpers/cli.js';
import { cleanup, fixtureTree, mountDir, sh, tmp, waitExit, type MountedDir } from './helpers/fuse.js';
import { startNginx, type Nginx } from './helpers/nginx.js';
import { startBadServer } from './helpers/badserver.js';

/** What bash needs to run, plus python and perl as the bulk a first run must not download. */
const PACKAGES = [
  'libc6', 'libgcc-s1', 'bash', 'libtinfo6', 'coreutils', 'libacl1', 'libattr1', 'libgmp10', 'libselinux1', 'libpcre2-8-0',
  'perl-base', 'python3.11-minimal', 'libpython3.11-minimal', 'libpython3.11-stdlib', 'libexpat1', 'zlib1g', 'libssl3',
  'libsqlite3-0', 'libffi8', 'libbz2-1.0', 'liblzma5', 'libcrypt1', 'libuuid1', 'libncursesw6', 'libreadline8', 'libdb5.3',
];

type Mounted = MountedDir;

let base: string;
let nginx: Nginx | undefined;
let pub: string;
const paths = new Map<string, string>(); // package (or "fixture") → store path
const sources = new Map<string, string>(); // store path → source directory
const mounts: Mounted[] = [];
const home = (n: string): { MIQ_HOME: string } => ({ MIQ_HOME: join(base, n) });

async function mountLazy(store: string, url: string, extra: string[] = []): Promise<Mounted> {
  const dir = join(base, `mnt-${store}`);
  // A killed mount's directory answers ENOTCONN until the next `miq mount` clears it.
  await mkdir(dir, { recursive: true }).catch(() => undefined);
  // url '': no --remote (a store mounted lazily before remembers its remote).
  const m = await mountDir(dir, [...(url ? ['--remote', url, '--trusted-key', pub] : []), '--json', ...extra], { env: home(store) });
  mounts.push(m);
  return m;
}

/** Body bytes nginx sent since the last clearLog, by top folder of the remote. */
async function served(): Promise<{ total: number; chunks: number; requests: number }> {
  const log = await nginx!.log();
  return {
    total: log.reduce((s, l) => s + l.bytes, 0),
    chunks: log.filter((l) => l.uri.startsWith('/chunks/') || l.uri.startsWith('/bundles/')).reduce((s, l) => s + l.bytes, 0),
    requests: log.length,
  };
}

/** A new generation on the remote: the packages plus the fixture tree made with `seed`. */
async function pushFixture(seed: number): Promise<void> {
  await fixtureTree(join(base, `fixture${seed}`), seed);
  const store = await openStore(join(base, 'a'));
  try {
    const r = await store.ingest(join(base, `fixture${seed}`), { name: 'fixture' });
    await P.switchProfile(store, 'system', [...[...paths.entries()].filter(([k]) => k !== 'fixture').map(([, v]) => ({ path: v })), { path: r.path }]);
  } finally {
    await store.close();
  }
  const p = miq(['push', join(base, 'remote'), '--profile', 'system', '--sign-key', join(base, 'keys', 'lazy-1.key'), '--json'], { env: home('a') });
  assert.equal(p.code, 0, p.stderr);
}

describe('miq mount --remote: lazy from an empty store over a real nginx', () => {
  let remoteBytes = 0;

  before(async () => {
    base = await tmp('miq-lazy-');
    const k = miq(['key', 'generate', 'lazy-1', '--dir', join(base, 'keys'), '--json'], { env: home('a') });
    assert.equal(k.code, 0, k.stderr);
    pub = json<{ publicText: string }>(k).publicText;
    await fixtureTree(join(base, 'fixture'), 1);
    const store = await openStore(join(base, 'a'));
    try {
      const members: P.Member[] = [];
      for (const pkg of [...PACKAGES, 'fixture']) {
        const src = pkg === 'fixture' ? join(base, 'fixture') : debianPackage(pkg);
        const r = await store.ingest(src, { name: pkg.replace(/[^A-Za-z0-9+._-]/g, '_') });
        paths.set(pkg, r.path);
        sources.set(r.path, src);
        members.push({ path: r.path });
      }
      await P.switchProfile(store, 'system', members);
    } finally {
      await store.close();
    }
    const p = miq(['push', join(base, 'remote'), '--profile', 'system', '--sign-key', join(base, 'keys', 'lazy-1.key'), '--json'], { env: home('a') });
    assert.equal(p.code, 0, p.stderr);
    // The profile as the remote stores it (compressed chunks and records); bundles repeat small
    // files' chunks for fewer round trips and are left out, so the share is not flattered.
    remoteBytes = Number((await sh(`du -sb --exclude=bundles ${join(base, 'remote')} | cut -f1`)).stdout.trim());
    nginx = await startNginx(join(base, 'remote'));
  });

  after(async () => {
    for (const m of mounts) await m.stop().catch(() => {});
    await nginx?.stop();
    await cleanup(base);
    const left = (await sh('grep fuse /proc/mounts || true')).stdout.split('\n').filter((l) => l.includes(base));
    assert.deepEqual(left, [], 'no FUSE mounts of this test remain');
  });

  it('first run of bash from the mounted profile fetches a small part of it; diff -r of store paths passes; pull switches', { timeout: 600_000 }, async (t) => {
    const m = await mountLazy('b', nginx!.url);
    try {
      const atMount = await served();
      t.diagnostic(`mount from an empty store: ${atMount.requests} requests, ${atMount.total} bytes (pointer, path records, file indexes, the profile's directory trees)`);
      await nginx!.clearLog();

      const view = join(m.dir, 'usr');
      const top = await readdir(view);
      const binds = top.flatMap((e) => ['--ro-bind', join(view, e), `/${e}`]);
      const run = await sh(`bwrap --unshare-all --die-with-parent --tmpfs / ${binds.map((b) => `'${b}'`).join(' ')} --dev /dev --proc /proc --tmpfs /tmp --setenv PATH /usr/bin:/bin /bin/bash -c 'echo $((6 * 7)); ls /usr/bin | wc -l'`, { timeoutMs: 120_000 });
      assert.equal(run.code, 0, run.stderr + m.stderr());
      assert.equal(run.stdout.split('\n')[0], '42');
      const first = await served();
      const share = first.total / remoteBytes;
      t.diagnostic(`first run of bash (+ ls): ${first.requests} requests, ${first.total} bytes (${first.chunks} in chunks) of ${remoteBytes} pushed = ${(share * 100).toFixed(2)}%`);
      assert.ok(share < 0.1, `first run fetched ${(share * 100).toFixed(1)}% of the profile`);

      // The same run again is served from the cache: nothing more from the server.
      await nginx!.clearLog();
      const again = await sh(`bwrap --unshare-all --die-with-parent --tmpfs / ${binds.map((b) => `'${b}'`).join(' ')} --dev /dev --proc /proc --tmpfs /tmp /bin/bash -c 'echo $((6 * 7))'`);
      assert.equal(again.stdout, '42\n');
      assert.equal((await served()).chunks, 0, 'second run fetched no chunks');

      const listed = await readdir(join(m.dir, 'store'));
      for (const p of paths.values()) assert.ok(listed.includes(p), `store/ lists ${p}`);
      for (const pkg of ['fixture', 'bash', 'libpython3.11-stdlib']) {
        const p = paths.get(pkg)!;
        const d = await sh(`diff -r --no-dereference ${join(m.dir, 'store', p)} ${sources.get(p)}`);
        assert.equal(d.code, 0, `diff -r ${pkg}: ${d.stdout}${d.stderr}`);
      }
      assert.equal((await sh(`readlink ${m.dir}/profiles/system/current`)).stdout.trim(), '1');
      assert.equal((await sh(`${view}/bin/hello`)).stdout, 'hello 1\n');

      // A new pointer on the remote: pull it through the running mount's control socket.
      const oldPointer = await readFile(join(base, 'remote', 'profiles', 'system'));
      await pushFixture(2);
      const pull = await miqAsync(['profile', 'pull', 'system', '--json'], { env: home('b') });
      assert.equal(pull.code, 0, pull.stderr);
      const pr = json<{ changed: boolean; generation: number; sequence: number }>(pull);
      assert.deepEqual([pr.changed, pr.generation, pr.sequence], [true, 2, 2]);
      assert.equal((await sh(`${view}/bin/hello`)).stdout, 'hello 2\n');
      const same = json<{ changed: boolean }>(await miqAsync(['profile', 'pull', 'system', '--json'], { env: home('b') }));
      assert.equal(same.changed, false);
      // A replayed older signed pointer (a stale mirror, an attacker) is refused; nothing moves.
      const newPointer = await readFile(join(base, 'remote', 'profiles', 'system'));
      await writeFile(join(base, 'remote', 'profiles', 'system'), oldPointer);
      const back = await miqAsync(['profile', 'pull', 'system'], { env: home('b') });
      await writeFile(join(base, 'remote', 'profiles', 'system'), newPointer);
      assert.ok(isCleanError(back), back.stderr);
      assert.match(back.stderr, /went back from sequence 2 to 1/);
      assert.equal((await sh(`${view}/bin/hello`)).stdout, 'hello 2\n');
      const rb = await miqAsync(['profile', 'rollback', 'system'], { env: home('b') });
      assert.equal(rb.code, 0, rb.stderr);
      assert.equal((await sh(`${view}/bin/hello`)).stdout, 'hello 1\n');
      assert.equal((await sh(`${m.dir}/profiles/system/2/bin/hello`)).stdout, 'hello 2\n');
      // Whole-store commands through the socket act on the local part of the lazy store.
      const v = await miqAsync(['verify'], { env: home('b') });
      assert.equal(v.code, 0, v.stdout + v.stderr);
    } finally {
      await m.stop();
    }
  });

  it('with nginx stopped, an uncached read is EIO and only that read; cached files still read', { timeout: 300_000 }, async () => {
    const m = await mountLazy('c', nginx!.url);
    try {
      const bash = paths.get('bash')!;
      const py = paths.get('libpython3.11-stdlib')!;
      const cached = join(m.dir, 'store', bash, 'bin', 'bash');
      assert.equal((await sh(`cmp ${cached} ${join(sources.get(bash)!, 'bin', 'bash')}`)).code, 0);
      // Trees of the python path are loaded now; its file contents are not.
      const found = await sh(`cd ${join(m.dir, 'store', py)} && find . -type f -size +64k | head -3`);
      const files = found.stdout.trim().split('\n');
      assert.ok(files.length >= 2 && files[0], `python has large files; find said ${JSON.stringify(found)}; mount said: ${m.stderr().slice(-2000)}`);
      await nginx!.stop();
      nginx = undefined;
      const bad = await sh(`cat ${join(m.dir, 'store', py, files[0]!)} > /dev/null`, { timeoutMs: 60_000 });
      assert.notEqual(bad.code, 0);
      if (!/Input\/output error/.test(bad.stderr)) {
        // CI saw ENOENT here once (stop 22, not reproduced in ~40 local runs): say which part of
        // the path the mount lost, whether the server still runs, and what it logged.
        const parts = join('store', py, files[0]!).split('/').filter((x) => x && x !== '.');
        const seen: string[] = [];
        for (let k = 1; k <= parts.length; k++) seen.push((await sh(`stat -c '%i %F' ${join(m.dir, ...parts.slice(0, k))} 2>&1`)).stdout.trim());
        const mounted = (await sh(`grep ${m.dir} /proc/mounts || true`)).stdout.trim();
        assert.fail(`cat said ${bad.stderr.trim()}; path parts: ${seen.join(' / ')}; server exit ${m.child.exitCode} signal ${m.child.signalCode}; /proc/mounts: ${mounted}; mount said: ${m.stderr().slice(-3000)}`);
      }
      assert.equal((await sh(`cmp ${cached} ${join(sources.get(bash)!, 'bin', 'bash')}`)).code, 0, 'a cached file still reads');
      assert.equal((await sh(`ls ${join(m.dir, 'store', py)}`)).code, 0, 'the mount still answers');
    } finally {
      await m.stop();
      nginx = await startNginx(join(base, 'remote'));
    }
  });

  it('a mount SIGKILLed mid-download, then mounted again: miq verify is clean and every byte reads right', { timeout: 600_000 }, async (t) => {
    const py = paths.get('libpython3.11-stdlib')!;
    let m = await mountLazy('d', nginx!.url);
    await nginx!.clearLog();
    const reader = sh(`set -o pipefail; tar -C ${join(m.dir, "store", py)} -cf - . | wc -c`, { timeoutMs: 120_000 });
    let tarDone = false;
    void reader.then(() => { tarDone = true; });
    while (!tarDone && (await served()).chunks < 300_000) await new Promise((r) => setTimeout(r, 2));
    m.child.kill('SIGKILL');
    await waitExit(m.child);
    const atKill = await served();
    const tar = await reader;
    assert.equal(m.child.signalCode, 'SIGKILL');
    assert.notEqual(tar.code, 0, 'tar was cut off by the kill, not finished');
    t.diagnostic(`killed after ${atKill.requests} requests, ${atKill.chunks} chunk bytes; tar: ${tar.stderr.split('\n')[0]}`);
    const v = miq(['verify', '--json'], { env: home('d') });
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const vc = json<{ remoteCache?: { chunks: number; bad: string[] } }>(v).remoteCache;
    assert.ok(vc && vc.chunks > 0, 'verify also checked the remote cache');
    assert.deepEqual(vc.bad, []);
    const c = await checkCache(join(base, 'd', 'remote-cache'));
    t.diagnostic(`cache after the kill: ${c.chunks} chunks (${c.bytes} bytes) verify, ${c.bad.length} bad, ${c.temps} torn temp files`);
    assert.deepEqual(c.bad, []);
    // The next mount clears the dead one's FUSE mounts itself. --cache-size bounds the disk cache.
    m = await mountLazy('d', nginx!.url, ['--cache-size', '1M']);
    try {
      const d = await sh(`diff -r --no-dereference ${join(m.dir, 'store', py)} ${sources.get(py)}`);
      assert.equal(d.code, 0, d.stdout + d.stderr);
    } finally {
      await m.stop();
    }
    // Measured once the mount has stopped (its prefetches settled); temp files are not entries.
    const used = Number((await sh(`find ${join(base, 'd', 'remote-cache')} -type f ! -name '.*' -printf '%s\\n' | awk '{ s += $1 } END { print s + 0 }'`)).stdout.trim());
    t.diagnostic(`disk cache after reading all of ${py}: ${used} bytes (bound 1 MiB; the path is ~2.8 MB compressed)`);
    assert.ok(used > 0 && used <= 1024 * 1024, `cache holds ${used} bytes: ${(await sh(`cd ${join(base, 'd', 'remote-cache')} && find . -type f -printf '%s %TT %p\\n' | sort -k2 | tail -40`)).stdout}`);
    const v2 = miq(['verify'], { env: home('d') });
    assert.equal(v2.code, 0, v2.stdout + v2.stderr);
    const c2 = await checkCache(join(base, 'd', 'remote-cache'));
    assert.deepEqual([c2.bad, c2.temps], [[], 0]);
    await rm(join(base, 'mnt-d'), { recursive: true, force: true });
  });

  it('--pull-interval picks up a new pointer on its own, as an atomic switch to a new generation', { timeout: 300_000 }, async () => {
    const m = await mountLazy('e', nginx!.url, ['--pull-interval', '0.5']);
    try {
      const hello = join(m.dir, 'usr', 'bin', 'hello');
      assert.equal((await sh(hello)).stdout, 'hello 2\n');
      await pushFixture(3);
      let out = '';
      for (let i = 0; i < 600 && out !== 'hello 3\n'; i++) {
        await new Promise((r) => setTimeout(r, 100));
        out = (await sh(hello)).stdout;
      }
      assert.equal(out, 'hello 3\n', m.stderr());
      const g = json<{ current: number; generations: unknown[] }>(await miqAsync(['profile', 'generations', 'system', '--json'], { env: home('e') }));
      assert.deepEqual([g.current, g.generations.length], [2, 2]);
    } finally {
      await m.stop();
    }
  });

  it('a misbehaving server (wrong bytes, truncated bodies, 500s) gives EIO for those reads, caches nothing wrong', { timeout: 300_000 }, async () => {
    const bad = await startBadServer(join(base, 'remote'));
    const m = await mountLazy('f', bad.url).catch(async (e: unknown) => { await bad.close(); throw e; });
    try {
      const fx = paths.get('fixture')!;
      const big = join(m.dir, 'store', fx, 'share', 'big.bin');
      const src = join(sources.get(fx)!, 'share', 'big.bin');
      for (const rule of [{ kind: 'wrong' }, { kind: 'truncate' }, { kind: 'status', status: 500 }] as const) {
        bad.rule('*', rule);
        const r = await sh(`cat ${big} > /dev/null`, { timeoutMs: 60_000 });
        assert.notEqual(r.code, 0, rule.kind);
        assert.match(r.stderr, /Input\/output error/, rule.kind);
      }
      bad.rule('*', undefined);
      assert.equal((await sh(`cmp ${big} ${src}`)).code, 0, 'the same read succeeds once the server behaves');
      const c = await checkCache(join(base, 'f', 'remote-cache'));
      assert.deepEqual(c.bad, []);
    } finally {
      await m.stop();
      await bad.close();
    }
  });

  it('a prefetch list recorded from one mount and pushed makes the next cold mount fetch it before the program asks', { timeout: 300_000 }, async (t) => {
    const runBash = async (dir: string): Promise<void> => {
      const view = join(dir, 'usr');
      const binds = (await readdir(view)).flatMap((e) => ['--ro-bind', join(view, e), `/${e}`]);
      const r = await sh(`bwrap --unshare-all --die-with-parent --tmpfs / ${binds.map((b) => `'${b}'`).join(' ')} --dev /dev --proc /proc --tmpfs /tmp /bin/bash -c 'echo $((6 * 7)); ls /usr/bin | wc -l'`, { timeoutMs: 120_000 });
      assert.equal(r.stdout.split('\n')[0], '42', r.stderr);
    };
    const file = join(base, 'bash.hints');
    // Without --remote, or a file that is not a list: clear errors.
    await mkdir(join(base, 'mnt-h0'), { recursive: true });
    const noRemote = await miqAsync(['mount', join(base, 'mnt-h0'), '--record-hints', file], { env: home('h0') });
    assert.ok(isCleanError(noRemote), noRemote.stderr);
    assert.match(noRemote.stderr, /--record-hints needs --remote/);
    await writeFile(join(base, 'not.hints'), 'hello');
    const badPush = miq(['push', join(base, 'remote'), '--profile', 'system', '--hints', join(base, 'not.hints')], { env: home('a') });
    assert.ok(isCleanError(badPush) && badPush.code === 2, badPush.stderr);
    assert.match(badPush.stderr, /not a miq hints file/);

    const rec = await mountLazy('h1', nginx!.url, ['--record-hints', file, '--no-hints']);
    try {
      await runBash(rec.dir);
    } finally {
      await rec.stop();
    }
    assert.match(rec.stderr(), /chunk ids written to/);
    const p = miq(['push', join(base, 'remote'), '--profile', 'system', '--sign-key', join(base, 'keys', 'lazy-1.key'), '--hints', file, '--json'], { env: home('a') });
    assert.equal(p.code, 0, p.stderr);
    const listed = json<{ hintsWritten: number }>(p).hintsWritten;
    assert.ok(listed >= 5, `${listed} chunk ids recorded`);

    await nginx!.clearLog();
    const m = await mountLazy('h2', nginx!.url);
    try {
      // Wait for the background fetches to settle: no new request for half a second.
      let n = -1;
      for (let i = 0; i < 100; i++) {
        await new Promise((r) => setTimeout(r, 500));
        const now = (await served()).requests;
        if (now === n) break;
        n = now;
      }
      const log = await nginx!.log();
      assert.ok(log.some((l) => l.uri.startsWith('/hints/')), 'the list was fetched');
      const before = await served();
      if (process.env.MIQ_TEST_TRACE) t.diagnostic(JSON.stringify(Object.entries(log.reduce<Record<string, number>>((a, l) => { const k = l.uri.split("/")[1]!; a[k] = (a[k] ?? 0) + 1; return a; }, {}))));
      t.diagnostic(`mounted with the list: ${before.requests} requests, ${before.chunks} chunk and bundle bytes before the program ran`);
      assert.ok(before.chunks > 0);
      await nginx!.clearLog();
      await runBash(m.dir);
      const after = await served();
      t.diagnostic(`then bash's first run: ${after.requests} requests`);
      assert.equal(after.chunks, 0, `fetched during the run: ${(await nginx!.log()).map((l) => l.uri).join(' ')}`);
    } finally {
      await m.stop();
    }
    // Mounted again without --remote: the store remembers where its generations' files live.
    const again = await mountLazy('h2', '');
    try {
      await runBash(again.dir);
    } finally {
      await again.stop();
    }
  });

  it('an untrusted key or an unreachable remote is one clean error and leaves no mount', { timeout: 120_000 }, async () => {
    const other = miq(['key', 'generate', 'other', '--dir', join(base, 'keys'), '--json'], { env: home('g') });
    const wrong = json<{ publicText: string }>(other).publicText;
    for (const [url, key, why] of [[nginx!.url, wrong, /not signed by a trusted key|untrusted|trusted/i], ['http://127.0.0.1:1/', pub, /127\.0\.0\.1:1|connect|refused|remote/i]] as const) {
      const dir = join(base, 'mnt-g');
      await mkdir(dir, { recursive: true });
      const r = await miqAsync(['mount', dir, '--remote', url, '--trusted-key', key], { env: home('g') });
      assert.ok(isCleanError(r), r.stderr);
      assert.match(r.stderr, why);
      assert.equal((await sh(`grep -c ${dir} /proc/mounts`)).stdout.trim(), '0');
    }
  });
});
