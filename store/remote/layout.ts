/**
 * The remote layout (DESIGN §8) and the on-the-wire chunk encoding. Pure: names and bytes only.
 *
 *   chunks/<2 hex>/<id>      one byte flag (0 raw, 1 zstd) + body; id = BLAKE3(plain)
 *   objects/<2 hex>/<id>     trees (id = BLAKE3(bytes)), file records (id = file content id,
 *                            vouched for by a signed per-path index), file indexes
 *   paths/<name>-<h>         signed remote path document (record + index id)
 *   profiles/<name>          signed pointer with a sequence number
 */
import { compress } from 'zstd-napi';
import { createRequire } from 'node:module';
import { MiqError } from '../errors.js';
import { type Id, idOf } from '../ids.js';
import { checkPathName, parseStorePath } from '../objects.js';

// binding.js assigns module.exports at run time, so ESM sees only `default`: load it as CJS.
const zbinding = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof import('zstd-napi/binding.js');

export const chunkPath = (id: Id): string => `chunks/${id.slice(0, 2)}/${id}`;
export const objectPath = (id: Id): string => `objects/${id.slice(0, 2)}/${id}`;
export function pathDocPath(p: string): string {
  parseStorePath(p);
  return `paths/${p}`;
}
export function profilePath(name: string): string {
  return `profiles/${checkPathName(name)}`;
}

const RAW = 0;
const ZSTD = 1;

/** Compresses when that saves space, so a stored chunk is never longer than plain + 1 byte:
 * the client can cut any body at that size. */
export function encodeChunk(plain: Buffer): Buffer {
  if (plain.length >= 64) {
    const z = compress(plain, { compressionLevel: 3 });
    if (z.length + 1 < plain.length) return Buffer.concat([Buffer.from([ZSTD]), z]);
  }
  return Buffer.concat([Buffer.from([RAW]), plain]);
}

let dctx: InstanceType<typeof zbinding.DCtx> | undefined;

/**
 * Decodes and verifies a stored chunk. `length` is the expected plain length when known (from a
 * file record); otherwise `maxPlain` bounds the output so a hostile frame header cannot make us
 * allocate gigabytes.
 */
export function decodeChunk(id: Id, stored: Buffer, length: number | undefined, maxPlain: number): Buffer {
  const corrupt = (why: string): never => {
    throw new MiqError('MIQ_CORRUPT', `chunk ${id} from the remote is corrupt: ${why}`, { details: { id } });
  };
  if (stored.length === 0) corrupt('empty body');
  let plain: Buffer;
  if (stored[0] === RAW) {
    plain = stored.subarray(1);
  } else if (stored[0] === ZSTD) {
    const body = stored.subarray(1);
    let size = length;
    if (size === undefined) {
      let declared: number | null = null;
      try {
        declared = zbinding.getFrameContentSize(body);
      } catch {
        corrupt('bad zstd frame');
      }
      if (declared === null || declared > maxPlain) corrupt(`zstd frame declares ${String(declared)} bytes, limit ${maxPlain}`);
      size = declared!;
    }
    if (size > maxPlain) corrupt(`length ${size} over limit ${maxPlain}`);
    const out = Buffer.allocUnsafe(size);
    let n = -1;
    try {
      dctx ??= new zbinding.DCtx();
      n = dctx.decompress(out, body);
    } catch (e) {
      corrupt(`zstd: ${(e as Error).message}`);
    }
    plain = out.subarray(0, n);
  } else {
    return corrupt(`unknown flag ${stored[0]}`);
  }
  if (length !== undefined && plain.length !== length) corrupt(`length ${plain.length}, expected ${length}`);
  if (idOf(plain) !== id) corrupt('bytes do not hash to the id');
  return plain;
}
