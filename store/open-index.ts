/**
 * Opening the LevelDB index when the disk is full or read-only.
 *
 * LevelDB has no read-only mode: every open takes a lock file (opened O_RDWR|O_CREAT), replays
 * its log into a new table and writes a new manifest. On a full disk or a read-only file system
 * that fails, and with it every command, even `paths`, `cat` and the `gc` that would free space.
 *
 * Two answers, chosen for what each situation needs:
 * - A full disk: the store keeps a small reserve file (RESERVE_BYTES of real blocks). When the
 *   open fails for want of space, the reserve is deleted and the open retried, so every command,
 *   gc included, runs as usual; the reserve comes back on a later open once there is room. gc
 *   needs a writable index (it deletes entries and repacks), which a copy could not give.
 * - A read-only file system (or a full disk without a reserve): the index is copied to a private
 *   temporary directory and opened there, read-only (puts, batches and pack writes are refused
 *   with MIQ_READ_ONLY). The copy costs the index's size once per process (the packs, the bulk,
 *   stay where they are); a sealed read-only index format would avoid it but be a second format
 *   to keep in step, for a rare case.
 */
import { cp, mkdtemp, open, rm, stat, statfs, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { MiqError, isNoSpace } from './errors.js';
import type { Db } from './local-parts.js';

export const RESERVE_BYTES = 8 << 20;
const reserveOf = (dir: string): string => join(dir, 'reserve');

export interface OpenedIndex {
  db: Db;
  /** Why the store is read-only in this process (undefined: writable). */
  readOnly?: string;
  /** Removes the private copy, if one was made. */
  cleanup(): Promise<void>;
}

/** Tables written from now on use 16 KiB blocks (LevelDB's default is 4 KiB): snappy then finds
 * more of the repeats between neighbouring entries (the hex ids' namespaces, the zero bytes of
 * locations and sizes); the index after the many-small-files corpus's release N and N+1 went
 * 6.50 -> 6.27 MB (64 KiB: 5.92 MB, but a cold point lookup would decompress 64 KiB). Older
 * tables keep their block size; every LevelDB reads both, so this is no format change. */
const BLOCK_SIZE = 16 << 10;

/** LevelDB's memory table holds 16 MiB before it is written out as a table (its default is 4 MiB).
 * The index of the many-small-files corpus's release N (18 794 files) is ~6 MB as a table: with
 * 4 MiB it was flushed once during the ingest and once at its end (ingest.ts), two tables that
 * overlap in every key range. Each later lookup that misses (an update's new inodes, ~7.2k in
 * its release N+1) then reads both, and after ~200 such reads LevelDB's seek compaction merged
 * them (62.8k keys, 56 ms on tmpfs, 90 ms on ext4) inside that update. With 16 MiB the ingest's
 * index is one table, written once at its end: no merge later, one flush fewer. Up to two such
 * tables are in memory while one is written. */
const WRITE_BUFFER = 16 << 20;

const newDb = (loc: string): Db => new ClassicLevel<string, Buffer>(loc, { keyEncoding: 'utf8', valueEncoding: 'buffer', blockSize: BLOCK_SIZE, writeBufferSize: WRITE_BUFFER });

export function isReadOnlyFs(e: unknown): boolean {
  const err = e as { code?: string; message?: string; cause?: unknown } | undefined;
  if (!err) return false;
  if (err.code === 'EROFS') return true;
  if (/read-only file system/i.test(err.message ?? '')) return true;
  return err.cause !== undefined && err.cause !== e && isReadOnlyFs(err.cause);
}

/** Opens `<dir>/db`; `onWarn` hears about a released reserve or a read-only open. Errors other
 * than a full or read-only disk are thrown as LevelDB gave them. */
export async function openIndex(dir: string, onWarn: (line: string) => void): Promise<OpenedIndex> {
  const loc = join(dir, 'db');
  let first: unknown;
  try {
    const db = newDb(loc);
    await db.open();
    await ensureReserve(dir);
    return { db, cleanup: async () => {} };
  } catch (e) {
    first = e;
  }
  if (isNoSpace(first) && (await releaseReserve(dir))) {
    try {
      const db = newDb(loc);
      await db.open();
      onWarn(`the disk holding the store at ${dir} is full: released its ${RESERVE_BYTES >> 20} MiB reserve to open it. Free space (\`miq gc\`); the reserve comes back when there is room`);
      return { db, cleanup: async () => {} };
    } catch (e) {
      first = e;
    }
  }
  if (!isNoSpace(first) && !isReadOnlyFs(first)) throw first;
  const why = isReadOnlyFs(first) ? `the store at ${dir} is on a read-only file system` : `the disk holding the store at ${dir} is full`;
  const copy = await mkdtemp(join(tmpdir(), 'miq-index-')).catch((e: unknown) => {
    throw new MiqError('MIQ_IO', `${why}, and no private copy of its index can be made in ${tmpdir()} either: ${(e as Error).message}`, { cause: e });
  });
  try {
    await cp(loc, join(copy, 'db'), { recursive: true, filter: (src) => !src.endsWith('/LOCK') });
    const db = newDb(join(copy, 'db'));
    await db.open();
    const readOnly = `${why}: it can be listed, read, verified, exported and mounted, not changed${isNoSpace(first) ? ' (free some space on that device, then retry)' : ''}`;
    onWarn(`${why}; opened a private copy of its index read-only`);
    return { db: readOnlyDb(db, readOnly), readOnly, cleanup: () => rm(copy, { recursive: true, force: true }) };
  } catch (e) {
    await rm(copy, { recursive: true, force: true }).catch(() => {});
    throw new MiqError('MIQ_IO', `${why}, and its index could not be opened from a private copy: ${(e as Error).message}`, { cause: e });
  }
}

/** The index with every write refused: a write to the private copy would be silently lost. */
function readOnlyDb(db: Db, why: string): Db {
  const refuse = (): never => { throw new MiqError('MIQ_READ_ONLY', why); };
  return new Proxy(db, {
    get(t, prop) {
      if (prop === 'put' || prop === 'del' || prop === 'batch' || prop === 'clear') return refuse;
      const v = Reflect.get(t, prop, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

/** Makes sure the reserve exists with real blocks; best effort (no room: try again next time). */
async function ensureReserve(dir: string): Promise<void> {
  const f = reserveOf(dir);
  const have = await stat(f).then((s) => s.size >= RESERVE_BYTES && s.blocks * 512 >= RESERVE_BYTES, () => false);
  if (have) return;
  // Only with room to spare: taking the last free blocks back at once would make the next open
  // fail again, and release it again, on every command while the disk stays nearly full.
  const free = await statfs(dir).then((st) => st.bavail * st.bsize, () => 0);
  if (free < 4 * RESERVE_BYTES) return;
  let fh;
  try {
    fh = await open(f, 'w', 0o600);
    // Zeros written, not a hole: a sparse file would reserve nothing.
    const block = Buffer.alloc(1 << 20);
    for (let off = 0; off < RESERVE_BYTES; off += block.length) await fh.write(block, 0, block.length, off);
    await fh.close();
  } catch {
    await fh?.close().catch(() => {});
    await unlink(f).catch(() => {});
  }
}

async function releaseReserve(dir: string): Promise<boolean> {
  try {
    await unlink(reserveOf(dir));
    return true;
  } catch {
    return false;
  }
}
