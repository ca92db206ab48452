/**
 * Mark from the roots (pins, profile generations), sweep the rest, then repack packs whose live
 * share is low. Order keeps every crash harmless: records that name objects are deleted before the
 * objects; a repacked chunk's new copy is synced and indexed before its old pack is removed.
 */
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Id } from './ids.js';
import { kChunk, range } from './keys.js';
import type { LocalStore } from './local.js';
import { decodeLocation, encodeLocation, listPacks, packFileName, packSize, PackWriter, type ChunkLocation } from './pack.js';
import { addDeltaBases, closure, rootPaths, visitTree } from './reach.js';

export interface GcReport {
  dryRun: boolean;
  roots: number;
  livePaths: number;
  deadPaths: string[];
  deadTrees: number;
  deadFiles: number;
  deadChunks: number;
  /** Stored bytes of the dead chunks (reclaimed on disk only when their pack is rewritten). */
  deadChunkBytes: number;
  /** Bytes freed on disk (dead chunk bodies removed by repack or dropped packs) — an estimate in --dry-run. */
  freedBytes: number;
  repackedPacks: number;
  removedPacks: number;
  seconds: number;
}

const REPACK_LIVE_SHARE = 0.5;
const DELETE_BATCH = 10_000;

export async function gcStore(store: LocalStore, opts: { dryRun?: boolean; onProgress?: (phase: string, done: number) => void } = {}): Promise<GcReport> {
  return store.writeLock.run(() => gcLocked(store, opts));
}

async function gcLocked(store: LocalStore, opts: { dryRun?: boolean; onProgress?: (phase: string, done: number) => void }): Promise<GcReport> {
  const t0 = performance.now();
  const dryRun = opts.dryRun ?? false;
  const roots = await rootPaths(store);
  const live = await closure(store, roots);
  const liveTrees = new Set<string>();
  const liveFiles = new Set<string>();
  const liveChunks = new Set<string>();
  for (const r of live.values()) {
    await visitTree(store, r.tree, { chunk: (id) => { liveChunks.add(id); } }, liveTrees, liveFiles);
  }
  opts.onProgress?.('mark', liveChunks.size);

  const db = store.db;
  const dead: Record<'p' | 't' | 'f' | 'c', string[]> = { p: [], t: [], f: [], c: [] };
  const deadPaths: string[] = [];
  for await (const k of db.keys(range('p/'))) if (!live.has(k.slice(2))) { dead.p.push(k); deadPaths.push(k.slice(2)); }
  for await (const k of db.keys(range('t/'))) if (!liveTrees.has(k.slice(2))) dead.t.push(k);
  for await (const k of db.keys(range('f/'))) if (!liveFiles.has(k.slice(2))) dead.f.push(k);
  for await (const k of db.keys(range('r/'))) if (!liveFiles.has(k.slice(2))) dead.f.push(k);

  // Every chunk location; delta chunks keep the chunks they are compressed against alive.
  const all: { id: string; loc: ChunkLocation }[] = [];
  for await (const [k, v] of db.iterator(range('c/'))) all.push({ id: k.slice(2), loc: decodeLocation(v) });
  const refsOf = new Map<string, string[]>();
  for (const c of all) if (c.loc.refs) refsOf.set(c.id, c.loc.refs);
  addDeltaBases(liveChunks, refsOf);
  for await (const k of db.keys(range('l/'))) {
    const v = await db.get(k);
    if (v === undefined || !liveFiles.has(v.toString('latin1'))) dead.f.push(k);
  }

  // Chunk locations by pack, to size the repack.
  const byPack = new Map<number, { live: { id: string; loc: ChunkLocation }[]; liveBytes: number; deadBytes: number }>();
  for (const { id, loc } of all) {
    let p = byPack.get(loc.pack);
    if (!p) byPack.set(loc.pack, (p = { live: [], liveBytes: 0, deadBytes: 0 }));
    if (liveChunks.has(id)) {
      p.live.push({ id, loc });
      p.liveBytes += loc.stored + 48;
    } else {
      dead.c.push(kChunk(id));
      p.deadBytes += loc.stored + 48;
    }
  }

  const openPack = store.openPack;
  const report: GcReport = {
    dryRun, roots: roots.size, livePaths: live.size, deadPaths: deadPaths.sort(),
    deadTrees: dead.t.length, deadFiles: dead.f.length, deadChunks: dead.c.length,
    deadChunkBytes: [...byPack.values()].reduce((a, p) => a + p.deadBytes, 0),
    freedBytes: 0, repackedPacks: 0, removedPacks: 0, seconds: 0,
  };

  // Which packs to rewrite: every pack on disk (including ones no index entry names, e.g. torn
  // leftovers of a killed ingest), except the one this process is appending to.
  const packs = (await listPacks(store.packDir)).filter((n) => n !== openPack);
  const plan: { pack: number; size: number; live: { id: string; loc: ChunkLocation }[] }[] = [];
  for (const n of packs) {
    const size = await packSize(store.packDir, n);
    const info = byPack.get(n);
    const liveBytes = info?.liveBytes ?? 0;
    if (size === 0 || liveBytes / size < REPACK_LIVE_SHARE) {
      plan.push({ pack: n, size, live: info?.live ?? [] });
      report.freedBytes += size - liveBytes;
    }
  }

  if (dryRun) {
    report.seconds = (performance.now() - t0) / 1000;
    return report;
  }

  // Sweep: paths, then trees, then files, then chunk index entries.
  for (const keys of [dead.p, dead.t, dead.f, dead.c]) {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      await db.batch(keys.slice(i, i + DELETE_BATCH).map((key) => ({ type: 'del' as const, key })), { sync: true });
    }
  }
  opts.onProgress?.('sweep', dead.c.length);

  // Repack into a fresh pack of its own so a crash mid-way leaves the old packs intact.
  const rw = new PackWriter(store.packDir);
  await rw.open();
  let repacked = false;
  for (const p of plan) {
    if (p.live.length > 0) {
      const moved: { key: string; value: Buffer }[] = [];
      for (const { id, loc } of p.live) {
        const body = await store.packs.read(loc, id);
        const [nl] = await rw.append([{ id: id as Id, flags: loc.flags, plain: loc.plain, body }]);
        moved.push({ key: kChunk(id), value: encodeLocation(loc.refs ? { ...nl!, refs: loc.refs, depth: loc.depth } : nl!) });
      }
      await rw.sync();
      await db.batch(moved.map((m) => ({ type: 'put' as const, key: m.key, value: m.value })), { sync: true });
      repacked = true;
      report.repackedPacks++;
    } else {
      report.removedPacks++;
    }
    await store.packs.drop(p.pack);
    await unlink(join(store.packDir, packFileName(p.pack))).catch(() => {});
    opts.onProgress?.('repack', report.repackedPacks + report.removedPacks);
  }
  await rw.close();
  void repacked;
  await db.compactRange('\x00', '\xff').catch(() => {});
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}
