/**
 * One conformance suite for the Store interface family, run against every implementation
 * (test/conformance.test.ts): memory, local, layered (lazy, over nginx), HTTP (nginx) and the
 * mount's control-socket proxy. Each implementation supplies a harness: the store with the
 * fixture tree in it, and a way to damage one chunk where that implementation keeps it. A check
 * missing from one implementation (a chunk returned without re-hashing it, a write that skips
 * its verification) fails here.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Store } from '../../store/api.js';
import { isMiqError } from '../../store/errors.js';
import { type Id, idOf } from '../../store/ids.js';
import type { FileRecord, Tree } from '../../store/objects.js';

export interface Harness {
  store: Store;
  /** The store path holding the fixture tree. */
  path: string;
  /** Flips a byte of chunk `id` where this implementation keeps it; returns the store to use
   * from then on (an implementation may reopen to get past its caches of verified bytes). */
  damage(id: Id): Promise<Store>;
  /** Closes and opens the same store again (persistent implementations). */
  reopen?(): Promise<Store>;
  /** Writes go somewhere (false: a read-only remote). */
  writable: boolean;
  cleanup(): Promise<void>;
}

export interface Impl {
  name: string;
  /** A store holding the tree at `fixture` as one store path. */
  setup(fixture: string, tmp: string): Promise<Harness>;
}

/** The fixture: files around and across chunk boundaries, an executable, a symlink, nesting,
 * an empty file. Random content so chunks do not dedup away. */
export async function makeFixture(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>([
    ['a.txt', Buffer.from('hello, store\n')],
    ['empty', Buffer.alloc(0)],
    ['bin/tool', randomBytes(5000)],
    ['share/big.bin', randomBytes(1_500_000)],
    ['share/deep/er/mid.bin', randomBytes(200_000)],
  ]);
  for (const [rel, b] of files) {
    await mkdir(join(dir, rel, '..'), { recursive: true });
    await writeFile(join(dir, rel), b);
  }
  await chmod(join(dir, 'bin/tool'), 0o755);
  await symlink('../a.txt', join(dir, 'bin/link'));
  return files;
}

async function fileAt(s: Store, tree: Id, rel: string): Promise<FileRecord> {
  let t: Tree | undefined = await s.getTree(tree);
  const parts = rel.split('/');
  for (let i = 0; i < parts.length; i++) {
    assert.ok(t, `tree for ${parts.slice(0, i).join('/') || '.'}`);
    const e = t.entries.find((x) => x.name.toString() === parts[i]);
    assert.ok(e, `entry ${parts.slice(0, i + 1).join('/')}`);
    if (i === parts.length - 1) {
      const f = await s.getFile(e.id!);
      assert.ok(f, `file record of ${rel}`);
      return f;
    }
    t = await s.getTree(e.id!);
  }
  throw new Error('unreachable');
}

const rejectsWith = (code: string) => (e: unknown) => isMiqError(e) && e.code === code;

export function storeConformance(impl: Impl, tmpRoot: () => string): void {
  describe(`Store conformance: ${impl.name}`, () => {
    let h: Harness;
    let s: Store;
    let files: Map<string, Buffer>;
    let tree: Id;

    before(async () => {
      const fx = join(tmpRoot(), `${impl.name}-fixture`);
      files = await makeFixture(fx);
      h = await impl.setup(fx, tmpRoot());
      s = h.store;
      const rec = await s.getStorePath(h.path);
      assert.ok(rec, 'the fixture store path is there');
      tree = rec.tree;
    });
    after(async () => {
      await h?.cleanup();
    });

    it('round trip: trees, file records and every byte range read back as written', async () => {
      const root = await s.getTree(tree);
      assert.deepEqual(root!.entries.map((e) => e.name.toString()).sort(), ['a.txt', 'bin', 'empty', 'share']);
      const bin = await s.getTree(root!.entries.find((e) => e.name.toString() === 'bin')!.id!);
      const link = bin!.entries.find((e) => e.name.toString() === 'link')!;
      assert.equal(link.kind, 'symlink');
      assert.equal(link.target!.toString(), '../a.txt');
      assert.equal(bin!.entries.find((e) => e.name.toString() === 'tool')!.kind, 'exe');
      for (const [rel, bytes] of files) {
        const f = await fileAt(s, tree, rel);
        assert.equal(f.size, bytes.length, rel);
        assert.equal(f.id, idOf(bytes), rel);
        assert.ok((await s.readFile(f, 0, f.size)).equals(bytes), `${rel} whole`);
        const n = bytes.length;
        for (const [off, len] of [[0, 10], [Math.floor(n / 3), 300_000], [Math.max(0, n - 5), 100], [n, 10], [n + 5, 10], [1, 0]] as const) {
          const got = await s.readFile(f, off, len);
          assert.ok(got.equals(bytes.subarray(Math.min(off, n), Math.min(n, off + Math.max(0, len)))), `${rel} [${off}, +${len})`);
        }
      }
    });

    it('chunks: get returns verified bytes and has agrees; absent things are undefined, not errors', async () => {
      const f = await fileAt(s, tree, 'share/big.bin');
      assert.ok(f.chunks.length > 1, 'the big file has several chunks');
      const c = f.chunks[1]!;
      const b = await s.chunks.get(c.id);
      assert.ok(b && b.length === c.length && idOf(b) === c.id);
      assert.equal(await s.chunks.has(c.id), true);
      const nobody = idOf(Buffer.from(`not in any store ${impl.name}`));
      assert.equal(await s.chunks.get(nobody), undefined);
      assert.equal(await s.chunks.has(nobody), false);
      assert.equal(await s.getFile(nobody), undefined);
      assert.equal(await s.getTree(nobody), undefined);
      assert.equal(await s.getStorePath(`nothing-${'0'.repeat(32)}`), undefined);
    });

    it('absent: a chunk a file record names is MIQ_MISSING (damage, EIO), not NOT_FOUND and never short bytes', async () => {
      const nobody = idOf(Buffer.from(`chunk in no store ${impl.name}`));
      const f = await fileAt(s, tree, 'a.txt');
      // The record names a chunk nobody has: the store cannot serve what it says it holds.
      await assert.rejects(s.readFile({ id: f.id, size: f.size, chunks: [{ id: nobody, length: f.size }] }, 0, f.size), rejectsWith('MIQ_MISSING'));
    });

    it('concurrency: many overlapping reads at once all return the right bytes', async () => {
      const big = files.get('share/big.bin')!;
      const f = await fileAt(s, tree, 'share/big.bin');
      const jobs = Array.from({ length: 48 }, (_, i) => {
        const off = (i * 31_337) % big.length;
        const len = 1 + ((i * 7919) % 400_000);
        return s.readFile(f, off, len).then((got) => assert.ok(got.equals(big.subarray(off, Math.min(big.length, off + len))), `read ${i}`));
      });
      await Promise.all(jobs);
    });

    it('writes: putBytes reads back; a batch with a chunk that does not hash to its id is refused whole', { skip: false }, async (t) => {
      if (!h.writable) {
        await assert.rejects(s.putBytes(Buffer.from('x')), rejectsWith('MIQ_READ_ONLY'));
        await assert.rejects(s.batchMeta([{ key: 'k', value: Buffer.from('v') }]), rejectsWith('MIQ_READ_ONLY'));
        t.diagnostic('read-only: writes refused');
        return;
      }
      const data = randomBytes(700_000);
      const rec = await s.putBytes(data);
      assert.equal(rec.id, idOf(data));
      assert.ok((await s.readFile((await s.getFile(rec.id))!, 0, data.length)).equals(data));
      if (s.writer) {
        const good = randomBytes(1000), bad = randomBytes(1000);
        const fake = idOf(randomBytes(10));
        await assert.rejects(s.writer.writeObjects({ chunks: [{ id: idOf(good), plain: good }, { id: fake, plain: bad }] }), rejectsWith('MIQ_CORRUPT'));
        assert.equal(await s.chunks.has(idOf(good)), false, 'nothing of a refused batch lands');
        assert.equal(await s.chunks.has(fake), false);
        await s.writer.writeObjects({ chunks: [{ id: idOf(good), plain: good }], files: [{ id: idOf(good), size: 1000, chunks: [{ id: idOf(good), length: 1000 }] }] });
        assert.ok((await s.chunks.get(idOf(good)))!.equals(good));
        assert.ok(await s.getFile(idOf(good)));
      }
      await assert.rejects(s.putStorePath({ path: `orphan-${'1'.repeat(32)}`, name: 'orphan', key: idOf(Buffer.from('k')), tree: idOf(Buffer.from('no such tree')), references: [], size: 0, files: 0, made: { kind: 'ingest' }, signatures: [] }), rejectsWith('MIQ_MISSING'));
      await s.batchMeta([{ key: 'conf/a', value: Buffer.from('1') }, { key: 'conf/b', value: Buffer.from('2') }]);
      await s.batchMeta([{ key: 'conf/a', value: undefined }]);
      assert.equal(await s.getMeta('conf/a'), undefined);
      assert.deepEqual((await s.listMeta('conf/')).map((m) => [m.key, m.value.toString()]), [['conf/b', '2']]);
      await assert.rejects(s.pin(`nothing-${'0'.repeat(32)}`), rejectsWith('MIQ_NOT_FOUND'));
    });

    it('close and reopen: what was written is still there; close twice is harmless', async (t) => {
      if (!h.reopen) {
        t.diagnostic('not persistent');
        return;
      }
      s = await h.reopen();
      h.store = s;
      assert.ok(await s.getStorePath(h.path), 'a new session starts from the store path');
      const f = await fileAt(s, tree, 'share/deep/er/mid.bin');
      assert.ok((await s.readFile(f, 0, f.size)).equals(files.get('share/deep/er/mid.bin')!));
      if (h.writable) assert.deepEqual((await s.listMeta('conf/')).map((m) => m.key), ['conf/b']);
    });

    it('damage: a flipped byte is MIQ_CORRUPT on every read path, never returned; other files still read', async () => {
      const f = await fileAt(s, tree, 'share/big.bin');
      const victim = f.chunks[1]!;
      const starts = f.chunks[0]!.length;
      s = await h.damage(victim.id);
      h.store = s;
      assert.ok(await s.getStorePath(h.path));
      await assert.rejects(s.chunks.get(victim.id), rejectsWith('MIQ_CORRUPT'));
      const f2 = (await s.getFile(f.id))!;
      await assert.rejects(s.readFile(f2, starts + 10, 100), rejectsWith('MIQ_CORRUPT'));
      await assert.rejects(s.readFile(f2, 0, f2.size), rejectsWith('MIQ_CORRUPT'));
      const ok = await fileAt(s, tree, 'share/deep/er/mid.bin');
      assert.ok((await s.readFile(ok, 0, ok.size)).equals(files.get('share/deep/er/mid.bin')!));
      assert.ok((await s.readFile(f2, 0, starts)).equals(files.get('share/big.bin')!.subarray(0, starts)), 'the sound chunk before it still reads');
    });
  });
}

/** Flips one byte in the middle of `file` (a chunk's file in a remote folder). */
export async function flipFileByte(file: string): Promise<void> {
  const b = await readFile(file);
  b[Math.floor(b.length / 2)] ^= 0x20;
  await writeFile(file, b);
}
