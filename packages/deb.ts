/**
 * One Debian binary package into one store path. Its key comes from the `.deb`'s SHA256 as the
 * verified index states it, so "already have it" is known before any download; the bytes are
 * checked against that SHA256 and size before anything is unpacked.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdtemp, readdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MirrorOptions } from '../builder/mirrors.js';
import type { Store } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import { idOf, type Id } from '../store/ids.js';
import { mkdirp } from '../store/mkdirp.js';
import { storePathName } from '../store/objects.js';
import { fetchBytes } from './fetch.js';
import type { Pkg } from './universe.js';

/** Bumped when the unpacked layout changes (usr-merge, metadata files), so keys change too. */
const LAYOUT = 'miq-deb-1';

/** $MIQ_CACHE/debs, else $XDG_CACHE_HOME/miq/debs, else /var/cache/miq/debs for root. */
export function debCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MIQ_CACHE) return join(env.MIQ_CACHE, 'debs');
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'miq', 'debs');
  if (process.getuid?.() === 0) return '/var/cache/miq/debs';
  return join(homedir(), '.cache', 'miq', 'debs');
}

export function debKey(p: Pkg): Id {
  const sha = p.fields.SHA256;
  if (!sha || !/^[0-9a-f]{64}$/.test(sha)) throw new MiqError('MIQ_FORMAT', `${p.name}=${p.version}: the index gives no SHA256 for its .deb`);
  return idOf(Buffer.from(`${LAYOUT}\n${sha}\n${p.name}\n${p.version}\n${p.arch}\n`));
}

/** A store path name for a package: `<name>-<version>` with characters outside the store's
 * alphabet (`:` of epochs, `~`) as `_`. */
export function debPathName(p: Pkg): string {
  return `${p.name}-${p.version}`.replace(/[^A-Za-z0-9+._-]/g, '_');
}

export function debStorePath(p: Pkg): string {
  return storePathName(debPathName(p), debKey(p));
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', (e) => reject(new MiqError('MIQ_IO', `cannot run ${cmd}: ${e.message}`, { cause: e })));
    c.on('close', (code) => (code === 0 ? resolve() : reject(new MiqError('MIQ_CORRUPT', `${cmd} ${args.join(' ')} failed: ${err.trim()}`))));
  });
}

/** A verified copy of the package's .deb in the cache (downloaded through the mirror if needed). */
export async function fetchDeb(p: Pkg, o: MirrorOptions & { cacheDir?: string } = {}): Promise<{ file: string; downloaded: number }> {
  const sha = p.fields.SHA256!;
  const size = Number(p.fields.Size);
  const dir = o.cacheDir ?? debCacheDir();
  const file = join(dir, `${sha}.deb`);
  const ok = (b: Buffer): boolean => b.length === size && createHash('sha256').update(b).digest('hex') === sha;
  try {
    if (ok(await readFile(file))) return { file, downloaded: 0 };
  } catch {
    // not cached
  }
  if (!p.fields.Filename) throw new MiqError('MIQ_FORMAT', `${p.name}=${p.version}: the index gives no Filename`);
  const url = p.base + p.fields.Filename;
  const b = await fetchBytes(url, o);
  if (!b) throw new MiqError('MIQ_NOT_FOUND', `${url}: not found on the mirror (is the index current? run \`miq repo update\`)`);
  if (!ok(b)) {
    const got = createHash('sha256').update(b).digest('hex');
    throw new MiqError('MIQ_CORRUPT', `${url}: ${b.length} bytes, sha256 ${got}; the verified index says ${size} bytes, sha256 ${sha}; nothing was unpacked`, { details: { url, got, want: sha } });
  }
  await mkdirp(dir);
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  await writeFile(tmp, b);
  await rename(tmp, file);
  return { file, downloaded: b.length };
}

/** Moves top-level bin, sbin, lib, lib32, lib64, libx32 under usr/ (Debian 12's merged-/usr layout). */
async function usrMerge(root: string, dropped: string[]): Promise<void> {
  for (const d of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
    const src = join(root, d);
    const st = await lstat(src).catch(() => undefined);
    if (!st) continue;
    if (!st.isDirectory()) {
      dropped.push(`/${d}`);
      await rm(src, { recursive: true, force: true });
      continue;
    }
    await moveInto(src, join(root, 'usr', d), `/${d}`, dropped);
    await rmdir(src).catch(() => rm(src, { recursive: true, force: true }));
  }
}

async function moveInto(src: string, dst: string, rel: string, dropped: string[]): Promise<void> {
  await mkdirp(dst);
  for (const e of await readdir(src, { withFileTypes: true })) {
    const a = join(src, e.name);
    const b = join(dst, e.name);
    const there = await lstat(b).catch(() => undefined);
    if (!there) await rename(a, b);
    else if (there.isDirectory() && e.isDirectory()) await moveInto(a, b, `${rel}/${e.name}`, dropped);
    else dropped.push(`${rel}/${e.name}`); // the /usr copy wins, as on a merged system
  }
}

export interface UnpackedDeb {
  pkg: Pkg;
  path: string;
  /** Maintainer scripts the package has (postinst, …). */
  scripts: string[];
  downloaded: number;
  cached: boolean;
  /** The unpacked tree on disk, while the install that unpacked it runs (triggers read it). */
  staged?: string;
}

/** A package unpacked on disk, not yet in the store. */
export interface StagedDeb {
  pkg: Pkg;
  dir: string;
  scripts: string[];
  downloaded: number;
}

/** Fetched (or reused), checked, unpacked and usr-merged into `dir` (which must not exist):
 * `dpkg-deb -R` gives the tree and the control files in one process; the control files go to
 * var/lib/miq/deb/NAME, where installDeb puts them. */
export async function stageDeb(p: Pkg, dir: string, o: MirrorOptions & { cacheDir?: string } = {}): Promise<StagedDeb> {
  const { file, downloaded } = await fetchDeb(p, o);
  return unpackDeb(p, file, dir, downloaded);
}

export async function unpackDeb(p: Pkg, file: string, dir: string, downloaded: number): Promise<StagedDeb> {
  await run('dpkg-deb', ['-R', file, dir]);
  const meta = join(dir, 'var', 'lib', 'miq', 'deb');
  await mkdirp(meta);
  await rename(join(dir, 'DEBIAN'), join(meta, p.name));
  const scripts = (await readdir(join(meta, p.name))).filter((n) => SCRIPTS.includes(n)).sort();
  const dropped: string[] = [];
  await usrMerge(dir, dropped);
  return { pkg: p, dir, scripts, downloaded };
}

async function sizeOf(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const f = join(dir, e.name);
    if (e.isDirectory()) {
      const s = await sizeOf(f);
      files += s.files;
      bytes += s.bytes;
    } else if (e.isFile()) {
      files++;
      bytes += (await lstat(f)).size;
    }
  }
  return { files, bytes };
}

/** Many staged packages into the store at once: one ingest of `batch` (whose children are
 * the staged folders), then one store path per package on its subtree, with the key installDeb
 * gives it. Ingest has per-call costs (a synced index batch, pack syncs, a reference scan):
 * python3's 41 packages ingested one by one took ~5x as long as their bytes in one ingest. */
export async function ingestStaged(store: Store, batch: string, staged: readonly StagedDeb[]): Promise<UnpackedDeb[]> {
  if (staged.length === 0) return [];
  const r = await store.ingest(batch, { name: 'miq-unpacked', lenient: true, pin: false });
  if (r.references.length) {
    // A package whose bytes name a store path: ingest it on its own so its record lists them.
    return Promise.all(staged.map(async (s) => {
      const path = debStorePath(s.pkg);
      const one = await store.ingest(s.dir, { name: debPathName(s.pkg), key: debKey(s.pkg), lenient: true, pin: false });
      if (one.path !== path) throw new MiqError('MIQ_CORRUPT', `ingest made ${one.path}, expected ${path}`);
      return { pkg: s.pkg, path, scripts: s.scripts, downloaded: s.downloaded, cached: false, staged: s.dir };
    }));
  }
  const root = await store.getTree(r.tree);
  const byName = new Map((root?.entries ?? []).map((e) => [e.name.toString(), e]));
  return Promise.all(staged.map(async (s) => {
    const e = byName.get(s.dir.slice(batch.length + 1));
    if (!e || e.kind !== 'dir') throw new MiqError('MIQ_CORRUPT', `${s.dir} is not in the ingested batch ${r.path}`);
    const key = debKey(s.pkg);
    const path = storePathName(debPathName(s.pkg), key);
    const { files, bytes } = await sizeOf(s.dir);
    await store.putStorePath({ path, name: debPathName(s.pkg), key, tree: e.id!, references: [], size: bytes, files, made: { kind: 'ingest' }, signatures: [] });
    return { pkg: s.pkg, path, scripts: s.scripts, downloaded: s.downloaded, cached: false, staged: s.dir };
  }));
}

/** Into the store: fetch (or reuse), check, unpack, usr-merge, ingest under the .deb's key. */
export async function installDeb(store: Store, p: Pkg, o: MirrorOptions & { cacheDir?: string } = {}): Promise<UnpackedDeb> {
  const key = debKey(p);
  const path = storePathName(debPathName(p), key);
  const have = await store.getStorePath(path);
  if (have) return inStore(store, p);
  const tmp = await mkdtemp(join(tmpdir(), 'miq-deb-'));
  try {
    const s = await stageDeb(p, join(tmp, 'root'), o);
    const r = await store.ingest(s.dir, { name: debPathName(p), key, lenient: true, pin: false });
    if (r.path !== path) throw new MiqError('MIQ_CORRUPT', `ingest made ${r.path}, expected ${path}`);
    return { pkg: p, path, scripts: s.scripts, downloaded: s.downloaded, cached: false };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** A package already in the store. */
export async function inStore(store: Store, p: Pkg): Promise<UnpackedDeb> {
  const path = debStorePath(p);
  return { pkg: p, path, scripts: await scriptsOf(store, path, p), downloaded: 0, cached: true };
}

const SCRIPTS = ['preinst', 'postinst', 'prerm', 'postrm', 'triggers'];

async function scriptsOf(store: Store, path: string, p: Pkg): Promise<string[]> {
  const { resolveStoreArg } = await import('../store/resolve.js');
  try {
    const r = await resolveStoreArg(store, `${path}/var/lib/miq/deb/${p.name}`);
    if (r.kind !== 'dir') return [];
    const t = await store.getTree(r.tree);
    return (t?.entries ?? []).map((e) => e.name.toString()).filter((n) => SCRIPTS.includes(n));
  } catch {
    return [];
  }
}
