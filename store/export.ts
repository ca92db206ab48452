/**
 * Materialises a tree on disk: bytes, exec bits and symlinks as ingested. Each file is written to
 * a temporary name and linked to its real name only after every chunk verified, so a corrupt
 * chunk never leaves wrong bytes behind under the real name.
 *
 * Export often runs as root into a directory another user can write (their home, /tmp). Such a
 * user can plant a symlink where export is about to create a directory, so no path below DEST is
 * ever resolved by name: every directory is held open (O_DIRECTORY|O_NOFOLLOW) and its entries are
 * reached as /proc/self/fd/N/NAME, which resolves N to the directory export itself created and
 * NAME as one component. Nothing is created over an existing name (mkdir and symlink fail on
 * EEXIST, files are linked into place, never renamed over), so a name that appears under export
 * means the destination changed under it, and that is an error, not something to follow.
 */
import { constants, existsSync } from 'node:fs';
import { link, lstat, mkdir, open, readdir, rename, symlink, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { mkdirp } from './mkdirp.js';
import type { ObjectReader } from './api.js';
import { MiqError, ioError } from './errors.js';
import { IdHasher, type Id } from './ids.js';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_DIRECTORY, O_NOFOLLOW } = constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;

export interface ExportStats { files: number; dirs: number; symlinks: number; bytes: number }

/** A directory held open; `shown` is its path for messages only, never for I/O. */
interface Dir { fh: FileHandle; shown: string; pending: number }

const at = (d: Dir, name: Buffer | string): Buffer => Buffer.concat([Buffer.from(`/proc/self/fd/${d.fh.fd}/`), Buffer.from(name)]);
const shownAt = (d: Dir, name: Buffer | string): string => `${d.shown.replace(/\/+$/, '')}/${name.toString()}`;

function changed(path: string, what: string): MiqError {
  return new MiqError('MIQ_CONFLICT', `export destination changed while exporting: ${path} ${what}; nothing was written through it. Export into a directory no other user can write`, { details: { path } });
}

function needProc(): void {
  if (!existsSync('/proc/self/fd')) throw new MiqError('MIQ_IO', 'export needs /proc (it writes through directory handles); mount /proc and retry');
}

/** Opens a directory export created, refusing a symlink or a directory someone else made. */
async function openOwnDir(path: Buffer, shown: string): Promise<Dir> {
  let fh: FileHandle;
  try {
    fh = await open(path, DIR_FLAGS);
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    if (c === 'ELOOP' || c === 'ENOTDIR') throw changed(shown, 'is no longer the directory miq created (a symlink or a file took its place)');
    if (c === 'ENOENT') throw changed(shown, 'was removed');
    throw ioError(e, 'cannot open directory', shown);
  }
  const st = await fh.stat();
  if (!st.isDirectory() || st.uid !== process.geteuid!()) {
    await fh.close();
    throw changed(shown, `is a directory owned by uid ${st.uid}, not the one miq created`);
  }
  return { fh, shown, pending: 0 };
}

/** Writes one file as `name` in `dir`; an existing name is refused unless `force` (then replaced,
 * the name itself, never what a link there points to). */
async function writeFileAt(store: ObjectReader, fileId: Id, dir: Dir, name: Buffer, exe: boolean, force: boolean): Promise<number> {
  const shown = shownAt(dir, name);
  const rec = await store.getFile(fileId);
  if (!rec) throw new MiqError('MIQ_MISSING', `file ${fileId} is missing from the store; run \`miq verify\``, { details: { id: fileId, kind: 'file' } });
  const tmpName = `.miq-tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const tmp = at(dir, tmpName);
  const mode = exe ? 0o755 : 0o644;
  let fh: FileHandle;
  try {
    fh = await open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  } catch (e) {
    throw ioError(e, 'cannot create a file in', dir.shown);
  }
  const h = new IdHasher();
  let placed = false;
  try {
    let pos = 0;
    for (const c of rec.chunks) {
      const b = await store.readFile(rec, pos, c.length);
      h.update(b);
      await fh.write(b, 0, b.length, pos);
      pos += b.length;
    }
    if (h.digest() !== rec.id) throw new MiqError('MIQ_CORRUPT', `file ${rec.id} does not match its hash`, { details: { id: rec.id, kind: 'file' } });
    // The umask may have narrowed the create mode; the handle is ours, so this cannot be redirected.
    await fh.chmod(mode);
    await fh.close().catch((e) => { throw ioError(e, 'cannot write', shown); });
    try {
      await link(tmp, at(dir, name));
    } catch (e) {
      const c = (e as NodeJS.ErrnoException).code;
      if (c === 'EEXIST') {
        if (!force) throw new MiqError('MIQ_CONFLICT', `${shown} already exists; give --force to replace it, or another destination`, { details: { path: shown } });
        await rename(tmp, at(dir, name)).catch((e2) => { throw ioError(e2, 'cannot replace', shown); });
      } else if (c === 'EPERM' || c === 'EOPNOTSUPP' || c === 'ENOTSUP') {
        // A file system without hard links (vfat): rename is the only way in; the window between
        // this check and the rename is the price of such a destination.
        if (!force && (await open(at(dir, name), O_RDONLY | O_NOFOLLOW).then((f) => f.close().then(() => true), () => false))) {
          throw new MiqError('MIQ_CONFLICT', `${shown} already exists; give --force to replace it, or another destination`, { details: { path: shown } });
        }
        await rename(tmp, at(dir, name)).catch((e2) => { throw ioError(e2, 'cannot write', shown); });
      } else throw ioError(e, 'cannot write', shown);
    }
    placed = true;
    return rec.size;
  } catch (e) {
    await fh.close().catch(() => {});
    throw e;
  } finally {
    // After a link the temporary name is a second link to the placed file; after a rename or a
    // failure it may or may not exist. Either way it must go.
    await unlink(tmp).catch((e) => { if (placed && (e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(e, 'cannot remove temporary file in', dir.shown); });
  }
}

/** A single file to `dest` (a path the caller chose: its parents are followed as given). */
export async function exportFile(store: ObjectReader, fileId: Id, dest: string, exe: boolean, opts: { force?: boolean } = {}): Promise<number> {
  needProc();
  const parent = dirname(dest);
  let fh: FileHandle;
  try {
    fh = await open(parent, O_RDONLY | O_DIRECTORY);
  } catch (e) {
    throw ioError(e, 'cannot use the directory of export destination', parent);
  }
  const dir: Dir = { fh, shown: parent, pending: 0 };
  try {
    return await writeFileAt(store, fileId, dir, Buffer.from(basename(dest)), exe, opts.force === true);
  } finally {
    await fh.close().catch(() => {});
  }
}

/** Opens (creating it if needed) the export root: a new or empty directory, not a symlink. */
async function openRoot(dest: string): Promise<Dir> {
  let created = false;
  try {
    // Parents step by step (a recursive mkdir never returns under /proc).
    await mkdirp(dirname(dest), 0o755);
  } catch (e) {
    throw ioError(e, 'cannot create export destination', dest);
  }
  try {
    await mkdir(dest, { mode: 0o755 });
    created = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(e, 'cannot create export destination', dest);
  }
  let fh: FileHandle;
  try {
    fh = await open(dest, DIR_FLAGS);
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    // O_NOFOLLOW with O_DIRECTORY reports a symlink as ELOOP or ENOTDIR, depending on the kernel.
    const isLink = c === 'ELOOP' || (c === 'ENOTDIR' && (await lstat(dest).then((st) => st.isSymbolicLink(), () => false)));
    if (isLink) throw new MiqError('MIQ_BAD_INPUT', `export destination ${dest} is a symlink; give the directory itself`, { details: { path: dest } });
    if (c === 'ENOTDIR') throw new MiqError('MIQ_BAD_INPUT', `export destination ${dest} is a file; give a new or empty directory`, { details: { path: dest } });
    throw ioError(e, 'cannot use export destination', dest);
  }
  const dir: Dir = { fh, shown: dest, pending: 0 };
  try {
    const st = await fh.stat();
    if (created && st.uid !== process.geteuid!()) throw changed(dest, `was replaced by a directory of uid ${st.uid}`);
    const existing = await readdir(`/proc/self/fd/${fh.fd}`);
    if (existing.length > 0) throw new MiqError('MIQ_BAD_INPUT', `export destination ${dest} exists and is not empty; give a new or empty directory`, { details: { path: dest } });
  } catch (e) {
    await fh.close().catch(() => {});
    if (e instanceof MiqError) throw e;
    throw ioError(e, 'cannot use export destination', dest);
  }
  return dir;
}

export async function exportTree(store: ObjectReader, treeId: Id, destArg: string): Promise<ExportStats> {
  needProc();
  const stats: ExportStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  const open_ = new Set<Dir>();
  const release = async (d: Dir): Promise<void> => {
    if (d.pending > 0 || !open_.delete(d)) return;
    await d.fh.close();
  };
  // Directories still to fill, each with the open parent it is reached through. A parent stays
  // open until its last child is opened, so at most one handle per level of the walk is held.
  const todo: { parent: Dir; name: Buffer; tree: Id }[] = [];
  const fill = async (d: Dir, tree: Id): Promise<void> => {
    stats.dirs++;
    const t = await store.getTree(tree);
    if (!t) throw new MiqError('MIQ_MISSING', `tree ${tree} is missing from the store; run \`miq verify\``, { details: { id: tree, kind: 'tree' } });
    for (const e of t.entries) {
      if (e.kind === 'dir') {
        try {
          await mkdir(at(d, e.name), { mode: 0o755 });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw changed(shownAt(d, e.name), 'appeared before miq created it');
          throw ioError(err, 'cannot create directory', shownAt(d, e.name));
        }
        d.pending++;
        todo.push({ parent: d, name: e.name, tree: e.id! });
      } else if (e.kind === 'symlink') {
        try {
          await symlink(e.target!, at(d, e.name));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw changed(shownAt(d, e.name), 'appeared before miq created it');
          throw ioError(err, 'cannot create symlink', shownAt(d, e.name));
        }
        stats.symlinks++;
      } else {
        stats.bytes += await writeFileAt(store, e.id!, d, e.name, e.kind === 'exe', false);
        stats.files++;
      }
    }
  };
  const root = await openRoot(destArg);
  open_.add(root);
  try {
    await fill(root, treeId);
    await release(root);
    while (todo.length > 0) {
      const { parent, name, tree } = todo.pop()!;
      const child = await openOwnDir(at(parent, name), shownAt(parent, name));
      open_.add(child);
      parent.pending--;
      await release(parent);
      await fill(child, tree);
      await release(child);
    }
  } finally {
    for (const d of open_) await d.fh.close().catch(() => {});
  }
  return stats;
}
