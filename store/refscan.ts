/**
 * Reference scanning as Nix does it: a store path refers to another when the other's hash part
 * occurs in its bytes. Store path names are `<name>-<32 hex>`, so we look for a '-' followed by
 * 32 lowercase hex characters. The scan looks at the byte where a match would end: when that byte
 * is not hex, no match can cover it and the scan jumps 32 bytes ahead, so binary data costs about
 * one look per 32 bytes (a memchr for '-' per hit was 3x slower on ELF files, where '-' is common).
 */
const HEX = new Uint8Array(256);
for (const c of '0123456789abcdef') HEX[c.charCodeAt(0)] = 1;
const DASH = 0x2d;
export const MAX_REF_CANDIDATES = 4096;

/** Adds every 32-hex run that follows a '-' at positions [start, end) of `buf` (the hex run may
 * extend past `end`, up to `limit`) to `out`. */
export function scanRefs(buf: Uint8Array, start: number, end: number, limit: number, out: Set<string>): void {
  let p = start; // smallest position where the '-' of a match could be
  while (p < end) {
    const k = p + 32; // where that match's last hex character would be
    if (k >= limit) return;
    if (HEX[buf[k]!] === 0) {
      p = k; // no match spans k; k itself may be the next '-'
      continue;
    }
    let j = k - 1;
    while (j > p && HEX[buf[j]!] === 1) j--;
    if (j > p) {
      p = j; // buf[j] is not hex: the next '-' is at j or later
      continue;
    }
    // p+1 … k are all hex.
    if (buf[p] === DASH && out.size < MAX_REF_CANDIDATES) out.add(Buffer.from(buf.buffer, buf.byteOffset + p + 1, 32).toString('latin1'));
    p = k + 1;
  }
}
