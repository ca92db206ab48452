/**
 * Delta compression of a new version against the same path's previous version: a "rebuilt"
 * binary (the same bytes with small edits all through it) adds a small fraction of what plain
 * chunking adds, reads back exactly, survives gc of the old version, and a damaged base is
 * reported, never papered over.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync, readdirSync, readFileSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ClassicLevel } from 'classic-level';
import { decodeLocation } from '../store/pack.js';
import { json, miq, tempDir } from './helpers/cli.js';

const tmp = tempDir();
after(() => tmp.cleanup());

/** Compressible but varied bytes, like machine code: words drawn from a vocabulary of 1024
 * random words (about 3x compressible). */
function program(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  const vocab = randomBytes(4096);
  const pick = randomBytes(n / 2);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE(vocab.readUInt32LE((pick.readUInt16LE(i / 2) % 1024) * 4), i);
  return b;
}

/** A "rebuild": every 4 KiB one 4-byte word changes (shifted addresses), plus an insertion. */
function rebuild(old: Buffer): Buffer {
  const b = Buffer.from(old);
  for (let i = 100; i + 4 < b.length; i += 4096) b.writeUInt32LE(b.readUInt32LE(i) + 16, i);
  return Buffer.concat([b.subarray(0, 300_000), Buffer.from('patched in'), b.subarray(300_000)]);
}

test('a rebuilt file is stored as deltas against its previous version and reads back exactly', () => {
  const storeDir = join(tmp.dir, 'store');
  const s = ['--store', storeDir];
  const v1 = program(3 << 20);
  const v2 = rebuild(v1);
  for (const [dir, data] of [['v1', v1], ['v2', v2]] as const) {
    mkdirSync(join(tmp.dir, dir, 'usr', 'lib'), { recursive: true });
    writeFileSync(join(tmp.dir, dir, 'usr', 'lib', 'libx.so'), data);
  }
  const a = json<{ path: string; newBytes: number }>(miq([...s, 'ingest', join(tmp.dir, 'v1'), '--name', 'libx', '--json']));
  const b = json<{ path: string; newBytes: number }>(miq([...s, 'ingest', join(tmp.dir, 'v2'), '--name', 'libx', '--json']));
  // Plain content-defined chunking would store nearly all of v2 again (every chunk changed).
  assert.ok(b.newBytes < a.newBytes * 0.25, `v2 added ${b.newBytes}, v1 added ${a.newBytes}`);
  const out = join(tmp.dir, 'out');
  assert.equal(miq([...s, 'export', b.path, out]).code, 0);
  assert.ok(readFileSync(join(out, 'usr', 'lib', 'libx.so')).equals(v2));
  assert.equal(miq([...s, 'verify']).code, 0);

  // The old version goes; its chunks that v2's deltas need stay.
  assert.equal(miq([...s, 'unpin', a.path]).code, 0);
  const g = json<{ deadPaths: string[]; repackedPacks: number; removedPacks: number }>(miq([...s, 'gc', '--json']));
  assert.deepEqual(g.deadPaths, [a.path]);
  const after = miq([...s, 'verify']);
  assert.equal(after.code, 0, `deltas still decode after gc and repack: ${after.stdout}\n${JSON.stringify(g)}`);
  // The old chunks kept as bases count as used, not as garbage gc forgot.
  assert.equal(json<{ unreferenced: { chunks: number } }>(miq([...s, 'verify', '--json'])).unreferenced.chunks, 0);
  const out2 = join(tmp.dir, 'out2');
  assert.equal(miq([...s, 'export', b.path, out2]).code, 0);
  execFileSync('cmp', [join(out2, 'usr', 'lib', 'libx.so'), join(tmp.dir, 'v2', 'usr', 'lib', 'libx.so')]);

  // Damage a base chunk: the delta built on it must fail its check, not return wrong bytes.
  const packs = join(storeDir, 'packs');
  const p = readdirSync(packs).sort()[0]!;
  const fd = openSync(join(packs, p), 'r+');
  const at = 48 + 1000; // inside the first body, which is v1's first chunk (a base)
  const one = Buffer.alloc(1);
  readSync(fd, one, 0, 1, at);
  one[0] ^= 0xff;
  writeSync(fd, one, 0, 1, at);
  closeSync(fd);
  const v = miq([...s, 'verify', '--json']);
  assert.equal(v.code, 3);
  const cat = miq([...s, 'cat', `${b.path}/usr/lib/libx.so`]);
  assert.equal(cat.code, 3);
  assert.match(cat.stderr, /corrupt/);
});

test('deltas of deltas: the workers decode chained bases from the packs; a damaged base only costs the delta', async () => {
  const storeDir = join(tmp.dir, 'chain');
  const s = ['--store', storeDir];
  const v1 = program(2 << 20);
  const v2 = rebuild(v1);
  const v3 = rebuild(v2);
  const put = (dir: string, data: Buffer): string => {
    mkdirSync(join(tmp.dir, dir, 'lib'), { recursive: true });
    writeFileSync(join(tmp.dir, dir, 'lib', 'liby.so'), data);
    return join(tmp.dir, dir);
  };
  const a = json<{ path: string; newBytes: number }>(miq([...s, 'ingest', put('c1', v1), '--name', 'liby', '--json']));
  const b = json<{ path: string; newBytes: number }>(miq([...s, 'ingest', put('c2', v2), '--name', 'liby', '--json']));
  const c = json<{ path: string; newBytes: number }>(miq([...s, 'ingest', put('c3', v3), '--name', 'liby', '--json']));
  // v3's dictionaries are v2's chunks, which are themselves deltas against v1's.
  assert.ok(b.newBytes < a.newBytes * 0.25, `v2 added ${b.newBytes} of ${a.newBytes}`);
  assert.ok(c.newBytes < a.newBytes * 0.25, `v3 added ${c.newBytes} of ${a.newBytes}`);
  const out3 = join(tmp.dir, 'out3');
  assert.equal(miq([...s, 'export', c.path, out3]).code, 0);
  assert.ok(readFileSync(join(out3, 'lib', 'liby.so')).equals(v3));
  assert.equal(miq([...s, 'verify']).code, 0);

  // A second store with v1's first chunk damaged: the chunks of v2 that would lean on it are
  // stored without a dictionary (more bytes than in the sound store), and v2 reads back exactly.
  const d = join(tmp.dir, 'damaged');
  const ds = ['--store', d];
  const a2 = json<{ path: string; newBytes: number }>(miq([...ds, 'ingest', join(tmp.dir, 'c1'), '--name', 'liby', '--json']));
  const packs = join(d, 'packs');
  const p = readdirSync(packs).sort()[0]!;
  const fd = openSync(join(packs, p), 'r+');
  const one = Buffer.alloc(1);
  readSync(fd, one, 0, 1, 48 + 1000);
  one[0] ^= 0xff;
  writeSync(fd, one, 0, 1, 48 + 1000);
  closeSync(fd);
  const b2 = json<{ path: string; newBytes: number }>(miq([...ds, 'ingest', join(tmp.dir, 'c2'), '--name', 'liby', '--json']));
  assert.equal(a2.newBytes, a.newBytes);
  assert.ok(b2.newBytes > b.newBytes, `a damaged base is not used: v2 added ${b2.newBytes}, ${b.newBytes} with a sound one`);
  // In the index: no delta leans on the damaged chunk (the first body of the first pack), while
  // v2's other chunks are still deltas against their sound bases.
  const db = new ClassicLevel<string, Buffer>(join(d, 'db'), { keyEncoding: 'utf8', valueEncoding: 'buffer' });
  let damagedId: string | undefined;
  const deltaRefs: string[][] = [];
  try {
    for await (const [k, v] of db.iterator({ gte: 'c/', lt: 'c/\xff' })) {
      const loc = decodeLocation(v);
      if (loc.pack === 1 && loc.offset === 48) damagedId = k.slice(2);
      if (loc.refs) deltaRefs.push(loc.refs);
    }
  } finally {
    await db.close();
  }
  assert.ok(damagedId, 'the damaged chunk is indexed');
  assert.ok(deltaRefs.length > 0, 'v2 still has deltas against sound bases');
  assert.ok(deltaRefs.every((refs) => !refs.includes(damagedId!)), 'no delta is built on the damaged chunk');
  const out2 = join(tmp.dir, 'out-damaged');
  const e = miq([...ds, 'export', b2.path, out2]);
  assert.equal(e.code, 0, e.stderr);
  assert.ok(readFileSync(join(out2, 'lib', 'liby.so')).equals(v2));
});
