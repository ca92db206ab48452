/**
 * The ingest pipeline (DESIGN §5). Main thread: walk, schedule, ask the index which chunks are
 * new, append to packs, write the index in batches. Workers: read, chunk, hash; then compress only
 * the new chunks (an update does that work in C on libuv's threads instead, ingest-c.ts, where
 * the addon can: no worker isolate). Commit order makes a crash harmless: pack bytes are synced before the index
 * batch that names them; a file record goes in the batch of its last chunk's entry or a later
 * one (recordEarly; the rest at the commit); trees, the store path record and its root go in one
 * final atomic batch after every file and chunk they name is indexed.
 *
 * The steps live in their own modules: scheduling (ingest-schedule.ts), delta bases
 * (ingest-delta.ts), pack and index writes (ingest-index.ts), trees and references
 * (ingest-trees.ts); this one runs them.
 */
import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, resolve } from 'node:path';
import type { IngestOptions, IngestResult } from './api.js';
import { ROOT_PREFIX } from './api.js';
import { MiqError, ioError, isNoSpace, noSpaceError } from './errors.js';
import type { Id } from './ids.js';
import { ARENA_BLOCK } from './codec.js';
import { DELTA_MIN, DeltaPlanner, deltaRefs, type Base } from './ingest-delta.js';
import { IndexWriter } from './ingest-index.js';
import { ScanSchedule, isSmall, type Planned } from './ingest-schedule.js';
import { buildCompleteTrees, buildTrees, resolveReferences } from './ingest-trees.js';
import { decodeHashed, hashFilesAsync } from './ingest-hash.js';
import { compressInC, compressItems, releaseInC, scanArgs, scanFiles, scanInC } from './ingest-c.js';
import type { CompressedItem, CompressItem, FrameMember, HashedFile, ScannedFile, WorkerResult, WorkerTask } from './ingest-worker.js';
import { STAT_CACHE_ON, cacheable, encodeStatEntry, statEntryHit, statKey } from './ingest-statcache.js';
import { decodeLastFile, encodeLastFile, kChunk, kFile, kLast, kMeta, kPath, kRefs, kTree, range } from './keys.js';
import type { LocalParts } from './local-parts.js';
import { encodeFileIndexRecord, encodeStorePath, storePathName, type FileRecord, type StorePathRecord } from './objects.js';
import { decodeLocation } from './pack.js';
import { poolSize, poolStarted, poolThreads, runInPool, updateThreads, warmPool } from './pool.js';
import { walkHere, walkInPool, type FileNode, type WalkResult } from './walk.js';

/** MIQ_NO_DELTA=1 turns delta compression off (benchmarks compare both). */
const DELTA_ON = process.env.MIQ_NO_DELTA !== '1';
const COMPRESS_TASK_BYTES = 8 << 20;
/** Bytes of small-file contents waiting for compression before scanning pauses. */
const COMPRESS_QUEUE_LIMIT = 64 << 20;
/** Slots of the scan's shared claim table (4 bytes each); a fuller table only means more chunks
 * take the separate compress step. */
const CLAIM_SLOTS = 1 << 20;
/** Walked files looked up in the stat cache together (one getMany each). */
const STAT_BATCH = 512;
/** Batches of stat lookups whose index reads run at once. */
const STAT_AHEAD = 4;
/** A walked file whose stat cache entry matches: the id it names, and whether it has references. */
type StatHit = { f: FileNode; id: string; hasRefs: boolean | undefined };
/** Arena blocks waiting to be reused, and how many go with one task. */
const SPARE_MAX = 16;
const SPARE_PER_TASK = 4;
/** Index bytes an ingest writes after which it turns LevelDB's log into a table (see commit). */
const FLUSH_INDEX_BYTES = 4 << 20;
/** MIQ_INGEST_TRACE=1: one line on stderr with when each phase ended (ms since start) and the
 * main thread's time in task results (benchmarks: where an ingest's wall time goes). */
const TRACE = process.env.MIQ_INGEST_TRACE === '1';
/** Files given ids since the last tree pass after which the main thread, idle between task
 * results, builds the trees that are complete (see treePass). */
const TREE_PASS_FILES = 1024;
/** Tasks on libuv's threads at once (inProcess: hash, and scan and compress when they run in
 * C): one per core; LevelDB's calls share the thread pool (4 threads unless UV_THREADPOOL_SIZE
 * says otherwise). */
const C_INFLIGHT = Math.min(availableParallelism(), 3);

interface StatKey {
  dev: number; ino: number; size: number; mtimeMs: number; ctimeMs: number; id: string;
}

type Scanned = Extract<ScannedFile, { ok: true }>;

export function defaultName(dir: string): string {
  const b = basename(resolve(dir)).replace(/[^A-Za-z0-9+._-]/g, '_').replace(/^\.+/, '');
  return (b || 'tree').slice(0, 200);
}

export async function ingestTree(store: LocalParts, dirArg: string, opts: IngestOptions): Promise<IngestResult> {
  const dir = resolve(dirArg);
  let st;
  try {
    st = await stat(dir);
  } catch (e) {
    throw ioError(e, 'cannot ingest', dir);
  }
  if (!st.isDirectory()) throw new MiqError('MIQ_BAD_INPUT', `cannot ingest ${dir}: it is not a directory`);
  const name = opts.name ?? defaultName(dir);
  storePathName(name, '0'.repeat(64) as Id); // validates the name before any work
  let hashFirst = false;
  for await (const _k of store.db.keys({ ...range('f/'), limit: 1 })) hashFirst = true;
  // An update (a store that has files) walks on this thread and hashes on libuv's threads (see
  // IngestRun.inProcess), and scans and compresses there too where the addon can (ingest-c.ts:
  // then it starts no worker at all; else its pool starts with its first scan or compress
  // task). A new store scans every file: its workers start now, while the store opens.
  const inProcess = hashFirst && hashFilesAsync !== undefined && !opts.statCache;
  if (!inProcess) warmPool(hashFirst ? updateThreads() : poolThreads());
  const run = new IngestRun(store, dir, name, opts, hashFirst, inProcess, new IndexWriter(store.db, await store.packWriter()));
  try {
    return await run.run();
  } finally {
    if (inProcess) releaseInC();
  }
}

/** One ingest: the state its steps share. */
class IngestRun {
  private readonly t0 = performance.now();
  private readonly startMs = Date.now();
  /** Whether walked files are first looked up in the stat cache (a store that has files). */
  private readonly statLookup: boolean;
  private statPending: FileNode[] = [];
  private statChain: Promise<void> = Promise.resolve();
  /** The stat lookups' index reads under way (flushStatLookups). */
  private readonly statAhead: Promise<void>[] = [];
  /** Delta bases exist only in a store that has files: into a new one no file is looked up. */
  private readonly deltaOn: boolean;
  private readonly db;
  private readonly keepSmall: number;
  private readonly statCache: Map<string, StatKey> | undefined;
  private readonly schedule: ScanSchedule<FileNode>;
  private readonly delta: DeltaPlanner;
  /** Into a new store nearly every chunk is new: the scan compresses each chunk the first time
   * any worker meets it (a shared claim table), so its bytes are not read, hashed and sent again. */
  private readonly claims: Int32Array | undefined;
  private readonly rootLen: number;
  private chunkCount = 0;
  private doneFiles = 0;
  private doneBytes = 0;
  private filesSeen = 0;
  private bytesSeen = 0;
  private readonly seen = new Set<string>();
  /** Chunks this ingest will store whose index entries are not yet queued (their append's
   * `queued` has not run): a file record naming one must wait (see recordEarly). */
  private readonly unindexed = new Set<string>();
  /** File ids whose record (and references) went into the index during the scan. */
  private readonly recorded = new Set<string>();
  /** Files whose stat-cache entry went into the index during the scan. */
  private readonly statWritten = new Set<FileNode>();
  private readonly newFiles = new Map<string, FileRecord>();
  private readonly fileRefs = new Map<string, string[]>();
  private readonly refCandidates = new Set<string>();
  private failure: MiqError | undefined;
  private walked: WalkResult | undefined;
  private walkDone: boolean;
  private wake: (() => void) | undefined;
  private lastProgress = 0;
  private readonly compressQueue: { task: WorkerTask; bytes: number }[] = [];
  /**
   * Into a new store: chunks a scan result names whose body another worker's claim holds (its
   * result not in yet). They were compressed again, from the file, when the other result came
   * later; its copy then stayed in the pack as dead bytes inside a shared frame (the small
   * corpus's release N: packs varied 133.15-133.34 MB between runs, once 5.8 MB more under load).
   * Now the body is taken from the claimant's result; what no result brought (another id with
   * the same 32 claim bits) is compressed from the file once the scans are done (queueAwaited).
   * Each is in `seen` and `unindexed` meanwhile, so no file record names it before its entry.
   */
  private readonly awaited = new Map<string, { path: Buffer; offset: number; length: number }>();
  private awaitedTaken = 0;
  private awaitedLate = 0;
  private compressQueuedBytes = 0;
  /** Trees built so far (treePass during the tasks, the rest at the commit), and which of them
   * the store already holds (looked up as they were built; a store without files holds none). */
  private readonly treeBytes = new Map<Id, Buffer>();
  private readonly treeHave = new Set<Id>();
  private treeChain: Promise<void> = Promise.resolve();
  private treePassFiles = 0;
  private treePassOff = false;
  private treeError: unknown;

  /** Tasks running on libuv's threads (inProcess), and who waits for one to end. */
  private cInflight = 0;
  private cFreed: (() => void) | undefined;
  /** An update's scan and compress tasks run in C on libuv's threads too (ingest-c.ts), so an
   * update whose addon has them starts no worker; a new store's scan (which also compresses)
   * stays in the workers. */
  private readonly cScan: boolean;
  private readonly cCompress: boolean;
  private scanArgsC: Float64Array | undefined;

  /**
   * @param inProcess the walk runs on this thread (walkHere) and the hash pass on libuv's threads
   * (hashFilesAsync), so the workers' isolates (each one's start, module loading, JIT and heap)
   * are paid only once something needs scanning or compressing. Measured first on the small
   * corpus (2026-12-04, load ~6, .notes/store-interface.md): the walk and hashes of 18.8k known
   * files at new inodes without any worker 2.0 s of CPU against 2.94 s with the pool.
   */
  constructor(private readonly store: LocalParts, private readonly dir: string, private readonly name: string, private readonly opts: IngestOptions, private readonly hashFirst: boolean, private readonly inProcess: boolean, private readonly index: IndexWriter) {
    this.db = store.db;
    this.keepSmall = Math.min(64 * 1024, store.params.min);
    this.statCache = opts.statCache as Map<string, StatKey> | undefined;
    // With a stat cache (--watch) the walk finishes first so unchanged files are never queued.
    this.walkDone = this.statCache !== undefined;
    this.statLookup = hashFirst && STAT_CACHE_ON && this.statCache === undefined;
    this.cScan = inProcess && scanInC();
    this.cCompress = inProcess && compressInC();
    this.deltaOn = DELTA_ON && hashFirst;
    this.schedule = new ScanSchedule<FileNode>(hashFirst);
    this.claims = hashFirst || process.env.MIQ_NO_SCAN_COMPRESS === '1' ? undefined : new Int32Array(new SharedArrayBuffer(4 * CLAIM_SLOTS));
    this.rootLen = Buffer.byteLength(dir) + 1;
    this.delta = new DeltaPlanner({
      locations: async (ids) => (await this.db.getMany(ids.map(kChunk))).map((v) => (v === undefined ? undefined : decodeLocation(v))),
      lastFileAt: async (key) => decodeLastFile(await this.db.get(key)),
      getFile: (id) => store.objects.getFile(id),
    });
  }

  private readonly trace: Record<string, number> = {};
  /** MIQ_INGEST_TRACE: how many files, bytes and tasks went which way. */
  private readonly counts: Record<string, number> = {};

  private count(what: string, n = 1): void {
    if (TRACE) this.counts[what] = (this.counts[what] ?? 0) + n;
  }

  private mark(phase: string): void {
    if (TRACE) this.trace[phase] = Math.round(performance.now() - this.t0);
  }

  async run(): Promise<IngestResult> {
    // With a stat cache the walk completes first; else reading starts while it goes on.
    const walkP = this.statCache ? this.walkWithCache(this.statCache) : this.streamWalk();
    if (TRACE) void walkP.then(() => this.mark('walk'));
    if (this.statCache) await walkP;
    await this.runTasks();
    this.mark('tasks');
    await walkP;
    await this.index.settled();
    if (this.failure) {
      // Chunks already indexed stay as unreferenced garbage for gc; no file, tree or path names
      // them. The rest is cut off the pack (see IndexWriter.abandon).
      await this.index.abandon().catch(() => {});
      throw this.failure;
    }
    this.opts.onProgress?.({ phase: 'commit', files: this.doneFiles, bytes: this.doneBytes, totalFiles: this.walked?.files.length, totalBytes: this.walked?.bytes, newBytes: this.index.newBytes });
    try {
      await this.index.flush();
    } catch (e) {
      await this.index.abandon().catch(() => {});
      throw isNoSpace(e) ? noSpaceError(e, this.store.dir, 'writing the index') : e;
    }
    this.mark('flush');
    const r = await this.commit(this.walked!);
    this.mark('commit');
    if (TRACE) process.stderr.write(`miq-ingest-trace ${JSON.stringify({ ...this.trace, resultMs: Math.round(this.resultMs), taskCount: this.taskCount, awaitedTaken: this.awaitedTaken, awaitedLate: this.awaitedLate, commitOps: this.commitOps, t0: Math.round(this.t0), ...this.counts })}\n`);
    return r;
  }

  private resultMs = 0;
  private commitOps = 0;
  private taskCount = 0;

  private progress(force = false): void {
    if (!this.opts.onProgress) return;
    const now = performance.now();
    if (!force && now - this.lastProgress < 100) return;
    this.lastProgress = now;
    this.opts.onProgress({ phase: this.walked ? 'store' : 'scan', files: this.doneFiles, bytes: this.doneBytes, totalFiles: this.walked?.files.length ?? this.filesSeen, totalBytes: this.walked?.bytes ?? this.bytesSeen, newBytes: this.index.newBytes });
  }

  private queueFile(f: FileNode): void {
    this.schedule.add(f);
    const wk = this.wake;
    this.wake = undefined;
    wk?.();
  }

  /** Queues files as the walk finds them (the workers would idle through the walk otherwise). */
  private streamWalk(): Promise<void> {
    return (this.inProcess ? walkHere : walkInPool)(this.dir, this.opts.lenient ?? false, (f) => {
      if (TRACE && this.filesSeen === 0) this.mark('walk1');
      this.filesSeen++;
      this.bytesSeen += f.size;
      if (!this.statLookup) return this.queueFile(f);
      this.statPending.push(f);
      if (this.statPending.length >= STAT_BATCH) this.flushStatLookups();
    }).then(
      (r) => { this.walked = r; },
      (e: unknown) => { this.failure ??= e instanceof MiqError ? e : new MiqError('MIQ_IO', `cannot walk ${this.dir}: ${(e as Error).message}`, { cause: e }); },
    ).finally(async () => {
      this.flushStatLookups();
      await this.statChain;
      this.walkDone = true;
      const wk = this.wake;
      this.wake = undefined;
      wk?.();
    });
  }

  /** Starts the index reads of the files waiting for their stat lookup at once; what they find is
   * applied in the walk's order (the order files are queued in decides the tasks and frames). */
  private flushStatLookups(): void {
    if (this.statPending.length === 0) return;
    const batch = this.statPending;
    this.statPending = [];
    // At most STAT_AHEAD batches' reads at once (the hash tasks share libuv's threads with them).
    const prior = this.statAhead.length >= STAT_AHEAD ? this.statAhead.shift()! : undefined;
    const found = prior ? prior.then(() => this.findStats(batch)) : this.findStats(batch);
    // Handled once the chain gets to it (a rejection before then would count as unhandled).
    const settled = found.then(() => {}, () => {});
    this.statAhead.push(settled);
    this.statChain = this.statChain.then(async () => this.applyStats(await found)).catch((e: unknown) => {
      this.failure ??= e instanceof MiqError ? e : new MiqError('MIQ_IO', `cannot read the index: ${(e as Error).message}`, { cause: e });
    });
  }

  /** One batch's index reads: the files whose stat cache entry still matches (`cand`, with
   * whether the store has the record it names) and the others (`misses`). Batches' reads overlap:
   * chained, each batch's two round trips through the index waited for the one before (with the
   * walk off the main thread the stat lookups were what the first changed file waited for). */
  private async findStats(files: FileNode[]): Promise<{ misses: FileNode[]; cand: StatHit[]; have: (Buffer | undefined)[] }> {
    const got = await this.db.getMany(files.map((f) => statKey(f.stat)));
    if (TRACE && this.trace.stat1 === undefined) this.mark('stat1');
    const misses: FileNode[] = [];
    const cand: StatHit[] = [];
    files.forEach((f, i) => {
      const hit = statEntryHit(got[i], f.stat);
      if (hit) cand.push({ f, id: hit.id, hasRefs: hit.hasRefs });
      else misses.push(f);
    });
    const have = cand.length === 0 ? [] : await this.db.getMany(cand.map((c) => kFile(c.id)));
    return { misses, cand, have };
  }

  /** Files whose stat cache entry still matches and whose record the store has keep their id
   * unread; the others are queued. */
  private async applyStats({ misses, cand, have }: Awaited<ReturnType<IngestRun['findStats']>>): Promise<void> {
    for (const f of misses) this.queueFile(f);
    const withRefs: string[] = [];
    cand.forEach(({ f, id, hasRefs }, i) => {
      if (have[i] === undefined) return this.queueFile(f);
      f.id = id;
      f.statHit = true;
      this.count('statHits');
      // An entry that says "no references" spares the `r/` lookup.
      if (hasRefs !== false) withRefs.push(id);
      this.markDone(f);
    });
    this.count('refLookups', withRefs.length);
    await this.addKnownRefs(withRefs);
    this.progress();
  }

  /** The whole walk first; files whose (dev, ino, size, mtime, ctime) did not change keep their
   * id and are never queued. */
  private async walkWithCache(statCache: Map<string, StatKey>): Promise<void> {
    const w = (this.walked = await walkInPool(this.dir, this.opts.lenient ?? false));
    for (const f of w.files) {
      const hit = statCache.get(f.path.toString('latin1'));
      if (hit && hit.dev === f.stat.dev && hit.ino === f.stat.ino && hit.size === f.stat.size && hit.mtimeMs === f.stat.mtimeMs && hit.ctimeMs === f.stat.ctimeMs && (await this.db.get(kFile(hit.id))) !== undefined) {
        f.id = hit.id;
        this.doneFiles++;
        this.doneBytes += f.size;
      } else {
        this.queueFile(f);
      }
    }
    await this.addKnownRefs(w.files.filter((f) => f.id !== undefined).map((f) => f.id!));
  }

  private taskOf(p: Planned<FileNode>): WorkerTask {
    const files = p.files.map((f) => ({ path: f.path, size: f.size }));
    if (p.kind === 'hash') return { type: 'hash', files };
    return { type: 'scan', files, params: this.store.params, keepSmall: this.keepSmall, ...(this.claims ? { claims: this.claims } : {}) };
  }

  /** Arena buffers of results whose bodies are in the pack, handed back to the workers with the
   * next tasks that make bodies (ingest-worker.ts `spares`). */
  private readonly spare: ArrayBuffer[] = [];

  private recycle(items: readonly CompressedItem[]): void {
    for (const it of items) {
      const b = it.body.buffer as ArrayBuffer;
      if (b.byteLength === ARENA_BLOCK && this.spare.length < SPARE_MAX && !this.spare.includes(b)) this.spare.push(b);
    }
  }

  private async runTask(task: WorkerTask, files?: FileNode[], bytes = 0): Promise<void> {
    try {
      let transferList: ArrayBuffer[] | undefined;
      const here = this.inC(task);
      if (!here && (task.type === 'compress' || (task.type === 'scan' && task.claims)) && this.spare.length > 0) {
        task.spare = transferList = this.spare.splice(0, SPARE_PER_TASK);
      }
      const t1 = TRACE ? performance.now() : 0;
      const res = here ? await this.runHere(task) : await runInPool(task, transferList ? { transferList } : {});
      const t = TRACE ? performance.now() : 0;
      if (TRACE) {
        this.count(`${task.type}Tasks`);
        this.count(`${task.type}Ms`, Math.round(t - t1));
        if (task.type === 'scan' || task.type === 'hash') this.count(`${task.type}Files`, task.files.length);
        if (task.type === 'scan' || task.type === 'hash') this.count(`${task.type}MB`, task.files.reduce((a, f) => a + f.size, 0) / 1e6);
        if (task.type === 'compress') this.count('compressItems', task.items.length);
        if (task.type === 'compress') this.count('deltaItems', task.items.filter((i) => i.refs).length);
      }
      if (TRACE && this.taskCount === 0) this.mark('first');
      this.taskCount++;
      if (res.type === 'error') throw MiqError.fromJSON(res.error as never);
      if (res.type === 'scanned') await this.onScanned(files!, res.files, res.bodies ?? [], res.elsewhere);
      else if (res.type === 'hashed') await this.onHashed(files!, res.files);
      else if (res.type === 'compressed') await this.onCompressed(res);
      if (TRACE) this.resultMs += performance.now() - t;
    } catch (e) {
      this.failure ??= e instanceof MiqError ? e : isNoSpace(e) ? noSpaceError(e, this.store.dir, 'ingesting') : new MiqError('MIQ_IO', `ingest failed: ${(e as Error).message}`, { cause: e });
    } finally {
      this.compressQueuedBytes -= bytes;
    }
  }

  /** Whether `task` runs on libuv's threads (C) rather than in a worker. */
  private inC(task: WorkerTask): boolean {
    if (!this.inProcess) return false;
    return task.type === 'hash' || (task.type === 'scan' && this.cScan && !task.claims) || (task.type === 'compress' && this.cCompress);
  }

  /** `work` counted as one of the C_INFLIGHT tasks on libuv's threads. */
  private async inSlot<T>(work: () => Promise<T>): Promise<T> {
    this.cInflight++;
    try {
      return await work();
    } finally {
      this.cInflight--;
      const w = this.cFreed;
      this.cFreed = undefined;
      w?.();
    }
  }

  /**
   * A task on libuv's threads: a hash (hashFilesAsync), scan or compress task (ingest-c.ts).
   * What the C code gives back (a file that cannot be opened, changed, …) goes to a worker's
   * task of the same kind, which makes its error as before: the files given back of a hash or
   * scan task, a whole compress task.
   */
  private async runHere(task: WorkerTask): Promise<WorkerResult> {
    if (task.type === 'compress') {
      const items = await this.inSlot(() => compressItems(task.items, task.packDir, task.bases));
      return items ? { type: 'compressed', items } : runInPool(task);
    }
    if (task.type === 'scan') {
      const args = (this.scanArgsC ??= scanArgs(task.params, task.keepSmall));
      const got = await this.inSlot(() => scanFiles(task.files, args));
      const back = task.files.filter((_f, i) => got[i] === undefined);
      if (back.length === 0) return { type: 'scanned', files: got as ScannedFile[] };
      const res = await runInPool({ ...task, files: back });
      if (res.type !== 'scanned') return res;
      let k = 0;
      return { type: 'scanned', files: got.map((r) => r ?? res.files[k++]!) };
    }
    if (task.type !== 'hash') return runInPool(task);
    const files = task.files;
    let got: (HashedFile | undefined)[] = decodeHashed(files, await this.inSlot(() => hashFilesAsync!(files)));
    const back = files.filter((_f, i) => got[i] === undefined);
    if (back.length > 0) {
      const res = await runInPool({ type: 'hash', files: back });
      if (res.type !== 'hashed') return res;
      let k = 0;
      got = got.map((r) => r ?? res.files[k++]);
    }
    return { type: 'hashed', files: got as HashedFile[] };
  }

  /** Keeps the workers busy: compress tasks first (they free memory), then scans. */
  private async runTasks(): Promise<void> {
    const inflight = new Set<Promise<void>>();
    const maxInflight = poolThreads() * 2;
    // The pool's own size, held once (updateThreads() here re-read the environment every turn).
    const workers = poolSize();
    for (;;) {
      if (this.failure) break;
      let p: Promise<void> | undefined;
      // Tasks on libuv's threads one per core at most: the index's lookups share them.
      const cFull = this.inProcess && this.cInflight >= C_INFLIGHT;
      const c = cFull && this.cCompress ? undefined : this.compressQueue.shift();
      if (c) {
        p = this.runTask(c.task, undefined, c.bytes);
      } else if (this.compressQueuedBytes < COMPRESS_QUEUE_LIMIT && !(cFull && this.cScan)) {
        const s = this.schedule.next(this.walkDone, cFull);
        if (TRACE && s && this.trace.task1 === undefined) this.mark('task1');
        if (s) p = this.runTask(this.taskOf(s), s.files);
      }
      if (!p) {
        // Nothing to hand out and a worker idle too (the tail of compress tasks): the main
        // thread's time is free for the trees. Passes whenever the main thread waited (every
        // worker busy) delayed the workers' next tasks by about what they saved at the commit
        // (small N+1, 8 alternations under SCHED_FIFO: faster in 3).
        if (inflight.size < workers) this.treePass();
        const more = this.walkDone ? undefined : new Promise<void>((r) => { this.wake = r; });
        // A task waiting for a slot on libuv's threads goes as soon as one is free.
        const freed = cFull && (this.compressQueue.length > 0 || this.cScan) ? new Promise<void>((r) => { this.cFreed = r; }) : undefined;
        if (inflight.size === 0 && !more) {
          // No scan result can come any more: what was awaited from one is compressed here.
          if (this.awaited.size > 0) {
            this.queueAwaited();
            continue;
          }
          break;
        }
        await Promise.race([...inflight, ...(more ? [more] : []), ...(freed ? [freed] : [])]);
        continue;
      }
      const tracked: Promise<void> = p.finally(() => inflight.delete(tracked));
      inflight.add(tracked);
      if (inflight.size >= maxInflight) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    if (TRACE) this.counts.workers = poolStarted();
  }

  /**
   * The trees whose files all have ids, built while workers finish their last tasks rather than
   * in the commit's serial tail (small corpus release N+1: buildTrees 110-170 ms for 4.5k trees,
   * and their t/ lookups, after the last task; the tail from the last task to the commit 112 ->
   * 42 ms, median of 10 alternations). Only after the walk (the skeleton is whole) and every
   * TREE_PASS_FILES files given ids or once all have one, so a pass finds enough to build. A
   * tree that cannot be encoded stops the passes: the commit's buildTrees meets it and throws.
   */
  private treePass(): void {
    const w = this.walked;
    if (!w || !this.walkDone || this.treePassOff || this.failure) return;
    if (this.doneFiles - this.treePassFiles < TREE_PASS_FILES && this.doneFiles < w.files.length) return;
    if (w.root.id !== undefined) return;
    this.treePassFiles = this.doneFiles;
    const before = this.treeBytes.size;
    try {
      buildCompleteTrees(w.root, this.treeBytes);
    } catch {
      this.treePassOff = true;
      return;
    }
    this.count('treePasses');
    if (!this.hashFirst || this.treeBytes.size === before) return;
    const ids = [...this.treeBytes.keys()].slice(before);
    this.treeChain = this.treeChain.then(async () => {
      const got = await this.db.getMany(ids.map(kTree));
      ids.forEach((id, i) => { if (got[i] !== undefined) this.treeHave.add(id); });
    }).catch((e: unknown) => { this.treeError ??= e; });
  }

  private async addKnownRefs(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const got = await this.db.getMany(ids.map(kRefs));
    for (const v of got) if (v !== undefined) for (const h of v.toString('latin1').split('\n')) if (h) this.refCandidates.add(h);
  }

  private markDone(f: FileNode): void {
    this.doneFiles++;
    this.doneBytes += f.size;
    this.statCache?.set(f.path.toString('latin1'), { dev: f.stat.dev, ino: f.stat.ino, size: f.stat.size, mtimeMs: f.stat.mtimeMs, ctimeMs: f.stat.ctimeMs, id: f.id! });
  }

  private async onHashed(files: FileNode[], results: HashedFile[]): Promise<void> {
    results.forEach((r) => { if (!r.ok) throw MiqError.fromJSON(r.error as never); });
    const ok = results as Extract<HashedFile, { ok: true }>[];
    const known = await this.db.getMany(ok.map((r) => kFile(r.id)));
    const knownIds: string[] = [];
    let bytes = 0, knownBytes = 0, small = 0, knownSmall = 0;
    files.forEach((f, i) => {
      const isKnown = known[i] !== undefined;
      if (isSmall(f)) {
        small++;
        if (isKnown) knownSmall++;
      } else {
        bytes += f.size;
        if (isKnown) knownBytes += f.size;
      }
      if (isKnown) {
        const r = ok[i]!;
        f.id = r.id;
        // Reference candidates the worker found in the bytes are the file's `r/` entry.
        if (r.refs) for (const c of r.refs) this.refCandidates.add(c);
        else knownIds.push(f.id);
        this.markDone(f);
      } else {
        this.schedule.rescan(f);
      }
    });
    await this.addKnownRefs(knownIds);
    this.count('refLookups', knownIds.length);
    this.schedule.hashed(bytes, knownBytes);
    this.schedule.hashedSmall(small, knownSmall);
    this.progress();
  }

  private relKey(f: FileNode): string {
    return kLast(f.path.subarray(this.rootLen).toString('latin1'));
  }

  private async onScanned(files: FileNode[], results: ScannedFile[], bodies: CompressedItem[], elsewhere?: string[]): Promise<void> {
    const ok: { f: FileNode; r: Scanned }[] = [];
    for (let i = 0; i < files.length; i++) {
      const r = results[i]!;
      if (!r.ok) throw MiqError.fromJSON(r.error as never);
      files[i]!.id = r.id;
      for (const c of r.refs) this.refCandidates.add(c);
      if (r.refs.length > 0) this.fileRefs.set(r.id, r.refs);
      ok.push({ f: files[i]!, r });
    }
    // Files the store already has need nothing else: their chunks exist (write ordering). A
    // store that had no file records at the start gets none before this ingest's commit.
    const fileKnown = this.hashFirst ? await this.db.getMany(ok.map(({ r }) => kFile(r.id))) : [];
    const need: { f: FileNode; r: Scanned }[] = [];
    ok.forEach((x, i) => {
      this.chunkCount += x.r.chunks.length;
      if (fileKnown[i] === undefined && !this.newFiles.has(x.r.id)) {
        this.newFiles.set(x.r.id, { id: x.r.id as Id, size: x.r.size, chunks: x.r.chunks.map((c) => ({ id: c.id as Id, length: c.length })) });
        need.push(x);
      }
    });
    this.count('scanNeed', need.length);
    // Into a store without file records every chunk there is garbage (no record names it):
    // storing one again is harmless, and asking costs a lookup per chunk.
    if (this.hashFirst) {
      const ask = [...new Set(need.flatMap(({ r }) => r.chunks.map((c) => c.id)).filter((id) => !this.seen.has(id)))];
      const have = ask.length ? await this.db.getMany(ask.map(kChunk)) : [];
      ask.forEach((id, i) => { if (have[i] !== undefined) this.seen.add(id); });
    }
    const direct = await this.planCompress(need, bodies, elsewhere);
    const queued = (): void => {
      this.indexed(direct);
      this.recordEarly(need, ok);
    };
    if (direct.length > 0) await this.index.append(direct, queued);
    else queued();
    this.recycle(direct);
    for (const { f } of ok) this.markDone(f);
    this.progress();
  }

  /** Chunks whose index entries are now queued in the IndexWriter. */
  private indexed(items: readonly CompressedItem[]): void {
    for (const it of items) {
      if (it.members) for (const m of it.members) this.unindexed.delete(m.id);
      else this.unindexed.delete(it.id);
    }
  }

  /**
   * File records (and references) of `need` whose chunks' entries are all queued go into the
   * index now, behind those entries (IndexWriter.put); the others wait for the commit, as all did
   * before. So do the stat-cache entries of `ok`'s files whose content this ingest stores. A
   * record written here and then orphaned by a crash or a failed ingest names only indexed chunks
   * (gc collects it); a stat entry checks its file record before it is trusted (findStats).
   */
  private recordEarly(need: { f: FileNode; r: Scanned }[], ok: { f: FileNode; r: Scanned }[]): void {
    for (const { r } of need) {
      if (this.recorded.has(r.id) || r.chunks.some((c) => this.unindexed.has(c.id))) continue;
      const rec = this.newFiles.get(r.id);
      if (!rec) continue;
      this.recorded.add(r.id);
      const key = kFile(r.id);
      this.index.put(key, encodeFileIndexRecord(rec), true);
      const refs = this.fileRefs.get(r.id);
      if (refs) this.index.put(kRefs(r.id), Buffer.from(refs.join('\n'), 'latin1'), true);
    }
    if (!STAT_CACHE_ON) return;
    for (const { f } of ok) {
      if (f.id !== undefined && !f.statHit && this.newFiles.has(f.id) && cacheable(f.stat, this.startMs)) {
        this.index.put(statKey(f.stat), encodeStatEntry(f.stat, f.id, this.fileRefs.has(f.id)), false);
        this.statWritten.add(f);
      }
    }
  }

  /** Queues compress tasks for the new chunks of `need`; returns the chunks the scan already
   * compressed (`bodies`, its claim), to be stored as they are, once: a shared frame with only
   * its members that are new here. */
  private async planCompress(need: { f: FileNode; r: Scanned }[], bodies: CompressedItem[], elsewhereIds?: string[]): Promise<CompressedItem[]> {
    let items: CompressItem[] = [];
    let itemBytes = 0, dataBytes = 0;
    const flush = (): void => {
      if (items.length === 0) return;
      const bases = this.delta.basesFor(items);
      this.compressQueue.push({ task: { type: 'compress', items, ...(bases ? { packDir: this.store.packDir, bases } : {}) }, bytes: dataBytes });
      this.compressQueuedBytes += dataBytes;
      items = [];
      itemBytes = 0;
      dataBytes = 0;
    };
    const ready = new Map<string, CompressedItem | { frame: CompressedItem; m: FrameMember }>();
    for (const b of bodies) {
      if (b.members) for (const m of b.members) ready.set(m.id, { frame: b, m });
      else ready.set(b.id, b);
    }
    const direct: CompressedItem[] = [];
    const framed = new Map<CompressedItem, FrameMember[]>();
    const take = (done: CompressedItem | { frame: CompressedItem; m: FrameMember }): void => {
      if ('frame' in done) {
        const ms = framed.get(done.frame);
        if (ms) ms.push(done.m);
        else framed.set(done.frame, [done.m]);
      } else {
        direct.push(done);
      }
    };
    // Bodies other results are waiting for (whether or not this result's files need them).
    if (this.awaited.size > 0) {
      for (const [id, done] of ready) {
        if (this.awaited.delete(id)) {
          take(done);
          this.awaitedTaken++;
        }
      }
    }
    const elsewhere = elsewhereIds && elsewhereIds.length > 0 ? new Set(elsewhereIds) : undefined;
    for (const { f, r } of need) {
      let off = 0;
      const base: Base | undefined = this.deltaOn && r.size >= DELTA_MIN && r.chunks.some((c) => !this.seen.has(c.id)) ? await this.delta.base(this.relKey(f), r.id) : undefined;
      for (const c of r.chunks) {
        if (!this.seen.has(c.id)) {
          this.seen.add(c.id);
          this.unindexed.add(c.id);
          const done = ready.get(c.id);
          if (done) {
            take(done);
            off += c.length;
            continue;
          }
          if (elsewhere?.has(c.id)) {
            this.awaited.set(c.id, { path: f.path, offset: off, length: c.length });
            off += c.length;
            continue;
          }
          const item: CompressItem = r.data && r.chunks.length === 1 ? { id: c.id, length: c.length, data: r.data } : { id: c.id, length: c.length, path: f.path, offset: off };
          if (item.data) dataBytes += c.length;
          const d = base ? deltaRefs(base, off, c.length) : undefined;
          if (d) {
            item.refs = d.refs;
            item.refDepth = d.refDepth;
            dataBytes += d.bytes;
          }
          items.push(item);
          itemBytes += c.length;
          if (itemBytes >= COMPRESS_TASK_BYTES) flush();
        }
        off += c.length;
      }
    }
    flush();
    for (const [frame, members] of framed) direct.push({ ...frame, members });
    return direct;
  }

  /** Awaited chunks no scan result brought, as compress tasks (read again from their file). */
  private queueAwaited(): void {
    let items: CompressItem[] = [];
    let bytes = 0;
    const flush = (): void => {
      if (items.length > 0) this.compressQueue.push({ task: { type: 'compress', items }, bytes: 0 });
      items = [];
      bytes = 0;
    };
    for (const [id, a] of this.awaited) {
      items.push({ id, length: a.length, path: a.path, offset: a.offset });
      bytes += a.length;
      this.awaitedLate++;
      if (bytes >= COMPRESS_TASK_BYTES) flush();
    }
    this.awaited.clear();
    flush();
  }

  private async onCompressed(res: Extract<WorkerResult, { type: 'compressed' }>): Promise<void> {
    await this.index.append(res.items, () => this.indexed(res.items));
    this.recycle(res.items);
    this.progress();
  }

  /** Trees, references, and the one atomic batch that makes the store path visible. */
  private async commit(w: WalkResult): Promise<IngestResult> {
    const { db, opts } = this;
    // The passes' lookups first: a failed one fails the ingest here, as the commit's would.
    const looked = new Set(this.treeBytes.keys());
    await this.treeChain;
    if (this.treeError !== undefined) throw this.treeError;
    const treeBytes = buildTrees(w.root, this.treeBytes);
    this.mark('trees');
    const rootTree = w.root.id as Id;
    // Every store path record is read only when some bytes held a candidate hash.
    const key = opts.key ?? rootTree;
    const path = storePathName(this.name, key);
    const references = resolveReferences(this.refCandidates, { path, key }, this.refCandidates.size > 0 ? await this.store.objects.listStorePaths() : []);
    const record: StorePathRecord = { path, name: this.name, key, tree: rootTree, references, size: w.bytes, files: w.files.length, made: opts.made ?? { kind: 'ingest' }, signatures: [] };

    const ops: { type: 'put'; key: string; value: Buffer }[] = [];
    for (const [id, rec] of this.newFiles) {
      if (this.recorded.has(id)) continue;
      ops.push({ type: 'put', key: kFile(id), value: encodeFileIndexRecord(rec) });
      const refs = this.fileRefs.get(id);
      if (refs) ops.push({ type: 'put', key: kRefs(id), value: Buffer.from(refs.join('\n'), 'latin1') });
    }
    // Into a store that had no files the lookups are skipped: what they could find (trees of
    // file-less paths, last-file entries of collected files) is written again, the same bytes
    // or a newer last file, instead of a lookup per file and tree.
    const lastFiles = w.files.filter((f) => f.size >= DELTA_MIN && f.id !== undefined);
    const lastHave = lastFiles.length && this.hashFirst ? await db.getMany(lastFiles.map((f) => this.relKey(f))) : [];
    lastFiles.forEach((f, i) => {
      if (decodeLastFile(lastHave[i]) !== f.id) ops.push({ type: 'put', key: this.relKey(f), value: encodeLastFile(f.id!) });
    });
    const treeIds = [...treeBytes.keys()].filter((id) => !looked.has(id));
    const treeHave = this.hashFirst ? await db.getMany(treeIds.map(kTree)) : [];
    treeIds.forEach((id, i) => { if (treeHave[i] !== undefined) this.treeHave.add(id); });
    for (const [id, bytes] of treeBytes) if (!this.treeHave.has(id)) ops.push({ type: 'put', key: kTree(id), value: bytes });
    if ((await db.get(kPath(path))) === undefined) ops.push({ type: 'put', key: kPath(path), value: encodeStorePath(record) });
    if (opts.pin ?? true) ops.push({ type: 'put', key: kMeta(ROOT_PREFIX + path), value: Buffer.from(path) });
    for (const o of ops) this.index.newBytes += o.key.length + o.value.length;
    // Stat-cache entries are not counted in newBytes: they are a cache, and whether a file gets
    // one depends on the clock (the racy rule in cacheable), so the same tree ingested twice
    // reported different added bytes (tests comparing two ingests failed at random).
    if (STAT_CACHE_ON) {
      // Only where this ingest stored the content: a known file at a new inode (a copy, the
      // unchanged files of an unpacked update) is cheap to hash again, and an entry for each
      // cost release N+1 of the full corpus 5% more added bytes.
      for (const f of w.files) if (f.id !== undefined && !f.statHit && !this.statWritten.has(f) && this.newFiles.has(f.id) && cacheable(f.stat, this.startMs)) ops.push({ type: 'put', key: statKey(f.stat), value: encodeStatEntry(f.stat, f.id, this.fileRefs.has(f.id)) });
    }
    this.mark('ops');
    this.commitOps = ops.length;
    await db.batch(ops, { sync: true }).catch((e: unknown) => {
      throw isNoSpace(e) ? noSpaceError(e, this.store.dir, 'writing the index') : e;
    });
    this.mark('batch');
    // LevelDB keeps what was just written in its log, uncompressed, until the next open replays
    // it into a table. After a large ingest do that now: the table is ~10% smaller (7.8 -> 7.0 MB
    // after 422 MB of small files) and the next command opens without a replay. A range holding
    // no key flushes the memory table and compacts nothing else.
    let written = this.index.indexBytes;
    for (const o of ops) written += o.key.length + o.value.length;
    if (written >= FLUSH_INDEX_BYTES) await db.compactRange('\x00', '\x00\x00').catch(() => {});
    this.progress(true);

    return {
      path, tree: rootTree, key,
      files: w.files.length, scanned: this.schedule.queued, dirs: w.dirs, symlinks: w.links,
      bytes: w.bytes, newBytes: this.index.newBytes, newChunks: this.index.newChunks, chunks: this.chunkCount,
      seconds: (performance.now() - this.t0) / 1000,
      references: [...record.references],
      droppedModeBits: w.droppedModeBits,
      notWorldReadable: w.notWorldReadable,
      notWorldReadablePaths: w.notWorldReadablePaths,
      skipped: w.skipped,
    };
  }
}
