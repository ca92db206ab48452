/**
 * Profiles and generations (DESIGN §3). A profile is a name with numbered generations; a
 * generation lists store paths and the id of their merged tree. The merged tree is recorded as a
 * content-addressed store path `env-<tree hash>` whose references are the members, so the
 * ordinary GC closure keeps the merged trees and the members alive (as Nix's user environments).
 *
 * Meta keys (MetaStore, all written in one atomic batch per change):
 *   profiles/<name>/gen/<N, 10 digits>  JSON GenerationRecord
 *   profiles/<name>/current             "<N>"  (the root pointer)
 *   profiles/<name>/last                "<N>"  (highest number ever used; numbers are never reused)
 *   gcroots/profile/<name>              JSON array of the env store paths of kept generations
 *
 * A user's own profiles are named `per-user/<user>/<name>` (so their keys sit under
 * `profiles/per-user/<user>/<name>/…`); the serving process lets a user's socket change only
 * names under that user's prefix. GC does not care whose a root is.
 */
import type { Store } from './api.js';
import { MiqError } from './errors.js';
import type { Id } from './ids.js';
import { checkPathName, storePathName, type StorePathRecord, type Tree, type TreeEntry } from './objects.js';

export const DEFAULT_PRIORITY = 5;
export const ENV_NAME = 'env';

export interface GenerationRecord {
  readonly profile: string;
  readonly generation: number;
  /** Member store paths, sorted. */
  readonly paths: readonly string[];
  /** Lower number wins a conflict (as Nix); members without an entry have DEFAULT_PRIORITY. */
  readonly priorities: Readonly<Record<string, number>>;
  /** The merged tree and the env store path recording it. */
  readonly tree: Id;
  readonly env: string;
  /** ms since the epoch. */
  readonly created: number;
}

export interface ProfileSummary {
  name: string;
  current: number | undefined;
  generations: number;
}

export interface Member {
  path: string;
  priority?: number;
}

const PREFIX = 'profiles/';
const genKey = (p: string, n: number): string => `${PREFIX}${p}/gen/${String(n).padStart(10, '0')}`;
const curKey = (p: string): string => `${PREFIX}${p}/current`;
const lastKey = (p: string): string => `${PREFIX}${p}/last`;
const rootKey = (p: string): string => `gcroots/profile/${p}`;

export const PER_USER = 'per-user';

/** The profile `name` of `user` (`miq profile … --user`). */
export function userProfile(user: string, name: string): string {
  return checkProfileName(`${PER_USER}/${user}/${name}`);
}

/** The user a per-user profile belongs to, or undefined for a shared (root's) profile. */
export function profileOwner(name: string): string | undefined {
  const parts = name.split('/');
  return parts.length === 3 && parts[0] === PER_USER ? parts[1] : undefined;
}

export function checkProfileName(name: string): string {
  try {
    const parts = name.split('/');
    if (parts.length === 3 && parts[0] === PER_USER) {
      checkPathName(parts[1]!);
      checkPathName(parts[2]!);
      return name;
    }
    if (name === PER_USER) throw new Error('reserved');
    return checkPathName(name);
  } catch {
    throw new MiqError('MIQ_BAD_INPUT', `profile name "${name}" is not allowed: use letters, digits and + . _ - (not starting with ".")`);
  }
}

// Profile changes are read-modify-write on meta keys: one change at a time per store object.
// Cross-process exclusion comes from the store's single owner (LevelDB lock / control socket).
const locks = new WeakMap<object, Promise<void>>();
async function exclusive<T>(store: object, fn: () => Promise<T>): Promise<T> {
  const prev = locks.get(store) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  locks.set(store, prev.then(() => mine));
  await prev;
  try {
    return await fn();
  } finally {
    release();
  }
}

// --- reading --------------------------------------------------------------------------------

function parseGen(buf: Buffer, key: string): GenerationRecord {
  try {
    return JSON.parse(buf.toString('utf8')) as GenerationRecord;
  } catch (e) {
    throw new MiqError('MIQ_CORRUPT', `profile record ${key} is not valid JSON`, { cause: e });
  }
}

export async function listGenerations(store: Pick<Store, 'listMeta'>, profile: string): Promise<GenerationRecord[]> {
  checkProfileName(profile);
  const rows = await store.listMeta(`${PREFIX}${profile}/gen/`);
  return rows.map((r) => parseGen(r.value, r.key)).sort((a, b) => a.generation - b.generation);
}

export async function getGeneration(store: Store, profile: string, n: number): Promise<GenerationRecord | undefined> {
  const v = await store.getMeta(genKey(checkProfileName(profile), n));
  return v === undefined ? undefined : parseGen(v, genKey(profile, n));
}

export async function currentNumber(store: Store, profile: string): Promise<number | undefined> {
  const v = await store.getMeta(curKey(checkProfileName(profile)));
  return v === undefined ? undefined : Number(v.toString());
}

/** The current generation of a profile, or undefined when it has none. */
export async function current(store: Store, profile: string): Promise<GenerationRecord | undefined> {
  const n = await currentNumber(store, profile);
  return n === undefined ? undefined : getGeneration(store, profile, n);
}

export async function listProfiles(store: Pick<Store, 'listMeta'>): Promise<ProfileSummary[]> {
  const rows = await store.listMeta(PREFIX);
  const by = new Map<string, ProfileSummary>();
  for (const { key, value } of rows) {
    const rest = key.slice(PREFIX.length);
    const parts = rest.split('/');
    const n = parts[0] === PER_USER ? 3 : 1;
    const name = parts.slice(0, n).join('/');
    const what = parts.slice(n).join('/');
    const s = by.get(name) ?? { name, current: undefined, generations: 0 };
    if (what === 'current') s.current = Number(value.toString());
    else if (what.startsWith('gen/')) s.generations++;
    by.set(name, s);
  }
  return [...by.values()].filter((s) => s.generations > 0).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

// --- merging --------------------------------------------------------------------------------

interface MergeInput {
  member: string;
  priority: number;
  tree: Id;
}

function sameLeaf(a: TreeEntry, b: TreeEntry): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'symlink') return a.target!.equals(b.target!);
  return a.id === b.id;
}

const describe = (e: TreeEntry): string => (e.kind === 'symlink' ? `a symlink to ${e.target!.toString()}` : e.kind === 'dir' ? 'a directory' : `a ${e.kind === 'exe' ? 'program' : 'file'} (${e.id!.slice(0, 12)}…)`);

/**
 * The union of the members' trees. Subtrees that only one member provides are reused as they
 * are, so merging writes only the directories that two or more members share.
 */
export async function mergeTrees(store: Store, inputs: readonly MergeInput[], where = ''): Promise<{ id: Id; size: number }> {
  const uniq = new Set(inputs.map((i) => i.tree));
  if (uniq.size === 1) {
    const t = await loadTree(store, inputs[0]!.tree);
    return { id: inputs[0]!.tree, size: treeSize(t) };
  }
  const trees = await Promise.all(inputs.map((i) => loadTree(store, i.tree)));
  const byName = new Map<string, { input: MergeInput; entry: TreeEntry }[]>();
  trees.forEach((t, i) => {
    for (const e of t.entries) {
      const k = e.name.toString('latin1');
      let l = byName.get(k);
      if (!l) byName.set(k, (l = []));
      l.push({ input: inputs[i]!, entry: e });
    }
  });
  const out: TreeEntry[] = [];
  for (const [, provs] of byName) {
    const first = provs[0]!.entry;
    const path = `${where}/${first.name.toString()}`;
    if (provs.length === 1 || provs.every((p) => sameLeaf(p.entry, first) && first.kind !== 'dir')) {
      out.push(first);
      continue;
    }
    if (provs.every((p) => p.entry.kind === 'dir')) {
      const sub = await mergeTrees(store, provs.map((p) => ({ ...p.input, tree: p.entry.id! })), path);
      out.push({ name: first.name, kind: 'dir', size: sub.size, id: sub.id });
      continue;
    }
    // A real conflict: the member with the strictly lowest priority number wins.
    const best = Math.min(...provs.map((p) => p.input.priority));
    const winners = provs.filter((p) => p.input.priority === best);
    const distinct = winners.filter((w) => !sameLeaf(w.entry, winners[0]!.entry));
    if (distinct.length > 0) {
      const a = winners[0]!, b = distinct[0]!;
      throw new MiqError('MIQ_CONFLICT', `${a.input.member} and ${b.input.member} both provide ${path} (${describe(a.entry)} vs ${describe(b.entry)}); remove one, or give one a lower --priority number`, { details: { path, members: [a.input.member, b.input.member] } });
    }
    out.push(winners[0]!.entry);
  }
  const id = await store.putTree(out);
  return { id, size: sizeOf(out) };
}

function sizeOf(entries: readonly TreeEntry[]): number {
  let s = 0;
  for (const e of entries) if (e.kind !== 'symlink') s += e.size;
  return s;
}
const treeSize = (t: Tree): number => sizeOf(t.entries);

async function loadTree(store: Store, id: Id): Promise<Tree> {
  const t = await store.getTree(id);
  if (!t) throw new MiqError('MIQ_MISSING', `tree ${id} is missing from the store; run \`miq verify\``, { details: { id, kind: 'tree' } });
  return t;
}

async function countFiles(store: Store, id: Id, memo: Map<Id, number>): Promise<number> {
  const m = memo.get(id);
  if (m !== undefined) return m;
  let n = 0;
  for (const e of (await loadTree(store, id)).entries) {
    if (e.kind === 'file' || e.kind === 'exe') n++;
    else if (e.kind === 'dir') n += await countFiles(store, e.id!, memo);
  }
  memo.set(id, n);
  return n;
}

/** Builds (or finds) the env store path for a set of members. Pure function of its inputs. */
export async function buildEnv(store: Store, members: readonly Member[]): Promise<{ tree: Id; env: string; paths: string[] }> {
  const recs: StorePathRecord[] = [];
  const seen = new Set<string>();
  for (const m of members) {
    if (seen.has(m.path)) continue;
    seen.add(m.path);
    const r = await store.getStorePath(m.path);
    if (!r) throw new MiqError('MIQ_NOT_FOUND', `no store path ${m.path}; \`miq paths\` lists them`, { details: { path: m.path } });
    recs.push(r);
  }
  const paths = recs.map((r) => r.path).sort();
  const prio = new Map(members.map((m) => [m.path, m.priority ?? DEFAULT_PRIORITY]));
  let tree: Id;
  let size: number;
  if (recs.length === 0) {
    tree = await store.putTree([]);
    size = 0;
  } else {
    ({ id: tree, size } = await mergeTrees(store, recs.map((r) => ({ member: r.path, priority: prio.get(r.path)!, tree: r.tree }))));
  }
  const env = storePathName(ENV_NAME, tree);
  const existing = await store.getStorePath(env);
  // Same tree, but the references must list exactly these members (two member sets can merge to
  // one tree only when a member contributes nothing; then keep the record that exists).
  if (!existing) {
    await store.putStorePath({
      path: env, name: ENV_NAME, key: tree, tree, references: paths, size,
      files: await countFiles(store, tree, new Map()), made: { kind: 'ingest' }, signatures: [],
    });
  }
  return { tree, env, paths };
}

// --- changing -------------------------------------------------------------------------------

export interface ChangeResult {
  profile: string;
  generation: number;
  previous: number | undefined;
  paths: string[];
  tree: Id;
  env: string;
  /** True when the pointer moved to an existing generation (rollback). */
  reused: boolean;
}

async function lastNumber(store: Store, profile: string): Promise<number> {
  const v = await store.getMeta(lastKey(profile));
  const gens = await listGenerations(store, profile);
  return Math.max(v === undefined ? 0 : Number(v.toString()), gens.at(-1)?.generation ?? 0);
}

async function rootOps(store: Store, profile: string, kept: readonly GenerationRecord[]): Promise<{ key: string; value: Buffer | undefined }> {
  const envs = [...new Set(kept.map((g) => g.env))].sort();
  return { key: rootKey(profile), value: envs.length ? Buffer.from(JSON.stringify(envs)) : undefined };
}

/** Makes a new generation with exactly `members` and points the profile at it. */
async function commit(store: Store, profile: string, members: readonly Member[], expectTree?: Id): Promise<ChangeResult> {
  const prevN = await currentNumber(store, profile);
  const { tree, env, paths } = await buildEnv(store, members);
  // Checked before anything is written: a mismatch must leave the current generation alone.
  if (expectTree !== undefined && tree !== expectTree) throw new MiqError('MIQ_CORRUPT', `profile ${profile}: the members merge to tree ${tree}, the pointer says ${expectTree}`, { details: { got: tree, want: expectTree } });
  const priorities: Record<string, number> = {};
  for (const m of members) if (m.priority !== undefined && m.priority !== DEFAULT_PRIORITY) priorities[m.path] = m.priority;
  const n = (await lastNumber(store, profile)) + 1;
  const rec: GenerationRecord = { profile, generation: n, paths, priorities, tree, env, created: Date.now() };
  const kept = [...(await listGenerations(store, profile)), rec];
  // One atomic batch: the generation, the pointer, the counter and the GC root move together.
  await store.batchMeta([
    { key: genKey(profile, n), value: Buffer.from(JSON.stringify(rec)) },
    { key: curKey(profile), value: Buffer.from(String(n)) },
    { key: lastKey(profile), value: Buffer.from(String(n)) },
    await rootOps(store, profile, kept),
  ]);
  return { profile, generation: n, previous: prevN, paths, tree, env, reused: false };
}

function membersOf(g: GenerationRecord | undefined): Member[] {
  return (g?.paths ?? []).map((p) => ({ path: p, priority: g!.priorities[p] }));
}

export function switchProfile(store: Store, profile: string, members: readonly Member[]): Promise<ChangeResult> {
  checkProfileName(profile);
  return exclusive(store, () => commit(store, profile, members));
}

export function addToProfile(store: Store, profile: string, add: readonly Member[]): Promise<ChangeResult> {
  checkProfileName(profile);
  return exclusive(store, async () => {
    const cur = membersOf(await current(store, profile));
    const names = new Set(add.map((m) => m.path));
    return commit(store, profile, [...cur.filter((m) => !names.has(m.path)), ...add]);
  });
}

export function removeFromProfile(store: Store, profile: string, remove: readonly string[]): Promise<ChangeResult> {
  checkProfileName(profile);
  return exclusive(store, async () => {
    const cur = membersOf(await current(store, profile));
    const missing = remove.filter((p) => !cur.some((m) => m.path === p));
    if (missing.length) throw new MiqError('MIQ_NOT_FOUND', `profile ${profile} does not contain ${missing.join(', ')}`, { details: { paths: missing } });
    return commit(store, profile, cur.filter((m) => !remove.includes(m.path)));
  });
}

/** Points the profile at an existing generation: `to`, else the one before the current. */
export function rollback(store: Store, profile: string, to?: number): Promise<ChangeResult> {
  checkProfileName(profile);
  return exclusive(store, async () => {
    const gens = await listGenerations(store, profile);
    const cur = await currentNumber(store, profile);
    if (gens.length === 0) throw new MiqError('MIQ_NOT_FOUND', `profile ${profile} has no generations`);
    const target = to !== undefined ? gens.find((g) => g.generation === to) : [...gens].reverse().find((g) => cur === undefined || g.generation < cur);
    if (!target) throw new MiqError('MIQ_NOT_FOUND', to !== undefined ? `profile ${profile} has no generation ${to}; \`miq profile generations ${profile}\` lists them` : `profile ${profile} has no generation before ${cur} (rollback moves back, not forward: \`miq profile rollback ${profile} --to N\` goes to any generation \`miq profile generations ${profile}\` lists)`);
    await store.batchMeta([{ key: curKey(profile), value: Buffer.from(String(target.generation)) }]);
    return { profile, generation: target.generation, previous: cur, paths: [...target.paths], tree: target.tree, env: target.env, reused: true };
  });
}

/** For `miq profile pull`: a new generation from a pointer whose closure is already local. */
export function switchTo(store: Store, profile: string, want: { paths: readonly string[]; tree: Id; priorities?: Readonly<Record<string, number>> }): Promise<ChangeResult> {
  checkProfileName(profile);
  return exclusive(store, async () => {
    return commit(store, profile, want.paths.map((p) => ({ path: p, priority: want.priorities?.[p] })), want.tree);
  });
}

export interface DeleteResult {
  profile: string;
  deleted: number[];
  kept: number[];
}

/** Deletes old generations; never the current one. `olderThan` is in days. */
export function deleteGenerations(store: Store, profile: string, opts: { olderThanDays?: number; keep?: number; now?: number }): Promise<DeleteResult> {
  checkProfileName(profile);
  if ((opts.olderThanDays === undefined) === (opts.keep === undefined)) throw new MiqError('MIQ_BAD_INPUT', 'give exactly one of --older-than DAYS or --keep N');
  return exclusive(store, async () => {
    const gens = await listGenerations(store, profile);
    const cur = await currentNumber(store, profile);
    const now = opts.now ?? Date.now();
    let doomed: GenerationRecord[];
    if (opts.keep !== undefined) {
      if (!(opts.keep >= 1)) throw new MiqError('MIQ_BAD_INPUT', '--keep must be at least 1');
      doomed = gens.slice(0, Math.max(0, gens.length - opts.keep));
    } else {
      doomed = gens.filter((g) => now - g.created > opts.olderThanDays! * 86_400_000);
    }
    doomed = doomed.filter((g) => g.generation !== cur);
    const kept = gens.filter((g) => !doomed.includes(g));
    if (doomed.length > 0) {
      await store.batchMeta([...doomed.map((g) => ({ key: genKey(profile, g.generation), value: undefined })), await rootOps(store, profile, kept)]);
    }
    return { profile, deleted: doomed.map((g) => g.generation), kept: kept.map((g) => g.generation) };
  });
}

export interface DiffResult {
  profile: string;
  from: number;
  to: number;
  added: string[];
  removed: string[];
  /** Same name, other store path (an upgrade or rebuild). */
  changed: { name: string; from: string; to: string }[];
}

export async function diffGenerations(store: Store, profile: string, a: number, b: number): Promise<DiffResult> {
  const ga = await getGeneration(store, profile, a);
  const gb = await getGeneration(store, profile, b);
  for (const [n, g] of [[a, ga], [b, gb]] as const) if (!g) throw new MiqError('MIQ_NOT_FOUND', `profile ${profile} has no generation ${n}`);
  const A = new Set(ga!.paths), B = new Set(gb!.paths);
  const nameOf = (p: string): string => p.replace(/-[0-9a-f]{32}$/, '');
  let added = gb!.paths.filter((p) => !A.has(p));
  let removed = ga!.paths.filter((p) => !B.has(p));
  const changed: DiffResult['changed'] = [];
  for (const r of [...removed]) {
    const hit = added.find((p) => nameOf(p) === nameOf(r));
    if (hit) {
      changed.push({ name: nameOf(r), from: r, to: hit });
      added = added.filter((p) => p !== hit);
      removed = removed.filter((p) => p !== r);
    }
  }
  return { profile, from: a, to: b, added, removed, changed };
}
