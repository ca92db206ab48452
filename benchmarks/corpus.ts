/**
 * The benchmark corpus: real package trees nobody on this project wrote, fetched through the
 * ordinary clients only (`npm pack`, `apt-get download`) and unpacked (`tar`, `dpkg-deb -x`).
 *
 * Reproducible: the first fetch resolves Debian versions (a point-release version and, for the
 * security set, the security-archive version) and records them in the manifest; later runs reuse
 * the recorded versions. Idempotent: archives and unpacked trees already in the cache are kept.
 * Nothing here lives in the repository: the cache is $MIQ_BENCH_CACHE or /var/cache/miq-bench.
 *
 * Run directly: `node dist/benchmarks/corpus.js [full|quick] [--refresh]`.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { q, quiet, sh, treeStats, type Log, type TreeStats } from './util.js';
import { MiqError } from '../store/errors.js';

export interface CorpusSpec {
  name: string;
  /** Consecutive releases of large npm packages, oldest first. */
  npm: { pkg: string; versions: string[] }[];
  /** Debian packages taken at their point-release version. */
  debianBase: string[];
  /** Debian packages the security archive updates: both versions are fetched. */
  debianSecurity: string[];
}

/** Packages with a security update that keeps the upstream version (a patched rebuild): the
 * case where chunking gains least, because a rebuild shifts addresses throughout a binary. */
const SECURITY_SET = [
  'libnode108', 'nodejs', 'libperl5.36', 'perl-base', 'perl-modules-5.36',
  'libpython3.11', 'libpython3.11-stdlib', 'libpython3.11-minimal', 'python3.11-minimal',
  'libgs10', 'libgs10-common', 'xserver-xorg-core', 'xvfb', 'libmagickcore-6.q16-6',
  'libpoppler126', 'libnss3', 'libnss3-tools', 'bind9-libs', 'libaom3',
  'gstreamer1.0-plugins-good', 'libgstreamer-plugins-base1.0-0', 'python3-django', 'inkscape',
];

const BASE_SET = [
  'firefox-esr', 'libreoffice-core', 'libllvm15', 'libstd-rust-1.63', 'gcc-12', 'libclang-cpp15',
  'vim-runtime', 'libicu72', 'g++-12', 'mesa-vulkan-drivers', 'emacs-gtk', 'cpp-12',
  'libgl1-mesa-dri', 'libz3-4', 'coreutils', 'libavcodec59', 'libc6', 'gdb', 'libqt5gui5',
  'libgtk-3-0', 'systemd', 'rustc', 'libqt5widgets5', 'libssl3', 'libqt5core5a',
];

export const FULL: CorpusSpec = {
  name: 'full',
  npm: [
    { pkg: 'typescript', versions: ['5.6.2', '5.6.3', '5.7.2', '5.7.3', '5.8.2', '5.8.3', '5.9.2', '5.9.3'] },
    { pkg: 'next', versions: ['16.4.4', '16.4.5', '16.4.6'] },
  ],
  debianBase: BASE_SET,
  debianSecurity: SECURITY_SET,
};

/** A small slice for `miq bench --quick` and its test: a few tens of MB. */
export const QUICK: CorpusSpec = {
  name: 'quick',
  npm: [{ pkg: 'typescript', versions: ['5.9.2', '5.9.3'] }],
  debianBase: [],
  debianSecurity: ['libaom3', 'bind9-libs'],
};

/** Many small files (issue 13): nine consecutive releases of a small-file npm package, eight of a
 * large one, forty Debian packages rich in small files (scripts, docs, locale data, Python and
 * Ruby libraries) and the older versions of twenty of them. Per-file costs dominate here, where
 * the full corpus is dominated by large binaries. */
export const SMALL: CorpusSpec = {
  name: 'small',
  npm: [
    { pkg: 'lodash', versions: ['4.17.13', '4.17.14', '4.17.15', '4.17.16', '4.17.17', '4.17.18', '4.17.19', '4.17.20', '4.17.21'] },
    { pkg: 'typescript', versions: ['5.6.2', '5.6.3', '5.7.2', '5.7.3', '5.8.2', '5.8.3', '5.9.2', '5.9.3'] },
  ],
  debianBase: [
    'vim-runtime', 'tzdata', 'manpages', 'manpages-dev', 'git-man', 'python3-numpy', 'python3-setuptools', 'python3-pip',
    'emacs-common', 'ruby3.1', 'libruby3.1', 'tex-common', 'locales', 'icu-devtools', 'python3-lib2to3', 'python3-distutils',
    'python3-yaml', 'python3-requests', 'python3-pygments', 'python3-docutils',
  ],
  debianSecurity: SECURITY_SET.filter((p) => !['inkscape', 'xvfb', 'xserver-xorg-core'].includes(p)),
};

export const SPECS: Record<string, CorpusSpec> = { full: FULL, quick: QUICK, small: SMALL };

export interface TreeEntry {
  /** `npm:typescript@5.9.3`, `deb:libaom3=3.6.0-1+deb12u3` */
  id: string;
  kind: 'npm' | 'deb';
  pkg: string;
  version: string;
  /** For deb: `point` or `security`. */
  role?: 'point' | 'security' | 'base';
  archive: string;
  archiveBytes: number;
  dir: string;
  stats: TreeStats;
}

export interface SetEntry {
  name: string;
  dir: string;
  members: string[];
  stats: TreeStats;
}

export interface Manifest {
  spec: string;
  cache: string;
  created: string;
  debianVersions: Record<string, { point: string; security?: string }>;
  trees: TreeEntry[];
  sets: SetEntry[];
}

export function cacheDir(): string {
  return process.env.MIQ_BENCH_CACHE || '/var/cache/miq-bench';
}

function safe(s: string): string {
  return s.replace(/[^A-Za-z0-9+._@-]/g, '_');
}

/** `apt-cache madison`: version per suite. A suite whose name ends in `-security` is the
 * security archive; every other suite (the release and its `-updates`) is the point release. */
async function debianVersions(pkg: string): Promise<{ point?: string; security?: string }> {
  const r = await sh(`apt-cache madison ${q(pkg)}`, { check: false });
  const point: string[] = [];
  const security: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const parts = line.split('|').map((s) => s.trim());
    if (parts.length < 3 || parts[0] !== pkg) continue;
    const [, version, origin] = parts as [string, string, string];
    if (!/ Packages$/.test(origin)) continue; // source lines
    const suite = origin.split(/\s+/)[1] ?? '';
    (/-security\//.test(suite) ? security : point).push(version);
  }
  const best = async (vs: string[]) => {
    let b: string | undefined;
    for (const v of vs) {
      if (b === undefined || (await sh(`dpkg --compare-versions ${q(v)} gt ${q(b)}`, { check: false })).code === 0) b = v;
    }
    return b;
  };
  return { point: await best(point), security: await best(security) };
}

async function unpackNpm(tgz: string, dest: string): Promise<void> {
  const tmp = `${dest}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await sh(`tar xzf ${q(tgz)} -C ${q(tmp)}`);
  const top = await readdir(tmp);
  // npm tarballs hold one top folder (usually `package/`); keep its content.
  const inner = top.length === 1 ? join(tmp, top[0]!) : tmp;
  await rm(dest, { recursive: true, force: true });
  await rename(inner, dest);
  await rm(tmp, { recursive: true, force: true });
}

async function unpackDeb(deb: string, dest: string): Promise<void> {
  const tmp = `${dest}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await sh(`dpkg-deb -x ${q(deb)} ${q(tmp)}`);
  await rm(dest, { recursive: true, force: true });
  await rename(tmp, dest);
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/**
 * Fetch, unpack and assemble the corpus for `spec`; returns its manifest (also written to
 * `<cache>/manifest-<spec>.json`). Sets assembled (hard links into the unpacked trees; each set
 * holds every inode once, so no tool sees a hard link):
 * - `security-old` / `security-new`: the security set at point-release / security versions;
 * - `debian-N` / `debian-N1`: base packages plus the security set, before / after the update;
 * - `full`: debian-N, the updated packages, and every npm release.
 */
export async function fetchCorpus(
  spec: CorpusSpec,
  opts: { cache?: string; refresh?: boolean; log?: Log } = {},
): Promise<Manifest> {
  const log = opts.log ?? quiet;
  const cache = opts.cache ?? cacheDir();
  const manifestPath = join(cache, `manifest-${spec.name}.json`);
  const old = opts.refresh ? undefined : await readJson<Manifest>(manifestPath);
  const dl = join(cache, 'downloads');
  const un = join(cache, 'unpacked');
  await mkdir(join(dl, 'npm'), { recursive: true });
  await mkdir(join(dl, 'deb'), { recursive: true });
  await mkdir(join(un, 'npm'), { recursive: true });
  await mkdir(join(un, 'deb'), { recursive: true });

  // 1. npm releases.
  const npmItems = spec.npm.flatMap((s) => s.versions.map((v) => ({ pkg: s.pkg, version: v })));
  const npmTgz = (pkg: string, v: string) => join(dl, 'npm', `${safe(pkg)}-${v}.tgz`);
  const missingNpm = npmItems.filter((i) => !existsSync(npmTgz(i.pkg, i.version)));
  if (missingNpm.length) {
    log(`npm pack: ${missingNpm.map((i) => `${i.pkg}@${i.version}`).join(' ')}`);
    const tmp = join(dl, 'npm', '.tmp');
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    for (const i of missingNpm) {
      const r = await sh(`npm pack --ignore-scripts --json --pack-destination ${q(tmp)} ${q(`${i.pkg}@${i.version}`)}`, {
        cwd: tmp,
      });
      const start = r.stdout.indexOf('[');
      const info = JSON.parse(r.stdout.slice(start)) as { filename: string }[];
      await rename(join(tmp, info[0]!.filename), npmTgz(i.pkg, i.version));
    }
    await rm(tmp, { recursive: true, force: true });
  }

  // 2. Debian versions: reuse the manifest's pins unless refreshing.
  const versions: Manifest['debianVersions'] = {};
  const needAll = [...spec.debianBase, ...spec.debianSecurity];
  const unresolved = needAll.filter((p) => !old?.debianVersions[p]);
  if (needAll.length && (unresolved.length || !old)) {
    log('apt-get update');
    await sh('apt-get update -qq');
  }
  for (const p of needAll) {
    const pinned = old?.debianVersions[p];
    if (pinned && (!spec.debianSecurity.includes(p) || pinned.security)) {
      versions[p] = pinned;
      continue;
    }
    const v = await debianVersions(p);
    if (!v.point) throw new MiqError('MIQ_NOT_FOUND', `no point-release version of ${p} in the configured archive; check the mirror (mirror://debian/) configuration`);
    if (spec.debianSecurity.includes(p)) {
      if (!v.security) throw new MiqError('MIQ_NOT_FOUND', `no security-archive version of ${p}; check the mirror (mirror://debian-security/) configuration`);
      versions[p] = { point: v.point, security: v.security };
    } else versions[p] = { point: v.point };
  }
  const debItems: { pkg: string; version: string; role: 'point' | 'security' | 'base' }[] = [];
  for (const p of spec.debianBase) debItems.push({ pkg: p, version: versions[p]!.point, role: 'base' });
  for (const p of spec.debianSecurity) {
    debItems.push({ pkg: p, version: versions[p]!.point, role: 'point' });
    debItems.push({ pkg: p, version: versions[p]!.security!, role: 'security' });
  }
  const debFile = (pkg: string, v: string) => join(dl, 'deb', `${safe(pkg)}_${safe(v)}.deb`);
  const missingDeb = debItems.filter((i) => !existsSync(debFile(i.pkg, i.version)));
  if (missingDeb.length) {
    log(`apt-get download: ${missingDeb.length} packages`);
    const tmp = join(dl, 'deb', '.tmp');
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    // The _apt sandbox user must be able to write here; as root apt-get drops to it.
    await sh(`chmod 0777 ${q(tmp)}`);
    await sh(`apt-get download -q ${missingDeb.map((i) => q(`${i.pkg}=${i.version}`)).join(' ')}`, { cwd: tmp });
    for (const f of await readdir(tmp)) {
      if (!f.endsWith('.deb')) continue;
      const r = await sh(`dpkg-deb -f ${q(join(tmp, f))} Package Version`);
      const pkg = /^Package: (.*)$/m.exec(r.stdout)![1]!;
      const version = /^Version: (.*)$/m.exec(r.stdout)![1]!;
      await rename(join(tmp, f), debFile(pkg, version));
    }
    await rm(tmp, { recursive: true, force: true });
  }

  // 3. Unpack (a `.done` marker beside each tree, never inside it: tools would ingest it).
  const trees: TreeEntry[] = [];
  const oldTrees = new Map((old?.trees ?? []).map((t) => [t.id, t]));
  const unpackOne = async (
    kind: 'npm' | 'deb',
    pkg: string,
    version: string,
    archive: string,
    role?: TreeEntry['role'],
  ) => {
    const id = kind === 'npm' ? `npm:${pkg}@${version}` : `deb:${pkg}=${version}`;
    const dir = join(un, kind, kind === 'npm' ? `${safe(pkg)}@${version}` : `${safe(pkg)}_${safe(version)}`);
    const done = `${dir}.done`;
    let stats = oldTrees.get(id)?.stats;
    if (stats?.inodeBytes === undefined) stats = undefined;
    if (!existsSync(done) || !existsSync(dir)) {
      log(`unpack ${id}`);
      if (kind === 'npm') await unpackNpm(archive, dir);
      else await unpackDeb(archive, dir);
      await writeFile(done, '');
      stats = undefined;
    }
    stats ??= await treeStats(dir);
    const archiveBytes = (await sh(`stat -c %s ${q(archive)}`)).stdout.trim();
    const e: TreeEntry = { id, kind, pkg, version, archive, archiveBytes: Number(archiveBytes), dir, stats };
    if (role) e.role = role;
    trees.push(e);
  };
  for (const i of npmItems) await unpackOne('npm', i.pkg, i.version, npmTgz(i.pkg, i.version));
  for (const i of debItems) await unpackOne('deb', i.pkg, i.version, debFile(i.pkg, i.version), i.role);

  // 4. Assemble the sets.
  const byId = new Map(trees.map((t) => [t.id, t]));
  const debId = (p: string, v: string) => `deb:${p}=${v}`;
  const setDefs: { name: string; members: { id: string; at: string }[] }[] = [];
  const secOld = spec.debianSecurity.map((p) => ({ id: debId(p, versions[p]!.point), at: safe(p) }));
  const secNew = spec.debianSecurity.map((p) => ({ id: debId(p, versions[p]!.security!), at: safe(p) }));
  const base = spec.debianBase.map((p) => ({ id: debId(p, versions[p]!.point), at: safe(p) }));
  if (secOld.length) {
    setDefs.push({ name: 'security-old', members: secOld });
    setDefs.push({ name: 'security-new', members: secNew });
    setDefs.push({ name: 'debian-N', members: [...base, ...secOld] });
    setDefs.push({ name: 'debian-N1', members: [...base, ...secNew] });
  }
  setDefs.push({
    name: 'full',
    members: [
      ...[...base, ...secOld].map((m) => ({ id: m.id, at: `debian/${m.at}` })),
      ...secNew.map((m) => ({ id: m.id, at: `debian-security/${m.at}` })),
      ...npmItems.map((i) => ({ id: `npm:${i.pkg}@${i.version}`, at: `npm/${safe(i.pkg)}@${i.version}` })),
    ],
  });
  const sets: SetEntry[] = [];
  const setsDir = join(cache, 'sets', spec.name);
  await mkdir(setsDir, { recursive: true });
  for (const d of setDefs) {
    const dir = join(setsDir, d.name);
    const markerPath = `${dir}.json`;
    const want = JSON.stringify(d.members);
    const marker = await readJson<{ members: string; stats: TreeStats }>(markerPath);
    if (marker?.members === want && marker.stats.inodeBytes !== undefined && existsSync(dir)) {
      sets.push({ name: d.name, dir, members: d.members.map((m) => m.id), stats: marker.stats });
      continue;
    }
    log(`assemble ${spec.name}/${d.name}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    for (const m of d.members) {
      const t = byId.get(m.id)!;
      const dest = join(dir, m.at);
      await mkdir(join(dest, '..'), { recursive: true });
      await sh(`cp -al ${q(t.dir)} ${q(dest)}`);
    }
    const stats = await treeStats(dir);
    await writeFile(markerPath, JSON.stringify({ members: want, stats }));
    sets.push({ name: d.name, dir, members: d.members.map((m) => m.id), stats });
  }

  const manifest: Manifest = {
    spec: spec.name,
    cache,
    created: old?.created ?? new Date().toISOString(),
    debianVersions: versions,
    trees,
    sets,
  };
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

export function findSet(m: Manifest, name: string): SetEntry {
  const s = m.sets.find((x) => x.name === name);
  if (!s) throw new Error(`corpus ${m.spec} has no set ${name}`);
  return s;
}

/** npm releases of one package, oldest first, as a series of trees. */
export function npmSeries(m: Manifest, pkg: string): TreeEntry[] {
  return m.trees.filter((t) => t.kind === 'npm' && t.pkg === pkg);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const spec = SPECS[args.find((a) => !a.startsWith('-')) ?? 'full'];
  if (!spec) throw new Error('usage: corpus.js [full|quick] [--refresh]');
  const m = await fetchCorpus(spec, {
    refresh: args.includes('--refresh'),
    log: (l) => process.stderr.write(`${l}\n`),
  });
  for (const s of m.sets) {
    process.stdout.write(`${s.name}: ${s.stats.files} files, ${(s.stats.bytes / 1e6).toFixed(1)} MB, ${s.dir}\n`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
