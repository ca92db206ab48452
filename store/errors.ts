/**
 * One error type for the whole tool. Code branches on `code`, never on message text.
 * `toJSON` keeps the code and message across a worker hop.
 *
 * Absent things have two codes, and they mean different things:
 *  - MIQ_NOT_FOUND: what the user named does not exist (a store path, profile, generation, key,
 *    recipe, repository, or a path a store path does not contain). A sound store answers it; the
 *    fix is a different name. Exit 2; ENOENT through the mount.
 *  - MIQ_MISSING: something a record names is absent (a file's chunk, a path's tree, a
 *    referenced store path, a delta base): the store (or remote, details.source) is incomplete
 *    or damaged, whatever the user asked. The fix is `miq verify` / a refetch. Exit 3 (7 for a
 *    remote); EIO through the mount, never an empty or short file. A layered store falls back
 *    to its remote on MIQ_MISSING only. A remote that lacks what its own records name is
 *    MIQ_MISSING with details.source 'remote'; MIQ_REMOTE is the remote failing to answer
 *    (unreachable, an HTTP error status, a truncated body, a refused redirect).
 */
export type MiqErrorCode =
  | 'MIQ_NOT_FOUND'
  | 'MIQ_CORRUPT'
  | 'MIQ_MISSING'
  | 'MIQ_STORE_LOCKED'
  | 'MIQ_BAD_INPUT'
  | 'MIQ_FORMAT'
  | 'MIQ_IO'
  | 'MIQ_BUILD_FAILED'
  | 'MIQ_CONFLICT'
  | 'MIQ_READ_ONLY'
  | 'MIQ_REMOTE'
  | 'MIQ_UNTRUSTED'
  | 'MIQ_TIMEOUT'
  | 'MIQ_CLOSED'
  | 'MIQ_PERMISSION';

export class MiqError extends Error {
  readonly code: MiqErrorCode;
  /** Extra machine-readable facts (paths, ids) for --json output. */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: MiqErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'MiqError';
    this.code = code;
    this.details = options?.details;
  }

  toJSON(): { code: MiqErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }

  static fromJSON(v: { code: MiqErrorCode; message: string; details?: Record<string, unknown> }): MiqError {
    return new MiqError(v.code, v.message, v.details ? { details: v.details } : undefined);
  }
}

export function isMiqError(e: unknown, code?: MiqErrorCode): e is MiqError {
  return e instanceof MiqError && (code === undefined || e.code === code);
}

/**
 * Marks a fault in what a remote sent (bad JSON, a hash mismatch, an oversized body, a newer
 * format) as the remote's. The code stays, so the FUSE errno table and retries treat it as they
 * treat the same local fault; `details.source` is what lets the CLI exit 7 (remote) rather than 3
 * (this store is damaged), which would send the user to repair a store that is fine.
 */
export function fromRemote(e: unknown): unknown {
  if (!(e instanceof MiqError) || e.details?.source === 'remote') return e;
  if (e.code !== 'MIQ_CORRUPT' && e.code !== 'MIQ_FORMAT' && e.code !== 'MIQ_MISSING') return e;
  const m = new MiqError(e.code, e.message, { cause: e.cause, details: { ...e.details, source: 'remote' } });
  m.stack = e.stack;
  return m;
}

/** Whether `e` is the file system being full (Node's errno, or LevelDB's text, which has none). */
export function isNoSpace(e: unknown): boolean {
  const err = e as { code?: string; message?: string; cause?: unknown } | undefined;
  if (!err) return false;
  if (err.code === 'ENOSPC' || err.code === 'EDQUOT') return true;
  if (/no space left on device|disk quota exceeded/i.test(err.message ?? '')) return true;
  return err.cause !== undefined && err.cause !== e && isNoSpace(err.cause);
}

/** The full-disk error, with what to do about it. */
export function noSpaceError(e: unknown, storeDir: string, doing: string): MiqError {
  return new MiqError('MIQ_IO', `no space left on the device holding the store at ${storeDir} (${doing}); nothing half-written was kept. Free space there: \`miq gc\` removes what no root reaches (\`miq gc --dry-run\` shows how much), then retry`, { cause: e, details: { path: storeDir, errno: 'ENOSPC' } });
}

/** Turns a Node system error on a user-given path into a readable MiqError. */
export function ioError(e: unknown, what: string, path: string): MiqError {
  const err = e as NodeJS.ErrnoException;
  const code = err?.code ?? 'EIO';
  const hints: Record<string, string> = {
    ENOENT: 'it does not exist',
    EACCES: 'permission denied; check its owner and mode',
    EPERM: 'operation not permitted',
    ENOTDIR: 'a parent is not a directory',
    EISDIR: 'it is a directory',
    ELOOP: 'too many levels of symbolic links',
    ENAMETOOLONG: 'the path is too long',
    ENOSPC: 'no space left on the device',
  };
  const hint = hints[code] ?? (err?.message ?? String(e));
  const miqCode = code === 'ENOENT' ? 'MIQ_NOT_FOUND' : 'MIQ_IO';
  return new MiqError(miqCode, `${what} ${path}: ${hint} (${code})`, { cause: e, details: { path, errno: code } });
}
