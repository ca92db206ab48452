/** This machine's apt lists (the real, signed Debian indexes) and apt itself as an oracle. */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
