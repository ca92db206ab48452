/**
 * The one place where errors become errno values at the FUSE boundary (STYLE: exactly one
 * table). fs code throws MiqError (store faults) or FsError (POSIX facts about the view, such as
 * "not a directory"); anything else, and any MiqError code not in the table, is EIO plus a log
 * line: never a blanket -1, never wrong bytes.
 */
import { MiqError, type MiqErrorCode } from '../store/errors.js';

export const ERRNO = {
  EPERM: 1, ENOENT: 2, EIO: 5, EBADF: 9, EACCES: 13, EEXIST: 17, ENOTDIR: 20, EISDIR: 21, EINVAL: 22,
  EROFS: 30, ERANGE: 34, ENOSYS: 38, ENODATA: 61, ETIMEDOUT: 110, ENOTSUP: 95,
} as const;
export type ErrnoName = keyof typeof ERRNO;

/** A POSIX condition of the served view itself (not a store fault). */
export class FsError extends Error {
  constructor(readonly errno: ErrnoName, message?: string) {
    super(message ?? errno);
    this.name = 'FsError';
  }
}

/** MiqError code → errno. Missing or corrupt objects are I/O errors: the data exists by name
 * but cannot be served correctly. */
const TABLE: Partial<Record<MiqErrorCode, ErrnoName>> = {
  MIQ_NOT_FOUND: 'ENOENT',
  MIQ_READ_ONLY: 'EROFS',
  MIQ_BAD_INPUT: 'EINVAL',
  MIQ_TIMEOUT: 'ETIMEDOUT',
  MIQ_CORRUPT: 'EIO',
  MIQ_MISSING: 'EIO',
  MIQ_REMOTE: 'EIO',
  MIQ_UNTRUSTED: 'EIO',
  MIQ_CLOSED: 'EIO',
};

export type Logger = (line: string) => void;

/** Negative errno for fuse-native's callbacks. Logs what is not an ordinary miss. */
export function toErrno(e: unknown, op: string, path: string, log: Logger): number {
  if (e instanceof FsError) return -ERRNO[e.errno];
  if (e instanceof MiqError) {
    const name = TABLE[e.code] ?? 'EIO';
    if (name !== 'ENOENT') log(`miq mount: ${op} ${path}: ${e.code}: ${e.message} -> ${name}`);
    return -ERRNO[name];
  }
  log(`miq mount: ${op} ${path}: unexpected error -> EIO: ${(e as Error)?.stack ?? String(e)}`);
  return -ERRNO.EIO;
}
