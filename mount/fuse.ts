/**
 * fuse-native behind a promise API. fuse-native knows only some libfuse options by name; the
 * ones it lacks (direct_io, negative_timeout) are appended here. Its own per-op timeout (15 s)
 * stays: a handler that never answers becomes ETIMEDOUT rather than a hung process.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { resolve as resolvePath } from 'node:path';
import { MiqError } from '../store/errors.js';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-var-requires
const FuseNative = require('fuse-native') as FuseClass & { unmount(mnt: string, cb: (err: Error | null) => void): void };

/**
 * fuse-native unmounts with `exec('fusermount -uz …')` and waits for that shell's exit. In one
 * of four CI runs the exit never came (a zombie `sh`, never reaped: the callback, and with it
 * the test's `after` hook and `miq mount`'s SIGTERM path, waited forever). Here the unmount is
 * our own `umount -l`, and the wait for it is bounded: after 3 s the mount table decides.
 */
FuseNative.unmount = (mnt: string, cb: (err: Error | null) => void): void => {
  void (async () => {
    const { run } = await import('./mountinfo.js');
    const gone = async (): Promise<boolean> => !(await readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((l) => l.split(' ')[4] === mnt);
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      run('umount', ['-l', mnt]),
      new Promise<{ code: number; stderr: string }>((res) => (timer = setTimeout(() => res({ code: -1, stderr: 'umount did not return within 3 s' }), 3000))),
    ]);
    clearTimeout(timer);
    if (r.code === 0 || (await gone())) return cb(null);
    const f = await run('fusermount', ['-uz', mnt]);
    cb(f.code === 0 || (await gone()) ? null : new Error(r.stderr.trim() || f.stderr.trim()));
  })().catch((e: Error) => cb(e));
};

interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
  _fuseOptions(): string;
  ops: Record<string, (...a: any[]) => void>;
  _op_getattr(signal: (...a: unknown[]) => void, path: string): void;
  _op_readdir(signal: (...a: unknown[]) => void, path: string): void;
}

interface StatLike { mode: number; uid: number; gid: number; size: number; nlink: number; blksize: number; blocks: number; mtime: Date; atime: Date; ctime: Date }

/** fuse-native's stat encoding (index.js getStatArray), computed once per stat object: the fs
 * layer hands out the same object for the same immutable node, and a readdir of a directory
 * with many entries otherwise re-encodes (and allocates) every entry on every listing. */
const encoded = new WeakMap<object, Uint32Array>();
function statArray(st: StatLike): Uint32Array {
  let a = encoded.get(st);
  if (a) return a;
  a = new Uint32Array(18);
  const dbl = (i: number, n: number): void => {
    a![i] = n % 4294967296;
    a![i + 1] = (n - a![i]!) / 4294967296;
  };
  a[0] = st.mode; a[1] = st.uid; a[2] = st.gid; dbl(3, st.size); a[6] = st.nlink || 1; a[9] = st.blksize; dbl(10, st.blocks);
  dbl(12, st.atime.getTime()); dbl(14, st.mtime.getTime()); dbl(16, st.ctime.getTime());
  encoded.set(st, a);
  return a;
}
/** The same for a whole listing (the fs layer hands out one stats array per immutable tree). */
const encodedLists = new WeakMap<object, Uint32Array[]>();
function statArrays(stats: StatLike[]): Uint32Array[] {
  let a = encodedLists.get(stats);
  if (!a) encodedLists.set(stats, (a = stats.map(statArray)));
  return a;
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
  /** Kernel readahead for the mount in KiB (page-cached mounts; default MIQ_MOUNT_READAHEAD_KB or
   * 1024). libfuse 2 caps one READ at 128 KiB and the kernel's default window is also 128 KiB, so
   * a sequential reader has at most one request ahead of it; a wider window puts several
   * 128 KiB reads in flight, which the chunk reader answers in parallel. */
  readaheadKb?: number;
}

/**
 * Sets the kernel readahead window of a FUSE mount through its backing device
 * (/sys/class/bdi/<major:minor>); the device number comes from /proc/self/mountinfo, so nothing
 * here touches the mount itself (a stat of it would be a request to this very process). Best
 * effort: without root the window stays at the kernel's default.
 */
async function setReadahead(mountpoint: string, kb: number): Promise<void> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  let dev: string | undefined;
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    const f = (left ?? '').split(' ');
    if (f[4] === mountpoint && (right ?? '').startsWith('fuse')) dev = f[2];
  }
  if (dev && /^\d+:\d+$/.test(dev)) await writeFile(`/sys/class/bdi/${dev}/read_ahead_kb`, String(kb));
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
    // The kernel checks modes itself: `test -x` of a file without an exec bit is false.
    defaultPermissions: true,
  });
  // Same protocol as fuse-native's handlers, with the stat encoding cached (see statArray).
  f._op_getattr = function (signal, path) {
    this.ops.getattr!(path, (err: number, st: StatLike) => (err ? signal(err, new Uint32Array(18)) : signal(0, statArray(st))));
  };
  f._op_readdir = function (signal, path) {
    this.ops.readdir!(path, (err: number, names: string[], stats?: StatLike[]) => (err ? signal(err) : signal(0, names, stats ? statArrays(stats) : [])));
  };
  const base = f._fuseOptions.bind(f);
  f._fuseOptions = () => {
    const b = base();
    return b ? `${b},${extra.join(',')}` : `-o${extra.join(',')}`;
  };
  await new Promise<void>((resolve, reject) => f.mount((err) => (err ? reject(err) : resolve())));
  const ra = o.readaheadKb ?? (Number(process.env.MIQ_MOUNT_READAHEAD_KB) || 1024);
  if (!o.directIo && ra > 0) await setReadahead(resolvePath(mountpoint), ra).catch(() => {});
  let unmounting: Promise<void> | undefined;
  return {
    mountpoint,
    unmount() {
      unmounting ??= new Promise<void>((resolve, reject) => f.unmount((err) => (err ? reject(new MiqError('MIQ_IO', `cannot unmount ${mountpoint}: ${err.message}`, { cause: err })) : resolve())));
      return unmounting;
    },
  };
}
