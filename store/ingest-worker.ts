/**
 * Piscina worker: CPU work only (read, chunk, hash, compress). The main thread owns the database
 * and the pack files. Messages are a discriminated union on `type`.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { isMainThread, type MessagePort } from 'node:worker_threads';
import { Chunker, type ChunkParams } from './chunker.js';
import { PackFds, decodeFrameInto, decodeVerifiedInto, preadStored, sliceVerified } from './chunkread.js';
import { ARENA_BLOCK, DELTA_KEEP_RATIO, DELTA_SURE_RATIO, encodeChunkScratch, encodeChunkWithDict, FLAG_FRAME, FLAG_ZSTD, FLAG_ZSTD_DICT, FRAME_BYTES, FRAME_ITEM_MAX } from './codec.js';
import { MiqError, ioError } from './errors.js';
import { EMPTY_ID, IdHasher, idOf } from './ids.js';
import { packFileName, type ChunkLocation } from './pack.js';
import { decodeHashed, hashFilesC, type HashedFile, type ScanFile } from './ingest-hash.js';
import { scanRefs } from './refscan.js';
import { walkToPort } from './walk-sync.js';

/** Decoded base chunks kept between compress tasks: neighbouring new chunks share old ones. Only
 * neighbours do: on release N+1 of the small corpus a worker's hits and misses were the same
 * with 2, 8 and 32 MiB (491 hits, 561 decodes of 97 MB in all), and with 32 MiB each worker
 * first faulted in 32 MiB of fresh pages (zstd writing decoded bases: 23k of the ingest's 89k
 * page faults; with 2 MiB and reused slots 4.6k of 67k). */
const BASE_CACHE_BYTES = 4 << 20;
/** Files up to this size are compressed during the scan (into a new store): their compressed
 * chunks travel back with the scan result, so this bounds what one result holds. Bigger files
 * take the separate, bounded compress tasks. */
const SCAN_COMPRESS_MAX = 8 << 20;

export type { HashedFile, ScanFile };

export type WorkerTask =
  | { type: 'scan'; files: ScanFile[]; params: ChunkParams; keepSmall: number; claims?: Int32Array; spare?: ArrayBuffer[] }
  | { type: 'hash'; files: ScanFile[] }
  | { type: 'compress'; items: CompressItem[]; packDir?: string; bases?: BaseChunk[]; spare?: ArrayBuffer[] }
  | { type: 'walk'; root: string; port: MessagePort }
  | { type: 'warm' };

/** Where an old chunk that a delta is tried against lies in the store's packs. The worker reads
 * and decodes it itself (and its own references, for a chain), so dictionaries never cross the
 * thread boundary; packs are append-only and an indexed chunk's bytes are already synced. */
export type BaseChunk = Omit<ChunkLocation, 'depth'> & { id: string };

export interface CompressItem {
  id: string;
  length: number;
  /** Either the bytes themselves (small files kept from the scan) or where to re-read them. */
  data?: Uint8Array;
  path?: Uint8Array;
  offset?: number;
  /** Similar old chunks (the same path's previous version) whose plain bytes, concatenated, are
   * tried as a zstd dictionary; their locations are in the task's `bases`. */
  refs?: string[];
  refDepth?: number;
}

export type ScannedFile =
  | { ok: true; id: string; size: number; chunks: { id: string; length: number }[]; refs: string[]; data?: Uint8Array }
  | { ok: false; error: { code: string; message: string; details?: Record<string, unknown> } };

export interface CompressedItem {
  id: string;
  plainLen: number;
  flags: number;
  body: Uint8Array;
  refs?: string[];
  depth?: number;
  /** A shared frame (flags FLAG_FRAME; `id` is the hash of its plain bytes): the chunks in it. */
  members?: FrameMember[];
}

export interface FrameMember {
  id: string;
  off: number;
  len: number;
}


export type WorkerResult =
  | { type: 'scanned'; files: ScannedFile[]; bodies?: CompressedItem[]; elsewhere?: string[] }
  | { type: 'hashed'; files: HashedFile[] }
  | { type: 'compressed'; items: CompressedItem[] }
  | { type: 'walked' }
  | { type: 'warmed' }
  | { type: 'error'; error: { code: string; message: string; details?: Record<string, unknown> } };

/**
 * The bodies a task hands back, copied into a few large buffers that are transferred to the main
 * thread, not cloned: each body was a buffer of its own (page faults on fresh memory) that
 * posting the result copied again. Blocks of ARENA_BLOCK (a body is at most a chunk, 512 KiB
 * by default, or a frame); a larger body gets a buffer of its own.
 */
class Arena {
  readonly buffers: ArrayBuffer[] = [];
  private cur = Buffer.allocUnsafeSlow(0);
  private used = 0;

  keep(bytes: Uint8Array): Buffer {
    if (this.used + bytes.length > this.cur.length) {
      if (bytes.length > ARENA_BLOCK) return this.own(bytes);
      const old = spares.pop();
      this.cur = old ? Buffer.from(old) : Buffer.allocUnsafeSlow(ARENA_BLOCK);
      this.buffers.push(this.cur.buffer as ArrayBuffer);
      this.used = 0;
    }
    const out = this.cur.subarray(this.used, this.used + bytes.length);
    out.set(bytes);
    this.used += bytes.length;
    return out;
  }

  private own(bytes: Uint8Array): Buffer {
    const b = Buffer.allocUnsafeSlow(bytes.length);
    b.set(bytes);
    this.buffers.push(b.buffer as ArrayBuffer);
    return b;
  }
}

/**
 * Arena buffers the main thread handed back (a task's `spare`) once their bodies were in the
 * pack: written again instead of fresh memory. Each fresh page is a page fault, and on this
 * project's VM (2 vCPUs, paravirtualised) faulting in the bodies' ~130 MB was ~1.7 s of the
 * workers' samples on the small corpus's release N.
 */
const spares: ArrayBuffer[] = [];
const SPARES_MAX = 8;

/** The current task's arena (tasks run one at a time per worker). */
let arena = new Arena();

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
let readBuf: Buffer | undefined;
let chunker: Chunker | undefined;

function pathStr(p: Uint8Array): string {
  return Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString();
}

function errJson(e: unknown): { code: string; message: string; details?: Record<string, unknown> } {
  if (e instanceof MiqError) return e.toJSON();
  return { code: 'MIQ_IO', message: String((e as Error)?.message ?? e) };
}

type Failed = { ok: false; error: { code: string; message: string; details?: Record<string, unknown> } };

/**
 * Collects small chunks' plain bytes and compresses them together once about FRAME_BYTES are
 * in (or at `seal`). A frame that would hold one chunk, or whose bytes do not compress, is
 * stored as separate chunks instead, as before frames.
 */
/** One frame's plain bytes at a time per worker (a builder is sealed before the next one is
 * made): a fresh 320 KiB per task was faulted in again each time. */
let frameScratch: Buffer | undefined;

export class FrameBuilder {
  private readonly buf = (frameScratch ??= Buffer.allocUnsafeSlow(FRAME_BYTES + FRAME_ITEM_MAX));
  private len = 0;
  private members: FrameMember[] = [];

  constructor(private readonly out: CompressedItem[]) {}

  add(id: string, plain: Uint8Array): void {
    if (plain.length > FRAME_ITEM_MAX) {
      const { flags, body } = encodeChunkScratch(plain);
      this.out.push({ id, plainLen: plain.length, flags, body: arena.keep(body) });
      return;
    }
    this.buf.set(plain, this.len);
    this.members.push({ id, off: this.len, len: plain.length });
    this.len += plain.length;
    if (this.len >= FRAME_BYTES) this.seal();
  }

  seal(): void {
    const members = this.members;
    if (members.length === 0) return;
    const plain = this.buf.subarray(0, this.len);
    this.members = [];
    this.len = 0;
    if (members.length > 1) {
      const { flags, body } = encodeChunkScratch(plain);
      if (flags === FLAG_ZSTD) {
        this.out.push({ id: idOf(plain), plainLen: plain.length, flags: FLAG_FRAME, body: arena.keep(body), members });
        return;
      }
    }
    for (const m of members) {
      const { flags, body } = encodeChunkScratch(plain.subarray(m.off, m.off + m.len));
      this.out.push({ id: m.id, plainLen: m.len, flags, body: arena.keep(body) });
    }
  }
}

/** Runs `body` on the file opened without following links (a swap for a link or fifo since the
 * walk is refused), closing it after; any error becomes a per-file failure. */
function withRegularFile<T>(f: ScanFile, body: (fd: number, st: Stats) => T): T | Failed {
  const pathBuf = Buffer.from(f.path.buffer, f.path.byteOffset, f.path.byteLength);
  let fd: number;
  try {
    fd = openSync(pathBuf, OPEN_FLAGS);
  } catch (e) {
    return { ok: false, error: errJson(ioError(e, 'cannot read', pathStr(f.path))) };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new MiqError('MIQ_BAD_INPUT', `${pathStr(f.path)} changed into something that is not a regular file during ingest`);
    return body(fd, st);
  } catch (e) {
    return { ok: false, error: errJson(e) };
  } finally {
    closeSync(fd);
  }
}

/**
 * Claims a chunk id for this ingest in the table the workers share (open addressing on the id's
 * first 32 bits; 0 is empty): true for the first claimant only. Only a hint of who compresses
 * what: the main thread still decides what is stored, so a full table or two ids with the same
 * first 32 bits cost a second compression at most, never a wrong byte. (32 bits, not 64: a
 * BigInt parsed from hex per chunk was a visible share of the scan on small files.)
 */
const CLAIMED = 0, CLAIMED_ELSEWHERE = 1, TABLE_FULL = 2;
/** Tests: every id gets the same claim key and slot, so every chunk but the first counts as
 * claimed elsewhere by a colliding id (the main thread's fallback for that case). */
const CLAIM_COLLIDE = process.env.MIQ_CLAIM_COLLIDE === '1';

function claim(table: Int32Array, id: string): number {
  const key = CLAIM_COLLIDE ? 1 : Number.parseInt(id.slice(0, 8), 16) | 0 || 1;
  const mask = table.length - 1;
  let i = CLAIM_COLLIDE ? 0 : Number.parseInt(id.slice(8, 16), 16) & mask;
  for (let probe = 0; probe < 32; probe++) {
    const prev = Atomics.compareExchange(table, i, 0, key);
    if (prev === 0) return CLAIMED;
    // Most likely another file of this ingest claimed this chunk (its body comes with that
    // file's result); rarely another id with the same 32 bits (the main thread then
    // compresses it once the scans are done: ingest.ts `awaited`).
    if (prev === key) return CLAIMED_ELSEWHERE;
    i = (i + 1) & mask;
  }
  return TABLE_FULL;
}

/**
 * A short read that reaches the size fstat gave at open is the end of a regular file: a small
 * file costs one read instead of two (a file that grew since was not at that size, so it is
 * still read to the real end and refused for changing).
 */
function readMore(fd: number, buf: Buffer, at: number, total: number, size: number, path: Uint8Array): { n: number; eof: boolean } {
  let n: number;
  try {
    n = readSync(fd, buf, at, buf.length - at, null);
  } catch (e) {
    throw ioError(e, 'cannot read', pathStr(path));
  }
  return { n, eof: n === 0 || (n < buf.length - at && total + n === size) };
}

/** Where a scan puts the chunks it compressed (into a new store): alone, or into shared frames. */
interface ScanSink {
  bodies: CompressedItem[];
  frames: FrameBuilder;
  /** Chunks of this task another claim holds (see claim): not in `bodies` unless claimed here too. */
  elsewhere: string[];
}

/** An update does this (without `claims`) in C on libuv's threads: native/miqchunk.c
 * scanFilesAsync (store/ingest-c.ts). A change here is a change there (test/ingest-c.test.ts
 * compares the two). */
function scanOne(f: ScanFile, params: ChunkParams, keepSmall: number, claims?: Int32Array, sink?: ScanSink): ScannedFile {
  return withRegularFile(f, (fd, st): ScannedFile => {
    if (!chunker || chunker.params.min !== params.min || chunker.params.avg !== params.avg || chunker.params.max !== params.max) chunker = new Chunker(params);
    const want = Math.max(4 << 20, params.max * 2);
    if (!readBuf || readBuf.length < want) readBuf = Buffer.allocUnsafe(want);
    const buf = readBuf;
    // Most small files are one chunk, whose id is the file's: the streaming hasher only starts
    // at a second chunk (its construction was ~5% of a worker's profile on small files).
    let hasher: IdHasher | undefined;
    const chunks: { id: string; length: number }[] = [];
    const refs = new Set<string>();
    let have = 0; // bytes valid in buf
    let eof = false;
    let total = 0;
    let small: Uint8Array | undefined;
    let wholeId: string | undefined;
    // Into a new store (claims given): compress each chunk no other file of this ingest has
    // claimed while its bytes are here, instead of reading and hashing it again later.
    const compressHere = claims !== undefined && sink !== undefined && f.size <= SCAN_COMPRESS_MAX;
    while (!eof || have > 0) {
      while (!eof && have < buf.length) {
        const r = readMore(fd, buf, have, total, st.size, f.path);
        eof = r.eof;
        have += r.n;
        total += r.n;
      }
      // Cut while a full max-size window is available (or everything at EOF).
      let s = 0;
      while (have - s > 0 && (eof || have - s >= params.max)) {
        const len = chunker.cut(buf, s, have);
        const piece = buf.subarray(s, s + len);
        const id = idOf(piece);
        // A file that is one chunk has the chunk's id: hash it once.
        if (eof && s === 0 && len === have && chunks.length === 0) wholeId = id;
        else (hasher ??= new IdHasher()).update(piece);
        scanRefs(buf, s, s + len, have, refs);
        chunks.push({ id, length: len });
        if (compressHere) {
          const c = claim(claims!, id);
          if (c === CLAIMED) {
            if (len <= FRAME_ITEM_MAX) {
              sink!.frames.add(id, piece);
            } else {
              const { flags, body } = encodeChunkScratch(piece);
              sink!.bodies.push({ id, plainLen: len, flags, body: arena.keep(body) });
            }
          } else if (c === CLAIMED_ELSEWHERE) {
            sink!.elsewhere.push(id);
          }
        } else if (total <= keepSmall && eof) small = Buffer.from(piece);
        s += len;
      }
      if (s > 0) {
        buf.copy(buf, 0, s, have);
        have -= s;
      }
      if (eof && have === 0) break;
    }
    if (total !== f.size) throw new MiqError('MIQ_BAD_INPUT', `${pathStr(f.path)} changed size during ingest (${f.size} → ${total} bytes); ingest it again once it is stable`);
    const id = wholeId ?? hasher?.digest() ?? EMPTY_ID;
    const out: ScannedFile = { ok: true, id, size: total, chunks, refs: [...refs] };
    if (small && chunks.length === 1) out.data = small;
    return out;
  });
}

/** Whole-file BLAKE3 only: on a re-ingest most files are already in the store, and hashing
 * (native, ~4 GB/s) is far cheaper than chunking them again. */
function hashOne(f: ScanFile): HashedFile {
  return withRegularFile(f, (fd, st): HashedFile => {
    if (!readBuf || readBuf.length < 4 << 20) readBuf = Buffer.allocUnsafe(4 << 20);
    // A file read whole by its first read (most of them) is hashed in one call, without a
    // streaming hasher (an object and three native calls per file).
    const first = readMore(fd, readBuf, 0, 0, st.size, f.path);
    let total = first.n;
    let id: string;
    let refs: string[] | undefined;
    if (first.eof) {
      id = idOf(readBuf.subarray(0, total));
      // The whole file is here: its reference candidates are found as a scan would (scanOne
      // holds a file this size whole too), so a known file needs no `r/` lookup.
      const found = new Set<string>();
      scanRefs(readBuf, 0, total, total, found);
      refs = [...found];
    } else {
      const h = new IdHasher().update(readBuf.subarray(0, total));
      for (let eof = false; !eof;) {
        const r = readMore(fd, readBuf, 0, total, st.size, f.path);
        eof = r.eof;
        if (r.n > 0) h.update(readBuf.subarray(0, r.n));
        total += r.n;
      }
      id = h.digest();
    }
    if (total !== f.size) throw new MiqError('MIQ_BAD_INPUT', `${pathStr(f.path)} changed size during ingest (${f.size} → ${total} bytes); ingest it again once it is stable`);
    return refs ? { ok: true, id, size: total, refs } : { ok: true, id, size: total };
  });
}

/** The hash task: one C call (ingest-hash.ts) when the addon has it; a file it gives back goes
 * through hashOne, which makes that file's error as before. */
function hashTask(files: ScanFile[]): HashedFile[] {
  if (!hashFilesC) return files.map(hashOne);
  return decodeHashed(files, hashFilesC(files)).map((r, i) => r ?? hashOne(files[i]!));
}

const baseCache = new Map<string, Buffer>();
let baseCacheBytes = 0;

/** Verified plain bytes of an old chunk, or undefined when it cannot be read (the new chunk is
 * then compressed without a dictionary, as when the base is missing). */
function loadBase(id: string, table: Map<string, BaseChunk>, packDir: string, fds: PackFds, depth = 0): Buffer | undefined {
  const hit = baseCache.get(id);
  if (hit) {
    baseCache.delete(id);
    baseCache.set(id, hit);
    return hit;
  }
  const loc = table.get(id);
  if (!loc || depth > 8) return undefined;
  try {
    if (loc.frame) return remember(id, sliceVerified(id, frameOf(loc, packDir, fds, id), loc.frame.off, loc.plain, slotFor));
    let dict: Buffer | undefined;
    if (loc.refs) {
      // The references first: their own reads go through the same body scratch.
      const parts: Buffer[] = [];
      let total = 0;
      for (const r of loc.refs) {
        const b = loadBase(r, table, packDir, fds, depth + 1);
        if (!b) return undefined;
        parts.push(b);
        total += b.length;
      }
      dict = slotFor(total);
      let o = 0;
      for (const p of parts) o += p.copy(dict, o);
    }
    const body = preadStored(fds, join(packDir, packFileName(loc.pack)), loc.offset, loc.stored, id, bodyScratch(loc.stored));
    const plain = decodeVerifiedInto(id, loc.flags, body, slotFor(loc.plain), dict);
    if (dict) release(dict);
    return remember(id, plain);
  } catch {
    return undefined;
  }
}

function remember(id: string, plain: Buffer): Buffer {
  const old = baseCache.get(id);
  if (old) {
    baseCache.delete(id);
    baseCacheBytes -= old.length;
    if (old !== plain) release(old);
  }
  baseCache.set(id, plain);
  baseCacheBytes += plain.length;
  for (const [k, v] of baseCache) {
    if (baseCacheBytes <= BASE_CACHE_BYTES) break;
    baseCache.delete(k);
    baseCacheBytes -= v.length;
    release(v);
  }
  return plain;
}

/**
 * Memory for decoded bases, their dictionaries and frames, by power-of-two size, reused: a fresh
 * buffer per decoded base was a third of the workers' page faults on release N+1 of the small
 * corpus (zstd writing into new pages; this VM pays dearly per fault). A buffer let go (evicted
 * from a cache, a dictionary used) is reused only from the next item on (`recycleSlots` at the
 * top of compressItems' loop): within an item, a dictionary's parts and the bases it was cut
 * from may still be in use, and overwriting one would compress against the wrong bytes.
 */
const freeSlots = new Map<number, Buffer[]>();
let freeSlotBytes = 0;
const FREE_SLOT_MAX = 16 << 20;
let letGo: Buffer[] = [];
let scratchBody = Buffer.allocUnsafeSlow(0);

function slotClass(n: number): number {
  return n <= 4096 ? 4096 : 2 ** Math.ceil(Math.log2(n));
}

function slotFor(n: number): Buffer {
  const c = slotClass(n);
  const b = freeSlots.get(c)?.pop();
  if (b) freeSlotBytes -= c;
  return (b ?? Buffer.allocUnsafeSlow(c)).subarray(0, n);
}

function release(b: Buffer): void {
  letGo.push(b);
}

function recycleSlots(): void {
  for (const b of letGo) {
    const c = b.buffer.byteLength;
    // Only whole slots of this pool (a view of another buffer never comes back here).
    if (b.byteOffset !== 0 || c !== slotClass(c) || freeSlotBytes + c > FREE_SLOT_MAX) continue;
    let l = freeSlots.get(c);
    if (!l) freeSlots.set(c, (l = []));
    l.push(Buffer.from(b.buffer, 0, c));
    freeSlotBytes += c;
  }
  letGo = [];
}

/** A pack body read into reused memory: decoded at once, never kept. */
function bodyScratch(n: number): Buffer {
  if (scratchBody.length < n) scratchBody = Buffer.allocUnsafeSlow(Math.max(n, 1 << 20));
  return scratchBody;
}

/** Decoded shared frames by pack and offset. The old chunks a release's rebuilt package is
 * compared against were stored side by side, several to a frame: without this each one decoded
 * its whole frame again (zstd decompression was ~30% of the workers' time on release N+1 of the
 * small corpus). Each chunk cut from a frame is still checked against its id. */
const frameCache = new Map<string, Buffer>();
const FRAME_CACHE_ENTRIES = 16;

function frameOf(loc: BaseChunk, packDir: string, fds: PackFds, id: string): Buffer {
  const key = `${loc.pack}:${loc.offset}:${loc.stored}`;
  const hit = frameCache.get(key);
  if (hit) {
    frameCache.delete(key);
    frameCache.set(key, hit);
    return hit;
  }
  const frame = decodeFrameInto(preadStored(fds, join(packDir, packFileName(loc.pack)), loc.offset, loc.stored, id, bodyScratch(loc.stored)), slotFor(loc.frame!.size), id);
  frameCache.set(key, frame);
  if (frameCache.size > FRAME_CACHE_ENTRIES) {
    const oldest = frameCache.keys().next().value!;
    release(frameCache.get(oldest)!);
    frameCache.delete(oldest);
  }
  return frame;
}

/** A delta's dictionary, valid until the next one is made, and a chunk read again (compressItems). */
let dictScratch = Buffer.allocUnsafeSlow(0);
let readScratch = Buffer.allocUnsafeSlow(0);

/** An update does this in C on libuv's threads: native/miqchunk.c compressItemsAsync
 * (store/ingest-c.ts), given this module's constants with each task. A change here is a change
 * there (test/ingest-c.test.ts compares the two). */
function compressItems(items: CompressItem[], packDir?: string, bases?: BaseChunk[]): CompressedItem[] {
  const out: CompressedItem[] = [];
  const frames = new FrameBuilder(out);
  let fd = -1;
  let fdPath: Buffer | undefined;
  const table = new Map((bases ?? []).map((b) => [b.id, b]));
  const packFds = new PackFds(64);
  const dictOf = (refs: string[]): Buffer | undefined => {
    if (!packDir) return undefined;
    const parts: Buffer[] = [];
    for (const r of refs) {
      const b = loadBase(r, table, packDir, packFds);
      if (!b) return undefined;
      parts.push(b);
    }
    if (parts.length === 1) return parts[0];
    // Into one reused buffer: a fresh one per chunk (up to DELTA_MAX_REFS old chunks) was ~1 s
    // of the workers' samples on release N+1 of the small corpus, most of it faulting in pages.
    const total = parts.reduce((a, p) => a + p.length, 0);
    if (dictScratch.length < total) dictScratch = Buffer.allocUnsafeSlow(Math.max(total, dictScratch.length * 2));
    let o = 0;
    for (const p of parts) o += p.copy(dictScratch, o);
    return dictScratch.subarray(0, total);
  };
  try {
    for (const it of items) {
      recycleSlots();
      let plain: Uint8Array;
      if (it.data) {
        plain = it.data;
      } else {
        const p = Buffer.from(it.path!.buffer, it.path!.byteOffset, it.path!.byteLength);
        if (!fdPath || !fdPath.equals(p)) {
          if (fd >= 0) closeSync(fd);
          fd = -1;
          try {
            fd = openSync(p, OPEN_FLAGS);
          } catch (e) {
            throw ioError(e, 'cannot read', p.toString());
          }
          fdPath = p;
        }
        // Read into a reused buffer (what is kept of `plain` below is copied).
        if (readScratch.length < it.length) readScratch = Buffer.allocUnsafeSlow(Math.max(it.length, 1 << 20));
        const b = readScratch.subarray(0, it.length);
        const n = readSync(fd, b, 0, it.length, it.offset!);
        plain = b;
        // The file changed between scan and compress: never store bytes under a wrong id.
        if (n !== it.length || idOf(b) !== it.id) throw new MiqError('MIQ_BAD_INPUT', `${p.toString()} changed during ingest; ingest it again once it is stable`);
      }
      const dict = it.refs ? dictOf(it.refs) : undefined;
      if (dict && it.refs) {
        // A delta far smaller than the chunk itself wins without trying plain compression (which
        // would cost as much again); otherwise keep it only when it beats plain by DELTA_KEEP_RATIO,
        // since reading it costs its references too.
        const delta = encodeChunkWithDict(plain, dict);
        const sure = delta.length < plain.length * DELTA_SURE_RATIO;
        const plainBody = sure ? undefined : encodeChunkScratch(plain).body;
        if (sure || delta.length < plainBody!.length * DELTA_KEEP_RATIO) {
          out.push({ id: it.id, plainLen: plain.length, flags: FLAG_ZSTD_DICT, body: arena.keep(delta), refs: it.refs, depth: (it.refDepth ?? 0) + 1 });
          continue;
        }
      }
      if (plain.length <= FRAME_ITEM_MAX) {
        frames.add(it.id, plain);
        continue;
      }
      const { flags, body } = encodeChunkScratch(plain);
      // Copied out of zstd's scratch (or the read buffer) into what is handed over.
      out.push({ id: it.id, plainLen: plain.length, flags, body: arena.keep(body) });
    }
    frames.seal();
  } finally {
    if (fd >= 0) closeSync(fd);
    packFds.close();
  }
  return out;
}

/**
 * piscina transfers a result's buffers instead of cloning them when the result is marked with
 * its `markMovable`, whose mark is a private symbol of the module instance its worker script
 * loaded: that instance is taken from the require cache (never loaded afresh: another instance's
 * mark would not be recognised, and the result would arrive empty). Without it results are
 * cloned, as before. Cloning the bodies was ~40% of an ingest's page faults (the serialiser's
 * buffer and the copies out of it) on the many-small-files corpus.
 */
type Movable = { markMovable(v: object): void; isMovable(v: object): boolean };
const findMovable = (): Movable | undefined => {
  try {
    const req = createRequire(import.meta.url);
    const path = join(dirname(req.resolve('piscina')), 'common.js');
    if (!req.cache[path]) return undefined;
    const m = req(path) as { markMovable?: unknown; isMovable?: unknown };
    return typeof m.markMovable === 'function' && typeof m.isMovable === 'function' ? (m as never) : undefined;
  } catch {
    return undefined;
  }
};
/** Looked up at the first result handed over (null: none), in a worker only: a result returned
 * on the main thread (tests call `run` directly) crosses no thread, and a mark would only wrap it.
 * At load the lookup (a package resolution, ~1.5 ms) was paid by every process that imported this
 * module. */
let movable: Movable | null | undefined;

/** The result, with the task's arena transferred when piscina allows it. */
function handOver(r: WorkerResult): WorkerResult {
  const buffers = arena.buffers;
  arena = new Arena();
  if (buffers.length === 0) return r;
  movable ??= isMainThread ? null : findMovable() ?? null;
  if (!movable) return r;
  const wrapped = { [Symbol.for('Piscina.transferable')]: buffers, [Symbol.for('Piscina.valueOf')]: r };
  movable.markMovable(wrapped);
  return movable.isMovable(wrapped) ? (wrapped as unknown as WorkerResult) : r;
}

export default function run(task: WorkerTask): WorkerResult | Promise<WorkerResult> {
  if ('spare' in task && task.spare) for (const b of task.spare) if (b.byteLength === ARENA_BLOCK && spares.length < SPARES_MAX) spares.push(b);
  arena = new Arena();
  try {
    if (task.type === 'walk') return walkToPort(task.root, task.port).then(() => ({ type: 'walked' }));
    if (task.type === 'warm') return { type: 'warmed' };
    return handOver(runTask(task));
  } catch (e) {
    arena = new Arena();
    return { type: 'error', error: errJson(e) };
  }
}

function runTask(task: Exclude<WorkerTask, { type: 'walk' } | { type: 'warm' }>): WorkerResult {
  switch (task.type) {
    case 'scan': {
      let sink: ScanSink | undefined;
      if (task.claims) {
        const bodies: CompressedItem[] = [];
        sink = { bodies, frames: new FrameBuilder(bodies), elsewhere: [] };
      }
      const files = task.files.map((f) => scanOne(f, task.params, task.keepSmall, task.claims, sink));
      sink?.frames.seal();
      if (!sink) return { type: 'scanned', files };
      return { type: 'scanned', files, ...(sink.bodies.length > 0 ? { bodies: sink.bodies } : {}), ...(sink.elsewhere.length > 0 ? { elsewhere: sink.elsewhere } : {}) };
    }
    case 'hash':
      return { type: 'hashed', files: hashTask(task.files) };
    case 'compress':
      return { type: 'compressed', items: compressItems(task.items, task.packDir, task.bases) };
  }
}
