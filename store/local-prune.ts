/**
 * LocalStore's prune: delete what the mark did not keep, then repack packs whose live share is
 * low. Order keeps every crash harmless: records that name objects are deleted before the
 * objects; a repacked chunk's new copy is synced and indexed before its old pack is removed.
 */
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { LiveSet, PruneOptions, PruneReport } from './api.js';
import { decodeFrame } from './chunkread.js';
import { idOf, type Id } from './ids.js';
import { statEntryFile } from './ingest-statcache.js';
import { decodeLastFile, kChunk, range } from './keys.js';
import type { LocalParts } from './local-parts.js';
import { ENTRY_HEADER, decodeLocation, encodeLocation, listPacks, packFileName, packSize, PackWriter, type ChunkLocation } from './pack.js';

const REPACK_LIVE_SHARE = 0.5;
const DELETE_BATCH = 10_000;

type Dead = Record<'p' | 't' | 'f' | 'c', string[]>;
interface PackUse { live: { id: string; loc: ChunkLocation }[]; liveBytes: number; deadBytes: number }
interface RepackPlan { pack: number; size: number; live: { id: string; loc: ChunkLocation }[] }

/** Index keys of everything not live: paths, trees, file records and their side records. */
async function deadRecords(parts: LocalParts, live: LiveSet): Promise<Dead> {
  const { db } = parts;
  const dead: Dead = { p: [], t: [], f: [], c: [] };
  for await (const k of db.keys(range('p/'))) if (!live.paths.has(k.slice(2))) dead.p.push(k);
  for await (const k of db.keys(range('t/'))) if (!live.trees.has(k.slice(2))) dead.t.push(k);
  for await (const k of db.keys(range('f/'))) if (!live.files.has(k.slice(2))) dead.f.push(k);
  for await (const k of db.keys(range('r/'))) if (!live.files.has(k.slice(2))) dead.f.push(k);
  for await (const [k, v] of db.iterator(range('l/'))) if (!live.files.has(decodeLastFile(v)!)) dead.f.push(k);
  for await (const [k, v] of db.iterator(range('s/'))) if (!live.files.has(statEntryFile(v) ?? '')) dead.f.push(k);
  return dead;
}

/** Live and dead chunk bytes per pack (dead chunk keys go into `dead.c`). A shared frame's
 * bytes count once: live while any chunk in it is (dead chunks inside a live frame stay until
 * the frame is rewritten). */
async function packUse(parts: LocalParts, live: LiveSet, dead: Dead): Promise<Map<number, PackUse>> {
  const byPack = new Map<number, PackUse>();
  const frames = new Map<string, boolean>(); // pack.offset → live
  for await (const [k, v] of parts.db.iterator(range('c/'))) {
    const id = k.slice(2);
    const loc = decodeLocation(v);
    let p = byPack.get(loc.pack);
    if (!p) byPack.set(loc.pack, (p = { live: [], liveBytes: 0, deadBytes: 0 }));
    const isLive = live.chunks.has(id);
    if (isLive) p.live.push({ id, loc });
    else dead.c.push(k);
    if (loc.frame) {
      const key = `${loc.pack}.${loc.offset}`;
      const was = frames.get(key);
      if (was === true || (was === false && !isLive)) continue;
      if (was === false) p.deadBytes -= loc.stored + ENTRY_HEADER;
      frames.set(key, isLive);
    }
    if (isLive) p.liveBytes += loc.stored + ENTRY_HEADER;
    else p.deadBytes += loc.stored + ENTRY_HEADER;
  }
  return byPack;
}

/** Which packs to rewrite: every pack on disk (including ones no index entry names, e.g. torn
 * leftovers of a killed ingest) whose live share is low, except the one this process appends to. */
async function repackPlan(parts: LocalParts, byPack: Map<number, PackUse>): Promise<{ plan: RepackPlan[]; freed: number }> {
  const openPack = parts.openPack();
  const plan: RepackPlan[] = [];
  let freed = 0;
  for (const n of (await listPacks(parts.packDir)).filter((x) => x !== openPack)) {
    const size = await packSize(parts.packDir, n);
    const info = byPack.get(n);
    const liveBytes = info?.liveBytes ?? 0;
    if (size === 0 || liveBytes / size < REPACK_LIVE_SHARE) {
      plan.push({ pack: n, size, live: info?.live ?? [] });
      freed += size - liveBytes;
    }
  }
  return { plan, freed };
}

/** Repack into a fresh pack of its own so a crash mid-way leaves the old packs intact. */
async function repack(parts: LocalParts, plan: RepackPlan[], report: PruneReport, opts: PruneOptions): Promise<void> {
  const rw = new PackWriter(parts.packDir);
  await rw.open();
  try {
    for (const p of plan) {
      if (p.live.length > 0) {
        const moved: { key: string; value: Buffer }[] = [];
        // A shared frame is copied once; each live chunk in it is named at the copy.
        const frames = new Map<number, ChunkLocation>();
        for (const { id, loc } of p.live) {
          let nl = loc.frame ? frames.get(loc.offset) : undefined;
          if (!nl) {
            const body = await parts.packs.read(loc, id);
            // The frame's entry header names the hash of its plain bytes, as ingest wrote it; a
            // frame that no longer decodes is copied as it is (its chunks fail their hash on read).
            let headerId = id;
            if (loc.frame) {
              try {
                headerId = idOf(decodeFrame(body, loc.frame.size, id));
              } catch { /* copied as it is */ }
            }
            [nl] = await rw.append([{ id: headerId as Id, flags: loc.flags, plain: loc.frame ? loc.frame.size : loc.plain, body }]);
            if (loc.frame) frames.set(loc.offset, nl!);
          }
          const at: ChunkLocation = loc.frame ? { ...nl!, plain: loc.plain, frame: loc.frame } : loc.refs ? { ...nl!, refs: loc.refs, depth: loc.depth } : nl!;
          moved.push({ key: kChunk(id), value: encodeLocation(at) });
        }
        await rw.sync();
        await parts.db.batch(moved.map((m) => ({ type: 'put' as const, key: m.key, value: m.value })), { sync: true });
        report.repackedPacks++;
      } else {
        report.removedPacks++;
      }
      await parts.packs.drop(p.pack);
      await unlink(join(parts.packDir, packFileName(p.pack))).catch(() => {});
      opts.onProgress?.('repack', report.repackedPacks + report.removedPacks);
    }
  } finally {
    await rw.close();
  }
}

export async function pruneLocal(parts: LocalParts, mark: () => Promise<LiveSet>, opts: PruneOptions = {}): Promise<PruneReport> {
  return parts.writeLock.run(async () => {
    const t0 = performance.now();
    const dryRun = opts.dryRun ?? false;
    const live = await mark();
    opts.onProgress?.('mark', live.chunks.size);
    const dead = await deadRecords(parts, live);
    const byPack = await packUse(parts, live, dead);
    const { plan, freed } = await repackPlan(parts, byPack);
    const report: PruneReport = {
      dryRun, roots: live.roots, livePaths: live.paths.size, deadPaths: dead.p.map((k) => k.slice(2)).sort(),
      deadTrees: dead.t.length, deadFiles: dead.f.length, deadChunks: dead.c.length,
      deadChunkBytes: [...byPack.values()].reduce((a, p) => a + p.deadBytes, 0),
      freedBytes: freed, repackedPacks: 0, removedPacks: 0, seconds: 0,
    };
    if (!dryRun) {
      // Sweep: paths, then trees, then files, then chunk index entries.
      for (const keys of [dead.p, dead.t, dead.f, dead.c]) {
        for (let i = 0; i < keys.length; i += DELETE_BATCH) {
          await parts.db.batch(keys.slice(i, i + DELETE_BATCH).map((key) => ({ type: 'del' as const, key })), { sync: true });
        }
      }
      opts.onProgress?.('sweep', dead.c.length);
      await repack(parts, plan, report, opts);
      await parts.db.compactRange('\x00', '\xff').catch(() => {});
    }
    report.seconds = (performance.now() - t0) / 1000;
    return report;
  });
}
