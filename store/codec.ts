/**
 * Per-chunk compression. A chunk is stored zstd-compressed only when that saves at least 1/32 of
 * its size; otherwise raw (flag 0), so incompressible data costs no decompression on read.
 */
import { Compressor, Decompressor } from 'zstd-napi';
import { MiqError } from './errors.js';

export const FLAG_RAW = 0;
export const FLAG_ZSTD = 1;
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

/** Decodes a stored body; the caller verifies the hash. */
export function decodeChunk(flags: number, body: Buffer, plainLen: number): Buffer {
  if (flags === FLAG_RAW) return body;
  if (flags !== FLAG_ZSTD) throw new MiqError('MIQ_CORRUPT', `unknown chunk encoding flag ${flags}`);
  if (!dctx) dctx = new Decompressor();
  let out: Buffer;
  try {
    out = dctx.decompress(body);
  } catch (e) {
    throw new MiqError('MIQ_CORRUPT', `chunk does not decompress: ${(e as Error).message}`, { cause: e });
  }
  if (out.length !== plainLen) throw new MiqError('MIQ_CORRUPT', `chunk decompressed to ${out.length} bytes, expected ${plainLen}`);
  return out;
}
