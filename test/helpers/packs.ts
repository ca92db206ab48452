/** Damage to a local store's packs, made the way a failing disk would: one flipped byte. */
import { closeSync, openSync, readFileSync, readdirSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Flips one byte inside the body of the pack entry for `chunkId`. */
export function flipChunkByte(storeDir: string, chunkId: string): void {
  const packs = join(storeDir, 'packs');
  const idBytes = Buffer.from(chunkId, 'hex');
  for (const p of readdirSync(packs)) {
    const data = readFileSync(join(packs, p));
    const at = data.indexOf(idBytes);
    if (at >= 16 && data.subarray(at - 16, at - 12).toString() === 'MQCK') {
      const body = at + 32;
      const stored = data.readUInt32BE(at - 4);
      const fd = openSync(join(packs, p), 'r+');
      const pos = body + Math.floor(stored / 2);
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, pos);
      b[0] ^= 0x20;
      writeSync(fd, b, 0, 1, pos);
      closeSync(fd);
      return;
    }
  }
  throw new Error(`chunk ${chunkId} not found in any pack`);
}
