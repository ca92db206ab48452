/**
 * `miq push`: writes the part of a closure that the destination lacks. Order makes a partial push
 * harmless: chunks before the file records and trees that name them, trees bottom-up, a path's
 * references before the path, every path document before the pointer. A path document that exists
 * means its whole closure is there, so a second push stops at the first existing document.
 */
import type { ChunkSource } from '../api.js';
import { MiqError } from '../errors.js';
import { type Id, idOf } from '../ids.js';
import { encodeFileRecord, encodeTree, parseStorePath, type FileRecord, type StorePathRecord, type Tree } from '../objects.js';
import { encodeFileIndex, makePathDoc, makePointer, parsePointerUnchecked } from './docs.js';
import { DirWriter, destDir } from './dirwriter.js';
import type { SigningKey } from './keys.js';
import { bundleParts, bundlePath, chunkPath, decodeHints, encodeBundle, encodeChunk, encodeTreePack, hintsPath, objectPath, pathDocPath, profilePath, TREE_PACK_MAX, treePackPath } from './layout.js';
import { forEachLimit } from './limit.js';

/** What push reads; the local Store satisfies it. */
export interface PushSource {
  readonly chunks: ChunkSource;
  getStorePath(path: string): Promise<StorePathRecord | undefined>;
  getTree(id: Id): Promise<Tree | undefined>;
  getFile(id: Id): Promise<FileRecord | undefined>;
}

export interface PushProfile {
  readonly name: string;
  readonly generation: number;
  readonly paths: readonly string[];
  readonly tree: Id;
  /** Members' priorities other than the default, so a client can merge them the same way. */
  readonly priorities?: Readonly<Record<string, number>>;
}

export interface PushOptions {
  paths?: readonly string[];
  profile?: PushProfile;
  key?: SigningKey;
  concurrency?: number;
  /** fsync each file before its rename (default true). */
  durable?: boolean;
  /** Also write bundles of small files and tree packs (layout.ts; default true). */
  bundles?: boolean;
  /** A prefetch list (layout.ts hints) for the profile's tree; replaces an older one. */
  hints?: Buffer;
  /** Called now and then with what has been written so far. */
  onProgress?: (p: { paths: number; closure: number; chunks: number; bytes: number }) => void;
}

export interface PushResult {
  dest: string;
  closure: number;
  pathsWritten: string[];
  chunksWritten: number;
  objectsWritten: number;
  bundlesWritten: number;
  treePacksWritten: number;
  hintsWritten?: number;
  bytesWritten: number;
  pointer?: { profile: string; sequence: number; written: boolean };
  signed: boolean;
}

export async function push(src: PushSource, dest: string, opts: PushOptions): Promise<PushResult> {
  const w = new DirWriter(destDir(dest), opts.durable ?? true);
  const conc = opts.concurrency ?? 8;
  const roots = [...(opts.paths ?? []), ...(opts.profile?.paths ?? [])];
  if (roots.length === 0 && !opts.profile) throw new MiqError('MIQ_BAD_INPUT', 'nothing to push: name store paths or --profile');
  if (opts.hints && !opts.profile) throw new MiqError('MIQ_BAD_INPUT', 'a hints file belongs to a profile: add --profile NAME');
  if (opts.hints) decodeHints(opts.hints, 'the hints file');
  const res: PushResult = { dest: w.root, closure: 0, pathsWritten: [], chunksWritten: 0, objectsWritten: 0, bundlesWritten: 0, treePacksWritten: 0, bytesWritten: 0, signed: !!opts.key };

  const order = await closureOrder(src, roots);
  res.closure = order.length;
  // Ids known to be at the destination in this run (saves a stat per repeated chunk/tree).
  const present = new Map<string, Promise<boolean>>();
  const put = (rel: string, make: () => Promise<Buffer> | Buffer): Promise<boolean> => {
    let p = present.get(rel);
    if (p) return p.then(() => false);
    p = (async () => (await w.has(rel)) ? false : w.write(rel, await make()))();
    present.set(rel, p);
    return p;
  };

  let lastShown = 0;
  const progress = (): void => {
    const now = performance.now();
    if (!opts.onProgress || now - lastShown < 100) return;
    lastShown = now;
    opts.onProgress({ paths: res.pathsWritten.length, closure: res.closure, chunks: res.chunksWritten, bytes: w.bytesWritten.n });
  };

  const pushTree = async (id: Id, index: Map<Id, Id>): Promise<void> => {
    const tree = await src.getTree(id);
    if (!tree) throw new MiqError('MIQ_MISSING', `tree ${id} is missing from the local store (run miq verify)`, { details: { id } });
    const bytes = encodeTree(tree.entries);
    if (idOf(bytes) !== id) throw new MiqError('MIQ_CORRUPT', `tree ${id} in the local store does not re-encode to its id`);
    const files = tree.entries.filter((e) => e.kind === 'file' || e.kind === 'exe');
    const single = new Set<Id>();
    const encoded = async (id: Id): Promise<Buffer> => {
      const plain = await src.chunks.get(id);
      if (!plain) throw new MiqError('MIQ_MISSING', `chunk ${id} is missing from the local store`, { details: { id } });
      return encodeChunk(plain);
    };
    await forEachLimit(files, conc, async (e) => {
      const rec = await src.getFile(e.id!);
      if (!rec) throw new MiqError('MIQ_MISSING', `file ${e.id} is missing from the local store`, { details: { id: e.id } });
      for (const c of rec.chunks) {
        if (await put(chunkPath(c.id), () => encoded(c.id))) {
          res.chunksWritten++;
          progress();
        }
      }
      if (rec.chunks.length > 1) {
        const rb = encodeFileRecord(rec);
        index.set(rec.id, idOf(rb));
        if (await put(objectPath(rec.id), () => rb)) res.objectsWritten++;
      } else if (rec.chunks.length === 1 && rec.chunks[0]!.id === rec.id) {
        single.add(rec.id);
      }
    });
    // Bundles after the chunk files they copy (a client falls back to those), before the tree.
    if (opts.bundles ?? true) {
      for (const part of bundleParts(tree.entries)) {
        const members = part.members.filter((m) => single.has(m.id));
        if (members.length < 2) continue;
        if (await put(bundlePath(id, part.part), async () => {
          const chunks: { id: Id; stored: Buffer }[] = [];
          await forEachLimit(members, conc, async (m) => {
            chunks.push({ id: m.id, stored: (await w.read(chunkPath(m.id))) ?? (await encoded(m.id)) });
          });
          const order = new Map(members.map((m, i) => [m.id, i]));
          chunks.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
          return encodeBundle(chunks);
        })) res.bundlesWritten++;
      }
    }
    for (const e of tree.entries) if (e.kind === 'dir') await pushTree(e.id!, index);
    if (await put(objectPath(id), () => bytes)) res.objectsWritten++;
  };

  /** Every tree under `root` as one file, after the trees themselves (see layout.ts). */
  const pushTreePack = async (root: Id): Promise<void> => {
    const rel = treePackPath(root);
    if (!(opts.bundles ?? true) || present.has(rel) || (await w.has(rel))) return;
    const trees: { id: Id; bytes: Buffer }[] = [];
    const seen = new Set<Id>([root]);
    let bytes = 0;
    for (let level: Id[] = [root]; level.length;) {
      const next: Id[] = [];
      for (const id of level) {
        const t = (await src.getTree(id))!;
        const b = encodeTree(t.entries);
        trees.push({ id, bytes: b });
        bytes += b.length + 36;
        // Too big to be worth one response: a client walks the tree files instead.
        if (bytes > TREE_PACK_MAX) return;
        for (const e of t.entries) if (e.kind === 'dir' && !seen.has(e.id!)) { seen.add(e.id!); next.push(e.id!); }
      }
      level = next;
    }
    if (await put(rel, () => encodeTreePack(trees))) res.treePacksWritten++;
  };

  for (const rec of order) {
    const docRel = pathDocPath(rec.path);
    if (await w.has(docRel)) continue;
    const index = new Map<Id, Id>();
    await pushTree(rec.tree, index);
    await pushTreePack(rec.tree);
    let indexId: Id | null = null;
    if (index.size > 0) {
      const ib = encodeFileIndex(index);
      indexId = idOf(ib);
      if (await put(objectPath(indexId), () => ib)) res.objectsWritten++;
    }
    await w.write(docRel, makePathDoc(rec, indexId, opts.key));
    res.pathsWritten.push(rec.path);
  }

  if (opts.profile) {
    const p = opts.profile;
    await pushTree(p.tree, new Map());
    await pushTreePack(p.tree);
    if (opts.hints) {
      const ids = decodeHints(opts.hints, 'the hints file');
      await w.write(hintsPath(p.tree), opts.hints, true);
      res.hintsWritten = ids.length;
    }
    const rel = profilePath(p.name);
    const old = await w.read(rel);
    const prev = old ? parsePointerUnchecked(old, p.name) : undefined;
    const prioKey = (x?: Readonly<Record<string, number>>): string => JSON.stringify(Object.entries(x ?? {}).sort());
    const same = prev && prev.tree === p.tree && prev.generation === p.generation && [...prev.paths].sort().join() === [...p.paths].sort().join()
      && prioKey(prev.priorities) === prioKey(p.priorities)
      && (!opts.key || prev.signatures.some((s) => s.keyName === opts.key!.name));
    const sequence = same ? prev.sequence : (prev?.sequence ?? 0) + 1;
    if (!same) {
      await w.write(rel, makePointer({ profile: p.name, sequence, generation: p.generation, paths: p.paths, tree: p.tree, time: new Date().toISOString(), priorities: p.priorities }, opts.key), true);
    }
    res.pointer = { profile: p.name, sequence, written: !same };
  }
  res.bytesWritten = w.bytesWritten.n;
  return res;
}

/** The closure of `roots` with every path after the paths it references. */
async function closureOrder(src: PushSource, roots: readonly string[]): Promise<StorePathRecord[]> {
  const out: StorePathRecord[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = async (p: string, from?: string): Promise<void> => {
    if (state.get(p) === 'done') return;
    if (state.get(p) === 'visiting') return; // self- or cyclic reference: order among them does not matter
    parseStorePath(p);
    state.set(p, 'visiting');
    const rec = await src.getStorePath(p);
    if (!rec) throw new MiqError('MIQ_MISSING', `store path ${p}${from ? ` (referenced by ${from})` : ''} is not in the local store`, { details: { path: p } });
    for (const r of rec.references) if (r !== p) await visit(r, p);
    state.set(p, 'done');
    out.push(rec);
  };
  for (const r of roots) await visit(r);
  return out;
}
