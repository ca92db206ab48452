/**
 * The life of `miq mount` as a process: SIGTERM ends it within 5 s with exit 0 whatever still
 * holds the mount (a file held open, a shell's cwd inside, a bind of usr), and nothing is left in
 * /proc/mounts; an outside `umount DIR` ends it too; `mount -t fuse.miq` (an fstab line) starts it.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, readlink, rename, symlink, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chooseBackend } from '../mount/daemon.js';
import { cleanup, fixtureTree, sh, startMiqMount, tmp, waitExit } from './helpers/fuse.js';
import { json, miqAsync } from './helpers/cli.js';

const TRIALS = Number(process.env.MIQ_SIGTERM_TRIALS ?? 10);

let base: string, mnt: string, S: string[], p: string;
const children: ChildProcess[] = [];

const mounted = async (dir: string): Promise<number> => (await readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l.split(' ')[1]?.startsWith(dir)).length;

async function start(extra: string[] = []): Promise<ChildProcess> {
  const m = await startMiqMount([...S, 'mount', mnt, '--json', ...extra]);
  children.push(m.child);
  return m.child;
}

// Both backends (MIQ_FUSE_BACKEND=fuse-native runs them on the fallback). fuse-native serves usr/
// as a second mount bound onto DIR/usr, so an outside unmount of DIR must take that submount
// too (`umount -R DIR`; a plain `umount DIR` is refused by the kernel as busy).
const fuse3 = chooseBackend().backend === 'fuse3';

describe(`miq mount lifecycle (${chooseBackend().backend})`, () => {
  before(async () => {
    base = await tmp('miq-life-');
    await fixtureTree(join(base, 'src'), 4);
    S = ['--store', join(base, 'store')];
    const ing = await miqAsync([...S, 'ingest', join(base, 'src'), '--name', 'life', '--json']);
    assert.equal(ing.code, 0, ing.stderr);
    p = json<{ path: string }>(ing).path;
    await miqAsync([...S, 'profile', 'switch', 'system', p]);
    mnt = join(base, 'mnt');
    await mkdir(mnt);
    await mkdir(join(base, 'bind'));
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await cleanup(base);
  });

  it(`SIGTERM ${TRIALS} times with a file held open, a shell inside and a bind of usr: exit 0 within 5 s, no mount left`, async () => {
    const times: number[] = [];
    for (let i = 0; i < TRIALS; i++) {
      const c = await start();
      // A reader holding a file open, a shell whose cwd is inside, and (every other time) a
      // bind of DIR/usr made by someone else.
      const holder = spawn('/bin/bash', ['-c', `exec 3<${mnt}/store/${p}/share/big.bin; cd ${mnt}/usr/share/doc && sleep 60`], { stdio: 'ignore' });
      children.push(holder);
      if (i % 2 === 1) assert.equal((await sh(`mount --bind ${mnt}/usr ${base}/bind`)).code, 0);
      assert.equal((await sh(`cat ${mnt}/usr/share/doc/README`)).stdout, 'readme 4\n');
      await new Promise((r) => setTimeout(r, 100));
      const t0 = Date.now();
      c.kill('SIGTERM');
      const code = await Promise.race([waitExit(c), new Promise<string>((r) => setTimeout(() => r('hung'), 10_000))]);
      const ms = Date.now() - t0;
      holder.kill('SIGKILL');
      await waitExit(holder);
      if (code === 'hung') c.kill('SIGKILL');
      times.push(ms);
      assert.equal(code, 0, `trial ${i}: exit ${code}`);
      assert.ok(ms < 5000, `trial ${i}: ${ms} ms`);
      assert.equal(await mounted(base), 0, `trial ${i}: mounts left: ${await readFile('/proc/mounts', 'utf8')}`);
    }
    console.log(`mount-lifecycle: SIGTERM exit ms ${JSON.stringify(times)}`);
  });

  it('`umount DIR` from outside ends miq mount with exit 0', async () => {
    const c = await start();
    const r = await sh(fuse3 ? `umount ${mnt}` : `umount -R ${mnt}`);
    assert.equal(r.code, 0, r.stderr);
    const code = await Promise.race([waitExit(c), new Promise<string>((r) => setTimeout(() => r('hung'), 10_000))]);
    assert.equal(code, 0);
    assert.equal(await mounted(base), 0);
  });

  it('after an outside unmount, the cleanup leaves alone the next FUSE mount, which got the freed device number', async (t) => {
    // The kernel hands a freed device number to the next FUSE mount made anywhere; a server that
    // swept the mounts of its old number detached that one (CI: another test file's lazy mount
    // vanished, its next lookup ENOENT). The server is stopped while its mount goes, so the
    // other mount is surely made before it cleans up.
    const S2 = ['--store', join(base, 'store2')];
    const ing = await miqAsync([...S2, 'ingest', join(base, 'src'), '--name', 'life', '--json']);
    assert.equal(ing.code, 0, ing.stderr);
    await miqAsync([...S2, 'profile', 'switch', 'system', json<{ path: string }>(ing).path]);
    const mnt2 = join(base, 'mnt2');
    await mkdir(mnt2, { recursive: true });
    const devOf = async (dir: string): Promise<string | undefined> => (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').map((l) => l.split(' ')).find((f) => f[4] === dir)?.[2];
    for (let attempt = 0; ; attempt++) {
      const a = await start();
      const pid = Number((await sh(`pgrep -f -- 'mount ${mnt} --json'`)).stdout.trim().split(/\s+/).pop());
      assert.ok(pid > 0);
      const dev = await devOf(mnt);
      assert.ok(dev, 'A is mounted');
      let b: Awaited<ReturnType<typeof startMiqMount>> | undefined;
      try {
        process.kill(pid, 'SIGSTOP');
        // -c: no path lookups of DIR (they would wait for the stopped server).
        const u = await sh(`umount -l -c ${mnt}`);
        assert.equal(u.code, 0, u.stderr);
        b = await startMiqMount([...S2, 'mount', mnt2, '--json']);
        const dev2 = await devOf(mnt2);
        process.kill(pid, 'SIGCONT');
        assert.equal(await Promise.race([waitExit(a), new Promise<string>((r) => setTimeout(() => r('hung'), 10_000))]), 0, 'A ends with exit 0');
        if (dev2 !== dev) {
          // Someone else's mount took the number first: no test of the sweep this time.
          if (attempt < 2) continue;
          t.skip(`the freed device ${dev} was not reused by the next mount (${dev2}) in 3 attempts`);
          return;
        }
        assert.equal(await mounted(mnt2), fuse3 ? 1 : 2, `B is still mounted: ${await readFile('/proc/mounts', 'utf8')}`);
        assert.equal((await sh(`ls ${mnt2}/store`)).code, 0, 'B still serves');
        assert.equal(b.child.exitCode, null, 'B still runs');
        return;
      } finally {
        try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
        if (b && b.child.exitCode === null && b.child.signalCode === null) {
          b.child.kill('SIGTERM');
          await waitExit(b.child);
        }
        await sh(`mountpoint -q ${mnt2}/usr && umount -l ${mnt2}/usr; mountpoint -q ${mnt2} && umount -l ${mnt2}; true`);
      }
    }
  });

  it('mount -t fuse.miq from an fstab line (bin/mount.fuse.miq), SIGTERM ends it', async () => {
    const helper = '/sbin/mount.fuse.miq';
    const fstab = join(base, 'fstab');
    await writeFile(fstab, `${join(base, 'store')} ${mnt} fuse.miq profile=system,nofail 0 0\n`);
    const ours = resolve('bin/mount.fuse.miq');
    try {
      // mount(8) finds helpers only in /sbin; a test-owned link to this checkout's helper, put
      // in place by a rename (a link left by a killed run elsewhere, maybe dangling, would make
      // mount(8) run another helper, or fall back to mount.fuse, which runs `miq STORE DIR`).
      await symlink(ours, `${helper}.${process.pid}`);
      await rename(`${helper}.${process.pid}`, helper);
      const r = await sh(`mount --fstab ${fstab} ${mnt}`);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await sh(`cat ${mnt}/usr/share/doc/README ${mnt}/store/${p}/share/doc/README`)).stdout, 'readme 4\nreadme 4\n');
      assert.match((await readFile('/proc/mounts', 'utf8')), new RegExp(` ${mnt} fuse`));
      const pid = (await sh(`pgrep -f -- 'mount ${mnt} --json'`)).stdout.trim().split(/\s+/).pop();
      assert.ok(pid && /^\d+$/.test(pid), `miq process found: ${pid}`);
      process.kill(Number(pid), 'SIGTERM');
      for (const end = Date.now() + 5000; (await mounted(base)) > 0 && Date.now() < end;) await new Promise((res) => setTimeout(res, 50));
      assert.equal(await mounted(base), 0);
      // A wrong store is miq's own error, and mount(8) fails.
      await writeFile(fstab, `${join(base, 'nosuch')} ${mnt} fuse.miq profile=nope/x 0 0\n`);
      const bad = await sh(`LC_ALL=C mount --fstab ${fstab} ${mnt}`);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /miq: /);
      assert.equal(await mounted(base), 0);
    } finally {
      if ((await readlink(helper).catch(() => '')) === ours) await unlink(helper).catch(() => {});
    }
  });
});
