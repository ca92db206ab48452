/**
 * Walking immutable trees by name. Everything under a tree id is immutable, so decoded trees and
 * their name indexes are cached by id with no invalidation at all.
 */
import { isUtf8 } from 'node:buffer';
import type { ObjectReader } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import { packTree, type PackedTree, type Tree } from '../store/objects.js';

export interface IndexedTree {
  /** Packed (store/objects.ts PackedTree): the mount keeps thousands of trees, and entry objects
   * per name were most of its heap and its garbage collector's work. Names are found by binary
   * search (entries are sorted by name bytes), without an index. */
  readonly tree: PackedTree;
}

/**
 * fuse-native passes names (and symlink targets) between the kernel and JS as UTF-8 strings, so
 * a name whose bytes are not UTF-8 cannot be shown as it is. Such a name is shown with each byte
 * ≥ 0x80 as one private-use character U+F780–U+F7FF (ASCII bytes as they are), and a lookup of
 * that form finds the entry: the file stays listable, openable and distinct, under a stable
 * name. A valid UTF-8 name is always shown as it is.
 */
const ESC = 0xf700;
export function displayName(raw: Buffer): string {
  if (isUtf8(raw)) return raw.toString('utf8');
  let s = '';
  for (const b of raw) s += String.fromCharCode(b < 0x80 ? b : ESC + b);
  return s;
}

/** The raw-name key (latin1) a displayed escaped name stands for, if it is one. */
export function escapedKey(component: string): string | undefined {
  let esc = false;
  const bytes = Buffer.allocUnsafe(component.length);
  for (let i = 0; i < component.length; i++) {
    const c = component.charCodeAt(i);
    if (c < 0x80) bytes[i] = c;
    else if (c >= ESC + 0x80 && c <= ESC + 0xff) {
      bytes[i] = c - ESC;
      esc = true;
    } else return undefined;
  }
  // Only the form displayName makes: an escape of bytes that are valid UTF-8 is not a name.
  return esc && !isUtf8(bytes) ? bytes.toString('latin1') : undefined;
}

/** The index of the entry a FUSE name component names in a tree, or -1. */
export function indexByName(t: IndexedTree, component: string): number {
  const i = t.tree.find(Buffer.from(component, 'utf8'));
  if (i >= 0) return i;
  const k = escapedKey(component);
  return k === undefined ? -1 : t.tree.find(Buffer.from(k, 'latin1'));
}

/** The tree ids of a tree's first `width` subdirectories. */
export function subdirIds(t: PackedTree, width: number): Id[] {
  const out: Id[] = [];
  for (let i = 0; i < t.length && out.length < width; i++) if (t.isDir(i)) out.push(t.id(i)!);
  return out;
}

/** Index reads of trees loaded ahead in flight at once (see getAhead). */
const AHEAD_LOADS = 2;
/** Trees loaded ahead in one index read (getTreesPacked). */
const AHEAD_BATCH = 64;

export class TreeCache {
  private readonly map = new Map<Id, IndexedTree>();
  private readonly inflight = new Map<Id, Promise<IndexedTree>>();

  constructor(private readonly reader: ObjectReader, private readonly max = 20_000) {}

  /** The tree if it is cached, without waiting (the serving thread's fast path). */
  peek(id: Id): IndexedTree | undefined {
    return this.map.get(id);
  }

  /** Loads trees ahead without waiting (errors are for whoever asks later); `depth` more levels
   * of their subdirectories follow as each arrives, up to `width` per tree. */
  prefetch(ids: readonly Id[], depth: number, width = 256): void {
    for (const id of ids) {
      if (this.map.has(id) || this.inflight.has(id)) continue;
      this.getAhead(id).then((t) => {
        if (depth > 0) this.prefetch(subdirIds(t.tree, width), depth - 1, width);
      }, () => {});
    }
  }

  /** Loads trees and `depth` levels of their subdirectories (the first `width` of each, `max`
   * trees in all), breadth first, in batches; resolves with how many are in once they are (a
   * tree that fails is left for whoever asks for it later). */
  async warm(ids: readonly Id[], depth: number, width: number, max: number): Promise<number> {
    let level = ids.slice(0, max), n = 0, asked = level.length;
    for (let d = 0; d <= depth && level.length > 0; d++) {
      const got = await Promise.all(level.map((id) => this.getAhead(id).catch(() => undefined)));
      n += got.filter((t) => t !== undefined).length;
      level = d < depth ? got.flatMap((t) => (t ? subdirIds(t.tree, width) : [])).slice(0, max - asked) : [];
      asked += level.length;
    }
    return n;
  }

  /**
   * Loads every tree below `ids` (breadth first, at most `max` trees), at a lower priority than
   * getAhead: a batch takes from the walk's queue only when nothing else waits. A walk (find,
   * du) of a tree lists every directory of it, depth first; loaded only a few levels ahead of
   * it, the first subdirectory of a wide directory (share/doc, share/locale's ~700 each) was
   * often not loaded yet when the walk got there, and waited behind the hundreds of its siblings'
   * trees queued before it (a cold read of a tree from the index queues on the libuv pool).
   */
  prefetchAll(ids: readonly Id[], max: number): void {
    const seen = new Set<Id>();
    const visit = (id: Id): void => {
      if (seen.has(id) || seen.size >= max) return;
      seen.add(id);
      const hit = this.map.get(id);
      if (hit) return void subdirIds(hit.tree, max).forEach(visit);
      this.getLow(id).then((t) => subdirIds(t.tree, max).forEach(visit), () => {});
    };
    ids.forEach(visit);
  }

  private readonly aheadQueue: Id[] = [];
  private readonly lowQueue: Id[] = [];
  private readonly aheadWaiting = new Map<Id, { p: Promise<IndexedTree>; resolve: (t: IndexedTree) => void; reject: (e: unknown) => void; low?: boolean }>();
  private aheadRunning = 0;
  private pumpQueued = false;

  /**
   * A tree wanted ahead of need: loaded in batches of AHEAD_BATCH per index read, at most
   * AHEAD_LOADS reads at a time (the libuv pool has 4 threads), so the database reads someone
   * waits for are not queued behind them (the pool is first come, first served; measured: a
   * python start through usr had a LOOKUP wait 350 ms behind the trees of a directory's
   * subdirectories being loaded ahead one by one). One read per batch instead of one per tree:
   * a cold find of 4947 directories spent a third of the serving thread on per-get overhead
   * (promise, pool job, wake-up) and decoding. A get() of a tree still waiting here starts it at
   * once.
   */
  getAhead(id: Id): Promise<IndexedTree> {
    return this.queue(id, false);
  }

  /** getAhead behind everything getAhead queued (prefetchAll). */
  private getLow(id: Id): Promise<IndexedTree> {
    return this.queue(id, true);
  }

  private queue(id: Id, low: boolean): Promise<IndexedTree> {
    const hit = this.map.get(id);
    if (hit) return Promise.resolve(hit);
    const p = this.inflight.get(id);
    if (p) return p;
    const waiting = this.aheadWaiting.get(id);
    if (waiting) {
      // Wanted ahead now: queued again in front (the batch that takes it first loads it).
      if (waiting.low && !low) {
        waiting.low = false;
        this.aheadQueue.push(id);
        this.schedulePump();
      }
      return waiting.p;
    }
    let resolve!: (t: IndexedTree) => void, reject!: (e: unknown) => void;
    const w = { p: new Promise<IndexedTree>((res, rej) => ((resolve = res), (reject = rej))), resolve, reject, low };
    w.p.catch(() => {});
    this.aheadWaiting.set(id, w);
    (low ? this.lowQueue : this.aheadQueue).push(id);
    this.schedulePump();
    return w.p;
  }

  private schedulePump(): void {
    // Queued in this turn: batched once the turn ends (a listing queues all its subdirectories).
    if (!this.pumpQueued) {
      this.pumpQueued = true;
      queueMicrotask(() => {
        this.pumpQueued = false;
        this.pumpAhead();
      });
    }
  }

  private pumpAhead(): void {
    while (this.aheadRunning < AHEAD_LOADS && (this.aheadQueue.length > 0 || this.lowQueue.length > 0)) {
      const batch: Id[] = [];
      const ws: { resolve: (t: IndexedTree) => void; reject: (e: unknown) => void }[] = [];
      while (batch.length < AHEAD_BATCH && (this.aheadQueue.length > 0 || this.lowQueue.length > 0)) {
        const id = (this.aheadQueue.length > 0 ? this.aheadQueue : this.lowQueue).shift()!;
        const w = this.aheadWaiting.get(id);
        if (!w) continue;
        this.aheadWaiting.delete(id);
        batch.push(id);
        ws.push(w);
      }
      if (batch.length === 0) continue;
      this.aheadRunning++;
      const done = this.loadMany(batch).then((ps) => ps.forEach((p, i) => p.then(ws[i]!.resolve, ws[i]!.reject)));
      void done.finally(() => {
        this.aheadRunning--;
        this.pumpAhead();
      });
    }
  }

  /** Loads trees, in one index read when the reader can; each result on its own (a damaged
   * tree fails only its own promise). */
  private async loadMany(ids: readonly Id[]): Promise<Promise<IndexedTree>[]> {
    const r = this.reader;
    const todo = ids.filter((id) => !this.map.has(id) && !this.inflight.has(id));
    if (r.getTreesPacked && todo.length > 1) {
      const got = await r.getTreesPacked(todo).catch(() => undefined);
      // A batch that failed (a damaged tree) is read again one by one, so each gets its error.
      if (got) todo.forEach((id, i) => void (got[i] && !this.map.has(id) && !this.inflight.has(id) && this.add(id, got[i]!)));
    }
    return ids.map((id) => this.load(id));
  }

  private add(id: Id, tree: Tree): IndexedTree {
    const it: IndexedTree = { tree: packTree(tree) };
    this.map.set(id, it);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as Id);
    return it;
  }

  get(id: Id): Promise<IndexedTree> {
    const w = this.aheadWaiting.get(id);
    if (w) {
      this.aheadWaiting.delete(id);
      this.load(id).then(w.resolve, w.reject);
      return w.p;
    }
    return this.load(id);
  }

  private load(id: Id): Promise<IndexedTree> {
    const hit = this.map.get(id);
    if (hit) {
      this.map.delete(id);
      this.map.set(id, hit);
      return Promise.resolve(hit);
    }
    let p = this.inflight.get(id);
    if (!p) {
      p = (this.reader.getTreePacked ? this.reader.getTreePacked(id) : this.reader.getTree(id)).then((tree) => {
        this.inflight.delete(id);
        if (!tree) throw new MiqError('MIQ_MISSING', `tree ${id} is missing from the store`, { details: { id, kind: 'tree' } });
        return this.add(id, tree);
      }, (e: unknown) => {
        this.inflight.delete(id);
        throw e;
      });
      this.inflight.set(id, p);
    }
    return p;
  }
}
