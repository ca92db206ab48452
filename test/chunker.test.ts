import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Chunker, GEAR, NATIVE_CHUNKER, parseChunkParams } from '../store/chunker.js';
import { idOf } from '../store/ids.js';
import { isMiqError } from '../store/errors.js';

/** Deterministic pseudo-random bytes (xorshift32), so cut points are reproducible. */
export function prng(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

test('gear table is fixed (golden): changing it would change every cut of every store', () => {
  assert.equal(idOf(Buffer.from(GEAR.buffer)), '199da29888db870742f9c38bd20e2d3a902d430c8a03c16bcad79617ba1d592a');
});

test('cut points are stable (golden) for default and small parameters', () => {
  assert.deepEqual(new Chunker({ min: 16384, avg: 65536, max: 262144 }).cutAll(prng(2 << 20)), [78233, 104717, 69857, 91392, 102320, 77186, 71608, 100327, 68827, 82388, 87300, 67364, 72379, 83442, 19694, 109600, 35664, 78525, 66477, 78316, 73873, 115896, 86481, 68685, 72084, 85460, 49057]);
  assert.deepEqual(new Chunker().cutAll(prng(2 << 20)), [260565, 138829, 154165, 198932, 148491, 157524, 163930, 136855, 169766, 213213, 150067, 204815], 'default 32/128/512 KiB');
  assert.deepEqual(new Chunker({ min: 2048, avg: 8192, max: 32768 }).cutAll(prng(100000, 7)), [8241, 9766, 8540, 10067, 10209, 8720, 14767, 11924, 8103, 5657, 4006]);
});

test('the native gear loop cuts where the JS loop does (views, offsets, windows shorter than max)', (t) => {
  if (!NATIVE_CHUNKER) {
    // Only when the addon did not build (no C compiler at install) or MIQ_JS_CHUNKER=1.
    t.skip('native/miqchunk.c is not built: the JS loop is the only one');
    return;
  }
  // Random bytes, runs of text-like bytes (low entropy), zeros; a view at an odd byte offset.
  const text = Buffer.from('#!/bin/sh\nexec /nix/store/abc-hello/bin/hello "$@"\n'.repeat(40000));
  const base = Buffer.concat([prng(3 << 20, 11), text, Buffer.alloc(600000), prng(1 << 20, 12)]);
  const views = [base, base.subarray(7), new Uint8Array(base.buffer, base.byteOffset + 12345, base.length - 20000)];
  const params = [{ min: 32768, avg: 131072, max: 524288 }, { min: 2048, avg: 8192, max: 32768 }, { min: 64, avg: 256, max: 1024 }, { min: 100000, avg: 1 << 20, max: 3 << 20 }];
  let compared = 0;
  for (const p of params) {
    const c = new Chunker(p);
    for (const v of views) {
      for (let s = 0; s < v.length; ) {
        // Windows that end before max too (the end of a read buffer or of a file).
        const end = Math.min(v.length, s + ((s * 7919) % (p.max * 2)) + 1);
        const want = c.cutJs(v, s, end);
        assert.equal(c.cut(v, s, end), want, `params ${p.min}/${p.avg}/${p.max}, offset ${v.byteOffset}, window ${s}..${end}`);
        compared++;
        s += want;
      }
    }
  }
  assert.ok(compared > 1000, `${compared} cuts compared`);
});

test('every chunk respects min and max; lengths sum to the input', () => {
  const c = new Chunker({ min: 1024, avg: 4096, max: 16384 });
  for (const data of [prng(300000, 9), Buffer.alloc(300000), Buffer.alloc(5), Buffer.alloc(0)]) {
    const cuts = c.cutAll(data);
    assert.equal(cuts.reduce((a, b) => a + b, 0), data.length);
    cuts.slice(0, -1).forEach((n) => assert.ok(n >= 1024 && n <= 16384, `chunk of ${n}`));
  }
  // Zeros never match the mask: max-size chunks, which dedup to one body.
  assert.ok(c.cutAll(Buffer.alloc(300000)).slice(0, -1).every((n) => n === 16384));
});

test('an insertion near the start shifts boundaries only locally (content-defined)', () => {
  const c = new Chunker();
  const a = prng(8 << 20, 5);
  const b = Buffer.concat([a.subarray(0, 1000), Buffer.from('inserted bytes'), a.subarray(1000)]);
  const ids = (buf: Buffer): string[] => {
    let s = 0;
    return c.cutAll(buf).map((n) => idOf(buf.subarray(s, (s += n))));
  };
  const ia = new Set(ids(a));
  const ib = ids(b);
  const shared = ib.filter((x) => ia.has(x)).length;
  assert.ok(shared >= ib.length - 2, `only ${shared} of ${ib.length} chunks shared`);
});

test('chunk parameters parse and are validated with a clear error', () => {
  assert.deepEqual(parseChunkParams('16K/64K/256K'), { min: 16384, avg: 65536, max: 262144 });
  assert.throws(() => parseChunkParams('16K/60K/256K'), (e: unknown) => isMiqError(e, 'MIQ_BAD_INPUT') && /power of two/.test((e as Error).message));
  assert.throws(() => parseChunkParams('big'), (e: unknown) => isMiqError(e, 'MIQ_BAD_INPUT'));
});
