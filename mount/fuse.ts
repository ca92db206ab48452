/**
 * fuse-native behind a promise API. fuse-native knows only some libfuse options by name; the
 * ones it lacks (direct_io, negative_timeout) are appended here. Its own per-op timeout (15 s)
 * stays: a handler that never answers becomes ETIMEDOUT rather than a hung process.
 */
import { createRequire } from 'node:module';
import { MiqError } from '../store/errors.js';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-var-requires
const FuseNative = require('fuse-native') as FuseClass;

interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
  _fuseOptions(): string;
}
type FuseClass = new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>) => FuseInstance;

export interface FuseMountOptions {
  fsname: string;
  /** Keep page cache across opens (immutable content only). */
  kernelCache: boolean;
  /** Bypass the page cache for read(2) (views whose content can change under a path). */
  directIo: boolean;
  /** Seconds; 0 means ask the daemon on every access. */
  entryTimeout: number;
  attrTimeout: number;
  negativeTimeout: number;
  allowOther: boolean;
  /** Mount read-only: the kernel refuses every write (EROFS) before it reaches us. */
  readOnly: boolean;
  debug?: boolean;
}

export interface FuseMount {
  readonly mountpoint: string;
  /** Lazy unmount (fusermount -uz); resolves when the kernel detached it. */
  unmount(): Promise<void>;
}

export async function fuseMount(mountpoint: string, ops: Record<string, unknown>, o: FuseMountOptions): Promise<FuseMount> {
  const extra: string[] = [];
  if (o.readOnly) extra.push('ro');
  if (o.directIo) extra.push('direct_io');
  extra.push(`negative_timeout=${o.negativeTimeout}`);
  // fuse-native skips timeouts of 0 (falsy); libfuse's default is 1 s, so say 0 explicitly.
  if (o.entryTimeout === 0) extra.push('entry_timeout=0');
  if (o.attrTimeout === 0) extra.push('attr_timeout=0');
  const f = new FuseNative(mountpoint, ops, {
    fsname: o.fsname, kernelCache: o.kernelCache, entryTimeout: o.entryTimeout || undefined, attrTimeout: o.attrTimeout || undefined,
    allowOther: o.allowOther, debug: o.debug ?? false,
  });
  const base = f._fuseOptions.bind(f);
  f._fuseOptions = () => {
    const b = base();
    return b ? `${b},${extra.join(',')}` : `-o${extra.join(',')}`;
  };
  await new Promise<void>((resolve, reject) => f.mount((err) => (err ? reject(err) : resolve())));
  let unmounting: Promise<void> | undefined;
  return {
    mountpoint,
    unmount() {
      unmounting ??= new Promise<void>((resolve, reject) => f.unmount((err) => (err ? reject(new MiqError('MIQ_IO', `cannot unmount ${mountpoint}: ${err.message}`, { cause: err })) : resolve())));
      return unmounting;
    },
  };
}
