/**
 * Bytes of a repository file: `mirror://NAME/…` through the configured mirrors
 * (builder/mirrors.ts), `file://` and plain http(s). "Absent everywhere" is undefined; a
 * server error or a broken connection is a fault.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { resolveUrl, type MirrorOptions } from '../builder/mirrors.js';
import { MiqError } from '../store/errors.js';

export async function fetchBytes(url: string, opts: MirrorOptions = {}, timeoutMs = 120_000): Promise<Buffer | undefined> {
  let lastErr: unknown;
  for (const u of resolveUrl(url, opts)) {
    try {
      if (u.startsWith('file://')) {
        try {
          return await readFile(fileURLToPath(u));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw e;
        }
      }
      const res = await fetch(u, { signal: AbortSignal.timeout(timeoutMs) });
      if (res.status === 404 || res.status === 410) continue;
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return Buffer.from(await res.arrayBuffer());
    } catch (e) {
      lastErr = e;
    }
  }
  if (lastErr) throw new MiqError('MIQ_REMOTE', `cannot fetch ${url}: ${(lastErr as Error).message}`, { cause: lastErr, details: { url } });
  return undefined;
}

function pipeThrough(cmd: string, args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    c.stdout.on('data', (d: Buffer) => out.push(d));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', (e) => reject(new MiqError('MIQ_IO', `cannot run ${cmd}: ${e.message}; install it`, { cause: e })));
    c.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new MiqError('MIQ_CORRUPT', `${cmd} could not decompress: ${err.trim()}`))));
    c.stdin.on('error', () => {});
    c.stdin.end(input);
  });
}

/** Decompresses by file extension (apt keeps its lists lz4-compressed; archives serve xz/gz). */
export async function decompress(buf: Buffer, name: string): Promise<Buffer> {
  if (name.endsWith('.gz')) return gunzipSync(buf);
  if (name.endsWith('.xz')) return pipeThrough('xz', ['-dc'], buf);
  if (name.endsWith('.lz4')) return pipeThrough('lz4', ['-dc'], buf);
  if (name.endsWith('.zst')) return pipeThrough('zstd', ['-dc'], buf);
  return buf;
}
