/**
 * The libfuse 3 low-level backend: our own addon (native/miqfuse.c, built by node-gyp at
 * `npm ci`) behind a promise API. Requests go to an fs/inodes.ts dispatcher; replies go back
 * by request slot. Loading fails softly (`loadFuse3().error`), so the daemon can fall back to
 * fuse-native on a machine without libfuse 3.
 */
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { MiqError } from '../store/errors.js';
import type { Replier } from '../fs/inodes.js';
import { WHOLE_BYTES, type StreamSink } from '../fs/reader.js';
import type { ChunkLocation } from '../store/api.js';
import { fuseDeviceAt, mounts } from './mountinfo.js';

export interface NativeSession { readonly __session: unique symbol }

export interface NativeState {
  destroyed: boolean;
  ended?: boolean;
  pending?: number;
  maxWrite?: number;
  maxReadahead?: number;
  want?: number;
  counts?: Record<string, number>;
  /** Registered names and directories in the binding, and their bytes. */
  names?: number;
  dirs?: number;
  namesBytes?: number;
  /** File nodes held by the binding's table (namesTree). */
  fileNodes?: number;
  /** us the loop thread spins for the next request after one it answered (MIQ_MOUNT_SPIN_US). */
  spinUs?: number;
}

export interface Native {
  mount(mountpoint: string, args: string[], handler: (op: number, slot: number, ino: number, a: unknown, b: unknown) => void): NativeSession;
  replyErr(s: NativeSession, slot: number, errno: number): number;
  replyEntry(s: NativeSession, slot: number, ino: number, mode: number, size: number, et: number, at: number): number;
  replyAttr(s: NativeSession, slot: number, ino: number, mode: number, size: number, at: number): number;
  replyBuf(s: NativeSession, slot: number, buf: Buffer, len: number): number;
  replyBufs(s: NativeSession, slot: number, bufs: Buffer[]): number;
  replyReadlink(s: NativeSession, slot: number, target: Buffer): number;
  replyXattr(s: NativeSession, slot: number, size: number): number;
  replyStatfs(s: NativeSession, slot: number, blocks: number, files: number): number;
  replyDir(s: NativeSession, slot: number, plus: boolean, size: number, packed: Buffer, count: number, firstOff: number, et: number, at: number): number;
  offer(s: NativeSession, ino: number, bytes: Buffer, push: boolean): void;
  pushOffered(s: NativeSession, ino: number): void;
  serveOffered(s: NativeSession, slot: number, ino: number, size: number, off: number): boolean;
  streamHandle(s: NativeSession): number;
  streamPromise(s: NativeSession, ino: number, size: number, off: number, end: number, low?: number): void;
  streamSettle(s: NativeSession, ino: number, off: number, end: number, bytes?: Buffer): void;
  streamWait(s: NativeSession, slot: number, ino: number, size: number, off: number): boolean;
  /** Chunk maps (built with BLAKE3's C code only). */
  map?(s: NativeSession, ino: number, pack: number, offset: number, stored: number, plain: number, flags: number, frameOff: number, frameSize: number, id: Buffer): boolean;
  mapPack?(s: NativeSession, pack: number, path: string): void;
  mapFile?(s: NativeSession, ino: number, size: number, chunks: Buffer): boolean;
  mapRead?(s: NativeSession, slot: number, ino: number, size: number, off: number): number;
  pendMaps?(s: NativeSession, maxBytes: number, ms: number): void;
  pend?(s: NativeSession, ino: number): void;
  unpend?(s: NativeSession, ino: number): void;
  names(s: NativeSession, parent: number, packed: Buffer, count: number, timeout: number): boolean;
  unnames(s: NativeSession, parent: number): boolean;
  attrs(s: NativeSession, ino: number, mode: number, size: number, timeout: number): boolean;
  namesTree(s: NativeSession, parent: number, tree: Buffer, timeout: number, inos: Float64Array): boolean;
  fileIno(s: NativeSession, id: string, exe: boolean, size: number, count: number): number;
  fileNode(s: NativeSession, ino: number): [string, boolean, number, number, number] | null;
  fileForget(s: NativeSession, ino: number, n: number): void;
  notifyInval(s: NativeSession, inos: number[], names: (Buffer | null)[], cb: (failed: number) => void): void;
  detach(s: NativeSession, paths: string[], cb: (failed: number, message: string) => void): void;
  willneed(s: NativeSession, paths: string[], cb: (failed: number) => void): void;
  stop(s: NativeSession): void;
  drop(s: NativeSession): void;
  state(s: NativeSession): NativeState;
  destroy(s: NativeSession): boolean;
}

let loaded: { native?: Native; error?: string } | undefined;

/** The addon, or why it cannot be used (not built, libfuse 3 missing, MIQ_FUSE_BACKEND=fuse-native). */
export function loadFuse3(): { native?: Native; error?: string } {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  try {
    // dist/mount/fuse3.js -> build/Release at the package root.
    loaded = { native: require('../../build/Release/miqfuse.node') as Native };
  } catch (e) {
    loaded = { error: (e as Error).message.split('\n')[0] };
  }
  return loaded;
}

export interface Fuse3Options {
  fsname: string;
  allowOther: boolean;
  debug?: boolean;
  /** Kernel readahead in KiB (default MIQ_MOUNT_READAHEAD_KB, or 4096 with chunk maps of large
   * files, else 1024). */
  readaheadKb?: number;
  /** After the unmount, how long processes still inside (a shell's cwd, an open file) are
   * served before the connection is aborted (default MIQ_MOUNT_GRACE_MS or 2000). */
  graceMs?: number;
}

export interface Fuse3Mount {
  readonly mountpoint: string;
  readonly replier: Replier;
  /** The binding's stream table, for the chunk reader (fs/reader.ts StreamSink). */
  readonly stream: StreamSink | undefined;
  /** Drops cached entries (ino + name) or nodes (ino + null), off the JS thread. */
  invalidate(inos: number[], names: (Buffer | null)[]): Promise<number>;
  state(): NativeState;
  /** Asks the kernel to read these files into the page cache (off the JS thread). */
  willneed(paths: string[]): Promise<void>;
  /** Resolves when the connection has ended: after unmount(), or when someone else unmounted
   * it (`umount DIR`) or aborted it. */
  readonly ended: Promise<void>;
  /** Detaches every mount of this filesystem (binds too), serves what is still inside for the
   * grace period, aborts the connection, then waits until no request is unanswered. */
  unmount(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The binding's file nodes and the listings registered from trees (fs/inodes.ts Replier). */
function fileNodes(native: Native, s: NativeSession, destroyed: () => boolean): Pick<Replier, 'namesTree' | 'fileIno' | 'fileNode' | 'fileForget'> {
  return {
    namesTree: (parent, tree, timeout, inos) => !destroyed() && native.namesTree(s, parent, tree, timeout, inos),
    fileIno: (id, exe, size, count) => (destroyed() ? 0 : native.fileIno(s, id, exe, size, count)),
    fileNode: (ino) => (destroyed() ? null : native.fileNode(s, ino)),
    fileForget: (ino, n) => void (destroyed() || native.fileForget(s, ino, n)),
  };
}

/** A file's chunks as mapFile takes them (native/miqfuse.c CREC, 72 bytes each): offset in the
 * file and in the pack (float64), pack, stored, plain, flags, frame offset and size (uint32), id. */
function chunkRecords(chunks: readonly { id: string; loc: ChunkLocation }[]): Buffer {
  const b = Buffer.alloc(chunks.length * 72);
  let at = 0;
  chunks.forEach(({ id, loc }, k) => {
    const o = k * 72;
    b.writeDoubleLE(at, o);
    b.writeDoubleLE(loc.offset, o + 8);
    b.writeUInt32LE(loc.pack, o + 16);
    b.writeUInt32LE(loc.stored, o + 20);
    b.writeUInt32LE(loc.plain, o + 24);
    b.writeUInt32LE(loc.flags, o + 28);
    b.writeUInt32LE(loc.frame?.off ?? 0, o + 32);
    b.writeUInt32LE(loc.frame?.size ?? 0, o + 36);
    b.write(id, o + 40, 32, 'hex');
    at += loc.plain;
  });
  return b;
}

type Handler = (op: number, slot: number, ino: number, a: unknown, b: unknown) => void;

/** The binding's messages to `handler` one by one: a batch of notices (OP_BATCH: notices posted
 * one after another with no request between, native/miqfuse.c post) is `ino` records (op, ino,
 * a, b) in an array the binding reuses, so read before returning. JS pays one call into it (and
 * one microtask checkpoint) per batch instead of per notice; a handler that throws stops only
 * its own notice (as a notice's exception always was: cleared; the handlers log their own). */
function unbatch(handler: Handler, ended: () => void): Handler {
  const OP_END = 11, OP_BATCH = 18;
  return (op, slot, ino, a, b) => {
    if (op === OP_BATCH) {
      const r = a as Float64Array;
      for (let k = 0, end = ino * 4; k < end; k += 4) {
        try {
          handler(r[k]!, 0, r[k + 1]!, r[k + 2]!, r[k + 3]!);
        } catch {
          // cleared, as above
        }
      }
      return;
    }
    if (op === OP_END) ended();
    handler(op, slot, ino, a, b);
  };
}

export async function fuse3Mount(native: Native, mountpoint: string, handler: Handler, o: Fuse3Options): Promise<Fuse3Mount> {
  const opts = [`fsname=${o.fsname}`, 'subtype=miq', 'ro', 'default_permissions'];
  if (o.allowOther) opts.push('allow_other');
  const args = ['-o', opts.join(',')];
  if (o.debug) args.push('-d');
  let s: NativeSession;
  let endNow!: () => void;
  const ended = new Promise<void>((r) => (endNow = r));
  try {
    s = native.mount(mountpoint, args, unbatch(handler, () => endNow()));
  } catch (e) {
    throw new MiqError('MIQ_IO', `cannot mount ${mountpoint} with libfuse 3: ${(e as Error).message}`, { cause: e });
  }
  const dev = await fuseDeviceAt(mountpoint).catch(() => undefined);
  // Chunk maps (native/miqfuse.c "Chunk maps"): READs that nothing else in the binding answers are
  // answered by its read threads from the chunk locations JS handed it, without JS. MIQ_MOUNT_MAPS:
  // `1` (the default): every file, a small file's map handed at its lookup or listing and its READs
  // held in the binding until then (fuse-needs §37: python's cold start through usr, load ~1-3:
  // 0.2555 -> 0.2135 s, 8 of 8, and 0.2245 -> 0.1865 s, 6 of 6; READs to JS ~22 -> 2, serving CPU
  // -40 %; the cold read of every file 2 of 2, CPU lower); `large`: files of several chunks only
  // (fs/reader.ts mapRead, mapAhead; fuse-needs §36: the 117 MB file cold 0.37 -> 0.29 s, CFS 7
  // of 8); `0`: none.
  const maps = process.env.MIQ_MOUNT_MAPS || '1';
  const mapFile = native.mapFile && native.mapRead && native.mapPack && (maps === '1' || maps === 'large') ? native.mapFile : undefined;
  // With maps the kernel's window is 4 MiB: more READs of a file read in order in flight keep both
  // read threads busy (the 117 MB file: 0.215 -> 0.18 s CFS, 6 of 6; 0.17 -> 0.16 s RT, 5 of 5),
  // and python's cold start, whose libraries' page faults read around by it, 0.338 -> 0.3175 s (6 of
  // 6), the read of every file unchanged (1 of 2). On the JS path (no maps) a window over 1 MiB
  // only added work (fuse-needs §27).
  const ra = o.readaheadKb ?? (Number(process.env.MIQ_MOUNT_READAHEAD_KB) || (mapFile ? 4096 : 1024));
  if (dev && /^\d+:\d+$/.test(dev) && ra > 0) {
    // The kernel sets the window to min(window, INIT's max_readahead) when it takes INIT's reply,
    // which comes on the loop thread after mount() returns: a window raised before that was cut
    // back to 128 KiB (measured: 1 mount in 3 or 4 under load read in 128 KiB pieces). So raise
    // it once INIT has been answered, and once more a little later in case the reply was slow to
    // reach the kernel. Best effort: without root the window stays at the kernel's default.
    const raise = (): Promise<void> => writeFile(`/sys/class/bdi/${dev}/read_ahead_kb`, String(ra)).catch(() => {});
    for (const end = Date.now() + 5000; !native.state(s).maxWrite && Date.now() < end;) await sleep(5);
    await sleep(10);
    await raise();
    setTimeout(() => void raise(), 250).unref();
  }
  const grace = o.graceMs ?? (Number(process.env.MIQ_MOUNT_GRACE_MS) || 2000);
  let destroyed = false;
  const replier: Replier = {
    replyErr: (slot, errno) => native.replyErr(s, slot, errno),
    replyEntry: (slot, ino, mode, size, et, at) => native.replyEntry(s, slot, ino, mode, size, et, at),
    replyAttr: (slot, ino, mode, size, at) => native.replyAttr(s, slot, ino, mode, size, at),
    replyBuf: (slot, buf, len) => native.replyBuf(s, slot, buf, len),
    replyBufs: (slot, bufs) => native.replyBufs(s, slot, bufs),
    replyReadlink: (slot, t) => native.replyReadlink(s, slot, t),
    replyXattr: (slot, n) => native.replyXattr(s, slot, n),
    replyStatfs: (slot, b, f) => native.replyStatfs(s, slot, b, f),
    replyDir: (slot, plus, size, packed, count, first, et, at) => native.replyDir(s, slot, plus, size, packed, count, first, et, at),
    // Offers come from decodes that finish at any time, also after the session is gone.
    offer: (ino, bytes, push) => void (destroyed || native.offer(s, ino, bytes, push === true)),
    pushOffered: (ino) => void (destroyed || native.pushOffered(s, ino)),
    serveOffered: (slot, ino, size, off) => !destroyed && native.serveOffered(s, slot, ino, size, off),
    names: (parent, packed, count, timeout) => !destroyed && native.names(s, parent, packed, count, timeout),
    unnames: (parent) => !destroyed && native.unnames(s, parent),
    attrs: (ino, mode, size, timeout) => !destroyed && native.attrs(s, ino, mode, size, timeout),
    ...fileNodes(native, s, () => destroyed),
  };
  let unmounting: Promise<void> | undefined;
  // MIQ_MOUNT_STREAMS=0: every READ of a large file goes to JS, as before the stream table.
  const handle = process.env.MIQ_MOUNT_STREAMS === '0' ? 0 : native.streamHandle(s);
  const map = native.map && native.mapPack && maps === '1' ? native.map : undefined;
  // With small-file maps: the READs of a small file just looked up are held in the binding until
  // its map comes (native/miqfuse.c "Pending maps"), at most MIQ_MOUNT_MAP_HOLD_MS after its LOOKUP.
  const holdMs = map && native.pendMaps && native.pend && native.unpend ? Number(process.env.MIQ_MOUNT_MAP_HOLD_MS || 30) : 0;
  if (holdMs > 0) native.pendMaps!(s, WHOLE_BYTES, holdMs);
  const packs = new Set<number>();
  const packOf = (pack: number, path: string): void => {
    if (packs.has(pack)) return;
    packs.add(pack);
    native.mapPack!(s, pack, path);
  };
  const stream: StreamSink | undefined = handle > 0 ? {
    handle,
    map: map && ((ino, loc, path, id) => {
      if (destroyed) return;
      packOf(loc.pack, path);
      // Not taken: READs held for it go to JS.
      if (!map(s, ino, loc.pack, loc.offset, loc.stored, loc.plain, loc.flags, loc.frame?.off ?? 0, loc.frame?.size ?? 0, Buffer.from(id, 'hex')) && holdMs > 0) native.unpend!(s, ino);
    }),
    pend: holdMs > 0 ? (ino) => void (destroyed || native.pend!(s, ino)) : undefined,
    unpend: holdMs > 0 ? (ino) => void (destroyed || native.unpend!(s, ino)) : undefined,
    holdOff: holdMs > 0 ? () => void (destroyed || native.pendMaps!(s, 0, holdMs)) : undefined,
    mapFile: mapFile && ((ino, size, chunks) => {
      if (destroyed) return false;
      for (const c of chunks) packOf(c.loc.pack, c.path);
      return mapFile(s, ino, size, chunkRecords(chunks));
    }),
    mapRead: mapFile && ((slot, ino, size, off) => (destroyed ? -1 : native.mapRead!(s, slot, ino, size, off))),
    promise: (ino, size, off, end, low) => void (destroyed || native.streamPromise(s, ino, size, off, end, low ?? 0)),
    settle: (ino, off, end, bytes) => void (destroyed || native.streamSettle(s, ino, off, end, bytes)),
    wait: (slot, ino, size, off) => !destroyed && native.streamWait(s, slot, ino, size, off),
  } : undefined;
  return {
    mountpoint,
    replier,
    stream,
    invalidate: (inos, names) => (inos.length === 0 || native.state(s).destroyed ? Promise.resolve(0) : new Promise((r) => native.notifyInval(s, inos, names, r))),
    state: () => native.state(s),
    willneed: (paths) => (paths.length === 0 || native.state(s).destroyed ? Promise.resolve() : new Promise((r) => native.willneed(s, paths, () => r()))),
    ended,
    unmount() {
      unmounting ??= (async () => {
        if (native.state(s).destroyed) return;
        if (process.env.MIQ_DEBUG_COUNTS) {
          const st = native.state(s);
          process.stderr.write(`miq mount: requests ${JSON.stringify({ ...st.counts, names: st.names, dirs: st.dirs, namesBytes: st.namesBytes, fileNodes: st.fileNodes })}\n`);
        }
        // The device number is ours only while our superblock lives. After an outside `umount
        // DIR` the kernel frees it and hands it to the next FUSE mount made anywhere (the lowest
        // free number is reused at once), so sweeping its mounts then detached someone else's
        // mount (reproduced with a stopped server; the likely cause of lazy-mount's instant
        // ENOENT in CI, beside mount-fallback's outside unmount). Swept only while the connection
        // is up or DIR itself still shows the number.
        const all = dev ? await mounts().catch(() => []) : [];
        const ours = dev !== undefined && (!native.state(s).ended || all.some((x) => x.mountpoint === mountpoint && x.device === dev));
        const points = ours ? all.filter((x) => x.device === dev && x.fstype.startsWith('fuse')).map((x) => x.mountpoint).sort((a, b) => b.length - a.length) : [mountpoint];
        if (!points.includes(mountpoint)) points.push(mountpoint);
        const failed = await new Promise<string>((r) => native.detach(s, points, (n, msg) => r(n ? msg : '')));
        // Nothing inside: the kernel ends the connection at once and the loop sees it. Else
        // serve until the grace period ends, then cut the connection (waiting readers get an
        // error, never a hang).
        const until = Date.now() + grace;
        while (!native.state(s).ended && Date.now() < until) await sleep(20);
        if (!native.state(s).ended) native.stop(s);
        for (const end = Date.now() + 2000; !native.state(s).ended && Date.now() < end;) await sleep(10);
        // Requests already taken are answered by their handlers (the store is still open);
        // whatever has not been answered in a second is answered EIO here.
        for (const end = Date.now() + 1000; (native.state(s).pending ?? 0) > 0 && Date.now() < end;) await sleep(10);
        if ((native.state(s).pending ?? 0) > 0) native.drop(s);
        for (const end = Date.now() + 5000; !(destroyed = native.destroy(s));) {
          if (Date.now() > end) throw new MiqError('MIQ_IO', `cannot finish the FUSE session of ${mountpoint}: requests still pending`);
          await sleep(10);
        }
        if (failed) throw new MiqError('MIQ_IO', `cannot unmount ${failed}`);
      })();
      return unmounting;
    },
  };
}
