/**
 * The universe kept ready to use. Loading Debian's index from its columns (66k stanzas: read
 * 27 MB out of the store, parse, sort versions, parse every candidate's Provides) took 4-5 s
 * of every resolve and install; this form holds the result of that work (names in order,
 * versions highest first, providers of the candidates, the Essential set) with each package
 * as one tab-separated record decoded only when read, so a request touches only its closure.
 *
 * It is a cache of what the verified indexes say, keyed by their store paths (content
 * addressed) and this format: a file under <store>/cache/packages whose SHA-256 is recorded
 * in the store's meta, checked on every read (a file that fails the check, or any read error,
 * only means the universe is built from the index again).
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { Store } from '../store/api.js';
import { idOf } from '../store/ids.js';
import { mkdirp } from '../store/mkdirp.js';
import { COMPACT_FIELDS, type Paragraph } from './deb822.js';
import type { RepoState } from './repo.js';
import { MemUniverse, loadRepoPackages, type Pkg, type Provide, type Universe } from './universe.js';
import { getRepo, listRepos } from './repo.js';
import { MiqError } from '../store/errors.js';

const MAGIC = 'miq-universe-1\n';
const META = 'pkgcache/universe/';
/** Record fields after name, version, arch and source: the index's other columns. */
const REST = COMPACT_FIELDS.filter((f) => f !== 'Package' && f !== 'Version' && f !== 'Architecture');
const KEEP = 4;

interface Header {
  sources: { base: string; suite: string; repo: string }[];
  names: number;
  records: number;
  /** name → [record, provided version or ''] pairs, flattened. */
  providers: Record<string, (number | string)[]>;
  essentials: number[];
}

const clean = (s: string | undefined): string => (s ?? '').replace(/[\t\n]/g, ' ');

/** The ready form of a universe built from the index. Deterministic for the same input. */
export function packUniverse(u: MemUniverse): Buffer {
  const sources: Header['sources'] = [];
  const srcIdx = new Map<string, number>();
  const names: string[] = [];
  const start: number[] = [];
  const recs: string[] = [];
  const recOf = new Map<Pkg, number>();
  for (const [name, l] of u.byName) {
    names.push(name);
    start.push(recs.length);
    for (const p of l) {
      const sk = `${p.base}\n${p.suite}\n${p.repo}`;
      let si = srcIdx.get(sk);
      if (si === undefined) {
        srcIdx.set(sk, (si = sources.length));
        sources.push({ base: p.base, suite: p.suite, repo: p.repo });
      }
      const f = p.fields;
      recOf.set(p, recs.length);
      recs.push([p.name, p.version, p.arch, String(si), ...REST.map((k) => clean(f[k]))].join('\t'));
    }
  }
  start.push(recs.length);
  const providers: Header['providers'] = {};
  for (const [name, l] of u.providers) providers[name] = l.flatMap((x) => [recOf.get(x.pkg)!, x.version ?? '']);
  const essentials = u.essentials().map((p) => recOf.get(p)!);
  const header: Header = { sources, names: names.length, records: recs.length, providers, essentials };
  const blobs = recs.map((r) => Buffer.from(r));
  const offs = new Uint32Array(recs.length + 1);
  let at = 0;
  blobs.forEach((b, i) => {
    offs[i] = at;
    at += b.length;
  });
  offs[recs.length] = at;
  const head = Buffer.from(JSON.stringify(header));
  const nameBlob = Buffer.from(names.join('\n'));
  const lens = new Uint32Array([head.length, nameBlob.length]);
  const pad = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);
  const parts = [Buffer.from(MAGIC), Buffer.from(lens.buffer), head, pad(head.length), nameBlob, pad(nameBlob.length), Buffer.from(new Uint32Array(start).buffer), Buffer.from(offs.buffer), ...blobs];
  // MAGIC is 15 bytes: one byte of padding keeps the u32 fields aligned.
  parts.splice(1, 0, Buffer.alloc(1));
  return Buffer.concat(parts);
}

/** A package read from the ready form; its record is split only when a field is read. */
class PackedPkg implements Pkg {
  private parts: string[] | undefined;
  private f: Paragraph | undefined;
  constructor(readonly name: string, readonly version: string, readonly arch: string, readonly base: string, readonly suite: string, readonly repo: string, private readonly u: PackedUniverse, private readonly i: number) {}
  private rest(): string[] {
    return (this.parts ??= this.u.record(this.i).slice(4));
  }
  field(k: string): string | undefined {
    if (k === 'Package') return this.name;
    if (k === 'Version') return this.version;
    if (k === 'Architecture') return this.arch;
    const j = REST.indexOf(k as (typeof REST)[number]);
    if (j < 0) return undefined;
    const v = this.rest()[j];
    return v ? v : undefined;
  }
  get fields(): Paragraph {
    if (!this.f) {
      const p: Paragraph = { Package: this.name, Version: this.version, Architecture: this.arch };
      REST.forEach((k, j) => {
        const v = this.rest()[j];
        if (v) p[k] = v;
      });
      this.f = p;
    }
    return this.f;
  }
  toJSON(): Omit<Pkg, never> {
    return { name: this.name, version: this.version, arch: this.arch, base: this.base, suite: this.suite, repo: this.repo, fields: this.fields };
  }
}

export class PackedUniverse implements Universe {
  private readonly header: Header;
  private readonly nameList: string[];
  private readonly nameIdx = new Map<string, number>();
  private readonly start: Uint32Array;
  private readonly offs: Uint32Array;
  private readonly recBase: number;
  private readonly pkgs: (PackedPkg | undefined)[];
  private readonly provCache = new Map<string, Provide[]>();

  constructor(private readonly buf: Buffer, readonly repos: RepoState[]) {
    if (buf.toString('latin1', 0, MAGIC.length) !== MAGIC) throw new Error('not a packed universe');
    let at = MAGIC.length + 1;
    const u32 = (n: number): Uint32Array => {
      const a = new Uint32Array(n);
      Buffer.from(a.buffer).set(buf.subarray(at, at + n * 4));
      at += n * 4;
      return a;
    };
    const [headLen, nameLen] = u32(2) as unknown as [number, number];
    this.header = JSON.parse(buf.toString('utf8', at, at + headLen)) as Header;
    at += headLen + ((4 - (headLen % 4)) % 4);
    this.nameList = buf.toString('utf8', at, at + nameLen).split('\n');
    at += nameLen + ((4 - (nameLen % 4)) % 4);
    this.nameList.forEach((n, i) => this.nameIdx.set(n, i));
    this.start = u32(this.header.names + 1);
    this.offs = u32(this.header.records + 1);
    this.recBase = at;
    this.pkgs = new Array(this.header.records);
  }

  record(i: number): string[] {
    return this.buf.toString('utf8', this.recBase + this.offs[i]!, this.recBase + this.offs[i + 1]!).split('\t');
  }

  private pkg(i: number): PackedPkg {
    let p = this.pkgs[i];
    if (!p) {
      const end = this.recBase + this.offs[i + 1]!;
      const from = this.recBase + this.offs[i]!;
      // Only the first four fields: most packages of a closure are never read further.
      let cut = from;
      for (let k = 0; k < 4; k++) {
        const t = this.buf.indexOf(9, k ? cut + 1 : cut);
        if (t < 0 || t >= end) {
          cut = end;
          break;
        }
        cut = t;
      }
      const [name, version, arch, si] = this.buf.toString('utf8', from, cut).split('\t') as [string, string, string, string];
      const s = this.header.sources[Number(si)]!;
      this.pkgs[i] = p = new PackedPkg(name, version, arch, s.base, s.suite, s.repo, this, i);
    }
    return p;
  }

  versions(name: string): readonly Pkg[] {
    const n = this.nameIdx.get(name);
    if (n === undefined) return [];
    const out: Pkg[] = [];
    for (let i = this.start[n]!; i < this.start[n + 1]!; i++) out.push(this.pkg(i));
    return out;
  }

  candidate(name: string): Pkg | undefined {
    const n = this.nameIdx.get(name);
    return n === undefined ? undefined : this.pkg(this.start[n]!);
  }

  find(spec: string): Pkg | undefined {
    const eq = spec.indexOf('=');
    if (eq < 0) return this.candidate(spec);
    const v = spec.slice(eq + 1);
    return this.versions(spec.slice(0, eq)).find((p) => p.version === v);
  }

  providersOf(name: string): readonly Provide[] {
    let l = this.provCache.get(name);
    if (!l) {
      const raw = this.header.providers[name] ?? [];
      l = [];
      for (let k = 0; k < raw.length; k += 2) {
        const v = raw[k + 1] as string;
        l.push(v ? { pkg: this.pkg(raw[k] as number), version: v } : { pkg: this.pkg(raw[k] as number) });
      }
      this.provCache.set(name, l);
    }
    return l;
  }

  names(): Iterable<string> {
    return this.nameList;
  }

  essentials(): Pkg[] {
    return this.header.essentials.map((i) => this.pkg(i));
  }
}

/** The cache key of the universe of these repositories' verified indexes. */
export function universeKey(repos: readonly RepoState[]): string | undefined {
  if (repos.some((r) => !r.index)) return undefined;
  return idOf(Buffer.from(JSON.stringify({ v: MAGIC, repos: repos.map((r) => [r.config.name, r.config.arch, r.index]).sort() }))).slice(0, 32);
}

const cacheDir = (store: Store): string | undefined => (isAbsolute(store.dir) ? join(store.dir, 'cache', 'packages') : undefined);

/** The ready universe for these repositories, if a checked one is cached. */
export async function readPacked(store: Store, repos: RepoState[]): Promise<PackedUniverse | undefined> {
  const key = universeKey(repos);
  const dir = cacheDir(store);
  if (!key || !dir) return undefined;
  try {
    const want = await store.getMeta(META + key);
    if (!want) return undefined;
    const buf = await readFile(join(dir, `universe-${key}.bin`));
    if (createHash('sha256').update(buf).digest('hex') !== want.toString()) return undefined;
    return new PackedUniverse(buf, repos);
  } catch {
    return undefined;
  }
}

/** Keeps the ready form of `u` for the next command (best effort: a store this process cannot
 * write, e.g. a user's view of root's store, just goes without). */
export async function writePacked(store: Store, repos: RepoState[], u: MemUniverse): Promise<void> {
  const key = universeKey(repos);
  const dir = cacheDir(store);
  if (!key || !dir) return;
  try {
    const buf = packUniverse(u);
    await mkdirp(dir);
    const file = join(dir, `universe-${key}.bin`);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, buf);
    await rename(tmp, file);
    const old = (await store.listMeta(META)).filter((x) => x.key !== META + key);
    // Each is tied to one index state: keep the newest few.
    const withTimes = await Promise.all((await readdir(dir)).filter((n) => /^universe-[0-9a-f]+\.bin$/.test(n) && n !== `universe-${key}.bin`).map(async (n) => ({ n, t: (await stat(join(dir, n))).mtimeMs })));
    withTimes.sort((a, b) => b.t - a.t);
    const drop = withTimes.slice(KEEP - 1).map((x) => x.n.slice('universe-'.length, -'.bin'.length));
    await store.batchMeta([...old.filter((x) => drop.includes(x.key.slice(META.length))).map((x) => ({ key: x.key, value: undefined })), { key: META + key, value: Buffer.from(createHash('sha256').update(buf).digest('hex')) }]);
    await Promise.all(drop.map((k) => rm(join(dir, `universe-${k}.bin`), { force: true })));
  } catch {
    // a cache: without it the next command builds the universe from the index again
  }
}

/** Loads every repository (or the named ones): the ready form when it is cached, else from
 * the verified indexes (and keeps the ready form for the next command). */
export async function loadUniverse(store: Store, names?: readonly string[]): Promise<Universe> {
  const repos = names && names.length ? await Promise.all(names.map(async (n) => { const r = await getRepo(store, n); if (!r) throw new MiqError('MIQ_NOT_FOUND', `no repository "${n}"; \`miq repo list\` shows them`); return r; })) : await listRepos(store);
  if (repos.length === 0) throw new MiqError('MIQ_NOT_FOUND', 'no package repository is configured; add one with `miq repo add debian --from-apt` and `miq repo update`');
  const ready = await readPacked(store, repos);
  if (ready) return ready;
  const u = new MemUniverse((await Promise.all(repos.map((r) => loadRepoPackages(store, r)))).flat(), repos);
  await writePacked(store, repos, u);
  return u;
}
