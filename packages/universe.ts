/**
 * The loaded package universe of one or more repositories: every stanza of their verified
 * indexes, the candidate of each name (the highest version, as apt picks with equal pins), and
 * who provides what among the candidates.
 */
import type { Store } from '../store/api.js';
import { isMiqError, MiqError } from '../store/errors.js';
import { resolveStoreArg } from '../store/resolve.js';
import { parseParagraphs, parseRelations, type Paragraph, type Relation } from './deb822.js';
import type { RepoState, SuiteState } from './repo.js';
import { compareVersions } from './version.js';

export interface Pkg {
  readonly name: string;
  readonly version: string;
  readonly arch: string;
  /** Archive base of the suite it came from (`mirror://debian/`, …). */
  readonly base: string;
  readonly suite: string;
  readonly repo: string;
  readonly fields: Paragraph;
}

export interface Provide {
  pkg: Pkg;
  version?: string;
}

const relCache = new WeakMap<Pkg, Map<string, Relation[][]>>();

/** A relation field of a package, parsed once. */
export function rel(p: Pkg, field: 'Depends' | 'Pre-Depends' | 'Conflicts' | 'Breaks' | 'Provides' | 'Recommends'): Relation[][] {
  let m = relCache.get(p);
  if (!m) relCache.set(p, (m = new Map()));
  let r = m.get(field);
  if (!r) m.set(field, (r = parseRelations(p.fields[field])));
  return r;
}

/** One field without building the whole stanza (index packages keep their fields in columns). */
export function fieldOf(p: Pkg, f: string): string | undefined {
  const x = p as Pkg & { field?: (k: string) => string | undefined };
  return x.field ? x.field(f) : p.fields[f];
}

export const pkgId = (p: Pkg): string => `${p.name}=${p.version}`;

/** The package universe as resolution, install and search see it. */
export interface Universe {
  readonly repos: RepoState[];
  /** Every version of a name, highest first. */
  versions(name: string): readonly Pkg[];
  candidate(name: string): Pkg | undefined;
  /** A package by `name` or `name=version`. */
  find(spec: string): Pkg | undefined;
  /** Candidates that provide a name, with the provided version if any. */
  providersOf(name: string): readonly Provide[];
  names(): Iterable<string>;
  /** The Essential set as apt treats it: candidates marked Essential: yes, and apt itself;
   * in index order. */
  essentials(): Pkg[];
}

function findIn(u: Universe, spec: string): Pkg | undefined {
  const eq = spec.indexOf('=');
  if (eq < 0) return u.candidate(spec);
  const v = spec.slice(eq + 1);
  return u.versions(spec.slice(0, eq)).find((p) => p.version === v);
}

/** A universe built from package objects (the verified index's columns, or a test's stanzas). */
export class MemUniverse implements Universe {
  readonly all: Pkg[] = [];
  readonly byName = new Map<string, Pkg[]>();
  readonly providers = new Map<string, Provide[]>();
  readonly repos: RepoState[];

  constructor(pkgs: Pkg[], repos: RepoState[]) {
    this.repos = repos;
    for (const p of pkgs) {
      this.all.push(p);
      let l = this.byName.get(p.name);
      if (!l) this.byName.set(p.name, (l = []));
      l.push(p);
    }
    for (const l of this.byName.values()) if (l.length > 1) l.sort((a, b) => compareVersions(b.version, a.version));
    for (const [, l] of this.byName) {
      const c = l[0]!;
      if (!fieldOf(c, 'Provides')) continue;
      for (const g of rel(c, 'Provides')) {
        for (const r of g) {
          let pl = this.providers.get(r.name);
          if (!pl) this.providers.set(r.name, (pl = []));
          pl.push(r.op === '=' ? { pkg: c, version: r.version! } : { pkg: c });
        }
      }
    }
  }

  versions(name: string): readonly Pkg[] {
    return this.byName.get(name) ?? [];
  }

  candidate(name: string): Pkg | undefined {
    return this.byName.get(name)?.[0];
  }

  find(spec: string): Pkg | undefined {
    return findIn(this, spec);
  }

  providersOf(name: string): readonly Provide[] {
    return this.providers.get(name) ?? [];
  }

  names(): Iterable<string> {
    return this.byName.keys();
  }

  essentials(): Pkg[] {
    const out: Pkg[] = [];
    for (const [name, l] of this.byName) if (fieldOf(l[0]!, 'Essential') === 'yes' || name === 'apt') out.push(l[0]!);
    return out;
  }
}

/** Bytes of a file inside a store path. */
export async function readStoreFile(store: Store, path: string, sub: string): Promise<Buffer> {
  const r = await resolveStoreArg(store, `${path}/${sub}`);
  if (r.kind !== 'file' && r.kind !== 'exe') throw new MiqError('MIQ_CORRUPT', `${path}/${sub} is not a file`);
  const f = await store.getFile(r.id);
  if (!f) throw new MiqError('MIQ_MISSING', `file ${r.id} of ${path}/${sub} is missing from the store; run \`miq verify\``);
  return store.readFile(f, 0, f.size);
}

export { COMPACT_FIELDS, compactPackages } from './deb822.js';
import { COMPACT_FIELDS, type Columns } from './deb822.js';

/** A column store shared by the packages of one Packages file; a column is split on first use. */
class ColumnSet {
  private split = new Map<string, string[]>();
  constructor(private readonly c: Columns) {}
  get(field: string, i: number): string | undefined {
    let l = this.split.get(field);
    if (!l) {
      const col = this.c.columns[field];
      if (col === undefined) return undefined;
      this.split.set(field, (l = col.split('\n')));
    }
    const v = l[i];
    return v === undefined || v === '' ? undefined : v;
  }
}

/** A package of the index; its stanza is built only when something reads it. */
class IndexPkg implements Pkg {
  private f: Paragraph | undefined;
  constructor(readonly name: string, readonly version: string, readonly arch: string, readonly base: string, readonly suite: string, readonly repo: string, private readonly cols: ColumnSet, private readonly i: number) {}
  get fields(): Paragraph {
    if (!this.f) {
      const p: Paragraph = {};
      for (const k of COMPACT_FIELDS) {
        const v = this.cols.get(k, this.i);
        if (v !== undefined) p[k] = v;
      }
      this.f = p;
    }
    return this.f;
  }
  field(k: string): string | undefined {
    return this.f ? this.f[k] : this.cols.get(k, this.i);
  }
  toJSON(): Omit<Pkg, never> {
    return { name: this.name, version: this.version, arch: this.arch, base: this.base, suite: this.suite, repo: this.repo, fields: this.fields };
  }
}

function packagesOf(c: Columns, repo: string, s: SuiteState, arch: string): Pkg[] {
  const out: Pkg[] = [];
  const cols = new ColumnSet(c);
  for (let i = 0; i < c.count; i++) {
    const a = cols.get('Architecture', i) ?? 'all';
    if (a !== arch && a !== 'all') continue;
    out.push(new IndexPkg(cols.get('Package', i)!, cols.get('Version', i)!, a, s.url, s.suite, repo, cols, i));
  }
  return out;
}

/** The full stanza of one package, read from the verified Packages text (for `miq show`). */
export async function fullStanza(store: Store, state: RepoState, p: Pkg): Promise<Paragraph | undefined> {
  const s = state.suites.find((x) => x.suite === p.suite && x.url === p.base);
  if (!s || !state.index) return undefined;
  for (const c of s.components) {
    const text = (await readStoreFile(store, state.index, `${s.dir}/${c}/binary-${state.config.arch}/Packages`)).toString('utf8');
    let at = text.startsWith(`Package: ${p.name}\n`) ? 0 : -1;
    const needle = `\nPackage: ${p.name}\n`;
    let from = 0;
    while (true) {
      if (at < 0) {
        const i = text.indexOf(needle, from);
        if (i < 0) break;
        at = i + 1;
      }
      const end = text.indexOf('\n\n', at);
      const para = parseParagraphs(text.slice(at, end < 0 ? text.length : end))[0];
      if (para?.Version === p.version) return para;
      from = at;
      at = -1;
    }
  }
  return undefined;
}

export async function loadRepoPackages(store: Store, state: RepoState): Promise<Pkg[]> {
  if (!state.index) throw new MiqError('MIQ_NOT_FOUND', `repository "${state.config.name}" has no index yet; run \`miq repo update ${state.config.name}\``);
  const parts = await Promise.all(state.suites.flatMap((s) => s.components.map(async (c) => {
    const f = `${s.dir}/${c}/binary-${state.config.arch}/packages.columns.json`;
    let compact: Columns;
    try {
      compact = JSON.parse((await readStoreFile(store, state.index!, f)).toString('utf8')) as Columns;
    } catch (e) {
      if (isMiqError(e, 'MIQ_NOT_FOUND')) throw new MiqError('MIQ_FORMAT', `the index of repository "${state.config.name}" was written by an older miq; run \`miq repo update ${state.config.name}\``);
      throw e;
    }
    return { s, compact };
  })));
  return parts.flatMap(({ s, compact }) => packagesOf(compact, state.config.name, s, state.config.arch));
}
