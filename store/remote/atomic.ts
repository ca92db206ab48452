/**
 * Writes a file so a reader never sees half of it: a temp file in the same directory (leading dot
 * and `.tmp-<pid>-` in its name, so readers and cache scans skip it and a dead writer's can be
 * told apart), optionally synced, then renamed into place.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ioError } from '../errors.js';

export async function writeAtomic(file: string, bytes: Buffer, o: { sync: boolean; what: string }): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(bytes);
      if (o.sync) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw ioError(e, o.what, file);
  }
}
