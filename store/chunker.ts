/**
 * FastCDC-style content-defined chunking (Xia et al., 2016/2020): a gear rolling hash, cut points
 * searched from `min`, a stricter mask before `avg` and a looser one after it (normalised chunking,
 * level 2), forced cut at `max`. Pure: a scanner over bytes that returns cut points, so it runs
 * unchanged in workers. Files are chunked on their own (boundaries restart at every file), which
 * suits package trees (DESIGN §10).
 */
import { createHash } from 'node:crypto';
import { miqchunkExport } from './miqchunk.js';
import { MiqError } from './errors.js';

export interface ChunkParams {
  readonly min: number;
  readonly avg: number;
  readonly max: number;
}

export const CHUNKER_ALGO = 'fastcdc-gear32-nc2-v1';
/** Measured on 1.75 GB of Debian packages (benchmarks, 2026-11-22): 32/128/512 KiB stores 2.8%
 * less than 16/64/256 (per-chunk zstd keeps more context), and with delta chunks an update adds
 * no more (security set: 10.8 vs 11.0 MB; a typescript point release: 19 vs 25 kB). */
export const DEFAULT_CHUNK_PARAMS: ChunkParams = { min: 32 * 1024, avg: 128 * 1024, max: 512 * 1024 };

/** Gear table: fixed forever for CHUNKER_ALGO (changing it changes every cut point). Derived from
 * SHA-256 of a label so that it is reproducible without shipping 1 KiB of constants. */
export const GEAR: Int32Array = (() => {
  const t = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    t[i] = createHash('sha256').update(`miq-gear-v1:${i}`).digest().readInt32BE(0);
  }
  return t;
})();

export function checkChunkParams(p: ChunkParams): ChunkParams {
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  if (!pow2(p.avg) || p.avg < 256 || p.avg > 1 << 24 || !(p.min >= 64 && p.min < p.avg && p.avg < p.max && p.max <= 1 << 26)) {
    throw new MiqError('MIQ_BAD_INPUT', `chunk sizes ${p.min}/${p.avg}/${p.max} are invalid: need 64 <= min < avg < max <= 64 MiB with avg a power of two`);
  }
  return p;
}

/** Parses "MIN/AVG/MAX" with optional K/M suffixes. */
export function parseChunkParams(s: string): ChunkParams {
  const parts = s.split('/').map((x) => {
    const m = /^(\d+)([kKmM]?)$/.exec(x.trim());
    if (!m) throw new MiqError('MIQ_BAD_INPUT', `chunk sizes "${s}": expected MIN/AVG/MAX such as 16K/64K/256K`);
    return Number(m[1]) * (m[2] === '' ? 1 : m[2]!.toLowerCase() === 'k' ? 1024 : 1024 * 1024);
  });
  if (parts.length !== 3) throw new MiqError('MIQ_BAD_INPUT', `chunk sizes "${s}": expected MIN/AVG/MAX such as 16K/64K/256K`);
  return checkChunkParams({ min: parts[0]!, avg: parts[1]!, max: parts[2]! });
}

/** Masks on the high bits: with a shift-left gear hash the top bits mix the last 32 bytes. */
function highMask(bits: number): number {
  return bits >= 32 ? -1 : (~((1 << (32 - bits)) - 1)) | 0;
}

type NativeCut = (buf: Uint8Array, start: number, end: number, min: number, avg: number, max: number, maskS: number, maskL: number, gear: Int32Array) => number;

/**
 * The gear loop in C (native/miqchunk.c, built by binding.gyp at install): the same cut points,
 * ~4 GB/s against ~0.4 GB/s for the JS loop below on this project's VM (bounds checks on two
 * typed arrays per byte), which was ~7.6 % of an ingest's CPU on the many-small-files corpus
 * and more on large files. When the addon did not build (or MIQ_JS_CHUNKER=1) the JS loop runs.
 */
const nativeCut = miqchunkExport<NativeCut>('cut', 'MIQ_JS_CHUNKER');

/** Whether cut points come from the C loop (tests, benchmarks). */
export const NATIVE_CHUNKER = nativeCut !== undefined;

export class Chunker {
  readonly params: ChunkParams;
  /** The masks before and after `avg` (the C scan takes them as they are). */
  readonly maskS: number;
  readonly maskL: number;

  constructor(params: ChunkParams = DEFAULT_CHUNK_PARAMS) {
    this.params = checkChunkParams(params);
    const bits = Math.round(Math.log2(params.avg));
    this.maskS = highMask(bits + 2);
    this.maskL = highMask(bits - 2);
  }

  /** Length of the next chunk of `buf[start, end)`. `end - start` may be less than `max` only at
   * the end of the input. */
  cut(buf: Uint8Array, start: number, end: number): number {
    if (nativeCut && end - start > this.params.min) {
      const { min, avg, max } = this.params;
      return nativeCut(buf, start, end, min, avg, max, this.maskS >>> 0, this.maskL >>> 0, GEAR);
    }
    return this.cutJs(buf, start, end);
  }

  /** The JS loop (the fallback, and the reference the native loop is tested against). */
  cutJs(buf: Uint8Array, start: number, end: number): number {
    const { min, avg, max } = this.params;
    let n = end - start;
    if (n <= min) return n;
    if (n > max) n = max;
    const normal = n < avg ? n : avg;
    const maskS = this.maskS, maskL = this.maskL, G = GEAR;
    let h = 0;
    let i = start + min;
    const iNormal = start + normal, iEnd = start + n;
    for (; i < iNormal; i++) {
      h = ((h << 1) + G[buf[i]!]!) | 0;
      if ((h & maskS) === 0) return i + 1 - start;
    }
    for (; i < iEnd; i++) {
      h = ((h << 1) + G[buf[i]!]!) | 0;
      if ((h & maskL) === 0) return i + 1 - start;
    }
    return n;
  }

  /** All cut lengths of a complete buffer (tests, small files). */
  cutAll(buf: Uint8Array): number[] {
    const out: number[] = [];
    let s = 0;
    while (s < buf.length) {
      const n = this.cut(buf, s, buf.length);
      out.push(n);
      s += n;
    }
    return out;
  }
}
