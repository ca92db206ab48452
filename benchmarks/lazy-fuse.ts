/**
 * A minimal read-only FUSE view of one tree of a RemoteReader, for benchmarks/lazy.ts only.
 * It stands in for `miq mount --remote` until the mount (mount/, fs/) takes a RemoteReader; it
 * serves what a program run needs (lookup, getattr, readdir, open, read, readlink) and maps every
 * fault to EIO, as the real mount must.
 */
import { createRequire } from 'node:module';
import type { Id } from '../store/ids.js';
import type { FileRecord, TreeEntry } from '../store/objects.js';
import type { RemoteReader } from '../store/remote/index.js';

type Cb = (err: number, ...rest: unknown[]) => void;
// fuse-native is CommonJS without types.
const Fuse = createRequire(import.meta.url)('fuse-native') as {
  new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>): { mount(cb: (e?: Error) => void): void; unmount(cb: (e?: Error) => void): void };
  ENOENT: number; EIO: number; ENOTDIR: number;
};

interface Node { kind: TreeEntry['kind']; size: number; id?: Id; target?: Buffer }

export async function mountTree(mnt: string, remote: RemoteReader, root: Id, onError: (e: unknown) => void = () => undefined): Promise<{ unmount(): Promise<void> }> {
  const nodes = new Map<string, Node>([['/', { kind: 'dir', size: 0, id: root }]]);
  const resolve = async (p: string): Promise<Node | undefined> => {
    const hit = nodes.get(p);
    if (hit) return hit;
    const cut = p.lastIndexOf('/');
    const parent = await resolve(cut === 0 ? '/' : p.slice(0, cut));
    if (!parent || parent.kind !== 'dir') return undefined;
    const t = await remote.getTree(parent.id!);
    const name = p.slice(cut + 1);
    const e = t?.entries.find((x) => x.name.toString() === name);
    if (!e) return undefined;
    const n: Node = { kind: e.kind, size: e.size, id: e.id, target: e.target };
    nodes.set(p, n);
    return n;
  };
  const fds = new Map<number, FileRecord>();
  let nextFd = 10;
  const guard = (cb: Cb, fn: () => Promise<void>): void => {
    fn().catch((e) => {
      onError(e);
      cb(Fuse.EIO);
    });
  };
  const modeOf = (n: Node): number => (n.kind === 'dir' ? 0o40555 : n.kind === 'symlink' ? 0o120777 : n.kind === 'exe' ? 0o100555 : 0o100444);
  const ops = {
    getattr: (p: string, cb: Cb) => guard(cb, async () => {
      const n = await resolve(p);
      if (!n) return cb(Fuse.ENOENT);
      const t = new Date(0);
      cb(0, { mtime: t, atime: t, ctime: t, nlink: 1, size: n.kind === 'dir' ? 4096 : n.size, mode: modeOf(n), uid: 0, gid: 0 });
    }),
    readdir: (p: string, cb: Cb) => guard(cb, async () => {
      const n = await resolve(p);
      if (!n) return cb(Fuse.ENOENT);
      if (n.kind !== 'dir') return cb(Fuse.ENOTDIR);
      const t = await remote.getTree(n.id!);
      cb(0, t!.entries.map((e) => e.name.toString()));
    }),
    open: (p: string, _flags: number, cb: Cb) => guard(cb, async () => {
      const n = await resolve(p);
      if (!n || !n.id) return cb(Fuse.ENOENT);
      const rec = await remote.getFile(n.id);
      if (!rec) return cb(Fuse.EIO);
      const fd = nextFd++;
      fds.set(fd, rec);
      cb(0, fd);
    }),
    read: (_p: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) => {
      const rec = fds.get(fd);
      if (!rec) return cb(Fuse.EIO);
      remote.readFile(rec, pos, len).then((b) => cb(b.copy(buf, 0)), (e) => { onError(e); cb(Fuse.EIO); });
    },
    release: (_p: string, fd: number, cb: Cb) => { fds.delete(fd); cb(0); },
    readlink: (p: string, cb: Cb) => guard(cb, async () => {
      const n = await resolve(p);
      if (!n || n.kind !== 'symlink') return cb(Fuse.ENOENT);
      cb(0, n.target!.toString());
    }),
  };
  const fuse = new Fuse(mnt, ops, { force: true, mkdir: true, kernelCache: true, entryTimeout: 300, attrTimeout: 300, fsname: 'miq-lazy-bench' });
  await new Promise<void>((res, rej) => fuse.mount((e) => (e ? rej(e) : res())));
  return { unmount: () => new Promise<void>((res, rej) => fuse.unmount((e) => (e ? rej(e) : res()))) };
}
