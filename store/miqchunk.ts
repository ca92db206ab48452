/**
 * The optional C helpers of native/miqchunk.c (built by binding.gyp at install as
 * build/Release/miqchunk.node): the chunker's gear loop (chunker.ts) and the walk's listDir
 * (walk-sync.ts). The addon is optional: without a compiler at install (or without
 * libfuse3-dev, since binding.gyp evaluates `pkg-config fuse3` for the whole file) it is not
 * there and each caller falls back to its JS code; so does a caller whose environment variable
 * is "1" (tests compare both), and a caller of an export an older build lacks.
 */
import { createRequire } from 'node:module';

let loaded: Record<string, unknown> | null | undefined;

function addon(): Record<string, unknown> | null {
  if (loaded === undefined) {
    try {
      // dist/store/miqchunk.js -> build/Release at the package root.
      loaded = createRequire(import.meta.url)('../../build/Release/miqchunk.node') as Record<string, unknown>;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}

/** The addon's function `name`, or undefined when `process.env[envVar]` is "1", the addon did
 * not build, or this build of it has no such export. */
export function miqchunkExport<T>(name: string, envVar: string): T | undefined {
  if (process.env[envVar] === '1') return undefined;
  const f = addon()?.[name];
  return typeof f === 'function' ? (f as T) : undefined;
}
