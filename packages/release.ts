/**
 * A suite's `InRelease` (or `Release` + `Release.gpg`): its signature is checked with Debian's
 * `gpgv` against the repository's keyring, and only the text gpgv itself writes out as signed is
 * parsed, so nothing outside the signature can add or change a checksum line.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MiqError } from '../store/errors.js';
import { parseParagraphs } from './deb822.js';

export interface ReleaseFile {
  path: string;
  size: number;
  sha256: string;
}

export interface Release {
  suite: string;
  codename: string;
  /** Parsed `Date:` in ms since the epoch, and the text as written. */
  date: number;
  dateText: string;
  validUntil?: number;
  architectures: string[];
  components: string[];
  /** SHA256 entries by path relative to `dists/<suite>/`. */
  files: Map<string, ReleaseFile>;
}

/** Parses the (already verified) text of a Release file. Pure. */
export function parseRelease(text: string, where: string): Release {
  const p = parseParagraphs(text)[0];
  if (!p) throw new MiqError('MIQ_FORMAT', `${where}: no fields in the release file`);
  const date = Date.parse(p.Date ?? '');
  if (!Number.isFinite(date)) throw new MiqError('MIQ_FORMAT', `${where}: the release file has no valid Date field`);
  const files = new Map<string, ReleaseFile>();
  for (const line of (p.SHA256 ?? '').split('\n')) {
    const m = /^([0-9a-f]{64})\s+(\d+)\s+(\S+)$/.exec(line.trim());
    if (m) files.set(m[3]!, { sha256: m[1]!, size: Number(m[2]), path: m[3]! });
  }
  if (files.size === 0) throw new MiqError('MIQ_FORMAT', `${where}: the release file lists no SHA256 checksums`);
  const vu = p['Valid-Until'] ? Date.parse(p['Valid-Until']) : undefined;
  return {
    suite: p.Suite ?? '', codename: p.Codename ?? '', date, dateText: p.Date!,
    ...(vu !== undefined && Number.isFinite(vu) ? { validUntil: vu } : {}),
    architectures: (p.Architectures ?? '').split(/\s+/).filter(Boolean),
    components: (p.Components ?? '').split(/\s+/).filter(Boolean),
    files,
  };
}

function run(cmd: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', (e) => reject(new MiqError('MIQ_IO', `cannot run ${cmd}: ${e.message}; install it (Debian: apt-get install gpgv)`, { cause: e })));
    c.on('close', (code) => resolve({ code: code ?? 1, out, err }));
  });
}

/**
 * Verifies a clearsigned InRelease (`detached` undefined) or a Release with its detached
 * signature, and returns the signed text. Refuses unless gpgv exits 0 and reports a good,
 * valid signature and no bad one.
 */
export async function verifySigned(data: Buffer, keyring: string, where: string, detached?: Buffer): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'miq-gpgv-'));
  try {
    const f = join(dir, 'release');
    await writeFile(f, data);
    const args = ['--status-fd', '1', '--keyring', keyring];
    let signed: string;
    if (detached) {
      await writeFile(join(dir, 'release.gpg'), detached);
      const r = await run('gpgv', [...args, join(dir, 'release.gpg'), f]);
      check(r, where);
      signed = data.toString('utf8');
    } else {
      const outFile = join(dir, 'signed');
      const r = await run('gpgv', [...args, '--output', outFile, f]);
      check(r, where);
      signed = await readFile(outFile, 'utf8');
    }
    return signed;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function check(r: { code: number; out: string; err: string }, where: string): void {
  const good = /^\[GNUPG:\] (GOODSIG|VALIDSIG) /m.test(r.out);
  const bad = /^\[GNUPG:\] (BADSIG|ERRSIG|EXPSIG|REVKEYSIG|NODATA) /m.exec(r.out);
  if (r.code !== 0 || !good || bad) {
    const why = bad ? bad[1] : r.err.trim().split('\n').filter((l) => !/^gpgv: (Signature made|\s+using)/.test(l)).slice(-1)[0] ?? `gpgv exit ${r.code}`;
    throw new MiqError('MIQ_UNTRUSTED', `${where}: the signature does not verify against the repository's keyring (${why}); nothing was changed`, { details: { where, gpgv: r.out.trim().split('\n') } });
  }
}
