/**
 * The ingest pipeline (DESIGN §5). Main thread: walk, schedule, ask the index which chunks are
 * new, append to packs, write the index in batches. Workers: read, chunk, hash; then compress only
 * the new chunks. Commit order makes a crash harmless: pack bytes are synced before the index
 * batch that names them; file records, trees, the store path record and its root go in one final
 * atomic batch after every chunk they name is indexed.
 */
import { stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { IngestOptions, IngestResult } from './api.js';
import { MiqError, ioError } from './errors.js';
import type { BaseChunk, CompressedItem, CompressItem, HashedFile, ScannedFile, WorkerResult, WorkerTask } from './ingest-worker.js';
import { type Id } from './ids.js';
import { ROOT_PREFIX, kChunk, kFile, kLast, kMeta, kPath, kRefs, kTree, range } from './keys.js';
import type { LocalParts } from './local-parts.js';
import { encodeFileRecord, encodeStorePath, storePathName, type FileRecord, type StorePathRecord } from './objects.js';
import { decodeLocation, encodeLocation, type ChunkLocation } from './pack.js';
import { ingestPool, poolThreads } from './pool.js';
import { walk, type FileNode, type WalkResult } from './walk.js';
import { buildTrees, resolveReferences } from './ingest-trees.js';

const SMALL_BATCH_FILES = 256;
const SMALL_BATCH_BYTES = 8 << 20;
const ALONE_BYTES = 1 << 20;
const HASH_FIRST_MIN = 64 * 1024;
const HASH_BATCH_BYTES = 32 << 20;
const ADAPT_AFTER_BYTES = 64 << 20;
const DELTA_MIN = 16 * 1024;
/** MIQ_NO_DELTA=1 turns delta compression off (benchmarks compare both). */
const DELTA_ON = process.env.MIQ_NO_DELTA !== '1';
/** Old chunks overlapping the new chunk's own range make its dictionary: wider windows (128 KiB)
 * saved 4% more bytes on the security update for 25% more CPU in the compress step. */
const DELTA_WINDOW = 0;
const DELTA_MAX_REFS = 8;
/** Reading a delta chunk reads its references first; chains stay short. */
const DELTA_MAX_DEPTH = 3;
const COMPRESS_TASK_BYTES = 8 << 20;
/** Bytes of small-file contents waiting for compression before scanning pauses. */
const COMPRESS_QUEUE_LIMIT = 64 << 20;
const INDEX_FLUSH_ENTRIES = 4096;
/** Slots of the scan's shared claim table (8 bytes each); a fuller table only means more chunks
 * take the separate compress step. */
const CLAIM_SLOTS = 1 << 20;
const INDEX_FLUSH_BYTES = 64 << 20;

interface StatKey {
  dev: number; ino: number; size: number; mtimeMs: number; ctimeMs: number; id: string;
}

export function defaultName(dir: string): string {
  const b = basename(resolve(dir)).replace(/[^A-Za-z0-9+._-]/g, '_').replace(/^\.+/, '');
  return (b || 'tree').slice(0, 200);
}

export async function ingestTree(store: LocalParts, dirArg: string, opts: IngestOptions): Promise<IngestResult> {
  const t0 = performance.now();
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
  const db = store.db;
  const params = store.params;
  const keepSmall = Math.min(64 * 1024, params.min);

  const statCache = opts.statCache as Map<string, StatKey> | undefined;

  let newBytes = 0;
  let newChunks = 0;
  let chunkCount = 0;
  let doneFiles = 0;
  let doneBytes = 0;
  const seen = new Set<string>();
  const newFiles = new Map<string, FileRecord>();
  const refCandidates = new Set<string>();
  let failure: MiqError | undefined;

  // --- index writes ---------------------------------------------------------------------
  let pendingIndex: { key: string; value: Buffer }[] = [];
  let pendingBytes = 0;
  const writer = await store.packWriter();
  let appendChain: Promise<void> = Promise.resolve();
  const flushIndex = async (): Promise<void> => {
    if (pendingIndex.length === 0) return;
    const batch = pendingIndex;
    pendingIndex = [];
    pendingBytes = 0;
    await writer.sync(); // bodies on disk before the index names them
    await db.batch(batch.map((o) => ({ type: 'put' as const, key: o.key, value: o.value })));
  };

  // --- progress ---------------------------------------------------------------------------
  let lastProgress = 0;
  const progress = (force = false): void => {
    if (!opts.onProgress) return;
    const now = performance.now();
    if (!force && now - lastProgress < 100) return;
    lastProgress = now;
    opts.onProgress({ files: doneFiles, bytes: doneBytes, totalFiles: walked?.files.length ?? filesSeen, totalBytes: walked?.bytes ?? bytesSeen, newBytes });
  };

  // --- scheduling -------------------------------------------------------------------------
  // Files bigger than HASH_FIRST_MIN are first only hashed when the store already has files:
  // on a re-ingest or an update most are known, and hashing skips chunking them. If most turn
  // out new, switch to chunking directly (the hash pass would be wasted work).
  // Reading starts while the walk goes on (the workers would idle through it otherwise); with a
  // stat cache (--watch) the walk finishes first so unchanged files are never queued.
  const small: FileNode[] = [];
  const large: FileNode[] = [];
  let walked: WalkResult | undefined;
  let filesSeen = 0;
  let bytesSeen = 0;
  let toScanCount = 0;
  let wake: (() => void) | undefined;
  let walkDone = statCache !== undefined;
  const queueFile = (f: FileNode): void => {
    (f.size <= HASH_FIRST_MIN ? small : large).push(f);
    toScanCount++;
    const wk = wake;
    wake = undefined;
    wk?.();
  };
  let walkP: Promise<void> = Promise.resolve();
  if (statCache) {
    walked = await walk(dir, opts.lenient ?? false);
    for (const f of walked.files) {
      const hit = statCache.get(f.path.toString('latin1'));
      if (hit && hit.dev === f.stat.dev && hit.ino === f.stat.ino && hit.size === f.stat.size && hit.mtimeMs === f.stat.mtimeMs && hit.ctimeMs === f.stat.ctimeMs && (await db.get(kFile(hit.id))) !== undefined) {
        f.id = hit.id;
        doneFiles++;
        doneBytes += f.size;
      } else {
        queueFile(f);
      }
    }
  } else {
    walkP = walk(dir, opts.lenient ?? false, (f) => {
      filesSeen++;
      bytesSeen += f.size;
      queueFile(f);
    }).then(
      (r) => { walked = r; },
      (e: unknown) => { failure ??= e instanceof MiqError ? e : new MiqError('MIQ_IO', `cannot walk ${dir}: ${(e as Error).message}`, { cause: e }); },
    ).finally(() => {
      walkDone = true;
      const wk = wake;
      wake = undefined;
      wk?.();
    });
  }
  let hashFirst = false;
  for await (const _k of db.keys({ ...range('f/'), limit: 1 })) hashFirst = true;
  // Into a new store nearly every chunk is new: the scan compresses each chunk the first time any
  // worker meets it (a shared claim table), so its bytes are not read, hashed and sent again.
  const claims = hashFirst || process.env.MIQ_NO_SCAN_COMPRESS === '1' ? undefined : new BigInt64Array(new SharedArrayBuffer(8 * CLAIM_SLOTS));
  let hashedBytes = 0;
  let knownBytes = 0;
  const rescan: FileNode[] = [];
  let smallPos = 0;
  let largePos = 0;
  const batch = (list: FileNode[], pos: number, maxFiles: number, maxBytes: number): FileNode[] => {
    const files: FileNode[] = [];
    let bytes = 0;
    while (pos + files.length < list.length) {
      const f = list[pos + files.length]!;
      if (files.length > 0 && (f.size > ALONE_BYTES || files.length >= maxFiles || bytes + f.size > maxBytes)) break;
      files.push(f);
      bytes += f.size;
      if (f.size > ALONE_BYTES) break;
    }
    return files;
  };
  const scanTask = (files: FileNode[]): { task: WorkerTask; files: FileNode[] } => ({ task: { type: 'scan', files: files.map((f) => ({ path: f.path, size: f.size })), params, keepSmall, ...(claims ? { claims } : {}) }, files });
  const nextScan = (): { task: WorkerTask; files: FileNode[] } | undefined => {
    if (rescan.length > 0) return scanTask(rescan.splice(0, batch(rescan, 0, SMALL_BATCH_FILES, SMALL_BATCH_BYTES).length));
    if (largePos < large.length) {
      if (hashFirst) {
        const files = batch(large, largePos, SMALL_BATCH_FILES, HASH_BATCH_BYTES);
        largePos += files.length;
        return { task: { type: 'hash', files: files.map((f) => ({ path: f.path, size: f.size })) }, files };
      }
      const files = batch(large, largePos, SMALL_BATCH_FILES, SMALL_BATCH_BYTES);
      largePos += files.length;
      return scanTask(files);
    }
    // Small files go in batches; while the walk runs, wait until a batch is worth a task.
    if (smallPos < small.length && (walkDone || small.length - smallPos >= SMALL_BATCH_FILES / 4)) {
      const files = batch(small, smallPos, SMALL_BATCH_FILES, SMALL_BATCH_BYTES);
      smallPos += files.length;
      return scanTask(files);
    }
    return undefined;
  };
  const fileRefs = new Map<string, string[]>();
  const addKnownRefs = async (ids: string[]): Promise<void> => {
    if (ids.length === 0) return;
    const got = await db.getMany(ids.map(kRefs));
    for (const v of got) if (v !== undefined) for (const h of v.toString('latin1').split('\n')) if (h) refCandidates.add(h);
  };
  if (walked) await addKnownRefs(walked.files.filter((f) => f.id !== undefined).map((f) => f.id!));
  const markDone = (f: FileNode): void => {
    doneFiles++;
    doneBytes += f.size;
    statCache?.set(f.path.toString('latin1'), { dev: f.stat.dev, ino: f.stat.ino, size: f.stat.size, mtimeMs: f.stat.mtimeMs, ctimeMs: f.stat.ctimeMs, id: f.id! });
  };
  const onHashed = async (files: FileNode[], results: HashedFile[]): Promise<void> => {
    results.forEach((r) => { if (!r.ok) throw MiqError.fromJSON(r.error as never); });
    const ids = results.map((r) => (r as Extract<HashedFile, { ok: true }>).id);
    const known = await db.getMany(ids.map(kFile));
    const knownIds: string[] = [];
    files.forEach((f, i) => {
      hashedBytes += f.size;
      if (known[i] !== undefined) {
        f.id = ids[i]!;
        knownBytes += f.size;
        knownIds.push(f.id);
        markDone(f);
      } else {
        rescan.push(f);
      }
    });
    await addKnownRefs(knownIds);
    if (hashFirst && hashedBytes >= ADAPT_AFTER_BYTES && knownBytes < hashedBytes / 2) hashFirst = false;
    progress();
  };

  const compressQueue: { task: WorkerTask; bytes: number }[] = [];
  let compressQueuedBytes = 0;
  const pool = ingestPool();

  // --- delta compression against the same path's previous version ----------------------
  // A rebuilt binary shifts addresses all through the file, so content-defined chunks of a
  // security update are almost all new. Compressing each new chunk with the old version's chunks
  // around the same offset as a zstd dictionary keeps only what really changed (zstd
  // --patch-from, per chunk so reads stay random-access). `l/<relative path>` remembers the last
  // file seen at each path, in any store path.
  const rootLen = Buffer.byteLength(dir) + 1;
  const relKey = (f: FileNode): string => kLast(f.path.subarray(rootLen).toString('latin1'));
  interface Base { chunks: { id: string; start: number; end: number; depth: number }[] }
  // Locations of old chunks deltas are tried against, and of their own references (a chain is
  // at most DELTA_MAX_DEPTH deep): the worker reads and decodes them from the packs itself.
  const baseLocs = new Map<string, BaseChunk>();
  const toBase = (id: string, l: ChunkLocation): BaseChunk => ({ id, pack: l.pack, offset: l.offset, stored: l.stored, plain: l.plain, flags: l.flags, ...(l.refs ? { refs: l.refs } : {}) });
  const learnLocs = async (ids: string[]): Promise<void> => {
    for (let want = ids.filter((i) => !baseLocs.has(i)); want.length > 0;) {
      const uniq = [...new Set(want)];
      const vals = await db.getMany(uniq.map(kChunk));
      want = [];
      uniq.forEach((id, i) => {
        const v = vals[i];
        if (v === undefined) return;
        const l = decodeLocation(v);
        baseLocs.set(id, toBase(id, l));
        for (const r of l.refs ?? []) if (!baseLocs.has(r)) want.push(r);
      });
    }
  };
  const deltaBase = async (f: FileNode, id: string): Promise<Base | undefined> => {
    const prev = await db.get(relKey(f));
    if (!prev) return undefined;
    const oldId = prev.toString('latin1');
    if (oldId === id) return undefined;
    const old = await store.objects.getFile(oldId as Id).catch(() => undefined);
    if (!old) return undefined;
    const locs = await db.getMany(old.chunks.map((c) => kChunk(c.id)));
    const chunks: Base['chunks'] = [];
    const chain: string[] = [];
    let o = 0;
    old.chunks.forEach((c, i) => {
      const v = locs[i];
      if (v !== undefined) {
        const l = decodeLocation(v);
        const depth = l.depth ?? 0;
        if (depth < DELTA_MAX_DEPTH) {
          chunks.push({ id: c.id, start: o, end: o + c.length, depth });
          baseLocs.set(c.id, toBase(c.id, l));
          if (l.refs) chain.push(...l.refs);
        }
      }
      o += c.length;
    });
    await learnLocs(chain);
    return chunks.length ? { chunks } : undefined;
  };
  const deltaRefs = (base: Base, off: number, len: number): { refs: string[]; refDepth: number; bytes: number } | undefined => {
    const lo = off - DELTA_WINDOW, hi = off + len + DELTA_WINDOW;
    const pick = base.chunks.filter((c) => c.end > lo && c.start < hi).slice(0, DELTA_MAX_REFS);
    if (pick.length === 0) return undefined;
    return { refs: pick.map((c) => c.id), refDepth: Math.max(...pick.map((c) => c.depth)), bytes: pick.reduce((a, c) => a + c.end - c.start, 0) };
  };
  /** The locations a compress task's workers need: every ref of its items, and theirs. */
  const basesFor = (items: CompressItem[]): BaseChunk[] | undefined => {
    const out = new Map<string, BaseChunk>();
    const add = (id: string): void => {
      if (out.has(id)) return;
      const b = baseLocs.get(id);
      if (!b) return;
      out.set(id, b);
      for (const r of b.refs ?? []) add(r);
    };
    for (const it of items) for (const r of it.refs ?? []) add(r);
    return out.size ? [...out.values()] : undefined;
  };

  const onScanned = async (files: FileNode[], results: ScannedFile[]): Promise<void> => {
    const ok: { f: FileNode; r: Extract<ScannedFile, { ok: true }> }[] = [];
    for (let i = 0; i < files.length; i++) {
      const r = results[i]!;
      if (!r.ok) throw MiqError.fromJSON(r.error as never);
      files[i]!.id = r.id;
      for (const c of r.refs) refCandidates.add(c);
      if (r.refs.length > 0) fileRefs.set(r.id, r.refs);
      ok.push({ f: files[i]!, r });
    }
    // Files the store already has need nothing else: their chunks exist (write ordering).
    const fileKnown = await db.getMany(ok.map(({ r }) => kFile(r.id)));
    const need: { f: FileNode; r: Extract<ScannedFile, { ok: true }> }[] = [];
    ok.forEach((x, i) => {
      chunkCount += x.r.chunks.length;
      if (fileKnown[i] === undefined && !newFiles.has(x.r.id)) {
        newFiles.set(x.r.id, { id: x.r.id as Id, size: x.r.size, chunks: x.r.chunks.map((c) => ({ id: c.id as Id, length: c.length })) });
        need.push(x);
      }
    });
    const ask: string[] = [];
    for (const { r } of need) for (const c of r.chunks) if (!seen.has(c.id)) ask.push(c.id);
    const uniqueAsk = [...new Set(ask)];
    const have = uniqueAsk.length ? await db.getMany(uniqueAsk.map(kChunk)) : [];
    uniqueAsk.forEach((id, i) => { if (have[i] !== undefined) seen.add(id); });
    let items: CompressItem[] = [];
    let itemBytes = 0;
    let dataBytes = 0;
    const push = (): void => {
      if (items.length === 0) return;
      const bases = basesFor(items);
      compressQueue.push({ task: { type: 'compress', items, ...(bases ? { packDir: store.packDir, bases } : {}) }, bytes: dataBytes });
      compressQueuedBytes += dataBytes;
      items = [];
      itemBytes = 0;
      dataBytes = 0;
    };
    // Chunks the scan already compressed (its claim): stored as they are, once.
    const ready = new Map<string, CompressedItem>();
    for (const { r } of need) for (const b of r.bodies ?? []) ready.set(b.id, b);
    const direct: CompressedItem[] = [];
    for (const { f, r } of need) {
      let off = 0;
      const base = DELTA_ON && r.size >= DELTA_MIN && r.chunks.some((c) => !seen.has(c.id)) ? await deltaBase(f, r.id) : undefined;
      for (const c of r.chunks) {
        if (!seen.has(c.id)) {
          seen.add(c.id);
          const done = ready.get(c.id);
          if (done) {
            direct.push(done);
            off += c.length;
            continue;
          }
          let item: CompressItem;
          if (r.data && r.chunks.length === 1) {
            item = { id: c.id, length: c.length, data: r.data };
            dataBytes += c.length;
          } else {
            item = { id: c.id, length: c.length, path: f.path, offset: off };
          }
          if (base) {
            const d = deltaRefs(base, off, c.length);
            if (d) {
              item.refs = d.refs;
              item.refDepth = d.refDepth;
              dataBytes += d.bytes;
            }
          }
          items.push(item);
          itemBytes += c.length;
          if (itemBytes >= COMPRESS_TASK_BYTES) push();
        }
        off += c.length;
      }
    }
    push();
    if (direct.length > 0) await appendItems(direct);
    for (const { f } of ok) markDone(f);
    progress();
  };

  const onCompressed = async (res: Extract<WorkerResult, { type: 'compressed' }>): Promise<void> => {
    await appendItems(res.items);
    progress();
  };
  /** Appends compressed chunks to the pack in arrival order; their index entries follow. */
  async function appendItems(compressed: CompressedItem[]): Promise<void> {
    const items = compressed.map((it) => ({ id: it.id as Id, flags: it.flags, plain: it.plainLen, body: it.body, refs: it.refs, depth: it.depth }));
    const run = appendChain.then(async () => {
      const locs = await writer.append(items);
      locs.forEach((loc, i) => {
        const key = kChunk(items[i]!.id);
        const it = items[i]!;
        const value = encodeLocation(it.refs ? { ...loc, refs: it.refs, depth: it.depth } : loc);
        pendingIndex.push({ key, value });
        newBytes += loc.stored + 48 + key.length + value.length;
        pendingBytes += loc.stored;
      });
      newChunks += items.length;
      if (pendingIndex.length >= INDEX_FLUSH_ENTRIES || pendingBytes >= INDEX_FLUSH_BYTES) await flushIndex();
    });
    appendChain = run.catch(() => {});
    await run;
  }

  const runTask = async (task: WorkerTask, files?: FileNode[], bytes = 0): Promise<void> => {
    try {
      const res = await pool.run(task);
      if (res.type === 'error') throw MiqError.fromJSON(res.error as never);
      if (res.type === 'scanned') await onScanned(files!, res.files);
      else if (res.type === 'hashed') await onHashed(files!, res.files);
      else await onCompressed(res);
    } catch (e) {
      failure ??= e instanceof MiqError ? e : new MiqError('MIQ_IO', `ingest failed: ${(e as Error).message}`, { cause: e });
    } finally {
      compressQueuedBytes -= bytes;
    }
  };

  const inflight = new Set<Promise<void>>();
  const maxInflight = poolThreads() * 2;
  for (;;) {
    if (failure) break;
    let p: Promise<void> | undefined;
    const c = compressQueue.shift();
    if (c) {
      p = runTask(c.task, undefined, c.bytes);
    } else if (compressQueuedBytes < COMPRESS_QUEUE_LIMIT) {
      const s = nextScan();
      if (s) p = runTask(s.task, s.files);
    }
    if (!p) {
      const more = walkDone ? undefined : new Promise<void>((r) => { wake = r; });
      if (inflight.size === 0 && !more) break;
      await Promise.race(more ? [...inflight, more] : inflight);
      continue;
    }
    const tracked: Promise<void> = p.finally(() => inflight.delete(tracked));
    inflight.add(tracked);
    if (inflight.size >= maxInflight) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  await walkP;
  await appendChain;
  if (failure) {
    // Chunks already indexed stay as unreferenced garbage for gc; no file, tree or path names them.
    await flushIndex().catch(() => {});
    throw failure;
  }
  await flushIndex();
  const w = walked!;

  // --- trees and references -------------------------------------------------------------
  const treeBytes = buildTrees(w.root);
  const rootTree = w.root.id as Id;

  // Every store path record is read only when some bytes held a candidate hash.
  const key = opts.key ?? rootTree;
  const path = storePathName(name, key);
  const references = resolveReferences(refCandidates, { path, key }, refCandidates.size > 0 ? await store.objects.listStorePaths() : []);

  const record: StorePathRecord = {
    path, name, key, tree: rootTree,
    references,
    size: w.bytes, files: w.files.length,
    made: opts.made ?? { kind: 'ingest' },
    signatures: [],
  };

  // --- the commit: one atomic batch -------------------------------------------------------
  const ops: { type: 'put'; key: string; value: Buffer }[] = [];
  for (const [id, rec] of newFiles) {
    ops.push({ type: 'put', key: kFile(id), value: encodeFileRecord(rec) });
    const refs = fileRefs.get(id);
    if (refs) ops.push({ type: 'put', key: kRefs(id), value: Buffer.from(refs.join('\n'), 'latin1') });
  }
  const lastFiles = w.files.filter((f) => f.size >= DELTA_MIN && f.id !== undefined);
  const lastHave = lastFiles.length ? await db.getMany(lastFiles.map(relKey)) : [];
  lastFiles.forEach((f, i) => {
    if (lastHave[i]?.toString('latin1') !== f.id) ops.push({ type: 'put', key: relKey(f), value: Buffer.from(f.id!, 'latin1') });
  });
  const treeIds = [...treeBytes.keys()];
  const treeHave = await db.getMany(treeIds.map(kTree));
  treeIds.forEach((id, i) => { if (treeHave[i] === undefined) ops.push({ type: 'put', key: kTree(id), value: treeBytes.get(id)! }); });
  const existing = await db.get(kPath(path));
  if (existing === undefined) ops.push({ type: 'put', key: kPath(path), value: encodeStorePath(record) });
  if (opts.pin ?? true) ops.push({ type: 'put', key: kMeta(ROOT_PREFIX + path), value: Buffer.from(path) });
  for (const o of ops) newBytes += o.key.length + o.value.length;
  await db.batch(ops, { sync: true });
  progress(true);

  return {
    path, tree: rootTree, key,
    files: w.files.length, scanned: toScanCount, dirs: w.dirs, symlinks: w.links,
    bytes: w.bytes, newBytes, newChunks, chunks: chunkCount,
    seconds: (performance.now() - t0) / 1000,
    references: [...record.references],
    droppedModeBits: w.droppedModeBits,
    skipped: w.skipped,
  };
}
