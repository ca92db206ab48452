/**
 * Walking immutable trees by name. Everything under a tree id is immutable, so decoded trees and
 * their name indexes are cached by id with no invalidation at all.
 */
import type { ObjectReader } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import type { Tree, TreeEntry } from '../store/objects.js';

export interface IndexedTree {
  readonly tree: Tree;
  /** latin1 of the raw name bytes → entry (latin1 is a 1:1 byte mapping). */
  readonly byName: Map<string, TreeEntry>;
}

/** FUSE hands names as UTF-8-decoded strings; tree names are raw bytes. */
export const nameKey = (component: string): string => Buffer.from(component, 'utf8').toString('latin1');

export class TreeCache {
  private readonly map = new Map<Id, IndexedTree>();
  private readonly inflight = new Map<Id, Promise<IndexedTree>>();

  constructor(private readonly reader: ObjectReader, private readonly max = 20_000) {}

  /** The tree if it is cached, without waiting (the serving thread's fast path). */
  peek(id: Id): IndexedTree | undefined {
    return this.map.get(id);
  }

  get(id: Id): Promise<IndexedTree> {
    const hit = this.map.get(id);
    if (hit) {
      this.map.delete(id);
      this.map.set(id, hit);
      return Promise.resolve(hit);
    }
    let p = this.inflight.get(id);
    if (!p) {
      p = this.reader.getTree(id).then((tree) => {
        this.inflight.delete(id);
        if (!tree) throw new MiqError('MIQ_MISSING', `tree ${id} is missing from the store`, { details: { id, kind: 'tree' } });
        const byName = new Map<string, TreeEntry>();
        for (const e of tree.entries) byName.set(e.name.toString('latin1'), e);
        const it = { tree, byName };
        this.map.set(id, it);
        if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as Id);
        return it;
      }, (e: unknown) => {
        this.inflight.delete(id);
        throw e;
      });
      this.inflight.set(id, p);
    }
    return p;
  }
}
