/**
 * Ingest's tree step: the walked skeleton, with every file's id filled in, becomes tree objects
 * bottom-up; and the store path record's references from the hashes found in file bytes. Pure
 * (no I/O), shared by every store's ingest.
 */
import type { Id } from './ids.js';
import { HASH_LEN, treeId, type TreeEntry } from './objects.js';
import type { DirNode } from './walk.js';
import { miqchunkExport } from './miqchunk.js';

/** Sets `id` and `size` on every directory of `root` (whose files all have ids) and returns the
 * encoding of every tree by id. Iterative: nesting can be thousands deep. */
export function buildTrees(root: DirNode, treeBytes = new Map<Id, Buffer>()): Map<Id, Buffer> {
  buildCompleteTrees(root, treeBytes, true);
  return treeBytes;
}

/** native/miqchunk.c buildTrees: the pass below without JS per entry (MIQ_JS_TREES=1: the JS). */
const buildTreesC = miqchunkExport<(root: DirNode, all: boolean) => (string | Buffer | DirNode)[]>('buildTrees', 'MIQ_JS_TREES');

/**
 * Builds the trees of `root` that can be built now: every directory without an id whose files
 * all have ids and whose subdirectories are built (here or by an earlier call) gets `id` and
 * `size`, and its encoding goes into `out`. A directory already built is not visited again, so
 * calls while files are still being hashed (an update ingest: most of its subtrees are unchanged
 * packages whose files are all stat hits) leave only the rest to the commit. Returns the
 * directories built. With `all` (the commit) no directory is skipped: a file without an id then
 * throws in encodeTree, as any entry it refuses (a duplicate name) does either way.
 *
 * In C when the addon has it (the same order, bytes and ids: test/objects-c.test.ts compares
 * them with encodeTree over random trees). In a small-corpus N+1 the pass runs once, in the
 * serial tail before the last compress task, over all 4.5k directories: in JS, JIT-cold, 46-82 ms
 * (71-90 ms of the process's CPU, TurboFan compiling encodeTree and this loop beside it); in C
 * 20-37 ms, no compiles. What is left is reading the skeleton's objects through N-API (~1 us an
 * entry, about what warm JS takes). A directory the C pass refuses (a name encodeTree rejects, a
 * file without an id at the commit, anything unexpected) stops it and is encoded here by
 * encodeTree, which throws its own error for it; the pass then goes on in C.
 */
export function buildCompleteTrees(root: DirNode, out: Map<Id, Buffer>, all = false): number {
  if (root.id !== undefined) return 0;
  if (buildTreesC === undefined) return buildTreesJs(root, out, all);
  let built = 0;
  for (;;) {
    const r = buildTreesC(root, all);
    const n = r.length & ~1;
    for (let i = 0; i < n; i += 2) out.set(r[i] as Id, r[i + 1] as Buffer);
    built += n / 2;
    if (n === r.length) return built;
    buildDir(r[n] as DirNode, out);
    built++;
    if (root.id !== undefined) return built;
  }
}

/** buildCompleteTrees in JS (no addon, or MIQ_JS_TREES=1). */
function buildTreesJs(root: DirNode, out: Map<Id, Buffer>, all: boolean): number {
  const order: DirNode[] = [];
  const stack: DirNode[] = [root];
  while (stack.length > 0) {
    const d = stack.pop()!;
    order.push(d);
    for (const c of d.children) if (c.t === 'dir' && c.id === undefined) stack.push(c);
  }
  let built = 0;
  next: for (let i = order.length - 1; i >= 0; i--) {
    const d = order[i]!;
    // Children come later in `order`, so they were visited first: one without an id is not ready.
    if (!all) for (const c of d.children) if (c.t !== 'link' && c.id === undefined) continue next;
    buildDir(d, out);
    built++;
  }
  return built;
}

/** Encodes directory `d` (encodeTree: it throws for an entry it refuses), sets its id and size. */
function buildDir(d: DirNode, out: Map<Id, Buffer>): void {
  let size = 0;
  const entries: TreeEntry[] = d.children.map((c) => {
    if (c.t === 'file') {
      size += c.size;
      return { name: c.name, kind: c.exe ? 'exe' : 'file', size: c.size, id: c.id as Id };
    }
    if (c.t === 'link') return { name: c.name, kind: 'symlink', size: c.target.length, target: c.target };
    size += c.size!;
    return { name: c.name, kind: 'dir', size: c.size!, id: c.id as Id };
  });
  const { id, bytes } = treeId(entries);
  d.id = id;
  d.size = size;
  out.set(id, bytes);
}

/** The store paths that `candidates` (32-character hash runs found in file bytes) name: the
 * path being made itself (`self`, whose hash is its key's prefix) or one in `known`. Sorted. */
export function resolveReferences(candidates: Iterable<string>, self: { path: string; key: Id }, known: readonly { path: string }[]): string[] {
  const byHash = new Map<string, string>();
  for (const r of known) byHash.set(r.path.slice(-HASH_LEN), r.path);
  const out = new Set<string>();
  for (const h of candidates) {
    const p = h === self.key.slice(0, HASH_LEN) ? self.path : byHash.get(h);
    if (p !== undefined) out.add(p);
  }
  return [...out].sort();
}
