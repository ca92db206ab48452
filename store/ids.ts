import { blake3 as nativeBlake3, Blake3Hasher } from '@napi-rs/blake-hash';
import { MiqError } from './errors.js';

/** A BLAKE3-256 id as 64 lowercase hex characters. Only `parseId` and `idOf*` make one. */
export type Id = string & { readonly __brand: 'miq-id' };

const ID_RE = /^[0-9a-f]{64}$/;

export function parseId(s: string, what = 'id'): Id {
  if (!ID_RE.test(s)) throw new MiqError('MIQ_BAD_INPUT', `${what} "${s}" is not a 64-character lowercase hex BLAKE3 id`);
  return s as Id;
}

export function isId(s: string): s is Id {
  return ID_RE.test(s);
}

const asBuffer = (b: Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

export function idOf(bytes: Uint8Array): Id {
  return nativeBlake3(asBuffer(bytes)).toString('hex') as Id;
}

export function idFromBytes(raw: Uint8Array): Id {
  if (raw.length !== 32) throw new MiqError('MIQ_CORRUPT', `raw id has ${raw.length} bytes, expected 32`);
  return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('hex') as Id;
}

export function idToBytes(id: Id): Buffer {
  return Buffer.from(id, 'hex');
}

/** Streaming BLAKE3 for whole-file ids. */
export class IdHasher {
  private readonly h = new Blake3Hasher();
  update(bytes: Uint8Array): this {
    this.h.update(asBuffer(bytes));
    return this;
  }
  digest(): Id {
    return this.h.digest('hex') as Id;
  }
}

export const EMPTY_ID: Id = idOf(new Uint8Array(0));
