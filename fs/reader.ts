/**
 * Reads byte ranges of files from a ChunkSource: find the chunks covering the range, fetch each
 * (verified by the source), keep a bounded LRU of decompressed chunks. Concurrent reads of the
 * same chunk share one fetch: kernel readahead issues neighbouring 128 KiB reads in parallel and
 * chunks straddle them.
 */
import type { ChunkSource } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import { ByteLru } from '../store/lru.js';
import type { FileRecord } from '../store/objects.js';

/** A file record with chunk start offsets, made once per open handle. */
export interface OpenFile {
  readonly rec: FileRecord;
  readonly starts: Float64Array;
}

export function openFile(rec: FileRecord): OpenFile {
  const starts = new Float64Array(rec.chunks.length + 1);
  let pos = 0;
  rec.chunks.forEach((c, i) => {
    starts[i] = pos;
    pos += c.length;
  });
  starts[rec.chunks.length] = pos;
  return { rec, starts };
}

export class ChunkReader {
  private readonly lru: ByteLru<Id, Buffer>;
  private readonly inflight = new Map<Id, Promise<Buffer>>();

  constructor(private readonly source: ChunkSource, cacheBytes = 128 << 20) {
    this.lru = new ByteLru(cacheBytes);
  }

  chunk(id: Id, length: number, file: Id): Promise<Buffer> {
    const hit = this.lru.get(id);
    if (hit) return Promise.resolve(hit);
    let p = this.inflight.get(id);
    if (!p) {
      p = this.source.get(id).then(
        (b) => {
          this.inflight.delete(id);
          if (!b) throw new MiqError('MIQ_MISSING', `chunk ${id} of file ${file} is missing from the store`, { details: { id, file } });
          if (b.length !== length) throw new MiqError('MIQ_CORRUPT', `chunk ${id} has ${b.length} bytes, file ${file} expects ${length}`, { details: { id, file } });
          this.lru.set(id, b);
          return b;
        },
        (e: unknown) => {
          this.inflight.delete(id);
          throw e;
        },
      );
      this.inflight.set(id, p);
    }
    return p;
  }

  /** Copies from cached chunks only: the count, or undefined when a chunk must be fetched. */
  readCached(f: OpenFile, pos: number, len: number, out: Buffer): number | undefined {
    const size = f.rec.size;
    if (pos >= size || len <= 0) return 0;
    const end = Math.min(size, pos + len);
    const wanted = this.covering(f, pos, end);
    const bufs: Buffer[] = [];
    for (const i of wanted) {
      const b = this.lru.get(f.rec.chunks[i]!.id);
      if (!b) return undefined;
      bufs.push(b);
    }
    return this.copy(f, wanted, bufs, pos, end, out);
  }

  private covering(f: OpenFile, pos: number, end: number): number[] {
    // Binary search for the chunk holding `pos`.
    let lo = 0, hi = f.rec.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (f.starts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    const wanted: number[] = [];
    for (let i = lo; i < f.rec.chunks.length && f.starts[i]! < end; i++) wanted.push(i);
    return wanted;
  }

  /** Copies bytes [pos, pos+len) of the file into `out`; returns the count (short at EOF). */
  async readInto(f: OpenFile, pos: number, len: number, out: Buffer): Promise<number> {
    const size = f.rec.size;
    if (pos >= size || len <= 0) return 0;
    const end = Math.min(size, pos + len);
    const wanted = this.covering(f, pos, end);
    const bufs = await Promise.all(wanted.map((i) => this.chunk(f.rec.chunks[i]!.id, f.rec.chunks[i]!.length, f.rec.id)));
    return this.copy(f, wanted, bufs, pos, end, out);
  }

  private copy(f: OpenFile, wanted: number[], bufs: Buffer[], pos: number, end: number, out: Buffer): number {
    let n = 0;
    bufs.forEach((b, k) => {
      const s = f.starts[wanted[k]!]!;
      const from = Math.max(0, pos - s);
      const to = Math.min(b.length, end - s);
      n += b.copy(out, n, from, to);
    });
    return n;
  }
}
