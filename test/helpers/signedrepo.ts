/** A tiny Debian-layout repository signed with a throwaway key (gpg), served from a folder. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function hasGpg(): boolean {
  try {
    execFileSync('gpg', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Makes a key in its own GNUPGHOME and exports its public keyring file. */
export function makeKey(dir: string, uid: string): { home: string; keyring: string } {
  const home = join(dir, `gnupg-${uid.replace(/\W/g, '')}`);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const env = { ...process.env, GNUPGHOME: home };
  execFileSync('gpg', ['--batch', '--quiet', '--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', uid, 'ed25519', 'sign', '0'], { env, stdio: 'pipe' });
  const keyring = join(dir, `${uid.replace(/\W/g, '')}.gpg`);
  writeFileSync(keyring, execFileSync('gpg', ['--batch', '--export', uid], { env }));
  return { home, keyring };
}

export function stanza(name: string, version: string, extra: Record<string, string> = {}): string {
  const f: Record<string, string> = { Package: name, Version: version, Architecture: 'amd64', Priority: 'optional', Filename: `pool/main/${name[0]}/${name}/${name}_${version}_amd64.deb`, Size: '1000', SHA256: '0'.repeat(64), Description: `test package ${name}`, ...extra };
  return Object.entries(f).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n';
}

/** Writes dists/<suite>/{InRelease, main/binary-amd64/Packages} under root, signed by `home`. */
export function writeSuite(root: string, suite: string, packages: string, o: { home: string; date: Date; tamper?: (release: string) => string }): void {
  const d = join(root, 'dists', suite);
  mkdirSync(join(d, 'main', 'binary-amd64'), { recursive: true });
  writeFileSync(join(d, 'main', 'binary-amd64', 'Packages'), packages);
  const sha = createHash('sha256').update(packages).digest('hex');
  let release = [
    'Origin: miq-test', `Suite: ${suite}`, `Codename: ${suite}`, `Date: ${o.date.toUTCString()}`, 'Architectures: amd64', 'Components: main', 'SHA256:',
    ` ${sha} ${Buffer.byteLength(packages)} main/binary-amd64/Packages`, '',
  ].join('\n');
  if (o.tamper) release = o.tamper(release);
  writeFileSync(join(d, 'Release'), release);
  const signed = execFileSync('gpg', ['--batch', '--quiet', '--clearsign', '--digest-algo', 'SHA256', '-o', '-'], { input: release, env: { ...process.env, GNUPGHOME: o.home } });
  writeFileSync(join(d, 'InRelease'), signed);
}

/** Builds a real .deb with dpkg-deb under root/pool/main/ and returns its Packages stanza. */
export function makeDeb(root: string, name: string, version: string, o: { depends?: string; files?: Record<string, string>; postinst?: string } = {}): string {
  const work = join(root, '.build', `${name}_${version}`);
  mkdirSync(join(work, 'DEBIAN'), { recursive: true });
  const control = [`Package: ${name}`, `Version: ${version}`, 'Architecture: amd64', 'Maintainer: miq test <test@miq.invalid>', ...(o.depends ? [`Depends: ${o.depends}`] : []), `Description: test package ${name}`, ''].join('\n');
  writeFileSync(join(work, 'DEBIAN', 'control'), control);
  if (o.postinst) writeFileSync(join(work, 'DEBIAN', 'postinst'), o.postinst, { mode: 0o755 });
  for (const [p, text] of Object.entries(o.files ?? {})) {
    mkdirSync(join(work, p, '..'), { recursive: true });
    writeFileSync(join(work, p), text, { mode: p.includes('/bin/') ? 0o755 : 0o644 });
  }
  const rel = `pool/main/${name}_${version}_amd64.deb`;
  mkdirSync(join(root, 'pool', 'main'), { recursive: true });
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', work, join(root, rel)], { stdio: 'pipe' });
  const deb = readFileSync(join(root, rel));
  return stanza(name, version, { Filename: rel, Size: String(deb.length), SHA256: createHash('sha256').update(deb).digest('hex'), ...(o.depends ? { Depends: o.depends } : {}) });
}
