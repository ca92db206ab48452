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
import { PackFds, decodeVerified, preadStored } from '../store/chunkread.js';
import { FLAG_ZSTD } from '../store/codec.js';
import { MiqError } from '../store/errors.js';
import { idOf } from '../store/ids.js';

/** The addon's zstd (native/miqfuse.c zstdDecompress: the system's libzstd, ~4x less CPU than
 * zstd-napi here), or undefined where the addon or libzstd is missing. */
const zstd = ((): ((body: Buffer, plain: number) => Buffer | null) | undefined => {
  try {
    const m = createRequire(import.meta.url)('../../build/Release/miqfuse.node') as { zstdDecompress?: (b: Buffer, n: number) => Buffer | null };
    return m.zstdDecompress;
  } catch {
    return undefined;
  }
})();

/** decodeVerified, with plain zstd frames decoded by the addon: the same checks, the same errors. */
function decodeChunkVerified(id: string, flags: number, body: Buffer, plain: number): Uint8Array {
  if (flags !== FLAG_ZSTD || !zstd || plain < 1) return decodeVerified(id, flags, body, plain);
  let out: Buffer | null;
  try {
    out = zstd(body, plain);
  } catch (e) {
    throw new MiqError('MIQ_CORRUPT', `chunk ${id} is corrupt: ${(e as Error).message}`, { details: { id, kind: 'chunk' } });
  }
  if (out === null) return decodeVerified(id, flags, body, plain);
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
}

/** `span`: one pread of [offset, offset + length) of `path` covers every item (neighbours in a
 * pack: a directory's small files), instead of one per item. */
export type DecodeTask = { type: 'decode'; items: DecodeItem[]; span?: { path: string; offset: number; length: number } };

export type Decoded =
  | { ok: true; bytes: Uint8Array }
  | { ok: false; error: { code: string; message: string; details?: Record<string, unknown> } };

export type DecodeResult = { type: 'decoded'; items: Decoded[] };

const fds = new PackFds(32);

/** A buffer that owns its whole ArrayBuffer, so it can be transferred (pooled Buffers cannot). */
function own(b: Uint8Array): Uint8Array {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && !(b.buffer instanceof SharedArrayBuffer)) return b;
  const c = new Uint8Array(b.byteLength);
  c.set(b);
  return c;
}

function decodeOne(it: DecodeItem, span?: { offset: number; bytes: Buffer }): Decoded {
  try {
    const body = span ? span.bytes.subarray(it.offset - span.offset, it.offset - span.offset + it.stored) : preadStored(fds, it.path, it.offset, it.stored, it.id);
    return { ok: true, bytes: own(decodeChunkVerified(it.id, it.flags, body, it.plain)) };
  } catch (e) {
    if (e instanceof MiqError) return { ok: false, error: e.toJSON() };
    return { ok: false, error: new MiqError('MIQ_IO', `chunk ${it.id}: ${(e as Error).message}`, { details: { id: it.id } }).toJSON() };
  }
}

export default function decode(task: DecodeTask): unknown {
  let span: { offset: number; bytes: Buffer } | undefined;
  if (task.span) {
    try {
      span = { offset: task.span.offset, bytes: preadStored(fds, task.span.path, task.span.offset, task.span.length, task.items[0]?.id ?? '') };
    } catch {
      // Each item is read on its own below, and reports its own error.
    }
  }
  const items = task.items.map((it) => decodeOne(it, span));
  const result: DecodeResult = { type: 'decoded', items };
  const buffers = items.flatMap((d) => (d.ok ? [d.bytes.buffer as ArrayBuffer] : []));
  return move({ [transferableSymbol]: buffers, [valueSymbol]: result } as never);
}
