/**
 * The hash pass's C call (native/miqchunk.c hashFiles) and its packed answer read back, shared
 * by the ingest worker (hashFiles, synchronous, in a piscina task) and the main thread of an
 * update (hashFilesAsync: the same work on libuv's thread pool, no worker isolate involved).
 */
import type { Id } from './ids.js';
import { miqchunkExport } from './miqchunk.js';
import { MAX_REF_CANDIDATES } from './refscan.js';

export interface ScanFile {
  path: Uint8Array;
  size: number;
}

export type HashedFile =
  /** `refs`: the file's reference candidates when it was read whole (see hashOne). */
  | { ok: true; id: string; size: number; refs?: string[] }
  | { ok: false; error: { code: string; message: string; details?: Record<string, unknown> } };

/** hashOne for a whole task in one C call (open, read, BLAKE3, reference scan per file),
 * without a JS call, a Stats object and a Buffer per file. MIQ_JS_HASH=1: not used. */
export const hashFilesC = miqchunkExport<(files: ScanFile[]) => Buffer>('hashFiles', 'MIQ_JS_HASH');

/** hashFilesC's work on libuv's thread pool, answering the same bytes (MIQ_JS_HASH=1, or an
 * addon built without BLAKE3's C source: undefined, and the hash pass runs in the workers). */
export const hashFilesAsync = miqchunkExport<(files: ScanFile[]) => Promise<Buffer>>('hashFilesAsync', 'MIQ_JS_HASH');

/** hashFiles' answer for `files` (see miqchunk.c for its layout); undefined for a file it gave
 * back (status 2: cannot open, not regular, read error, changed size), which the caller hashes
 * through hashOne so that its error reads as before. */
export function decodeHashed(files: readonly ScanFile[], out: Buffer): (HashedFile | undefined)[] {
  const res = new Array<HashedFile | undefined>(files.length);
  let o = 0;
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    const status = out[o++];
    if (status === 2) {
      res[i] = undefined;
      continue;
    }
    const id = out.toString('hex', o, o + 32) as Id;
    o += 32;
    if (status === 1) {
      res[i] = { ok: true, id, size: f.size };
      continue;
    }
    const n = out.readUInt32LE(o);
    o += 4;
    // As scanRefs' Set: the first MAX_REF_CANDIDATES distinct candidates, in the order found.
    const found = new Set<string>();
    for (let k = 0; k < n; k++, o += 32) if (found.size < MAX_REF_CANDIDATES) found.add(out.toString('latin1', o, o + 32));
    res[i] = { ok: true, id, size: f.size, refs: [...found] };
  }
  return res;
}
