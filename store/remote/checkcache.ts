/**
 * Re-checks a remote cache on disk (tests, `miq verify` of a lazy store): every chunk file must
 * decode to its id. Torn temp files (`.…tmp-…`) are counted, not judged: the cache ignores and
 * removes them at its next open.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isMiqError } from '../errors.js';
import type { Id } from '../ids.js';
import { decodeChunk } from './layout.js';

export interface CacheCheck {
  chunks: number;
  bytes: number;
  bad: string[];
  temps: number;
}

export async function checkCache(cacheDir: string, maxChunk = 16 * 1024 * 1024): Promise<CacheCheck> {
  const out: CacheCheck = { chunks: 0, bytes: 0, bad: [], temps: 0 };
  const top = join(cacheDir, 'chunks');
  for (const sub of await readdir(top).catch(() => [] as string[])) {
    for (const name of await readdir(join(top, sub)).catch(() => [] as string[])) {
      if (name.startsWith('.')) {
        out.temps++;
        continue;
      }
      try {
        const plain = decodeChunk(name as Id, await readFile(join(top, sub, name)), undefined, maxChunk);
        out.chunks++;
        out.bytes += plain.length;
      } catch (e) {
        if (!isMiqError(e)) throw e;
        out.bad.push(name);
      }
    }
  }
  return out;
}
