/**
 * Ingest's stat cache: `s/<dev>.<ino>` names the file id last read from that inode, with a
 * fingerprint of what stat said then (dev, ino, size, mtime, ctime). An ingest into a store that
 * has files looks each walked file up first and never opens one whose fingerprint matches and
 * whose file record is still there (git's index and restic's parent snapshot do the same).
 *
 * Why it is safe: ctime cannot be set by users, so any write to the inode after the entry was
 * made changes the fingerprint. The racy case (a write within the timestamp's granularity of
 * the read) is avoided as git does: an entry is written only for files whose mtime and ctime
 * are older than the ingest's start by RACY_MS, so a later write always moves ctime past them.
 *
 * Entries are written for files whose content the ingest stored (see ingest.ts). Cost: 8 bytes
 * of fingerprint + the 32-byte id + 1 byte (has references) per such file (about 1 MB of index
 * per 20k files); on the many-small-files corpus the unchanged files of release N+1 are then not
 * read at all, and those without references cost no `r/` lookup either.
 * MIQ_NO_STAT_CACHE=1 turns it off (every file is read, as content decides).
 */
import type { Id } from './ids.js';
import { kStat } from './keys.js';
import type { FileStat } from './walk.js';

export const STAT_CACHE_ON = process.env.MIQ_NO_STAT_CACHE !== '1';
/** Files changed this recently before the ingest started get no entry (see above). */
export const RACY_MS = 2000;
const FP_BYTES = 8;
/** An entry: fingerprint, file id, and (since 2026-12-03) one byte saying whether the file has
 * reference candidates (an `r/` entry). Entries of 40 bytes, without that byte, are still read:
 * their file's `r/` entry is looked up as before. */
const OLD_VALUE_BYTES = FP_BYTES + 32;
const VALUE_BYTES = OLD_VALUE_BYTES + 1;
const isEntry = (v: Buffer): boolean => v.length === VALUE_BYTES || v.length === OLD_VALUE_BYTES;

export function statKey(st: FileStat): string {
  return kStat(`${st.dev.toString(36)}.${st.ino.toString(36)}`);
}

/** One scratch array for the fingerprinted numbers: a new one per file was most of the cost of
 * checking 18 794 entries (release N+1 of the small corpus). */
const fpNums = new Float64Array(5);
const fpWords = new Uint32Array(fpNums.buffer);
const fpOut = Buffer.alloc(FP_BYTES);

/** murmur3's 32-bit finaliser: every input bit moves every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * 64 bits of (dev, ino, size, mtime, ctime): two murmur3-style lanes with different seeds over
 * the numbers' ten 32-bit words. Not BLAKE3 (as before 2026-12-02 late): one native call per file
 * was ~5 us, 181 ms of the main thread's serial commit on the small corpus's whole tree (36k
 * files). The fingerprint only tells "this inode's stat changed" from "it did not" (no adversary
 * picks a file's ctime), so a well-mixed 64-bit value does what the truncated hash did. Entries
 * written with the old fingerprint no longer match: each such file is read once more, then gets
 * a new entry (the cache's usual miss).
 */
function fingerprint(st: FileStat): Buffer {
  fpNums[0] = st.dev;
  fpNums[1] = st.ino;
  fpNums[2] = st.size;
  fpNums[3] = st.mtimeMs;
  fpNums[4] = st.ctimeMs;
  let a = 0x6d697131, b = 0x73746174; // 'miq1', 'stat'
  for (let i = 0; i < 10; i++) {
    const k = Math.imul(fpWords[i]!, 0xcc9e2d51);
    a = Math.imul(((a ^ ((k << 15) | (k >>> 17))) << 13) | ((a ^ ((k << 15) | (k >>> 17))) >>> 19), 5) + 0xe6546b64;
    const k2 = Math.imul(fpWords[i]!, 0x1b873593);
    b = Math.imul(((b ^ ((k2 << 13) | (k2 >>> 19))) << 17) | ((b ^ ((k2 << 13) | (k2 >>> 19))) >>> 15), 9) + 0x38b34ae5;
    b ^= a >>> 7;
  }
  fpOut.writeUInt32LE(fmix32(a ^ 40), 0);
  fpOut.writeUInt32LE(fmix32(b ^ 40 ^ fmix32(a)), 4);
  return fpOut;
}

/** `hasRefs`: whether the file has reference candidates (the index has its `r/` entry). */
export function encodeStatEntry(st: FileStat, id: string, hasRefs: boolean): Buffer {
  const out = Buffer.allocUnsafe(VALUE_BYTES);
  fingerprint(st).copy(out, 0);
  out.write(id, FP_BYTES, 'hex');
  out[OLD_VALUE_BYTES] = hasRefs ? 1 : 0;
  return out;
}

/** The id an entry names when it still matches `st`, else undefined. */
export function statEntryId(v: Buffer | undefined, st: FileStat): Id | undefined {
  return statEntryHit(v, st)?.id;
}

/** What a matching entry says: the file id, and whether the file has reference candidates
 * (undefined for an entry written before that was recorded: look its `r/` entry up). */
export function statEntryHit(v: Buffer | undefined, st: FileStat): { id: Id; hasRefs: boolean | undefined } | undefined {
  if (v === undefined || !isEntry(v)) return undefined;
  if (fingerprint(st).compare(v, 0, FP_BYTES) !== 0) return undefined;
  return { id: v.toString('hex', FP_BYTES, OLD_VALUE_BYTES) as Id, hasRefs: v.length === VALUE_BYTES ? v[OLD_VALUE_BYTES] !== 0 : undefined };
}

/** The id an entry names, whatever the file looks like now (gc keeps entries of live files). */
export function statEntryFile(v: Buffer): string | undefined {
  return isEntry(v) ? v.toString('hex', FP_BYTES, OLD_VALUE_BYTES) : undefined;
}

/** Whether a file read now may get an entry: not changed within RACY_MS before `startMs`. */
export function cacheable(st: FileStat, startMs: number): boolean {
  return st.mtimeMs < startMs - RACY_MS && st.ctimeMs < startMs - RACY_MS;
}
