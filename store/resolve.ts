/** Resolves `PATH[/SUB]` (PATH a store path, optionally under /miq/store/) to a node. */
import type { ObjectReader } from './api.js';
import { MiqError } from './errors.js';
import type { Id } from './ids.js';
import type { StorePathRecord, TreeEntry } from './objects.js';

export type Resolved =
  | { kind: 'dir'; record: StorePathRecord; tree: Id; sub: string; size: number }
  | { kind: 'file' | 'exe'; record: StorePathRecord; id: Id; sub: string; size: number }
  | { kind: 'symlink'; record: StorePathRecord; target: Buffer; sub: string; size: number };

export function splitStoreArg(arg: string): { path: string; sub: string[] } {
  let s = arg.replace(/^\/miq\/store\//, '').replace(/^store\//, '');
  s = s.replace(/\/+$/, '');
  const parts = s.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) throw new MiqError('MIQ_BAD_INPUT', `"${arg}" names no store path; \`miq paths\` lists them`);
  return { path: parts[0]!, sub: parts.slice(1) };
}

/** Finds a store path by its full name, or by a unique prefix / bare name. */
export async function findStorePath(store: ObjectReader, p: string): Promise<StorePathRecord> {
  const exact = await store.getStorePath(p);
  if (exact) return exact;
  const all = await store.listStorePaths();
  const hits = all.filter((r) => r.path.startsWith(p) || r.name === p);
  if (hits.length === 1) return hits[0]!;
  if (hits.length > 1) throw new MiqError('MIQ_BAD_INPUT', `"${p}" matches ${hits.length} store paths (${hits.slice(0, 3).map((h) => h.path).join(', ')}${hits.length > 3 ? ', …' : ''}); give the full name`);
  throw new MiqError('MIQ_NOT_FOUND', `no store path "${p}"; \`miq paths\` lists them`);
}

export async function resolveStoreArg(store: ObjectReader, arg: string): Promise<Resolved> {
  const { path, sub } = splitStoreArg(arg);
  const record = await findStorePath(store, path);
  let tree: Id = record.tree;
  let size = record.size;
  for (let i = 0; i < sub.length; i++) {
    const t = await store.getTree(tree);
    if (!t) throw new MiqError('MIQ_MISSING', `tree ${tree} of ${record.path} is missing from the store; run \`miq verify\``, { details: { id: tree, kind: 'tree' } });
    const want = Buffer.from(sub[i]!);
    const e: TreeEntry | undefined = t.entries.find((x) => x.name.equals(want));
    const where = `${record.path}/${sub.slice(0, i + 1).join('/')}`;
    if (!e) throw new MiqError('MIQ_NOT_FOUND', `${where} does not exist`);
    if (i < sub.length - 1 && e.kind !== 'dir') throw new MiqError('MIQ_BAD_INPUT', `${where} is not a directory`);
    if (e.kind === 'dir') {
      tree = e.id!;
      size = e.size;
    } else if (e.kind === 'symlink') {
      return { kind: 'symlink', record, target: e.target!, sub: sub.join('/'), size: e.size };
    } else {
      return { kind: e.kind, record, id: e.id!, sub: sub.join('/'), size: e.size };
    }
  }
  return { kind: 'dir', record, tree, sub: sub.join('/'), size };
}
