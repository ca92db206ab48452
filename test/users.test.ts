/**
 * Per-user profiles with real users (issue 14 §1): root serves the store with `miq mount --users`;
 * each user reaches it through a socket of their own in a directory only they can open. Alice
 * ingests her own tree, switches her profile and runs from it; bob can change nothing of
 * alice's or root's, cannot write into the store or alice's socket directory, nor ingest what
 * he cannot read; alice's second profile with root's packages adds under 1% of stored bytes;
 * GC keeps every user's generations; root sees and removes everything.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { debianPackage } from './helpers/corpus.js';
import { json, miq, MIQ, spawnMiq } from './helpers/cli.js';
import { cleanup, sh, tmp, waitExit } from './helpers/fuse.js';

const ALICE = 'miqalice';
const BOB = 'miqbob';
const PACKAGES = ['libc6', 'libtinfo6', 'bash'];

let base: string;
let store: string;
let mnt: string;
let mount: ChildProcess | undefined;
let mountErr = '';
const made: string[] = [];

function ensureUser(name: string): { uid: number; gid: number } {
  if (spawnSync('id', ['-u', name]).status !== 0) {
    execFileSync('useradd', ['--no-create-home', '--shell', '/bin/sh', name]);
    made.push(name);
  }
  return { uid: Number(execFileSync('id', ['-u', name], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', name], { encoding: 'utf8' })) };
}

/** `miq` as `user` (runuser), with a clean environment and the shared store. */
function as(user: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('runuser', ['-u', user, '--', process.execPath, MIQ, '--store', store, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: '/nonexistent', LANG: 'C' }, cwd: '/' });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}
function shAs(user: string, cmd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return sh(`runuser -u ${user} -- /bin/sh -c '${cmd.replace(/'/g, `'\\''`)}'`);
}
const refused = (r: { code: number; stderr: string }): boolean => r.code !== 0 && /^miq: /.test(r.stderr) && !/\n\s+at /.test(r.stderr);

async function storedBytes(): Promise<number> {
  return Number((await sh(`du -sb --exclude=run --exclude=users ${store} | cut -f1`)).stdout.trim());
}

describe('per-user profiles over one store, with real users', () => {
  let alice: { uid: number; gid: number };
  let rootPaths: string[] = [];

  before(async () => {
    alice = ensureUser(ALICE);
    ensureUser(BOB);
    base = await tmp('miq-users-');
    await chmod(base, 0o755);
    store = join(base, 'store');
    mnt = join(base, 'mnt');
    await mkdir(mnt);
    for (const pkg of PACKAGES) {
      const r = miq(['--store', store, 'ingest', debianPackage(pkg), '--name', pkg, '--json']);
      assert.equal(r.code, 0, r.stderr);
      rootPaths.push(json<{ path: string }>(r).path);
    }
    const sw = miq(['--store', store, 'profile', 'switch', 'system', ...rootPaths]);
    assert.equal(sw.code, 0, sw.stderr);
    mount = spawnMiq(['--store', store, 'mount', mnt, '--users', `${ALICE},${BOB}`, '--json']);
    let out = '';
    mount.stderr!.on('data', (d) => (mountErr += d));
    await new Promise<void>((res, rej) => {
      mount!.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('"mounted":true')) res();
      });
      mount!.once('exit', (c) => rej(new Error(`miq mount exited ${c}: ${mountErr}`)));
    });
  });

  after(async () => {
    if (mount && mount.exitCode === null && mount.signalCode === null) {
      mount.kill('SIGTERM');
      await waitExit(mount);
    }
    await sh(`mountpoint -q ${mnt}/usr && umount -l ${mnt}/usr; mountpoint -q ${mnt} && umount -l ${mnt}`);
    await cleanup(base);
    for (const u of made) spawnSync('userdel', [u]);
    const left = (await sh('grep fuse /proc/mounts || true')).stdout.split('\n').filter((l) => l.includes(base));
    assert.deepEqual(left, [], 'no FUSE mounts of this test remain');
  });

  it('alice ingests her own tree, switches her profile, runs from it; bob changes nothing of hers or root\'s', { timeout: 300_000 }, async (t) => {
    // The socket directory: alice's, 0700; the store: root's.
    const dirMode = (await sh(`stat -c '%U %a' ${store}/users/${ALICE} ${store}/users/${ALICE}/miq.sock`)).stdout.trim().split('\n');
    assert.deepEqual(dirMode, [`${ALICE} 700`, `${ALICE} 600`]);

    const src = join(base, 'alice-src');
    for (const v of [1, 2]) {
      const d = join(src, `v${v}`, 'bin');
      await mkdir(d, { recursive: true });
      await writeFile(join(d, 'hello'), `#!/bin/sh\necho hello from alice v${v}\n`, { mode: 0o755 });
    }
    await sh(`chown -R ${alice.uid}:${alice.gid} ${src} && chmod 0700 ${src}`);
    const ing = [1, 2].map((v) => as(ALICE, ['ingest', join(src, `v${v}`), '--name', 'hello', '--json']));
    for (const r of ing) assert.equal(r.code, 0, r.stderr + mountErr);
    const [p1, p2] = ing.map((r) => json<{ path: string }>(r).path);

    const s1 = as(ALICE, ['profile', 'switch', 'dev', p1!, '--user', '--json']);
    assert.equal(s1.code, 0, s1.stderr);
    assert.equal(json<{ profile: string; generation: number }>(s1).profile, `per-user/${ALICE}/dev`);
    const view = join(mnt, 'profiles', 'per-user', ALICE, 'dev');
    const run1 = await shAs(ALICE, `${view}/current/bin/hello`);
    assert.equal(run1.stdout, 'hello from alice v1\n', run1.stderr);
    const s2 = as(ALICE, ['profile', 'switch', 'dev', p2!, '--user', '--json']);
    assert.equal(json<{ generation: number }>(s2).generation, 2);
    assert.equal((await shAs(ALICE, `${view}/2/bin/hello`)).stdout, 'hello from alice v2\n');
    const rb = as(ALICE, ['profile', 'rollback', 'dev', '--user', '--json']);
    assert.equal(rb.code, 0, rb.stderr);
    assert.equal(json<{ generation: number }>(rb).generation, 1);
    assert.equal((await shAs(ALICE, `readlink ${view}/current`)).stdout.trim(), '1', 'her current view follows the rollback');
    assert.equal((await shAs(ALICE, `${view}/current/bin/hello`)).stdout, 'hello from alice v1\n');

    // bob: nothing of alice's, nothing of root's.
    const theirs = `per-user/${ALICE}/dev`;
    const attempts: [string, string[]][] = [
      ['switch alice', ['profile', 'switch', theirs, p2!]],
      ['roll back alice', ['profile', 'rollback', theirs]],
      ['delete alice', ['profile', 'delete-generations', theirs, '--keep', '1']],
      ['switch root', ['profile', 'switch', 'system', p2!]],
      ['roll back root', ['profile', 'rollback', 'system']],
      ['delete root', ['profile', 'delete-generations', 'system', '--keep', '1']],
      ['unpin alice', ['unpin', `per-user/${ALICE}/${p1}`]],
      ['gc', ['gc']],
      ['ingest alice\'s private tree', ['ingest', join(src, 'v2'), '--name', 'stolen']],
    ];
    for (const [what, args] of attempts) {
      const r = as(BOB, args);
      assert.ok(refused(r), `bob may not ${what}: exit ${r.code} ${r.stdout} ${r.stderr}`);
      t.diagnostic(`bob ${what}: ${r.stderr.trim()}`);
    }
    const gens = json<{ current: number; generations: { generation: number }[] }>(as(ALICE, ['profile', 'generations', 'dev', '--user', '--json']));
    assert.equal(gens.current, 1);
    assert.deepEqual(gens.generations.map((g) => g.generation), [1, 2]);
    const sys = json<{ current: number; generations: unknown[] }>(miq(['--store', store, 'profile', 'generations', 'system', '--json']));
    assert.equal(sys.current, 1);
    assert.equal(sys.generations.length, 1);

    // Files: the store and alice's socket directory are closed to bob.
    for (const cmd of [`touch ${store}/planted`, `touch ${store}/users/${ALICE}/planted`, `ls ${store}/users/${ALICE}`, `touch ${mnt}/store/planted`]) {
      const r = await shAs(BOB, cmd);
      assert.notEqual(r.code, 0, `bob: ${cmd} succeeded`);
    }
    const dial = await shAs(BOB, `${process.execPath} -e "require('net').connect('${store}/users/${ALICE}/miq.sock').on('connect',()=>{console.log('connected');process.exit(0)}).on('error',(e)=>{console.log(e.code);process.exit(1)})"`);
    assert.equal(dial.stdout.trim(), 'EACCES');
    const rootSock = await shAs(BOB, `${process.execPath} -e "require('net').connect('${store}/miq.sock').on('connect',()=>{console.log('connected');process.exit(0)}).on('error',(e)=>{console.log(e.code);process.exit(1)})"`);
    assert.notEqual(rootSock.stdout.trim(), 'connected');

    // bob's own profile works.
    const bobs = as(BOB, ['profile', 'switch', 'tools', p2!, '--user']);
    assert.equal(bobs.code, 0, bobs.stderr);
  });

  it("alice's second profile with root's packages adds under 1% of stored bytes; gc keeps every user's generations; root removes anything", { timeout: 300_000 }, async (t) => {
    const before = await storedBytes();
    const s = as(ALICE, ['profile', 'switch', 'same-as-root', ...rootPaths, '--user', '--json']);
    assert.equal(s.code, 0, s.stderr);
    const afterB = await storedBytes();
    const share = (afterB - before) / before;
    t.diagnostic(`stored bytes: ${before} before, ${afterB} after alice's second profile (+${afterB - before} B, ${(share * 100).toFixed(3)}%)`);
    assert.ok(share < 0.01, `added ${(share * 100).toFixed(2)}%`);
    assert.equal(json<{ tree: string }>(s).tree, json<{ generations: { tree: string }[] }>(miq(['--store', store, 'profile', 'generations', 'system', '--json'])).generations[0]!.tree);

    const gc = miq(['--store', store, 'gc', '--json']);
    assert.equal(gc.code, 0, gc.stderr);
    const view = join(mnt, 'profiles', 'per-user', ALICE, 'dev');
    assert.equal((await shAs(ALICE, `${view}/2/bin/hello`)).stdout, 'hello from alice v2\n');
    assert.equal((await shAs(ALICE, `${mnt}/profiles/per-user/${ALICE}/same-as-root/1/bin/bash -c 'echo $((6*7))'`)).stdout, '42\n');

    // Root sees every user's profiles and may delete their generations.
    const list = json<{ name: string }[]>(miq(['--store', store, 'profile', 'list', '--json'])).map((p) => p.name);
    for (const n of ['system', `per-user/${ALICE}/dev`, `per-user/${ALICE}/same-as-root`, `per-user/${BOB}/tools`]) assert.ok(list.includes(n), `root lists ${n}: ${list.join(' ')}`);
    const del = miq(['--store', store, 'profile', 'delete-generations', `per-user/${ALICE}/dev`, '--older-than', '0', '--json']);
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual(json<{ deleted: number[] }>(del).deleted, [2]);
    const ls = await readdirAs(ALICE, join(mnt, 'profiles', 'per-user'));
    assert.deepEqual(ls.sort(), [ALICE, BOB]);
  });
});

async function readdirAs(user: string, dir: string): Promise<string[]> {
  return (await shAs(user, `ls ${dir}`)).stdout.split('\n').filter(Boolean);
}
