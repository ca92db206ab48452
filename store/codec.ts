/**
 * Per-chunk compression. A chunk is stored zstd-compressed only when that saves at least 1/32 of
 * its size; otherwise raw (flag 0), so incompressible data costs no decompression on read.
 */
import { Compressor, Decompressor } from 'zstd-napi';
import zstd from 'zstd-napi/binding.js';
import { MiqError } from './errors.js';

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

let cctx: Compressor | undefined;
let dctx: Decompressor | undefined;

export function encodeChunk(plain: Uint8Array): { flags: number; body: Buffer } {
  if (!cctx) {
    cctx = new Compressor();
    cctx.setParameters({ compressionLevel: ZSTD_LEVEL, checksumFlag: false, contentSizeFlag: true });
  }
  if (plain.length >= 64) {
    const z = cctx.compress(plain);
    if (z.length < plain.length - (plain.length >> 5)) return { flags: FLAG_ZSTD, body: z };
  }
  return { flags: FLAG_RAW, body: Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength) };
}

let cctxDict: InstanceType<typeof zstd.CCtx> | undefined;
let dctxDict: Decompressor | undefined;

/**
 * Compresses against `dict`; the caller keeps it only when it beats plain compression. One-shot
 * ZSTD_compress_usingDict: loading the dictionary into a CCtx (ZSTD_CCtx_loadDictionary) builds
 * a CDict for every chunk, and was 2.5x slower for 1.6% smaller output (128 KiB chunks of three
 * rebuilt libraries against 256 KiB of their old versions: 3.2 ms vs ~1.3 ms a chunk). A raw
 * content dictionary has no id, so the frame names none; it decodes as before.
 */
export function encodeChunkWithDict(plain: Uint8Array, dict: Uint8Array): Buffer {
  cctxDict ??= new zstd.CCtx();
  const dst = Buffer.allocUnsafe(zstd.compressBound(plain.length));
  const n = cctxDict.compressUsingDict(dst, plain, dict, ZSTD_LEVEL);
  return Buffer.from(dst.subarray(0, n));
}

/** Decodes a stored body; the caller verifies the hash. `dict` is needed for FLAG_ZSTD_DICT. */
export function decodeChunk(flags: number, body: Buffer, plainLen: number, dict?: Uint8Array): Buffer {
  if (flags === FLAG_RAW) return body;
  if (flags !== FLAG_ZSTD && flags !== FLAG_ZSTD_DICT) throw new MiqError('MIQ_CORRUPT', `unknown chunk encoding flag ${flags}`);
  let d: Decompressor;
  if (flags === FLAG_ZSTD_DICT) {
    if (!dict) throw new MiqError('MIQ_CORRUPT', 'delta chunk without its dictionary');
    dctxDict ??= new Decompressor();
    dctxDict.loadDictionary(dict);
    d = dctxDict;
  } else {
    dctx ??= new Decompressor();
    d = dctx;
  }
  let out: Buffer;
  try {
    out = d.decompress(body);
  } catch (e) {
    throw new MiqError('MIQ_CORRUPT', `chunk does not decompress: ${(e as Error).message}`, { cause: e });
  }
  if (out.length !== plainLen) throw new MiqError('MIQ_CORRUPT', `chunk decompressed to ${out.length} bytes, expected ${plainLen}`);
  return out;
}
