/**
 * Piscina worker for the mount's cold reads: pread a chunk's stored bytes from its pack,
 * decompress, and check the BLAKE3 id, so the serving thread (which must also answer every FUSE
 * request) does none of that CPU work. Measured on a cold read of a 1.8 GB tree, decompression
 * and hashing were 1.5 s of the serving thread's ~4 s of CPU.
 *
 * Only self-contained chunks come here (raw or plain zstd); delta chunks need other chunks'
 * bytes as their dictionary and stay on the main path. The reply carries the plain bytes by
 * transfer, or a MiqError's JSON: MIQ_CORRUPT for bytes that fail their id (the caller answers
 * EIO, never wrong bytes), MIQ_IO when the pack cannot be read (the caller retries through the
 * store, whose index may have moved the chunk: gc repacks).
 */
import { createRequire } from 'node:module';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { PackFds, decodeFrame, decodeVerified, preadStored, sliceVerified, viewVerified } from '../store/chunkread.js';
import { FLAG_ZSTD } from '../store/codec.js';
import { MiqError } from '../store/errors.js';
import { idOf } from '../store/ids.js';

/** The addon's zstd (native/miqfuse.c zstdDecompressInto: the system's libzstd, ~4x less CPU
 * than zstd-napi here), or undefined where the addon or libzstd is missing. */
const addon = ((): {
  zstdDecompressInto?: (b: Buffer, o: Buffer) => boolean;
  willneedRange?: (fd: number, off: number, len: number) => boolean;
  chunkOffer?: (h: number, ino: number, at: number, b: Uint8Array) => boolean;
  chunkDecodeOffer?: (h: number, ino: number, at: number, body: Buffer, plain: number, id: Buffer) => number;
  readyOffer?: (h: number, ino: number, b: Uint8Array) => boolean;
} | undefined => {
  try {
    return createRequire(import.meta.url)('../../build/Release/miqfuse.node') as never;
  } catch {
    return undefined;
  }
})();
const zstdInto = addon?.zstdDecompressInto;
/** The binding's stream table (native/miqfuse.c chunkOffer): verified bytes only. */
const chunkOffer = addon?.chunkOffer;
const willneedRange = addon?.willneedRange;
/** zstd straight into a stream table block, BLAKE3 checked there (built with BLAKE3's C code). */
const chunkDecodeOffer = addon?.chunkDecodeOffer;
/** The binding's table of offered small files (native/miqfuse.c readyOffer): verified bytes only. */
const readyOffer = addon?.readyOffer;

/** decodeVerified, with plain zstd frames decoded by the addon: the same checks, the same errors.
 * The result always owns its memory (never a view of `body`, which may be the scratch buffer). */
function decodeChunkVerified(id: string, flags: number, body: Buffer, plain: number): Uint8Array {
  if (flags !== FLAG_ZSTD || !zstdInto || plain < 1) return own(decodeVerified(id, flags, body, plain));
  const out = Buffer.allocUnsafeSlow(plain);
  let ok: boolean;
  try {
    ok = zstdInto(body, out);
  } catch (e) {
    throw new MiqError('MIQ_CORRUPT', `chunk ${id} is corrupt: ${(e as Error).message}`, { details: { id, kind: 'chunk' } });
  }
  if (!ok) return own(decodeVerified(id, flags, body, plain));
  if (idOf(out) !== id) throw new MiqError('MIQ_CORRUPT', `chunk ${id} is corrupt: its bytes do not match its hash`, { details: { id, kind: 'chunk' } });
  return out;
}

export interface DecodeItem {
  id: string;
  path: string;
  offset: number;
  stored: number;
  plain: number;
  flags: number;
  /** A chunk inside a shared zstd frame (flags 3): `plain` bytes at `off` of the frame's `size`. */
  frame?: { off: number; size: number };
  /** Offer the verified bytes to the mount's stream table: session handle, file node, offset. */
  sink?: { h: number; ino: number; at: number };
  /** A small file's whole content (the chunk's id is the file's id): offer the verified bytes to
   * the mount's table of offered files for node `ino` (session handle `h`), not sent back. */
  ready?: { h: number; ino: number };
}

/** `span`: one pread of [offset, offset + length) of `path` covers every item (neighbours in a
 * pack: a directory's small files), instead of one per item. */
export type DecodeTask = {
  type: 'decode';
  items: DecodeItem[];
  span?: { path: string; offset: number; length: number };
  /** Pack ranges to ask the kernel to start reading (a stream's chunks further ahead), first. */
  advise?: { path: string; offset: number; length: number }[];
};

/** `bytes` undefined: offered to the mount's stream table (DecodeItem.sink), not sent back. */
export type Decoded =
  | { ok: true; bytes?: Uint8Array }
  | { ok: false; error: { code: string; message: string; details?: Record<string, unknown> } };

/** timing (MIQ_DEBUG_DECODE only): when the worker started the task (ms since the epoch, as
 * performance.timeOrigin + now) and how long it ran. */
export type DecodeResult = { type: 'decoded'; items: Decoded[]; timing?: { start: number; run: number } };

const TIMING = !!process.env.MIQ_DEBUG_DECODE;

const fds = new PackFds(32);

/**
 * Stored bytes are read into one buffer per worker, reused: they only live until decoded.
 * Measured on the bench tree's 117 MB file (36 MB stored): fresh buffers for them cost the
 * worker ~0.2 s of page faults, more than the zstd decode of the same bytes.
 */
let scratch = Buffer.allocUnsafeSlow(1 << 20);

function preadScratch(path: string, offset: number, length: number, id: string): Buffer {
  if (scratch.length < length) scratch = Buffer.allocUnsafeSlow(Math.max(length, scratch.length * 2));
  return preadStored(fds, path, offset, length, id, scratch);
}

/** A buffer that owns its whole ArrayBuffer, so it can be transferred (pooled Buffers, views of
 * the scratch buffer cannot). */
function own(b: Uint8Array): Uint8Array {
  if (b.buffer !== scratch.buffer && b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && !(b.buffer instanceof SharedArrayBuffer)) return b;
  const c = Buffer.allocUnsafeSlow(b.byteLength);
  c.set(b);
  return c;
}

/**
 * Shared frames decoded lately, by pack and offset: a directory's small files mostly share a
 * few frames (~256 KiB each), and each of its chunks would otherwise decode its whole frame.
 * Until this, framed chunks were decoded on the serving thread (the store's readAt, zstd-napi).
 */
const frames = new Map<string, Buffer>();
const FRAMES = 4;

function frameOf(it: DecodeItem & { frame: { off: number; size: number } }, span?: { offset: number; bytes: Buffer }): Buffer {
  const key = `${it.path}:${it.offset}`;
  let f = frames.get(key);
  if (f) return f;
  const body = span ? span.bytes.subarray(it.offset - span.offset, it.offset - span.offset + it.stored) : preadScratch(it.path, it.offset, it.stored, it.id);
  f = Buffer.allocUnsafeSlow(it.frame.size);
  let ok = false;
  try {
    ok = zstdInto !== undefined && zstdInto(body, f);
    if (!ok) f = decodeFrame(body, it.frame.size, it.id);
  } catch (e) {
    if (e instanceof MiqError) throw e;
    throw new MiqError('MIQ_CORRUPT', `chunk ${it.id} is corrupt: its frame ${(e as Error).message}`, { details: { id: it.id, kind: 'chunk' } });
  }
  frames.set(key, f);
  if (frames.size > FRAMES) frames.delete(frames.keys().next().value as string);
  return f;
}

/** Plain bytes of chunks offered to the stream table: decoded into one buffer per worker, reused
 * (the table copies them), not into fresh pages per chunk. */
let plainScratch = Buffer.allocUnsafeSlow(1 << 20);

/** A stream's chunk (it.sink): decoded, checked against its id, offered to the binding; its bytes
 * come back only when the binding did not take them. */
function decodeOffered(it: DecodeItem & { sink: { h: number; ino: number; at: number } }, span?: { offset: number; bytes: Buffer }): Decoded {
  if (it.frame || it.flags !== FLAG_ZSTD || !zstdInto || !chunkOffer || it.plain < 1) {
    const d = decodeOne(it, span);
    if (d.ok && d.bytes && chunkOffer?.(it.sink.h, it.sink.ino, it.sink.at, d.bytes)) return { ok: true };
    return d;
  }
  try {
    const body = span ? span.bytes.subarray(it.offset - span.offset, it.offset - span.offset + it.stored) : preadScratch(it.path, it.offset, it.stored, it.id);
    if (chunkDecodeOffer) {
      let r: number;
      try {
        r = chunkDecodeOffer(it.sink.h, it.sink.ino, it.sink.at, body, it.plain, Buffer.from(it.id, 'hex'));
      } catch (e) {
        throw new MiqError('MIQ_CORRUPT', `chunk ${it.id} is corrupt: ${(e as Error).message}`, { details: { id: it.id, kind: 'chunk' } });
      }
      if (r === 1) return { ok: true };
      if (r === -1) throw new MiqError('MIQ_CORRUPT', `chunk ${it.id} is corrupt: its bytes do not match its hash`, { details: { id: it.id, kind: 'chunk' } });
      // 0: not taken by the table; decoded below and returned (or offered, if it is there now).
    }
    if (plainScratch.length < it.plain) plainScratch = Buffer.allocUnsafeSlow(Math.max(it.plain, plainScratch.length * 2));
    const out = plainScratch.subarray(0, it.plain);
    let ok: boolean;
    try {
      ok = zstdInto(body, out);
    } catch (e) {
      throw new MiqError('MIQ_CORRUPT', `chunk ${it.id} is corrupt: ${(e as Error).message}`, { details: { id: it.id, kind: 'chunk' } });
    }
    if (!ok) return decodeOne(it, span);
    if (idOf(out) !== it.id) throw new MiqError('MIQ_CORRUPT', `chunk ${it.id} is corrupt: its bytes do not match its hash`, { details: { id: it.id, kind: 'chunk' } });
    // Only bytes that matched their id reach the binding.
    if (chunkOffer(it.sink.h, it.sink.ino, it.sink.at, out)) return { ok: true };
    return { ok: true, bytes: own(Buffer.from(out)) };
  } catch (e) {
    if (e instanceof MiqError) return { ok: false, error: e.toJSON() };
    return { ok: false, error: new MiqError('MIQ_IO', `chunk ${it.id}: ${(e as Error).message}`, { details: { id: it.id } }).toJSON() };
  }
}

/**
 * A small file's chunk (it.ready): checked against its id and offered to the binding by node;
 * its bytes come back only when the binding did not take them. A framed chunk is hashed and
 * offered as a view of its frame (no copy of its own in this thread). Measured on a cold read of
 * the bench tree: sending every small file's bytes to the serving thread (one transferred
 * ArrayBuffer each, ~1 GB in all) made its heap run a full mark-compact per ~64 MB of them (37
 * in a read), ~3.5 s of the serving process's ~15 s of CPU with the GC threads'.
 */
function decodeReady(it: DecodeItem & { ready: { h: number; ino: number } }, span?: { offset: number; bytes: Buffer }): Decoded {
  if (!readyOffer || it.plain < 1) return decodeOne(it, span);
  if (it.frame) {
    let view: Buffer | undefined;
    try {
      view = viewVerified(it.id, frameOf(it as DecodeItem & { frame: { off: number; size: number } }, span), it.frame.off, it.plain);
    } catch {
      // decodeOne below says what failed.
    }
    // A frame that fails (or a stale one remembered from an earlier task): decodeOne retries it
    // from the pack and reports what is wrong; only bytes that matched their id are offered.
    if (!view) return decodeOne(it, span);
    if (readyOffer(it.ready.h, it.ready.ino, view)) return { ok: true };
    const c = Buffer.allocUnsafeSlow(view.length);
    view.copy(c);
    return { ok: true, bytes: c };
  }
  const d = decodeOne(it, span);
  if (d.ok && d.bytes && readyOffer(it.ready.h, it.ready.ino, d.bytes)) return { ok: true };
  return d;
}

function decodeOne(it: DecodeItem, span?: { offset: number; bytes: Buffer }): Decoded {
  try {
    if (it.frame) {
      // sliceVerified: a copy of the chunk's bytes, checked against its id. A frame remembered
      // from an earlier task may be stale (a pack rewritten under the same name): a slice that
      // fails its hash is tried once more from the pack before it is called corrupt.
      const fit = it as DecodeItem & { frame: { off: number; size: number } };
      const cached = frames.has(`${it.path}:${it.offset}`);
      try {
        return { ok: true, bytes: own(sliceVerified(it.id, frameOf(fit, span), it.frame.off, it.plain)) };
      } catch (e) {
        if (!cached) throw e;
        frames.delete(`${it.path}:${it.offset}`);
        return { ok: true, bytes: own(sliceVerified(it.id, frameOf(fit, span), it.frame.off, it.plain)) };
      }
    }
    const body = span ? span.bytes.subarray(it.offset - span.offset, it.offset - span.offset + it.stored) : preadScratch(it.path, it.offset, it.stored, it.id);
    return { ok: true, bytes: decodeChunkVerified(it.id, it.flags, body, it.plain) };
  } catch (e) {
    if (e instanceof MiqError) return { ok: false, error: e.toJSON() };
    return { ok: false, error: new MiqError('MIQ_IO', `chunk ${it.id}: ${(e as Error).message}`, { details: { id: it.id } }).toJSON() };
  }
}

export default function decode(task: DecodeTask): unknown {
  const t0 = TIMING ? performance.now() : 0;
  if (task.advise && willneedRange) {
    for (const a of task.advise) {
      try {
        willneedRange(fds.fd(a.path), a.offset, a.length);
      } catch {
        // Only a hint: the chunks' own preads report any error.
      }
    }
  }
  let span: { offset: number; bytes: Buffer } | undefined;
  if (task.span) {
    try {
      span = { offset: task.span.offset, bytes: preadScratch(task.span.path, task.span.offset, task.span.length, task.items[0]?.id ?? '') };
    } catch {
      // Each item is read on its own below, and reports its own error.
    }
  }
  const items = task.items.map((it) =>
    it.sink ? decodeOffered(it as DecodeItem & { sink: NonNullable<DecodeItem['sink']> }, span)
    : it.ready ? decodeReady(it as DecodeItem & { ready: NonNullable<DecodeItem['ready']> }, span)
    : decodeOne(it, span));
  const result: DecodeResult = { type: 'decoded', items };
  if (TIMING) result.timing = { start: performance.timeOrigin + t0, run: performance.now() - t0 };
  const buffers = items.flatMap((d) => (d.ok && d.bytes ? [d.bytes.buffer as ArrayBuffer] : []));
  return move({ [transferableSymbol]: buffers, [valueSymbol]: result } as never);
}
