/**
 * Materialises a tree on disk: bytes, exec bits and symlinks as ingested. Each file is written to
 * a temporary name and renamed only after every chunk verified, so a corrupt chunk never leaves
 * wrong bytes behind under the real name.
 */
import { mkdir, open, readdir, rename, symlink, unlink, chmod } from 'node:fs/promises';
import { mkdirp } from './mkdirp.js';
import type { ObjectReader } from './api.js';
import { MiqError, ioError } from './errors.js';
import { IdHasher, type Id } from './ids.js';

const SLASH = Buffer.from('/');

export interface ExportStats { files: number; dirs: number; symlinks: number; bytes: number }

export async function writeFileTo(store: ObjectReader, fileId: Id, dest: Buffer, exe: boolean): Promise<number> {
  const rec = await store.getFile(fileId);
  if (!rec) throw new MiqError('MIQ_MISSING', `file ${fileId} is missing from the store; run \`miq verify\``, { details: { id: fileId, kind: 'file' } });
  const tmp = Buffer.concat([dest, Buffer.from(`.miq-tmp-${process.pid}`)]);
  const fh = await open(tmp, 'wx', exe ? 0o755 : 0o644);
  const h = new IdHasher();
  try {
    let pos = 0;
    for (const c of rec.chunks) {
      const b = await store.readFile(rec, pos, c.length);
      h.update(b);
      await fh.write(b, 0, b.length, pos);
      pos += b.length;
    }
    await fh.close();
    if (h.digest() !== rec.id) throw new MiqError('MIQ_CORRUPT', `file ${rec.id} does not match its hash`, { details: { id: rec.id, kind: 'file' } });
    await chmod(tmp, exe ? 0o755 : 0o644);
    await rename(tmp, dest);
    return rec.size;
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

export async function exportTree(store: ObjectReader, treeId: Id, destArg: string): Promise<ExportStats> {
  const stats: ExportStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  try {
    const existing = await readdir(destArg);
    if (existing.length > 0) throw new MiqError('MIQ_BAD_INPUT', `export destination ${destArg} exists and is not empty; give a new or empty directory`);
  } catch (e) {
    if (e instanceof MiqError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') throw new MiqError('MIQ_BAD_INPUT', `export destination ${destArg} is a file; give a new or empty directory`);
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(e, 'cannot use export destination', destArg);
  }
  // The destination itself with a step-by-step mkdir -p (a recursive mkdir never returns under
  // /proc); below it every parent exists, so plain mkdir suffices.
  await mkdirp(destArg, 0o755).catch((e) => { throw ioError(e, 'cannot create export destination', destArg); });
  const stack: { tree: Id; dir: Buffer }[] = [{ tree: treeId, dir: Buffer.from(destArg) }];
  while (stack.length > 0) {
    const { tree, dir } = stack.pop()!;
    try {
      await mkdir(dir, { mode: 0o755 }).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'EEXIST') throw e; });
    } catch (e) {
      throw ioError(e, 'cannot create directory', dir.toString());
    }
    stats.dirs++;
    const t = await store.getTree(tree);
    if (!t) throw new MiqError('MIQ_MISSING', `tree ${tree} is missing from the store; run \`miq verify\``, { details: { id: tree, kind: 'tree' } });
    for (const e of t.entries) {
      const p = Buffer.concat([dir, SLASH, e.name]);
      if (e.kind === 'dir') stack.push({ tree: e.id!, dir: p });
      else if (e.kind === 'symlink') {
        await symlink(e.target!, p);
        stats.symlinks++;
      } else {
        stats.bytes += await writeFileTo(store, e.id!, p, e.kind === 'exe');
        stats.files++;
      }
    }
  }
  return stats;
}
