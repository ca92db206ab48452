import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scanRefs } from '../store/refscan.js';

/** The obvious definition, to check the skipping scanner against. */
function naive(buf: Buffer): Set<string> {
  const out = new Set<string>();
  const hex = (b: number): boolean => (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66);
  for (let p = 0; p + 33 <= buf.length; p++) {
    if (buf[p] !== 0x2d) continue;
    let ok = true;
    for (let k = p + 1; k <= p + 32; k++) if (!hex(buf[k]!)) { ok = false; break; }
    if (ok) out.add(buf.toString('latin1', p + 1, p + 33));
  }
  return out;
}

const H = 'abcdef0123456789abcdef0123456789';

test('finds -<32 hex> runs exactly as the naive definition does', () => {
  const cases = [`x-${H}y`, `--${H}`, `-${H}0-${H}`, `a${H}-${H.toUpperCase()}`, `/miq/store/foo-${H}/bin-${H.slice(0, 31)}`, `${H}${H}-${H}`, `-`, ``];
  for (const c of cases) {
    const b = Buffer.from(c);
    const got = new Set<string>();
    scanRefs(b, 0, b.length, b.length, got);
    assert.deepEqual([...got].sort(), [...naive(b)].sort(), c);
  }
  // Random bytes drawn mostly from '-' and hex, where runs and near-misses are frequent.
  const alphabet = Buffer.from('-0123456789abcdefg');
  let x = 7;
  for (let t = 0; t < 200; t++) {
    const b = Buffer.alloc(400);
    for (let i = 0; i < b.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      b[i] = (x >>> 16) % 40 < 3 ? alphabet[0]! : alphabet[((x >>> 8) % 17) + 1]!;
    }
    const got = new Set<string>();
    scanRefs(b, 0, b.length, b.length, got);
    assert.deepEqual([...got].sort(), [...naive(b)].sort());
  }
});

test('a run may extend past `end` up to `limit` (chunk boundaries), never past `limit`', () => {
  const b = Buffer.from(`aaaa-${H}`);
  const inChunk = new Set<string>();
  scanRefs(b, 0, 6, b.length, inChunk); // the '-' is inside [0, 6), the hex runs past it
  assert.deepEqual([...inChunk], [H]);
  const cut = new Set<string>();
  scanRefs(b, 0, 6, b.length - 1, cut);
  assert.equal(cut.size, 0);
});
