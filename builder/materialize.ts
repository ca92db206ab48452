/**
 * Writes a store path's tree out as a plain read-only directory, for binding into a sandbox when
 * no mount serves the store. Every byte goes through `readFile`, which verifies chunk ids.
 */
import { chmod, lstat, open, readdir, rename, rm, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { ObjectReader } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import { mkdirp } from '../store/mkdirp.js';

const PIECE = 4 << 20;

async function writeTree(store: ObjectReader, tree: Id, dir: string): Promise<void> {
  const t = await store.getTree(tree);
  if (!t) throw new MiqError('MIQ_MISSING', `tree ${tree} is missing from the store`, { details: { tree } });
  await mkdirp(dir);
  for (const e of t.entries) {
    const p = join(dir, e.name.toString());
    if (e.kind === 'dir') {
      await writeTree(store, e.id!, p);
      await chmod(p, 0o555);
    } else if (e.kind === 'symlink') {
      await symlink(e.target!, p);
    } else {
      const f = await store.getFile(e.id!);
      if (!f) throw new MiqError('MIQ_MISSING', `file ${e.id} is missing from the store`, { details: { file: e.id } });
      const fh = await open(p, 'wx', 0o644);
      try {
        for (let off = 0; off < f.size; off += PIECE) {
          const b = await store.readFile(f, off, Math.min(PIECE, f.size - off));
          await fh.write(b, 0, b.length, off);
        }
      } finally {
        await fh.close();
      }
      await chmod(p, e.kind === 'exe' ? 0o555 : 0o444);
    }
  }
}

/** Makes `<into>/<path>` hold the store path's tree (idempotent: an existing one is kept). */
export async function materialize(store: ObjectReader, path: string, into: string): Promise<string> {
  const dest = join(into, path);
  if (await stat(dest).catch(() => undefined)) return dest;
  const rec = await store.getStorePath(path);
  if (!rec) throw new MiqError('MIQ_NOT_FOUND', `store path ${path} is not in the store`, { details: { path } });
  const tmp = `${dest}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await writeTree(store, rec.tree, tmp);
    await chmod(tmp, 0o555);
    await rename(tmp, dest);
  } catch (e) {
    await rmTree(tmp);
    throw e;
  }
  return dest;
}

/** rm -rf that also works on the read-only directories materialize and builds leave. */
export async function rmTree(p: string): Promise<void> {
  const writable = async (d: string): Promise<void> => {
    const st = await lstat(d).catch(() => undefined);
    if (!st?.isDirectory()) return;
    await chmod(d, 0o755).catch(() => undefined);
    for (const n of await readdir(d).catch(() => [] as string[])) await writable(join(d, n));
  };
  await writable(p);
  await rm(p, { recursive: true, force: true });
}
