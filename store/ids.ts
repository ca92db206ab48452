import type * as Blake from '@napi-rs/blake-hash';
import { createRequire } from 'node:module';
import { MiqError } from './errors.js';

/**
 * @napi-rs/blake-hash's loader asks process.report.getReport() whether the C library is musl
 * before it picks a binding: 15-40 ms per thread at load 10 on this VM, paid by every miq command
 * and again by each ingest and decode worker. On x64 Linux the glibc binding is loaded directly
 * (the same module the package would return); if it is absent or does not load (musl, where npm
 * does not install it), the package decides as before.
 */
function loadBlake(): typeof Blake {
  const req = createRequire(import.meta.url);
  if (process.platform === 'linux' && process.arch === 'x64') {
    try {
      const b = req('@napi-rs/blake-hash-linux-x64-gnu') as typeof Blake;
      if (typeof b.blake3 === 'function' && typeof b.Blake3Hasher === 'function') return b;
    } catch {
      // the package's own choice below
    }
  }
  return req('@napi-rs/blake-hash') as typeof Blake;
}
const { blake3: nativeBlake3, Blake3Hasher } = loadBlake();

/** BLAKE3-256 of `bytes`, 32 raw bytes. */
export const blake3Bytes = (bytes: Buffer): Buffer => nativeBlake3(bytes);

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
