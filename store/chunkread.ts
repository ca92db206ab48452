/**
 * Reading one chunk from a pack, the one implementation: pread its stored bytes (a bounded cache
 * of open descriptors), decode (with its delta bases' bytes as dictionary), and check the plain
 * bytes against the id. The local store, the mount's decode workers and the ingest workers (delta
 * bases) all read through it; the synchronous half runs unchanged in worker threads.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import type { ChunkLocation } from './api.js';
import { FLAG_ZSTD, decodeChunk, decodeChunkInto } from './codec.js';
import { MiqError } from './errors.js';
import { idOf } from './ids.js';

/** Plain bytes of a chunk from its stored body, verified: MIQ_CORRUPT when it does not decode
 * or does not hash to `id`. Never returns unverified bytes. */
export function decodeVerified(id: string, flags: number, body: Buffer, plain: number, dict?: Uint8Array): Buffer {
  let out: Buffer;
  try {
    out = decodeChunk(flags, body, plain, dict);
  } catch (e) {
    throw new MiqError('MIQ_CORRUPT', `chunk ${id} is corrupt: ${(e as Error).message}`, { details: { id, kind: 'chunk' } });
  }
  if (idOf(out) !== id) throw new MiqError('MIQ_CORRUPT', `chunk ${id} is corrupt: its bytes do not match its hash`, { details: { id, kind: 'chunk' } });
  return out;
}

/** decodeVerified into `out` (exactly the plain length), for callers that reuse memory. */
export function decodeVerifiedInto(id: string, flags: number, body: Buffer, out: Buffer, dict?: Uint8Array): Buffer {
  try {
    decodeChunkInto(flags, body, out, dict);
  } catch (e) {
    throw new MiqError('MIQ_CORRUPT', `chunk ${id} is corrupt: ${(e as Error).message}`, { details: { id, kind: 'chunk' } });
  }
  if (idOf(out) !== id) throw new MiqError('MIQ_CORRUPT', `chunk ${id} is corrupt: its bytes do not match its hash`, { details: { id, kind: 'chunk' } });
  return out;
}

/** decodeFrame into `out` (exactly the frame's plain size). */
export function decodeFrameInto(body: Buffer, out: Buffer, id: string): Buffer {
  try {
    decodeChunkInto(FLAG_ZSTD, body, out);
  } catch (e) {
    throw new MiqError('MIQ_CORRUPT', `chunk ${id} is corrupt: its frame ${(e as Error).message.replace(/^chunk /, '')}`, { details: { id, kind: 'chunk' } });
  }
  return out;
}

/** The plain bytes of a shared frame (flags 3) from its stored body: MIQ_CORRUPT when it does
 * not decode to `size` bytes. Not verified as a whole: each chunk sliced from it is. */
export function decodeFrame(body: Buffer, size: number, id: string): Buffer {
  try {
    return decodeChunk(FLAG_ZSTD, body, size);
  } catch (e) {
    throw new MiqError('MIQ_CORRUPT', `chunk ${id} is corrupt: its frame ${(e as Error).message.replace(/^chunk /, '')}`, { details: { id, kind: 'chunk' } });
  }
}

/** The chunk `id`'s bytes as a view of [off, off + len) of its decoded frame, checked against
 * the id (MIQ_CORRUPT when they do not match); no copy: the view lives as long as the frame. */
export function viewVerified(id: string, frame: Buffer, off: number, len: number): Buffer {
  const view = frame.subarray(off, off + len);
  if (view.length !== len || idOf(view) !== id) throw new MiqError('MIQ_CORRUPT', `chunk ${id} is corrupt: its bytes do not match its hash`, { details: { id, kind: 'chunk' } });
  return view;
}

/** A framed chunk's plain bytes, cut from its frame's and checked against its id. A copy: a
 * view would keep the whole frame alive in every cache that holds the chunk. */
export function sliceVerified(id: string, frame: Buffer, off: number, len: number, into?: (len: number) => Buffer): Buffer {
  const view = viewVerified(id, frame, off, len);
  const out = into ? into(len) : Buffer.allocUnsafeSlow(len);
  view.copy(out);
  return out;
}

/** Plain bytes of the chunk at `loc` from its stored body (a frame's whole body for a framed
 * chunk), verified. */
export function decodeAt(id: string, loc: ChunkLocation, body: Buffer, dict?: Uint8Array): Buffer {
  if (loc.frame) return sliceVerified(id, decodeFrame(body, loc.frame.size, id), loc.frame.off, loc.plain);
  return decodeVerified(id, loc.flags, body, loc.plain, dict);
}

/** Open pack descriptors, least recently used closed first. A pack removed by gc stays readable
 * through an open descriptor, and its bytes are still verified, so a stale one is harmless; the
 * bound keeps descriptors of deleted packs from piling up. */
export class PackFds {
  private readonly fds = new Map<string, number>();

  constructor(private readonly max = 32) {}

  fd(path: string): number {
    let fd = this.fds.get(path);
    if (fd !== undefined) {
      this.fds.delete(path);
      this.fds.set(path, fd);
      return fd;
    }
    fd = openSync(path, 'r');
    this.fds.set(path, fd);
    if (this.fds.size > this.max) {
      const [old, ofd] = this.fds.entries().next().value as [string, number];
      this.fds.delete(old);
      try { closeSync(ofd); } catch { /* already gone */ }
    }
    return fd;
  }

  close(): void {
    for (const fd of this.fds.values()) {
      try { closeSync(fd); } catch { /* already gone */ }
    }
    this.fds.clear();
  }
}

/** The stored bytes of a chunk at `offset` of pack file `path`: MIQ_IO when the pack cannot be
 * opened or read (the caller may retry through the index: gc moves chunks), MIQ_CORRUPT when
 * it is shorter than the index says. */
export function preadStored(fds: PackFds, path: string, offset: number, stored: number, id: string, into?: Buffer): Buffer {
  // `into`: a caller's reused scratch (the decode workers'), so a read faults no fresh memory.
  const body = into && into.length >= stored ? into.subarray(0, stored) : Buffer.allocUnsafeSlow(stored);
  let n = 0;
  try {
    const fd = fds.fd(path);
    while (n < stored) {
      const r = readSync(fd, body, n, stored - n, offset + n);
      if (r === 0) break;
      n += r;
    }
  } catch (e) {
    throw new MiqError('MIQ_IO', `chunk ${id}: cannot read pack ${path}: ${(e as Error).message}`, { details: { id } });
  }
  if (n !== stored) throw new MiqError('MIQ_CORRUPT', `chunk ${id}: pack ${path} is truncated`, { details: { id } });
  return body;
}
