/**
 * install / remove / upgrade / why. A generation made here has one extra member, the
 * `miq-world` store path, holding `var/lib/miq/world.json`: what the user asked for (the
 * "world") and the resolution (each package, its store path and why it is there). remove and
 * upgrade re-resolve from the world, so what nothing needs any more goes.
 */
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MirrorOptions } from '../builder/mirrors.js';
import type { Store } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import { mkdirp } from '../store/mkdirp.js';
import * as P from '../store/profiles.js';
import { debPathName, debStorePath, fetchDeb, inStore, ingestStaged, unpackDeb, type UnpackedDeb } from './deb.js';
import { explain, resolve, type Resolution } from './resolve.js';
import { runTriggers, type TriggerResult } from './triggers.js';
import { listRepos } from './repo.js';
import { loadUniverse } from './packed.js';
import { readStoreFile, type Pkg, type Universe } from './universe.js';
import { idOf } from '../store/ids.js';

export const WORLD_NAME = 'miq-world';
export const USRMERGE_NAME = 'miq-usrmerge';
const WORLD_FILE = 'var/lib/miq/world.json';

export interface WorldPackage {
  name: string;
  version: string;
  arch: string;
  path: string;
  /** "requested", or the package and dependency group that pulled it in. */
  why: 'requested' | { by: string; group: string };
  scripts?: string[];
}

export interface World {
  /** What the user asked for, as given (`name` or `name=version`). */
  world: string[];
  essential: boolean;
  packages: WorldPackage[];
}

export interface InstallEvent {
  phase: 'resolve' | 'fetch' | 'unpack' | 'triggers' | 'switch';
  done?: number;
  total?: number;
  name?: string;
}

export interface InstallResult {
  profile: string;
  generation: number;
  previous: number | undefined;
  world: string[];
  packages: number;
  added: string[];
  removed: string[];
  /** Store paths made now (the rest were already in the store). */
  fetched: number;
  downloadedBytes: number;
  triggers: TriggerResult[];
  /** Packages with maintainer scripts that no declarative trigger covers (not run). */
  uncoveredScripts: string[];
  tree: string;
  env: string;
  seconds: { resolve: number; fetch: number; triggers: number; total: number };
}

export async function readWorld(store: Store, profile: string): Promise<World | undefined> {
  const g = await P.current(store, profile);
  const w = g?.paths.find((p) => p.startsWith(`${WORLD_NAME}-`));
  if (!w) return undefined;
  return JSON.parse((await readStoreFile(store, w, WORLD_FILE)).toString('utf8')) as World;
}

async function smallPath(store: Store, name: string, fill: (dir: string) => Promise<void>): Promise<string> {
  const tmp = await mkdtemp(join(tmpdir(), 'miq-small-'));
  try {
    await fill(tmp);
    return (await store.ingest(tmp, { name, pin: false })).path;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** The top-level links of a merged-/usr system, as their own small store path. */
function usrMergeLinks(store: Store): Promise<string> {
  return smallPath(store, USRMERGE_NAME, async (d) => {
    for (const x of ['bin', 'sbin', 'lib', 'lib64']) await symlink(`usr/${x}`, join(d, x));
  });
}

async function pool<T, R>(items: readonly T[], n: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let failed: unknown;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length && failed === undefined) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!);
      } catch (e) {
        failed ??= e;
      }
    }
  }));
  if (failed !== undefined) throw failed;
  return out;
}

export interface ApplyOptions extends MirrorOptions {
  cacheDir?: string;
  jobs?: number;
  onEvent?: (e: InstallEvent) => void;
  universe?: Universe;
}

const RESOLUTION_META = 'pkgcache/resolution/';

/** A resolution depends only on the verified indexes and the request, so it is kept (in meta,
 * keyed by both) and an unchanged request against unchanged indexes skips loading the
 * universe (1-2 s for Debian's 66k stanzas), which is what makes a repeated install fast. */
async function cachedResolve(store: Store, world: string[], essential: boolean, o: ApplyOptions): Promise<Resolution> {
  if (o.universe) return resolve(o.universe, { packages: world, essential });
  const repos = await listRepos(store);
  const key = idOf(Buffer.from(JSON.stringify({ v: 1, idx: repos.map((r) => [r.config.name, r.index ?? '']).sort(), world, essential })));
  const hit = await store.getMeta(RESOLUTION_META + key);
  if (hit) {
    const j = JSON.parse(hit.toString()) as { pkgs: Omit<Pkg, never>[]; roots: number[]; edges: [number, number, string][]; closure: number };
    const pkgs = j.pkgs;
    return { packages: pkgs, roots: j.roots.map((i) => pkgs[i]!), edges: j.edges.map(([a, b, label]) => ({ from: pkgs[a]!, to: pkgs[b]!, label })), seconds: 0, closure: j.closure };
  }
  const r = resolve(await loadUniverse(store), { packages: world, essential });
  const at = new Map(r.packages.map((p, i) => [p, i]));
  // Roots are always among the chosen packages (each root's clause forces it).
  const enc = { pkgs: r.packages, roots: r.roots.map((p) => at.get(p)!), edges: r.edges.map((e) => [at.get(e.from)!, at.get(e.to)!, e.label]), closure: r.closure };
  const old = (await store.listMeta(RESOLUTION_META)).filter((x) => x.key !== RESOLUTION_META + key);
  // Only a few are worth keeping: each is tied to one index state.
  const drop = old.length >= 16 ? old.slice(0, old.length - 15).map((x) => ({ key: x.key, value: undefined })) : [];
  await store.batchMeta([...drop, { key: RESOLUTION_META + key, value: Buffer.from(JSON.stringify(enc)) }]);
  return r;
}

/** Resolves `world`, brings every package into the store, runs triggers, and switches the
 * profile to the result in one atomic step. */
export async function applyWorld(store: Store, profile: string, world: string[], essential: boolean, o: ApplyOptions = {}): Promise<InstallResult> {
  P.checkProfileName(profile);
  const t0 = performance.now();
  o.onEvent?.({ phase: 'resolve' });
  const r: Resolution = await cachedResolve(store, world, essential, o);
  const t1 = performance.now();
  const before = await P.current(store, profile);
  // The same request, resolved to packages the current generation already holds: nothing to
  // do, and nothing is read or merged (a repeated install returns at once, as apt's does).
  const had = before ? await readWorld(store, profile) : undefined;
  if (before && had && had.essential === essential && JSON.stringify(had.world) === JSON.stringify(world) && r.packages.every((p) => before.paths.includes(debStorePath(p)))) {
    const t = (performance.now() - t0) / 1000;
    return {
      profile, generation: before.generation, previous: before.generation, world, packages: had.packages.length, added: [], removed: [], fetched: 0, downloadedBytes: 0,
      triggers: [], uncoveredScripts: [], tree: before.tree, env: before.env, seconds: { resolve: (t1 - t0) / 1000, fetch: 0, triggers: 0, total: t },
    };
  }
  let done = 0;
  const total = r.packages.length;
  const present = await Promise.all(r.packages.map((p) => store.getStorePath(debStorePath(p))));
  const batch = await mkdtemp(join(tmpdir(), 'miq-debs-'));
  try {
    const have = await Promise.all(r.packages.filter((_, i) => present[i]).map(async (p) => {
      const d = await inStore(store, p);
      o.onEvent?.({ phase: 'fetch', done: ++done, total, name: p.name });
      return d;
    }));
    // Downloads overlap; unpacking (CPU) runs two at a time behind them.
    const unpacking = limiter(2);
    const staged = await pool(r.packages.filter((_, i) => !present[i]), o.jobs ?? 6, async (p) => {
      const { file, downloaded } = await fetchDeb(p, o);
      const s = await unpacking(() => unpackDeb(p, file, join(batch, debPathName(p)), downloaded));
      o.onEvent?.({ phase: 'fetch', done: ++done, total, name: p.name });
      return s;
    });
    if (staged.length) o.onEvent?.({ phase: 'unpack' });
    const fresh = await ingestStaged(store, batch, staged);
    const byPkg = new Map([...have, ...fresh].map((d) => [d.pkg, d]));
    return await finish(store, profile, world, essential, o, r, before, r.packages.map((p) => byPkg.get(p)!), { t0, t1 });
  } finally {
    await rm(batch, { recursive: true, force: true });
  }
}

/** At most n of the calls run at once. */
function limiter(n: number): <T>(f: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(f: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((res) => waiting.push(res));
    active++;
    try {
      return await f();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

async function finish(store: Store, profile: string, world: string[], essential: boolean, o: ApplyOptions, r: Resolution, before: P.GenerationRecord | undefined, debs: UnpackedDeb[], { t0, t1 }: { t0: number; t1: number }): Promise<InstallResult> {
  const t2 = performance.now();
  const why = explain(r);
  const pkgs: WorldPackage[] = debs.map((d) => {
    const w = why.get(d.pkg);
    return {
      name: d.pkg.name, version: d.pkg.version, arch: d.pkg.arch, path: d.path,
      why: !w || w === 'requested' ? 'requested' : { by: w.from.name, group: w.label },
      ...(d.scripts.length ? { scripts: d.scripts } : {}),
    };
  });
  const links = await usrMergeLinks(store);
  o.onEvent?.({ phase: 'triggers' });
  const trig = await runTriggers(store, [links, ...debs.map((d) => d.path)], debs);
  const t3 = performance.now();
  const covered = new Set(trig.flatMap((t) => t.covers));
  const uncovered = debs.filter((d) => d.scripts.some((s) => s === 'postinst' || s === 'preinst') && !covered.has(d.pkg.name)).map((d) => d.pkg.name).sort();
  const rec: World = { world, essential, packages: pkgs };
  const worldPath = await smallPath(store, WORLD_NAME, async (d) => {
    await mkdirp(join(d, 'var', 'lib', 'miq'));
    await writeFile(join(d, WORLD_FILE), `${JSON.stringify(rec, null, 1)}\n`);
  });
  o.onEvent?.({ phase: 'switch' });
  const members = [links, worldPath, ...debs.map((d) => d.path), ...trig.filter((t) => t.path).map((t) => t.path!)].map((path) => ({ path }));
  const same = before !== undefined && before.paths.length === members.length && members.every((m) => before.paths.includes(m.path));
  // Nothing changed: no new generation (a repeated install is a no-op, as with apt).
  const ch = same ? { generation: before.generation, previous: before.generation, paths: [...before.paths], tree: before.tree, env: before.env } : await P.switchProfile(store, profile, members);
  const prev = new Set(before?.paths ?? []);
  const next = new Set(ch.paths);
  const t4 = performance.now();
  return {
    profile, generation: ch.generation, previous: ch.previous, world, packages: pkgs.length,
    added: [...next].filter((p) => !prev.has(p)).sort(), removed: [...prev].filter((p) => !next.has(p)).sort(),
    fetched: debs.filter((d) => !d.cached).length, downloadedBytes: debs.reduce((n, d) => n + d.downloaded, 0),
    triggers: trig, uncoveredScripts: uncovered, tree: ch.tree, env: ch.env,
    seconds: { resolve: (t1 - t0) / 1000, fetch: (t2 - t1) / 1000, triggers: (t3 - t2) / 1000, total: (t4 - t0) / 1000 },
  };
}

const nameOf = (spec: string): string => spec.replace(/=.*$/, '');

export async function install(store: Store, profile: string, specs: string[], o: ApplyOptions & { essential?: boolean } = {}): Promise<InstallResult> {
  if (!specs.length && !o.essential) throw new MiqError('MIQ_BAD_INPUT', 'miq install: name at least one package');
  const cur = await readWorld(store, profile);
  const names = new Set(specs.map(nameOf));
  const world = [...(cur?.world ?? []).filter((s) => !names.has(nameOf(s))), ...specs].sort();
  return applyWorld(store, profile, world, (cur?.essential ?? false) || (o.essential ?? false), o);
}

export async function remove(store: Store, profile: string, specs: string[], o: ApplyOptions = {}): Promise<InstallResult> {
  const cur = await readWorld(store, profile);
  if (!cur) throw new MiqError('MIQ_NOT_FOUND', `profile ${profile} has no packages installed by name; \`miq install --profile ${profile} PKG\` adds some`);
  const names = new Set(specs.map(nameOf));
  const missing = [...names].filter((n) => !cur.world.some((s) => nameOf(s) === n));
  if (missing.length) {
    const pulled = missing.filter((n) => cur.packages.some((p) => p.name === n));
    throw new MiqError('MIQ_BAD_INPUT', `${missing.join(', ')} ${missing.length > 1 ? 'were' : 'was'} not asked for in profile ${profile}${pulled.length ? ` (${pulled.join(', ')} is there because something needs it; \`miq why ${pulled[0]}\` says what)` : ''}; asked for: ${cur.world.join(' ') || '(nothing)'}`);
  }
  const world = cur.world.filter((s) => !names.has(nameOf(s)));
  if (world.length === 0 && !cur.essential) throw new MiqError('MIQ_BAD_INPUT', `that would leave profile ${profile} empty; \`miq profile rollback\` or delete its generations instead`);
  return applyWorld(store, profile, world, cur.essential, o);
}

export async function upgrade(store: Store, profile: string, o: ApplyOptions = {}): Promise<InstallResult> {
  const cur = await readWorld(store, profile);
  if (!cur) throw new MiqError('MIQ_NOT_FOUND', `profile ${profile} has no packages installed by name`);
  // Pinned versions stay pinned; plain names move to the current candidates.
  return applyWorld(store, profile, cur.world, cur.essential, o);
}

/** The chain from a requested package down to `name`. */
export async function why(store: Store, profile: string, name: string): Promise<{ name: string; version: string; chain: { name: string; via: string }[] }> {
  const cur = await readWorld(store, profile);
  if (!cur) throw new MiqError('MIQ_NOT_FOUND', `profile ${profile} has no packages installed by name`);
  const by = new Map(cur.packages.map((p) => [p.name, p]));
  const p = by.get(name);
  if (!p) throw new MiqError('MIQ_NOT_FOUND', `${name} is not in profile ${profile}`);
  const chain: { name: string; via: string }[] = [];
  let x: WorldPackage | undefined = p;
  const seen = new Set<string>();
  while (x && x.why !== 'requested' && !seen.has(x.name)) {
    seen.add(x.name);
    chain.push({ name: x.why.by, via: x.why.group });
    x = by.get(x.why.by);
  }
  return { name: p.name, version: p.version, chain };
}
