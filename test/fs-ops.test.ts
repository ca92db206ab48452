/** The FUSE operations called directly over injected views: no kernel needed. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createOps, XATTR_ID, XATTR_PATH } from '../fs/ops.js';
import { ERRNO, FsError, toErrno } from '../fs/errno.js';
import { ChunkReader } from '../fs/reader.js';
import { TreeCache } from '../fs/trees.js';
import { pointerView, mainView, type ProfileSource } from '../fs/views.js';
import type { ChunkSource, ObjectReader } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import { idOf, type Id } from '../store/ids.js';
import { packTree, treeId, type FileRecord, type StorePathRecord, type Tree, type TreeEntry } from '../store/objects.js';

/** A tiny in-memory object world. */
function world() {
  const chunks = new Map<Id, Buffer>();
  const files = new Map<Id, FileRecord>();
  const trees = new Map<Id, Tree>();
  const paths = new Map<string, StorePathRecord>();
  let gets = 0;
  const corrupt = new Set<Id>();
  const file = (content: Buffer, piece = 1000): TreeEntry & { id: Id } => {
    const id = idOf(content);
    const cs = [];
    for (let s = 0; s < content.length; s += piece) {
      const b = content.subarray(s, s + piece);
      const cid = idOf(b);
      chunks.set(cid, Buffer.from(b));
      cs.push({ id: cid, length: b.length });
    }
    files.set(id, { id, size: content.length, chunks: cs });
    return { name: Buffer.alloc(0), kind: 'file', size: content.length, id };
  };
  const dir = (entries: TreeEntry[]): Id => {
    const { id } = treeId(entries);
    trees.set(id, { entries: [...entries].sort((a, b) => Buffer.compare(a.name, b.name)) });
    return id;
  };
  const source: ChunkSource = {
    async get(id) {
      gets++;
      if (corrupt.has(id)) throw new MiqError('MIQ_CORRUPT', `chunk ${id} is corrupt`);
      return chunks.get(id);
    },
    async has(id) { return chunks.has(id); },
  };
  const reader: ObjectReader = {
    getFile: async (id) => files.get(id),
    getTree: async (id) => trees.get(id),
    getStorePath: async (p) => paths.get(p),
    listStorePaths: async () => [...paths.values()],
    readFile: async () => { throw new Error('not used'); },
  };
  return { chunks, files, trees, paths, file, dir, source, reader, corrupt, gets: () => gets };
}

const N = (s: string): Buffer => Buffer.from(s);

function call<T = unknown>(ops: Record<string, (...a: any[]) => void>, op: string, ...args: unknown[]): Promise<{ err: number; value: T }> {
  return new Promise((resolve) => ops[op]!(...args, (err: number, value: T) => resolve({ err, value })));
}

function setup() {
  const w = world();
  const big = Buffer.alloc(10_500);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  const bigE = { ...w.file(big), name: N('big') };
  const small = { ...w.file(N('hello\n')), name: N('small') };
  const exe = { ...w.file(N('#!/bin/sh\n')), name: N('run'), kind: 'exe' as const };
  const sub = w.dir([small]);
  const root = w.dir([bigE, exe, { name: N('sub'), kind: 'dir', size: 6, id: sub }, { name: N('link'), kind: 'symlink', size: 9, target: N('sub/small') }]);
  w.paths.set('pkg-0123456789abcdef0123456789abcdef', { path: 'pkg-0123456789abcdef0123456789abcdef', name: 'pkg', key: root, tree: root, references: [], size: 1, files: 3, made: { kind: 'ingest' }, signatures: [] });
  const logs: string[] = [];
  const trees = new TreeCache(w.reader);
  const chunks = new ChunkReader(w.source, 1 << 20);
  const profiles: ProfileSource = {
    profiles: async () => ['system'],
    generations: async (p) => (p === 'system' ? [1, 2] : []),
    current: async (p) => (p === 'system' ? 2 : undefined),
    generation: async (_p, n) => (n === 1 || n === 2 ? { tree: root, env: 'env-x' } : undefined),
  };
  const main = createOps({ view: mainView(w.reader, profiles, trees, { usrMountpoint: true }), reader: w.reader, chunks, log: (l) => logs.push(l) });
  return { w, big, bigE, root, sub, main, logs, trees, chunks };
}

describe('fs ops over injected views', () => {
  it('lists the top level, store paths, profiles and generations', async () => {
    const { main } = setup();
    assert.deepEqual((await call(main.ops, 'readdir', '/')).value, ['profiles', 'store', 'usr']);
    assert.deepEqual((await call(main.ops, 'readdir', '/store')).value, ['pkg-0123456789abcdef0123456789abcdef']);
    assert.deepEqual((await call(main.ops, 'readdir', '/profiles/system')).value, ['current', '1', '2']);
    assert.deepEqual((await call(main.ops, 'readdir', '/store/pkg-0123456789abcdef0123456789abcdef')).value, ['big', 'link', 'run', 'sub']);
    const withStats = await new Promise<unknown[]>((r) => main.ops.readdir!('/store/pkg-0123456789abcdef0123456789abcdef', (_e: number, _n: string[], st: { mode: number }[]) => r(st.map((s) => s.mode))));
    assert.deepEqual(withStats, [0o100444, 0o120777, 0o100555, 0o40555], 'readdir hands the kernel each entry type');
    assert.equal((await call(main.ops, 'readlink', '/profiles/system/current')).value, '2');
    assert.equal((await call(main.ops, 'readdir', '/usr')).err, 0);
  });

  it('stats are normalised: modes 0444/0555, root owner, fixed mtime', async () => {
    const { main } = setup();
    const p = '/store/pkg-0123456789abcdef0123456789abcdef';
    const f = (await call<{ mode: number; size: number; uid: number; mtime: Date }>(main.ops, 'getattr', `${p}/big`)).value;
    assert.equal(f.mode, 0o100444);
    assert.equal(f.size, 10_500);
    assert.equal(f.uid, 0);
    assert.equal(f.mtime.getTime(), 1000);
    assert.equal((await call<{ mode: number }>(main.ops, 'getattr', `${p}/run`)).value.mode, 0o100555);
    assert.equal((await call<{ mode: number }>(main.ops, 'getattr', `${p}/sub`)).value.mode, 0o40555);
    assert.equal((await call<{ mode: number }>(main.ops, 'getattr', `${p}/link`)).value.mode, 0o120777);
    assert.equal((await call(main.ops, 'readlink', `${p}/link`)).value, 'sub/small');
  });

  it('misses are ENOENT, components under files ENOTDIR, bad store names ENOENT', async () => {
    const { main } = setup();
    const p = '/store/pkg-0123456789abcdef0123456789abcdef';
    assert.equal((await call(main.ops, 'getattr', `${p}/nope`)).err, -ERRNO.ENOENT);
    assert.equal((await call(main.ops, 'getattr', `${p}/big/x`)).err, -ERRNO.ENOTDIR);
    assert.equal((await call(main.ops, 'getattr', '/store/not-a-path')).err, -ERRNO.ENOENT);
    assert.equal((await call(main.ops, 'getattr', '/profiles/system/3')).err, -ERRNO.ENOENT);
    assert.equal((await call(main.ops, 'getattr', '/profiles/other')).err, -ERRNO.ENOENT);
    assert.equal((await call(main.ops, 'readdir', `${p}/big`)).err, -ERRNO.ENOTDIR);
  });

  it('reads any range across chunk boundaries, short at EOF', async () => {
    const { main, big } = setup();
    const p = '/store/pkg-0123456789abcdef0123456789abcdef/big';
    const { err, value: fd } = await call<number>(main.ops, 'open', p, 0);
    assert.equal(err, 0);
    for (const [pos, len] of [[0, 10_500], [999, 2], [1, 4096], [9_990, 100], [10_500, 10], [5_000, 0]] as const) {
      const buf = Buffer.alloc(len + 5);
      const n: number = await new Promise((r) => main.ops.read!(p, fd, buf, len, pos, (x: number) => r(x)));
      const want = big.subarray(pos, Math.min(big.length, pos + len));
      assert.equal(n, want.length, `read ${pos}+${len}`);
      assert.ok(buf.subarray(0, n).equals(want), `bytes at ${pos}+${len}`);
    }
    assert.equal(main.openHandles(), 1);
    await call(main.ops, 'release', p, fd);
    assert.equal(main.openHandles(), 0);
  });

  it('a corrupt chunk is EIO with a log line, never bytes', async () => {
    const { main, w, bigE, logs } = setup();
    const rec = w.files.get(bigE.id)!;
    w.corrupt.add(rec.chunks[3]!.id);
    const p = '/store/pkg-0123456789abcdef0123456789abcdef/big';
    const { value: fd } = await call<number>(main.ops, 'open', p, 0);
    const buf = Buffer.alloc(4096);
    const ok: number = await new Promise((r) => main.ops.read!(p, fd, buf, 1000, 0, (x: number) => r(x)));
    assert.equal(ok, 1000);
    const bad: number = await new Promise((r) => main.ops.read!(p, fd, buf, 4096, 2500, (x: number) => r(x)));
    assert.equal(bad, -ERRNO.EIO);
    assert.ok(logs.some((l) => l.includes('MIQ_CORRUPT') && l.includes('read')), logs.join('\n'));
  });

  it('a missing chunk or file record is EIO', async () => {
    const { main, w, bigE } = setup();
    w.chunks.delete(w.files.get(bigE.id)!.chunks[0]!.id);
    const p = '/store/pkg-0123456789abcdef0123456789abcdef';
    const { value: fd } = await call<number>(main.ops, 'open', `${p}/big`, 0);
    const n: number = await new Promise((r) => main.ops.read!(`${p}/big`, fd, Buffer.alloc(10), 10, 0, (x: number) => r(x)));
    assert.equal(n, -ERRNO.EIO);
    w.files.delete(bigE.id);
    assert.equal((await call(main.ops, 'open', `${p}/big`, 0)).err, -ERRNO.EIO);
  });

  it('concurrent reads of one chunk fetch it once; the LRU serves repeats', async () => {
    const { main, w } = setup();
    const p = '/store/pkg-0123456789abcdef0123456789abcdef/big';
    const { value: fd } = await call<number>(main.ops, 'open', p, 0);
    const before = w.gets();
    await Promise.all([0, 100, 200, 300].map((pos) => new Promise((r) => main.ops.read!(p, fd, Buffer.alloc(50), 50, pos, r))));
    assert.equal(w.gets() - before, 1);
    await new Promise((r) => main.ops.read!(p, fd, Buffer.alloc(50), 50, 400, r));
    assert.equal(w.gets() - before, 1);
  });

  it('refuses every change with EROFS, including opens for writing', async () => {
    const { main } = setup();
    const p = '/store/pkg-0123456789abcdef0123456789abcdef/big';
    for (const flags of [1, 2, 0o1000, 0o2000, 0o100]) assert.equal((await call(main.ops, 'open', p, flags)).err, -ERRNO.EROFS, `flags ${flags}`);
    const cases: [string, unknown[]][] = [
      ['write', [p, 1, Buffer.alloc(1), 1, 0]], ['create', [p, 0o644]], ['mknod', [p, 0o644, 0]], ['mkdir', ['/store/x', 0o755]],
      ['rmdir', ['/store']], ['unlink', [p]], ['rename', [p, `${p}2`]], ['link', [p, `${p}2`]], ['symlink', ['x', `${p}2`]],
      ['chmod', [p, 0o777]], ['chown', [p, 1, 1]], ['truncate', [p, 0]], ['ftruncate', [p, 1, 0]], ['utimens', [p, 0, 0]],
      ['setxattr', [p, 'user.x', Buffer.from('y'), 0, 0]], ['removexattr', [p, XATTR_ID]],
    ];
    for (const [op, args] of cases) assert.equal((await call(main.ops, op, ...args)).err, -ERRNO.EROFS, op);
    assert.equal((await call(main.ops, 'access', p, 2)).err, -ERRNO.EROFS);
    assert.equal((await call(main.ops, 'access', p, 4)).err, 0);
  });

  it('exposes user.miq.id and user.miq.path', async () => {
    const { main, bigE, root } = setup();
    const p = '/store/pkg-0123456789abcdef0123456789abcdef';
    assert.equal((await call<Buffer>(main.ops, 'getxattr', `${p}/big`, XATTR_ID, 0)).value.toString(), bigE.id);
    assert.equal((await call<Buffer>(main.ops, 'getxattr', p, XATTR_ID, 0)).value.toString(), root);
    assert.equal((await call<Buffer>(main.ops, 'getxattr', `${p}/sub/small`, XATTR_PATH, 0)).value.toString(), 'pkg-0123456789abcdef0123456789abcdef');
    assert.deepEqual((await call(main.ops, 'listxattr', `${p}/big`)).value, [XATTR_ID, XATTR_PATH]);
    assert.equal((await call(main.ops, 'getxattr', `${p}/big`, 'user.other', 0)).err, -ERRNO.ENODATA);
    assert.equal((await call(main.ops, 'getxattr', '/store', XATTR_ID, 0)).err, -ERRNO.ENODATA);
  });

  it('pointer view: follows the pointer per lookup; an open handle keeps its content', async () => {
    const { w, trees, chunks } = setup();
    const a = { ...w.file(N('generation A')), name: N('f') };
    const b = { ...w.file(N('generation B, longer')), name: N('f') };
    const ta = w.dir([a]), tb = w.dir([b]);
    let cur: Id | undefined;
    const v = createOps({ view: pointerView(trees, () => (cur ? { tree: cur } : undefined)), reader: w.reader, chunks, log: () => {} });
    assert.deepEqual((await call(v.ops, 'readdir', '/')).value, []);
    assert.equal((await call(v.ops, 'getattr', '/f')).err, -ERRNO.ENOENT);
    cur = ta;
    const { value: fd } = await call<number>(v.ops, 'open', '/f', 0);
    cur = tb;
    assert.equal((await call<{ size: number }>(v.ops, 'getattr', '/f')).value.size, b.size);
    const buf = Buffer.alloc(64);
    const n: number = await new Promise((r) => v.ops.read!('/f', fd, buf, 64, 0, (x: number) => r(x)));
    assert.equal(buf.subarray(0, n).toString(), 'generation A');
    const { value: fd2 } = await call<number>(v.ops, 'open', '/f', 0);
    const n2: number = await new Promise((r) => v.ops.read!('/f', fd2, buf, 64, 0, (x: number) => r(x)));
    assert.equal(buf.subarray(0, n2).toString(), 'generation B, longer');
  });
});

describe('tree cache', () => {
  it('prefetchAll loads every tree below, each batch taking what getAhead queued first', async () => {
    const w = world();
    const leaves = Array.from({ length: 200 }, (_, i) => w.dir([{ ...w.file(N(`leaf ${i}\n`)), name: N('f') }]));
    const deep = w.dir([{ ...w.file(N('deep\n')), name: N('g') }]);
    const mid = w.dir([{ name: N('deep'), kind: 'dir', size: 1, id: deep }]);
    const root = w.dir([...leaves.map((id, i) => ({ name: N(`d${String(i).padStart(3, '0')}`), kind: 'dir' as const, size: 1, id })), { name: N('mid'), kind: 'dir', size: 1, id: mid }]);
    const other = w.dir([{ ...w.file(N('other\n')), name: N('h') }]);
    const batches: Id[][] = [];
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const reader: ObjectReader = {
      ...w.reader,
      getTreesPacked: async (ids) => {
        batches.push([...ids]);
        if (batches.length <= 2) await gate;
        return ids.map((id) => { const t = w.trees.get(id); return t && packTree(t); });
      },
    };
    const trees = new TreeCache(reader);
    await trees.get(root);
    trees.prefetchAll([root], 1000);
    // Two batches of the walk's trees are being read (held); then a tree is wanted ahead.
    await new Promise((r) => setImmediate(r));
    assert.equal(batches.length, 2);
    void trees.getAhead(other);
    open();
    const all = [...leaves, mid, deep, other];
    for (let k = 0; k < 200 && !all.every((id) => trees.peek(id)); k++) await new Promise((r) => setImmediate(r));
    assert.ok(all.every((id) => trees.peek(id)), 'every tree below the root (two levels down too) is loaded');
    // The next batch after the held ones starts with the tree getAhead asked for, not the walk's.
    assert.equal(batches[2]![0], other);
    assert.equal(batches.flat().filter((id) => id === other).length, 1);
  });

  it('prefetchAll stops at its limit', async () => {
    const w = world();
    const leaves = Array.from({ length: 20 }, (_, i) => w.dir([{ ...w.file(N(`x ${i}\n`)), name: N('f') }]));
    const root = w.dir(leaves.map((id, i) => ({ name: N(`d${String(i).padStart(2, '0')}`), kind: 'dir' as const, size: 1, id })));
    const trees = new TreeCache(w.reader);
    await trees.get(root);
    trees.prefetchAll([root], 5);
    for (let k = 0; k < 50; k++) await new Promise((r) => setImmediate(r));
    assert.equal(leaves.filter((id) => trees.peek(id)).length, 4, 'the root and 4 of its subdirectories');
  });
});

describe('immutable views', () => {
  it('have no handles: open is ENOSYS (the kernel then stops sending it), reads resolve the path', async () => {
    const { w, trees, chunks, big } = setup();
    const profiles: ProfileSource = { profiles: async () => [], generations: async () => [], current: async () => undefined, generation: async () => undefined };
    const im = createOps({ view: mainView(w.reader, profiles, trees, { usrMountpoint: false }), reader: w.reader, chunks, log: () => {}, immutable: true });
    const p = '/store/pkg-0123456789abcdef0123456789abcdef/big';
    assert.equal((await call(im.ops, 'open', p, 0)).err, -ERRNO.ENOSYS);
    assert.equal(im.ops.release, undefined);
    const buf = Buffer.alloc(3000);
    const n: number = await new Promise((r) => im.ops.read!(p, 0, buf, 3000, 9000, (x: number) => r(x)));
    assert.equal(n, 1500);
    assert.ok(buf.subarray(0, n).equals(big.subarray(9000)));
    const e: number = await new Promise((r) => im.ops.read!('/store/pkg-0123456789abcdef0123456789abcdef/sub', 0, buf, 10, 0, (x: number) => r(x)));
    assert.equal(e, -ERRNO.EISDIR);
  });

  it('cache nodes inside store paths and generations, never the current pointer', async () => {
    const { w, trees, chunks, root, sub } = setup();
    let cur = 1;
    const profiles: ProfileSource = { profiles: async () => ['s'], generations: async () => [1, 2], current: async () => cur, generation: async (_p, n) => ({ tree: n === 1 ? root : sub, env: `env-${n}` }) };
    const im = createOps({ view: mainView(w.reader, profiles, trees, { usrMountpoint: false }), reader: w.reader, chunks, log: () => {}, immutable: true });
    assert.equal((await call(im.ops, 'readlink', '/profiles/s/current')).value, '1');
    cur = 2;
    assert.equal((await call(im.ops, 'readlink', '/profiles/s/current')).value, '2');
    assert.deepEqual((await call(im.ops, 'readdir', '/profiles/s/2')).value, ['small']);
    assert.deepEqual((await call(im.ops, 'readdir', '/profiles/s')).value, ['current', '1', '2']);
  });
});

describe('errno table', () => {
  it('maps codes through one table; unknown faults are EIO with a log line', () => {
    const logs: string[] = [];
    const log = (l: string): void => void logs.push(l);
    assert.equal(toErrno(new MiqError('MIQ_NOT_FOUND', 'x'), 'op', '/p', log), -ERRNO.ENOENT);
    assert.equal(logs.length, 0, 'plain misses are not logged');
    assert.equal(toErrno(new MiqError('MIQ_CORRUPT', 'x'), 'op', '/p', log), -ERRNO.EIO);
    assert.equal(toErrno(new MiqError('MIQ_READ_ONLY', 'x'), 'op', '/p', log), -ERRNO.EROFS);
    assert.equal(toErrno(new MiqError('MIQ_TIMEOUT', 'x'), 'op', '/p', log), -ERRNO.ETIMEDOUT);
    assert.equal(toErrno(new MiqError('MIQ_BUILD_FAILED', 'x'), 'op', '/p', log), -ERRNO.EIO);
    assert.equal(toErrno(new FsError('ENOTDIR'), 'op', '/p', log), -ERRNO.ENOTDIR);
    assert.equal(toErrno(new TypeError('boom'), 'op', '/p', log), -ERRNO.EIO);
    assert.ok(logs.some((l) => l.includes('boom')));
    assert.ok(logs.every((l) => l.includes('/p')));
  });
});
