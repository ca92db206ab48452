/**
 * Reads byte ranges of files from a ChunkSource: find the chunks covering the range, fetch each
 * (verified), keep a bounded LRU of decompressed chunks. Concurrent reads of the same chunk share
 * one fetch: kernel readahead issues neighbouring 128 KiB reads in parallel and chunks straddle
 * them.
 *
 * On a local store (the source is also a ChunkLocator) cold chunks are pread, decompressed and
 * hash-checked in a small worker pool: the serving thread also has to answer every FUSE request,
 * and on a cold read of a large tree it was CPU-bound with decompression and hashing the largest
 * part. A file's chunk locations come in one database call, and a sequential reader gets the
 * next chunks started before it asks (READAHEAD bytes past its read), in batches, so the pool
 * works while the kernel's request is answered. Delta chunks (their dictionary is other chunks)
 * and any chunk the pool cannot read from its pack go through the source as before.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { ChunkLocation, ChunkLocator, ChunkSource } from '../store/api.js';
import { FLAG_FRAME, FLAG_RAW, FLAG_ZSTD } from '../store/codec.js';
import { MiqError, type MiqErrorCode } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import { ByteLru } from '../store/lru.js';
import { workerExecArgv } from '../store/index.js';
import type { FileRecord } from '../store/objects.js';
import { chunkAt, chunkSpan, chunkStarts, copyPart } from '../store/range.js';
import type { DecodeItem, DecodeResult, DecodeTask } from './decode-worker.js';

/** A file record with chunk start offsets, made once per open handle (or cached path). */
export interface OpenFile {
  readonly rec: FileRecord;
  readonly starts: Float64Array;
  /** The chunks' pack locations, looked up together on the first cold read (local stores). */
  locs: Promise<readonly (ChunkLocation | undefined)[] | undefined> | undefined;
  /** The first HEAD_CHUNKS of them, looked up on their own (see locsOf). */
  head?: Promise<readonly (ChunkLocation | undefined)[] | undefined>;
  /** Where the last read ended: a read that starts there (or at 0) is sequential. */
  next: number;
  /** The last chunk index readahead has been started for. */
  ahead: number;
  /** The last chunk index whose pack bytes the kernel was asked to read ahead (see adviseAhead). */
  advised?: number;
  /** The file node whose READs its chunks are offered to the binding for (see StreamSink): the
   * last one read through JS. */
  ino?: number;
  /** The file node the binding was handed this file's chunk map for (mapRead); false: the file
   * cannot be mapped (a delta chunk, a chunk not located). */
  mapped?: number | false;
}

/**
 * The binding's stream table (native/miqfuse.c, "Streams"): the decode threads offer a large
 * file's verified chunks there by node and offset, and the loop thread answers the READs they
 * cover without JS (READs of chunks still decoding wait there for them). `promise` before a chunk
 * goes to the pool, `settle` once its result is in (offered or failed: READs waiting for a chunk
 * that never came then reach JS, which answers them, EIO for a chunk that fails its hash).
 */
export interface StreamSink {
  /** The number a decode thread names the session by (chunkOffer). */
  readonly handle: number;
  /** `low`: the binding tells JS of READs it answered (OP.STREAMED, `progress`) only when fewer
   * bytes than that past them are offered or promised (0 or none: of every READ). */
  promise(ino: number, size: number, off: number, end: number, low?: number): void;
  /** With `bytes` (decoded on the serving thread, verified): the binding keeps a copy. */
  settle(ino: number, off: number, end: number, bytes?: Buffer): void;
  /** A READ that reached JS, answered from the table or left waiting there for its promised
   * chunks; false when neither can be (the slot is still the caller's). */
  wait(slot: number, ino: number, size: number, off: number): boolean;
  /** File node `ino`'s content is the one chunk `id` at `loc` (raw, zstd or in a shared frame;
   * never a delta) in the pack at `path`: the binding answers READs of it that reach it before
   * its bytes are offered by reading, decoding and checking that chunk itself (native/miqfuse.c,
   * "Chunk maps"). Optional. */
  map?(ino: number, loc: ChunkLocation, path: string, id: Id): void;
  /** Node `ino` (a small file whose LOOKUP JS answered) is pending: the binding holds its READs
   * until map, an offer or unpend (native/miqfuse.c "Pending maps"; the binding marks the nodes
   * whose LOOKUPs it answered itself). Optional, with unpend. */
  pend?(ino: number): void;
  /** No map of node `ino` is coming: READs the binding holds for it go to JS. */
  unpend?(ino: number): void;
  /** The binding marks no LOOKUP it answers pending from now on (JS maps no looked-up file). */
  holdOff?(): void;
  /** File node `ino` (`size` bytes) is `chunks` in order (raw, zstd or in shared frames; never a
   * delta): the binding answers its READs that reach it by reading, decoding and checking the
   * chunks each READ covers itself (native/miqfuse.c, "Chunk maps"). False when not taken.
   * Optional, with mapRead. */
  mapFile?(ino: number, size: number, chunks: readonly { id: Id; loc: ChunkLocation; path: string }[]): boolean;
  /** A READ that reached JS, handed to the binding's map of its node: 1 handed (the slot is the
   * binding's), 0 the node has no map, -1 its map failed (the slot is still the caller's). */
  mapRead?(slot: number, ino: number, size: number, off: number): number;
}

/** What a stream's chunk settles with when a decode thread offered it to the binding: its bytes
 * are there only (a reader in JS that needs them reads them again, fetchSpan). */
const OFFERED = Buffer.alloc(0);
/** Chunks that failed (their ids, bounded): READs of them are not left to wait in the binding. */
const FAILED = 64;

export function openFile(rec: FileRecord): OpenFile {
  return { rec, starts: chunkStarts(rec), locs: undefined, next: 0, ahead: -1 };
}

export interface ChunkReaderOptions {
  /** Decode threads (default: MIQ_MOUNT_THREADS, else defaultThreads()); 0 decodes on the
   * serving thread. */
  threads?: number;
  /** Bytes past a sequential read to start fetching (default MIQ_MOUNT_READAHEAD or 8 MiB). */
  readahead?: number;
  /** Files up to this size are fetched whole from their first read at offset 0 (default
   * MIQ_MOUNT_WHOLE_AHEAD or 8 MiB; 0: never). */
  wholeAhead?: number;
}

const envNum = (name: string): number | undefined => {
  const v = process.env[name];
  return v !== undefined && v !== '' && Number.isFinite(Number(v)) ? Number(v) : undefined;
};

/** Plain bytes per worker task: large enough to amortise the message hop (tens of µs of the
 * serving thread), small enough that the first chunk of a batch is not held up long. */
const BATCH_BYTES = 384 << 10;
/** Chunks up to this size are decoded on the serving thread (MIQ_MOUNT_INLINE to measure). */
const INLINE_BYTES = envNum('MIQ_MOUNT_INLINE') ?? 128 << 10;

/** Files up to this size are read whole: their one chunk (whose id is the file's id) is located
 * and decoded without the file record (see wholeOf). */
export const WHOLE_BYTES = 256 << 10;
/** Gaps up to this many bytes between chunks of one pack are read through in one pread; a span
 * stops growing at SPAN_BYTES. */
const SPAN_GAP = 64 << 10;
const SPAN_BYTES = 1 << 20;
const SPANS = process.env.MIQ_MOUNT_SPANS !== '0';
/** MIQ_DEBUG_DECODE: one log line per decode task: how long it waited for a thread, ran, and
 * took to come back (a hop to and from the pool is two thread wake-ups). */
const DEBUG_DECODE = !!process.env.MIQ_DEBUG_DECODE;
/** A large file's first chunks are located on their own, beside the rest (see locsOf). */
const HEAD_CHUNKS = 16;
/** A stream's pack bytes are asked for (posix_fadvise WILLNEED, by a decode thread) this many
 * plain bytes past the chunks it starts decoding, so the disk reads while the threads decode and
 * their preads find the bytes cached (MIQ_MOUNT_PACK_AHEAD; 0: never). */
const PACK_AHEAD = envNum('MIQ_MOUNT_PACK_AHEAD') ?? 16 << 20;
/**
 * A file fetched whole (wholeAhead) has its last 1/TAIL_PART, and TAIL_AROUND before that, posted
 * to the pool first (extend): a program or library is mapped, and its first faults past the head
 * are at its end. The exec clears the tail of the data segment's last page, and the loader then
 * reads .dynamic and .got at that segment's start, which lies in the file's last fifth (python3.11:
 * the last 19 %, libcrypto 9 %, libc 1 %); the kernel reads around a fault, half of its 1 MiB
 * readahead before it. In file order python3.11's exec waited there 11-20 ms (RT traces) for the
 * 5 MB before it to be decoded.
 */
const TAIL_PART = 5;
const TAIL_AROUND = 512 << 10;
/** The stream cache's bound (ChunkCache): readahead and the READs of a few sequential readers. */
const STREAM_BYTES = envNum('MIQ_MOUNT_STREAM_CACHE') ?? 16 << 20;
/** Small files' chunk locations kept for StreamSink.map (a directory's batch is up to ~4k). */
const WHOLE_LOCS = 8192;

export interface WholeFile {
  readonly id: Id;
  readonly size: number;
  /** loadWhole: the file node (known to the kernel, or held by a registered listing) whose table
   * of offered files in the binding the decode thread puts the verified bytes into. */
  readonly ino?: number;
}

/**
 * The decoded-chunk cache: whole small files and chunks read on their own in `main`; the chunks
 * of a large file read in order in `stream`, a small LRU of their own. The kernel keeps what a
 * READ was answered with (keep_cache), so a large file's chunks are wanted here only until the
 * READs around them are answered; kept in the main LRU they pushed out small files and, worse,
 * every one was fresh memory: measured on the bench tree's 117 MB file, the page faults of
 * 117 MB of new buffers cost the decode thread more than the decoding (~0.5 s of ~1.4 s), while
 * chunks that leave soon are freed and their memory reused for the next ones.
 */
class ChunkCache {
  private readonly main: ByteLru<Id, Buffer>;
  private readonly stream: ByteLru<Id, Buffer>;
  constructor(bytes: number) {
    this.main = new ByteLru(bytes);
    this.stream = new ByteLru(Math.min(STREAM_BYTES, bytes));
  }
  get(id: Id): Buffer | undefined {
    return this.main.get(id) ?? this.stream.get(id);
  }
  set(id: Id, b: Buffer, stream: boolean): void {
    (stream ? this.stream : this.main).set(id, b);
  }
  delete(id: Id): void {
    this.main.delete(id);
    this.stream.delete(id);
  }
}

/** Chunks the decode pool reads itself: raw, plain zstd, and slices of shared frames (not deltas,
 * whose dictionary is other chunks). */
const pooled = (loc: ChunkLocation): boolean => !loc.refs && (loc.flags === FLAG_RAW || loc.flags === FLAG_ZSTD || (loc.flags === FLAG_FRAME && loc.frame !== undefined));

function isLocator(s: ChunkSource): s is ChunkSource & ChunkLocator {
  return typeof (s as Partial<ChunkLocator>).locate === 'function' && typeof (s as Partial<ChunkLocator>).packPath === 'function';
}


/**
 * cores - 1, but 2 on a 2-core machine. Since shared frames went to the pool (7a1ce4f) every
 * small file of a directory batch is decoded there, and one large file's chunks always were: with
 * one thread the pool was the cold read's critical path while the other core waited (a dd of a
 * 117 MB file: the decode thread busy from the first pack read to the last READ). Alternating at
 * load 6-14 on a 20k-file subset of the bench tree, 2 threads vs 1: 24.2-45.0 s vs 29.5-45.5 s
 * (faster in 4 of 5 pairs), the same mount CPU; one 117 MB file at load 9-13: no difference.
 */
function defaultThreads(): number {
  const cores = availableParallelism();
  return Math.min(Math.max(2, cores - 1), Math.max(1, cores));
}

interface Pending {
  id: Id;
  length: number;
  file: Id;
  resolve: (b: Buffer) => void;
  reject: (e: unknown) => void;
  /** A stream's chunk: its node, offset and file size (see StreamSink). */
  sink?: { ino: number; at: number; size: number };
  /** A small file's chunk offered by the decode thread to the binding for this node (loadWhole). */
  ready?: number;
}

export class ChunkReader {
  private readonly lru: ChunkCache;
  private readonly inflight = new Map<Id, Promise<Buffer>>();
  private readonly locator: ChunkLocator | undefined;
  private readonly threads: number;
  private readonly readahead: number;
  private readonly wholeAhead: number;
  /** A stream's low water (StreamSink.promise): JS hears of the READs the binding answered once
   * less than half the readahead is left ahead of them, and then starts the next half at once. */
  private readonly low: number;
  private pool: Piscina<DecodeTask, DecodeResult> | undefined;
  private queue: { p: Pending; it: DecodeItem }[] = [];
  /** Whole files whose chunk location is being looked up (loadWhole): bytes, or undefined when
   * the file is not a single chunk. */
  private readonly locating = new Map<Id, Promise<Buffer | undefined>>();
  private queued = 0;
  private flushing = false;
  /** Decode tasks posted (MIQ_DEBUG_DECODE's lines number them). */
  private tasks = 0;
  /** Pack ranges the next decode task asks the kernel to read ahead (adviseAhead). */
  private advise: NonNullable<DecodeTask['advise']> = [];
  /** Shared frames the store decoded lately for a read on this thread (readAt; its frame cache
   * holds ~32 of them), by pack and offset. A directory's batch starts after a reader has read a
   * few of its files that way, so its first frame is mostly among them: the batch takes those
   * chunks from the store too (a slice and a hash here) instead of having the pool decode the
   * frame a second time. */
  private readonly storeFrames = new Set<string>();
  /** Where verified chunks of large files read in order are offered (a fuse3 mount). */
  sink: StreamSink | undefined;
  private readonly failed = new Set<Id>();
  /** Chunks in flight whose settling reaches the table (pending with a sink). */
  private readonly offering = new Set<Id>();
  /** Where small files' one chunk lies, located lately (loadWhole), for StreamSink.map. */
  private readonly wholeLocs = new Map<Id, ChunkLocation>();

  constructor(private readonly source: ChunkSource, cacheBytes = 128 << 20, o: ChunkReaderOptions = {}) {
    this.lru = new ChunkCache(cacheBytes);
    this.threads = Math.max(0, o.threads ?? envNum('MIQ_MOUNT_THREADS') ?? defaultThreads());
    this.locator = this.threads > 0 && isLocator(source) ? source : undefined;
    // 8 MiB, with the binding telling JS of the READs it answered only once half of it is left
    // (low): JS then starts the next ~4 MiB at once, as a few larger tasks. Measured on the bench's
    // 117 MB file cold (CFS, load 2.5-5.7): 2 MiB and a message per READ (112) median 0.40 s, 8 MiB
    // and ~35 messages 0.34 s (faster in 10 of 14), the serving process's voluntary context
    // switches ~570 -> ~395; 8 MiB alone (a message per READ) no faster, 4 MiB with the low water
    // not clearly. Under SCHED_FIFO no change (0.207 vs 0.206 s): what it saves is wake-ups.
    this.readahead = Math.max(0, o.readahead ?? envNum('MIQ_MOUNT_READAHEAD') ?? 8 << 20);
    this.wholeAhead = Math.max(0, o.wholeAhead ?? envNum('MIQ_MOUNT_WHOLE_AHEAD') ?? 8 << 20);
    this.low = this.readahead >> 1;
  }

  /** Files up to this size are fetched whole from their first read (wholeAhead). */
  get wholeAheadBytes(): number {
    return this.wholeAhead;
  }

  /** Stops the decode pool (idle workers are unref'd, so an unclosed reader does not keep the
   * process alive). */
  async close(): Promise<void> {
    const p = this.pool;
    this.pool = undefined;
    if (p) await p.destroy();
  }

  /** Starts the decode threads now (a mount, once it serves): started on the first cold read,
   * their start-up (~0.1 s of CPU each, measured) delayed that read's first chunk. */
  warm(): void {
    if (this.locator) this.decodePool();
  }

  private decodePool(): Piscina<DecodeTask, DecodeResult> {
    this.pool ??= new Piscina<DecodeTask, DecodeResult>({
      filename: new URL('./decode-worker.js', import.meta.url).href,
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: 60_000,
      recordTiming: false,
      execArgv: workerExecArgv(), // no require(esm): see store/pool.ts
    });
    return this.pool;
  }

  /** One chunk by id, through the source (no location known). */
  chunk(id: Id, length: number, file: Id): Promise<Buffer> {
    const hit = this.lru.get(id);
    if (hit) return Promise.resolve(hit);
    let p = this.inflight.get(id);
    if (!p) {
      const d = this.pending(id, length, file);
      p = d.promise;
      this.viaSource(d.pending);
    }
    return p;
  }

  /** Registers an in-flight fetch whose settling fills the LRU. */
  private pending(id: Id, length: number, file: Id, stream = false, sink?: Pending['sink']): { promise: Promise<Buffer>; pending: Pending } {
    let resolve!: (b: Buffer) => void, reject!: (e: unknown) => void;
    const settle = sink && this.sink ? this.sink : undefined;
    if (settle) {
      settle.promise(sink!.ino, sink!.size, sink!.at, sink!.at + length, this.low);
      this.offering.add(id);
    }
    const promise = new Promise<Buffer>((res, rej) => {
      resolve = (b) => {
        this.inflight.delete(id);
        this.offering.delete(id);
        if (b === OFFERED) {
          settle?.settle(sink!.ino, sink!.at, sink!.at + length);
          return res(b);
        }
        if (b.length === length) settle?.settle(sink!.ino, sink!.at, sink!.at + length, b);
        else settle?.settle(sink!.ino, sink!.at, sink!.at + length);
        if (b.length !== length) return rej(new MiqError('MIQ_CORRUPT', `chunk ${id} has ${b.length} bytes, file ${file} expects ${length}`, { details: { id, file } }));
        this.lru.set(id, b, stream);
        res(b);
      };
      reject = (e) => {
        this.inflight.delete(id);
        this.offering.delete(id);
        if (settle) {
          this.failed.add(id);
          if (this.failed.size > FAILED) this.failed.delete(this.failed.values().next().value as Id);
          settle.settle(sink!.ino, sink!.at, sink!.at + length);
        }
        rej(e);
      };
    });
    // Readahead fetches may fail with nobody waiting; a reader that does wait still sees it.
    promise.catch(() => {});
    this.inflight.set(id, promise);
    return { promise, pending: { id, length, file, resolve, reject, sink } };
  }

  private async viaStore(id: Id, length: number, file: Id): Promise<Buffer> {
    const b = this.lru.get(id) ?? (await this.source.get(id));
    if (!b) throw new MiqError('MIQ_MISSING', `chunk ${id} of file ${file} is missing from the store`, { details: { id, file } });
    if (b.length !== length) throw new MiqError('MIQ_CORRUPT', `chunk ${id} has ${b.length} bytes, file ${file} expects ${length}`, { details: { id, file } });
    return b;
  }

  private viaSource(p: Pending): void {
    this.source.get(p.id).then((b) => {
      if (!b) return p.reject(new MiqError('MIQ_MISSING', `chunk ${p.id} of file ${p.file} is missing from the store`, { details: { id: p.id, file: p.file } }));
      p.resolve(b);
    }, p.reject);
  }

  /** Starts fetching chunks [from, to) of `f` that are neither cached nor in flight; `ahead`: a
   * sequential reader's readahead (its pack bytes further on are asked for too, adviseAhead). */
  private start(f: OpenFile, from: number, to: number, ahead = false): void {
    const todo: { p: Pending; i: number }[] = [];
    const chunks = f.rec.chunks;
    // Chunks of files fetched whole stay in the main cache: the stream cache (16 MiB) is for one
    // large file read in order, and a few libraries fetched whole would evict each other there.
    const stream = chunks.length > 1 && f.rec.size > this.wholeAhead;
    // Every file of more than one chunk once a READ went through JS (streamRead set f.ino); a
    // sibling's first chunk fetched ahead (prefetch) stays in JS until a READ wants it.
    const ino = chunks.length > 1 && this.sink ? f.ino : undefined;
    for (let i = from; i < to; i++) {
      const c = chunks[i]!;
      if (this.inflight.has(c.id) || this.lru.get(c.id)) continue;
      const sink = ino === undefined || this.failed.has(c.id) ? undefined : { ino, at: f.starts[i]!, size: f.rec.size };
      todo.push({ p: this.pending(c.id, c.length, f.rec.id, stream, sink).pending, i });
    }
    if (todo.length === 0) return;
    if (!this.locator) {
      for (const t of todo) this.viaSource(t.p);
      return;
    }
    const locator = this.locator;
    void this.locsOf(f, locator, to).then((locs) => {
      // Several chunks at once (a large READ, readahead): neighbours in a pack are read in one
      // pread and decoded on the pool, in spans.
      const spans = SPANS && todo.length > 1 ? new Map<number, { p: Pending; loc: ChunkLocation }[]>() : undefined;
      for (const { p, i } of todo) {
        const loc = locs?.[i];
        if (!loc || loc.plain !== p.length) {
          this.viaSource(p);
          continue;
        }
        if (spans && pooled(loc)) {
          let l = spans.get(loc.pack);
          if (!l) spans.set(loc.pack, (l = []));
          l.push({ p, loc });
          continue;
        }
        // Chunks up to INLINE_BYTES are cheaper to decode here than to send: measured, a piscina
        // task cost this thread ~40 µs and the worker as much again, on a 2-core machine under
        // load no gain at all. Delta chunks need other chunks' bytes (the store resolves them).
        if (loc.plain <= INLINE_BYTES || (loc.flags !== FLAG_RAW && loc.flags !== FLAG_ZSTD)) {
          this.readAt(locator, loc, p);
          continue;
        }
        this.queue.push({ p, it: { id: p.id, path: locator.packPath(loc.pack), offset: loc.offset, stored: loc.stored, plain: loc.plain, flags: loc.flags, sink: this.promised(p) } });
        this.queued += loc.plain;
      }
      if (ahead && locs) this.adviseAhead(f, locator, locs, to);
      // A READ's own chunks (someone waits for all of them) are split among the decode threads,
      // not one span on one thread; readahead goes in spans up to SPAN_BYTES (fewer tasks).
      // Measured on the bench's 117 MB file, cold: its first read(2) of 1 MiB (6 chunks) took
      // median 31.6 -> 24.7 ms (RT, 10 alternations, faster in 8; 15 of 20 in all).
      if (spans) for (const [pack, l] of spans) this.decodeSpans(locator.packPath(pack), l, ahead ? undefined : Math.ceil(l.reduce((a, x) => a + x.loc.stored, 0) / this.threads));
      // A READ's own chunks go now, not at the end of this turn: the readahead it started
      // posts its spans as soon as its locations are in (the same turn when they were loaded
      // ahead: Inodes.preloadFiles), and python3.11's head chunk then waited ~10 ms on the pool
      // behind its whole file's 6.8 MB.
      if (!ahead && this.queue.length > 0) this.flush();
      else if (!this.flushing && this.queue.length > 0) {
        this.flushing = true;
        setImmediate(this.flush);
      }
    });
  }

  /**
   * The pack ranges of a stream's chunks past `to`, up to PACK_AHEAD plain bytes, for the next
   * decode task to ask the kernel for (willneedRange): measured on the bench's 117 MB file from a
   * cold page cache, each decode thread spent ~60 ms of its ~170 ms in preads of its spans (the
   * two threads' preads interleave on their own descriptors, so the kernel's readahead on a pack
   * never grows).
   */
  private adviseAhead(f: OpenFile, locator: ChunkLocator, locs: readonly (ChunkLocation | undefined)[], to: number): void {
    if (PACK_AHEAD <= 0) return;
    // A large file's first READs may have only its first HEAD_CHUNKS located (locsOf): the rest
    // is asked for once all are.
    const n = Math.min(f.rec.chunks.length, locs.length);
    if (n < f.rec.chunks.length) void f.locs?.then((all) => all && all.length > n && this.adviseAhead(f, locator, all, to));
    if (to >= n) return;
    const limit = f.starts[to]! + PACK_AHEAD;
    let i = Math.max(to, (f.advised ?? -1) + 1);
    if (i >= n || f.starts[i]! >= limit) return;
    let run: { pack: number; offset: number; end: number } | undefined;
    const flush = (): void => {
      if (run && this.advise.length < 64) this.advise.push({ path: locator.packPath(run.pack), offset: run.offset, length: run.end - run.offset });
      run = undefined;
    };
    for (; i < n && f.starts[i]! < limit; i++) {
      const loc = locs[i];
      if (!loc) continue;
      const e = loc.offset + loc.stored;
      if (run && run.pack === loc.pack && loc.offset >= run.offset - SPAN_GAP && loc.offset <= run.end + SPAN_GAP) {
        run.offset = Math.min(run.offset, loc.offset);
        run.end = Math.max(run.end, e);
      } else {
        flush();
        run = { pack: loc.pack, offset: loc.offset, end: e };
      }
    }
    flush();
    f.advised = i - 1;
    // Sent with the next decode task, or on its own (flush) when none goes out this turn.
    if (this.advise.length > 0 && !this.flushing) {
      this.flushing = true;
      setImmediate(this.flush);
    }
  }

  /**
   * The pack locations of a file's chunks [0, to). A large file's are one database call of
   * hundreds of keys (the bench tree's 117 MB file: ~700), which on a cold index waited for
   * dozens of disk reads before the first READ could start its chunks (~0.25 s at load 10,
   * strace): its first HEAD_CHUNKS are looked up in a call of their own, beside the rest.
   */
  private locsOf(f: OpenFile, locator: ChunkLocator, to: number): Promise<readonly (ChunkLocation | undefined)[] | undefined> {
    if (!f.locs) {
      const ids = f.rec.chunks.map((c) => c.id);
      if (ids.length > 2 * HEAD_CHUNKS) {
        const head = locator.locate(ids.slice(0, HEAD_CHUNKS)).catch(() => undefined);
        const rest = locator.locate(ids.slice(HEAD_CHUNKS)).catch(() => undefined);
        f.head = head;
        f.locs = Promise.all([head, rest]).then(([h, r]) => (h && r ? [...h, ...r] : undefined));
      } else f.locs = locator.locate(ids).catch(() => undefined);
    }
    return f.head && to <= HEAD_CHUNKS ? f.head : f.locs;
  }

  /**
   * Sends what was asked for during one turn of the event loop (the FUSE requests that arrived
   * together, their readahead, a directory's prefetch) as a few worker tasks rather than one per
   * chunk: measured, a piscina task cost the serving thread ~30 µs and the worker as much again.
   * The queue is split so every decode thread gets a share.
   */
  private readonly flush = (): void => {
    this.flushing = false;
    const q = this.queue;
    const total = this.queued;
    this.queue = [];
    this.queued = 0;
    const per = Math.max(BATCH_BYTES >> 2, Math.min(BATCH_BYTES, Math.ceil(total / this.threads)));
    let batch: { p: Pending; it: DecodeItem }[] = [];
    let bytes = 0;
    for (const b of q) {
      batch.push(b);
      bytes += b.it.plain;
      if (bytes >= per) {
        this.decode(batch);
        batch = [];
        bytes = 0;
      }
    }
    if (batch.length > 0) this.decode(batch);
    if (this.advise.length > 0) this.decode([]);
  };

  private decode(batch: { p: Pending; it: DecodeItem }[], span?: DecodeTask['span']): void {
    const posted = DEBUG_DECODE ? performance.now() : 0;
    const task = DEBUG_DECODE ? ++this.tasks : 0;
    const advise = this.advise.length > 0 ? this.advise : undefined;
    if (advise) this.advise = [];
    this.decodePool().run({ type: 'decode', items: batch.map((b) => b.it), span, advise }).then(
      (r) => {
        if (DEBUG_DECODE && r.timing) {
          const start = r.timing.start - performance.timeOrigin, now = performance.now();
          const plain = batch.reduce((a, b) => a + b.it.plain, 0);
          const s0 = batch[0]?.it.sink;
          process.stderr.write(`decode task=${task} at=${posted.toFixed(1)} queued=${(start - posted).toFixed(1)} run=${r.timing.run.toFixed(1)} back=${(now - start - r.timing.run).toFixed(1)} items=${batch.length} plain=${plain}${s0 ? ` ino=${s0.ino} from=${s0.at}` : ''}\n`);
        }
        r.items.forEach((d, k) => {
          const p = batch[k]!.p;
          if (d.ok) return p.resolve(d.bytes ? Buffer.from(d.bytes.buffer, d.bytes.byteOffset, d.bytes.byteLength) : OFFERED);
          // The pack may have been rewritten by gc since the location was read: the store knows.
          if (d.error.code === 'MIQ_IO') return this.viaSource(p);
          p.reject(new MiqError(d.error.code as MiqErrorCode, d.error.message, d.error.details ? { details: d.error.details } : undefined));
        });
      },
      // A pool failure (a worker died) is not a fact about the chunk: read it the old way.
      () => batch.forEach((b) => this.viaSource(b.p)),
    );
  }

  /**
   * A file's whole content when it is one chunk: a chunk's id is the BLAKE3 of its bytes and a
   * file's id the BLAKE3 of its content, so a chunk whose id is the file's id holds exactly that
   * content (verified like every chunk), and the file record need not be read. Small files are
   * one chunk (below the chunker's minimum always, and mostly up to its average).
   */
  cachedWhole(f: WholeFile): Buffer | undefined {
    const b = this.lru.get(f.id);
    return b && b.length === f.size ? b : undefined;
  }

  /** Hands the binding the map of node `ino`'s one chunk (StreamSink.map) once its location is
   * known: a file located without its node (a directory's batch started before its lookup). */
  private mapWhole(f: WholeFile, ino: number): void {
    if (!this.mapsWhole) return;
    const loc = this.wholeLocs.get(f.id);
    if (loc) return this.mapTo(ino, loc, f.id);
    const p = this.locating.get(f.id);
    if (p) void p.then(() => {
      const l = this.wholeLocs.get(f.id);
      if (l) this.mapTo(ino, l, f.id);
    }, () => {});
  }

  /** Files located whole are mapped (not in a walk by name: holdNoMore). */
  private get mapsWhole(): boolean {
    return !this.held && !!this.sink?.map && !!this.locator;
  }

  /** Hands the binding node `ino`'s map: its one chunk `id` lies at `loc` (StreamSink.map). */
  private mapTo(ino: number, loc: ChunkLocation, id: Id): void {
    const map = this.sink?.map, locator = this.locator;
    if (map && locator) map(ino, loc, locator.packPath(loc.pack), id);
  }

  private remember(id: Id, loc: ChunkLocation): void {
    this.wholeLocs.set(id, loc);
    if (this.wholeLocs.size > WHOLE_LOCS) this.wholeLocs.delete(this.wholeLocs.keys().next().value as Id);
  }

  /**
   * Small file node `ino` (one chunk, not in memory) was looked up: the binding is handed its map
   * as soon as its chunk's location is in, nothing is decoded here, and the binding holds the
   * node's READs until then (StreamSink.pend; `mark`: a LOOKUP JS answered, the binding marks
   * the ones it answered). Its first READ came right after the LOOKUP, before the location, and
   * went to JS (fuse-needs §37). False when small files are not mapped (pend unsupported): the
   * caller reads the file whole as before.
   */
  mapLooked(f: WholeFile, ino: number, mark: boolean): boolean {
    const sink = this.sink, locator = this.locator;
    if (!this.holdsSmall || !sink || !locator || f.size === 0) return false;
    const known = this.wholeLocs.get(f.id);
    if (known && !this.inflight.has(f.id)) {
      this.mapTo(ino, known, f.id);
      return true;
    }
    if (mark) sink.pend!(ino);
    const settle = (): void => {
      const l = this.wholeLocs.get(f.id);
      if (l) this.mapTo(ino, l, f.id);
      else sink.unpend!(ino);
    };
    // A directory's batch locating it already: its locations are remembered before this runs.
    const p = this.locating.get(f.id);
    if (p) {
      void p.then(settle, settle);
      return true;
    }
    // Being decoded by the pool (a directory's batch): its READs wait for those bytes (offered by
    // the decode thread: the binding answers its held READs from them) rather than have the read
    // threads decode it a second time; the map after, for when the offered bytes are gone.
    const q = this.inflight.get(f.id);
    if (q) {
      void q.then(settle, settle);
      return true;
    }
    locator.locate([f.id]).then((locs) => {
      const l = locs[0];
      if (l && l.plain === f.size && pooled(l)) this.remember(f.id, l);
      settle();
    }, settle);
    return true;
  }

  /** Small files are mapped and their READs held for their maps in the binding (mapLooked). */
  get holdsSmall(): boolean {
    return !!(this.sink?.map && this.sink.pend && this.sink.unpend && this.locator);
  }

  /** The binding marks no more lookups pending (StreamSink.holdOff: a walk by name). */
  holdNoMore(): void {
    if (this.held) return;
    this.held = true;
    this.sink?.holdOff?.();
  }
  private held = false;

  /** Node `ino`'s READs the binding may hold for a map go to JS (StreamSink.unpend). */
  unpend(ino: number): void {
    this.sink?.unpend?.(ino);
  }

  /** The maps of small files whose nodes are known before they are looked up (a program's
   * libraries of one chunk, whose records the mount loads before `mounted`: Inodes.preloadFiles;
   * a listing's files: Inodes.mapListed), handed now: their chunk locations in one database
   * call. */
  async mapWholeAhead(files: readonly { id: Id; size: number; ino: number }[], mark = false): Promise<void> {
    const sink = this.sink, locator = this.locator;
    if (!this.holdsSmall || !sink || !locator || files.length === 0) return;
    const todo: typeof files[number][] = [];
    for (const f of files) {
      const l = this.wholeLocs.get(f.id);
      if (l) this.mapTo(f.ino, l, f.id);
      else {
        todo.push(f);
        // `mark`: the kernel knows the node already (a listing's entry): its READs wait for this.
        if (mark) sink.pend!(f.ino);
      }
    }
    if (todo.length === 0) return;
    const locs = await locator.locate(todo.map((f) => f.id)).catch(() => undefined);
    todo.forEach((f, k) => {
      const l = locs?.[k];
      if (!l || l.plain !== f.size || !pooled(l)) return void (mark && sink.unpend!(f.ino));
      this.remember(f.id, l);
      this.mapTo(f.ino, l, f.id);
    });
  }

  /** Lets go of a decoded chunk (one read for a look at it, not for a reader). */
  drop(id: Id): void {
    this.lru.delete(id);
  }

  /** The whole content of `f` if it is one chunk, else undefined (read it through its record). */
  wholeOf(f: WholeFile): Promise<Buffer | undefined> {
    if (f.size === 0) return Promise.resolve(Buffer.alloc(0));
    if (f.ino !== undefined) this.mapWhole(f, f.ino);
    const hit = this.lru.get(f.id);
    if (hit) return Promise.resolve(hit.length === f.size ? hit : undefined);
    let p = this.inflight.get(f.id) ?? this.locating.get(f.id);
    if (!p) {
      this.loadWhole([f], undefined, true);
      p = this.locating.get(f.id);
      if (!p) return Promise.resolve(undefined);
    }
    return p.then((b) => (b && b.length === f.size ? b : undefined));
  }

  /**
   * Starts reading several small files whole (a directory's, when a reader starts on it): their
   * chunk locations in one database call, then the chunks of each pack in offset order, read in
   * spans (one pread for neighbours) and decoded and verified on the pool. `onReady` hears of
   * each file whose bytes are in the cache; files that are not one chunk are skipped (undefined
   * from wholeOf). `inline`: decode on this thread (one file someone waits for: not behind a
   * directory's batch on the pool). A file with `ino` decoded on the pool is offered to the
   * binding by the decode thread (fuse3 mounts) and its bytes do not come back: onReady hears
   * `offered` (its node) and an empty buffer, and wholeOf of it says undefined.
   */
  loadWhole(files: readonly WholeFile[], onReady?: (id: Id, b: Buffer, offered?: number) => void, inline = false): void {
    const locator = this.locator;
    if (!locator) return;
    const todo: WholeFile[] = [];
    const seen = new Set<Id>();
    for (const f of files) {
      if (f.size === 0 || seen.has(f.id) || this.lru.get(f.id) || this.inflight.has(f.id) || this.locating.has(f.id)) continue;
      seen.add(f.id);
      todo.push(f);
    }
    if (todo.length === 0) return;
    const located = locator.locate(todo.map((f) => f.id)).catch(() => undefined);
    // Registered first, so it runs (and registers the chunks' fetches) before the waiters below.
    void located.then((locs) => {
      const byPack = new Map<number, { p: Pending; loc: ChunkLocation }[]>();
      // Not in a walk by name (holdNoMore): its batches' files are offered, and a map call per
      // file cost its JS thread ~1 s in a cold read of every file.
      const mapping = this.mapsWhole;
      todo.forEach((f, k) => {
        this.locating.delete(f.id);
        const loc = locs?.[k];
        // Where the file's one chunk lies, for READs of its node that reach the binding before
        // its bytes are offered (a READ on its way while this thread is busy).
        if (mapping && loc && loc.plain === f.size && pooled(loc)) {
          this.remember(f.id, loc);
          if (f.ino !== undefined) this.mapTo(f.ino, loc, f.id);
        }
        if (!loc || loc.plain !== f.size || this.inflight.has(f.id) || this.lru.get(f.id)) return;
        const d = this.pending(f.id, f.size, f.id);
        if (onReady) d.promise.then((b) => onReady(f.id, b, b === OFFERED ? f.ino : undefined), () => {});
        if (inline || !pooled(loc) || (loc.frame && this.storeFrames.has(`${loc.pack}.${loc.offset}`))) {
          this.readAt(locator, loc, d.pending);
          return;
        }
        if (f.ino !== undefined && this.sink) d.pending.ready = f.ino;
        let l = byPack.get(loc.pack);
        if (!l) byPack.set(loc.pack, (l = []));
        l.push({ p: d.pending, loc });
      });
      for (const [pack, l] of byPack) this.decodeSpans(locator.packPath(pack), l);
    });
    for (const f of todo) {
      const w = located.then(() => this.lru.get(f.id) ?? this.inflight.get(f.id));
      w.catch(() => {});
      this.locating.set(f.id, w);
    }
  }

  /** A chunk read by the store on this thread: on any failure ask the store again (gc may have
   * moved the chunk; a real corruption fails there too and becomes EIO). */
  private readAt(locator: ChunkLocator, loc: ChunkLocation, p: Pending): void {
    if (loc.frame) {
      const key = `${loc.pack}.${loc.offset}`;
      this.storeFrames.delete(key);
      this.storeFrames.add(key);
      if (this.storeFrames.size > 16) this.storeFrames.delete(this.storeFrames.values().next().value as string);
    }
    locator.readAt(p.id, loc).then(p.resolve, () => this.viaSource(p));
  }

  /** Decodes chunks of one pack on the pool, in offset order, neighbours read in one pread. */
  private decodeSpans(path: string, l: { p: Pending; loc: ChunkLocation }[], share?: number): void {
    l.sort((a, b) => a.loc.offset - b.loc.offset);
    let i = 0;
    while (i < l.length) {
      const start = l[i]!.loc.offset;
      let end = start + l[i]!.loc.stored;
      let j = i + 1;
      // `share`: only a chunk that starts within it joins (a span per decode thread).
      while (j < l.length && l[j]!.loc.offset - end <= SPAN_GAP && l[j]!.loc.offset + l[j]!.loc.stored - start <= SPAN_BYTES && (share === undefined || l[j]!.loc.offset - start < share)) {
        end = Math.max(end, l[j]!.loc.offset + l[j]!.loc.stored);
        j++;
      }
      const batch = l.slice(i, j).map(({ p, loc }) => ({ p, it: { id: p.id, path, offset: loc.offset, stored: loc.stored, plain: loc.plain, flags: loc.flags, frame: loc.frame, sink: this.promised(p), ready: this.readyOf(p) } }));
      this.decode(batch, batch.length > 1 ? { path, offset: start, length: end - start } : undefined);
      i = j;
    }
  }

  /** A stream's chunk on its way to the pool: its READs may wait for it in the binding, whom a
   * decode thread offers it to. */
  private promised(p: Pending): DecodeItem['sink'] {
    const s = p.sink, sink = this.sink;
    return s && sink ? { h: sink.handle, ino: s.ino, at: s.at } : undefined;
  }

  private readyOf(p: Pending): DecodeItem['ready'] {
    return p.ready !== undefined && this.sink ? { h: this.sink.handle, ino: p.ready } : undefined;
  }

  /**
   * A READ [pos, pos + len) through node `ino` of a file of several chunks, handed to the binding's
   * chunk map of that node (StreamSink.mapFile), made first once all the file's chunk locations
   * are in: the binding's read threads answer it and every later READ of the node that reaches
   * the binding, without JS (pread, zstd, BLAKE3 against each chunk's id, reply). False when it
   * is JS's (no map support, a chunk that is a delta or not located, a map that failed: a damaged
   * chunk is then JS's EIO); `fallback` answers it the JS way when that turns out only after the
   * locations came in.
   */
  mapRead(f: OpenFile, slot: number, ino: number, pos: number, len: number, fallback: () => void): boolean {
    const sink = this.sink, locator = this.locator;
    const chunks = f.rec.chunks;
    if (!sink?.mapFile || !sink.mapRead || !locator || chunks.length <= 1 || f.mapped === false) return false;
    if (f.mapped === ino) {
      const r = sink.mapRead(slot, ino, len, pos);
      if (r !== 0) return r === 1;
      // Its map left the binding (the kernel forgot the node, or older maps made room): again.
      f.mapped = undefined;
    }
    void this.locsOf(f, locator, chunks.length).then((locs) => {
      try {
        if (f.mapped === undefined || (f.mapped !== false && f.mapped !== ino)) this.mapWith(f, ino, locs);
        if (f.mapped === ino && sink.mapRead!(slot, ino, len, pos) === 1) return;
      } catch {
        f.mapped = false;
      }
      fallback();
    }, fallback);
    return true;
  }

  /** Hands the binding the chunk map of file `f` for node `ino` now, its chunks located already
   * (`locs`): a program's libraries, whose records and locations the mount loads before it says
   * `mounted` (Inodes.preloadFiles), so even their first READ is answered without JS. */
  mapAhead(f: OpenFile, ino: number, locs: readonly (ChunkLocation | undefined)[] | undefined): void {
    if (this.sink?.mapFile && this.sink.mapRead && f.rec.chunks.length > 1 && f.mapped === undefined) this.mapWith(f, ino, locs);
  }

  private mapWith(f: OpenFile, ino: number, locs: readonly (ChunkLocation | undefined)[] | undefined): void {
    const sink = this.sink, locator = this.locator;
    const chunks = f.rec.chunks;
    if (!sink?.mapFile || !locator) return;
    const all: { id: Id; loc: ChunkLocation; path: string }[] = [];
    // One path per pack (a large file's chunks are mostly in one or two).
    let pack = -1, path = '';
    for (let i = 0; i < chunks.length; i++) {
      const loc = locs?.[i];
      if (!loc || loc.plain !== chunks[i]!.length || !pooled(loc)) break;
      if (loc.pack !== pack) path = locator.packPath((pack = loc.pack));
      all.push({ id: chunks[i]!.id, loc, path });
    }
    f.mapped = all.length === chunks.length && sink.mapFile(ino, f.rec.size, all) ? ino : false;
  }

  /**
   * A READ [pos, pos + len) through node `ino` of a large file read in order: its chunks (and the
   * readahead) are started for the binding's stream table, and the READ is left to it (answered
   * or waiting there: `sink.wait`). False when it is JS's to answer (no table, a small file, a
   * chunk that failed before: the ordinary path answers it, EIO for that chunk).
   */
  streamRead(f: OpenFile, slot: number, ino: number, pos: number, len: number): boolean {
    const sink = this.sink;
    const size = f.rec.size;
    if (!sink || !this.locator || f.rec.chunks.length <= 1 || pos >= size || len <= 0) return false;
    f.ino = ino;
    const chunks = f.rec.chunks;
    const { lo, hi, end } = chunkSpan(f.starts, chunks.length, size, pos, len);
    for (let i = lo; i < hi; i++) if (this.failed.has(chunks[i]!.id)) return false;
    this.start(f, lo, hi);
    this.aheadOf(f, pos, end, hi - 1);
    // Chunks of this READ that JS holds or is fetching for itself (a sibling's first chunk fetched
    // ahead, a chunk decoded before the file was a stream) go to the table too.
    for (let i = lo; i < hi; i++) {
      const c = chunks[i]!, at = f.starts[i]!, e = at + c.length;
      const b = this.lru.get(c.id);
      if (b) sink.settle(ino, at, e, b);
      else if (!this.offering.has(c.id)) {
        const p = this.inflight.get(c.id);
        if (!p) continue;
        sink.promise(ino, size, at, e, this.low);
        p.then((got) => sink.settle(ino, at, e, got === OFFERED ? undefined : got), () => sink.settle(ino, at, e));
      }
    }
    return sink.wait(slot, ino, len, pos);
  }

  /** A READ [pos, pos + len) of `f` the binding answered from its stream table (OP.STREAMED):
   * the readahead moves on as if it had reached JS. */
  progress(f: OpenFile, pos: number, len: number): void {
    const size = f.rec.size;
    const end = Math.min(size, pos + len);
    if (pos >= size || end <= f.next) return;
    f.next = end;
    this.extend(f, end, chunkAt(f.starts, f.rec.chunks.length, end - 1));
  }

  /** Starts readahead when a read [pos, end) of `f` continues the previous one. */
  private aheadOf(f: OpenFile, pos: number, end: number, last: number): void {
    // The binding tells JS only of some READs it answered (StreamSink.promise's low water), so a
    // READ inside the readahead started past f.next is sequential too.
    const sequential = pos === 0 || pos === f.next || (pos > f.next && f.ahead >= 0 && pos <= f.starts[f.ahead]!);
    f.next = end;
    if (sequential) this.extend(f, end, last);
  }

  private extend(f: OpenFile, end: number, last: number): void {
    // Only where chunks are decoded by the pool: through a plain source (a remote or layered
    // store) fetching ahead would be that store's own policy to make.
    if (this.readahead === 0 || !this.locator) return;
    const n = f.rec.chunks.length;
    if (last + 1 >= n) return;
    // A file up to WHOLE_AHEAD is fetched whole from its first read: a program's libraries are
    // read by page faults at scattered offsets (python3.11: 11 READs over ~0.5 s covering 5.7 of
    // its 6.8 MB, each a few chunks decoded in turn while the program waited); all its chunks
    // started at once are decoded on both threads while it runs.
    const target = f.rec.size <= this.wholeAhead ? f.rec.size : Math.min(f.rec.size, end + this.readahead);
    let to = last + 1;
    while (to < n && f.starts[to]! < target) to++;
    const from = Math.max(last + 1, f.ahead + 1);
    if (to - 1 <= f.ahead || from >= to) return;
    f.ahead = to - 1;
    // A file fetched whole: its tail first (see TAIL_PART), then the rest in order. Both go to the
    // pool in this order (both wait for the same location lookup, f.locs).
    const t = f.rec.size <= this.wholeAhead ? Math.max(from, chunkAt(f.starts, n, Math.max(0, f.rec.size - Math.ceil(f.rec.size / TAIL_PART) - TAIL_AROUND))) : from;
    if (t > from) this.start(f, t, to, true);
    this.start(f, from, t > from ? t : to, true);
  }

  /** Looks up the chunk locations of several files in one database call (a directory's files,
   * before they are read: a cold read of a small file then waits only for the decode). */
  locateAll(files: readonly OpenFile[]): void {
    const locator = this.locator;
    if (!locator) return;
    const todo = files.filter((f) => f.locs === undefined && f.rec.chunks.length > 0);
    if (todo.length === 0) return;
    const ids: Id[] = [];
    for (const f of todo) for (const c of f.rec.chunks) ids.push(c.id);
    const all = locator.locate(ids).catch(() => undefined);
    let at = 0;
    for (const f of todo) {
      const from = at, to = (at += f.rec.chunks.length);
      f.locs = all.then((l) => l?.slice(from, to));
    }
  }

  /** Starts fetching the first chunk of a file someone is likely to read next (its first read
   * then starts the readahead). */
  prefetch(f: OpenFile): void {
    // Only where chunks are local: a remote source has its own, cheaper policy (a directory's small
    // files come as one bundle); fetching siblings' first chunks here cost requests, and for a
    // big sibling the remote's whole-file fetch, for files nobody read.
    if (f.rec.chunks.length > 0 && this.locator) this.start(f, 0, 1);
  }

  /** Copies from cached chunks only: the count, or undefined when a chunk must be fetched. */
  readCached(f: OpenFile, pos: number, len: number, out: Buffer): number | undefined {
    const size = f.rec.size;
    if (pos >= size || len <= 0) return 0;
    const end = Math.min(size, pos + len);
    const lo = this.first(f, pos);
    let hi = lo;
    const chunks = f.rec.chunks;
    for (; hi < chunks.length && f.starts[hi]! < end; hi++) if (!this.lru.get(chunks[hi]!.id)) return undefined;
    this.aheadOf(f, pos, end, hi - 1);
    let n = 0;
    for (let i = lo; i < hi; i++) n += this.copyOne(f, i, this.lru.get(chunks[i]!.id)!, pos, end, out, n);
    return n;
  }

  private first(f: OpenFile, pos: number): number {
    return chunkAt(f.starts, f.rec.chunks.length, pos);
  }

  /** Copies bytes [pos, pos+len) of the file into `out`; returns the count (short at EOF). */
  async readInto(f: OpenFile, pos: number, len: number, out: Buffer): Promise<number> {
    const span = await this.fetchSpan(f, pos, len);
    if (!span) return 0;
    let n = 0;
    for (let i = 0; i < span.got.length; i++) n += this.copyOne(f, span.lo + i, span.got[i]!, pos, span.end, out, n);
    return n;
  }

  /** The chunks covering [pos, pos+len) (from the cache, a read in flight, or the store), with
   * the read-ahead of what follows started; undefined past EOF. */
  private async fetchSpan(f: OpenFile, pos: number, len: number): Promise<{ lo: number; end: number; got: Buffer[] } | undefined> {
    const size = f.rec.size;
    if (pos >= size || len <= 0) return undefined;
    const { lo, hi, end } = chunkSpan(f.starts, f.rec.chunks.length, size, pos, len);
    const chunks = f.rec.chunks;
    this.start(f, lo, hi);
    this.aheadOf(f, pos, end, hi - 1);
    const bufs: (Buffer | Promise<Buffer>)[] = [];
    for (let i = lo; i < hi; i++) {
      const id = chunks[i]!.id;
      bufs.push(this.lru.get(id) ?? this.inflight.get(id) ?? this.chunk(id, chunks[i]!.length, f.rec.id));
    }
    const got = bufs.length === 1 ? [await bufs[0]!] : await Promise.all(bufs);
    // Chunks a decode thread offered to the binding's stream table came back without bytes:
    // read through the store (verified there), not through the table.
    for (let k = 0; k < got.length; k++) if (got[k] === OFFERED) got[k] = await this.viaStore(chunks[lo + k]!.id, chunks[lo + k]!.length, f.rec.id);
    return { lo, end, got };
  }

  /**
   * A file of several chunks read whole (a mount's recall list, fs/recall.ts): every chunk
   * started at once (decoded on the pool, each checked against its id), then joined and kept in
   * the main cache under the file's id, where cachedWhole finds it: the bytes are the file's
   * content, whose BLAKE3 is that id. Undefined for a file that cannot be (no pool, a chunk
   * missing or damaged: its READs meet that on the ordinary path).
   */
  async readWhole(f: OpenFile): Promise<Buffer | undefined> {
    const size = f.rec.size;
    if (!this.locator || size === 0) return undefined;
    const hit = this.lru.get(f.rec.id);
    if (hit) return hit.length === size ? hit : undefined;
    const span = await this.fetchSpan(f, 0, size).catch(() => undefined);
    if (!span) return undefined;
    const b = span.got.length === 1 ? span.got[0]! : Buffer.concat(span.got);
    if (b.length !== size) return undefined;
    // The joined copy replaces its chunks (READs of the file are answered from it, read());
    // a chunk wanted again on its own is read and checked again.
    if (span.got.length > 1) for (const c of f.rec.chunks) this.lru.delete(c.id);
    this.lru.set(f.rec.id, b, false);
    return b;
  }

  /** Like readCached, as views of the cached chunks (no copy), or undefined. */
  cachedParts(f: OpenFile, pos: number, len: number): Buffer[] | undefined {
    const size = f.rec.size;
    if (pos >= size || len <= 0) return [];
    const { lo, hi, end } = chunkSpan(f.starts, f.rec.chunks.length, size, pos, len);
    const chunks = f.rec.chunks;
    const got: Buffer[] = [];
    for (let i = lo; i < hi; i++) {
      const b = this.lru.get(chunks[i]!.id);
      if (!b) return undefined;
      got.push(b);
    }
    this.aheadOf(f, pos, end, hi - 1);
    return this.parts(f, lo, got, pos, end);
  }

  /** Bytes [pos, pos+len) of the file as views of its chunks (short at EOF): what a READ
   * answers with one writev, without copying into one buffer. */
  async readParts(f: OpenFile, pos: number, len: number): Promise<Buffer[]> {
    const span = await this.fetchSpan(f, pos, len);
    return span ? this.parts(f, span.lo, span.got, pos, span.end) : [];
  }

  private parts(f: OpenFile, lo: number, got: Buffer[], pos: number, end: number): Buffer[] {
    const out: Buffer[] = [];
    for (let k = 0; k < got.length; k++) {
      const start = f.starts[lo + k]!;
      const b = got[k]!;
      const from = Math.max(0, pos - start), to = Math.min(b.length, end - start);
      if (to > from) out.push(from === 0 && to === b.length ? b : b.subarray(from, to));
    }
    return out;
  }

  private copyOne(f: OpenFile, i: number, b: Buffer, pos: number, end: number, out: Buffer, at: number): number {
    return copyPart(b, f.starts[i]!, pos, end, out, at);
  }
}
