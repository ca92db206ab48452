/**
 * The serving process (DESIGN §6, §7). Two FUSE mounts in one process:
 *
 *  - the main mount at DIR (store/, profiles/): everything under it is named by a content id or
 *    an immutable generation, so it is served with `kernel_cache` and day-long entry/attribute
 *    timeouts: warm reads come from the page cache.
 *  - the pointer mount: the current generation of one profile. libfuse 2 (fuse-native) cannot
 *    invalidate kernel caches, and the page cache is per inode (= per path here), so this mount
 *    uses `direct_io` and zero timeouts: every open resolves the pointer again, every read(2)
 *    comes from this process and so from the handle's own file record. A reader can never get
 *    pages of the other generation. It is mounted on a private directory and bound onto DIR/usr
 *    by a child `mount --bind`: calling mount(2) from this process on a path inside its own FUSE
 *    mount deadlocks (the syscall waits for a lookup only this blocked thread could answer).
 *
 * A bind mount of DIR/usr made by the user (as a real /usr would be) pins the pointer mount's
 * root, not a generation, so switches show through it.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readlink, rmdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Store } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import * as P from '../store/profiles.js';
import type { Logger } from '../fs/errno.js';
import { createOps } from '../fs/ops.js';
import { ChunkReader } from '../fs/reader.js';
import { Recall, recallBytes, recallPath } from '../fs/recall.js';
import { TreeCache } from '../fs/trees.js';
import { mainView, pointerView, type ProfileSource } from '../fs/views.js';
import { socketPath } from './client.js';
import { controlOps } from './control-ops.js';
import { listenControl, type ControlServer } from './control.js';
import { listenUserSockets } from './users.js';
import { fuseMount, type FuseMount } from './fuse.js';
import { fuse3Mount, loadFuse3, type Fuse3Mount } from './fuse3.js';
import { Inodes } from '../fs/inodes.js';
import type { Replier } from '../fs/index.js';
import { fuseDeviceAt, fuseMountsOf, lazyUnmount, mounts, mountsUnder, prepareMountpoint, probe, run } from './mountinfo.js';
import { viewsDir } from '../store/private-dir.js';

export interface MountOptions {
  /** Profile shown at DIR/usr (default "system"). */
  profile?: string;
  /** Decompressed-chunk LRU bytes. */
  cacheBytes?: number;
  /** Serve the control socket (default true). */
  control?: boolean;
  log?: Logger;
  debug?: boolean;
  /** 'fuse3' (our libfuse 3 addon: one mount, kernel caching, a switch drops only changed
   * names) or 'fuse-native' (libfuse 2: a second direct_io mount for usr). Default: fuse3 when
   * the addon loads, else fuse-native (MIQ_FUSE_BACKEND overrides). */
  backend?: Backend;
  /** Users who get a control socket of their own (`<store>/users/<user>/miq.sock`, mount/users.ts). */
  users?: readonly string[];
}

export type Backend = 'fuse3' | 'fuse-native';

/** The backend a mount would use, and why the addon is not used when it is not. */
export function chooseBackend(wanted?: string): { backend: Backend; why?: string } {
  const w = wanted ?? process.env.MIQ_FUSE_BACKEND;
  if (w !== undefined && w !== '' && w !== 'fuse3' && w !== 'fuse-native') throw new MiqError('MIQ_BAD_INPUT', `unknown FUSE backend "${w}"; use fuse3 or fuse-native`);
  if (w === 'fuse-native') return { backend: 'fuse-native' };
  const l = loadFuse3();
  if (l.native) return { backend: 'fuse3' };
  if (w === 'fuse3') throw new MiqError('MIQ_BAD_INPUT', `the fuse3 backend is not available: ${l.error} (rebuild it with \`npm rebuild\` after installing libfuse3-dev and pkg-config, or use --backend fuse-native)`);
  return { backend: 'fuse-native', why: l.error };
}

export interface MountStatus {
  dir: string;
  store: string;
  profile: string;
  generation: number | undefined;
  tree: Id | undefined;
  pid: number;
  openHandles: number;
  backend: Backend;
  /** libfuse 3: the binding's request counts (native/miqfuse.c state()). */
  requests?: Record<string, number>;
}

export interface MountHandle {
  readonly dir: string;
  readonly cleared: string[];
  status(): MountStatus;
  /** Re-reads the profile pointer (the control socket calls this after every profile change). */
  refresh(): Promise<void>;
  /** Unmounts everything and stops the control socket; idempotent. The store stays open. */
  close(): Promise<void>;
  /** Resolves when the mount went away without close() (someone ran `umount DIR`). */
  readonly lost?: Promise<void>;
}

/**
 * Where the pointer mount lives before it is bound onto DIR/usr: inside a directory only the
 * serving user can enter (by default `<store>/run/views`, see store/private-dir.ts). It used to be
 * a predictable name under $TMPDIR, which a local user could take first with a symlink and so
 * choose where root's world-readable view was mounted.
 */
export function viewMountpoint(views: string, dir: string, profile: string): string {
  const h = createHash('sha256').update(dir).digest('hex').slice(0, 16);
  return join(views, `${h}-${profile}`);
}

const IMMUTABLE_TIMEOUT = 86_400;

export async function startMount(store: Store, dirArg: string, opts: MountOptions = {}): Promise<MountHandle> {
  const dir = resolve(dirArg);
  const profile = P.checkProfileName(opts.profile ?? 'system');
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const isRoot = process.getuid?.() === 0;
  const views = await viewsDir(store.dir);
  const viewDir = viewMountpoint(views, dir, profile);
  const { backend } = chooseBackend(opts.backend);

  const { cleared } = await prepareMountpoint(dir);
  // A killed server also leaves its private pointer mount behind: clear every dead one (of any
  // DIR; a live one of this DIR means another server), and the empty mountpoints of earlier runs.
  const live = new Set<string>();
  for (const m of await mountsUnder(views)) {
    if ((await probe(m.mountpoint)) === 'stale') {
      await lazyUnmount(m.mountpoint).catch(() => {});
      await rmdir(m.mountpoint).catch(() => {});
      cleared.push(m.mountpoint);
    } else if (m.mountpoint === viewDir) {
      throw new MiqError('MIQ_BAD_INPUT', `${dir} seems to be served already (its pointer view ${m.mountpoint} is live); stop that miq mount first`);
    } else {
      live.add(m.mountpoint);
    }
  }
  for (const name of await readdir(views).catch(() => [] as string[])) {
    if (!live.has(join(views, name))) await rmdir(join(views, name)).catch(() => {});
  }

  const trees = new TreeCache(store);
  const chunks = new ChunkReader(store.chunks, opts.cacheBytes);
  chunks.warm();
  const profiles: ProfileSource = {
    profiles: async () => (await P.listProfiles(store)).map((p) => p.name),
    generations: async (p) => {
      try {
        return (await P.listGenerations(store, p)).map((g) => g.generation);
      } catch (e) {
        if ((e as MiqError).code === 'MIQ_BAD_INPUT') return [];
        throw e;
      }
    },
    current: (p) => P.currentNumber(store, p),
    generation: (p, n) => P.getGeneration(store, p, n),
  };
  let pointer: P.GenerationRecord | undefined = await P.current(store, profile);
  const refresh = async (): Promise<void> => {
    pointer = await P.current(store, profile);
  };

  if (backend === 'fuse3') return startFuse3(store, dir, profile, { trees, chunks, profiles, log, isRoot, cleared, debug: opts.debug, control: opts.control !== false, users: opts.users ?? [], getPointer: () => pointer, setPointer: (p) => (pointer = p) });

  const main = createOps({ view: mainView(store, profiles, trees, { usrMountpoint: true }), reader: store, chunks, log, immutable: true });
  const ptr = createOps({ view: pointerView(trees, () => (pointer ? { tree: pointer.tree, env: pointer.env } : undefined)), reader: store, chunks, log });

  const done: (() => Promise<void>)[] = [];
  const undo = async (): Promise<void> => {
    for (const f of done.reverse()) await f().catch((e: unknown) => log(`miq mount: cleanup: ${(e as Error).message}`));
    done.length = 0;
  };
  try {
    const mainMount: FuseMount = await fuseMount(dir, main.ops, {
      fsname: 'miq', kernelCache: true, directIo: false, entryTimeout: IMMUTABLE_TIMEOUT, attrTimeout: IMMUTABLE_TIMEOUT,
      // New store paths and generations appear at any time: never cache a miss.
      negativeTimeout: 0, allowOther: isRoot, readOnly: true, debug: opts.debug,
    });
    done.push(() => mainMount.unmount());

    // Made fresh inside a directory only we can enter: nothing of anyone else's can be there.
    await mkdir(viewDir, { mode: 0o755 });
    done.push(() => rmdir(viewDir).catch(() => {}));
    const viewMount = await fuseMount(viewDir, ptr.ops, {
      fsname: `miq-${profile}`, kernelCache: false, directIo: true, entryTimeout: 0, attrTimeout: 0, negativeTimeout: 0, allowOther: isRoot, readOnly: true, debug: opts.debug,
    });
    done.push(() => viewMount.unmount());

    const usr = join(dir, 'usr');
    const b = await run('mount', ['--bind', viewDir, usr]);
    if (b.code !== 0) throw new MiqError('MIQ_IO', `cannot bind the ${profile} view onto ${usr}: ${b.stderr.trim()} (binding needs root)`);
    done.push(() => lazyUnmount(usr));

    let control: ControlServer | undefined;
    const status = (): MountStatus => ({ dir, store: store.dir, profile, generation: pointer?.generation, tree: pointer?.tree, pid: process.pid, openHandles: main.openHandles() + ptr.openHandles(), backend });
    if (opts.control !== false) {
      const ops = controlOps(store, { onProfileChange: refresh, status });
      control = await listenControl(socketPath(store.dir), ops, log);
      done.push(() => control!.close());
      for (const s of await listenUserSockets(store, opts.users ?? [], ops, log)) done.push(() => s.close());
    }
    // Binds of DIR/usr or DIR made by others keep both devices mounted after our own unmounts
    // (and fusermount cannot see them): detach every mount of them first (`done` is undone last
    // to first), so that nothing is left in the mount table when we exit.
    const owners = [dir, viewDir];
    const devices = await Promise.all(owners.map((d) => fuseDeviceAt(d)));
    done.push(async () => {
      // A device number is ours only while our own mount still shows it: after an outside
      // `umount DIR` the kernel hands it to the next FUSE mount made anywhere (see fuse3.ts).
      const all = await mounts().catch(() => []);
      const live = devices.filter((d, i): d is string => d !== undefined && all.some((m) => m.mountpoint === owners[i] && m.device === d));
      for (const m of await fuseMountsOf(live)) if (m !== dir && m !== viewDir && m !== usr) await lazyUnmount(m).catch(() => {});
    });
  } catch (e) {
    await undo();
    throw e;
  }

  let closing: Promise<void> | undefined;
  // libfuse 2 tells us nothing when someone runs `umount DIR`: watch the mount table (cheap,
  // twice a second) so that miq mount ends then, as it does on the fuse3 backend.
  let watch: NodeJS.Timeout | undefined;
  const lost = new Promise<void>((resolveLost) => {
    watch = setInterval(() => {
      void fuseDeviceAt(dir).then((d) => {
        if (d !== undefined || closing) return;
        clearInterval(watch);
        resolveLost();
      }, () => {});
    }, 500);
    watch.unref();
  });
  return {
    dir,
    cleared,
    status: () => ({ dir, store: store.dir, profile, generation: pointer?.generation, tree: pointer?.tree, pid: process.pid, openHandles: main.openHandles() + ptr.openHandles(), backend }),
    refresh,
    lost,
    close() {
      clearInterval(watch);
      closing ??= undo();
      return closing;
    },
  };
}

interface Fuse3Parts {
  trees: TreeCache;
  chunks: ChunkReader;
  profiles: ProfileSource;
  log: Logger;
  isRoot: boolean;
  cleared: string[];
  debug?: boolean;
  control: boolean;
  users: readonly string[];
  getPointer(): P.GenerationRecord | undefined;
  setPointer(p: P.GenerationRecord | undefined): void;
}

/** Control operations after which the store's listings (store/, profiles/) may have changed. */
const CHANGING_OPS = new Set(['store.ingest', 'store.putStorePath', 'store.batchMeta', 'store.pin', 'store.unpin', 'gc']);

/**
 * Before the mount reports itself mounted, the trees of the profile's current generation are
 * loaded, WARM_DEPTH levels below its root (WARM_WIDTH subdirectories of each, WARM_TREES in all:
 * the bench tree's /usr, 195 trees, in ~57 ms at load 4): a program's first lookups (usr/bin,
 * usr/lib, usr/lib/x86_64-linux-gnu, usr/lib/python3.11) each waited for a database read of a
 * tree before, the first of them also for the index's table files to open (15.8 ms for usr/bin
 * in python's cold start at load 13, 0.5 ms after). At most WARM_MS: a slow disk delays the
 * mount no longer than that (the loading goes on behind it). WARM_WIDTH 128, not 64: the bench
 * tree's share/ has 115 subdirectories, and python's start looks into locale (the 68th) and
 * zoneinfo (the 114th): both were lookups in JS.
 */
const WARM_DEPTH = Number(process.env.MIQ_MOUNT_WARM_DEPTH ?? 2);
const WARM_WIDTH = 128;
/**
 * Below usr/lib, LIB_DEPTH levels (WARM_DEPTH elsewhere; at most LIB_TREES trees more) are loaded
 * and registered the same way: the runtimes keep their module trees there, and a program's imports
 * go deep at once (lib/python3.11/encodings/__pycache__ is four levels below usr). Python's cold
 * start looked up a package's first names and then its __pycache__'s .pyc before JS had loaded and
 * registered their listings (6-9 LOOKUPs in JS, one waiting 5-13 ms for a tree; fuse-needs §39).
 * The bench tree: 217 trees and 2645 names more.
 */
const LIB_DEPTH = 5;
const LIB = Buffer.from('lib');
const LIB_TREES = 512;
const WARM_TREES = 256;
const WARM_MS = 2000;
/** Then the listings of those trees (below usr) are registered with the binding, this many names
 * at most (Inodes.preregister; the bench tree's /usr: ~5k names in ~10 ms): a program's first
 * lookups below usr/<dir> are answered by the binding, not each a round trip to JS. */
const PREREGISTER_NAMES = 16384;
/** Files whose records, and chunks whose locations, are loaded before `mounted` at most
 * (Inodes.preloadFiles). */
const PRELOAD_FILES = 2048;
const PRELOAD_CHUNKS = 32768;
/** Small files whose one-chunk maps are handed to the binding before `mounted` at most
 * (Inodes.preloadFiles; the bench tree: ~4500). */
const PRELOAD_SMALL = 8192;
/** The last start's files (fs/recall.ts) are read before `mounted` for at most this long. */
const RECALL_MS = 2000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());
/** `p`'s value, or `late` when it has not come within `ms` (the work goes on behind). */
const within = <T>(p: Promise<T>, ms: number, late: T): Promise<T> => Promise.race([p, sleep(ms).then(() => late)]);

/** The index is read ahead whole when it is at most this big. */
const WARM_INDEX_BYTES = 128 << 20;

/**
 * Keeps the store's index (LevelDB's tables, ~3 % of the packs' size here) in the page cache while
 * the mount is used: on a request, at most every 5 s, the kernel is asked to read the table files
 * (posix_fadvise WILLNEED, one sequential read each; pages already cached cost nothing). A cold
 * walk or program start otherwise waits on one random disk read per tree, file record and chunk
 * location, in sequence (measured: python's cold start through usr, 3x the plain tree's time).
 * Skipped for an index over WARM_INDEX_BYTES.
 */
function indexWarmer(db: string, willneed: (paths: string[]) => Promise<void>): () => void {
  let last = 0;
  return () => {
    const now = Date.now();
    if (now - last < 5000) return;
    last = now;
    void (async () => {
      const names = (await readdir(db)).filter((n) => n.endsWith('.ldb') || n.endsWith('.log') || n.startsWith('MANIFEST-'));
      const paths = names.map((n) => join(db, n));
      const sizes = await Promise.all(paths.map((p) => stat(p).then((st) => st.size, () => 0)));
      if (sizes.reduce((a, b) => a + b, 0) <= WARM_INDEX_BYTES) await willneed(paths);
    })().catch(() => {});
  };
}

/** Inodes.preloadFiles before `mounted`, at most WARM_MS. */
async function preloadFiles(inodes: Inodes, log: (line: string) => void): Promise<void> {
  const t0 = performance.now();
  const f = await within(inodes.preloadFiles(PRELOAD_FILES, PRELOAD_CHUNKS, PRELOAD_SMALL).catch(() => 0), WARM_MS, -1);
  if (process.env.MIQ_DEBUG_COUNTS) log(`miq mount: ${f} file records and their chunk locations loaded in ${(performance.now() - t0).toFixed(1)} ms`);
}

/**
 * The ELF interpreter of usr/bin's executables (the dynamic loader) read whole before `mounted`
 * and offered to the binding at its lookup, as a recalled file is (fs/recall.ts), at most
 * WARM_MS: the exec of any dynamically linked program reads it right after the program's head,
 * and its first READ waited in JS for its record, then its decode behind the program's own on
 * the pool (ld-linux: 9-18 ms of a cold python start, RT). Not a start's history: the view's
 * loader, whatever runs first.
 */
async function preloadInterpreter(inodes: Inodes, log: (line: string) => void): Promise<void> {
  const t0 = performance.now();
  const read = async (): Promise<string> => {
    const i = await inodes.interpreter();
    if (!i) return 'none';
    await inodes.recallFiles([i.file]);
    inodes.offerRecalled([i.file]);
    return `${i.path} (${i.file.size} bytes)`;
  };
  const what = await within(read().catch(() => 'none'), WARM_MS, 'still reading');
  if (process.env.MIQ_DEBUG_COUNTS) log(`miq mount: the ELF interpreter ${what} read in ${(performance.now() - t0).toFixed(1)} ms`);
}

/**
 * The directory /etc/localtime resolves into (a start with the host's /etc and the mount's usr:
 * usr/share/zoneinfo/Etc), registered before `mounted` with the directories on its way: it is
 * below preregister's levels, and every start that reads the local time (python's ssl and
 * sqlite3 imports do) sent a LOOKUP there to the JS thread (its listing was registered at its
 * own lookup, after the file's LOOKUP had come; fuse-needs §45, §46).
 */
async function registerLocaltime(inodes: Inodes, log: (line: string) => void): Promise<void> {
  const t0 = performance.now();
  const target = await readlink('/etc/localtime').catch(() => undefined);
  const parts = target === undefined ? [] : resolve('/etc', target).split('/').filter(Boolean);
  if (parts[0] !== 'usr' || parts.length < 3) return;
  const n = await within(inodes.registerBelowUsr(parts.slice(1, -1).map((p) => Buffer.from(p))).catch(() => 0), WARM_MS, -1);
  if (process.env.MIQ_DEBUG_COUNTS) log(`miq mount: ${n} directories on the way to ${parts.slice(0, -1).join('/')} registered in ${(performance.now() - t0).toFixed(1)} ms`);
}

/** The Inodes' replier before the mount exists (requests wait for it: startFuse3's `early`):
 * each call goes to the mount's replier when made. */
function lateReplier(mount: () => Fuse3Mount): Replier {
  return {
    replyErr: (...a: [number, number]) => mount().replier.replyErr(...a),
    replyEntry: (...a: [number, number, number, number, number, number]) => mount().replier.replyEntry(...a),
    replyAttr: (...a: [number, number, number, number, number]) => mount().replier.replyAttr(...a),
    replyBuf: (...a: [number, Buffer, number]) => mount().replier.replyBuf(...a),
    replyBufs: (...a: [number, Buffer[]]) => mount().replier.replyBufs!(...a),
    replyReadlink: (...a: [number, Buffer]) => mount().replier.replyReadlink(...a),
    replyXattr: (...a: [number, number]) => mount().replier.replyXattr(...a),
    replyStatfs: (...a: [number, number, number]) => mount().replier.replyStatfs(...a),
    replyDir: (...a: [number, boolean, number, Buffer, number, number, number, number]) => mount().replier.replyDir(...a),
    offer: (...a: [number, Buffer, boolean?]) => mount().replier.offer?.(...a),
    pushOffered: (ino: number) => mount().replier.pushOffered?.(ino),
    serveOffered: (...a: [number, number, number, number]) => mount().replier.serveOffered?.(...a) ?? false,
    unnames: (parent: number) => mount().replier.unnames?.(parent) ?? false,
    names: (...a: [number, Buffer, number, number]) => mount().replier.names?.(...a) ?? false,
    attrs: (...a: [number, number, number, number]) => mount().replier.attrs?.(...a) ?? false,
    namesTree: (...a: [number, Buffer, number, Float64Array]) => mount().replier.namesTree?.(...a) ?? false,
    fileIno: (...a: [Id, boolean, number, number]) => mount().replier.fileIno(...a),
    fileNode: (ino: number) => mount().replier.fileNode(ino),
    fileForget: (...a: [number, number]) => mount().replier.fileForget(...a),
  };
}

/**
 * The libfuse 3 backend: one mount. `usr` is a directory of it whose entries are the current
 * generation's; every node below is content-named (fs/inodes.ts), so everything is cached by the
 * kernel and a switch drops only the names of `usr` that changed.
 */
async function startFuse3(store: Store, dir: string, profile: string, x: Fuse3Parts): Promise<MountHandle> {
  const native = loadFuse3().native!;
  const view = mainView(store, x.profiles, x.trees, { usrMountpoint: true });
  const usr = (): { tree: Id; env?: string } | undefined => {
    const p = x.getPointer();
    return p ? { tree: p.tree, env: p.env } : undefined;
  };
  let m: Fuse3Mount | undefined;
  const replier = lateReplier(() => m!);
  // The last start's files (fs/recall.ts): from a store's own packs only (a lazy mount's layered
  // store would fetch them from its remote).
  const rb = recallBytes();
  const recall = rb > 0 && store.getTreesPacked ? new Recall(recallPath(store.dir, profile), rb, x.chunks.wholeAheadBytes, x.log) : undefined;
  const recalled = recall ? await recall.load() : [];
  const inodes = new Inodes({ view, trees: x.trees, reader: store, chunks: x.chunks, usr, log: x.log, recall }, replier);
  let first = true;
  // Requests can arrive before fuse3Mount returns (the kernel sends them as soon as it is
  // mounted): hold them until the replier exists.
  const early: Parameters<typeof inodes.handle>[] = [];
  const warm = indexWarmer(join(store.dir, 'db'), (paths) => m?.willneed(paths) ?? Promise.resolve());
  const handler = (...a: Parameters<typeof inodes.handle>): void => {
    warm();
    if (first) {
      first = false;
      recall?.begin();
    }
    if (m) inodes.handle(...a);
    else early.push(a);
  };
  const p0 = usr();
  // Only from a store's own index (it reads trees in batches): a lazy mount's layered store
  // would fetch them from its remote.
  if (p0 && WARM_DEPTH >= 0 && store.getTreesPacked) {
    const t0 = performance.now();
    const n = await within(x.trees.warm([p0.tree], WARM_DEPTH, WARM_WIDTH, WARM_TREES), WARM_MS, -1);
    // usr/lib's deeper levels (LIB_DEPTH), when WARM_DEPTH leaves them out.
    const ut = LIB_DEPTH > WARM_DEPTH && WARM_DEPTH > 0 ? x.trees.peek(p0.tree)?.tree : undefined;
    const li = ut ? ut.find(LIB) : -1;
    if (ut && li >= 0 && ut.isDir(li)) {
      const t1 = performance.now();
      const n1 = await within(x.trees.warm([ut.id(li)!], LIB_DEPTH - 1, WARM_WIDTH, LIB_TREES), WARM_MS, -1);
      if (process.env.MIQ_DEBUG_COUNTS) x.log(`miq mount: ${n1} trees of ${profile}'s usr/lib loaded in ${(performance.now() - t1).toFixed(1)} ms`);
    }
    if (process.env.MIQ_DEBUG_COUNTS) x.log(`miq mount: ${n} trees of ${profile} loaded in ${(performance.now() - t0).toFixed(1)} ms`);
  }
  m = await fuse3Mount(native, dir, handler, { fsname: 'miq', allowOther: x.isRoot, debug: x.debug });
  x.chunks.sink = m.stream;
  for (const a of early.splice(0)) inodes.handle(...a);
  await inodes.registerRoot();
  if (p0 && WARM_DEPTH > 0) {
    const t0 = performance.now();
    const n = inodes.preregister(WARM_DEPTH, PREREGISTER_NAMES, LIB_DEPTH > WARM_DEPTH ? { name: LIB, depth: LIB_DEPTH } : undefined);
    if (process.env.MIQ_DEBUG_COUNTS) x.log(`miq mount: ${n} names below usr registered in ${(performance.now() - t0).toFixed(1)} ms`);
    // From a store's own index only, as the trees above.
    if (store.getTreesPacked) {
      await registerLocaltime(inodes, x.log);
      await preloadFiles(inodes, x.log);
      await preloadInterpreter(inodes, x.log);
    }
  }
  const recalledDirs = recall?.dirs() ?? [];
  if (recalled.length > 0 || recalledDirs.length > 0) {
    // Before `mounted`, at most RECALL_MS (the reading goes on behind it): a program started once
    // the mount reports itself finds its files decoded, not decoded while it waits. At the
    // first request instead (measured: python's cold start, 2 runs at load 2): 0.22 s against
    // 0.19 s without, the replay's decoding competing with the program for the 2 cores.
    const t0 = performance.now();
    const all = Promise.all([inodes.recallFiles(recalled), inodes.recallDirs(recalledDirs).catch(() => {})]).then(() => inodes.offerRecalled(recalled));
    const ok = await within(all.then(() => true), RECALL_MS, false);
    if (process.env.MIQ_DEBUG_COUNTS) x.log(`miq mount: ${recalled.length} files of the last start (${recalled.reduce((a, f) => a + f.size, 0)} bytes) and ${recalledDirs.length} directories ${ok ? 'read' : 'still reading'} in ${(performance.now() - t0).toFixed(1)} ms`);
  }
  const mount = m;

  let switching = Promise.resolve();
  const refresh = (): Promise<void> => {
    // One switch at a time: each computes its invalidations against the one before it.
    switching = switching.then(async () => {
      const t0 = performance.now();
      const before = x.getPointer()?.tree;
      x.setPointer(await P.current(store, profile));
      const t1 = performance.now();
      const inv = await inodes.switchInvalidations(before, x.getPointer()?.tree);
      inodes.usrSwitched();
      for (const ino of inodes.mutableDirs()) {
        inv.inos.push(ino);
        inv.names.push(null);
      }
      const t2 = performance.now();
      await mount.invalidate(inv.inos, inv.names);
      if (process.env.MIQ_DEBUG_SWITCH) x.log(`switch: pointer ${(t1 - t0).toFixed(1)} ms, diff ${(t2 - t1).toFixed(1)} ms, invalidate ${inv.inos.length} in ${(performance.now() - t2).toFixed(1)} ms`);
    }).catch((e: unknown) => x.log(`miq mount: refresh: ${(e as Error).message}`));
    return switching;
  };
  const status = (): MountStatus => {
    const p = x.getPointer();
    return { dir, store: store.dir, profile, generation: p?.generation, tree: p?.tree, pid: process.pid, openHandles: 0, backend: 'fuse3', requests: m?.state().counts };
  };
  let control: ControlServer | undefined;
  let userSockets: ControlServer[] = [];
  try {
    if (x.control) {
      // gc, verify and stats use the store's maintenance capability (a layered store's local part).
      const ops = controlOps(store, { onProfileChange: refresh, status });
      for (const k of Object.keys(ops)) {
        if (!CHANGING_OPS.has(k)) continue;
        const op = ops[k]!;
        ops[k] = async (args, emit) => {
          try {
            return await op(args, emit);
          } finally {
            const inv: { inos: number[]; names: (Buffer | null)[] } = { inos: inodes.mutableDirs(), names: inodes.mutableDirs().map(() => null) };
            // gc may have removed store paths the kernel still has entries for (a day long).
            if (k === 'gc') {
              const gone = await inodes.goneStorePaths(async (n) => (await store.getStorePath(n)) !== undefined);
              inv.inos.push(...gone.inos);
              inv.names.push(...gone.names);
            }
            await mount.invalidate(inv.inos, inv.names);
          }
        };
      }
      control = await listenControl(socketPath(store.dir), ops, x.log);
      userSockets = await listenUserSockets(store, x.users, ops, x.log);
    }
  } catch (e) {
    await control?.close().catch(() => {});
    await mount.unmount().catch(() => {});
    throw e;
  }
  let closing: Promise<void> | undefined;
  return {
    dir,
    cleared: x.cleared,
    status,
    refresh,
    lost: mount.ended.then(() => (closing ? new Promise<void>(() => {}) : undefined)),
    close() {
      closing ??= (async () => {
        // What JS made objects for (file nodes are the binding's: fs/inodes.ts cFile).
        if (process.env.MIQ_DEBUG_COUNTS) x.log(`miq mount: nodes ${JSON.stringify({ objects: inodes.size, fileObjects: inodes.fileObjects, fileNodes: mount.state().fileNodes })}`);
        await control?.close().catch((e: unknown) => x.log(`miq mount: cleanup: ${(e as Error).message}`));
        for (const u of userSockets) await u.close().catch((e: unknown) => x.log(`miq mount: cleanup: ${(e as Error).message}`));
        await mount.unmount().catch((e: unknown) => x.log(`miq mount: cleanup: ${(e as Error).message}`));
        await recall?.save();
      })();
      return closing;
    },
  };
}

/** Runs until SIGINT or SIGTERM (or until the mount is unmounted from outside), then unmounts
 * cleanly. Resolves with the signal's name ('umount' for an outside unmount). */
export function untilSignal(h: MountHandle): Promise<NodeJS.Signals | 'umount'> {
  return new Promise((resolveSig) => {
    const on = (sig: NodeJS.Signals | 'umount'): void => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      void h.close().then(() => resolveSig(sig), () => resolveSig(sig));
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
    void h.lost?.then(() => on('umount'));
  });
}
