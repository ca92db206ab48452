/**
 * Ingest's pack-then-index step: compressed chunks are appended to the pack in arrival order,
 * and their index entries are written in batches, each only after the pack bytes it names are
 * synced (a crash leaves unreferenced pack bytes at worst, never an index entry naming nothing).
 */
import type { Id } from './ids.js';
import type { CompressedItem } from './ingest-worker.js';
import { kChunk } from './keys.js';
import type { Db } from './local-parts.js';
import { ENTRY_HEADER, encodeLocation, type PackWriter } from './pack.js';

const INDEX_FLUSH_ENTRIES = 4096;
const INDEX_FLUSH_BYTES = 64 << 20;
const BATCH_SLICE = 4096;

export class IndexWriter {
  private pending: { type: 'put'; key: string; value: Buffer }[] = [];
  private pendingBytes = 0;
  private chain: Promise<void> = Promise.resolve();
  /** Bytes this ingest added to the store (bodies, headers, index entries). */
  newBytes = 0;
  newChunks = 0;
  /** Index bytes written (keys and values, stat entries too): when it is large the ingest turns
   * LevelDB's log into a table at its end. */
  indexBytes = 0;

  /** Pack bytes up to here are named by the index; a failed ingest cuts the pack back to it. */
  private indexed: ReturnType<PackWriter['mark']>;

  constructor(private readonly db: Db, private readonly writer: PackWriter) {
    this.indexed = writer.mark();
  }

  /** Appends compressed chunks to the pack; their index entries follow in a later batch.
   * `queued` runs once their entries are queued and before that batch is cut, so entries it
   * puts (file records naming these chunks) go into the same batch. */
  append(compressed: readonly CompressedItem[], queued?: () => void): Promise<void> {
    const items = compressed.map((it) => ({ id: it.id as Id, flags: it.flags, plain: it.plainLen, body: it.body, refs: it.refs, depth: it.depth, members: it.members }));
    const run = this.chain.then(async () => {
      const locs = await this.writer.append(items);
      locs.forEach((loc, i) => {
        const it = items[i]!;
        this.newBytes += loc.stored + ENTRY_HEADER;
        this.pendingBytes += loc.stored;
        // A shared frame is one pack entry; the index names each chunk in it.
        const named = it.members
          ? it.members.map((m) => ({ id: m.id, loc: { ...loc, plain: m.len, frame: { off: m.off, size: loc.plain } } }))
          : [{ id: it.id, loc: it.refs ? { ...loc, refs: it.refs, depth: it.depth } : loc }];
        for (const n of named) {
          const key = kChunk(n.id);
          const value = encodeLocation(n.loc);
          this.pending.push({ type: 'put', key, value });
          this.newBytes += key.length + value.length;
          this.indexBytes += key.length + value.length;
        }
        this.newChunks += named.length;
        this.chunkEntries += named.length;
      });
      queued?.();
      // Only chunk entries count towards a batch: each flush syncs the pack first.
      if (this.due()) await this.flush();
    });
    this.chain = run.catch(() => {});
    return run;
  }

  private chunkEntries = 0;

  private due(): boolean {
    return this.chunkEntries >= INDEX_FLUSH_ENTRIES || this.pendingBytes >= INDEX_FLUSH_BYTES;
  }

  /**
   * An entry that names only what earlier appends indexed (a file record whose chunks are all in
   * the pack, its references, a stat entry): it goes into the same index batch as those chunks'
   * entries or a later one, so a crash never leaves it naming a chunk the index lacks. Written
   * while the workers still scan, instead of in the commit's one batch after them (on the small
   * corpus's whole tree that batch was ~65k entries, ~0.5 s of the main thread with nothing
   * else running). Does not trigger a flush: the chunk appends do. `counted`: part of newBytes.
   */
  put(key: string, value: Buffer, counted: boolean): void {
    this.pending.push({ type: 'put', key, value });
    this.indexBytes += key.length + value.length;
    if (counted) this.newBytes += key.length + value.length;
  }

  /** Waits for every append so far. */
  settled(): Promise<void> {
    return this.chain;
  }

  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.chunkEntries = 0;
    await this.writer.sync(); // bodies on disk before the index names them
    // In slices, in order: classic-level reads a batch's operations on the calling thread (~5 us
    // each), and since file records travel with the chunk entries a batch holds ~3x as many; one
    // call for all held the main thread, and so the workers waiting for their next task, ~3x as
    // long. A record still never precedes its chunks (a later slice is a later batch).
    for (let i = 0; i < batch.length; i += BATCH_SLICE) await this.db.batch(batch.slice(i, i + BATCH_SLICE));
    this.indexed = this.writer.mark();
  }

  /**
   * A failed ingest: what no index entry names yet is cut off the pack, so a full disk gets its
   * space back and no torn entry is left at the tail. Entries already indexed stay (garbage for
   * gc). The store's write lock is held for the whole ingest, so nothing else appended since.
   */
  async abandon(): Promise<void> {
    this.pending = [];
    this.pendingBytes = 0;
    this.chunkEntries = 0;
    await this.writer.truncateTo(this.indexed);
  }
}
