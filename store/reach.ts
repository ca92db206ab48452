/** Traversal of what store paths reach: closures over references, trees, files, chunks. */
import { MiqError } from './errors.js';
import type { Id } from './ids.js';
import type { MetaStore, ObjectReader } from './api.js';
import type { StorePathRecord } from './objects.js';
import { ROOT_PREFIX } from './keys.js';

/** GC roots: pins (`roots/<name>` → path) and profile generations (`gcroots/<any>` → JSON array
 * of paths, written by the profiles module). */
export async function rootPaths(store: MetaStore): Promise<Set<string>> {
  const out = new Set<string>();
  for (const { value } of await store.listMeta(ROOT_PREFIX)) out.add(value.toString());
  for (const { key, value } of await store.listMeta('gcroots/')) {
    try {
      for (const p of JSON.parse(value.toString()) as string[]) out.add(p);
    } catch (e) {
      throw new MiqError('MIQ_CORRUPT', `gc root ${key} is not a JSON list of store paths`, { cause: e });
    }
  }
  return out;
}

/** The runtime closure of `paths` over references (missing referents are skipped). */
export async function closure(store: Pick<ObjectReader, 'getStorePath'>, paths: Iterable<string>): Promise<Map<string, StorePathRecord>> {
  const out = new Map<string, StorePathRecord>();
  const todo = [...paths];
  while (todo.length > 0) {
    const p = todo.pop()!;
    if (out.has(p)) continue;
    const r = await store.getStorePath(p);
    if (!r) continue;
    out.set(p, r);
    for (const ref of r.references) if (!out.has(ref)) todo.push(ref);
  }
  return out;
}

/** Adds to `live` every chunk a live delta chunk is compressed against, transitively: those
 * bases must stay as long as their deltas do. `refsOf`: a delta chunk's id → its bases. */
export function addDeltaBases(live: Set<string>, refsOf: ReadonlyMap<string, readonly string[]>): void {
  const todo = [...live].filter((id) => refsOf.has(id));
  while (todo.length > 0) {
    for (const r of refsOf.get(todo.pop()!) ?? []) {
      if (!live.has(r)) {
        live.add(r);
        if (refsOf.has(r)) todo.push(r);
      }
    }
  }
}

export interface Visitor {
  tree?(id: Id): void;
  file?(id: Id, size: number): void;
  chunk?(id: Id, length: number): void;
}

/** Visits every tree, file and chunk under `tree`, each tree once per `seenTrees`. Missing
 * objects are reported to `onMissing` and skipped. */
export async function visitTree(store: Pick<ObjectReader, 'getTree' | 'getFile'>, tree: Id, v: Visitor, seenTrees: Set<string>, seenFiles: Set<string>, onMissing?: (kind: 'tree' | 'file', id: Id) => void): Promise<void> {
  const stack: Id[] = [tree];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (seenTrees.has(id)) continue;
    seenTrees.add(id);
    v.tree?.(id);
    let t;
    try {
      t = await store.getTree(id);
    } catch {
      t = undefined;
    }
    if (!t) {
      onMissing?.('tree', id);
      continue;
    }
    for (const e of t.entries) {
      if (e.kind === 'dir') stack.push(e.id!);
      else if (e.kind === 'file' || e.kind === 'exe') {
        if (seenFiles.has(e.id!)) continue;
        seenFiles.add(e.id!);
        v.file?.(e.id!, e.size);
        if (v.chunk) {
          let f;
          try {
            f = await store.getFile(e.id!);
          } catch {
            f = undefined;
          }
          if (!f) {
            onMissing?.('file', e.id!);
            continue;
          }
          for (const c of f.chunks) v.chunk(c.id, c.length);
        }
      }
    }
  }
}
