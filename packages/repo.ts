/**
 * Package repositories (Debian layout). A repository's configuration and the last state it
 * accepted live in one meta record, `repos/<name>`; its verified index is a content-addressed
 * store path `repo-<name>-…` pinned as the GC root `roots/repo-<name>`. An update writes the new
 * index first and then moves the record and the root in one atomic batch, so a refused or
 * interrupted update changes nothing a reader sees.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { debianArchives, hostAptEntries, type MirrorOptions } from '../builder/mirrors.js';
import type { Store } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import { ROOT_PREFIX } from '../store/api.js';
import { checkPathName } from '../store/objects.js';
import { mkdirp } from '../store/mkdirp.js';
import { decompress, fetchBytes } from './fetch.js';
import { compactPackages } from './deb822.js';
import { parseRelease, verifySigned, type Release } from './release.js';

export interface RepoSource {
  /** Archive base: `mirror://debian/`, `file:///…`, `http://…`. */
  url: string;
  suites: string[];
  components: string[];
}

export interface RepoConfig {
  name: string;
  sources: RepoSource[];
  arch: string;
  keyring: string;
  /** Read InRelease and Packages from apt's own lists first (they are verified all the same). */
  aptLists?: string;
}

export interface SuiteState {
  url: string;
  suite: string;
  /** The index folder of this suite inside the index store path. */
  dir: string;
  date: number;
  dateText: string;
  components: string[];
  packages: number;
}

export interface RepoState {
  config: RepoConfig;
  /** The verified index store path (absent until the first update). */
  index?: string;
  suites: SuiteState[];
  updated?: number;
}

const META = 'repos/';
const DEFAULT_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

export function checkRepoName(name: string): string {
  try {
    return checkPathName(name);
  } catch {
    throw new MiqError('MIQ_BAD_INPUT', `repository name "${name}" is not allowed: use letters, digits and + . _ -`);
  }
}

export async function getRepo(store: Store, name: string): Promise<RepoState | undefined> {
  const v = await store.getMeta(META + name);
  return v ? (JSON.parse(v.toString()) as RepoState) : undefined;
}

export async function listRepos(store: Store): Promise<RepoState[]> {
  return (await store.listMeta(META)).map((e) => JSON.parse(e.value.toString()) as RepoState);
}

export async function requireRepo(store: Store, name: string): Promise<RepoState> {
  const r = await getRepo(store, name);
  if (!r) throw new MiqError('MIQ_NOT_FOUND', `no repository "${name}"; add one with \`miq repo add debian --from-apt\``);
  return r;
}

function hostArch(): string {
  try {
    return execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  } catch {
    return process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch;
  }
}

/** This machine's Debian sources as mirror:// URLs: the main archive as `mirror://debian/`, the
 * security archive as `mirror://debian-security/`; other repositories are left out. */
export function configFromApt(name: string, aptDir = '/etc/apt', lists = '/var/lib/apt/lists'): RepoConfig {
  const entries = hostAptEntries(aptDir).filter((e) => e.enabled && e.types.includes('deb'));
  const main = new Set(debianArchives(entries));
  const bySource = new Map<string, RepoSource>();
  for (const e of entries) {
    for (const u of e.uris) {
      const base = u.replace(/\/+$/, '');
      const url = main.has(base) ? 'mirror://debian/' : /^https?:\/\/.*-security$/.test(base) ? 'mirror://debian-security/' : undefined;
      if (!url) continue;
      const s = bySource.get(url) ?? { url, suites: [], components: [] };
      for (const x of e.suites) if (!s.suites.includes(x)) s.suites.push(x);
      for (const x of e.components) if (!s.components.includes(x)) s.components.push(x);
      bySource.set(url, s);
    }
  }
  if (bySource.size === 0) throw new MiqError('MIQ_BAD_INPUT', `no Debian archive in the apt sources under ${aptDir}; use \`miq repo add ${name} --url mirror://debian/ --suites … --components … --arch …\``);
  return { name, sources: [...bySource.values()], arch: hostArch(), keyring: DEFAULT_KEYRING, ...(existsSync(lists) ? { aptLists: lists } : {}) };
}

export function makeConfig(name: string, o: { url: string; suites: string[]; components: string[]; arch?: string; keyring?: string }): RepoConfig {
  if (!o.suites.length || !o.components.length) throw new MiqError('MIQ_BAD_INPUT', 'a repository needs --suites and --components');
  return { name, sources: [{ url: o.url.endsWith('/') ? o.url : `${o.url}/`, suites: o.suites, components: o.components }], arch: o.arch ?? hostArch(), keyring: o.keyring ?? DEFAULT_KEYRING };
}

export async function addRepo(store: Store, config: RepoConfig, replace = false): Promise<RepoState> {
  checkRepoName(config.name);
  if (!existsSync(config.keyring)) throw new MiqError('MIQ_BAD_INPUT', `keyring ${config.keyring} does not exist; pass --keyring FILE`);
  const old = await getRepo(store, config.name);
  if (old && !replace) throw new MiqError('MIQ_CONFLICT', `repository "${config.name}" exists; \`miq repo remove ${config.name}\` first, or pass --replace`);
  // A replaced configuration keeps the dates it accepted: a new URL must not reopen a rollback.
  const state: RepoState = { config, suites: old?.suites ?? [], ...(old?.index ? { index: old.index } : {}) };
  await store.batchMeta([{ key: META + config.name, value: Buffer.from(JSON.stringify(state)) }]);
  return state;
}

export async function removeRepo(store: Store, name: string): Promise<void> {
  await requireRepo(store, name);
  await store.batchMeta([{ key: META + name, value: undefined }, { key: `${ROOT_PREFIX}repo-${name}`, value: undefined }]);
}

/** apt's list file for a suite: `<uri with / as _>_dists_<suite>_<rest>`; we match the suffix
 * only, so the archive's host never needs to be known here. */
function aptListFile(lists: string, suite: string, rest: string): string | undefined {
  const suffix = `_dists_${suite.replace(/\//g, '_')}_${rest.replace(/\//g, '_')}`;
  let names: string[];
  try {
    names = readdirSync(lists);
  } catch {
    return undefined;
  }
  const hits = names.filter((n) => n.endsWith(suffix));
  return hits.length === 1 ? join(lists, hits[0]!) : undefined;
}

async function releaseOf(cfg: RepoConfig, src: RepoSource, suite: string, opts: MirrorOptions): Promise<{ rel: Release; raw: Buffer }> {
  const where = `${src.url}dists/${suite}/InRelease`;
  let raw: Buffer | undefined;
  let detached: Buffer | undefined;
  const local = cfg.aptLists ? aptListFile(cfg.aptLists, suite, 'InRelease') : undefined;
  if (local) raw = await readFile(local);
  if (!raw) raw = await fetchBytes(`${src.url}dists/${suite}/InRelease`, opts);
  if (!raw) {
    raw = await fetchBytes(`${src.url}dists/${suite}/Release`, opts);
    detached = raw ? await fetchBytes(`${src.url}dists/${suite}/Release.gpg`, opts) : undefined;
    if (!raw || !detached) throw new MiqError('MIQ_NOT_FOUND', `${where}: no InRelease (nor Release + Release.gpg) for suite ${suite}`);
  }
  const text = await verifySigned(raw, cfg.keyring, where, detached);
  return { rel: parseRelease(text, where), raw };
}

async function packagesOf(cfg: RepoConfig, src: RepoSource, suite: string, comp: string, rel: Release, opts: MirrorOptions): Promise<Buffer> {
  const rpath = `${comp}/binary-${cfg.arch}/Packages`;
  const want = rel.files.get(rpath);
  const where = `${src.url}dists/${suite}/${rpath}`;
  if (!want) throw new MiqError('MIQ_NOT_FOUND', `${where}: the release file of ${suite} lists no ${rpath}`);
  const tries: { name: string; get: () => Promise<Buffer | undefined> }[] = [];
  if (cfg.aptLists) {
    for (const ext of ['', '.lz4', '.xz', '.gz', '.zst']) {
      const f = aptListFile(cfg.aptLists, suite, rpath + ext);
      if (f) tries.push({ name: f, get: () => readFile(f) });
    }
  }
  for (const ext of ['.xz', '.gz', '']) {
    if (ext && !rel.files.has(rpath + ext)) continue;
    tries.push({ name: where + ext, get: () => fetchBytes(`${src.url}dists/${suite}/${rpath}${ext}`, opts) });
  }
  let lastBad: string | undefined;
  for (const t of tries) {
    const z = await t.get();
    if (!z) continue;
    const plain = await decompress(z, t.name).catch(() => undefined);
    const sha = plain && createHash('sha256').update(plain).digest('hex');
    if (plain && plain.length === want.size && sha === want.sha256) return plain;
    lastBad = `${t.name}: ${plain ? `${plain.length} bytes, sha256 ${sha}` : 'does not decompress'}, the signed release says ${want.size} bytes, sha256 ${want.sha256}`;
  }
  if (lastBad) throw new MiqError('MIQ_CORRUPT', `${lastBad}; nothing was changed`, { details: { where } });
  throw new MiqError('MIQ_NOT_FOUND', `${where}: not found`);
}

export interface UpdateResult {
  name: string;
  index: string;
  changed: boolean;
  suites: SuiteState[];
  seconds: number;
}

export async function updateRepo(store: Store, name: string, opts: MirrorOptions & { now?: number; onProgress?: (what: string) => void } = {}): Promise<UpdateResult> {
  const t0 = performance.now();
  const state = await requireRepo(store, name);
  const cfg = state.config;
  const now = opts.now ?? Date.now();
  const tmp = await mkdtemp(join(tmpdir(), 'miq-repo-'));
  try {
    const suites: SuiteState[] = [];
    let i = 0;
    for (const src of cfg.sources) {
      for (const suite of src.suites) {
        opts.onProgress?.(`${src.url} ${suite}`);
        const { rel, raw } = await releaseOf(cfg, src, suite, opts);
        const where = `${src.url}dists/${suite}`;
        const last = state.suites.find((s) => s.url === src.url && s.suite === suite);
        if (last && rel.date < last.date) {
          throw new MiqError('MIQ_UNTRUSTED', `${where}: the signed release is dated ${rel.dateText}, older than the one accepted before (${last.dateText}): a rollback; nothing was changed`, { details: { where, date: rel.dateText, accepted: last.dateText } });
        }
        if (rel.validUntil !== undefined && rel.validUntil < now) {
          throw new MiqError('MIQ_UNTRUSTED', `${where}: the signed release expired (Valid-Until ${new Date(rel.validUntil).toUTCString()}); nothing was changed`);
        }
        const dir = `${i++}-${suite.replace(/[^A-Za-z0-9+._-]/g, '_')}`;
        await mkdirp(join(tmp, dir));
        await writeFile(join(tmp, dir, 'InRelease'), raw);
        let packages = 0;
        for (const comp of src.components) {
          const plain = await packagesOf(cfg, src, suite, comp, rel, opts);
          const d = join(tmp, dir, comp, `binary-${cfg.arch}`);
          await mkdirp(d);
          await writeFile(join(d, 'Packages'), plain);
          const compact = compactPackages(plain.toString('utf8'));
          await writeFile(join(d, 'packages.columns.json'), JSON.stringify(compact));
          packages += compact.count;
        }
        suites.push({ url: src.url, suite, dir, date: rel.date, dateText: rel.dateText, components: src.components, packages });
      }
    }
    await writeFile(join(tmp, 'index.json'), JSON.stringify({ arch: cfg.arch, suites }, null, 1));
    opts.onProgress?.('storing the index');
    const r = await store.ingest(tmp, { name: `repo-${name}`, pin: false });
    const next: RepoState = { config: cfg, index: r.path, suites, updated: now };
    await store.batchMeta([
      { key: META + name, value: Buffer.from(JSON.stringify(next)) },
      { key: `${ROOT_PREFIX}repo-${name}`, value: Buffer.from(r.path) },
    ]);
    return { name, index: r.path, changed: r.path !== state.index, suites, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
