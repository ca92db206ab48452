/**
 * The mount for real: every check reads through the kernel at the mount path, in child
 * processes (this process serves the mount; a synchronous call on it here would deadlock).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { startMount, type MountHandle } from '../mount/daemon.js';
import { connectControl, controlOf, withStore } from '../mount/client.js';
import type { Store } from '../store/api.js';
import { flipChunkByte } from './helpers/packs.js';
import { openStore } from '../store/open.js';
import * as P from '../store/profiles.js';
import { idOf, type Id } from '../store/ids.js';
import { cleanup, fixtureTree, sh, startMiqMount, tmp, waitExit, type MiqMount } from './helpers/fuse.js';
import { json, miqAsync, spawnMiq } from './helpers/cli.js';

let base: string, mnt: string, srcA: string, srcB: string;
let store: Store;
let h: MountHandle | undefined;
let A: string, B: string;

/** One test's scratch directory B: a store at B/store and its mount at B/mnt, served in this process or by a `miq mount` child. */
interface Scratch {
  b: string;
  /** The in-process mount's log lines. */
  logs: string[];
  /** Opens B/store (closed after the test unless closeStore() closed it). */
  store(): Promise<Store>;
  closeStore(): Promise<void>;
  /** Mounts S at B/mnt in this process (no control socket), its log lines into logs. */
  mount(s: Store): Promise<MountHandle>;
  /** `miq --store B/store mount B/mnt --json` with ENV added to this process's. */
  miqMount(env?: NodeJS.ProcessEnv): Promise<MiqMount>;
}

/** A Scratch whose mounts, store and directory are closed and removed after the test, whatever happened in it. */
async function scratch(tc: TestContext): Promise<Scratch> {
  const b = await tmp();
  const logs: string[] = [];
  let s: Store | undefined;
  const mounts: MountHandle[] = [];
  const children: MiqMount[] = [];
  tc.after(async () => {
    for (const m of mounts) await m.close();
    for (const mm of children) await mm.stop();
    await s?.close();
    await cleanup(b);
  });
  return {
    b, logs,
    async store() {
      return (s = await openStore(join(b, 'store')));
    },
    async closeStore() {
      await s?.close();
      s = undefined;
    },
    async mount(store) {
      await mkdir(join(b, 'mnt'), { recursive: true });
      const m = await startMount(store, join(b, 'mnt'), { control: false, log: (l) => logs.push(l) });
      mounts.push(m);
      return m;
    },
    async miqMount(env = {}) {
      await mkdir(join(b, 'mnt'), { recursive: true });
      const mm = await startMiqMount(['--store', join(b, 'store'), 'mount', join(b, 'mnt'), '--json'], { env: { ...process.env, ...env } });
      children.push(mm);
      return mm;
    },
  };
}

/** Stops a mount child run with MIQ_DEBUG_COUNTS=1, checks it exited 0, and returns its request counts line, parsed. */
async function countsAtExit(mm: MiqMount): Promise<{ line: string; c: Record<string, number> }> {
  assert.equal(await mm.stop(), 0, mm.stderr());
  const line = mm.stderr().split('\n').find((l) => l.startsWith('miq mount: requests '));
  assert.ok(line, mm.stderr());
  return { line, c: JSON.parse(line.slice('miq mount: requests '.length)) as Record<string, number> };
}

describe('miq mount (real FUSE)', () => {
  before(async () => {
    base = await tmp();
    srcA = join(base, 'a');
    srcB = join(base, 'b');
    await fixtureTree(srcA, 1);
    await mkdir(join(srcB, 'bin'), { recursive: true });
    // A real dynamically linked program: exec and ld.so mmap it from the mount.
    await copyFile('/usr/bin/env', join(srcB, 'bin/env'));
    await sh(`chmod 755 ${srcB}/bin/env`);
    store = await openStore(join(base, 'store'));
    A = (await store.ingest(srcA, { name: 'fixture' })).path;
    B = (await store.ingest(srcB, { name: 'envtool' })).path;
    await P.switchProfile(store, 'system', [{ path: A }, { path: B }]);
    mnt = join(base, 'mnt');
    await mkdir(mnt);
    h = await startMount(store, mnt);
  });
  after(async () => {
    await h?.close();
    await store?.close();
    await cleanup(base);
  });

  it('diff -r of every store path against its source, under store/, usr/ and profiles/', async () => {
    for (const [p, src] of [[A, srcA], [B, srcB]] as const) {
      const r = await sh(`diff -r --no-dereference ${src} ${mnt}/store/${p}`);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    const u = await sh(`diff -r --no-dereference ${srcA}/share ${mnt}/usr/share && diff -r --no-dereference ${srcA}/share ${mnt}/profiles/system/1/share && readlink ${mnt}/profiles/system/current`);
    assert.equal(u.code, 0, u.stdout + u.stderr);
    assert.equal(u.stdout.trim(), '1');
    const ls = await sh(`ls ${mnt} ${mnt}/store`);
    assert.match(ls.stdout, /profiles\nstore\nusr/);
    assert.ok(ls.stdout.includes(A) && ls.stdout.includes(B));
  });

  it('b3sum of every file equals its user.miq.id; dirs carry their tree id and store path', async () => {
    const r = await sh(`cd ${mnt}/store/${A} && find . -type f -print0 | while IFS= read -r -d '' f; do s=$(b3sum --no-names "$f"); x=$(getfattr --only-values -n user.miq.id "$f"); [ "$s" = "$x" ] || echo "MISMATCH $f $s $x"; echo ok; done`);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes('MISMATCH'), r.stdout);
    assert.equal(r.stdout.trim().split('\n').length, 5);
    const rec = await store.getStorePath(A);
    const d = await sh(`getfattr --only-values -n user.miq.id ${mnt}/store/${A}; echo; getfattr --only-values -n user.miq.path ${mnt}/store/${A}/share/doc`);
    assert.equal(d.stdout, `${rec!.tree}\n${A}`);
  });

  it('stat: normalised modes, owner root, sizes', async () => {
    const r = await sh(`cd ${mnt}/store/${A} && stat -c '%a %u %s %Y %n' bin/hello share/doc/README share/big.bin share`);
    assert.equal(r.stdout, `555 0 ${'#!/bin/sh\necho hello 1\n'.length} 1 bin/hello\n444 0 9 1 share/doc/README\n444 0 ${3 * 1024 * 1024 + 12345} 1 share/big.bin\n555 0 4096 1 share\n`);
  });

  it('permissions: the kernel checks the mode bits (test -x false without an exec bit), writes are EROFS', async () => {
    const p = `${mnt}/store/${A}`;
    const r = await sh(`for f in ${p}/share/doc/README ${p}/bin/hello ${mnt}/usr/share/doc/README ${mnt}/usr/bin/hello; do if test -x $f; then echo x; else echo -; fi; done; test -w ${p}/bin/hello && echo w || echo -; test -r ${p}/share/doc/README && echo r`);
    assert.equal(r.stdout, '-\nx\n-\nx\n-\nr\n', r.stderr);
    // As a user other than root: readable (allow_other), not executable unless the mode says so.
    const u = await sh(`chmod 711 ${base} && setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'test -x ${p}/share/doc/README && echo x || echo -; test -x ${p}/bin/hello && echo x; cat ${p}/share/doc/README'`);
    assert.equal(u.stdout, '-\nx\nreadme 1\n', u.stderr);
  });

  it('reads at any offset, and mmap: a dynamically linked program runs from the mount', async () => {
    const f = `${mnt}/store/${A}/share/big.bin`;
    for (const off of [0, 1, 65535, 65536, 1_000_001, 3 * 1024 * 1024 + 12000]) {
      const r = await sh(`cmp <(tail -c +${off + 1} ${f} | head -c 70000) <(tail -c +${off + 1} ${srcA}/share/big.bin | head -c 70000) && echo same`);
      assert.equal(r.stdout.trim(), 'same', `offset ${off}: ${r.stderr}`);
    }
    const m = await sh(`python3 -c "import mmap,sys,hashlib; f=open(sys.argv[1],'rb'); m=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ); print(hashlib.sha256(m[:]).hexdigest())" ${f}; sha256sum < ${srcA}/share/big.bin`);
    const [x, y] = m.stdout.trim().split('\n');
    assert.equal(x, y!.split(' ')[0], m.stderr);
    const run = await sh(`${mnt}/store/${B}/bin/env -i FOO=bar ${mnt}/store/${B}/bin/env && ${mnt}/usr/bin/env -i X=1 ${mnt}/usr/bin/env && ${mnt}/usr/bin/hello`);
    assert.equal(run.stdout, 'FOO=bar\nX=1\nhello 1\n', run.stderr);
  });

  it('refuses every write with EROFS', async () => {
    const p = `${mnt}/store/${A}`;
    const cmds = [`touch ${p}/new`, `echo x > ${p}/share/doc/README`, `echo x >> ${p}/share/doc/README`, `mkdir ${p}/d`, `rm ${p}/share/doc/README`, `rmdir ${p}/empty`,
      `chmod 777 ${p}/share/doc/README`, `mv ${p}/share/doc/README ${p}/x`, `ln -s x ${p}/l`, `ln ${p}/share/doc/README ${p}/h`, `setfattr -n user.x -v 1 ${p}/share/doc/README`,
      `truncate -s 0 ${p}/share/doc/README`, `touch ${mnt}/usr/new`, `echo x > ${mnt}/usr/bin/hello`, `mkdir ${mnt}/store/x`];
    for (const c of cmds) {
      const r = await sh(`LC_ALL=C ${c}`);
      assert.notEqual(r.code, 0, c);
      assert.match(r.stderr, /Read-only file system/, `${c}: ${r.stderr}`);
    }
    const same = await sh(`diff -r --no-dereference ${srcA} ${p}`);
    assert.equal(same.code, 0);
  });

  it('misses are ENOENT, under files ENOTDIR', async () => {
    const r = await sh(`LC_ALL=C stat ${mnt}/store/${A}/nope; LC_ALL=C stat ${mnt}/store/nosuch-0123456789abcdef0123456789abcdef; LC_ALL=C cat ${mnt}/store/${A}/share/doc/README/x`);
    assert.equal((r.stderr.match(/No such file or directory/g) ?? []).length, 2, r.stderr);
    assert.match(r.stderr, /Not a directory/);
  });

  it('the control socket: a forwarding Store, profile switches visible at usr/ when the call returns', async () => {
    assert.equal(await withStore(store.dir, async (s) => {
      assert.ok(controlOf(s), 'mounted: the store comes through the socket');
      const rec = await s.getStorePath(A);
      const t = await s.getTree(rec!.tree);
      const f = await s.getFile(t!.entries.find((e) => e.name.toString() === 'share')!.id! as Id).catch(() => undefined);
      assert.equal(f, undefined);
      return (await s.listStorePaths()).length;
    }), 3);
    const sw = await miqAsync(['--store', store.dir, 'profile', 'switch', 'system', B, '--json']);
    assert.equal(sw.code, 0, sw.stderr);
    assert.equal(json(sw).generation, 2);
    const r = await sh(`ls ${mnt}/usr; readlink ${mnt}/profiles/system/current; ls ${mnt}/profiles/system`);
    assert.equal(r.stdout, 'bin\n2\n1\n2\ncurrent\n');
    const rb = await miqAsync(['--store', store.dir, 'profile', 'rollback', 'system', '--json']);
    assert.equal(json(rb).generation, 1, rb.stderr);
    assert.equal((await sh(`cat ${mnt}/usr/share/doc/README`)).stdout, 'readme 1\n');
    const c = await connectControl(store.dir);
    const st = await c!.call<{ generation: number; dir: string }>('mount.status');
    c!.close();
    assert.equal(st.generation, 1);
    assert.equal(st.dir, mnt);
    const direct = await miqAsync(['--store', store.dir, 'profile', 'list', '--json']);
    assert.equal(direct.code, 0, 'a second process gets its answer through the socket, not a lock error');
  });

  it('other commands work while mounted: ingest, ls, cat, paths, stats, verify, gc', async () => {
    const S = ['--store', store.dir];
    const extra = join(base, 'extra');
    await fixtureTree(extra, 9);
    const ing = await miqAsync([...S, 'ingest', extra, '--name', 'extra', '--json']);
    assert.equal(ing.code, 0, ing.stderr);
    const p = json<{ path: string }>(ing).path;
    assert.equal((await sh(`cat ${mnt}/store/${p}/share/doc/README`)).stdout, 'readme 9\n', 'a path ingested through the socket appears in the mount');
    const ls = await miqAsync([...S, 'ls', `${A}/share/doc`]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /README/);
    const cat = await miqAsync([...S, 'cat', `${A}/share/doc/README`]);
    assert.equal(cat.stdout, 'readme 1\n', cat.stderr);
    const paths = await miqAsync([...S, 'paths', '--json']);
    assert.ok(paths.stdout.includes(p), paths.stderr);
    for (const cmd of [['stats', '--json'], ['verify', '--json'], ['gc', '--dry-run', '--json']]) {
      const r = await miqAsync([...S, ...cmd]);
      assert.equal(r.code, 0, `${cmd[0]}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /LOCKED|in use/);
    }
  });

  it('ingest --watch through the mount re-reads only changed files (the stat cache lives in the serving process)', async () => {
    const src = join(base, 'watched');
    await mkdir(src);
    for (let i = 0; i < 40; i++) await sh(`printf 'file ${i}' > ${src}/f${i}`);
    const child = spawnMiq(['--store', store.dir, 'ingest', src, '--watch', '--json', '--name', 'watched']);
    const results: { path: string; scanned: number; files: number }[] = [];
    let buf = '';
    child.stdout!.on('data', (d) => {
      buf += d;
      for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) results.push(JSON.parse(buf.slice(0, i)));
    });
    const next = async (n: number): Promise<void> => {
      for (const deadline = Date.now() + 30_000; results.length < n;) {
        if (Date.now() > deadline) throw new Error(`watch produced ${results.length} results, expected ${n}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    try {
      await next(1);
      assert.equal(results[0]!.scanned, 40);
      await new Promise((r) => setTimeout(r, 500));
      await sh(`printf changed > ${src}/f3`);
      await next(2);
      assert.equal(results[1]!.scanned, 1, 'only the changed file was read again');
      assert.equal((await sh(`cat ${mnt}/store/${results[1]!.path}/f3`)).stdout, 'changed');
    } finally {
      child.kill('SIGINT');
      await waitExit(child);
    }
  });

  it('miq mount --help says how to put the views at /miq/store and /usr', async () => {
    const r = await miqAsync(['mount', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /mount --bind \/miq\/usr \/usr/);
    assert.match(r.stdout, /\/miq\/store\/<name>-<hash>/);
    assert.match(r.stdout, /fstab/);
  });

  it('mountpoint errors: not empty, busy, missing', async () => {
    const full = join(base, 'full');
    await mkdir(join(full, 'x'), { recursive: true });
    await assert.rejects(startMount(store, full, { control: false }), /not empty/);
    await assert.rejects(startMount(store, mnt, { control: false }), /is busy/);
    await assert.rejects(startMount(store, join(base, 'nosuch'), { control: false }), /does not exist/);
  });
});

describe('names that are not UTF-8', () => {
  it('are listed under an escaped name that opens the file, follows as a symlink target, and valid UTF-8 names are untouched', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    const src = join(b, 'src');
    await mkdir(src);
    const { writeFile, symlink } = await import('node:fs/promises');
    const bad = Buffer.concat([Buffer.from(`${src}/bad`), Buffer.from([0xff, 0xfe]), Buffer.from('.txt')]);
    await writeFile(bad, 'not utf-8 name\n');
    await writeFile(join(src, 'café'), 'utf-8 name\n');
    await symlink(Buffer.concat([Buffer.from('bad'), Buffer.from([0xff, 0xfe]), Buffer.from('.txt')]), join(src, 'link'));
    const s = await t.store();
    const p = (await s.ingest(src, { name: 'names' })).path;
    const m = await t.mount(s);
    // libfuse 3 (our addon) passes names as bytes: a name is served exactly as stored. Through
    // fuse-native (UTF-8 strings) such a name is shown escaped, each high byte as U+F780-U+F7FF.
    const raw = m.status().backend === 'fuse3';
    const py = raw
      ? [
        'import os, sys',
        'd = sys.argv[1].encode()',
        'print(sorted(os.listdir(d)) == sorted([b"bad\\xff\\xfe.txt", "caf\\u00e9".encode(), b"link"]))',
        'print(open(os.path.join(d, b"bad\\xff\\xfe.txt"), "rb").read() == b"not utf-8 name\\n")',
        'print(open(os.path.join(d, "café".encode()), "rb").read() == b"utf-8 name\\n")',
        'print(os.readlink(os.path.join(d, b"link")) == b"bad\\xff\\xfe.txt")',
        'print(open(os.path.join(d, b"link"), "rb").read() == b"not utf-8 name\\n")',
        'print(not os.path.exists(os.path.join(d, "bad\\uf7ff\\uf7fe.txt".encode())))',
      ].join('\n')
      : [
      'import os, sys',
      'd = sys.argv[1].encode()',
      'print(sorted(n.decode() for n in os.listdir(d)) == sorted(["bad\\uf7ff\\uf7fe.txt", "caf\\u00e9", "link"]))',
      'print(open(os.path.join(d, "bad\\uf7ff\\uf7fe.txt".encode()), "rb").read() == b"not utf-8 name\\n")',
      'print(open(os.path.join(d, "café".encode()), "rb").read() == b"utf-8 name\\n")',
      'print(os.readlink(os.path.join(d, b"link")) == "bad\\uf7ff\\uf7fe.txt".encode())',
      'print(open(os.path.join(d, b"link"), "rb").read() == b"not utf-8 name\\n")',
      // The escaped form of a valid UTF-8 name is not a second name for it.
      'print(not os.path.exists(os.path.join(d, "caf\\uf7c3\\uf7a9".encode())))',
    ].join('\n');
    const r = await sh(`python3 -c '${py}' ${b}/mnt/store/${p}`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['True', 'True', 'True', 'True', 'True', 'True']);
  });
});

describe('registered listings (the binding answers LOOKUP and READDIRPLUS of immutable directories)', () => {
  it('stay bounded (MIQ_MOUNT_NAMES): a walk of more entries than the bound, twice, with the kernel forgetting between, reads every byte right', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    const src = join(b, 'src');
    for (let d = 0; d < 40; d++) {
      await mkdir(join(src, `d${d}`, 'sub'), { recursive: true });
      for (let f = 0; f < 12; f++) await writeFile(join(src, `d${d}`, f % 3 ? `f${f}` : `sub/f${f}`), `dir ${d} file ${f}\n`.repeat(f + 1));
    }
    const s = await openStore(join(b, 'store'));
    const p = (await s.ingest(src, { name: 'many' })).path;
    await s.close();
    let mm = await t.miqMount({ MIQ_MOUNT_NAMES: '60', MIQ_DEBUG_COUNTS: '1' });
    const walk = `cd DIR && find . | sort | md5sum && find . -type f | sort | xargs cat | md5sum`;
    const want = (await sh(walk.replace('DIR', src))).stdout;
    assert.equal((await sh(walk.replace('DIR', `${b}/mnt/store/${p}`))).stdout, want);
    // The kernel forgets its nodes (FORGETs reach the mount), then everything is walked again.
    await sh('sync; echo 2 > /proc/sys/vm/drop_caches');
    assert.equal((await sh(walk.replace('DIR', `${b}/mnt/store/${p}`))).stdout, want);
    assert.equal((await sh(`cat ${b}/mnt/store/${p}/d7/sub/f3`)).stdout, 'dir 7 file 3\n'.repeat(4));
    const { line, c } = await countsAtExit(mm);
    assert.ok(c.unnamed! > 0, `the bound dropped registrations: ${line}`);
    assert.ok(c.readdirServed! > 0 && c.lookupServed! >= 0, line);
    // At most the bound, plus the one directory just registered (12 entries at most), plus the
    // root's listing (3: registered before `mounted`, never dropped).
    assert.ok(c.names! <= 60 + 12 + 3, line);
  });

  it('file nodes are the binding\'s: a walk makes no JS object per file, the same content is one node in every directory, the kernel\'s forgets let them go there', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    const src = join(b, 'src');
    // 30 directories, each with the same two files (one node each: content and exec bit) and
    // ten of its own: 302 file nodes.
    for (let d = 0; d < 30; d++) {
      await mkdir(join(src, `d${d}`), { recursive: true });
      await writeFile(join(src, `d${d}`, 'same'), 'shared content\n');
      await writeFile(join(src, `d${d}`, 'tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
      for (let f = 0; f < 10; f++) await writeFile(join(src, `d${d}`, `f${f}`), `dir ${d} file ${f}\n`);
    }
    const s = await openStore(join(b, 'store'));
    const p = (await s.ingest(src, { name: 'cnodes' })).path;
    await s.close();
    const nodesLine = (mm: MiqMount): Record<string, number> => {
      const l = mm.stderr().split('\n').find((x) => x.startsWith('miq mount: nodes '));
      assert.ok(l, mm.stderr());
      return JSON.parse(l.slice('miq mount: nodes '.length)) as Record<string, number>;
    };
    // A walk (find, du), then the kernel forgets (FORGETs reach the mount): the registrations
    // past the bound are gone, so are the file nodes only they and the kernel held.
    let mm = await t.miqMount({ MIQ_MOUNT_NAMES: '100', MIQ_DEBUG_COUNTS: '1' });
    const root = `${b}/mnt/store/${p}`;
    assert.equal((await sh(`cd ${root} && find . | sort`)).stdout, (await sh(`cd ${src} && find . | sort`)).stdout);
    assert.equal((await sh(`cd ${root} && find . -type f | wc -l && du -s --apparent-size -B1 . | cut -f1`)).code, 0);
    await sh('sync; echo 2 > /proc/sys/vm/drop_caches');
    await new Promise((r) => setTimeout(r, 500));
    let { line, c } = await countsAtExit(mm);
    const n1 = nodesLine(mm);
    assert.equal(n1.fileObjects, 0, `JS made objects for walked files: ${JSON.stringify(n1)}`);
    assert.ok(c.fileMade! >= 302, line);
    assert.ok(c.fileFreed! > 0 && n1.fileNodes! < c.fileMade!, `forgotten file nodes were not let go: ${JSON.stringify(n1)} ${line}`);
    // Same content, same node (so one page cache) in every directory; reads and ids right.
    mm = await t.miqMount({ MIQ_DEBUG_COUNTS: '1' });
    const inos = (await sh(`cd ${root} && stat -c %i d0/same d17/same d29/same d0/tool d17/tool d0/f1`)).stdout.trim().split('\n').map(Number);
    assert.equal(new Set(inos.slice(0, 3)).size, 1, `${inos}`);
    assert.equal(new Set(inos.slice(3, 5)).size, 1, `${inos}`);
    assert.equal(new Set([inos[0], inos[3], inos[5]]).size, 3, `${inos}`);
    assert.ok(inos.every((i) => i >= 2 ** 40), `file nodes are the binding's: ${inos}`);
    assert.equal((await sh(`cd ${root} && cat d3/same d12/tool d5/f2 && ./d8/tool`)).stdout, 'shared content\n#!/bin/sh\necho tool\ndir 5 file 2\ntool\n');
    const x = await sh(`cd ${root} && b3sum --no-names d4/same && getfattr --only-values -n user.miq.id d4/same && echo && getfattr --only-values -n user.miq.path d9/same`);
    const [sum, xid, xpath] = x.stdout.trim().split('\n');
    assert.equal(xid, sum, x.stdout);
    assert.equal(xpath, p, x.stdout);
    ({ line, c } = await countsAtExit(mm));
    assert.ok(c.fileMade! >= 3, line);
  });

  it('a directory looked up by name has its own listing registered, not its subdirectories\' (a program start, not a walk)', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    const src = join(b, 'src');
    for (const d of ['a', 'b', 'c']) {
      await mkdir(join(src, 'top', d), { recursive: true });
      for (let f = 0; f < 10; f++) await writeFile(join(src, 'top', d, `f${f}`), `${d} ${f}\n`);
    }
    await writeFile(join(src, 'top', 'f0'), 'zero\n');
    await writeFile(join(src, 'top', 'f1'), 'one\n');
    const s = await openStore(join(b, 'store'));
    const p = (await s.ingest(src, { name: 'named' })).path;
    await s.close();
    let mm = await t.miqMount({ MIQ_DEBUG_COUNTS: '1' });
    const top = `${b}/mnt/store/${p}/top`;
    assert.equal((await sh(`cat ${top}/f0`)).stdout, 'zero\n');
    // top was registered when f0's lookup was answered (by JS, or by the binding, which means
    // it was registered before): f1's lookup is the binding's.
    assert.equal((await sh(`cat ${top}/f1`)).stdout, 'one\n');
    assert.equal((await sh(`cat ${top}/b/f3`)).stdout, 'b 3\n');
    const { line, c } = await countsAtExit(mm);
    assert.ok(c.lookupServed! >= 1, line);
    // The store path's root (1 entry), top (5) and b (10, looked up by name), and the mount's
    // root (3): a and c (20) were never registered ahead.
    assert.ok(c.names! <= 16 + 3, line);
  });

  it('in a walk, a chain of narrow directories (at most two subdirectories each) is registered ahead to its end: lookups down it never reach JS', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    const src = join(b, 'src');
    // ws: 70 directories, so that the mount has listed more than WALK_LISTINGS (64) and
    // registers ahead as for a walk; top/chain/c1/…/c8: one subdirectory and one file each.
    for (let d = 0; d < 70; d++) {
      await mkdir(join(src, 'ws', `w${d}`), { recursive: true });
      await writeFile(join(src, 'ws', `w${d}`, 'f'), `w${d}\n`);
    }
    let dir = join(src, 'top', 'chain');
    for (let k = 1; k <= 8; k++) {
      dir = join(dir, `c${k}`);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'x'), `level ${k}\n`);
    }
    const s = await openStore(join(b, 'store'));
    const p = (await s.ingest(src, { name: 'narrow' })).path;
    await s.close();
    const root = `${b}/mnt/store/${p}`;
    // Anyone's drop_caches on this machine makes the kernel forget the nodes (new ones, looked
    // up in JS), and a loaded machine (the suite's other files) may take longer than the wait to
    // load the chain's trees level by level: a failed try is made again on a new mount, waiting
    // longer (without narrow levels every try fails: c4…c8 are never registered ahead).
    for (const wait of [1000, 3000, 8000]) {
      const mm = await t.miqMount({ MIQ_DEBUG_COUNTS: '1', MIQ_DEBUG_LATENCY: '1', MIQ_MOUNT_RECALL: '0' });
      assert.equal((await sh(`find ${root}/ws -type f | wc -l`)).stdout.trim(), '70');
      // top's listing registers levels ahead: with chain and c1…c8 narrow, every one of them
      // (three levels, as before, left c4…c8 to the lookups below: the binding answered the
      // lookup of c3, whose listing JS then registered only after the lookup of c4 in it had
      // reached JS, and so on down).
      assert.equal((await sh(`ls ${root}/top`)).stdout, 'chain\n');
      await new Promise((r) => setTimeout(r, wait));
      assert.equal((await sh(`cat ${root}/top/chain/c1/c2/c3/c4/c5/c6/c7/c8/x`)).stdout, 'level 8\n');
      const toJs = mm.stderr().split('\n').filter((l) => /lat op=1 .* a=(c\d|x) /.test(l));
      const { line, c } = await countsAtExit(mm);
      if (toJs.length > 0 && wait < 8000) continue;
      assert.deepEqual(toJs, [], 'lookups down the chain reached JS');
      assert.ok(c.lookupServed! >= 9, line);
      break;
    }
  });

  it('the current generation\'s top trees are loaded before the mount reports mounted; a damaged one does not stop it', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    await fixtureTree(join(b, 'src'), 4);
    const s = await openStore(join(b, 'store'));
    const p = (await s.ingest(join(b, 'src'), { name: 'warm' })).path;
    await P.switchProfile(s, 'system', [{ path: p }]);
    const gen = (await P.current(s, 'system'))!;
    // The trees 0, 1 and 2 levels below the generation's root (MIQ_MOUNT_WARM_DEPTH's default).
    const levels: Id[][] = [[gen.tree]];
    for (let d = 1; d <= 3; d++) {
      const next: Id[] = [];
      for (const tr of levels[d - 1]!) for (const e of (await s.getTree(tr))!.entries) if (e.kind === 'dir') next.push(e.id! as Id);
      levels.push(next);
    }
    const want = levels[0]!.length + levels[1]!.length + levels[2]!.length;
    assert.ok(levels[2]!.length > 0 && levels[3]!.length > 0, 'the fixture has trees 2 and 3 levels down');
    const share = (await s.getTree(gen.tree))!.entries.find((e) => e.name.toString() === 'share')!;
    const victim = (await s.getTree(share.id! as Id))!.entries.find((e) => e.name.toString() === 'doc')!;
    await s.close();
    const loaded = (err: string): number => Number(/miq mount: (-?\d+) trees of system loaded/.exec(err)?.[1] ?? NaN);
    const env = { MIQ_DEBUG_COUNTS: '1' };
    let mm = await t.miqMount(env);
    assert.equal(loaded(mm.stderr()), want, mm.stderr());
    assert.equal((await sh(`cat ${b}/mnt/usr/share/doc/README`)).stdout, 'readme 4\n');
    assert.equal(await mm.stop(), 0);
    mm = await t.miqMount({ ...env, MIQ_MOUNT_WARM_DEPTH: '-1' });
    assert.ok(Number.isNaN(loaded(mm.stderr())), mm.stderr());
    assert.equal(await mm.stop(), 0);
    // share/doc (2 levels down) damaged in the index: the mount starts with the others loaded,
    // and the damaged directory is EIO when used, as it would be without the loading.
    const { ClassicLevel } = await import('classic-level');
    const { kTree } = await import('../store/keys.js');
    const db = new ClassicLevel<string, Buffer>(join(b, 'store', 'db'), { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    const v = await db.get(kTree(victim.id! as Id));
    v![v!.indexOf('README')] ^= 1;
    await db.put(kTree(victim.id! as Id), v!);
    await db.close();
    mm = await t.miqMount(env);
    assert.equal(loaded(mm.stderr()), want - 1, mm.stderr());
    const r = await sh(`LC_ALL=C ls ${b}/mnt/usr/share/doc; echo rc=$?; cat ${b}/mnt/usr/bin/hello`);
    assert.match(r.stderr, /Input\/output error/);
    assert.equal(r.stdout, 'rc=2\n#!/bin/sh\necho hello 4\n', r.stderr);
    assert.equal(await mm.stop(), 0);
  });

  it('the listings of the loaded trees below usr are registered before the mount reports mounted: lookups and their symlinks\' READLINKs there never reach JS', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    await fixtureTree(join(b, 'src'), 5);
    const s = await openStore(join(b, 'store'));
    const p = (await s.ingest(join(b, 'src'), { name: 'prereg' })).path;
    await fixtureTree(join(b, 'src2'), 6);
    const p2 = (await s.ingest(join(b, 'src2'), { name: 'prereg2' })).path;
    await P.switchProfile(s, 'system', [{ path: p }]);
    await s.close();
    let mm = await t.miqMount({ MIQ_DEBUG_COUNTS: '1', MIQ_DEBUG_LATENCY: '1' });
    // usr's listing (abs-link, bin, empty, share), its subdirectories' (bin 2, empty 0, share 2:
    // 1 level) and theirs (share/doc 3).
    assert.match(mm.stderr(), /miq mount: 11 names below usr registered/, mm.stderr());
    const u = `${b}/mnt/usr`;
    // usr is looked up in the root's listing, share in usr's, doc in share's and README in
    // doc's: the binding's, from the first lookup on (on a mount without this, usr was never
    // registered and doc's listing only after the kernel's LOOKUP of doc, so README's reached JS).
    // bin/readme-link's target is the binding's too (a symlink's record carries its target).
    assert.equal((await sh(`cat ${u}/share/doc/README; cat ${u}/bin/readme-link; readlink ${u}/bin/readme-link`)).stdout, 'readme 5\nreadme 5\n../share/doc/README\n');
    assert.equal((await sh(`LC_ALL=C ls ${u}/share/doc; ls ${u}/bin; stat -c %s ${u}/share/big.bin`)).stdout,
      `README\ndeep\nempty\nhello\nreadme-link\n${3 * 1024 * 1024 + 12345}\n`);
    // A lookup that always reaches JS (a store path that does not exist): once its log line is
    // in, those of the lookups before it would be too, had JS answered them.
    const logged = (what: string): boolean => mm!.stderr().includes(` a=${what} `);
    assert.equal((await sh(`test -e ${b}/mnt/store/zz-marker`)).code, 1);
    for (const end = Date.now() + 10_000; !logged('zz-marker');) {
      assert.ok(Date.now() < end, `the marker lookup was not logged: ${mm.stderr()}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const name of ['usr', 'share', 'bin', 'doc', 'README', 'readme-link', 'big.bin']) assert.ok(!logged(name), `${name} reached JS: ${mm.stderr()}`);
    assert.doesNotMatch(mm.stderr(), /lat op=4 /, 'a READLINK reached JS');
    // The root's entries and the attributes of / and usr are the kernel's for a day (they never
    // change): past the 1 s they had, usr is not looked up again nor / or usr stat-ed in JS.
    // Anyone's drop_caches on this machine also drops the kernel's dentries (a new LOOKUP, not
    // this mount's doing): a try during which one happened is made again.
    const count = (re: RegExp): number => mm!.stderr().match(re)?.length ?? 0;
    const dropped = async (): Promise<string> => (await readFile('/proc/vmstat', 'utf8')).match(/^drop_slab \d+$/m)?.[0] ?? '';
    for (let attempt = 0; ; attempt++) {
      const d0 = await dropped();
      const usrLooks = count(/ a=usr /g);
      const attrs0 = count(/lat op=3 ino=[12] /g);
      await new Promise((r) => setTimeout(r, 1300)); // past the old 1 s timeouts
      assert.equal((await sh(`stat -c %F ${b}/mnt ${u} >/dev/null && ls ${u}/bin && test ! -e ${b}/mnt/store/zz-again${attempt}`)).stdout, 'hello\nreadme-link\n');
      for (const end = Date.now() + 10_000; !logged(`zz-again${attempt}`);) {
        assert.ok(Date.now() < end, `the marker lookup was not logged: ${mm.stderr()}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      if ((await dropped()) !== d0 && attempt < 4) continue;
      assert.equal(count(/ a=usr /g), usrLooks, `usr was looked up again: ${mm.stderr()}`);
      assert.equal(count(/lat op=3 ino=[12] /g), attrs0, `a GETATTR of / or usr reached JS: ${mm.stderr()}`);
      break;
    }
    // Deeper than the loaded levels: as before (JS, then registered).
    assert.equal((await sh(`cat ${u}/share/doc/deep/er/bl\u00e5b\u00e6r`)).stdout, 'berries\n');
    // A switch (through the mount's socket): usr is registered again from the new generation
    // before the kernel's entries are dropped, so what changed is the new one's at once.
    const sw = await miqAsync(['--store', join(b, 'store'), 'profile', 'switch', 'system', p2, '--json']);
    assert.equal(sw.code, 0, sw.stderr);
    assert.equal((await sh(`cat ${u}/share/doc/README ${u}/bin/hello; ls ${u}`)).stdout, 'readme 6\n#!/bin/sh\necho hello 6\nabs-link\nbin\nempty\nshare\n');
    const { line, c } = await countsAtExit(mm);
    assert.ok(c.lookupServed! >= 4 && c.readlinkServed! >= 1, line);
  });

  it('the root\'s attributes and entries, and the directory /etc/localtime resolves into, are the binding\'s from before `mounted`: after a cache drop, a stat of the root, the lookup of usr and of a file there reach no JS', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    // The directory /etc/localtime names (usr/share/zoneinfo/Etc on most systems), three levels
    // below usr: deeper than what is registered for every directory (2).
    const lt = resolve('/etc', await readlink('/etc/localtime').catch(() => '/usr/share/zoneinfo/Etc/UTC')).split('/').filter(Boolean);
    if (lt[0] !== 'usr' || lt.length < 5) return void tc.skip(`/etc/localtime is not 3 levels below /usr: ${lt.join('/')}`);
    const src = join(b, 'src');
    const zone = join(src, ...lt.slice(1, -1));
    await mkdir(zone, { recursive: true });
    await writeFile(join(zone, lt.at(-1)!), 'TZif zone\n');
    await writeFile(join(zone, 'Other'), 'other zone\n');
    await writeFile(join(src, 'README'), 'top\n');
    const s = await t.store();
    const p = (await s.ingest(src, { name: 'rootreg' })).path;
    await P.switchProfile(s, 'system', [{ path: p }]);
    await t.closeStore();
    const mm = await t.miqMount({ MIQ_DEBUG_COUNTS: '1', MIQ_DEBUG_LATENCY: '1', MIQ_MOUNT_RECALL: '0' });
    assert.match(mm.stderr(), new RegExp(`directories on the way to ${lt.slice(0, -1).join('/')} registered`), mm.stderr());
    const u = `${b}/mnt/usr`, zf = `${u}/${lt.slice(1).join('/')}`;
    // The kernel forgets the root's children (and usr's, and the zone directory's) in the drop.
    await sh('sync; echo 2 > /proc/sys/vm/drop_caches');
    const r = await sh(`stat -c '%F %a %s %i' ${b}/mnt && cat ${zf} && cat ${u}/README && ls ${b}/mnt && test ! -e ${b}/mnt/nope && stat -c %F ${b}/mnt/store ${b}/mnt/profiles`);
    assert.equal(r.stdout, `directory 555 4096 1\nTZif zone\ntop\nprofiles\nstore\nusr\ndirectory\ndirectory\n`, r.stderr);
    // A lookup that always reaches JS (a store path that does not exist): once its line is in,
    // those of the requests before it would be too, had JS answered them.
    const logged = (what: string): boolean => mm.stderr().includes(` a=${what} `);
    assert.equal((await sh(`test -e ${b}/mnt/store/zz-marker`)).code, 1);
    for (const end = Date.now() + 10_000; !logged('zz-marker');) {
      assert.ok(Date.now() < end, `the marker lookup was not logged: ${mm.stderr()}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const name of ['usr', lt.at(-1)!, 'README', 'nope', 'store', 'profiles']) assert.ok(!logged(name), `${name} reached JS: ${mm.stderr()}`);
    assert.doesNotMatch(mm.stderr(), /lat op=3 ino=1 /, `the root's GETATTR reached JS: ${mm.stderr()}`);
    const { line, c } = await countsAtExit(mm);
    assert.ok(c.attrServed! >= 1, line);
    // usr, store, profiles and the zone's file at least; nope, a miss the kernel keeps.
    assert.ok(c.lookupServed! >= 4 && c.missServed! >= 1, line);
  });

  it('below usr/lib five levels are registered before `mounted` and the small files there are mapped: a module\'s lookup and READ never reach JS nor wait for a map; elsewhere the depth is as before; a damaged chunk is EIO', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    const src = join(b, 'src');
    const pyc = Buffer.from('a module compiled, read at import\n'.repeat(40));
    await mkdir(join(src, 'lib/py/pkg/__pycache__/deeper/deepest'), { recursive: true });
    await mkdir(join(src, 'share/a/b'), { recursive: true });
    await writeFile(join(src, 'lib/py/pkg/__pycache__/mod.pyc'), pyc);
    await writeFile(join(src, 'lib/py/pkg/__pycache__/deeper/deepest/x'), 'level six\n');
    await writeFile(join(src, 'share/a/b/c'), 'level three, not lib\n');
    const s = await t.store();
    const p = (await s.ingest(src, { name: 'libdeep' })).path;
    await P.switchProfile(s, 'system', [{ path: p }]);
    // Where mod.pyc's one chunk lies (a small file: in a shared zstd frame), for the damage below.
    const local = s as unknown as { chunks: { locate(ids: Id[]): Promise<({ pack: number; offset: number } | undefined)[]>; packPath(n: number): string } };
    const loc = (await local.chunks.locate([idOf(pyc)]))[0]!;
    const packPath = local.chunks.packPath(loc.pack);
    await t.closeStore();
    const u = `${b}/mnt/usr`;
    const env = { MIQ_DEBUG_COUNTS: '1', MIQ_DEBUG_LATENCY: '1', MIQ_MOUNT_RECALL: '0' };
    let mm = await t.miqMount(env);
    assert.match(mm.stderr(), /trees of system's usr\/lib loaded/, mm.stderr());
    // A lookup that always reaches JS: once its line is in, those of the requests before it would
    // be too, had JS answered them.
    const logged = (what: string): boolean => mm.stderr().includes(` a=${what} `);
    const marker = async (name: string): Promise<void> => {
      assert.equal((await sh(`test -e ${b}/mnt/store/${name}`)).code, 1);
      for (const end = Date.now() + 10_000; !logged(name);) {
        assert.ok(Date.now() < end, `the marker lookup was not logged: ${mm.stderr()}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    // usr's listing (lib, share: 2), lib's and share's (1 each), py's and share/a's (1 each), and
    // below lib only pkg's (1), __pycache__'s (mod.pyc, deeper: 2) and deeper's (deepest: 1); not
    // deepest's (level six) nor share/a/b's (level three outside lib). Without the lib levels: 6.
    assert.match(mm.stderr(), /miq mount: 10 names below usr registered/, mm.stderr());
    assert.equal((await sh(`cat ${u}/lib/py/pkg/__pycache__/deeper/deepest/x ${u}/share/a/b/c`)).stdout, 'level six\nlevel three, not lib\n');
    await mm.stop();
    mm = await t.miqMount(env);
    assert.equal((await sh(`cat ${u}/lib/py/pkg/__pycache__/mod.pyc`)).stdout, pyc.toString());
    await marker('zz-marker');
    for (const name of ['py', 'pkg', '__pycache__', 'mod.pyc']) assert.ok(!logged(name), `${name} reached JS: ${mm.stderr()}`);
    assert.doesNotMatch(mm.stderr(), /^lat op=5 /m, 'a READ reached JS');
    const { line, c } = await countsAtExit(mm);
    assert.equal(c.mapHeld, 0, `a READ waited for its map: ${line}`);
    assert.ok(c.mapServed! >= 1, line);
    // mod.pyc's chunk damaged in its pack (its frame's header: the frame no longer decodes): its
    // map is at hand before `mounted`, its bytes still are checked.
    await sh(`printf '\\x55' | dd of=${packPath} bs=1 seek=${loc.offset} conv=notrunc status=none`);
    mm = await t.miqMount(env);
    const r = await sh(`cat ${u}/lib/py/pkg/__pycache__/mod.pyc > /dev/null`);
    assert.notEqual(r.code, 0, 'a damaged chunk was served');
    assert.match(r.stderr, /Input\/output error/);
  });

  it('the records and chunk locations of the multi-chunk files in the registered directories are loaded before `mounted`; their bytes are read through them, a damaged chunk is EIO', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    await fixtureTree(join(b, 'src'), 7);
    const s = await t.store();
    const p = (await s.ingest(join(b, 'src'), { name: 'preload' })).path;
    const rec = await s.getStorePath(p);
    const share = (await s.getTree(rec!.tree))!.entries.find((e) => e.name.toString() === 'share')!;
    const big = (await s.getTree(share.id!))!.entries.find((e) => e.name.toString() === 'big.bin')!;
    const file = (await s.getFile(big.id!))!;
    assert.ok(file.chunks.length > 3, 'fixture: big.bin is several chunks');
    await P.switchProfile(s, 'system', [{ path: p }]);
    await t.closeStore();
    const want = createHash('sha256').update(await readFile(join(b, 'src/share/big.bin'))).digest('hex');
    const f = `${b}/mnt/usr/share/big.bin`;
    const sum = async (): Promise<string> => (await sh(`sha256sum < ${f}`)).stdout.split(' ')[0]!;
    // big.bin (in share, a registered directory) is the fixture's one file over a chunk's minimum
    // size there; on a mount without this no such line is logged.
    let mm = await t.miqMount({ MIQ_DEBUG_COUNTS: '1', MIQ_MOUNT_RECALL: '0' });
    assert.match(mm.stderr(), /miq mount: 1 file records and their chunk locations loaded in/, mm.stderr());
    assert.equal(await sum(), want);
    await mm.stop();
    // A damaged chunk of it: the record and location are at hand, its bytes still are checked.
    flipChunkByte(join(b, 'store'), file.chunks[2]!.id);
    mm = await t.miqMount({ MIQ_DEBUG_COUNTS: '1', MIQ_MOUNT_RECALL: '0' });
    assert.match(mm.stderr(), /miq mount: 1 file records and their chunk locations loaded in/, mm.stderr());
    const r = await sh(`cat ${f} > /dev/null`);
    assert.notEqual(r.code, 0, 'a damaged chunk was served');
    assert.match(r.stderr, /Input\/output error/);
  });

  it('the ELF interpreter of usr/bin\'s executables is read whole before `mounted` (its path followed through a symlink) and its READs never reach JS', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    const src = join(b, 'src');
    await fixtureTree(src, 8);
    // A 64-bit ELF head whose one program header is PT_INTERP /lib64/ld-test.so.1; lib64's entry
    // is a relative symlink to lib's file (a merged /usr: /lib64 is usr/lib64).
    const interp = Buffer.from('/lib64/ld-test.so.1\0');
    const elf = Buffer.alloc(64 + 56 + interp.length + 4000);
    elf.writeUInt32BE(0x7f454c46, 0);
    elf[4] = 2;
    elf[5] = 1;
    elf.writeBigUInt64LE(64n, 0x20);
    elf.writeUInt16LE(56, 0x36);
    elf.writeUInt16LE(1, 0x38);
    elf.writeUInt32LE(3, 64);
    elf.writeBigUInt64LE(120n, 64 + 8);
    elf.writeBigUInt64LE(BigInt(interp.length), 64 + 32);
    interp.copy(elf, 120);
    await writeFile(join(src, 'bin/prog'), elf, { mode: 0o755 });
    const ld = Buffer.alloc(100 * 1024);
    for (let i = 0; i < ld.length; i++) ld[i] = (i * 7919 + (i >> 9)) & 0xff;
    await mkdir(join(src, 'lib'), { recursive: true });
    await mkdir(join(src, 'lib64'), { recursive: true });
    await writeFile(join(src, 'lib/ld-test.so.1'), ld);
    await sh(`ln -s ../lib/ld-test.so.1 ${src}/lib64/ld-test.so.1`);
    const s = await t.store();
    const p = (await s.ingest(src, { name: 'interp' })).path;
    await P.switchProfile(s, 'system', [{ path: p }]);
    await t.closeStore();
    const mm = await t.miqMount({ MIQ_DEBUG_COUNTS: '1', MIQ_DEBUG_LATENCY: '1', MIQ_MOUNT_RECALL: '0' });
    assert.match(mm.stderr(), /miq mount: the ELF interpreter \/lib64\/ld-test\.so\.1 \(102400 bytes\) read in/, mm.stderr());
    const sum = (await sh(`sha256sum < ${b}/mnt/usr/lib64/ld-test.so.1`)).stdout.split(' ')[0];
    assert.equal(sum, createHash('sha256').update(ld).digest('hex'));
    // A READ answered in JS is logged before its reply: none was (the binding answered them from
    // the bytes offered at the lookup, or the page cache from the push).
    assert.doesNotMatch(mm.stderr(), /^lat op=5 /m, mm.stderr());
  });

  it('a name missing from a registered directory is answered by the binding: ENOENT, without a round trip to JS', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    const src = join(b, 'src');
    await mkdir(join(src, 'top'), { recursive: true });
    for (let f = 0; f < 5; f++) await writeFile(join(src, 'top', `f${f}`), `${f}\n`);
    const s = await openStore(join(b, 'store'));
    const p = (await s.ingest(src, { name: 'misses' })).path;
    await s.close();
    // MIQ_DEBUG_LATENCY: every request answered from JS is logged (`lat op=1 … a=NAME` for a
    // lookup) before its reply is sent, so the log says which lookups reached JS.
    let mm = await t.miqMount({ MIQ_DEBUG_COUNTS: '1', MIQ_DEBUG_LATENCY: '1' });
    const top = `${b}/mnt/store/${p}/top`;
    // The lookup of top registers its listing (once its tree is loaded, in a later turn).
    assert.equal((await sh(`cat ${top}/f0`)).stdout, '0\n');
    const logged = (what: string): boolean => mm!.stderr().includes(` a=${what} `);
    let inC = 0;
    for (let k = 0; k < 50 && inC === 0; k++) {
      // A new missing name each time (the kernel keeps a miss), then a lookup that always
      // reaches JS (a store path that does not exist): once its log line is in, the miss's
      // would be before it had JS answered it.
      assert.equal((await sh(`test -e ${top}/nope${k}`)).code, 1);
      assert.equal((await sh(`test -e ${b}/mnt/store/zz-marker${k}`)).code, 1);
      for (const end = Date.now() + 10_000; !logged(`zz-marker${k}`);) {
        assert.ok(Date.now() < end, `the marker lookup was not logged: ${mm.stderr()}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      if (!logged(`nope${k}`)) inC++;
    }
    assert.equal(inC, 1, 'a miss in a registered directory still reached JS');
    // Names that are there still resolve after the misses.
    assert.equal((await sh(`cat ${top}/f4`)).stdout, '4\n');
    const { line, c } = await countsAtExit(mm);
    assert.ok(c.missServed! >= 1, line);
  });

  it('a directory of a few small files is read whole from its first file looked up: the others\' READs never reach JS', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    const src = join(b, 'src');
    await mkdir(join(src, 'pkg'), { recursive: true });
    const body = (f: number): string => `module ${f}\n`.repeat(40 + f);
    for (let f = 0; f < 5; f++) await writeFile(join(src, 'pkg', `m${f}.pyc`), body(f));
    const s = await openStore(join(b, 'store'));
    const p = (await s.ingest(src, { name: 'smalldir' })).path;
    await s.close();
    // The directory batch itself: with small files' maps (MIQ_MOUNT_MAPS=1) a start reads each
    // file as it asks for it instead (fuse-needs §37).
    const mm = await t.miqMount({ MIQ_DEBUG_COUNTS: '1', MIQ_DEBUG_LATENCY: '1', MIQ_MOUNT_MAPS: 'large' });
    const pkg = `${b}/mnt/store/${p}/pkg`;
    assert.equal((await sh(`cat ${pkg}/m0.pyc`)).stdout, body(0));
    // The other four are offered to the binding as they arrive (before this change: only from
    // the third file looked up on, so never here).
    const offered = (): number => mm.stderr().match(/^offered ino=/gm)?.length ?? 0;
    for (const end = Date.now() + 10_000; offered() < 4;) {
      assert.ok(Date.now() < end, `the directory's other files were not read ahead: ${mm.stderr()}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const reads = (): number => mm.stderr().match(/^lat op=5 /gm)?.length ?? 0;
    const before = reads();
    assert.equal((await sh(`cat ${pkg}/m1.pyc ${pkg}/m2.pyc ${pkg}/m3.pyc ${pkg}/m4.pyc`)).stdout, body(1) + body(2) + body(3) + body(4));
    // Every READ answered in JS is logged before its reply, so any of these would be in by now.
    assert.equal(reads(), before, mm.stderr());
    const { line, c } = await countsAtExit(mm);
    assert.ok(c.readServed! >= 4 || c.pushed! >= 1, line);
  });

  it('a directory\'s small files read whole on the pool are offered to the binding by the decode threads (their bytes never go through JS), every byte right', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    const src = join(b, 'src');
    await mkdir(join(src, 'pkg'), { recursive: true });
    // Incompressible: chunks of their own (not a shared frame that the first file's read decodes
    // on the serving thread, whose neighbours are then sliced there too). More files than a
    // small directory's: the batch starts at the third lookup, when the directory's listing (its
    // files' nodes) is registered.
    const N = 140;
    const body = (k: number): Buffer => Buffer.concat(Array.from({ length: 30 + (k % 9) }, (_, i) => createHash('sha256').update(`${k}/${i}`).digest()));
    const name = (k: number): string => `m${String(k).padStart(3, '0')}`;
    for (let k = 0; k < N; k++) await writeFile(join(src, 'pkg', name(k)), body(k));
    const s = await openStore(join(b, 'store'));
    const p = (await s.ingest(src, { name: 'threadoffer' })).path;
    await s.close();
    const mm = await t.miqMount({ MIQ_DEBUG_COUNTS: '1', MIQ_DEBUG_LATENCY: '1', MIQ_MOUNT_MAPS: 'large' });
    const pkg = `${b}/mnt/store/${p}/pkg`;
    await sh(`cat ${pkg}/${name(0)} ${pkg}/${name(1)} ${pkg}/${name(2)} > /dev/null`);
    const offered = (): number => mm.stderr().match(/^offered ino=/gm)?.length ?? 0;
    for (const end = Date.now() + 10_000; offered() < N - 3;) {
      assert.ok(Date.now() < end, `the directory's other files were not offered: ${mm.stderr()}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const got = await sh(`cat ${Array.from({ length: N }, (_, k) => `${pkg}/${name(k)}`).join(' ')} | sha256sum`);
    assert.equal(got.stdout.split(' ')[0], createHash('sha256').update(Buffer.concat(Array.from({ length: N }, (_, k) => body(k)))).digest('hex'));
    const { line, c } = await countsAtExit(mm);
    assert.ok(c.offeredByThreads! >= N - 3, line);
  });
});

describe('the recall list (what the last start read, fs/recall.ts)', () => {
  it('a mount remembers the files it read; the next mount reads them before `mounted` and the binding answers their READs; MIQ_MOUNT_RECALL=0 and a damaged list turn it off', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    await fixtureTree(join(b, 'src'), 4);
    const s = await t.store();
    const p = (await s.ingest(join(b, 'src'), { name: 'recall' })).path;
    const rec = await s.getStorePath(p);
    const share = (await s.getTree(rec!.tree))!.entries.find((e) => e.name.toString() === 'share')!;
    const big = (await s.getTree(share.id!))!.entries.find((e) => e.name.toString() === 'big.bin')!;
    const file = (await s.getFile(big.id!))!;
    assert.ok(file.chunks.length > 3 && file.size <= 8 << 20, 'fixture is a multi-chunk file under MIQ_MOUNT_WHOLE_AHEAD');
    await P.switchProfile(s, 'system', [{ path: p }]);
    await t.closeStore();
    const want = await readFile(join(b, 'src/share/big.bin'));
    const f = `${b}/mnt/usr/share/big.bin`;
    // share/doc/deep/er: below the two levels of usr registered before `mounted` (preregister):
    // on a mount without the list, deep's and er's listings are registered only once they were
    // looked up (in a later turn, after their trees are read), and a process looking the path
    // up is mostly faster: er's lookup and the file's reach JS.
    const deep = `${b}/mnt/usr/share/doc/deep/er/bl\u00e5b\u00e6r`;
    const sum = async (): Promise<string> => (await sh(`sha256sum < ${f}`)).stdout.split(' ')[0]!;
    const wantSum = createHash('sha256').update(want).digest('hex');
    const run = join(b, 'store', 'run');
    const list = async (): Promise<string | undefined> => {
      const n = (await readdir(run)).find((x) => x.startsWith('mount-recall.'));
      return n ? await readFile(join(run, n), 'utf8') : undefined;
    };

    // First mount: nothing to recall; reading big.bin puts it on the list written at the stop.
    let mm = await t.miqMount({ MIQ_DEBUG_COUNTS: '1', MIQ_DEBUG_LATENCY: '1' });
    assert.equal(await sum(), wantSum);
    assert.equal((await sh(`cat '${deep}'`)).stdout, 'berries\n');
    let { line, c } = await countsAtExit(mm);
    assert.doesNotMatch(mm.stderr(), /of the last start/);
    // Without the list big.bin is read as a stream or from its chunk map (never offered whole).
    // (deep's small file may be offered: its directory's small files are started whole at its
    // first lookup, and may arrive before its READ does.)
    assert.ok(c.streamServed! + c.mapServed! >= 1 && c.offered! <= 1, line);
    const l1 = await list();
    assert.ok(l1?.startsWith('miq-mount-recall 1\n') && l1.includes(`${big.id} ${file.size}\n`), `the list: ${l1}`);

    // Second mount: big.bin is read whole before `mounted` and offered to the binding whole at
    // its lookup (without the list, a file this large is never offered: its READs are a
    // stream's); its READs are the binding's or the page cache's (pushed), but for one that may
    // reach JS before the lookup's notice does.
    mm = await t.miqMount({ MIQ_DEBUG_COUNTS: '1', MIQ_DEBUG_LATENCY: '1' });
    assert.match(mm.stderr(), /miq mount: \d+ files of the last start \(\d+ bytes\) and [1-9]\d* directories read in/);
    assert.equal(await sum(), wantSum);
    // The directories looked up by name are registered before `mounted`: deep's and er's
    // lookups are the binding's (a lookup in JS is logged before its reply).
    assert.equal((await sh(`cat '${deep}'`)).stdout, 'berries\n');
    assert.doesNotMatch(mm.stderr(), /lat op=1 .* a=(er|bl)/, mm.stderr());
    ({ line, c } = await countsAtExit(mm));
    // ... hence not read as a stream: none of its READs was answered from the stream table
    // (streamServed; not `streamed`, the messages to JS, which d5f8bf8 sends only when the
    // readahead runs short).
    assert.ok(c.offered! >= 1 && c.streamServed === 0 && c.read! <= 2 && c.readServed! + c.pushed! >= 1, line);

    // Off: nothing recalled, and the list is left as it was.
    const l2 = await list();
    mm = await t.miqMount({ MIQ_DEBUG_COUNTS: '1', MIQ_MOUNT_RECALL: '0' });
    assert.equal(await sum(), wantSum);
    ({ line, c } = await countsAtExit(mm));
    assert.doesNotMatch(mm.stderr(), /of the last start/);
    assert.equal(c.offered, 0, line);
    assert.equal(await list(), l2);

    // A list that is not one: said, ignored, the mount serves as without it.
    const name = (await readdir(run)).find((x) => x.startsWith('mount-recall.'))!;
    await writeFile(join(run, name), `not a list\n${big.id} ${file.size}\n`);
    mm = await t.miqMount({ MIQ_DEBUG_COUNTS: '1' });
    assert.match(mm.stderr(), /is not a recall list/);
    assert.equal(await sum(), wantSum);
    ({ line, c } = await countsAtExit(mm));
    assert.doesNotMatch(mm.stderr(), /of the last start/);
    assert.equal(c.offered, 0, line);
  });
});

describe('corruption and crashes', () => {
  it('a chunk that fails its hash gives EIO and a log line, never bytes', async (tc) => {
    const t = await scratch(tc);
    const { b, logs } = t;
    await fixtureTree(join(b, 'src'), 2);
    let s = await t.store();
    const p = (await s.ingest(join(b, 'src'), { name: 'x' })).path;
    const rec = await s.getStorePath(p);
    const share = (await s.getTree(rec!.tree))!.entries.find((e) => e.name.toString() === 'share')!;
    const big = (await s.getTree(share.id!))!.entries.find((e) => e.name.toString() === 'big.bin')!;
    const file = (await s.getFile(big.id!))!;
    // A chunk over 128 KiB: those are decoded and verified in the mount's worker pool.
    const vi = file.chunks.findIndex((c, i) => i > 0 && c.length > 128 * 1024);
    assert.ok(vi > 0, 'fixture has a chunk over 128 KiB');
    const victim = file.chunks[vi]!;
    const before = file.chunks.slice(0, vi).reduce((a, c) => a + c.length, 0);
    await t.closeStore();
    flipChunkByte(join(b, 'store'), victim.id);
    s = await t.store();
    await t.mount(s);
    const f = `${b}/mnt/store/${p}/share/big.bin`;
    const r = await sh(`LC_ALL=C cat ${f} > /dev/null; echo rc=$?; LC_ALL=C head -c ${before} ${f} | wc -c`);
    assert.match(r.stderr, /Input\/output error/);
    assert.match(r.stdout, /rc=1\n/);
    assert.equal(r.stdout.split('\n')[1], String(before), 'chunks before the bad one still read');
    assert.ok(logs.some((l) => l.includes('MIQ_CORRUPT') && l.includes(victim.id)), logs.join('\n'));
  });

  it('a file fetched whole from its first read (MIQ_MOUNT_WHOLE_AHEAD): a damaged chunk in it is EIO when read, never bytes; the rest reads right', async (tc) => {
    const t = await scratch(tc);
    const { b, logs } = t;
    await fixtureTree(join(b, 'src'), 3);
    let s = await t.store();
    const p = (await s.ingest(join(b, 'src'), { name: 'x' })).path;
    const rec = await s.getStorePath(p);
    const share = (await s.getTree(rec!.tree))!.entries.find((e) => e.name.toString() === 'share')!;
    const big = (await s.getTree(share.id!))!.entries.find((e) => e.name.toString() === 'big.bin')!;
    const file = (await s.getFile(big.id!))!;
    // 3 MiB: under the 8 MiB default, so its first READ (4 KiB at 0) starts every chunk.
    assert.ok(file.size <= 8 << 20 && file.chunks.length > 3, 'fixture is a multi-chunk file under MIQ_MOUNT_WHOLE_AHEAD');
    const vi = file.chunks.length - 2;
    const victim = file.chunks[vi]!;
    const before = file.chunks.slice(0, vi).reduce((a, c) => a + c.length, 0);
    await t.closeStore();
    flipChunkByte(join(b, 'store'), victim.id);
    s = await t.store();
    await t.mount(s);
    const f = `${b}/mnt/store/${p}/share/big.bin`;
    const src = `${b}/src/share/big.bin`;
    // The first read starts the damaged chunk too (decoded and rejected on the pool with no
    // reader waiting); a later READ of it must still be EIO, not empty or unchecked bytes.
    assert.equal((await sh(`head -c 4096 ${f} | md5sum`)).stdout, (await sh(`head -c 4096 ${src} | md5sum`)).stdout);
    const r = await sh(`LC_ALL=C dd if=${f} of=/dev/null bs=4096 skip=${Math.floor((before + 8192) / 4096)} count=1 status=none; echo rc=$?`);
    assert.match(r.stderr, /Input\/output error/);
    assert.match(r.stdout, /rc=1\n/);
    assert.equal((await sh(`head -c ${before} ${f} | md5sum`)).stdout, (await sh(`head -c ${before} ${src} | md5sum`)).stdout, 'chunks before the bad one read right');
    const after = before + victim.length;
    // Page-aligned ends (the fixture's chunks are 512 KiB): the kernel's reads of what follows
    // never include a byte of the damaged chunk.
    assert.equal(after % 4096, 0);
    assert.equal((await sh(`tail -c +${after + 1} ${f} | md5sum`)).stdout, (await sh(`tail -c +${after + 1} ${src} | md5sum`)).stdout, 'chunks after it read right');
    assert.ok(logs.some((l) => l.includes('MIQ_CORRUPT') && l.includes(victim.id)), logs.join('\n'));
  });

  it('a file fetched whole (MIQ_MOUNT_WHOLE_AHEAD) has its last fifth (and half a readahead window before it) decoded first, then the rest in order; every byte reads right', async (tc) => {
    const t = await scratch(tc);
    const { b } = t;
    await fixtureTree(join(b, 'src'), 3);
    const s = await t.store();
    const p = (await s.ingest(join(b, 'src'), { name: 'x' })).path;
    const rec = await s.getStorePath(p);
    const share = (await s.getTree(rec!.tree))!.entries.find((e) => e.name.toString() === 'share')!;
    const big = (await s.getTree(share.id!))!.entries.find((e) => e.name.toString() === 'big.bin')!;
    const file = (await s.getFile(big.id!))!;
    assert.ok(file.size <= 8 << 20 && file.chunks.length > 4, 'fixture is a multi-chunk file under MIQ_MOUNT_WHOLE_AHEAD');
    await t.closeStore();
    const starts: number[] = [];
    let at = 0;
    for (const c of file.chunks) {
      starts.push(at);
      at += c.length;
    }
    // The chunk holding size - size/5 - 512 KiB (fs/reader.ts extend).
    const from = file.size - Math.ceil(file.size / 5) - (512 << 10);
    const tail = starts.filter((x) => x <= from).length - 1;
    assert.ok(tail > 1 && tail < file.chunks.length - 1, `fixture: the tail starts at chunk ${tail} of ${file.chunks.length}`);
    // The JS path's order (with chunk maps, the default, the binding's read threads decode what
    // each READ covers and nothing ahead).
    const mm = await t.miqMount({ MIQ_DEBUG_DECODE: '1', MIQ_MOUNT_MAPS: '0' });
    const f = `${b}/mnt/store/${p}/share/big.bin`;
    const src = `${b}/src/share/big.bin`;
    // The first 4 KiB: its READ's own chunk, and the rest of the file fetched ahead.
    assert.equal((await sh(`head -c 4096 ${f} | md5sum`)).stdout, (await sh(`head -c 4096 ${src} | md5sum`)).stdout);
    // Decode tasks of this file by the order they were posted: task number and first offset.
    const tasks = (): { task: number; from: number }[] => [...mm.stderr().matchAll(/^decode task=(\d+) .* from=(\d+)$/gm)].map((m) => ({ task: Number(m[1]), from: Number(m[2]) })).sort((x, y) => x.task - y.task);
    const seen = (): boolean => [0, starts[1]!, starts[tail]!].every((x) => tasks().some((k) => k.from === x));
    for (let i = 0; i < 200 && !seen(); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(seen(), mm.stderr());
    const order = tasks().map((k) => k.from);
    assert.equal(order[0], 0, `the READ's own chunk first: ${order.join(' ')}`);
    assert.equal(order[1], starts[tail], `then the tail: ${order.join(' ')}`);
    assert.ok(order.indexOf(starts[1]!) > 1, `then the rest from chunk 1: ${order.join(' ')}`);
    assert.equal((await sh(`md5sum < ${f}`)).stdout, (await sh(`md5sum < ${src}`)).stdout);
    assert.equal(await mm.stop(), 0, mm.stderr());
  });

  for (const maps of ['0', 'large'] as const) it(`a large file read in order is answered by the binding from chunks ${maps === '0' ? 'the decode threads' : 'its read threads (chunk maps)'} verified: a damaged one is EIO and a log line, never bytes; the chunks around it read right`, async (tc) => {
    const t = await scratch(tc);
    const { b, logs } = t;
    // Two 12 MiB files (over MIQ_MOUNT_WHOLE_AHEAD's 8 MiB: read as streams), of 16 letters
    // (zstd chunks, decoded into the decode thread's scratch buffer before they are offered).
    await mkdir(join(b, 'src'), { recursive: true });
    for (const [name, seed] of [['good.bin', 7], ['bad.bin', 9]] as const) {
      let x = seed * 2654435761;
      const big = Buffer.alloc(12 * 1024 * 1024 + 777);
      for (let i = 0; i < big.length; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        big[i] = 97 + (x >>> 28);
      }
      await writeFile(join(b, 'src', name), big);
    }
    let s = await t.store();
    const p = (await s.ingest(join(b, 'src'), { name: 'x' })).path;
    const rec = await s.getStorePath(p);
    const bad = (await s.getTree(rec!.tree))!.entries.find((e) => e.name.toString() === 'bad.bin')!;
    const file = (await s.getFile(bad.id!))!;
    assert.ok(file.chunks.length > 6, `fixture has many chunks (${file.chunks.length})`);
    const vi = Math.floor(file.chunks.length / 2);
    const victim = file.chunks[vi]!;
    const before = file.chunks.slice(0, vi).reduce((a, c) => a + c.length, 0);
    const after = before + victim.length;
    await t.closeStore();
    flipChunkByte(join(b, 'store'), victim.id);
    s = await t.store();
    const was = process.env.MIQ_MOUNT_MAPS;
    process.env.MIQ_MOUNT_MAPS = maps;
    let m: MountHandle;
    try {
      m = await t.mount(s);
    } finally {
      if (was === undefined) delete process.env.MIQ_MOUNT_MAPS;
      else process.env.MIQ_MOUNT_MAPS = was;
    }
    const d = `${b}/mnt/store/${p}`;
    const good = await sh(`dd if=${d}/good.bin bs=1M status=none | md5sum; md5sum < ${b}/src/good.bin`);
    const [got, want] = good.stdout.trim().split('\n');
    assert.equal(got, want, 'the undamaged file reads right');
    const rq = m.status().requests;
    const served = rq?.streamServed ?? 0;
    if (maps === '0') {
      assert.ok(served > 0, `READs answered from the stream table: ${JSON.stringify(rq)}`);
      // JS hears of the READs the binding answered only when its readahead runs short (the low
      // water, half of MIQ_MOUNT_READAHEAD), not of each: one message per READ was one wake of the
      // JS thread per MiB.
      assert.ok((rq?.streamed ?? 0) * 2 <= served, `OP_STREAMED messages for ${served} READs answered from the table: ${JSON.stringify(rq)}`);
    } else {
      // The first READ reaches JS (the map is made once the chunks are located), the others not.
      assert.ok((rq?.mapLarge ?? 0) >= 8 && served === 0 && (rq?.read ?? 0) <= 2, `READs answered from the chunk map: ${JSON.stringify(rq)}`);
    }
    const r = await sh(`LC_ALL=C dd if=${d}/bad.bin of=/dev/null bs=1M status=none; echo rc=$?`);
    assert.match(r.stderr, /Input\/output error/);
    assert.match(r.stdout, /rc=1\n/);
    // A second time (the damaged chunk failed once): EIO again, not bytes.
    const r2 = await sh(`LC_ALL=C dd if=${d}/bad.bin of=/dev/null bs=4096 skip=${Math.floor(before / 4096) + 1} count=1 status=none; echo rc=$?`);
    assert.match(r2.stdout, /rc=1\n/, r2.stderr);
    assert.equal((await sh(`head -c ${before} ${d}/bad.bin | md5sum`)).stdout, (await sh(`head -c ${before} ${b}/src/bad.bin | md5sum`)).stdout, 'chunks before the bad one read right');
    // From the first page boundary past it: the kernel's reads there hold no byte of it.
    const from = Math.ceil(after / 4096) * 4096;
    assert.equal((await sh(`tail -c +${from + 1} ${d}/bad.bin | md5sum`)).stdout, (await sh(`tail -c +${from + 1} ${b}/src/bad.bin | md5sum`)).stdout, 'chunks after it read right');
    assert.ok(logs.some((l) => l.includes('MIQ_CORRUPT') && l.includes(victim.id)), logs.join('\n'));
    // With maps, the binding's EIO (its own log line, on stderr) leaves the map marked failed: the
    // kernel's retry and every later READ of the file are JS's (its stream), whose check logged.
    if (maps === '0') assert.ok((m.status().requests?.streamServed ?? 0) > served, 'the damaged file was read through the stream table too');
    else assert.ok((m.status().requests?.mapFailed ?? 0) >= 1, JSON.stringify(m.status().requests));
  });

  it('a large file read in order: the pack bytes of its chunks well past the reader are asked of the kernel ahead (WILLNEED), not only those being decoded', async (tc) => {
    if ((await sh('command -v fincore')).stdout.trim() === '') return tc.skip('fincore (util-linux) is not installed');
    const t = await scratch(tc);
    const { b } = t;
    // 40 MiB of 16 letters (zstd chunks, ~half stored): past the decode readahead (set to 2 MiB
    // here) the kernel is asked for MIQ_MOUNT_PACK_AHEAD (16 MiB of plain bytes, ~8 MiB of pack).
    await mkdir(join(b, 'src'), { recursive: true });
    let x = 12345;
    const big = Buffer.alloc(40 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      big[i] = 97 + (x >>> 28);
    }
    await writeFile(join(b, 'src', 'big.bin'), big);
    const s = await t.store();
    const p = (await s.ingest(join(b, 'src'), { name: 'x' })).path;
    await t.closeStore();
    // The pack out of the page cache (written back first: dirty pages stay), so what is cached
    // after the first read is what the mount read or asked for.
    const packs = `${b}/store/packs`;
    const resident = async (): Promise<number> => {
      const r = await sh(`cd ${packs} && for f in *.pack; do fincore -b -n -o RES "$f"; done | awk '{s += $1} END {print s + 0}'`);
      return Number(r.stdout.trim());
    };
    await sh(`cd ${packs} && sync *.pack && for f in *.pack; do dd if="$f" iflag=nocache count=0 status=none; done`);
    const cold = await resident();
    assert.ok(cold < 2 << 20, `the pack left the page cache (${cold} bytes resident)`);
    const ra = process.env.MIQ_MOUNT_READAHEAD, maps = process.env.MIQ_MOUNT_MAPS;
    process.env.MIQ_MOUNT_READAHEAD = String(2 << 20);
    // The stream's readahead (with chunk maps, the default, the read threads ask for 8 MiB of plain
    // bytes past each READ themselves: native/miqfuse.c cadvise).
    process.env.MIQ_MOUNT_MAPS = '0';
    let m: MountHandle;
    try {
      m = await t.mount(await t.store());
    } finally {
      if (ra === undefined) delete process.env.MIQ_MOUNT_READAHEAD;
      else process.env.MIQ_MOUNT_READAHEAD = ra;
      if (maps === undefined) delete process.env.MIQ_MOUNT_MAPS;
      else process.env.MIQ_MOUNT_MAPS = maps;
    }
    const r = await sh(`dd if=${b}/mnt/store/${p}/big.bin of=/dev/null bs=64k count=1 status=none; echo rc=$?`);
    assert.match(r.stdout, /rc=0\n/, r.stderr);
    // Without the hint: the first READ's chunks and 2 MiB of readahead, ~2 MiB of pack at most.
    let got = 0;
    for (let k = 0; k < 200 && got < 6 << 20; k++) {
      got = await resident();
      if (got < 6 << 20) await new Promise((res) => setTimeout(res, 50));
    }
    assert.ok(got >= 6 << 20, `pack bytes resident after a 64 KiB read: ${got} (${JSON.stringify(m.status().requests)})`);
  });

  it('a damaged tree is EIO when listed or walked into, a log line names it; its parent and siblings still serve', async (tc) => {
    // Trees are read ahead in batches and kept packed (fs/trees.ts): a batch holding a damaged
    // tree is read again one by one, so only that directory fails.
    const t = await scratch(tc);
    const { b, logs } = t;
    await fixtureTree(join(b, 'src'), 3);
    let s = await t.store();
    const p = (await s.ingest(join(b, 'src'), { name: 'x' })).path;
    const rec = await s.getStorePath(p);
    const share = (await s.getTree(rec!.tree))!.entries.find((e) => e.name.toString() === 'share')!;
    const doc = (await s.getTree(share.id!))!.entries.find((e) => e.name.toString() === 'doc')!;
    await t.closeStore();
    const { ClassicLevel } = await import('classic-level');
    const { kTree } = await import('../store/keys.js');
    const db = new ClassicLevel<string, Buffer>(join(b, 'store', 'db'), { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    const v = await db.get(kTree(doc.id! as Id));
    const at = v!.indexOf('README');
    assert.ok(at > 0);
    v![at] ^= 1;
    await db.put(kTree(doc.id! as Id), v!);
    await db.close();
    s = await t.store();
    await t.mount(s);
    const d = `${b}/mnt/store/${p}`;
    const r = await sh(`LC_ALL=C ls ${d}/share/doc; echo rc=$?; LC_ALL=C cat ${d}/share/doc/README; echo rc=$?; ls ${d}/share; cat ${d}/bin/hello; LC_ALL=C find ${d} > ${b}/found; echo rc=$?`);
    assert.match(r.stderr, /doc.*Input\/output error/);
    assert.equal(r.stdout, 'rc=2\nrc=1\nbig.bin\ndoc\n#!/bin/sh\necho hello 3\nrc=1\n', r.stderr);
    const found = (await sh(`sed 's|^${d}||' ${b}/found | sort`)).stdout.split('\n');
    assert.ok(found.includes('/bin/hello') && found.includes('/share/doc') && !found.includes('/share/doc/README'), found.join(' '));
    assert.ok(logs.some((l) => l.includes('MIQ_CORRUPT') && l.includes(doc.id!)), logs.join('\n'));
  });

  it('a damaged small file is never handed to the kernel: EIO on every read, its neighbours read whole', async (tc) => {
    // Small files are read whole with their directory (fs/inodes.ts loadDir: one pread for
    // neighbours in a pack, decoded on the pool) and handed to the addon, which answers their
    // READs without asking JS: a file whose chunk fails its hash must never get there.
    const t = await scratch(tc);
    const { b, logs } = t;
    const dir = join(b, 'src', 'small');
    await mkdir(dir, { recursive: true });
    // Incompressible bytes: the store keeps such small files as chunks of their own (shared
    // zstd frames are only for bytes that compress), which the mount reads in spans.
    const body = (k: number): Buffer => Buffer.concat(Array.from({ length: 40 + k }, (_, i) => createHash('sha256').update(`${k}/${i}`).digest()));
    const md5 = (ks: number[]): string => createHash('md5').update(Buffer.concat(ks.map(body))).digest('hex');
    for (let k = 0; k < 24; k++) await writeFile(join(dir, `f${String(k).padStart(2, '0')}`), body(k));
    let s = await t.store();
    const p = (await s.ingest(join(b, 'src'), { name: 'x' })).path;
    const rec = await s.getStorePath(p);
    const small = (await s.getTree(rec!.tree))!.entries.find((e) => e.name.toString() === 'small')!;
    const victim = (await s.getTree(small.id!))!.entries.find((e) => e.name.toString() === 'f12')!;
    assert.equal((await s.getFile(victim.id!))!.chunks.length, 1);
    await t.closeStore();
    flipChunkByte(join(b, 'store'), victim.id!);
    s = await t.store();
    await t.mount(s);
    const d = `${b}/mnt/store/${p}/small`;
    const good = Array.from({ length: 24 }, (_, k) => k).filter((k) => k !== 12);
    // The third file looked up starts the whole directory (its damaged file too); the rest
    // are read after it arrived.
    assert.equal((await sh(`cat ${d}/f00 ${d}/f01 ${d}/f02 ${d}/f03 | md5sum`)).stdout.split(' ')[0], md5([0, 1, 2, 3]));
    await new Promise((r) => setTimeout(r, 300));
    for (let t = 0; t < 2; t++) {
      const r = await sh(`LC_ALL=C cat ${d}/f12 > /dev/null; echo rc=$?`);
      assert.match(r.stderr, /Input\/output error/);
      assert.match(r.stdout, /rc=1\n/);
    }
    const all = await sh(`cat ${good.map((k) => `${d}/f${String(k).padStart(2, '0')}`).join(' ')} | md5sum`);
    assert.equal(all.stdout.split(' ')[0], md5(good));
    assert.ok(logs.some((l) => l.includes('MIQ_CORRUPT') && l.includes(victim.id!)), logs.join('\n'));
  });

  it('small files in shared zstd frames are decoded on the pool and checked there: a damaged frame is EIO for its files, never bytes', async (tc) => {
    const t = await scratch(tc);
    const { b, logs } = t;
    const dir = join(b, 'src', 'text');
    await mkdir(dir, { recursive: true });
    // Compressible and distinct: the store packs them into shared frames (~256 KiB each).
    const body = (k: number): string => Array.from({ length: 90 }, (_, i) => `file ${k} line ${i} ${'abcdefgh'.repeat(k % 7)}\n`).join('');
    const name = (k: number): string => `f${String(k).padStart(3, '0')}`;
    for (let k = 0; k < 160; k++) await writeFile(join(dir, name(k)), body(k));
    let s = await t.store();
    const p = (await s.ingest(join(b, 'src'), { name: 'x' })).path;
    const rec = await s.getStorePath(p);
    const text = (await s.getTree(rec!.tree))!.entries.find((e) => e.name.toString() === 'text')!;
    const ents = (await s.getTree(text.id!))!.entries;
    const local = s as unknown as { chunks: { locate(ids: Id[]): Promise<({ pack: number; offset: number; stored: number; frame?: unknown } | undefined)[]>; packPath(n: number): string } };
    const locs = await local.chunks.locate(ents.map((e) => e.id as Id));
    const vi = ents.findIndex((e) => e.name.toString() === name(100));
    const vloc = locs[vi]!;
    assert.ok(vloc.frame, 'the fixture files are in shared frames');
    const sameFrame = new Set(ents.filter((_, i) => locs[i]!.pack === vloc.pack && locs[i]!.offset === vloc.offset).map((e) => e.name.toString()));
    assert.ok(sameFrame.size < ents.length, 'more than one frame');
    await t.closeStore();
    // The damage is in the frame's header (its magic number), so the whole frame fails to decode.
    // A flipped byte further in may leave the frame decodable with wrong bytes in one place only
    // (frames carry no checksum of their own): then only the files over that place fail their
    // ids, and the others of the frame read right, checked. Which files those are depends on how
    // the walk ordered the files into frames (the C walk's order put f003 before a middle flip).
    await sh(`printf '\\x55' | dd of=${local.chunks.packPath(vloc.pack)} bs=1 seek=${vloc.offset} conv=notrunc status=none`);
    s = await t.store();
    await t.mount(s);
    const d = `${b}/mnt/store/${p}/text`;
    // Looked up in order: from the third on, the directory's small files are read whole on the pool.
    const r = await sh(`for f in $(seq -f 'f%03g' 0 159); do if c=$(cat ${d}/$f 2>/dev/null | md5sum); then echo "$f $c"; else echo "$f EIO"; fi; done`);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 160, r.stderr);
    let good = 0;
    for (const l of lines) {
      const [f, sum] = l.split(' ');
      const k = Number(f!.slice(1));
      const want = createHash('md5').update(body(k)).digest('hex');
      // cat's pipe hides its status: an EIO shows as the md5 of what it got before (nothing).
      const empty = createHash('md5').update('').digest('hex');
      if (sameFrame.has(f!)) assert.ok(sum === empty || sum === 'EIO', `${f} of the damaged frame: ${l}`);
      else {
        assert.equal(sum, want, `${f} of an intact frame`);
        good++;
      }
    }
    assert.ok(good > 0);
    const v = await sh(`LC_ALL=C cat ${d}/${name(100)} > /dev/null; echo rc=$?`);
    assert.match(v.stderr, /Input\/output error/);
    assert.ok(logs.some((l) => l.includes('MIQ_CORRUPT')), logs.join('\n'));
  });

  it('SIGKILL leaves "Transport endpoint is not connected"; the next miq mount clears it; SIGTERM unmounts', async () => {
    const b = await tmp();
    const children: ReturnType<typeof spawnMiq>[] = [];
    try {
      await fixtureTree(join(b, 'src'), 3);
      const S = ['--store', join(b, 'store')];
      const ing = await miqAsync([...S, 'ingest', join(b, 'src'), '--name', 'k', '--json']);
      const p = json<{ path: string }>(ing).path;
      await miqAsync([...S, 'profile', 'switch', 'system', p]);
      await mkdir(join(b, 'mnt'));
      const start = async (): Promise<{ c: ReturnType<typeof spawnMiq>; status: Record<string, unknown> }> => {
        const m = await startMiqMount([...S, 'mount', join(b, 'mnt'), '--json']);
        children.push(m.child);
        return { c: m.child, status: m.status };
      };
      const first = await start();
      assert.equal((await sh(`cat ${b}/mnt/usr/share/doc/README`)).stdout, 'readme 3\n');
      first.c.kill('SIGKILL');
      await waitExit(first.c);
      const dead = await sh(`LC_ALL=C ls ${b}/mnt`);
      assert.match(dead.stderr, /Transport endpoint is not connected/);
      const second = await start();
      assert.ok((second.status.cleared as string[]).includes(join(b, 'mnt')), JSON.stringify(second.status));
      assert.equal((await sh(`cat ${b}/mnt/store/${p}/share/doc/README ${b}/mnt/usr/share/doc/README`)).stdout, 'readme 3\nreadme 3\n');
      second.c.kill('SIGTERM');
      assert.equal(await waitExit(second.c), 0);
      const gone = await sh(`grep -c ' ${b}/mnt' /proc/mounts`);
      assert.equal(gone.stdout.trim(), '0');
    } finally {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await cleanup(b);
    }
  });
});
