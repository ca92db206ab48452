/**
 * Debian version comparison, exactly dpkg's (lib/dpkg/version.c: `dpkg_version_compare` and
 * `verrevcmp`). Checked against `dpkg --compare-versions` on pairs drawn from the real index
 * (test/packages-version.test.ts). Pure.
 */

export interface DebVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

const cache = new Map<string, DebVersion>();

export function parseVersion(v: string): DebVersion {
  let hit = cache.get(v);
  if (hit) return hit;
  const s = v.trim();
  const colon = s.indexOf(':');
  const epoch = colon >= 0 ? Number(s.slice(0, colon)) || 0 : 0;
  const rest = colon >= 0 ? s.slice(colon + 1) : s;
  const dash = rest.lastIndexOf('-');
  hit = dash >= 0 ? { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) } : { epoch, upstream: rest, revision: '' };
  if (cache.size > 200_000) cache.clear();
  cache.set(v, hit);
  return hit;
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isAlpha = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/** dpkg's `order`: digits sort as 0 (never reached here), letters by code, `~` before
 * everything (even the end of the string), other characters after all letters. */
function order(c: number): number {
  if (Number.isNaN(c)) return 0;
  if (isDigit(c)) return 0;
  if (isAlpha(c)) return c;
  if (c === 126) return -1;
  return c + 256;
}

function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(a.charCodeAt(i))) || (j < b.length && !isDigit(b.charCodeAt(j)))) {
      const ac = order(a.charCodeAt(i));
      const bc = order(b.charCodeAt(j));
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a.charCodeAt(i) === 48) i++;
    while (b.charCodeAt(j) === 48) j++;
    while (isDigit(a.charCodeAt(i)) && isDigit(b.charCodeAt(j))) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a.charCodeAt(i))) return 1;
    if (isDigit(b.charCodeAt(j))) return -1;
    if (firstDiff) return firstDiff;
  }
  return 0;
}

/** <0, 0, >0 as dpkg orders the two versions. */
export function compareVersions(a: string, b: string): number {
  if (a === b) return 0;
  const x = parseVersion(a);
  const y = parseVersion(b);
  if (x.epoch !== y.epoch) return x.epoch > y.epoch ? 1 : -1;
  const u = verrevcmp(x.upstream, y.upstream);
  if (u) return u;
  return verrevcmp(x.revision, y.revision);
}

export type RelOp = '<<' | '<=' | '=' | '>=' | '>>';

/** Whether `have` satisfies `op want` (Debian relation operators; the obsolete `<`/`>` mean
 * `<=`/`>=` as in dpkg). */
export function satisfies(have: string, op: RelOp, want: string): boolean {
  const c = compareVersions(have, want);
  switch (op) {
    case '<<': return c < 0;
    case '<=': return c <= 0;
    case '=': return c === 0;
    case '>=': return c >= 0;
    case '>>': return c > 0;
  }
}

export function normaliseOp(op: string): RelOp {
  if (op === '<') return '<=';
  if (op === '>') return '>=';
  if (op === '<<' || op === '<=' || op === '=' || op === '>=' || op === '>>') return op;
  throw new Error(`unknown relation operator ${op}`);
}
