/**
 * Reference scanning as Nix does it: a store path refers to another when the other's hash part
 * occurs in its bytes. Store path names are `<name>-<32 hex>`, so we look for a '-' followed by
 * 32 lowercase hex characters: memchr for '-' (native indexOf) then a cheap check, much faster
 * than testing every offset in JS.
 */
const HEX = new Uint8Array(256);
for (const c of '0123456789abcdef') HEX[c.charCodeAt(0)] = 1;
const DASH = 0x2d;
export const MAX_REF_CANDIDATES = 4096;

/** Adds every 32-hex run that follows a '-' at positions [start, end) of `buf` (the hex run may
 * extend past `end`, up to `limit`) to `out`. */
export function scanRefs(buf: Buffer, start: number, end: number, limit: number, out: Set<string>): void {
  let p = buf.indexOf(DASH, start);
  while (p !== -1 && p < end) {
    if (p + 33 <= limit) {
      let ok = true;
      for (let k = p + 1; k <= p + 32; k++) {
        if (HEX[buf[k]!] === 0) { ok = false; break; }
      }
      if (ok && out.size < MAX_REF_CANDIDATES) out.add(buf.toString('latin1', p + 1, p + 33));
    }
    p = buf.indexOf(DASH, p + 1);
  }
}
