import { stat } from 'node:fs/promises';
import { MiqError } from '../errors.js';
import { join } from 'node:path';
import { DiskCache } from './cache.js';
import { parseTrustedKey, type TrustedKey } from './keys.js';
import { remoteReader, type RemoteReader } from './reader.js';
import { SeenPointers } from './seen.js';
import { openTransport, remoteFolder, type HttpOptions } from './transport.js';

export interface OpenRemoteOptions {
  /** Verified read-through cache on disk; omitted: memory only. */
  cacheDir?: string;
  /** Bytes the disk cache may hold (default 1 GiB). */
  cacheSize?: number;
  /** `name:base64` strings, files holding one, or parsed keys. */
  trustedKeys: readonly (string | TrustedKey)[];
  /** Where the highest pointer sequences seen are kept (default `<cacheDir>/seen.json`). */
  seenFile?: string;
  http?: HttpOptions;
  maxChunk?: number;
  memoryBytes?: number;
  /** See ReaderParts. */
  wholeFileMax?: number;
  bundles?: boolean;
  recordHints?: boolean;
}

/** Turns a location (http(s)://…, file://…, a directory) into a verified, cached reader. */
export async function openRemote(location: string, o: OpenRemoteOptions): Promise<RemoteReader> {
  const transport = openTransport(location, o.http);
  const dir = remoteFolder(location);
  if (dir !== undefined) {
    // A folder remote that is not there is a typo, not a remote without the object asked for.
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new MiqError('MIQ_BAD_INPUT', `remote ${location}: ${dir} is not a directory; a remote is a folder written by \`miq push\` (or file://…), or an http(s):// URL serving one`);
  }
  const cache = o.cacheDir ? new DiskCache(o.cacheDir, o.cacheSize ?? 1024 ** 3) : undefined;
  await cache?.open();
  const seenFile = o.seenFile ?? (o.cacheDir ? join(o.cacheDir, 'seen.json') : undefined);
  if (!seenFile) throw new MiqError('MIQ_BAD_INPUT', `remote ${location}: no place to remember the pointers seen (rollback protection); give a cache directory or a seen-pointers file`);
  return remoteReader({
    transport,
    cache,
    trusted: o.trustedKeys.map((k) => (typeof k === 'string' ? parseTrustedKey(k) : k)),
    seen: new SeenPointers(seenFile),
    maxChunk: o.maxChunk,
    memoryBytes: o.memoryBytes,
    wholeFileMax: o.wholeFileMax,
    bundles: o.bundles,
    recordHints: o.recordHints,
  });
}

/** `2G`, `512M`, `100k`, or bytes. */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(s.trim());
  if (!m) throw new MiqError("MIQ_BAD_INPUT", `size "${s}" is not a number with an optional K/M/G/T suffix`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * mult);
}
