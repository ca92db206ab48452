/**
 * Byte range → chunks, the one place it is computed: the local store's readFile, the memory
 * store, the remote reader and the mount's reader all map a range of a file onto the chunks of
 * its record with these functions.
 */
import { MiqError } from './errors.js';
import type { Id } from './ids.js';
import type { FileRecord } from './objects.js';

const startsOf = new WeakMap<FileRecord, Float64Array>();

/** Offset of each chunk of `f`, plus its size at the end (n + 1 entries); computed once per
 * record object (callers read a file chunk by chunk with the same record). */
export function chunkStarts(f: FileRecord): Float64Array {
  let s = startsOf.get(f);
  if (!s) {
    const n = f.chunks.length;
    s = new Float64Array(n + 1);
    let pos = 0;
    for (let i = 0; i < n; i++) {
      s[i] = pos;
      pos += f.chunks[i]!.length;
    }
    s[n] = pos;
    startsOf.set(f, s);
  }
  return s;
}

/** Index of the chunk holding byte `pos` (binary search; `starts` from chunkStarts, n chunks). */
export function chunkAt(starts: Float64Array, n: number, pos: number): number {
  let lo = 0, hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The chunks [lo, hi) covering bytes [offset, end) of a file of `size` bytes; end is clamped to
 * the size (empty when offset is at or past it, or length is not positive). */
export function chunkSpan(starts: Float64Array, n: number, size: number, offset: number, length: number): { lo: number; hi: number; end: number } {
  const end = Math.min(size, offset + Math.max(0, length));
  if (offset >= end || n === 0) return { lo: 0, hi: 0, end: Math.max(offset, 0) };
  const lo = chunkAt(starts, n, offset);
  let hi = lo;
  while (hi < n && starts[hi]! < end) hi++;
  return { lo, hi, end };
}

/** Copies the part of chunk bytes `b` (starting at file offset `start`) that lies in [pos, end)
 * into `out` at `at`; returns the count. */
export function copyPart(b: Buffer, start: number, pos: number, end: number, out: Buffer, at: number): number {
  return b.copy(out, at, Math.max(0, pos - start), Math.min(b.length, end - start));
}

/** Bytes [offset, offset+length) of `file` (short at EOF), from verified chunk bodies `get`
 * returns (fetched together). A chunk `get` lacks is `missing(id)`'s error (default
 * MIQ_MISSING); one whose length differs from the record is MIQ_CORRUPT. */
export async function readRange(
  file: FileRecord, offset: number, length: number,
  get: (id: Id, length: number) => Promise<Buffer | undefined>,
  missing: (id: Id) => MiqError = (id) => new MiqError('MIQ_MISSING', `chunk ${id} of file ${file.id} is missing from the store`, { details: { id, kind: 'chunk', file: file.id } }),
): Promise<Buffer> {
  const starts = chunkStarts(file);
  const { lo, hi, end } = chunkSpan(starts, file.chunks.length, file.size, offset, length);
  if (hi <= lo) return Buffer.alloc(0);
  const bodies = await Promise.all(file.chunks.slice(lo, hi).map(async (c) => {
    const b = await get(c.id, c.length);
    if (!b) throw missing(c.id);
    if (b.length !== c.length) throw new MiqError('MIQ_CORRUPT', `chunk ${c.id} has ${b.length} bytes, file ${file.id} expects ${c.length}`, { details: { id: c.id, kind: 'chunk' } });
    return b;
  }));
  if (bodies.length === 1) return bodies[0]!.subarray(offset - starts[lo]!, end - starts[lo]!);
  const out = Buffer.allocUnsafe(end - offset);
  let at = 0;
  for (let i = lo; i < hi; i++) at += copyPart(bodies[i - lo]!, starts[i]!, offset, end, out, at);
  return out;
}
