/**
 * Per-chunk compression. A chunk is stored zstd-compressed only when that saves at least 1/32 of
 * its size; otherwise raw (flag 0), so incompressible data costs no decompression on read.
 */
import { createRequire } from 'node:module';
import type Zstd from 'zstd-napi/binding.js';
import { MiqError } from './errors.js';

/** zstd-napi's binding, loaded on first use: an update ingest compresses in C (ingest-c.ts) and
 * a command that reads no chunk (`miq paths`) never needs it; loading it (a dlopen) was ~4 ms of
 * every such command's start. */
let zstdBinding: typeof Zstd | undefined;
const zstd = (): typeof Zstd => (zstdBinding ??= createRequire(import.meta.url)('zstd-napi/binding.js') as typeof Zstd);

export const FLAG_RAW = 0;
export const FLAG_ZSTD = 1;
/** zstd with a raw-content dictionary: the plain bytes of the chunks listed in the index entry
 * (old chunks of the same path's previous version), like `zstd --patch-from` per chunk. */
export const FLAG_ZSTD_DICT = 2;
/** A chunk stored inside a shared frame: the body is one zstd frame of several small chunks'
 * plain bytes concatenated (the index entry says where in it this chunk lies). Small files
 * compressed together store ~10-15% less than each alone and cost one zstd call, one pack
 * entry header and one read per frame instead of per file. */
export const FLAG_FRAME = 3;
export const ZSTD_LEVEL = Number(process.env.MIQ_ZSTD_LEVEL) || 3;
/** Chunks up to FRAME_ITEM_MAX stored plainly are compressed together, in shared frames of about
 * FRAME_BYTES (FLAG_FRAME); measured on the many-small-files corpus (see the issue 13 note in
 * .notes/store-interface.md). The ingest's workers and its C path (ingest-c.ts) both use these
 * and the delta ratios below, which live here so that the main thread, which compresses in C,
 * does not load the worker's module for them. */
export const FRAME_BYTES = 256 << 10;
export const FRAME_ITEM_MAX = 64 << 10;
/** A delta (FLAG_ZSTD_DICT) is kept only when it is under this share of the plain compression. */
export const DELTA_KEEP_RATIO = 0.8;
/** A delta under this share of the chunk is kept without trying plain compression. At 0.2 (was
 * 0.1) release N+1 skips ~90 of 133 plain compressions and stores 7 kB less (the skipped plain
 * bodies were rarely smaller than the delta). */
export const DELTA_SURE_RATIO = 0.2;
/** The blocks an ingest worker copies compressed bodies into to hand them over (ingest-worker.ts
 * Arena); the main thread gives blocks of this size back for reuse. */
export const ARENA_BLOCK = 1 << 20;

let cctx: InstanceType<typeof Zstd.CCtx> | undefined;
/** Where the compressors write; what is kept is copied out (see encodeChunkScratch). */
let scratch = Buffer.allocUnsafeSlow(0);

function scratchFor(n: number): Buffer {
  const bound = zstd().compressBound(n);
  if (scratch.length < bound) scratch = Buffer.allocUnsafeSlow(Math.max(bound, scratch.length * 2));
  return scratch;
}

/** encodeChunk with the body in a buffer the next call reuses (for callers that copy it out
 * anyway: the ingest workers copy every body into the result they hand over, and a fresh buffer
 * per frame, copied twice, cost page faults and copies on the many-small-files corpus). A raw
 * body is a view of `plain`. */
export function encodeChunkScratch(plain: Uint8Array): { flags: number; body: Buffer } {
  if (!cctx) {
    const z = zstd();
    cctx = new z.CCtx();
    cctx.setParameter(z.CParameter.compressionLevel, ZSTD_LEVEL);
    cctx.setParameter(z.CParameter.checksumFlag, 0);
    cctx.setParameter(z.CParameter.contentSizeFlag, 1);
  }
  if (plain.length >= 64) {
    const dst = scratchFor(plain.length);
    const n = cctx.compress2(dst, plain);
    if (n < plain.length - (plain.length >> 5)) return { flags: FLAG_ZSTD, body: dst.subarray(0, n) };
  }
  return { flags: FLAG_RAW, body: Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength) };
}

export function encodeChunk(plain: Uint8Array): { flags: number; body: Buffer } {
  const r = encodeChunkScratch(plain);
  return r.flags === FLAG_ZSTD ? { flags: FLAG_ZSTD, body: Buffer.from(r.body) } : r;
}

let cctxDict: InstanceType<typeof Zstd.CCtx> | undefined;

/**
 * Compresses against `dict`; the caller keeps it only when it beats plain compression. One-shot
 * ZSTD_compress_usingDict: loading the dictionary into a CCtx (ZSTD_CCtx_loadDictionary) builds
 * a CDict for every chunk, and was 2.5x slower for 1.6% smaller output (128 KiB chunks of three
 * rebuilt libraries against 256 KiB of their old versions: 3.2 ms vs ~1.3 ms a chunk). A raw
 * content dictionary has no id, so the frame names none; it decodes as before. With `inScratch`
 * the result is valid until the next call of this module (see encodeChunkScratch).
 */
export function encodeChunkWithDict(plain: Uint8Array, dict: Uint8Array, inScratch = false): Buffer {
  cctxDict ??= new (zstd().CCtx)();
  const dst = scratchFor(plain.length);
  const n = cctxDict.compressUsingDict(dst, plain, dict, ZSTD_LEVEL);
  return inScratch ? dst.subarray(0, n) : Buffer.from(dst.subarray(0, n));
}

let dctx: InstanceType<typeof Zstd.DCtx> | undefined;

/** decodeChunk into `out`, whose length is the plain length: no buffer per call (the ingest
 * workers decode delta bases into reused memory; a fresh one per base faulted in its pages). */
export function decodeChunkInto(flags: number, body: Buffer, out: Buffer, dict?: Uint8Array): void {
  if (flags === FLAG_RAW) {
    if (body.length !== out.length) throw new MiqError('MIQ_CORRUPT', `raw chunk of ${body.length} bytes, expected ${out.length}`);
    body.copy(out);
    return;
  }
  if (flags !== FLAG_ZSTD && flags !== FLAG_ZSTD_DICT) throw new MiqError('MIQ_CORRUPT', `unknown chunk encoding flag ${flags}`);
  if (flags === FLAG_ZSTD_DICT && !dict) throw new MiqError('MIQ_CORRUPT', 'delta chunk without its dictionary');
  dctx ??= new (zstd().DCtx)();
  let n: number;
  try {
    n = flags === FLAG_ZSTD_DICT ? dctx.decompressUsingDict(out, body, dict!) : dctx.decompress(out, body);
  } catch (e) {
    throw new MiqError('MIQ_CORRUPT', `chunk does not decompress: ${(e as Error).message}`, { cause: e });
  }
  if (n !== out.length) throw new MiqError('MIQ_CORRUPT', `chunk decompressed to ${n} bytes, expected ${out.length}`);
}

/** Decodes a stored body; the caller verifies the hash. `dict` is needed for FLAG_ZSTD_DICT.
 * A raw body is returned as is; otherwise a fresh buffer of `plainLen` (not from the shared
 * pool: caches keep chunks, and a pooled slice would keep its whole slab alive). */
export function decodeChunk(flags: number, body: Buffer, plainLen: number, dict?: Uint8Array): Buffer {
  if (flags === FLAG_RAW) return body;
  if (!Number.isSafeInteger(plainLen) || plainLen < 0 || plainLen > 0x7fffffff) throw new MiqError('MIQ_CORRUPT', `chunk of an impossible plain length ${plainLen}`);
  const out = Buffer.allocUnsafeSlow(plainLen);
  decodeChunkInto(flags, body, out, dict);
  return out;
}
