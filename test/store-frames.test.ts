/**
 * Shared frames (codec.ts FLAG_FRAME): small files compressed together into one pack entry, each
 * still its own chunk in the index. A local store really ingests, reads, verifies, damages and
 * collects them here; after a flipped byte in a frame each chunk in it reads back exactly or is
 * MIQ_CORRUPT (its own hash decides), never wrong bytes; gc's repack copies a frame once and
 * keeps its live chunks readable.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, readSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Store } from '../store/api.js';
import { FLAG_FRAME, FRAME_BYTES, FRAME_ITEM_MAX } from '../store/codec.js';
import { isMiqError } from '../store/errors.js';
import { gcStore } from '../store/gc.js';
import { type Id, idOf } from '../store/ids.js';
import { FrameBuilder, type CompressedItem } from '../store/ingest-worker.js';
import type { FileRecord, Tree } from '../store/objects.js';
import { openStore } from '../store/open.js';
import { decodeLocation, encodeLocation } from '../store/pack.js';
import { verifyStore } from '../store/verify.js';

const tmp = await mkdtemp(join(tmpdir(), 'miq-frames-'));
after(() => rm(tmp, { recursive: true, force: true }));
const code = (c: string) => (e: unknown) => isMiqError(e) && e.code === c;

/** Small text files, each different (a counter and some random words), compressible together. */
function smallFiles(prefix: string, n: number): Map<string, Buffer> {
  const words = ['store', 'chunk', 'frame', 'index', 'pack', 'tree', 'file', 'hash'];
  const out = new Map<string, Buffer>();
  for (let i = 0; i < n; i++) {
    const lines: string[] = [];
    for (let l = 0; l < 40 + (i % 30); l++) lines.push(`${prefix} ${i} line ${l}: ${words[(i * 7 + l) % 8]} ${randomBytes(3).toString('hex')}`);
    out.set(`${prefix}/f${i}.txt`, Buffer.from(lines.join('\n')));
  }
  return out;
}

async function writeTree(dir: string, files: Map<string, Buffer>): Promise<void> {
  for (const [rel, b] of files) {
    await mkdir(join(dir, rel, '..'), { recursive: true });
    await writeFile(join(dir, rel), b);
  }
}

async function fileAt(s: Store, tree: Id, rel: string): Promise<FileRecord> {
  let t: Tree | undefined = await s.getTree(tree);
  const parts = rel.split('/');
  for (const [i, p] of parts.entries()) {
    const e = t!.entries.find((x) => x.name.toString() === p)!;
    if (i === parts.length - 1) return (await s.getFile(e.id!))!;
    t = await s.getTree(e.id!);
  }
  throw new Error('unreachable');
}

/** Pack entries of `flags` in a store's packs: [pack file, body offset, stored length]. */
function entries(storeDir: string, flags: number): [string, number, number][] {
  const out: [string, number, number][] = [];
  const dir = join(storeDir, 'packs');
  for (const p of readdirSync(dir)) {
    const data = readFileSync(join(dir, p));
    for (let at = 0; at + 48 <= data.length;) {
      assert.equal(data.subarray(at, at + 4).toString(), 'MQCK', 'packs hold whole entries');
      const stored = data.readUInt32BE(at + 12);
      if (data[at + 4] === flags) out.push([join(dir, p), at + 48, stored]);
      at += 48 + stored;
    }
  }
  return out;
}

describe('shared frames', () => {
  it('locations of framed chunks round-trip; a slice beyond its frame is MIQ_CORRUPT', () => {
    const loc = { pack: 3, offset: 4096, stored: 900, plain: 120, flags: FLAG_FRAME, frame: { off: 300, size: 2000 } };
    assert.deepEqual(decodeLocation(encodeLocation(loc)), loc);
    assert.throws(() => decodeLocation(encodeLocation({ ...loc, frame: { off: 1950, size: 2000 } })), code('MIQ_CORRUPT'));
  });

  it('FrameBuilder: small chunks share a frame; one chunk alone or incompressible bytes stay separate', () => {
    const out: CompressedItem[] = [];
    const fb = new FrameBuilder(out);
    const texts = [...smallFiles('t', 5).values()];
    for (const t of texts) fb.add(idOf(t), t);
    fb.seal();
    assert.equal(out.length, 1);
    assert.equal(out[0]!.flags, FLAG_FRAME);
    assert.deepEqual(out[0]!.members!.map((m) => m.id), texts.map(idOf));
    const noise = [randomBytes(5000), randomBytes(7000)];
    for (const n of noise) fb.add(idOf(n), n);
    fb.seal();
    fb.add(idOf(texts[0]!), texts[0]!);
    fb.seal();
    assert.deepEqual(out.slice(1).map((o) => [o.id, o.flags, o.members]), [[idOf(noise[0]!), 0, undefined], [idOf(noise[1]!), 0, undefined], [idOf(texts[0]!), 1, undefined]]);
    // A frame closes once FRAME_BYTES are in.
    const many: CompressedItem[] = [];
    const fb2 = new FrameBuilder(many);
    const big = Buffer.from('x'.repeat(FRAME_ITEM_MAX));
    for (let i = 0; i < (2 * FRAME_BYTES) / FRAME_ITEM_MAX; i++) {
      const b = Buffer.concat([big.subarray(8), Buffer.from(String(i).padStart(8))]);
      fb2.add(idOf(b), b);
    }
    fb2.seal();
    assert.equal(many.length, 2);
  });

  it('ingest frames small files; they read back, reopen, verify; gc repack keeps the live ones', async () => {
    const dir = join(tmp, 'store');
    const src = join(tmp, 'src');
    const a = smallFiles('a', 60), b = smallFiles('b', 60);
    await writeTree(src, new Map([...a, ...b, ['a/dead.bin', randomBytes(400_000)]]));
    let s = await openStore(dir);
    const all = await s.ingest(src, { name: 'all' });
    const frames = entries(dir, FLAG_FRAME).length;
    assert.ok(frames >= 1 && frames <= 10, `120 small files went into a few frames (${frames})`);
    for (const [rel, want] of [...a, ...b]) {
      const f = await fileAt(s, all.tree, rel);
      assert.ok((await s.readFile(f, 0, f.size)).equals(want), rel);
    }
    await s.close();
    s = await openStore(dir);
    const f = await fileAt(s, all.tree, 'b/f7.txt');
    assert.ok((await s.chunks.get(f.chunks[0]!.id))!.equals(b.get('b/f7.txt')!));
    assert.equal((await verifyStore(s.maintenance!)).ok, true);

    // Only b/ stays live: its frames (shared with a/'s chunks) are copied by the repack.
    const onlyB = join(tmp, 'only-b');
    await writeTree(onlyB, new Map([...b].map(([k, v]) => [k.slice(2), v])));
    const bp = await s.ingest(onlyB, { name: 'b' });
    assert.equal(bp.newChunks, 0, 'b/ was all known');
    await s.unpin(all.path);
    const g = await gcStore(s.maintenance!);
    assert.ok(g.repackedPacks >= 1, 'the pack was rewritten');
    for (const [rel, want] of b) {
      const ff = await fileAt(s, bp.tree, rel.slice(2));
      assert.ok((await s.readFile(ff, 0, ff.size)).equals(want), rel);
    }
    const v = await verifyStore(s.maintenance!);
    assert.equal(v.ok, true);
    assert.equal(v.unreferenced.chunks, 0);
    await s.close();
  });

  it('a flipped byte in a frame: a chunk reads back exactly or is MIQ_CORRUPT, never wrong bytes; verify names the bad ones', async () => {
    const dir = join(tmp, 'damaged');
    const src = join(tmp, 'src-damaged');
    const files = smallFiles('d', 30);
    await writeTree(src, files);
    let s = await openStore(dir);
    const r = await s.ingest(src, { name: 'd' });
    await s.close();
    const frames = entries(dir, FLAG_FRAME);
    assert.equal(frames.length, 1, 'one frame holds the 30 files');
    const [pack, body, stored] = frames[0]!;
    const fd = openSync(pack, 'r+');
    const one = Buffer.alloc(1);
    readSync(fd, one, 0, 1, body + (stored >> 1));
    one[0]! ^= 0x20;
    writeSync(fd, one, 0, 1, body + (stored >> 1));
    closeSync(fd);
    s = await openStore(dir);
    // zstd frames carry no checksum here: the flip changes the bytes from some point of the
    // frame on (or breaks its decoding), so chunks before it may still be sound. Each chunk's own
    // hash decides.
    const bad: string[] = [];
    for (const [rel, want] of files) {
      const f = await fileAt(s, r.tree, rel);
      try {
        assert.ok((await s.readFile(f, 0, f.size)).equals(want), `${rel} read back wrong bytes`);
      } catch (e) {
        if (!code('MIQ_CORRUPT')(e)) throw e;
        await assert.rejects(s.chunks.get(f.chunks[0]!.id), code('MIQ_CORRUPT'));
        bad.push(f.chunks[0]!.id);
      }
    }
    assert.ok(bad.length >= 1, 'the flip is detected');
    const v = await verifyStore(s.maintenance!);
    assert.equal(v.ok, false);
    assert.deepEqual(v.damaged.filter((d) => d.kind === 'chunk').map((d) => d.id).sort(), bad.sort());
    await s.close();
  });
});

describe('format version', () => {
  const header = async (dir: string, v?: number): Promise<number> => {
    const { ClassicLevel } = await import('classic-level');
    const db = new ClassicLevel<string, Buffer>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    const h = JSON.parse((await db.get('F'))!.toString()) as { version: number };
    if (v !== undefined) await db.put('F', Buffer.from(JSON.stringify({ ...h, version: v })), { sync: true });
    await db.close();
    return h.version;
  };

  it('an older store reads and is raised to the current version when opened writable, so an older miq refuses it instead of calling new records damage', async () => {
    const dir = join(tmp, 'v1');
    const src = join(tmp, 'v1-src');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'a.txt'), 'version one\n');
    let s = await openStore(dir);
    const p = (await s.ingest(src, { name: 'v1' })).path;
    await s.close();
    assert.equal(await header(dir, 1), 3, 'a new store is written as version 3');
    s = await openStore(dir);
    try {
      const t = await s.getTree((await s.getStorePath(p))!.tree);
      const f = (await s.getFile(t!.entries.find((e) => e.name.toString() === 'a.txt')!.id!))!;
      assert.equal((await s.readFile(f, 0, f.size)).toString(), 'version one\n');
    } finally {
      await s.close();
    }
    assert.equal(await header(dir), 3, 'opening a version-1 store writable raises its header');
    await header(dir, 4);
    await assert.rejects(openStore(dir), (e: unknown) => isMiqError(e) && e.code === 'MIQ_FORMAT' && /format version 4.*upgrade miq/.test(e.message));
  });

  it('version 3 keeps a one-chunk file as its size in the index; a version-2 store with full records reads, verifies, collects and takes new ingests', async () => {
    const { ClassicLevel } = await import('classic-level');
    const { encodeFileRecord } = await import('../store/objects.js');
    const dir = join(tmp, 'v2');
    const src = join(tmp, 'v2-src');
    const big = randomBytes(700 * 1024); // several chunks: keeps the full record
    await writeTree(src, new Map([['one.txt', Buffer.from('one chunk\n')], ['big.bin', big], ['empty', Buffer.alloc(0)]]));
    let s = await openStore(dir);
    const p = (await s.ingest(src, { name: 'v2' })).path;
    const t = (await s.getTree((await s.getStorePath(p))!.tree))!;
    const idOfName = (n: string): Id => t.entries.find((e) => e.name.toString() === n)!.id!;
    const recs = new Map<Id, FileRecord>();
    for (const n of ['one.txt', 'big.bin', 'empty']) recs.set(idOfName(n), (await s.getFile(idOfName(n)))!);
    await s.close();
    assert.equal(recs.get(idOfName('one.txt'))!.chunks.length, 1);
    assert.ok(recs.get(idOfName('big.bin'))!.chunks.length > 1);

    // What this miq wrote: 12 bytes for the one-chunk file, the full record for the others.
    let db = new ClassicLevel<string, Buffer>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    assert.equal((await db.get(`f/${idOfName('one.txt')}`))!.length, 12);
    assert.deepEqual(await db.get(`f/${idOfName('big.bin')}`), encodeFileRecord(recs.get(idOfName('big.bin'))!));
    assert.deepEqual(await db.get(`f/${idOfName('empty')}`), encodeFileRecord(recs.get(idOfName('empty'))!));
    // Made into what a version-2 miq writes: every record in full.
    for (const [id, rec] of recs) await db.put(`f/${id}`, encodeFileRecord(rec));
    assert.equal((await db.get('l/big.bin'))!.toString('hex'), idOfName('big.bin'), 'the last-file entry holds the id in 32 bytes');
    await db.put('l/big.bin', Buffer.from(idOfName('big.bin'), 'latin1')); // format 2: the hex
    await db.close();
    await header(dir, 2);

    s = await openStore(dir);
    try {
      for (const [id, rec] of recs) assert.deepEqual(await s.getFile(id), rec);
      const one = (await s.getFile(idOfName('one.txt')))!;
      assert.equal((await s.readFile(one, 0, one.size)).toString(), 'one chunk\n');
      const b = (await s.getFile(idOfName('big.bin')))!;
      assert.ok((await s.readFile(b, 0, b.size)).equals(big));
      assert.equal((await verifyStore(s.maintenance!)).ok, true);
      // A new one-chunk file beside the old full records, then gc of the old path.
      const src2 = join(tmp, 'v2-src2');
      await writeTree(src2, new Map([['two.txt', Buffer.from('two chunk\n')], ['one.txt', Buffer.from('one chunk\n')], ['big.bin', big]]));
      const p2 = (await s.ingest(src2, { name: 'v2b' })).path;
      await s.unpin(p);
      await gcStore(s.maintenance!);
      const t2 = (await s.getTree((await s.getStorePath(p2))!.tree))!;
      for (const e of t2.entries) {
        const f = (await s.getFile(e.id!))!;
        const got = await s.readFile(f, 0, f.size);
        if (e.name.toString() === 'big.bin') assert.ok(got.equals(big));
        else assert.equal(got.toString(), `${e.name.toString().slice(0, 3)} chunk\n`);
      }
      const v = await verifyStore(s.maintenance!);
      assert.equal(v.ok, true);
      assert.equal(v.unreferenced.chunks, 0);
    } finally {
      await s.close();
    }
    assert.equal(await header(dir), 3, 'raised to 3 when opened writable');
    db = new ClassicLevel<string, Buffer>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    try {
      // gc read the format-2 last-file entry as naming a live file: it is still there, as it was.
      assert.equal((await db.get('l/big.bin'))!.toString('latin1'), idOfName('big.bin'));
      // A flipped size in a one-chunk record is caught by the chunk's length, never served short.
      const key = `f/${idOf(Buffer.from('two chunk\n'))}`;
      const v = (await db.get(key))!;
      assert.equal(v.length, 12);
      v[11] ^= 1;
      await db.put(key, v);
    } finally {
      await db.close();
    }
    s = await openStore(dir);
    try {
      const v = await verifyStore(s.maintenance!);
      assert.equal(v.ok, false);
      assert.ok(v.damaged.some((d) => d.id === idOf(Buffer.from('two chunk\n'))), JSON.stringify(v.damaged));
    } finally {
      await s.close();
    }
  });
});
