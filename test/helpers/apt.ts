/** This machine's apt lists (the real, signed Debian indexes) and apt itself as an oracle. */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LISTS = '/var/lib/apt/lists';

/** Why the apt-list tests cannot run here, or undefined when they can. */
export function noAptLists(): string | undefined {
  let names: string[] = [];
  try {
    names = readdirSync(LISTS);
  } catch {
    return `no ${LISTS} (not a Debian machine); run on Debian after apt-get update`;
  }
  if (!names.some((n) => /_dists_[^_]+_InRelease$/.test(n))) return `no InRelease in ${LISTS}; run apt-get update first`;
  if (!names.some((n) => /_Packages(\.lz4|\.gz|\.xz|\.zst)?$/.test(n))) return `no Packages lists in ${LISTS}; run apt-get update first`;
  if (spawnSync('apt-get', ['--version']).status !== 0) return 'apt-get is not installed';
  return undefined;
}

/** The Packages texts apt keeps, decompressed. */
export function packagesTexts(): string[] {
  const out: string[] = [];
  for (const n of readdirSync(LISTS)) {
    const f = join(LISTS, n);
    if (n.endsWith('_Packages')) out.push(execFileSync('cat', [f], { encoding: 'utf8', maxBuffer: 1 << 30 }));
    else if (n.endsWith('_Packages.lz4')) out.push(execFileSync('lz4', ['-dc', f], { encoding: 'utf8', maxBuffer: 1 << 30 }));
    else if (n.endsWith('_Packages.gz')) out.push(execFileSync('gzip', ['-dc', f], { encoding: 'utf8', maxBuffer: 1 << 30 }));
    else if (n.endsWith('_Packages.xz')) out.push(execFileSync('xz', ['-dc', f], { encoding: 'utf8', maxBuffer: 1 << 30 }));
  }
  return out;
}

export interface AptPkg { name: string; version: string; arch: string }

/** What apt installs onto an empty system: `apt-get -s install --no-install-recommends` (or
 * `dist-upgrade`, which adds the Essential set) against an empty dpkg status and a private
 * cache, parsed from its `Inst` lines. */
export function aptSet(pkgs: readonly string[], mode: 'install' | 'dist-upgrade' = 'install'): AptPkg[] {
  const dir = mkdtempSync(join(tmpdir(), 'miq-apt-'));
  try {
    const status = join(dir, 'status');
    writeFileSync(status, '');
    mkdirSync(join(dir, 'cache', 'archives', 'partial'), { recursive: true });
    const args = ['-s', '-q', '-o', `Dir::State::status=${status}`, '-o', `Dir::Cache=${join(dir, 'cache')}`, '-o', 'Debug::NoLocking=1', '-o', 'APT::Install-Recommends=false',
      mode === 'install' ? 'install' : 'dist-upgrade', ...(mode === 'install' ? ['--no-install-recommends', ...pkgs] : [])];
    const r = spawnSync('apt-get', args, { encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    const out: AptPkg[] = [];
    for (const line of r.stdout.split('\n')) {
      const m = /^Inst (\S+) \((\S+) .*\[([^\]]+)\]\)/.exec(line);
      if (m) out.push({ name: m[1]!.replace(/:.*$/, ''), version: m[2]!, arch: m[3]! });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function hasApt(): boolean {
  return existsSync('/usr/bin/apt-get');
}

/**
 * A store with `debian` added from this machine's apt sources and updated from its lists, as
 * `miq repo add debian --from-apt && miq repo update` make it, copied into `dir`. The first
 * call of a test run makes it (through the CLI) and keeps it in the test cache; later calls,
 * in this file or another, copy it (a verified index and its ready universe: ~15-75 s of
 * `repo update` each on a loaded machine). Keyed by apt's lists and the compiled code that
 * makes it (store/, and the index's modules in packages/), so a change to either makes it
 * again. packages-repo.test.ts runs the real `repo update` itself.
 */
export function debianStore(dir: string, miq: (args: string[]) => { code: number; stderr: string }): void {
  const h = createHash('sha256');
  for (const n of readdirSync(LISTS).sort()) {
    if (!/_(InRelease|Packages(\.\w+)?)$/.test(n)) continue;
    const st = statSync(join(LISTS, n));
    h.update(`${n} ${st.size} ${st.mtimeMs}\n`);
  }
  const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  // The code that decides what such a store holds: the store itself and the index's making.
  const code = [...readdirSync(join(dist, 'store')).filter((x) => x.endsWith('.js')).map((f) => `store/${f}`), ...['repo', 'release', 'fetch', 'deb822', 'universe', 'packed'].map((f) => `packages/${f}.js`)];
  for (const f of code.sort()) h.update(`${f}\n`).update(readFileSync(join(dist, f)));
  const key = h.digest('hex').slice(0, 24);
  const top = join(process.env.MIQ_TEST_CACHE ?? '/var/cache/miq-test', 'debian-store');
  const ready = join(top, key);
  if (!existsSync(ready)) {
    mkdirSync(top, { recursive: true });
    const tmp = mkdtempSync(join(top, `.${key}-`));
    try {
      for (const args of [['repo', 'add', 'debian', '--from-apt'], ['repo', 'update']]) {
        const r = miq(['--store', tmp, ...args]);
        if (r.code !== 0) throw new Error(`miq ${args.join(' ')} failed: ${r.stderr}`);
      }
      // Another test process may have made it meanwhile: either copy is as good.
      try {
        renameSync(tmp, ready);
      } catch {
        rmSync(tmp, { recursive: true, force: true });
      }
      for (const old of readdirSync(top)) if (old !== key && !old.startsWith('.')) rmSync(join(top, old), { recursive: true, force: true });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  const r = spawnSync('cp', ['-a', '--reflink=auto', ready, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cp ${ready} ${dir}: ${r.stderr}`);
}
