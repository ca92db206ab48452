/**
 * Numbers and names from the command line, with one grammar each. Anything else is refused as
 * bad input (exit 2): `Number()` alone took "-5", "1e20" and "NaN", and a NaN cache size turned
 * eviction off, so memory grew without bound.
 */
import { MiqError } from '../store/errors.js';
import { checkPathName } from '../store/objects.js';

const UNIT: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * A size: digits with an optional fraction and unit: K, M, G, T (powers of 1024, optionally
 * written KiB/KB/K), B for bytes. A bare number means `bare` (bytes unless the option has always
 * taken MiB, as --cache-size has: turning an old `--cache-size 512` into 512 bytes would be worse
 * than the inconsistency).
 */
export function parseSize(v: string, what: string, opts: { bare?: 'B' | 'M'; min?: number; max?: number } = {}): number {
  const bare = opts.bare ?? 'B';
  const m = /^(\d{1,16}(?:\.\d{1,6})?)\s*(?:([kmgt])(?:i?b)?|(b))?$/i.exec(v.trim());
  const shape = `a size like 512M, 2G or 4096B (K, M, G, T are powers of 1024; a bare number is ${bare === 'M' ? 'MiB' : 'bytes'})`;
  if (!m) throw new MiqError('MIQ_BAD_INPUT', `${what} "${v}" is not ${shape}`);
  const mult = m[2] ? UNIT[m[2].toLowerCase()]! : m[3] ? 1 : bare === 'M' ? UNIT.m! : 1;
  const bytes = Math.floor(Number(m[1]) * mult);
  const min = opts.min ?? 0;
  const max = opts.max ?? 2 ** 50;
  if (!Number.isSafeInteger(bytes) || bytes > max) throw new MiqError('MIQ_BAD_INPUT', `${what} "${v}" is too large (at most ${fmt(max)})`);
  if (bytes < min) throw new MiqError('MIQ_BAD_INPUT', `${what} "${v}" is too small (at least ${fmt(min)})`);
  return bytes;
}

const fmt = (n: number): string => {
  for (const [u, f] of [['T', UNIT.t!], ['G', UNIT.g!], ['M', UNIT.m!], ['K', UNIT.k!]] as const) if (n >= f && n % f === 0) return `${n / f}${u}`;
  return `${n}B`;
};

/** A whole number in [min, max], digits only (no sign, exponent, fraction or NaN). */
export function parseCount(v: string, what: string, min = 0, max = 1_000_000_000): number {
  const n = /^\d{1,16}$/.test(v.trim()) ? Number(v.trim()) : NaN;
  if (!Number.isSafeInteger(n)) throw new MiqError('MIQ_BAD_INPUT', `${what} "${v}" is not a whole number`);
  if (n < min || n > max) throw new MiqError('MIQ_BAD_INPUT', `${what} "${v}" is out of range (${min} to ${max})`);
  return n;
}

/** A duration in seconds (a fraction allowed), positive and at most `max`. */
export function parseSeconds(v: string, what: string, max = 365 * 24 * 3600): number {
  const n = /^\d{1,12}(?:\.\d{1,6})?$/.test(v.trim()) ? Number(v.trim()) : NaN;
  if (!(n > 0) || n > max) throw new MiqError('MIQ_BAD_INPUT', `${what} "${v}" must be a number of seconds, more than 0 and at most ${max}`);
  return n;
}

/** A name that becomes a store key (a GC root, an alias): the same rule as a store path name. */
export function checkKeyName(v: string, what: string): string {
  try {
    return checkPathName(v);
  } catch {
    throw new MiqError('MIQ_BAD_INPUT', `${what} "${v}" is not allowed: use letters, digits and + . _ - (not starting with ".", at most 200 characters)`);
  }
}
