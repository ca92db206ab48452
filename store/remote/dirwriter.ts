/**
 * Writes a remote into a local directory. Every file is immutable once renamed into place, so a
 * reader (nginx serving the folder while we push) never sees half a file, and a file that exists
 * is never rewritten: pushing twice writes nothing.
 */
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MiqError, ioError } from '../errors.js';
import { writeAtomic } from './atomic.js';
import { mkdirp } from '../mkdirp.js';

export function destDir(dest: string): string {
  if (dest.startsWith('file://')) return fileURLToPath(dest);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(dest)) {
    throw new MiqError('MIQ_BAD_INPUT', `cannot push to ${dest}: push writes a directory (a path or file://…); serve that directory with any static HTTP server`);
  }
  return resolve(dest);
}

export class DirWriter {
  private readonly madeDirs = new Set<string>();
  readonly bytesWritten = { n: 0 };

  constructor(readonly root: string, private readonly durable = true) {}

  async has(rel: string): Promise<boolean> {
    try {
      await access(join(this.root, rel), constants.F_OK);
      return true;
    } catch {
      return false;
    }
  }

  async read(rel: string): Promise<Buffer | undefined> {
    try {
      return await readFile(join(this.root, rel));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw ioError(e, 'cannot read', join(this.root, rel));
    }
  }

  /** Temp file + fsync + rename. `replace` is only for the pointer, the one mutable file. */
  async write(rel: string, bytes: Buffer, replace = false): Promise<boolean> {
    const file = join(this.root, rel);
    if (!replace && (await this.has(rel))) return false;
    const dir = dirname(file);
    if (!this.madeDirs.has(dir)) {
      await mkdirp(dir).catch((e) => { throw ioError(e, 'cannot create', dir); });
      this.madeDirs.add(dir);
    }
    await writeAtomic(file, bytes, { sync: this.durable, what: 'cannot write' });
    this.bytesWritten.n += bytes.length;
    return true;
  }
}
