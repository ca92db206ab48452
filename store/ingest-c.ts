/**
 * An update's scan and compress tasks in C on libuv's thread pool (native/miqchunk.c
 * scanFilesAsync, compressItemsAsync), so that an update needs no worker isolate at all (each
 * one's start, module loading, JIT and heap cost ~0.3 s of CPU and ~9.5k page faults on this
 * project's VMs). The work is the worker's (store/ingest-worker.ts scanOne without a new store's
 * compressing while scanning, and compressItems), with the same results: chunk boundaries and
 * ids, reference candidates, which chunk is a delta, raw or in a shared frame. The format stays
 * defined here and in the worker: the C code gets the worker's constants (zstd level, frame
 * sizes, delta ratios) with each task, and its answers become the worker's result objects here.
 * The bytes zstd makes may differ a little from the worker's (the system's libzstd.so.1, not
 * zstd-napi's copy). MIQ_JS_SCAN=1, an addon without these exports or a system without
 * libzstd.so.1: the workers do it, as before.
 */
import { Chunker, GEAR, type ChunkParams } from './chunker.js';
import { DELTA_KEEP_RATIO, DELTA_SURE_RATIO, FLAG_FRAME, FLAG_ZSTD_DICT, FRAME_BYTES, FRAME_ITEM_MAX, ZSTD_LEVEL } from './codec.js';
import type { HashedFile, ScanFile } from './ingest-hash.js';
import type { BaseChunk, CompressedItem, CompressItem, ScannedFile } from './ingest-worker.js';
import { miqchunkExport } from './miqchunk.js';
import { MAX_REF_CANDIDATES } from './refscan.js';

export type { HashedFile };

const scanFilesC = miqchunkExport<(files: ScanFile[], params: Float64Array, gear: Int32Array) => Promise<Buffer>>('scanFilesAsync', 'MIQ_JS_SCAN');
const compressItemsC = miqchunkExport<(spec: Uint8Array) => Promise<Buffer | null>>('compressItemsAsync', 'MIQ_JS_SCAN');
const zstdReady = miqchunkExport<() => boolean>('zstdReady', 'MIQ_JS_SCAN');
const releaseC = miqchunkExport<() => void>('ingestRelease', 'MIQ_JS_SCAN');

/** Whether scan tasks can run in C. */
export const scanInC = (): boolean => scanFilesC !== undefined;

let zstdOk: boolean | undefined;
/** Whether compress tasks can run in C (libzstd.so.1 loads: asked once). */
export function compressInC(): boolean {
  zstdOk ??= compressItemsC !== undefined && zstdReady?.() === true;
  return zstdOk;
}

/** Frees the C side's idle read buffers and zstd contexts (an ingest's end). */
export function releaseInC(): void {
  releaseC?.();
}

/** The scan's chunk parameters as scanFilesAsync takes them. */
export function scanArgs(params: ChunkParams, keepSmall: number): Float64Array {
  const c = new Chunker(params);
  return Float64Array.of(params.min, params.avg, params.max, c.maskS >>> 0, c.maskL >>> 0, keepSmall);
}

/** scanFilesAsync's answer for `files`: the worker's ScannedFile each, undefined for a file it
 * gave back (the caller scans those in a worker, which makes any error as before). */
export async function scanFiles(files: ScanFile[], args: Float64Array): Promise<(ScannedFile | undefined)[]> {
  const out = await scanFilesC!(files, args, GEAR);
  // Every slot set (a hole would be skipped by the caller's map over the answers).
  const res: (ScannedFile | undefined)[] = [];
  let o = 0;
  for (let i = 0; i < files.length; i++) {
    if (out[o++] === 2) {
      res.push(undefined);
      continue;
    }
    const id = out.toString('hex', o, o + 32);
    o += 32;
    const n = out.readUInt32LE(o);
    o += 4;
    const chunks: { id: string; length: number }[] = new Array(n);
    for (let k = 0; k < n; k++, o += 36) chunks[k] = { id: out.toString('hex', o, o + 32), length: out.readUInt32LE(o + 32) };
    const nr = out.readUInt32LE(o);
    o += 4;
    // As scanRefs' Set: the first MAX_REF_CANDIDATES distinct candidates, in the order found.
    const found = new Set<string>();
    for (let k = 0; k < nr; k++, o += 32) if (found.size < MAX_REF_CANDIDATES) found.add(out.toString('latin1', o, o + 32));
    const dl = out.readInt32LE(o);
    o += 4;
    const r: ScannedFile = { ok: true, id, size: files[i]!.size, chunks, refs: [...found] };
    if (dl >= 0) {
      r.data = out.subarray(o, o + dl);
      o += dl;
    }
    res.push(r);
  }
  return res;
}

/** A compress task as compressItemsAsync reads it (native/miqchunk.c zParse). */
export function encodeCompressTask(items: readonly CompressItem[], packDir: string | undefined, bases: readonly BaseChunk[] | undefined): Buffer {
  const dir = Buffer.from(packDir ?? '');
  let size = 40 + 4 + dir.length + 4 + 4;
  for (const b of bases ?? []) size += 63 + 32 * (b.refs?.length ?? 0);
  for (const it of items) size += 38 + (it.data ? it.data.length : 13 + it.path!.length) + 32 * (it.refs?.length ?? 0);
  const b = Buffer.allocUnsafe(size);
  let o = 0;
  for (const v of [ZSTD_LEVEL, FRAME_BYTES, FRAME_ITEM_MAX, DELTA_SURE_RATIO, DELTA_KEEP_RATIO]) o = b.writeDoubleLE(v, o);
  o = b.writeUInt32LE(dir.length, o);
  o += dir.copy(b, o);
  o = b.writeUInt32LE(bases?.length ?? 0, o);
  for (const x of bases ?? []) {
    o += b.write(x.id, o, 32, 'hex');
    o = b.writeUInt32LE(x.pack, o);
    o = b.writeDoubleLE(x.offset, o);
    o = b.writeUInt32LE(x.stored, o);
    o = b.writeUInt32LE(x.plain, o);
    o = b.writeUInt8(x.flags, o);
    o = b.writeUInt8(x.frame ? 1 : 0, o);
    o = b.writeUInt32LE(x.frame?.off ?? 0, o);
    o = b.writeUInt32LE(x.frame?.size ?? 0, o);
    o = b.writeUInt8(x.refs?.length ?? 0, o);
    for (const r of x.refs ?? []) o += b.write(r, o, 32, 'hex');
  }
  o = b.writeUInt32LE(items.length, o);
  for (const it of items) {
    o += b.write(it.id, o, 32, 'hex');
    if (it.data) {
      o = b.writeUInt32LE(it.data.length, o);
      o = b.writeUInt8(0, o);
      b.set(it.data, o);
      o += it.data.length;
    } else {
      o = b.writeUInt32LE(it.length, o);
      o = b.writeUInt8(1, o);
      o = b.writeUInt32LE(it.path!.length + 1, o);
      b.set(it.path!, o);
      o += it.path!.length;
      o = b.writeUInt8(0, o);
      o = b.writeDoubleLE(it.offset!, o);
    }
    o = b.writeUInt8(it.refs?.length ?? 0, o);
    for (const r of it.refs ?? []) o += b.write(r, o, 32, 'hex');
  }
  return b;
}

/** compressItemsAsync's answer as the worker's compressed items (bodies are views of `out`),
 * or undefined when it gave the task back (the caller runs it in a worker). */
export async function compressItems(items: readonly CompressItem[], packDir: string | undefined, bases: readonly BaseChunk[] | undefined): Promise<CompressedItem[] | undefined> {
  const out = await compressItemsC!(encodeCompressTask(items, packDir, bases));
  if (out === null) return undefined;
  const res: CompressedItem[] = [];
  const end = 4 + out.readUInt32LE(0);
  let d = 4, bo = end;
  const lengthOf = (it: CompressItem): number => it.data?.length ?? it.length;
  while (d < end) {
    if (out[d] === 0) {
      const it = items[out.readUInt32LE(d + 1)]!;
      const flags = out[d + 5]!, n = out.readUInt32LE(d + 6);
      d += 10;
      const body = out.subarray(bo, (bo += n));
      res.push(flags === FLAG_ZSTD_DICT ? { id: it.id, plainLen: lengthOf(it), flags, body, refs: it.refs, depth: (it.refDepth ?? 0) + 1 } : { id: it.id, plainLen: lengthOf(it), flags, body });
    } else {
      const id = out.toString('hex', d + 1, d + 33);
      const plainLen = out.readUInt32LE(d + 33), n = out.readUInt32LE(d + 37), nm = out.readUInt32LE(d + 41);
      d += 45;
      const members = new Array<{ id: string; off: number; len: number }>(nm);
      for (let k = 0; k < nm; k++, d += 8) {
        const it = items[out.readUInt32LE(d)]!;
        members[k] = { id: it.id, off: out.readUInt32LE(d + 4), len: lengthOf(it) };
      }
      res.push({ id, plainLen, flags: FLAG_FRAME, body: out.subarray(bo, (bo += n)), members });
    }
  }
  return res;
}
