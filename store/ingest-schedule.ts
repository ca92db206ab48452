/**
 * Ingest's scheduling: which files go to the workers together, and whether a file is first only
 * hashed. Pure (no I/O): the pipeline feeds it files as the walk finds them and asks for the
 * next task when a worker is free.
 *
 * Small files travel in batches (one worker task per few hundred files: a task costs a message
 * hop and a promise each way). Files are first only hashed when the store already has files: on
 * a re-ingest or an update most are known, and a known file then costs one read, one hash and
 * one index lookup, not a chunking and a result per chunk; if most turn out new, scheduling
 * switches to chunking directly (the hash pass would be wasted work), judged apart for large
 * files (by bytes) and small ones (by files: HASH_FIRST_MIN and under).
 */
export const SMALL_BATCH_FILES = 256;
export const SMALL_BATCH_BYTES = 8 << 20;
/** A file this big is a task of its own. */
export const ALONE_BYTES = 1 << 20;
export const HASH_FIRST_MIN = 64 * 1024;
export const HASH_BATCH_BYTES = 32 << 20;
/** Hashed bytes of large files, and small files, after which hash-first is judged for each (and
 * dropped when most were new). */
export const ADAPT_AFTER_BYTES = 64 << 20;
export const ADAPT_AFTER_FILES = 1024;

export interface Sized {
  readonly size: number;
}

/** Whether a file counts as small (scheduled in batches, judged by files for hash-first). */
export const isSmall = (f: Sized): boolean => f.size <= HASH_FIRST_MIN;

/** The files from `pos` on that make one task: up to `maxFiles` and `maxBytes`, and a file over
 * ALONE_BYTES only ever alone. */
export function takeBatch<T extends Sized>(list: readonly T[], pos: number, maxFiles: number, maxBytes: number): T[] {
  const files: T[] = [];
  let bytes = 0;
  while (pos + files.length < list.length) {
    const f = list[pos + files.length]!;
    if (files.length > 0 && (f.size > ALONE_BYTES || files.length >= maxFiles || bytes + f.size > maxBytes)) break;
    files.push(f);
    bytes += f.size;
    if (f.size > ALONE_BYTES) break;
  }
  return files;
}

export interface Planned<T> {
  kind: 'scan' | 'hash';
  files: T[];
}

export class ScanSchedule<T extends Sized> {
  private readonly small: T[] = [];
  private readonly large: T[] = [];
  private readonly again: T[] = [];
  private smallPos = 0;
  private largePos = 0;
  private hashedBytes = 0;
  private knownBytes = 0;
  private hashedFiles = 0;
  private knownFiles = 0;
  /** Files handed to `add` (the ones that will be read). */
  queued = 0;

  /** Whether small files are first only hashed too (see hashedSmall). */
  hashSmall: boolean;

  constructor(public hashFirst: boolean) {
    this.hashSmall = hashFirst;
  }

  add(f: T): void {
    (isSmall(f) ? this.small : this.large).push(f);
    this.queued++;
  }

  /** A hashed file the store did not know: it is scanned after all. */
  rescan(f: T): void {
    this.again.push(f);
  }

  /** Hash results of large files came back: `bytes` hashed, `known` of them already in the store. */
  hashed(bytes: number, known: number): void {
    this.hashedBytes += bytes;
    this.knownBytes += known;
    if (this.hashFirst && this.hashedBytes >= ADAPT_AFTER_BYTES && this.knownBytes < this.hashedBytes / 2) this.hashFirst = false;
  }

  /** Hash results of small files came back: `files` hashed, `known` of them already in the
   * store. Judged apart from the large ones: a few big new files (a rebuilt library) must not
   * turn hashing off for thousands of small unchanged ones, nor the other way round. */
  hashedSmall(files: number, known: number): void {
    this.hashedFiles += files;
    this.knownFiles += known;
    if (this.hashSmall && this.hashedFiles >= ADAPT_AFTER_FILES && this.knownFiles < this.hashedFiles / 2) this.hashSmall = false;
  }

  /** The next task, or undefined when nothing is ready (more may come while the walk runs);
   * with `noHash`, a scan only. */
  next(walkDone: boolean, noHash = false): Planned<T> | undefined {
    if (this.again.length > 0) return { kind: 'scan', files: this.again.splice(0, takeBatch(this.again, 0, SMALL_BATCH_FILES, SMALL_BATCH_BYTES).length) };
    if (this.largePos < this.large.length && !(noHash && this.hashFirst)) {
      const files = takeBatch(this.large, this.largePos, SMALL_BATCH_FILES, this.hashFirst ? HASH_BATCH_BYTES : SMALL_BATCH_BYTES);
      this.largePos += files.length;
      return { kind: this.hashFirst ? 'hash' : 'scan', files };
    }
    // While the walk runs, wait until a batch of small files is worth a task.
    if (this.smallPos < this.small.length && !(noHash && this.hashSmall) && (walkDone || this.small.length - this.smallPos >= SMALL_BATCH_FILES / 4)) {
      const files = takeBatch(this.small, this.smallPos, SMALL_BATCH_FILES, SMALL_BATCH_BYTES);
      this.smallPos += files.length;
      return { kind: this.hashSmall ? 'hash' : 'scan', files };
    }
    return undefined;
  }
}
