/**
 * Path → node resolution for the mounted namespaces. A view is data in, nodes out: the FUSE ops
 * (ops.ts) never touch the store except through a view and the chunk reader, so views can be
 * injected and tested without a kernel.
 *
 *   main mount:     /store/<name>-<hash>/…   every store path
 *                   /profiles/<name>/<N>/…   each generation's merged tree
 *                   /profiles/<name>/current a symlink to "<N>"
 *                   /profiles/per-user/<user>/<name>/…   a user's own profiles, laid out the same
 *                   /usr                     an empty directory: the pointer view is bound here
 *   pointer mount:  /…                       the current generation of one profile
 */
import type { ObjectReader } from '../store/api.js';
import { FsError } from './errno.js';
import type { Id } from '../store/ids.js';
import type { PackedTree } from '../store/objects.js';
import { displayName, indexByName, TreeCache } from './trees.js';

export type Node =
  | { readonly type: 'dir'; readonly tree?: Id; readonly names?: readonly string[]; readonly size: number; readonly storePath?: string }
  | { readonly type: 'file'; readonly exe: boolean; readonly id: Id; readonly size: number; readonly storePath?: string }
  | { readonly type: 'symlink'; readonly target: Buffer; readonly storePath?: string };

export interface View {
  /** Resolves '/…' to a node; undefined when nothing is there. */
  lookup(path: string): Promise<Node | undefined>;
  /** The entries of a directory node (at `path`), in order. A node, when known, lets readdir
   * hand the kernel each entry's type, so `find` need not look every name up. */
  list(path: string, node: Node & { type: 'dir' }): Promise<Listing>;
  /** The same, when it can be answered from memory right now. */
  listCached?(node: Node & { type: 'dir' }): Listing | undefined;
}

export interface Listing {
  names: string[];
  nodes?: Node[];
}

export function splitPath(path: string): string[] {
  return path.split('/').filter((p) => p.length > 0);
}

/** The node of a packed tree's entry i. */
export function nodeAt(t: PackedTree, i: number, storePath: string | undefined): Node {
  const k = t.kind(i);
  if (k === 'dir') return { type: 'dir', tree: t.id(i)!, size: t.size(i), storePath };
  if (k === 'symlink') return { type: 'symlink', target: t.target(i)!, storePath };
  return { type: 'file', exe: k === 'exe', id: t.id(i)!, size: t.size(i), storePath };
}

/** Walks `parts` below a tree. A component under a file or symlink is ENOTDIR (the kernel
 * resolves symlinks itself, one component at a time). */
export async function walk(trees: TreeCache, root: Id, size: number, parts: readonly string[], storePath: string | undefined): Promise<Node | undefined> {
  let node: Node = { type: 'dir', tree: root, size, storePath };
  for (const p of parts) {
    if (node.type !== 'dir') throw new FsError('ENOTDIR');
    const t = await trees.get(node.tree!);
    const i = indexByName(t, p);
    if (i < 0) return undefined;
    node = nodeAt(t.tree, i, storePath);
  }
  return node;
}

export function listCachedTree(trees: TreeCache, node: Node & { type: 'dir' }): Listing | undefined {
  if (!node.tree) return undefined;
  const t = trees.peek(node.tree);
  if (!t) return undefined;
  return listingOf(t.tree, node.storePath);
}

function listingOf(t: PackedTree, storePath: string | undefined): Listing {
  const names: string[] = [], nodes: Node[] = [];
  for (let i = 0; i < t.length; i++) {
    names.push(displayName(t.name(i)));
    nodes.push(nodeAt(t, i, storePath));
  }
  return { names, nodes };
}

export async function listTree(trees: TreeCache, node: Node & { type: 'dir' }): Promise<Listing> {
  if (node.names) return { names: [...node.names] };
  if (!node.tree) return { names: [] };
  return listingOf((await trees.get(node.tree)).tree, node.storePath);
}

/** What the main view needs to know about profiles (injected: store/profiles.ts in the daemon). */
export interface ProfileSource {
  profiles(): Promise<string[]>;
  generations(profile: string): Promise<number[]>;
  current(profile: string): Promise<number | undefined>;
  generation(profile: string, n: number): Promise<{ tree: Id; env: string } | undefined>;
}

export function mainView(reader: ObjectReader, profiles: ProfileSource, trees: TreeCache, opts: { usrMountpoint: boolean }): View {
  const topNames = opts.usrMountpoint ? ['profiles', 'store', 'usr'] : ['profiles', 'store'];
  const rootSizes = new Map<Id, number>();
  // Store path records are immutable once written, so a hit is cached for good; a miss is not.
  const records = new Map<string, { tree: Id; size: number }>();
  const storeRoot = async (p: string): Promise<{ tree: Id; size: number } | undefined> => {
    let r = records.get(p);
    if (!r) {
      const rec = await reader.getStorePath(p).catch((e: unknown) => {
        if ((e as { code?: string }).code === 'MIQ_BAD_INPUT') return undefined;
        throw e;
      });
      if (!rec) return undefined;
      r = { tree: rec.tree, size: rec.size };
      records.set(p, r);
    }
    return r;
  };
  return {
    async lookup(path) {
      const parts = splitPath(path);
      if (parts.length === 0) return { type: 'dir', names: topNames, size: 0 };
      const [top, a, b, ...rest] = parts;
      if (top === 'usr' && opts.usrMountpoint) return parts.length === 1 ? { type: 'dir', names: [], size: 0 } : undefined;
      if (top === 'store') {
        if (a === undefined) return { type: 'dir', size: 0 };
        const r = await storeRoot(a);
        if (!r) return undefined;
        return walk(trees, r.tree, r.size, parts.slice(2), a);
      }
      if (top === 'profiles') {
        if (a === undefined) return { type: 'dir', size: 0 };
        if (a === PER_USER) {
          // per-user/<user>/<name>/… is laid out as a shared profile is, one level deeper.
          const users = perUser(await profiles.profiles());
          if (b === undefined) return users.size ? { type: 'dir', size: 0 } : undefined;
          const names = users.get(b);
          if (!names) return undefined;
          const [n, c, ...more] = rest;
          if (n === undefined) return { type: 'dir', size: 0 };
          if (!names.includes(n)) return undefined;
          return profileNode(`${PER_USER}/${b}/${n}`, c, more);
        }
        return profileNode(a, b, rest);
      }
      return undefined;
    },
    listCached: (node) => listCachedTree(trees, node),
    async list(path, node) {
      if (node.names || node.tree) return listTree(trees, node);
      const parts = splitPath(path);
      if (parts.length === 1 && parts[0] === 'store') return { names: (await reader.listStorePaths()).map((r) => r.path).sort() };
      if (parts[0] === 'profiles' && parts[1] === PER_USER && parts.length <= 4) {
        const users = perUser(await profiles.profiles());
        if (parts.length === 2) return { names: [...users.keys()].sort() };
        if (parts.length === 3) return { names: [...(users.get(parts[2]!) ?? [])].sort() };
        return generationNames(`${PER_USER}/${parts[2]}/${parts[3]}`);
      }
      if (parts.length === 1 && parts[0] === 'profiles') {
        const all = await profiles.profiles();
        const shared = all.filter((p) => !p.includes('/'));
        return { names: all.length > shared.length ? [...shared, PER_USER] : shared };
      }
      if (parts.length === 2 && parts[0] === 'profiles') return generationNames(parts[1]!);
      return { names: [] };
    },
  };

  async function generationNames(profile: string): Promise<Listing> {
    const gens = await profiles.generations(profile);
    const cur = await profiles.current(profile);
    return { names: [...(cur !== undefined ? ['current'] : []), ...gens.map(String)] };
  }

  async function profileNode(a: string, b: string | undefined, rest: string[]): Promise<Node | undefined> {
    const gens = await profiles.generations(a);
    if (gens.length === 0) return undefined;
    if (b === undefined) return { type: 'dir', size: 0 };
    if (b === 'current') {
      const cur = await profiles.current(a);
      if (cur === undefined) return undefined;
      if (rest.length) throw new FsError('ENOTDIR');
      return { type: 'symlink', target: Buffer.from(String(cur)) };
    }
    if (!/^[1-9][0-9]*$/.test(b)) return undefined;
    const g = await profiles.generation(a, Number(b));
    if (!g) return undefined;
    let size = rootSizes.get(g.tree);
    if (size === undefined) {
      const t = await trees.get(g.tree);
      size = 0;
      for (let i = 0; i < t.tree.length; i++) if (t.tree.kind(i) !== 'symlink') size += t.tree.size(i);
      rootSizes.set(g.tree, size);
    }
    return walk(trees, g.tree, size, rest, g.env);
  }
}

const PER_USER = 'per-user';

/** user → their profile names, from the full profile names (`per-user/<user>/<name>`). */
function perUser(names: readonly string[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const p of names) {
    const [top, user, name] = p.split('/');
    if (top !== PER_USER || !user || !name) continue;
    m.set(user, [...(m.get(user) ?? []), name]);
  }
  return m;
}

/** The pointer view: whatever tree `root()` names right now (the current generation). */
export function pointerView(trees: TreeCache, root: () => { tree: Id; env?: string } | undefined): View {
  // What a path names below a given root tree never changes, so resolutions are cached by
  // (root tree, path): a switch changes the key, not the entries.
  const memo = new Map<string, Node | undefined>();
  return {
    async lookup(path) {
      const r = root();
      const parts = splitPath(path);
      if (!r) return parts.length === 0 ? { type: 'dir', names: [], size: 0 } : undefined;
      const key = `${r.tree}${path}`;
      if (memo.has(key)) return memo.get(key);
      const n = await walk(trees, r.tree, 0, parts, r.env);
      memo.set(key, n);
      if (memo.size > 65_536) memo.delete(memo.keys().next().value as string);
      return n;
    },
    list: (_path, node) => listTree(trees, node),
    listCached: (node) => listCachedTree(trees, node),
  };
}
