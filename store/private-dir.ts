/**
 * Directories that only this user can enter, for things miq creates outside its database (the
 * pointer view's mountpoint, runtime files). miq runs as root and a local user must not be able to
 * choose where root's files or mounts end up: a name in a shared directory (/tmp) can be taken
 * first, as a symlink or a file, by anyone. So every such directory is created 0700 by us, or, if
 * it is already there, checked through a handle opened with O_NOFOLLOW (a link is refused, not
 * followed), must belong to us, and is narrowed to 0700 through that same handle (no window in
 * which the name could be swapped between the check and the chmod).
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { MiqError, ioError } from './errors.js';

export async function privateDir(dir: string): Promise<string> {
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(e, 'cannot create the private directory', dir);
  }
  let fh;
  try {
    fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      const link = await lstat(dir).then((s) => s.isSymbolicLink(), () => false);
      throw new MiqError('MIQ_BAD_INPUT', `${dir} is not a directory miq made (it is ${link ? 'a symbolic link' : 'not a directory'}); refusing to use it: remove it and retry`, { details: { path: dir } });
    }
    throw ioError(e, 'cannot open the private directory', dir);
  }
  try {
    const st = await fh.stat();
    const uid = process.getuid?.() ?? st.uid;
    if (st.uid !== uid) {
      throw new MiqError('MIQ_BAD_INPUT', `${dir} belongs to uid ${st.uid}, not to this user (uid ${uid}); refusing to use it: remove it and retry`, { details: { path: dir, owner: st.uid } });
    }
    if ((st.mode & 0o777) !== 0o700) await fh.chmod(0o700);
  } finally {
    await fh.close();
  }
  return dir;
}

/** The store's own runtime directory (`<store>/run`, 0700): where the pointer views are mounted. */
export const runDirOf = (storeDir: string): string => join(storeDir, 'run');

/** Where this store's pointer views live when the store's directory can be written. */
export const storeViewsDir = (storeDir: string): string => join(runDirOf(storeDir), 'views');

/**
 * Creates (or checks) the directory for this store's pointer views and returns it. A store on a
 * read-only filesystem cannot hold it: then root uses /run/miq, anyone else $XDG_RUNTIME_DIR/miq,
 * each checked the same way, with one subdirectory per store.
 */
export async function viewsDir(storeDir: string): Promise<string> {
  try {
    await privateDir(runDirOf(storeDir));
    return await privateDir(storeViewsDir(storeDir));
  } catch (e) {
    const errno = ((e as MiqError).details?.errno ?? (e as NodeJS.ErrnoException).code) as string | undefined;
    if (errno !== 'EROFS' && errno !== 'EACCES' && errno !== 'EPERM') throw e;
  }
  const base = process.getuid?.() === 0 ? '/run/miq' : process.env.XDG_RUNTIME_DIR ? join(process.env.XDG_RUNTIME_DIR, 'miq') : undefined;
  if (!base) throw new MiqError('MIQ_READ_ONLY', `the store ${storeDir} is read-only and there is no private runtime directory for the mount's views: set XDG_RUNTIME_DIR or run as root`);
  await privateDir(base);
  return privateDir(join(base, `views-${createHash('sha256').update(storeDir).digest('hex').slice(0, 16)}`));
}
