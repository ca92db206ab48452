/**
 * An update's scan and compress tasks in C (store/ingest-c.ts, native/miqchunk.c scanFilesAsync
 * and compressItemsAsync) against the worker's own tasks (store/ingest-worker.ts) on the same
 * input: the same chunks, ids, reference candidates and kept bytes from the scan; from compress
 * the same decisions (delta, alone, raw or in a shared frame; the frames' members) and bodies
 * that decode to each id's bytes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DEFAULT_CHUNK_PARAMS, type ChunkParams } from '../store/chunker.js';
import { FLAG_FRAME, FLAG_RAW, FLAG_ZSTD, FLAG_ZSTD_DICT, decodeChunk, encodeChunk, encodeChunkWithDict } from '../store/codec.js';
import { type Id, idOf } from '../store/ids.js';
import { compressInC, compressItems, encodeCompressTask, scanArgs, scanFiles, scanInC } from '../store/ingest-c.js';
import run, { type BaseChunk, type CompressedItem, type CompressItem, type ScannedFile, type WorkerResult } from '../store/ingest-worker.js';
import { miqchunkExport } from '../store/miqchunk.js';
import { PackWriter } from '../store/pack.js';
import { taskFiles } from './helpers/files.js';

const tmp = await mkdtemp(join(tmpdir(), 'miq-ingest-c-'));
after(() => rm(tmp, { recursive: true, force: true }));

const words = ['alpha', 'beta', 'gamma', 'delta', 'store', 'chunk', 'frame', 'libc', 'python3', 'usr/lib', 'share/doc'];
/** Compressible text (about 3x), with store-path-like reference candidates here and there. */
function text(n: number, seed: number): Buffer {
  const parts: string[] = [];
  let len = 0;
  for (let i = 0; len < n; i++) {
    const w = (i * 7 + seed * 13 + (i >> 3)) % 97 === 0 ? `/miq/store/x-${idOf(Buffer.from(`${seed}:${i}`)).slice(0, 32)}/bin ` : `${words[(i * 31 + seed) % words.length]}${(i * seed) % 1000} `;
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, n);
}

function workerRun(task: Parameters<typeof run>[0]): WorkerResult {
  const r = run(task) as WorkerResult;
  const inner = (r as unknown as Record<symbol, WorkerResult>)[Symbol.for('Piscina.valueOf')];
  return inner ?? r;
}

describe('an update\'s scan in C', { skip: !scanInC() && 'the addon has no scanFilesAsync (MIQ_JS_SCAN=1, or built without BLAKE3\'s C source)' }, () => {
  it('gives the worker\'s scan task\'s chunks, ids, reference candidates and small files\' bytes; the files it cannot scan back', async () => {
    const d = join(tmp, 'scan');
    const ref = (c: string): string => `/miq/store/x-${c.repeat(32)}/bin`;
    const bodies: Record<string, Buffer> = {
      empty: Buffer.alloc(0),
      tiny: Buffer.from(`${ref('a')} ${ref('a')} -${'c'.repeat(31)}g`),
      small: text(20_000, 1),
      random: randomBytes(100_000),
      text3m: text(3 << 20, 2),
      // Over the 4 MiB read buffer, with a candidate across its end.
      big: Buffer.concat([text((4 << 20) - 20, 3), Buffer.from(ref('b')), randomBytes(5 << 20), text(300_000, 4)]),
    };
    const { files, nBodies } = await taskFiles(d, bodies, 'small');
    // The store's default chunk sizes, and tiny ones: many cuts, candidates across chunk ends.
    const tinyParams: ChunkParams = { min: 64, avg: 256, max: 1024 };
    for (const params of [DEFAULT_CHUNK_PARAMS, tinyParams]) {
      const keepSmall = Math.min(64 * 1024, params.min);
      const want = workerRun({ type: 'scan', files, params, keepSmall }) as Extract<WorkerResult, { type: 'scanned' }>;
      // Three tasks at once on libuv's threads, as the ingest's main thread runs them.
      const args = scanArgs(params, keepSmall);
      const [got, again] = await Promise.all([scanFiles(files, args), scanFiles(files.slice(2), args), scanFiles(files.slice(0, 3), args)]);
      assert.deepEqual(again, got.slice(2));
      for (const [i, f] of files.entries()) {
        const name = `${f.path.toString().slice(d.length + 1)} (${i}, ${params.min}/${params.avg}/${params.max})`;
        if (i >= nBodies) {
          assert.equal(got[i], undefined, `${name}: given back`);
          assert.equal(want.files[i]!.ok, false, `${name}: the worker's scan fails it`);
          continue;
        }
        const g = got[i] as Extract<ScannedFile, { ok: true }>;
        assert.deepEqual(g, want.files[i], name);
        assert.equal(g.id, idOf(bodies[f.path.toString().slice(d.length + 1)]!), `${name}: the file's id`);
      }
      if (params === tinyParams) assert.ok((got[4] as Extract<ScannedFile, { ok: true }>).chunks.length > 1000);
    }
    assert.ok((got0(await scanFiles(files, scanArgs(DEFAULT_CHUNK_PARAMS, 32 << 10)))[2]!).data, 'a small file\'s bytes come back');
    const SCAN = miqchunkExport<(f: unknown, p: unknown, g: unknown) => Promise<Buffer>>('scanFilesAsync', 'MIQ_JS_SCAN')!;
    assert.throws(() => SCAN(files, new Float64Array(6), new Int32Array(256)), /bad chunk parameters/);
    assert.throws(() => SCAN(files, scanArgs(DEFAULT_CHUNK_PARAMS, 0), new Int32Array(3)), /bad arguments/);
  });
});

const workerCompress = (items: CompressItem[], packDir?: string, bases?: BaseChunk[]): CompressedItem[] =>
  (workerRun({ type: 'compress', items, ...(packDir ? { packDir, bases } : {}) }) as Extract<WorkerResult, { type: 'compressed' }>).items;

const got0 = (r: (ScannedFile | undefined)[]): (Extract<ScannedFile, { ok: true }> | undefined)[] => r as never;

/** What a compress result says, without the bytes zstd made (the C side's libzstd may be
 * another version than zstd-napi's). */
const shape = (items: CompressedItem[]) => items.map((it) => ({ id: it.id, flags: it.flags, plainLen: it.plainLen, refs: it.refs, depth: it.depth, members: it.members }));

describe('an update\'s compress in C', { skip: !compressInC() && 'no compressItemsAsync, or libzstd.so.1 does not load (MIQ_JS_SCAN=1, or the addon built without BLAKE3\'s C source)' }, () => {
  it('makes the worker\'s compress task\'s deltas, frames and plain chunks, each decoding to its id\'s bytes', async () => {
    const packDir = join(tmp, 'packs');
    const w = new PackWriter(packDir);
    await w.open();
    // Old chunks as a store holds them: alone (zstd), two in a shared frame, one a delta against
    // the first (a chain), and one whose pack bytes are wrong (unusable as a base).
    const o1 = text(100_000, 10), o2 = text(30_000, 11), o3 = text(20_000, 12), o4 = Buffer.concat([o1.subarray(0, 60_000), text(40_000, 13)]), o5 = text(50_000, 14);
    const frame = Buffer.concat([o2, o3]);
    const e1 = encodeChunk(o1), ef = encodeChunk(frame), e5 = encodeChunk(o5);
    const d4 = encodeChunkWithDict(o4, o1);
    const locs = await w.append([
      { id: idOf(o1), flags: e1.flags, plain: o1.length, body: e1.body },
      { id: idOf(frame), flags: FLAG_FRAME, plain: frame.length, body: ef.body },
      { id: idOf(o4), flags: FLAG_ZSTD_DICT, plain: o4.length, body: d4 },
      { id: idOf(o5), flags: e5.flags, plain: o5.length, body: Buffer.concat([e5.body.subarray(0, 10), Buffer.alloc(e5.body.length - 10, 7)]) },
    ]);
    await w.sync();
    await w.close();
    const base = (id: Id, i: number, extra: Partial<BaseChunk> = {}): BaseChunk => ({ id, pack: locs[i]!.pack, offset: locs[i]!.offset, stored: locs[i]!.stored, plain: locs[i]!.plain, flags: locs[i]!.flags, ...extra });
    const bases: BaseChunk[] = [
      base(idOf(o1), 0),
      { ...base(idOf(o2), 1), plain: o2.length, frame: { off: 0, size: frame.length } },
      { ...base(idOf(o3), 1), plain: o3.length, frame: { off: o2.length, size: frame.length } },
      base(idOf(o4), 2, { refs: [idOf(o1)] }),
      base(idOf(o5), 3),
    ];
    const plain = new Map<string, Buffer>([[idOf(o1), o1], [idOf(o2), o2], [idOf(o3), o3], [idOf(o4), o4], [idOf(o5), o5]]);
    // New chunks: edits of the old ones (deltas), small ones (a frame), incompressible bytes.
    const edit = (b: Buffer, seed: number): Buffer => Buffer.concat([b.subarray(0, 5000), text(300, seed), b.subarray(5300)]);
    const n1 = edit(o1, 20), n4 = edit(o4, 21), n3 = edit(Buffer.concat([o2, o3]), 22).subarray(0, 45_000), n5 = edit(o5, 23);
    const rnd = randomBytes(90_000), unrelated = text(80_000, 24), big = text(100_000, 25);
    const onDisk = join(tmp, 'compress-src');
    await writeFile(onDisk, Buffer.concat([Buffer.from('head'), n4, rnd]));
    const items: CompressItem[] = [
      { id: idOf(n1), length: n1.length, data: n1, refs: [idOf(o1)], refDepth: 0 },
      { id: idOf(n4), length: n4.length, path: Buffer.from(onDisk), offset: 4, refs: [idOf(o4)], refDepth: 1 },
      { id: idOf(n3), length: n3.length, data: n3, refs: [idOf(o2), idOf(o3)], refDepth: 0 },
      { id: idOf(n5), length: n5.length, data: n5, refs: [idOf(o5)], refDepth: 0 },
      { id: idOf(unrelated), length: unrelated.length, data: unrelated, refs: [idOf(o2)], refDepth: 0 },
      { id: idOf(rnd), length: rnd.length, path: Buffer.from(onDisk), offset: 4 + n4.length },
      { id: idOf(Buffer.from('x')), length: 1, data: Buffer.from('x') },
      { id: idOf(big), length: big.length, data: big },
      ...[1, 2, 3, 4, 5, 6].map((i) => { const b = text(9000 + i * 5000, 30 + i); return { id: idOf(b), length: b.length, data: b }; }),
      // Missing base: compressed without a dictionary.
      { id: idOf(o3.subarray(1)), length: o3.length - 1, data: o3.subarray(1), refs: [idOf(Buffer.from('gone'))], refDepth: 0 },
    ];
    for (const it of items) if (it.data) plain.set(it.id, Buffer.from(it.data));
    plain.set(idOf(n4), n4);
    plain.set(idOf(rnd), rnd);
    const want = workerCompress(items, packDir, bases);
    const got = (await compressItems(items, packDir, bases))!;
    assert.deepEqual(shape(got), shape(want), 'the worker\'s decisions');
    const flags = new Set(got.map((g) => g.flags));
    for (const f of [FLAG_RAW, FLAG_ZSTD, FLAG_ZSTD_DICT, FLAG_FRAME]) assert.ok(flags.has(f), `a chunk with flags ${f}`);
    const deltas = new Set(got.filter((g) => g.flags === FLAG_ZSTD_DICT).map((g) => g.id));
    for (const b of [n1, n4, n3]) assert.ok(deltas.has(idOf(b)), 'deltas against a plain base, a chained one and framed ones');
    assert.ok(!deltas.has(idOf(n5)), 'none against the unusable base');
    for (const g of got) {
      if (g.flags === FLAG_FRAME) {
        const all = decodeChunk(FLAG_ZSTD, Buffer.from(g.body), g.plainLen);
        assert.equal(idOf(all), g.id, 'the frame\'s id is its plain bytes\'');
        for (const m of g.members!) assert.equal(idOf(all.subarray(m.off, m.off + m.len)), m.id);
        continue;
      }
      const dict = g.refs ? Buffer.concat(g.refs.map((r) => plain.get(r)!)) : undefined;
      assert.equal(idOf(decodeChunk(g.flags, Buffer.from(g.body), g.plainLen, dict)), g.id, `${g.id} decodes to its bytes`);
    }
    const bytes = (l: CompressedItem[]) => l.reduce((a, g) => a + g.body.length, 0);
    assert.ok(Math.abs(bytes(got) - bytes(want)) <= bytes(want) * 0.01, `stored bytes ${bytes(got)} within 1 % of the worker's ${bytes(want)}`);
    // Without the pack directory no dictionary is tried, as in the worker.
    assert.deepEqual(shape((await compressItems(items, undefined, undefined))!), shape(workerCompress(items)));
    // A file that changed since its scan: given back (the worker's task then fails it).
    const changed: CompressItem[] = [{ id: idOf(n4), length: n4.length, path: Buffer.from(onDisk), offset: 5 }];
    assert.equal(await compressItems(changed, packDir, bases), undefined);
    assert.equal(workerRun({ type: 'compress', items: changed, packDir, bases }).type, 'error');
    assert.equal(await compressItems([{ ...changed[0]!, path: Buffer.from(join(tmp, 'nothing')) }], packDir, bases), undefined);
    // The task's bytes are copied at the call: what the caller does with its buffer afterwards
    // cannot change the answer (nor make the C side read a path without its NUL).
    const spec = encodeCompressTask(items, packDir, bases);
    const pending = COMPRESS(spec);
    spec.fill(0xff);
    assert.deepEqual(await pending, await COMPRESS(encodeCompressTask(items, packDir, bases)));
  });
});

const COMPRESS = miqchunkExport<(s: unknown) => Promise<Buffer | null>>('compressItemsAsync', 'MIQ_JS_SCAN')!;

describe('the ingest addon refuses wrong calls with a TypeError or RangeError', { skip: !compressInC() && 'no compressItemsAsync, or libzstd.so.1 does not load' }, () => {
  const wrong = (e: unknown): boolean => e instanceof TypeError || e instanceof RangeError;
  it('every export, arguments of the wrong type, buffers shorter than their counts say, every prefix of a compress task', async () => {
    const fn = (name: string) => miqchunkExport<(...a: unknown[]) => unknown>(name, 'MIQ_JS_SCAN')!;
    const buf = Buffer.alloc(100), gear = new Int32Array(256), d = Buffer.from(tmp);
    const calls: [string, unknown[]][] = [
      ['cut', []],
      ['cut', [buf, 0, 100, 64, 256, 1024, 1, 1, new Int32Array(255)]],
      ['cut', [buf, 0, 101, 64, 256, 1024, 1, 1, gear]],
      ['cut', [buf, 50, 40, 64, 256, 1024, 1, 1, gear]],
      ['cut', ['x'.repeat(100), 0, 100, 64, 256, 1024, 1, 1, gear]],
      ['listDir', [d]],
      ['listDir', [tmp, 0, 0]],
      ['listDir', [Buffer.from(`${tmp}\0x`), 0, 0]],
      ['listDir', [d, 'slow', 0]],
      ['warmTree', [d, 0]],
      ...['hashFiles', 'hashFilesAsync', 'scanFilesAsync'].flatMap((name): [string, unknown[]][] => {
        const more = name === 'scanFilesAsync' ? [scanArgs(DEFAULT_CHUNK_PARAMS, 0), gear] : [];
        return [
          [name, []],
          [name, [{ length: 1, 0: { path: d, size: 1 } }, ...more]],
          [name, [[{ path: tmp, size: 1 }], ...more]],
          [name, [[{ path: d, size: '1' }], ...more]],
          [name, [[null], ...more]],
          [name, [new Array(2), ...more]],
        ];
      }),
      ['scanFilesAsync', [[], new Float64Array(5), gear]],
      ['scanFilesAsync', [[], scanArgs(DEFAULT_CHUNK_PARAMS, 0), new Int32Array(255)]],
      ['scanFilesAsync', [[], Float64Array.of(64, 256, 1024, 1, 1, 65), gear]],
      ['scanFilesAsync', [[], Float64Array.of(64, 256, 2 ** 27, 1, 1, 0), gear]],
      ['scanFilesAsync', [[], Float64Array.of(64, 256, 1024, NaN, 1, 0), gear]],
      ['compressItemsAsync', []],
      ['compressItemsAsync', ['x']],
      ['compressItemsAsync', [new Float64Array(8)]],
    ];
    for (const [name, args] of calls) assert.throws(() => fn(name)(...args), wrong, `${name}(${args.map((a) => typeof a).join(', ')})`);
    // A small task (a base with a ref, a data item, a path item) cut at every length, and with
    // its counts and lengths made larger than what follows them.
    const data = Buffer.from('some bytes of a small chunk'), id = idOf(data);
    const small = encodeCompressTask([{ id, length: data.length, data, refs: [id], refDepth: 0 }, { id, length: 5, path: Buffer.from('/nonexistent'), offset: 3 }], tmp,
      [{ id, pack: 0, offset: 0, stored: 9, plain: 9, flags: 1, refs: [id] }]);
    for (let n = 0; n < small.length; n++) assert.throws(() => COMPRESS(small.subarray(0, n)), wrong, `the first ${n} of ${small.length} bytes`);
    assert.throws(() => COMPRESS(Buffer.concat([small, Buffer.alloc(1)])), wrong, 'a byte after the task');
    for (let at = 40; at + 4 <= small.length; at++) {
      const big = Buffer.from(small);
      big.writeUInt32LE(0x7fffffff, at);
      try {
        const r = COMPRESS(big) as Promise<unknown>;
        await r.catch(() => undefined);
      } catch (e) {
        assert.ok(wrong(e), `a large number at ${at}: ${String(e)}`);
      }
    }
    assert.equal(await COMPRESS(small), null, 'the well-formed task is given back (its path item cannot be read)');
  });
});
