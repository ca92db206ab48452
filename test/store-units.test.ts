/**
 * Unit tests of the store's small modules: ingest's planning (scheduling, delta bases, trees,
 * references), the range and chunk-read modules, packs, the codec, the LRU and the walk.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { existsSync, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PackFds, decodeVerified, preadStored } from '../store/chunkread.js';
import { FLAG_RAW, FLAG_ZSTD, FLAG_ZSTD_DICT, decodeChunk, encodeChunk, encodeChunkWithDict } from '../store/codec.js';
import { isMiqError } from '../store/errors.js';
import { type Id, idOf } from '../store/ids.js';
import { basesFor, deltaRefs, DeltaPlanner, DELTA_MAX_DEPTH, DELTA_MAX_REFS, type Base } from '../store/ingest-delta.js';
import { ALONE_BYTES, ADAPT_AFTER_BYTES, ADAPT_AFTER_FILES, SMALL_BATCH_FILES, SMALL_BATCH_BYTES, ScanSchedule, takeBatch } from '../store/ingest-schedule.js';
import { buildCompleteTrees, buildTrees, resolveReferences } from '../store/ingest-trees.js';
import { encodeStatEntry, statEntryFile, statEntryHit, statEntryId } from '../store/ingest-statcache.js';
import type { BaseChunk } from '../store/ingest-worker.js';
import { ByteLru, Lru, Mutex } from '../store/lru.js';
import { decodeTree } from '../store/objects.js';
import { decodeLocation, encodeLocation, packFileName, PackReader, PackWriter } from '../store/pack.js';
import { chunkAt, chunkSpan, chunkStarts, readRange } from '../store/range.js';
import { THREADED_WALK, walk, walkHere, type DirNode, type FileNode, type Node, type WalkResult } from '../store/walk.js';
import { KIND_DIR, NATIVE_WALK, traverse, type Entry } from '../store/walk-sync.js';
import { miqchunkExport } from '../store/miqchunk.js';
import { destroyPool, poolSize, poolStarted, poolThreads, warmPool } from '../store/pool.js';
import { scanRefs } from '../store/refscan.js';
import { taskFiles } from './helpers/files.js';

// binding.gyp builds hashFiles where Debian's librust-blake3-dev put BLAKE3's C source; with that
// source present a missing hashFiles is a build defect, not a skip.
const BLAKE3_SOURCE = existsSync('/usr/share/cargo/registry') && readdirSync('/usr/share/cargo/registry').some((n) => n.startsWith('blake3-'));
const WARM_TREE = miqchunkExport<(root: Uint8Array, threads: number) => void>('warmTree', 'MIQ_JS_WALK');
const HASH_FILES = miqchunkExport<(files: { path: Uint8Array; size: number }[]) => Buffer>('hashFiles', 'MIQ_JS_HASH');
/** The same work on libuv's thread pool (the ingest's main thread calls it for an update). */
const HASH_FILES_ASYNC = miqchunkExport<(files: { path: Uint8Array; size: number }[]) => Promise<Buffer>>('hashFilesAsync', 'MIQ_JS_HASH');

const tmp = await mkdtemp(join(tmpdir(), 'miq-units-'));
after(() => rm(tmp, { recursive: true, force: true }));
const code = (c: string) => (e: unknown) => isMiqError(e) && e.code === c;
const sized = (...sizes: number[]) => sizes.map((size, i) => ({ size, i }));

describe('ingest scheduling', () => {
  it('takeBatch: up to the file and byte limits; a big file only ever alone', () => {
    assert.deepEqual(takeBatch(sized(1, 2, 3), 0, 2, 100).map((f) => f.i), [0, 1]);
    assert.deepEqual(takeBatch(sized(60, 50, 3), 0, 10, 100).map((f) => f.i), [0], 'the byte limit');
    assert.deepEqual(takeBatch(sized(200), 0, 10, 100).map((f) => f.i), [0], 'one file over the limit still goes');
    assert.deepEqual(takeBatch(sized(1, ALONE_BYTES + 1, 1), 0, 10, 1 << 30).map((f) => f.i), [0]);
    assert.deepEqual(takeBatch(sized(1, ALONE_BYTES + 1, 1), 1, 10, 1 << 30).map((f) => f.i), [1]);
    assert.deepEqual(takeBatch(sized(1, 2), 2, 10, 100), []);
  });

  it('small files wait for a worthwhile batch while the walk runs, and go in batches', () => {
    const s = new ScanSchedule<{ size: number; i: number }>(false);
    for (const f of sized(...Array<number>(SMALL_BATCH_FILES / 4 - 1).fill(100))) s.add(f);
    assert.equal(s.next(false), undefined, 'not yet worth a task');
    assert.equal(s.next(true)?.files.length, SMALL_BATCH_FILES / 4 - 1, 'the walk is done: what there is');
    for (let i = 0; i < SMALL_BATCH_FILES * 2 + 5; i++) s.add({ size: 10, i });
    const a = s.next(false)!, b = s.next(false)!, c = s.next(true)!;
    assert.deepEqual([a.kind, a.files.length, b.files.length, c.files.length], ['scan', SMALL_BATCH_FILES, SMALL_BATCH_FILES, 5]);
    assert.equal(s.next(true), undefined);
    assert.equal(s.queued, SMALL_BATCH_FILES / 4 - 1 + SMALL_BATCH_FILES * 2 + 5);
  });

  it('hash-first for large files into a store with files; unknown ones are rescanned first; mostly-new turns it off', () => {
    const s = new ScanSchedule<{ size: number; i: number }>(true);
    const big = 40 << 20;
    for (let i = 0; i < 6; i++) s.add({ size: big, i });
    s.add({ size: 100, i: 99 });
    const h = s.next(false)!;
    assert.equal(h.kind, 'hash');
    s.rescan(h.files[0]!);
    const again = s.next(false)!;
    assert.deepEqual([again.kind, again.files[0]!.i], ['scan', h.files[0]!.i], 'a rescan goes before anything else');
    s.hashed(ADAPT_AFTER_BYTES, 0);
    assert.equal(s.hashFirst, false, 'mostly new: chunk directly');
    assert.equal(s.next(false)!.kind, 'scan');
    const s2 = new ScanSchedule<{ size: number }>(true);
    s2.hashed(ADAPT_AFTER_BYTES, ADAPT_AFTER_BYTES);
    assert.equal(s2.hashFirst, true, 'mostly known: keep hashing first');
    assert.ok(SMALL_BATCH_BYTES < big);
  });

  it('small files are hashed first too, judged by files apart from the large ones', () => {
    const s = new ScanSchedule<{ size: number; i: number }>(true);
    for (let i = 0; i < SMALL_BATCH_FILES; i++) s.add({ size: 100, i });
    s.add({ size: 40 << 20, i: -1 });
    const big = s.next(false)!;
    assert.deepEqual([big.kind, big.files.length], ['hash', 1]);
    s.hashed(ADAPT_AFTER_BYTES, 0);
    assert.equal(s.hashFirst, false, 'the large new file turns hash-first off for large files');
    const small = s.next(false)!;
    assert.deepEqual([small.kind, small.files.length], ['hash', SMALL_BATCH_FILES], 'but not for the small ones');
    s.hashedSmall(ADAPT_AFTER_FILES - 1, 0);
    assert.equal(s.hashSmall, true, 'judged only after ADAPT_AFTER_FILES');
    s.hashedSmall(1, 0);
    assert.equal(s.hashSmall, false, 'mostly new small files: chunk them directly');
    for (let i = 0; i < 3; i++) s.add({ size: 100, i });
    assert.equal(s.next(true)!.kind, 'scan');
    const s2 = new ScanSchedule<{ size: number }>(true);
    s2.hashedSmall(ADAPT_AFTER_FILES * 2, ADAPT_AFTER_FILES);
    assert.equal(s2.hashSmall, true, 'half known: keep hashing first');
    assert.equal(new ScanSchedule<{ size: number }>(false).hashSmall, false, 'into a new store nothing is hashed first');
  });
});

describe('ingest delta planning', () => {
  const base: Base = { chunks: [{ id: 'a', start: 0, end: 100, depth: 0 }, { id: 'b', start: 100, end: 250, depth: 2 }, { id: 'c', start: 250, end: 400, depth: 1 }] };

  it('deltaRefs: the old chunks overlapping the new chunk, their deepest depth and their bytes', () => {
    assert.deepEqual(deltaRefs(base, 90, 20), { refs: ['a', 'b'], refDepth: 2, bytes: 250 });
    assert.deepEqual(deltaRefs(base, 260, 10), { refs: ['c'], refDepth: 1, bytes: 150 });
    assert.equal(deltaRefs(base, 400, 10), undefined, 'past the old file');
    const many: Base = { chunks: Array.from({ length: 20 }, (_, i) => ({ id: `x${i}`, start: i, end: i + 1, depth: 0 })) };
    assert.equal(deltaRefs(many, 0, 20)!.refs.length, DELTA_MAX_REFS);
  });

  it('basesFor: every ref of the items and the refs of those, each once', () => {
    const loc = (id: string, refs?: string[]): BaseChunk => ({ id, pack: 1, offset: 0, stored: 1, plain: 1, flags: 1, ...(refs ? { refs } : {}) });
    const known = new Map([['a', loc('a', ['b'])], ['b', loc('b', ['c'])], ['c', loc('c')], ['d', loc('d')]]);
    assert.deepEqual(basesFor([{ id: 'n1', length: 1, refs: ['a'] }, { id: 'n2', length: 1, refs: ['c', 'zz'] }], known)!.map((b) => b.id).sort(), ['a', 'b', 'c']);
    assert.equal(basesFor([{ id: 'n', length: 1 }], known), undefined);
  });

  it('DeltaPlanner.base: the previous version at the path, skipping chunks too deep in a chain', async () => {
    const old = { id: 'f0' as Id, size: 30, chunks: [{ id: 'o1' as Id, length: 10 }, { id: 'o2' as Id, length: 10 }, { id: 'o3' as Id, length: 10 }] };
    const locs: Record<string, { pack: number; offset: number; stored: number; plain: number; flags: number; refs?: string[]; depth?: number }> = {
      o1: { pack: 1, offset: 0, stored: 5, plain: 10, flags: 1 },
      o2: { pack: 1, offset: 5, stored: 5, plain: 10, flags: 2, refs: ['p'], depth: DELTA_MAX_DEPTH },
      o3: { pack: 1, offset: 10, stored: 5, plain: 10, flags: 2, refs: ['p'], depth: 1 },
      p: { pack: 1, offset: 15, stored: 5, plain: 10, flags: 1 },
    };
    const d = new DeltaPlanner({ locations: async (ids) => ids.map((i) => locs[i]), lastFileAt: async (k) => (k === 'l/x' ? 'f0' : undefined), getFile: async (id) => (id === 'f0' ? old : undefined) });
    assert.equal(await d.base('l/y', 'new'), undefined, 'no previous version');
    assert.equal(await d.base('l/x', 'f0'), undefined, 'the same file');
    const b = (await d.base('l/x', 'new'))!;
    assert.deepEqual(b.chunks.map((c) => [c.id, c.start, c.end]), [['o1', 0, 10], ['o3', 20, 30]]);
    assert.deepEqual([...d.locs.keys()].sort(), ['o1', 'o3', 'p'], 'the chain base is learnt too');
  });
});

describe('ingest trees and references', () => {
  it('buildTrees: bottom-up ids and sizes; references resolve to known paths and to itself', () => {
    const file = (name: string, size: number, id: string): FileNode => ({ t: 'file', name: Buffer.from(name), path: Buffer.from(name), size, exe: false, stat: {} as never, id });
    const sub: DirNode = { t: 'dir', name: Buffer.from('sub'), path: Buffer.from('sub'), children: [file('b', 5, idOf(Buffer.from('b')))] };
    const root: DirNode = { t: 'dir', name: Buffer.alloc(0), path: Buffer.from('.'), children: [file('a', 3, idOf(Buffer.from('a'))), sub, { t: 'link', name: Buffer.from('l'), target: Buffer.from('a') }] };
    const trees = buildTrees(root);
    assert.equal(trees.size, 2);
    assert.equal(root.size, 8);
    assert.equal(sub.size, 5);
    const t = decodeTree(trees.get(root.id as Id)!, root.id as Id);
    assert.deepEqual(t.entries.map((e) => [e.name.toString(), e.kind]), [['a', 'file'], ['l', 'symlink'], ['sub', 'dir']]);
    const key = 'f'.repeat(64) as Id;
    const refs = resolveReferences(['a'.repeat(32), 'f'.repeat(32), 'c'.repeat(32)], { path: `me-${'f'.repeat(32)}`, key }, [{ path: `lib-${'a'.repeat(32)}` }]);
    assert.deepEqual(refs, [`lib-${'a'.repeat(32)}`, `me-${'f'.repeat(32)}`]);
  });

  it('buildCompleteTrees builds only directories whose files all have ids, then the commit the rest, to the same trees', () => {
    const file = (name: string, id?: string): FileNode => ({ t: 'file', name: Buffer.from(name), path: Buffer.from(name), size: name.length, exe: false, stat: {} as never, ...(id ? { id } : {}) });
    const make = (pending: boolean) => {
      const late = file('late', pending ? undefined : idOf(Buffer.from('late')));
      const done: DirNode = { t: 'dir', name: Buffer.from('done'), path: Buffer.from('done'), children: [file('x', idOf(Buffer.from('x')))] };
      const open: DirNode = { t: 'dir', name: Buffer.from('open'), path: Buffer.from('open'), children: [late, file('y', idOf(Buffer.from('y')))] };
      const root: DirNode = { t: 'dir', name: Buffer.alloc(0), path: Buffer.from('.'), children: [done, open] };
      return { root, done, open, late };
    };
    const whole = buildTrees(make(false).root);
    const t = make(true);
    const out = new Map<Id, Buffer>();
    assert.equal(buildCompleteTrees(t.root, out), 1, 'only the directory whose files all have ids');
    assert.ok(t.done.id !== undefined && t.open.id === undefined && t.root.id === undefined);
    assert.equal(buildCompleteTrees(t.root, out), 0, 'nothing new until a file gets its id');
    assert.throws(() => buildTrees(t.root, new Map(out)), /has no id/, 'the commit still refuses a file without an id');
    t.late.id = idOf(Buffer.from('late'));
    assert.equal(buildCompleteTrees(t.root, out), 2);
    assert.deepEqual([...out.keys()].sort(), [...whole.keys()].sort(), 'the same trees as built in one go');
    assert.equal(buildTrees(t.root, out).size, whole.size, 'the commit finds them built');
  });
});

describe('ingest stat cache entries', () => {
  it('an entry matches its stat only: any change of dev, ino, size, mtime or ctime misses', () => {
    const id = idOf(Buffer.from('x'));
    const st = { dev: 2049, ino: 1234567, size: 4096, mode: 0o100644, mtimeMs: 1764700000123.4567, ctimeMs: 1764700000456.789 };
    const v = encodeStatEntry(st, id, false);
    assert.equal(v.length, 41);
    assert.equal(statEntryId(v, st), id);
    assert.equal(statEntryFile(v), id);
    assert.deepEqual(statEntryHit(v, st), { id, hasRefs: false });
    assert.deepEqual(statEntryHit(encodeStatEntry(st, id, true), st), { id, hasRefs: true });
    // An entry written before the references byte (40 bytes) still names its file; whether it
    // has references is unknown (the ingest then looks its r/ entry up).
    assert.deepEqual(statEntryHit(v.subarray(0, 40), st), { id, hasRefs: undefined });
    assert.equal(statEntryFile(v.subarray(0, 40)), id);
    assert.equal(statEntryId(v.subarray(0, 39), st), undefined, 'a short value is no entry');
    // Neighbouring values of each field (the changes a file really sees) never match.
    let tried = 0;
    for (let d = 1; d <= 2000; d++) {
      for (const ch of [{ dev: st.dev + d }, { ino: st.ino + d }, { ino: st.ino - d }, { size: st.size + d }, { size: st.size - d }, { mtimeMs: st.mtimeMs + d / 1e3 }, { mtimeMs: st.mtimeMs + d }, { ctimeMs: st.ctimeMs + d / 1e3 }, { ctimeMs: st.ctimeMs + d * 1000 }]) {
        assert.equal(statEntryId(v, { ...st, ...ch }), undefined, JSON.stringify(ch));
        tried++;
      }
    }
    assert.equal(tried, 18000);
    // And 64 bits are spread: 50k inodes of one directory give 50k different fingerprints.
    const seen = new Set<string>();
    for (let i = 0; i < 50_000; i++) seen.add(encodeStatEntry({ ...st, ino: st.ino + i }, id, false).toString('hex', 0, 8));
    assert.equal(seen.size, 50_000);
  });
});

describe('range', () => {
  const f = { id: 'f' as Id, size: 25, chunks: [{ id: 'a' as Id, length: 10 }, { id: 'b' as Id, length: 10 }, { id: 'c' as Id, length: 5 }] };
  it('chunkStarts, chunkAt, chunkSpan at the edges', () => {
    assert.deepEqual([...chunkStarts(f)], [0, 10, 20, 25]);
    assert.equal(chunkStarts(f), chunkStarts(f), 'computed once per record');
    const s = chunkStarts(f);
    assert.deepEqual([0, 9, 10, 24].map((p) => chunkAt(s, 3, p)), [0, 0, 1, 2]);
    assert.deepEqual(chunkSpan(s, 3, 25, 5, 10), { lo: 0, hi: 2, end: 15 });
    assert.deepEqual(chunkSpan(s, 3, 25, 20, 100), { lo: 2, hi: 3, end: 25 });
    assert.equal(chunkSpan(s, 3, 25, 25, 10).hi, 0);
    assert.equal(chunkSpan(s, 3, 25, 3, 0).hi, 0);
  });
  it('readRange: assembles verified pieces; a missing chunk or a wrong length is an error', async () => {
    const bodies: Record<string, Buffer> = { a: Buffer.from('0123456789'), b: Buffer.from('abcdefghij'), c: Buffer.from('VWXYZ') };
    const get = async (id: Id) => bodies[id];
    assert.equal((await readRange(f, 8, 15, get)).toString(), '89abcdefghijVWX');
    assert.equal((await readRange(f, 22, 10, get)).toString(), 'XYZ');
    assert.equal((await readRange(f, 30, 10, get)).length, 0);
    await assert.rejects(readRange(f, 0, 25, async (id) => (id === 'b' ? undefined : bodies[id])), code('MIQ_MISSING'));
    await assert.rejects(readRange(f, 0, 25, async (id) => (id === 'c' ? Buffer.from('VW') : bodies[id])), code('MIQ_CORRUPT'));
  });
});

describe('codec, packs and chunk reads', () => {
  it('codec: raw for incompressible, zstd for text, dictionary deltas; junk is MIQ_CORRUPT', () => {
    const noise = randomBytes(4000);
    assert.equal(encodeChunk(noise).flags, FLAG_RAW);
    const text = Buffer.from('the same line again\n'.repeat(500));
    const z = encodeChunk(text);
    assert.equal(z.flags, FLAG_ZSTD);
    assert.ok(z.body.length < text.length / 10);
    assert.ok(decodeChunk(z.flags, z.body, text.length).equals(text));
    const v2 = Buffer.concat([noise.subarray(0, 2000), Buffer.from('changed'), noise.subarray(2000)]);
    const d = encodeChunkWithDict(v2, noise);
    assert.ok(d.length < 200, `a delta against the old version is small (${d.length})`);
    assert.ok(decodeChunk(FLAG_ZSTD_DICT, d, v2.length, noise).equals(v2));
    assert.throws(() => decodeChunk(FLAG_ZSTD_DICT, d, v2.length), code('MIQ_CORRUPT'));
    assert.throws(() => decodeChunk(9, d, 1), code('MIQ_CORRUPT'));
    assert.throws(() => decodeVerified(idOf(text), FLAG_ZSTD, Buffer.from(z.body.subarray(0, z.body.length - 3)), text.length), code('MIQ_CORRUPT'));
    assert.throws(() => decodeVerified(idOf(noise), FLAG_RAW, Buffer.from(v2.subarray(0, 4000)), 4000), code('MIQ_CORRUPT'));
  });

  it('locations round-trip, delta entries included; a wrong length is MIQ_CORRUPT', () => {
    const plain = { pack: 7, offset: 2 ** 33 + 5, stored: 100, plain: 200, flags: 1 };
    assert.deepEqual(decodeLocation(encodeLocation(plain)), plain);
    const delta = { ...plain, flags: 2, refs: ['a'.repeat(64), 'b'.repeat(64)], depth: 2 };
    assert.deepEqual(decodeLocation(encodeLocation(delta)), delta);
    assert.throws(() => decodeLocation(Buffer.alloc(20)), code('MIQ_CORRUPT'));
  });

  it('packs: appended bodies read back by location (async and sync readers); a torn tail is MIQ_CORRUPT; empty packs vanish', async () => {
    const dir = join(tmp, 'packs');
    const w = new PackWriter(dir);
    await w.open();
    const bodies = [randomBytes(1000), randomBytes(10), randomBytes(5000)];
    const locs = await w.append(bodies.map((b) => ({ id: idOf(b), flags: FLAG_RAW, plain: b.length, body: b })));
    await w.sync();
    const r = new PackReader(dir);
    for (let i = 0; i < 3; i++) assert.ok((await r.read(locs[i]!, 'x')).equals(bodies[i]!));
    const fds = new PackFds(1);
    const path = join(dir, packFileName(locs[0]!.pack));
    assert.ok(decodeVerified(idOf(bodies[2]!), FLAG_RAW, preadStored(fds, path, locs[2]!.offset, locs[2]!.stored, 'x'), 5000).equals(bodies[2]!));
    assert.throws(() => preadStored(fds, join(dir, 'nope.pack'), 0, 1, 'x'), code('MIQ_IO'));
    await w.close();
    await truncate(path, locs[2]!.offset + 10);
    await r.drop(locs[0]!.pack);
    await assert.rejects(r.read(locs[2]!, 'x'), code('MIQ_CORRUPT'));
    assert.throws(() => preadStored(new PackFds(), path, locs[2]!.offset, locs[2]!.stored, 'x'), code('MIQ_CORRUPT'));
    await r.close();
    fds.close();
    const w2 = new PackWriter(dir);
    await w2.open();
    assert.equal(w2.current, locs[0]!.pack + 1, 'a new session starts a new pack');
    await w2.close();
  });
});

describe('lru', () => {
  it('Lru evicts least recently used by weight; ByteLru by length; too-heavy values are not kept', () => {
    const l = new Lru<string, number>(3, () => 1);
    l.set('a', 1); l.set('b', 2); l.set('c', 3);
    l.get('a');
    l.set('d', 4);
    assert.deepEqual(['a', 'b', 'c', 'd'].map((k) => l.get(k)), [1, undefined, 3, 4]);
    const b = new ByteLru<string, Buffer>(10);
    b.set('x', Buffer.alloc(6)); b.set('y', Buffer.alloc(6));
    assert.equal(b.get('x'), undefined);
    assert.equal(b.weight, 6);
    b.set('z', Buffer.alloc(11));
    assert.equal(b.get('z'), undefined);
    b.clear();
    assert.equal(b.weight, 0);
  });
  it('Mutex runs sections one at a time in call order, also after a failure', async () => {
    const m = new Mutex();
    const log: string[] = [];
    const sec = (n: string, ms: number, fail = false) => m.run(async () => {
      log.push(`${n}+`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`${n}-`);
      if (fail) throw new Error('boom');
    });
    await Promise.allSettled([sec('a', 20), sec('b', 1, true), sec('c', 1)]);
    assert.deepEqual(log, ['a+', 'a-', 'b+', 'b-', 'c+', 'c-']);
  });
});

describe('walk', () => {
  it('records files, dirs and links (never following them) with raw names; refuses a fifo unless lenient', async () => {
    const d = join(tmp, 'walk');
    await mkdir(join(d, 'sub/deeper'), { recursive: true });
    await writeFile(join(d, 'sub/deeper/f'), 'hello');
    await writeFile(join(d, Buffer.from([0x66, 0xff]).toString('latin1')), 'x');
    await symlink('/etc', join(d, 'link'));
    const w = await walk(d, false);
    assert.deepEqual([w.files.length, w.dirs, w.links, w.bytes], [2, 3, 1, 6]);
    execFileSync('mkfifo', [join(d, 'fifo')]);
    await assert.rejects(walk(d, false), code('MIQ_BAD_INPUT'));
    const l = await walk(d, true);
    assert.deepEqual(l.skipped.map((s) => s.why), ['a fifo']);
  });

  it('finds the same entries, each under its numbered directory, synchronously, concurrently and switching between them', async () => {
    const d = join(tmp, 'walk-modes');
    for (let i = 0; i < 40; i++) {
      await mkdir(join(d, `d${i}`, 'x'), { recursive: true });
      for (let j = 0; j < 5; j++) await writeFile(join(d, `d${i}`, j % 2 ? `x/f${j}` : `f${j}`), `${i}.${j}`);
    }
    await symlink('d0', join(d, 'l'));
    const seen = async (opts: Parameters<typeof traverse>[2]): Promise<string[]> => {
      const dirs = [d];
      const out: string[] = [];
      await traverse(d, (e: Entry) => {
        const p = e.path.toString();
        assert.ok(p.startsWith(`${dirs[e.parent]}/`), `${p} is under directory ${e.parent}`);
        if (e.kind === KIND_DIR) dirs.push(p);
        out.push(`${p.slice(d.length)} ${e.kind} ${e.st.size} ${e.target?.toString() ?? ''}`);
      }, opts);
      return out.sort();
    };
    const warm = await seen({ sync: true });
    assert.equal(warm.length, 40 * 7 + 1);
    assert.deepEqual(await seen({ sync: false }), warm);
    // Every lstat counts as slow. With the addon the first slow calls start warmTree and the
    // walk stays synchronous (the rest of that first directory concurrently); from JS three per
    // directory synchronously, the rest concurrently.
    assert.deepEqual(await seen({ sync: true, slowNs: 0n }), warm);
    assert.deepEqual(await seen({ sync: true, native: false }), warm, 'listed from JS');
    assert.deepEqual(await seen({ sync: true, slowNs: 0n, native: false }), warm);
    // A synchronous walk lets the event loop run every `yieldEntries` entries (walkHere: the
    // ingest's hash results and index lookups are I/O callbacks), and only then.
    for (const yieldEntries of [undefined, 20]) {
      let turns = 0, on = true;
      const tock = (): void => {
        turns++;
        if (on) setImmediate(tock);
      };
      setImmediate(tock);
      const got = await seen({ sync: true, ...(yieldEntries ? { yieldEntries } : {}) });
      const during = turns;
      on = false;
      assert.deepEqual(got, warm);
      if (yieldEntries) assert.ok(during >= 5, `the event loop ran ${during} times during the walk`);
      else assert.equal(during, 0, 'without yieldEntries the walk runs in one turn');
    }
  });

  it('walks on the addon\'s thread (walkTree) into what the walk on the main thread makes: links, odd names, empty directories, errors', { skip: !NATIVE_WALK && 'the addon did not build' }, async () => {
    assert.ok(THREADED_WALK, 'the addon has listDir but not walkTree: rebuild it (npm rebuild)');
    const d = join(tmp, 'walk-threaded');
    // More entries than one batch (512), over many directories, so batches end mid-directory.
    for (let i = 0; i < 30; i++) {
      await mkdir(join(d, `d${i}`, 'sub'), { recursive: true });
      for (let j = 0; j < 25; j++) await writeFile(join(d, `d${i}`, j % 3 ? `f${j}` : `sub/f${j}`), `${i}.${j}`);
    }
    await mkdir(join(d, 'empty', 'emptier'), { recursive: true });
    await mkdir(join(d, 'z-empty'));
    for (const name of [[0x66, 0xff], [0x6e, 0x0a, 0x6c], [0x20, 0x2d, 0x5c], [0xc3, 0xa9]]) await writeFile(join(d, Buffer.from(name).toString('latin1')), 'odd');
    await symlink('d0/f1', join(d, 'to-file'));
    await symlink('d1', join(d, 'to-dir'));
    await symlink('nowhere', join(d, 'd2', 'dangling'));
    await symlink('x'.repeat(3000), join(d, 'd3', 'long'));
    await writeFile(join(d, 'd4', 'setuid'), '#!/bin/sh\n', { mode: 0o4755 });
    await writeFile(join(d, 'd5', 'private'), 'p', { mode: 0o600 });
    const dump = (n: Node): unknown => (n.t === 'dir' ? [n.name.toString('hex'), n.children.map(dump)] : n.t === 'link' ? [n.name.toString('hex'), n.target.toString('hex')] : [n.name.toString('hex'), n.path.toString('hex'), n.size, n.exe, { ...n.stat }]);
    const both = async (lenient: boolean): Promise<[unknown, unknown]> => {
      const out: unknown[] = [];
      for (const threaded of [true, false]) {
        const seen: string[] = [];
        const r: WalkResult = await walkHere(d, lenient, (f) => { seen.push(f.path.toString('hex')); }, { threaded });
        out.push({ ...r, root: dump(r.root), files: r.files.map((f) => f.path.toString('hex')), seen });
      }
      return [out[0], out[1]];
    };
    const [threaded, here] = await both(false);
    assert.deepEqual(threaded, here);
    const t = threaded as WalkResult & { files: string[] };
    assert.deepEqual([t.files.length, t.dirs, t.links, t.droppedModeBits, t.notWorldReadable], [30 * 25 + 5 + 1, 1 + 30 * 2 + 3, 4, 1, 1]);
    // A fifo: refused by both, or skipped by both with --lenient; the thread ends either way.
    execFileSync('mkfifo', [join(d, 'a-fifo')]);
    const tasks = (): number => readdirSync('/proc/self/task').length;
    const before = tasks();
    const refusal = (threaded: boolean): Promise<string> => walkHere(d, false, undefined, { threaded }).then(() => 'walked', (e: Error) => e.message);
    assert.match(await refusal(true), /a-fifo is a fifo/);
    assert.equal(await refusal(true), await refusal(false));
    const [lt, lh] = await both(true);
    assert.deepEqual(lt, lh);
    assert.deepEqual((lt as WalkResult).skipped.map((s) => s.why), ['a fifo']);
    for (const t0 = Date.now(); tasks() > before; await new Promise((r) => setTimeout(r, 20))) {
      assert.ok(Date.now() - t0 < 20_000, `${tasks() - before} walking threads still running after 20 s`);
    }
    // Batches (two here) reach the main thread one turn of its event loop at a time.
    let turns = 0, on = true;
    const tock = (): void => {
      turns++;
      if (on) setImmediate(tock);
    };
    setImmediate(tock);
    await walkHere(d, true, undefined, { threaded: true });
    on = false;
    assert.ok(turns >= 2, `the event loop ran ${turns} times during the walk`);
    // A directory that cannot be read (as root, a path over PATH_MAX: ENAMETOOLONG), deep in the
    // tree, and a root that is not a directory: the same error from both.
    const deep = join(d, 'd6', 'deep');
    await mkdir(deep);
    execFileSync(process.execPath, ['-e', `process.chdir(${JSON.stringify(deep)}); for (let i = 0; i < 17; i++) { require('fs').mkdirSync('${'n'.repeat(250)}'); process.chdir('${'n'.repeat(250)}'); }`]);
    try {
      const failure = async (root: string, threaded: boolean): Promise<string> => walkHere(root, true, undefined, { threaded }).then(() => 'walked', (e: Error & { code?: string }) => `${e.code}: ${e.message}`);
      const got = await failure(d, true);
      assert.match(got, /^MIQ_IO: cannot read directory .*the path is too long \(ENAMETOOLONG\)$/);
      assert.equal(got, await failure(d, false));
      assert.match(await failure(join(d, 'd0', 'f1'), true), /cannot read directory .*d0\/f1: a parent is not a directory \(ENOTDIR\)$/);
      assert.equal(await failure(join(d, 'd0', 'f1'), true), await failure(join(d, 'd0', 'f1'), false));
      assert.match(await failure(join(d, 'missing'), true), /^MIQ_NOT_FOUND: cannot read directory/);
      // A root walkTree refuses (longer than PATH_MAX): the walk on this thread, with its error.
      const long = `${d}/${'x/'.repeat(2100)}y`;
      assert.match(await failure(long, true), /^MIQ_IO: cannot read directory .*\(ENAMETOOLONG\)$/);
      assert.equal(await failure(long, true), await failure(long, false));
    } finally {
      execFileSync('rm', ['-rf', deep]);
    }
    assert.throws(() => miqchunkExport<(...a: unknown[]) => void>('walkTree', 'MIQ_JS_WALK')!(Buffer.from(`${d}\0x`), 1e6, () => false), TypeError);
    assert.throws(() => miqchunkExport<(...a: unknown[]) => void>('walkTree', 'MIQ_JS_WALK')!(Buffer.from(d), 1e6, 'not a function'), TypeError);
  });

  it('warms a tree on threads of its own that end once it is read (warmTree)', { skip: !WARM_TREE && 'the addon did not build' }, async () => {
    const d = join(tmp, 'warm-tree');
    for (let i = 0; i < 30; i++) await mkdir(join(d, `d${i}`, 'x', 'y'), { recursive: true });
    await symlink('/', join(d, 'up'));
    for (const bad of [[Buffer.alloc(0), 4], [Buffer.from(d), 0], [Buffer.from(d), 65], ['not bytes', 4], [Buffer.from(`${d}\0x`), 4]] as const) {
      assert.throws(() => WARM_TREE!(bad[0] as Uint8Array, bad[1]), TypeError, String(bad));
    }
    const tasks = (): number => readdirSync('/proc/self/task').length;
    const before = tasks();
    WARM_TREE!(Buffer.from(d), 4);
    WARM_TREE!(Buffer.from(join(d, 'missing')), 2);
    // The threads are detached: poll until they are gone.
    for (const t0 = Date.now(); tasks() > before; await new Promise((r) => setTimeout(r, 20))) {
      assert.ok(Date.now() - t0 < 20_000, `${tasks() - before} warming threads still running after 20 s`);
    }
  });

  it('hands out a directory\'s entries in byte order of their names, in C and from JS (frames follow that order)', async () => {
    const d = join(tmp, 'walk-order');
    await mkdir(d, { recursive: true });
    // Created in an order that is neither sorted nor reversed (tmpfs lists newest first, ext4 by hash).
    const names = Array.from({ length: 40 }, (_, i) => `f${String((i * 17) % 40).padStart(2, '0')}`);
    names.push('B', 'a', 'a.1', 'a-1', '\u00e9');
    for (const n of names) await writeFile(join(d, n), n);
    const want = names.map((n) => Buffer.from(n)).sort(Buffer.compare).map((b) => b.toString());
    for (const native of NATIVE_WALK ? [true, false] : [false]) {
      const got: string[] = [];
      await traverse(d, (e) => { got.push(e.path.toString().slice(d.length + 1)); }, { sync: true, native });
      assert.deepEqual(got, want, native ? 'listDir' : 'readdirSync');
      const cold: string[] = [];
      await traverse(d, (e) => { cold.push(e.path.toString().slice(d.length + 1)); }, { sync: false, native });
      assert.deepEqual(cold, want, 'the concurrent walk');
    }
  });

  it('hashes a task\'s files in C as hashOne does in JS: ids, reference candidates, the files it gives back', { skip: !HASH_FILES && (process.env.MIQ_JS_HASH === '1' || !BLAKE3_SOURCE) && 'no C hashFiles: MIQ_JS_HASH=1, or no BLAKE3 C source (librust-blake3-dev) when the addon was built' }, async () => {
    assert.ok(HASH_FILES, 'BLAKE3\'s C source is installed but the addon has no hashFiles: rebuild it (npm rebuild)');
    const d = join(tmp, 'hash-files');
    const ref = (c: string): string => `/miq/store/x-${c.repeat(32)}/bin`;
    const bodies: Record<string, Buffer> = {
      empty: Buffer.alloc(0),
      refs: Buffer.from(`${ref('a')} ${ref('b')} ${ref('a')} -${'c'.repeat(31)}g -${'d'.repeat(40)} tail-${'e'.repeat(32)}`),
      atEnd: Buffer.from(`x-${'f'.repeat(32)}`),
      random: randomBytes(100_000),
      justUnder: Buffer.concat([Buffer.alloc((4 << 20) - 40, 'q'), Buffer.from(`-${'1'.repeat(32)}`)]),
      exactly: Buffer.alloc(4 << 20, 'r'),
      big: Buffer.concat([randomBytes(5 << 20), Buffer.from(ref('9'))]),
    };
    const { files, nBodies } = await taskFiles(d, bodies, 'refs');
    const out = HASH_FILES!(files);
    assert.ok(HASH_FILES_ASYNC, 'the addon has hashFiles but not hashFilesAsync');
    assert.deepEqual(await HASH_FILES_ASYNC(files), out, 'hashFilesAsync answers the same bytes');
    await assert.rejects(async () => HASH_FILES_ASYNC([{ path: 'not bytes' as never, size: 1 }]), /bad file entry/);
    await assert.rejects(async () => HASH_FILES_ASYNC({} as never), /bad arguments/);
    let o = 0;
    for (const [i, f] of files.entries()) {
      const name = f.path.toString().slice(d.length + 1);
      const status = out[o++];
      if (i >= nBodies) {
        assert.equal(status, 2, `${name} (${i}): given back to JS`);
        continue;
      }
      const body = bodies[name]!;
      assert.equal(out.toString('hex', o, o + 32), idOf(body), `${name}: id`);
      o += 32;
      // hashOne scans a file it read whole (under 4 MiB, one read buffer), and only that.
      assert.equal(status, body.length < 4 << 20 ? 0 : 1, `${name}: status`);
      if (status === 1) continue;
      const n = out.readUInt32LE(o);
      o += 4;
      const got: string[] = [];
      for (let k = 0; k < n; k++, o += 32) got.push(out.toString('latin1', o, o + 32));
      const want = new Set<string>();
      scanRefs(body, 0, body.length, body.length, want);
      assert.deepEqual([...new Set(got)], [...want], `${name}: reference candidates`);
      if (name === 'refs') assert.deepEqual(got, ['a'.repeat(32), 'b'.repeat(32), 'a'.repeat(32), 'd'.repeat(32), 'e'.repeat(32)]);
      if (name === 'atEnd') assert.deepEqual(got, ['f'.repeat(32)]);
      if (name === 'justUnder') assert.deepEqual(got, ['1'.repeat(32)]);
    }
    assert.equal(o, out.length);
  });

  it('hashes a task of more files than it opens ahead: each in order, the ones it cannot hash given back, every file closed', { skip: !HASH_FILES && (process.env.MIQ_JS_HASH === '1' || !BLAKE3_SOURCE) && 'no C hashFiles: MIQ_JS_HASH=1, or no BLAKE3 C source (librust-blake3-dev) when the addon was built' }, async () => {
    assert.ok(HASH_FILES, 'BLAKE3\'s C source is installed but the addon has no hashFiles: rebuild it (npm rebuild)');
    const d = join(tmp, 'hash-ahead');
    await mkdir(d, { recursive: true });
    // 300 files (miqchunk.c opens up to 64 ahead), one of them over the 32 MiB read ahead at
    // once, and among them files it cannot hash: missing, a fifo, one whose size changed.
    const bodies: (Buffer | undefined)[] = [];
    for (let i = 0; i < 300; i++) bodies.push(i === 150 ? randomBytes(33 << 20) : randomBytes(1 + ((i * 7919) % 9000)));
    const back = new Set([0, 63, 64, 65, 130, 299]);
    await Promise.all(bodies.map((b, i) => (!back.has(i) || i === 299 ? writeFile(join(d, `f${i}`), b!) : undefined)));
    execFileSync('mkfifo', [join(d, 'f65')]);
    const files = bodies.map((b, i) => ({ path: Buffer.from(join(d, `f${i}`)), size: i === 299 ? b!.length + 1 : b!.length }));
    const fds = (): number => readdirSync('/proc/self/fd').length;
    const before = fds();
    const out = HASH_FILES!(files);
    assert.equal(fds(), before, 'every file it opened is closed');
    // On libuv's threads, several tasks at once (as the ingest's main thread runs them).
    const outs = await Promise.all([files, files.slice(60), files.slice(0, 70)].map((fs) => HASH_FILES_ASYNC!(fs)));
    assert.deepEqual(outs[0], out, 'hashFilesAsync answers the same bytes');
    assert.deepEqual(outs[2], HASH_FILES!(files.slice(0, 70)));
    assert.equal(fds(), before, 'every file hashFilesAsync opened is closed');
    let o = 0;
    for (let i = 0; i < files.length; i++) {
      const status = out[o++];
      if (back.has(i)) {
        assert.equal(status, 2, `f${i}: given back to JS`);
        continue;
      }
      assert.equal(out.toString('hex', o, o + 32), idOf(bodies[i]!), `f${i}: id`);
      o += 32;
      assert.equal(status, bodies[i]!.length < 4 << 20 ? 0 : 1, `f${i}: status`);
      if (status === 0) o += 4 + 32 * out.readUInt32LE(o);
    }
    assert.equal(o, out.length);
  });

  it('lists a directory in C with the numbers lstat gives (the stat cache fingerprints them)', { skip: !NATIVE_WALK && 'the addon did not build' }, async () => {
    const d = join(tmp, 'walk-native');
    await mkdir(join(d, 'sub'), { recursive: true });
    await writeFile(join(d, 'f'), 'hello');
    await writeFile(join(d, Buffer.from([0x67, 0xfe]).toString('latin1')), Buffer.alloc(70_000, 1));
    await symlink('../some/where', join(d, 'sub', 'l'));
    await symlink('x'.repeat(3000), join(d, 'long'));
    execFileSync('mkfifo', [join(d, 'fifo')]);
    const got = new Map<string, Entry>();
    await traverse(d, (e) => { got.set(e.path.toString('latin1'), e); }, { sync: true });
    assert.equal(got.size, 6);
    for (const [p, e] of got) {
      const st = lstatSync(Buffer.from(p, 'latin1'));
      assert.deepEqual({ ...e.st }, { size: st.size, mode: st.mode, dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs }, p);
      if (st.isSymbolicLink()) assert.deepEqual(e.target, readlinkSync(Buffer.from(p, 'latin1'), { encoding: 'buffer' }));
      else assert.equal(e.target, undefined);
    }
    await assert.rejects(traverse(join(d, 'f'), () => {}, { sync: true }), (e: Error & { details?: { errno?: string } }) => e.details?.errno === 'ENOTDIR' && e.message.includes('cannot read directory'));
  });
});

describe('pool', () => {
  it('a pool destroyed while piscina loads does not stay as the current pool', async () => {
    await destroyPool();
    const want = poolThreads();
    // warmPool makes a pool of want + 1 workers once piscina's module is loaded; destroyPool
    // before that destroys the pool when it is made, and the next one gets poolThreads().
    warmPool(want + 1);
    assert.equal(poolSize(), want + 1);
    await destroyPool();
    assert.equal(poolSize(), want, 'the destroyed pool is not the current one');
    assert.equal(poolStarted(), 0);
  });
});
