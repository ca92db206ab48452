/** Resolves `PATH[/SUB]` (PATH a store path, optionally under /miq/store/) to a node. */
import { readFile } from 'node:fs/promises';
import type { ObjectReader } from './api.js';
import { MiqError } from './errors.js';
import type { Id } from './ids.js';
import type { StorePathRecord, TreeEntry } from './objects.js';

export type Resolved =
  | { kind: 'dir'; record: StorePathRecord; tree: Id; sub: string; size: number }
  | { kind: 'file' | 'exe'; record: StorePathRecord; id: Id; sub: string; size: number }
  | { kind: 'symlink'; record: StorePathRecord; target: Buffer; sub: string; size: number };

/**
 * Where miq's FUSE mounts are (fsname "miq"), so a path a user copies from one of them
 * (`/mnt/x/store/bash-…/bin`) names its store path. Read asynchronously: the serving process
 * also resolves names and must never block on I/O.
 */
export async function miqMountpoints(): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const unescape = (x: string): string => x.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const [fstype = '', source = ''] = right.split(' ');
    if (source === 'miq' || /^fuse(blk)?\.miq$/.test(fstype)) out.push(unescape(left!.split(' ')[4]!));
  }
  return out;
}

/** `PATH[/SUB]`: PATH a store path name, bare or under `/miq/store/`, `store/` or `<a miq mountpoint>/store/`. */
export function splitStoreArg(arg: string, mountpoints: readonly string[] = []): { path: string; sub: string[] } {
  let s = arg;
  const under = ['/miq', ...mountpoints].map((m) => `${m.replace(/\/+$/, '')}/store/`).find((m) => s.startsWith(m));
  if (under) s = s.slice(under.length);
  else if (s.startsWith('/')) {
    const where = mountpoints.length ? `under ${mountpoints.map((m) => `${m}/store/`).join(' or ')}` : 'under a miq mount\'s store/ (none is mounted)';
    throw new MiqError('MIQ_BAD_INPUT', `"${arg}" is not ${where}; give NAME, NAME-HASH or a hash prefix (\`miq paths\` lists them)`);
  } else s = s.replace(/^store\//, '');
  s = s.replace(/\/+$/, '');
  const parts = s.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) throw new MiqError('MIQ_BAD_INPUT', `"${arg}" names no store path; \`miq paths\` lists them`);
  return { path: parts[0]!, sub: parts.slice(1) };
}

const hashOf = (r: StorePathRecord): string => r.path.slice(r.name.length + 1);

/**
 * The one rule for naming a store path, used by every command that takes one: the full
 * NAME-HASH; else an exact name (several store paths of that name are listed, not guessed);
 * else a unique prefix of NAME-HASH or of the hash alone (4 hex digits at least). So `site`
 * is the store path named site even when site2 and sitew exist.
 */
export async function findStorePath(store: ObjectReader, p: string): Promise<StorePathRecord> {
  const exact = await store.getStorePath(p);
  if (exact) return exact;
  const all = await store.listStorePaths();
  const named = all.filter((r) => r.name === p);
  const hits = named.length ? named : all.filter((r) => r.path.startsWith(p) || (/^[0-9a-f]{4,}$/.test(p) && hashOf(r).startsWith(p)));
  if (hits.length === 1) return hits[0]!;
  if (hits.length > 1) {
    const list = hits.slice(0, 10).map((h) => h.path).join(', ') + (hits.length > 10 ? `, … (${hits.length - 10} more)` : '');
    const why = named.length ? `${hits.length} store paths are named "${p}"` : `"${p}" is a prefix of ${hits.length} store paths`;
    throw new MiqError('MIQ_BAD_INPUT', `${why}: ${list}; give more of NAME-HASH`, { details: { candidates: hits.map((h) => h.path) } });
  }
  throw new MiqError('MIQ_NOT_FOUND', `no store path "${p}"; \`miq paths\` lists them`);
}

/** A store path argument (any form splitStoreArg and findStorePath accept) to its record. */
export async function resolveStorePath(store: ObjectReader, arg: string): Promise<StorePathRecord> {
  const mps = arg.startsWith('/') ? await miqMountpoints() : [];
  return findStorePath(store, splitStoreArg(arg, mps).path);
}

export async function resolveStoreArg(store: ObjectReader, arg: string): Promise<Resolved> {
  const { path, sub } = splitStoreArg(arg, arg.startsWith('/') ? await miqMountpoints() : []);
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
