/**
 * Real third-party trees for tests, fetched through the ordinary clients and cached outside the
 * repository ($MIQ_TEST_CACHE, default /var/cache/miq-test): Debian binary packages via
 * `apt-get download` + `dpkg-deb -x`, npm releases via `npm pack`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export const CACHE = process.env.MIQ_TEST_CACHE ?? '/var/cache/miq-test';

let updated = false;
function aptUpdate(): void {
  if (updated) return;
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
  updated = true;
}

/** Move a finished download into place. A complete copy already there (another test file won the
 * race) is kept and ours dropped; a half-made one (no `.done`, from a killed run) is replaced. */
function publish(dl: string, dest: string): void {
  if (existsSync(join(dest, '.done'))) {
    rmSync(dl, { recursive: true, force: true });
    return;
  }
  rmSync(dest, { recursive: true, force: true });
  try {
    renameSync(dl, dest);
  } catch (e) {
    if (!existsSync(join(dest, '.done'))) throw e;
    rmSync(dl, { recursive: true, force: true });
  }
}

/** Unpacked Debian binary package (`dpkg-deb -x`), one folder per package. */
export function debianPackage(pkg: string): string {
  const dest = join(CACHE, 'deb', pkg);
  if (existsSync(join(dest, '.done'))) return join(dest, 'root');
  // A private download folder per process: test files run two at a time and may want the same
  // package; the finished folder appears by one rename, and a loser of that race keeps the winner's.
  const dl = join(CACHE, 'deb', `${pkg}.dl-${process.pid}`);
  rmSync(dl, { recursive: true, force: true });
  mkdirSync(dl, { recursive: true });
  const download = (): void => { execFileSync('apt-get', ['download', '-qq', pkg], { cwd: dl, stdio: 'ignore' }); };
  try {
    download();
  } catch {
    aptUpdate();
    download();
  }
  const deb = readdirSync(dl).find((f) => f.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb`);
  mkdirSync(join(dl, 'root'));
  execFileSync('dpkg-deb', ['-x', join(dl, deb), join(dl, 'root')]);
  execFileSync('touch', [join(dl, '.done')]);
  publish(dl, dest);
  return join(dest, 'root');
}

/** An unpacked npm release (`npm pack NAME@VERSION`, then untar). */
export function npmRelease(name: string, version: string): string {
  const dest = join(CACHE, 'npm', `${name.replace('/', '+')}@${version}`);
  if (existsSync(join(dest, '.done'))) return join(dest, 'package');
  const dl = `${dest}.dl-${process.pid}`;
  rmSync(dl, { recursive: true, force: true });
  mkdirSync(dl, { recursive: true });
  const out = execFileSync('npm', ['pack', '--silent', `${name}@${version}`], { cwd: dl, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n').pop()!;
  execFileSync('tar', ['xzf', out], { cwd: dl });
  rmSync(join(dl, out));
  execFileSync('touch', [join(dl, '.done')]);
  publish(dl, dest);
  return join(dest, 'package');
}
