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
import { closeSync, openSync, readSync } from 'node:fs';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { decodeChunk } from '../store/codec.js';
import { MiqError } from '../store/errors.js';
import { idOf } from '../store/ids.js';

export interface DecodeItem {
  id: string;
  path: string;
  offset: number;
  stored: number;
  plain: number;
  flags: number;
}

export type DecodeTask = { type: 'decode'; items: DecodeItem[] };

export type Decoded =
  | { ok: true; bytes: Uint8Array }
  | { ok: false; error: { code: string; message: string; details?: Record<string, unknown> } };

export type DecodeResult = { type: 'decoded'; items: Decoded[] };

/** Open pack descriptors, LRU by Map order. A pack removed by gc stays readable through an open
 * descriptor, and its bytes are still verified, so a stale one is harmless; the bound keeps
 * descriptors of deleted packs from piling up. */
const fds = new Map<string, number>();
const MAX_FDS = 32;

function fdOf(path: string): number {
  let fd = fds.get(path);
  if (fd !== undefined) {
    fds.delete(path);
    fds.set(path, fd);
    return fd;
  }
  fd = openSync(path, 'r');
  fds.set(path, fd);
  if (fds.size > MAX_FDS) {
    const [old, ofd] = fds.entries().next().value as [string, number];
    fds.delete(old);
    try { closeSync(ofd); } catch { /* already gone */ }
  }
  return fd;
}

/** A buffer that owns its whole ArrayBuffer, so it can be transferred (pooled Buffers cannot). */
function own(b: Uint8Array): Uint8Array {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && !(b.buffer instanceof SharedArrayBuffer)) return b;
  const c = new Uint8Array(b.byteLength);
  c.set(b);
  return c;
}

function decodeOne(it: DecodeItem): Decoded {
  let body: Uint8Array;
  try {
    const fd = fdOf(it.path);
    body = new Uint8Array(it.stored);
    let n = 0;
    while (n < it.stored) {
      const r = readSync(fd, body, n, it.stored - n, it.offset + n);
      if (r === 0) break;
      n += r;
    }
    if (n !== it.stored) return { ok: false, error: new MiqError('MIQ_CORRUPT', `chunk ${it.id}: pack ${it.path} is truncated`, { details: { id: it.id } }).toJSON() };
  } catch (e) {
    return { ok: false, error: new MiqError('MIQ_IO', `chunk ${it.id}: cannot read pack ${it.path}: ${(e as Error).message}`, { details: { id: it.id } }).toJSON() };
  }
  let plain: Uint8Array;
  try {
    plain = decodeChunk(it.flags, Buffer.from(body.buffer, body.byteOffset, body.byteLength), it.plain);
  } catch (e) {
    return { ok: false, error: new MiqError('MIQ_CORRUPT', `chunk ${it.id} is corrupt: ${(e as Error).message}`, { details: { id: it.id, kind: 'chunk' } }).toJSON() };
  }
  if (idOf(plain) !== it.id) return { ok: false, error: new MiqError('MIQ_CORRUPT', `chunk ${it.id} is corrupt: its bytes do not match its hash`, { details: { id: it.id, kind: 'chunk' } }).toJSON() };
  return { ok: true, bytes: own(plain) };
}

export default function decode(task: DecodeTask): unknown {
  const items = task.items.map(decodeOne);
  const result: DecodeResult = { type: 'decoded', items };
  const buffers = items.flatMap((d) => (d.ok ? [d.bytes.buffer as ArrayBuffer] : []));
  return move({ [transferableSymbol]: buffers, [valueSymbol]: result } as never);
}
