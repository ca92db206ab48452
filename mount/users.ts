/**
 * Control sockets for non-root users (issue 14 §1). Node cannot ask a Unix socket who is calling
 * (no SO_PEERCRED), so the socket a request arrives on is the identity: each allowed user gets
 * `<store>/users/<user>/miq.sock` in a directory that user owns with mode 0700, and whatever comes
 * in on it is that user's. The socket is bound in the store's root-only run directory, given to
 * the user there, and only then renamed into the user's directory: a chown of a name in a
 * directory the user can write could be redirected by a symlink swapped in between bind and chown.
 *
 * What a user's socket allows (`userOps`): reading anything; writing content-addressed objects
 * (trees, files, and ingests, read with the user's own rights, so nobody can plant bytes under
 * someone else's name or read what they could not); pins and profile changes only under the
 * user's own prefix (`per-user/<user>/…`). Everything else (raw meta writes, store path records,
 * gc, verify) is root's.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Store } from '../store/api.js';
import { MiqError, ioError } from '../store/errors.js';
import { checkPathName } from '../store/objects.js';
import * as P from '../store/profiles.js';
import { privateDir, runDirOf } from '../store/private-dir.js';
import { listenControl, type ControlOp, type ControlServer } from './control.js';
import { SOCKET_NAME } from './protocol.js';

export interface Account { name: string; uid: number; gid: number }

export const usersDirOf = (storeDir: string): string => join(storeDir, 'users');
export const userSocketPath = (storeDir: string, user: string): string => join(usersDirOf(storeDir), user, SOCKET_NAME);

/** The account of a user name, from the system's user database. */
export async function account(name: string): Promise<Account> {
  try {
    checkPathName(name);
  } catch {
    throw new MiqError('MIQ_BAD_INPUT', `"${name}" is not a user name`);
  }
  const out = await new Promise<string>((res) => {
    const c = spawn('getent', ['passwd', name], { stdio: ['ignore', 'pipe', 'ignore'] });
    let s = '';
    c.stdout.on('data', (d) => (s += d));
    c.on('close', () => res(s));
    c.on('error', () => res(''));
  });
  const f = out.trim().split(':');
  if (f.length < 4 || f[0] !== name) throw new MiqError('MIQ_BAD_INPUT', `no user "${name}" on this system (getent passwd ${name} finds nothing)`);
  return { name, uid: Number(f[2]), gid: Number(f[3]) };
}

/** A directory created (or checked) through an O_NOFOLLOW handle and given to `owner` with `mode`. */
async function ownedDir(dir: string, owner: { uid: number; gid: number }, mode: number, parentIsOurs: boolean): Promise<void> {
  await mkdir(dir, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'EEXIST') throw ioError(e, 'cannot create', dir); });
  let fh;
  try {
    fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Only root can write the parent, so only root put this here: replace it.
    if (parentIsOurs && (code === 'ELOOP' || code === 'ENOTDIR')) {
      await rm(dir, { force: true });
      return ownedDir(dir, owner, mode, false);
    }
    throw new MiqError('MIQ_BAD_INPUT', `${dir} is not a directory miq made; refusing to use it: remove it and retry`, { details: { path: dir } });
  }
  try {
    await fh.chown(owner.uid, owner.gid);
    await fh.chmod(mode);
  } finally {
    await fh.close();
  }
}

/** Reads `dir` as `who` (tar running with the user's uid and gid, no supplementary groups) into
 * a private copy, so the serving root process ingests only what that user could read. */
async function copyAsUser(dir: string, who: Account, into: string): Promise<void> {
  await new Promise<void>((res, rej) => {
    const src = spawn('tar', ['-C', dir, '-cf', '-', '.'], { uid: who.uid, gid: who.gid, stdio: ['ignore', 'pipe', 'pipe'] });
    const dst = spawn('tar', ['-C', into, '-xf', '-', '--no-same-owner', '--no-same-permissions'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    src.stderr.on('data', (d) => (err += d));
    dst.stderr.on('data', (d) => (err += d));
    src.stdout.pipe(dst.stdin);
    dst.stdin.on('error', () => {});
    let left = 2;
    let bad = false;
    const done = (code: number | null): void => {
      if (code !== 0) bad = true;
      if (--left > 0) return;
      if (bad) rej(new MiqError('MIQ_PERMISSION', `cannot read ${dir} as ${who.name}: ${err.trim().split('\n')[0] ?? 'tar failed'}`, { details: { path: dir, user: who.name } }));
      else res();
    };
    src.on('close', done);
    dst.on('close', done);
    src.on('error', () => done(1));
    dst.on('error', () => done(1));
  });
}

const READ_OPS = [
  'store.getFile', 'store.getTree', 'store.getStorePath', 'store.listStorePaths', 'store.readFile', 'store.chunks.get', 'store.chunks.has',
  'store.listRoots', 'store.getMeta', 'store.listMeta', 'store.putTree', 'store.putBytes',
  'profile.list', 'profile.generations', 'profile.diff', 'mount.status', 'stats',
];
const PROFILE_CHANGES = ['profile.switch', 'profile.add', 'profile.remove', 'profile.rollback', 'profile.switchTo', 'profile.deleteGenerations'];

/** The operations of `all` that `who` may use, checked; the rest answer MIQ_PERMISSION. */
export function userOps(store: Store, all: Record<string, ControlOp>, who: Account): Record<string, ControlOp> {
  const mine = `${P.PER_USER}/${who.name}/`;
  const refuse = (what: string): never => {
    throw new MiqError('MIQ_PERMISSION', `${who.name} may not ${what} (only root may; a user changes only profiles and pins under ${mine}…, e.g. with --user)`, { details: { user: who.name } });
  };
  const ops: Record<string, ControlOp> = {};
  for (const name of Object.keys(all)) ops[name] = async () => refuse(`run "${name}" on this store`);
  for (const name of READ_OPS) if (all[name]) ops[name] = all[name]!;
  for (const name of PROFILE_CHANGES) {
    ops[name] = async (args: { profile?: unknown }, emit) => {
      const p = typeof args?.profile === 'string' ? args.profile : '';
      if (P.profileOwner(p) !== who.name) refuse(`change profile "${p}", which is ${P.profileOwner(p) ? `${P.profileOwner(p)}'s` : "root's"}`);
      return all[name]!(args, emit);
    };
  }
  // A user's roots are named under their prefix; a name under someone else's is refused, not
  // quietly re-rooted under ours.
  const rootName = (name: string): string => {
    if (name.startsWith(mine)) return name;
    if (name.startsWith(`${P.PER_USER}/`) || name.includes('/')) refuse(`touch the GC root "${name}"`);
    return `${mine}${name}`;
  };
  ops['store.pin'] = async ([path, root]: [string, string | null]) => store.pin(path, rootName(typeof root === 'string' && root ? root : path));
  ops['store.unpin'] = async ([rootOrPath]: [string]) => store.unpin(rootName(rootOrPath));
  ops['store.ingest'] = async ([dir, opts]: [string, Record<string, unknown> | null], emit) => {
    if (typeof dir !== 'string' || !dir.startsWith('/')) throw new MiqError('MIQ_BAD_INPUT', 'ingest over the control socket needs an absolute directory');
    const { key, made, statCacheSession: _s, pin, ...rest } = opts ?? {};
    // A chosen key (builds, packages, trigger outputs) names a path by what it claims to be, not
    // by its bytes: a user could plant anything there. Only root stores those.
    if (key !== undefined || made !== undefined) refuse('store a path under a chosen key (packages, builds, trigger outputs); root installs or builds it, then any user can use it');
    const tmp = await mkdtemp(join(await privateDir(runDirOf(store.dir)), `ingest-${who.name}-`));
    try {
      await copyAsUser(dir, who, tmp);
      const r = await all['store.ingest']!([tmp, { ...rest, name: typeof rest.name === 'string' ? rest.name : basename(dir), pin: false }], emit) as { path: string };
      if (pin !== false) await store.pin(r.path, `${mine}${r.path}`);
      return r;
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  };
  return ops;
}

/** One control socket per user in `users`, each serving `userOps` for that user. */
export async function listenUserSockets(store: Store, users: readonly string[], all: Record<string, ControlOp>, log: (l: string) => void): Promise<ControlServer[]> {
  if (users.length === 0) return [];
  if (process.getuid?.() !== 0) throw new MiqError('MIQ_PERMISSION', 'only root can serve other users (--users)');
  const base = usersDirOf(store.dir);
  await ownedDir(base, { uid: 0, gid: 0 }, 0o755, false);
  const run = await privateDir(runDirOf(store.dir));
  const out: ControlServer[] = [];
  try {
    for (const u of users) {
      const who = await account(u);
      const dir = join(base, who.name);
      await ownedDir(dir, who, 0o700, true);
      out.push(await listenControl(join(run, `user-${who.name}.sock`), userOps(store, all, who), log, { owner: who, publishAt: join(dir, SOCKET_NAME) }));
    }
  } catch (e) {
    for (const s of out) await s.close().catch(() => {});
    throw e;
  }
  return out;
}
