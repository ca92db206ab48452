/**
 * Source fetching. A source is used only after its bytes hash to the pinned value; it is kept in
 * a cache named by that hash (`<cache>/<algo>/<hex>`), and a cached copy is re-hashed before each
 * use because whatever comes from disk is checked before it is trusted.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { MiqError, ioError, isMiqError } from '../store/errors.js';
import { IdHasher } from '../store/ids.js';
import { type MirrorOptions, resolveUrl } from './mirrors.js';
import type { Source } from './recipe.js';
import { mkdirp } from '../store/mkdirp.js';

export interface FetchOptions extends MirrorOptions {
  cacheDir: string;
  /** Per-attempt timeout (default 10 minutes: large tarballs on slow links). */
  timeoutMs?: number;
  onEvent?: (e: { type: 'fetch'; source: string; url: string } | { type: 'fetched'; source: string; bytes: number; cached: boolean }) => void;
}

/** $MIQ_CACHE/sources, else $XDG_CACHE_HOME/miq/sources, else /var/cache/miq/sources for root. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MIQ_CACHE) return join(env.MIQ_CACHE, 'sources');
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'miq', 'sources');
  if (process.getuid?.() === 0) return '/var/cache/miq/sources';
  return join(homedir(), '.cache', 'miq', 'sources');
}

export function cachePath(cacheDir: string, s: Source): string {
  return join(cacheDir, s.algo, s.hash);
}

interface Hashes {
  sha256: string;
  blake3: string;
  bytes: number;
}

function hashingTransform(): { t: Transform; done: () => Hashes } {
  const sha = createHash('sha256');
  const b3 = new IdHasher();
  let bytes = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      sha.update(chunk);
      b3.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  return { t, done: () => ({ sha256: sha.digest('hex'), blake3: b3.digest(), bytes }) };
}

async function hashFile(path: string): Promise<Hashes> {
  const { t, done } = hashingTransform();
  await pipeline(createReadStream(path), t, async function* (src) {
    for await (const _ of src) {
      // drain: the transform hashes
    }
  });
  return done();
}

export function mismatchError(s: Source, from: string, actual: string): MiqError {
  return new MiqError(
    'MIQ_BAD_INPUT',
    `source ${s.name} from ${from} does not match its pinned hash\n  expected ${s.algo}:${s.hash}\n  actual   ${s.algo}:${actual}`,
    { details: { source: s.name, url: from, algo: s.algo, expected: s.hash, actual } },
  );
}

const inFlight = new Map<string, Promise<string>>();

/** Returns the path of a verified copy of the source in the cache, fetching it if needed. */
export function fetchSource(s: Source, opts: FetchOptions): Promise<string> {
  const dest = cachePath(opts.cacheDir, s);
  let p = inFlight.get(dest);
  if (!p) {
    p = doFetch(s, dest, opts).finally(() => inFlight.delete(dest));
    inFlight.set(dest, p);
  }
  return p;
}

async function doFetch(s: Source, dest: string, opts: FetchOptions): Promise<string> {
  const cached = await stat(dest).catch(() => undefined);
  if (cached?.isFile()) {
    const h = await hashFile(dest);
    if (h[s.algo] === s.hash) {
      opts.onEvent?.({ type: 'fetched', source: s.name, bytes: h.bytes, cached: true });
      return dest;
    }
    // A damaged cache entry is not an error: drop it and fetch again.
    await rm(dest, { force: true });
  }
  await mkdirp(join(opts.cacheDir, s.algo));
  const tmp = `${dest}.part-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const urls = resolveUrl(s.url, opts);
  const failures: string[] = [];
  let mismatch: MiqError | undefined;
  for (const url of urls) {
    opts.onEvent?.({ type: 'fetch', source: s.name, url });
    try {
      const h = await download(url, tmp, opts.timeoutMs ?? 600_000);
      if (h[s.algo] !== s.hash) {
        mismatch = mismatchError(s, url, h[s.algo]);
        failures.push(`${url}: hash mismatch`);
        continue;
      }
      await rename(tmp, dest);
      opts.onEvent?.({ type: 'fetched', source: s.name, bytes: h.bytes, cached: false });
      return dest;
    } catch (e) {
      failures.push(`${url}: ${(e as Error).message}`);
    } finally {
      await rm(tmp, { force: true });
    }
  }
  if (mismatch && failures.length === 1) throw mismatch;
  if (mismatch) throw new MiqError('MIQ_BAD_INPUT', `${mismatch.message}\n  tried:\n    ${failures.join('\n    ')}`, { details: mismatch.details ?? {} });
  throw new MiqError('MIQ_NOT_FOUND', `could not fetch source ${s.name} (${s.url}):\n    ${failures.join('\n    ')}`, { details: { source: s.name, url: s.url, failures } });
}

async function download(url: string, tmp: string, timeoutMs: number): Promise<Hashes> {
  if (url.startsWith('file://')) {
    const { t, done } = hashingTransform();
    let path: string;
    try {
      path = fileURLToPath(url);
    } catch (e) {
      throw new MiqError('MIQ_BAD_INPUT', `bad file URL ${url}: ${(e as Error).message}`);
    }
    try {
      await pipeline(createReadStream(path), t, createWriteStream(tmp));
    } catch (e) {
      throw isMiqError(e) ? e : ioError(e, 'cannot read source', path);
    }
    return done();
  }
  if (!/^https?:\/\//.test(url)) throw new MiqError('MIQ_BAD_INPUT', `unsupported URL scheme in ${url}`);
  let lastErr: unknown;
  for (let attempt = 0; attempt < 2; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 1000));
    let res: Response;
    try {
      res = await fetch(url, { redirect: 'follow', signal: AbortSignal.timeout(timeoutMs) });
    } catch (e) {
      lastErr = new MiqError('MIQ_REMOTE', `${(e as Error).message}${(e as { cause?: Error }).cause ? ` (${(e as { cause: Error }).cause.message})` : ''}`, { details: { url } });
      continue;
    }
    if (res.status === 404 || res.status === 410) throw new MiqError('MIQ_NOT_FOUND', `HTTP ${res.status}`, { details: { url } });
    if (!res.ok || !res.body) {
      lastErr = new MiqError('MIQ_REMOTE', `HTTP ${res.status}`, { details: { url } });
      continue;
    }
    const h = hashingTransform();
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), h.t, createWriteStream(tmp));
    return h.done();
  }
  throw lastErr as Error;
}
