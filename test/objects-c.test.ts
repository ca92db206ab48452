/**
 * The tree pass in C (native/miqchunk.c buildTrees, store/ingest-trees.ts buildCompleteTrees)
 * against encodeTree, the format's definition: over random trees (names of odd bytes and
 * shared prefixes, symlinks, exe, sizes past 4 GiB, nesting) the same bytes, ids, sizes and
 * order; and every entry encodeTree refuses is refused with encodeTree's own error.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMiqError } from '../store/errors.js';
import { type Id, idOf } from '../store/ids.js';
import { buildCompleteTrees, buildTrees } from '../store/ingest-trees.js';
import { miqchunkExport } from '../store/miqchunk.js';
import { encodeTree, type TreeEntry } from '../store/objects.js';
import type { DirNode, FileNode, LinkNode, Node } from '../store/walk.js';

type BuildC = (root: DirNode, all: boolean) => (string | Buffer | DirNode)[];
const C = miqchunkExport<BuildC>('buildTrees', 'MIQ_JS_TREES');

/** A small seeded generator (xorshift32): the same trees on every run. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s % n;
  };
}

const STEMS = ['a', 'ab', 'b', '.a', '...', 'lib', 'Z', '\xff', '\x7f', '\x01'];

function randomName(r: (n: number) => number): Buffer {
  if (r(3) === 0) {
    const tail = 1 + r(255);
    return Buffer.from(STEMS[r(STEMS.length)]! + (r(2) || tail === 0x2f ? '' : String.fromCharCode(tail)), 'latin1');
  }
  const b = Buffer.alloc(1 + r(12));
  for (let i = 0; i < b.length; i++) {
    let c = 1 + r(255);
    if (c === 0x2f) c = 0x30;
    b[i] = c;
  }
  return b.length === 1 && b[0] === 0x2e ? Buffer.from('.x') : b;
}

function randomId(r: (n: number) => number): string {
  let s = '';
  for (let i = 0; i < 64; i++) s += '0123456789abcdef'[r(16)];
  return s;
}

const SIZES = [0, 1, 4095, 65536, 2 ** 32 - 1, 2 ** 32, 5 * 2 ** 32 + 7, 2 ** 45 + 3];

/** A random directory (names unique within it) `depth` levels deep at most. */
function randomDir(r: (n: number) => number, name: Buffer, depth: number): DirNode {
  const children: Node[] = [];
  const seen = new Set<string>();
  const n = r(depth > 0 ? 9 : 14);
  for (let i = 0; i < n; i++) {
    const nm = randomName(r);
    if (seen.has(nm.toString('latin1'))) continue;
    seen.add(nm.toString('latin1'));
    const k = r(10);
    if (k < 5) {
      const size = r(4) === 0 ? SIZES[r(SIZES.length)]! : r(100000);
      children.push({ t: 'file', name: nm, path: nm, size, exe: r(4) === 0, stat: {} as never, id: randomId(r) } satisfies FileNode);
    } else if (k < 7) {
      const target = Buffer.alloc(r(8) === 0 ? 4095 : 1 + r(40), 0x61 + r(26));
      children.push({ t: 'link', name: nm, target } satisfies LinkNode);
    } else if (depth > 0) {
      children.push(randomDir(r, nm, depth - 1));
    }
  }
  return { t: 'dir', name, path: name, children };
}

/** What the pass must give, from encodeTree: every tree by id in the pass's order (children
 * before their parent, the last child's subtree first), each directory's id and size. */
function expected(root: DirNode): { trees: [string, Buffer][]; ids: Map<DirNode, [string, number]> } {
  const trees: [string, Buffer][] = [];
  const ids = new Map<DirNode, [string, number]>();
  const order: DirNode[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const d = stack.pop()!;
    order.push(d);
    for (const c of d.children) if (c.t === 'dir') stack.push(c);
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const d = order[i]!;
    let size = 0;
    const entries: TreeEntry[] = d.children.map((c): TreeEntry => {
      if (c.t === 'link') return { name: c.name, kind: 'symlink', size: c.target.length, target: c.target };
      const [id, sz] = c.t === 'dir' ? ids.get(c)! : [c.id!, c.size];
      size += sz;
      return { name: c.name, kind: c.t === 'dir' ? 'dir' : c.exe ? 'exe' : 'file', size: sz, id: id as Id };
    });
    const bytes = encodeTree(entries);
    ids.set(d, [idOf(bytes), size]);
    trees.push([idOf(bytes), bytes]);
  }
  return { trees, ids };
}

function dirsOf(root: DirNode): DirNode[] {
  const out: DirNode[] = [root];
  for (let i = 0; i < out.length; i++) for (const c of out[i]!.children) if (c.t === 'dir') out.push(c);
  return out;
}

/** The error `fn` throws (fails when it throws none). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  assert.fail('no error thrown');
}

it('an addon built with BLAKE3 (it has hashFiles) has the tree pass too', { skip: process.env.MIQ_JS_TREES === '1' && 'MIQ_JS_TREES=1' }, () => {
  if (miqchunkExport('hashFiles', 'MIQ_NONE') !== undefined) assert.equal(typeof C, 'function');
});

describe('the tree pass in C', { skip: C === undefined && 'the addon has no buildTrees (MIQ_JS_TREES=1, or built without BLAKE3\'s C source)' }, () => {
  it('gives encodeTree\'s bytes, ids, sizes and order over random trees', () => {
    let dirs = 0, entries = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed * 7919);
      const root = randomDir(r, Buffer.alloc(0), 1 + (seed % 4));
      const want = expected(root);
      const got = C!(root, true);
      assert.equal(got.length, want.trees.length * 2, `seed ${seed}: every directory built, none refused`);
      for (let i = 0; i < want.trees.length; i++) {
        assert.equal(got[2 * i], want.trees[i]![0], `seed ${seed}: tree ${i}'s id`);
        assert.deepEqual(got[2 * i + 1], want.trees[i]![1], `seed ${seed}: tree ${i}'s bytes`);
      }
      for (const d of dirsOf(root)) {
        assert.deepEqual([d.id, d.size], want.ids.get(d), `seed ${seed}: a directory's id and size`);
        entries += d.children.length;
      }
      dirs += want.trees.length;
      assert.equal(C!(root, true).length, 0, 'a built root: nothing to do');
    }
    assert.ok(dirs > 1000 && entries > 5000, `${dirs} directories, ${entries} entries`);
  });

  it('buildCompleteTrees: the same trees in the same order as encodeTree, incrementally too', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const r = rng(seed * 104729);
      const root = randomDir(r, Buffer.alloc(0), 3);
      const want = expected(root);
      // Take some ids away: the first pass builds what it can, the second the rest.
      const held: [FileNode, string][] = [];
      for (const d of dirsOf(root)) for (const c of d.children) if (c.t === 'file' && r(6) === 0) { held.push([c, c.id!]); delete c.id; }
      const out = new Map<Id, Buffer>();
      const first = buildCompleteTrees(root, out);
      for (const d of dirsOf(root)) {
        const ready = d.children.every((c) => c.t === 'link' || c.id !== undefined);
        if (d.id !== undefined) assert.ok(ready, 'built only when every entry has an id');
      }
      if (held.length > 0) assert.throws(() => buildTrees(root, new Map(out)), (e: unknown) => isMiqError(e, 'MIQ_BAD_INPUT') && /has no id/.test((e as Error).message));
      for (const [f, id] of held) f.id = id;
      const second = buildCompleteTrees(root, out);
      assert.equal(first + second, want.trees.length, `seed ${seed}`);
      const wantMap = new Map(want.trees);
      assert.deepEqual([...out.keys()].sort(), [...wantMap.keys()].sort(), `seed ${seed}: the same trees`);
      for (const [id, bytes] of out) assert.deepEqual(bytes, wantMap.get(id as string));
      if (held.length === 0) assert.deepEqual([...out.keys()], [...wantMap.keys()], `seed ${seed}: in the same order`);
      assert.equal(root.id, want.ids.get(root)![0]);
    }
  });

  it('refuses what encodeTree refuses, with encodeTree\'s error', () => {
    const A = idOf(Buffer.from('a'));
    const file = (name: Buffer | string, over: Partial<FileNode> = {}): FileNode => ({ t: 'file', name: Buffer.from(name as string, 'latin1'), path: Buffer.from('p'), size: 1, exe: false, stat: {} as never, id: A, ...over });
    const link = (name: string, target: Buffer): LinkNode => ({ t: 'link', name: Buffer.from(name), target });
    const cases: [string, Node[]][] = [
      ['empty name', [file('')]],
      ['"."', [file('.')]],
      ['".."', [file('..')]],
      ['a slash', [file('a/b')]],
      ['a NUL', [file('a\0b')]],
      ['a name of 65536 bytes', [file(Buffer.alloc(65536, 0x61))]],
      ['a duplicate', [file('x'), file('y'), file('x')]],
      ['a duplicate dir and file', [file('x'), { t: 'dir', name: Buffer.from('x'), path: Buffer.from('x'), children: [], id: A, size: 0 }]],
      ['an empty symlink target', [link('l', Buffer.alloc(0))]],
      ['a symlink target of 4096 bytes', [link('l', Buffer.alloc(4096, 0x61))]],
      ['no id', [file('f', { id: undefined })]],
      ['an uppercase id', [file('f', { id: A.toUpperCase() })]],
      ['an id of 63 characters', [file('f', { id: A.slice(1) })]],
      ['an id of 65 characters', [file('f', { id: `${A}0` })]],
      ['an id with a non-hex character', [file('f', { id: `${A.slice(0, 63)}g` })]],
      ['an id with a character past Latin-1 whose low byte is hex', [file('f', { id: `${A.slice(0, 63)}\u0161` })]],
      ['a negative size', [file('f', { size: -1 })]],
      ['a size past 2^53', [file('f', { size: 2 ** 53 })]],
      ['a fractional size', [file('f', { size: 1.5 })]],
      ['a NaN size', [file('f', { size: NaN })]],
    ];
    for (const [what, children] of cases) {
      const bad: DirNode = { t: 'dir', name: Buffer.from('bad'), path: Buffer.from('bad'), children };
      const ok: DirNode = { t: 'dir', name: Buffer.from('ok'), path: Buffer.from('ok'), children: [file('z')] };
      const root: DirNode = { t: 'dir', name: Buffer.alloc(0), path: Buffer.from('.'), children: [ok, bad] };
      // The JS encoding's own error for these entries.
      const entries: TreeEntry[] = children.map((c) => c.t === 'link' ? { name: c.name, kind: 'symlink', size: c.target.length, target: c.target } : { name: c.name, kind: c.t === 'dir' ? 'dir' : 'file', size: c.size!, id: c.id as Id });
      const want = thrown(() => encodeTree(entries));
      assert.ok(isMiqError(want, 'MIQ_BAD_INPUT'), what);
      // The C pass stops at that directory and hands it back (after building "ok", visited first).
      const got = C!(root, true);
      assert.equal(got.length, 3, `${what}: refused by the C pass`);
      assert.equal(got[2], bad, what);
      assert.equal(ok.id, got[0]);
      assert.equal(bad.id, undefined, what);
      delete ok.id; delete ok.size;
      // buildTrees throws encodeTree's error, as it did before the C pass.
      const e = thrown(() => buildTrees(root));
      assert.ok(isMiqError(e, 'MIQ_BAD_INPUT'), what);
      assert.equal(e.message, want.message, what);
      assert.equal(root.id, undefined, what);
    }
  });

  it('a directory with an entry not yet given an id waits (not refused) unless it is the commit', () => {
    const f: FileNode = { t: 'file', name: Buffer.from('f'), path: Buffer.from('f'), size: 1, exe: true, stat: {} as never };
    const root: DirNode = { t: 'dir', name: Buffer.alloc(0), path: Buffer.from('.'), children: [f, { t: 'link', name: Buffer.from('l'), target: Buffer.from('f') }] };
    assert.deepEqual(C!(root, false), []);
    assert.equal(C!(root, true)[0], root, 'the commit: refused (no id)');
    f.id = idOf(Buffer.from('f'));
    const got = C!(root, false);
    assert.equal(got.length, 2);
    assert.equal(got[0], root.id);
    assert.equal(root.size, 1);
    assert.deepEqual(got[1], encodeTree([{ name: f.name, kind: 'exe', size: 1, id: f.id as Id }, { name: Buffer.from('l'), kind: 'symlink', size: 1, target: Buffer.from('f') }]));
    assert.deepEqual(C!(root, true), [], 'a built root: nothing to do');
  });

  it('takes the largest size encodeTree takes (2^53 - 1)', () => {
    const f: FileNode = { t: 'file', name: Buffer.from('f'), path: Buffer.from('f'), size: 2 ** 53 - 1, exe: false, stat: {} as never, id: idOf(Buffer.from('f')) };
    const root: DirNode = { t: 'dir', name: Buffer.alloc(0), path: Buffer.from('.'), children: [f] };
    const got = C!(root, true);
    assert.deepEqual(got[1], encodeTree([{ name: f.name, kind: 'file', size: f.size, id: f.id as Id }]));
    assert.equal(root.size, 2 ** 53 - 1);
  });

  it('refuses wrong calls with a TypeError', () => {
    assert.throws(() => (C as unknown as (...a: unknown[]) => unknown)(), TypeError);
    assert.throws(() => (C as unknown as (...a: unknown[]) => unknown)(1, true), TypeError);
    assert.throws(() => (C as unknown as (...a: unknown[]) => unknown)({ children: [] }, 1), TypeError);
  });
});
