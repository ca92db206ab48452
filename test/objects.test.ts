import assert from 'node:assert/strict';
import { test } from 'node:test';
import { idOf } from '../store/ids.js';
import { kChunk, kFile, kMeta, kPath, kTree, K_FORMAT } from '../store/keys.js';
import { decodeFileRecord, decodeStorePath, decodeTree, decodeTreePacked, encodeFileIndexRecord, encodeFileRecord, encodeStorePath, encodeTree, parseStorePath, storePathName, type StorePathRecord, type TreeEntry } from '../store/objects.js';
import { decodeLocation, encodeLocation } from '../store/pack.js';
import { isMiqError } from '../store/errors.js';

const A = idOf(Buffer.from('a'));
const B = idOf(Buffer.from('b'));

const entries: TreeEntry[] = [
  { name: Buffer.from('zeta'), kind: 'file', size: 1, id: A },
  { name: Buffer.from('bin'), kind: 'dir', size: 1, id: B },
  { name: Buffer.from([0xff, 0xfe, 0x41]), kind: 'exe', size: 1, id: B }, // not UTF-8: kept as bytes
  { name: Buffer.from('link'), kind: 'symlink', size: 9, target: Buffer.from('../lib/x') },
];

// Golden values: these bytes are what ids hash and what is on disk. Change them only together
// with a format version bump (store/local.ts FORMAT_VERSION) and keep old fixtures readable.
test('tree encoding is canonical and pinned (golden)', () => {
  const bytes = encodeTree(entries);
  assert.equal(idOf(bytes), '197e2bc71782e86f17b21acf8b5fd5a8008d5b071666e5f5e2721732692999d3');
  assert.equal(bytes.length, 176);
  assert.deepEqual(encodeTree([...entries].reverse()), bytes, 'input order does not matter');
  const t = decodeTree(bytes, idOf(bytes));
  assert.deepEqual(t.entries.map((e) => e.name.toString('hex')), ['62696e', '6c696e6b', '7a657461', 'fffe41']);
  assert.equal(t.entries[1]!.target!.toString(), '../lib/x');
  assert.deepEqual(encodeTree(t.entries), bytes, 'decode/encode round trip');
});

test('tree decoding refuses damage and bad input is refused on encode', () => {
  const bytes = encodeTree(entries);
  const flipped = Buffer.from(bytes);
  flipped[40] ^= 1;
  assert.throws(() => decodeTree(flipped, idOf(bytes)), (e: unknown) => isMiqError(e, 'MIQ_CORRUPT'));
  assert.throws(() => encodeTree([entries[0]!, entries[0]!]), (e: unknown) => isMiqError(e, 'MIQ_BAD_INPUT') && /duplicate/.test((e as Error).message));
  for (const bad of ['a/b', '.', '..', '', 'a\0b', '/', 'x/']) {
    assert.throws(() => encodeTree([{ name: Buffer.from(bad), kind: 'file', size: 0, id: A }]), (e: unknown) => isMiqError(e, 'MIQ_BAD_INPUT') && /invalid entry name/.test((e as Error).message), JSON.stringify(bad));
  }
  for (const ok of ['...', '.a', '..b', 'a.', '\xff']) encodeTree([{ name: Buffer.from(ok), kind: 'file', size: 0, id: A }]);
  // An id must be 64 lowercase hex characters (as isId): the hex is written in place now.
  for (const bad of [undefined, A.toUpperCase(), A.slice(1), `${A}0`, `${A.slice(0, 63)}g`, `${A.slice(0, 10)} ${A.slice(11)}`]) {
    assert.throws(() => encodeTree([{ name: Buffer.from('f'), kind: 'file', size: 0, id: bad as never }]), (e: unknown) => isMiqError(e, 'MIQ_BAD_INPUT') && /has no id/.test((e as Error).message), String(bad));
  }
  assert.throws(() => encodeTree([{ name: Buffer.from('f'), kind: 'file', size: -1, id: A }]), (e: unknown) => isMiqError(e, 'MIQ_BAD_INPUT') && /out of range/.test((e as Error).message));
});

test('a packed tree (the mount\'s form) reads what decodeTree reads, finds names by bytes, and refuses the same damage', () => {
  const big = { name: Buffer.from('huge'), kind: 'file' as const, size: 5 * 2 ** 32 + 7, id: A };
  const bytes = encodeTree([...entries, big]);
  const id = idOf(bytes);
  const plain = decodeTree(bytes, id);
  // Decoded from a view into a larger buffer that is then overwritten: the tree keeps its own copy.
  const host = Buffer.concat([Buffer.from('xx'), bytes]);
  const t = decodeTreePacked(host.subarray(2), id);
  host.fill(0);
  assert.equal(t.length, 5);
  assert.deepEqual(t.entries, plain.entries);
  for (let i = 0; i < t.length; i++) {
    const e = plain.entries[i]!;
    assert.deepEqual([t.name(i), t.kind(i), t.size(i), t.id(i), t.target(i)], [e.name, e.kind, e.size, e.id, e.target]);
    assert.equal(t.isDir(i), e.kind === 'dir');
    assert.equal(t.isFile(i), e.kind === 'file' || e.kind === 'exe');
    assert.equal(t.find(e.name), i, `find ${e.name.toString('hex')}`);
  }
  assert.equal(t.size(t.find(Buffer.from('huge'))), 5 * 2 ** 32 + 7);
  for (const miss of ['', 'a', 'bim', 'bio', 'zz', 'lin', 'linkk']) assert.equal(t.find(Buffer.from(miss)), -1, miss);
  assert.equal(t.find(Buffer.from([0xff, 0xfe])), -1);
  const out = Buffer.alloc(8);
  assert.equal(t.copyName(t.find(Buffer.from('zeta')), out, 1), 4);
  assert.equal(out.toString('latin1', 1, 5), 'zeta');

  const isCorrupt = (e: unknown): boolean => isMiqError(e, 'MIQ_CORRUPT');
  const flipped = Buffer.from(bytes);
  flipped[40] ^= 1;
  assert.throws(() => decodeTreePacked(flipped, id), isCorrupt);
  assert.throws(() => decodeTreePacked(bytes.subarray(0, bytes.length - 1)), isCorrupt, 'truncated');
  assert.throws(() => decodeTreePacked(Buffer.concat([bytes, Buffer.from([0])])), isCorrupt, 'trailing bytes');
  const huge = Buffer.from(bytes);
  huge.writeUInt32BE(0xffffffff, 8);
  assert.throws(() => decodeTreePacked(huge), isCorrupt, 'an impossible count');
  // Two entries swapped (names out of order), the hash not checked: still refused.
  const one = encodeTree([entries[0]!]), two = encodeTree([entries[1]!]);
  const swapped = Buffer.concat([one.subarray(0, 8), Buffer.from([0, 0, 0, 2]), one.subarray(12), two.subarray(12)]);
  assert.throws(() => decodeTreePacked(swapped), (e: unknown) => isCorrupt(e) && /not sorted/.test((e as Error).message));
  assert.equal(decodeTreePacked(Buffer.concat([two.subarray(0, 8), Buffer.from([0, 0, 0, 2]), two.subarray(12), one.subarray(12)])).length, 2);
});

test('file record encoding is pinned (golden) and checks its sizes', () => {
  const rec = { id: A, size: 5, chunks: [{ id: A, length: 2 }, { id: B, length: 3 }] };
  const bytes = encodeFileRecord(rec);
  assert.equal(idOf(bytes), '20a4a5dc8eafb71dfa43bb23b47650c22a374e44dbc4d77a6ed9cbe6effe257a');
  assert.deepEqual(decodeFileRecord(bytes, A), rec);
  assert.throws(() => encodeFileRecord({ ...rec, size: 6 }), (e: unknown) => isMiqError(e, 'MIQ_BAD_INPUT'));
  assert.throws(() => decodeFileRecord(bytes.subarray(0, 60), A), (e: unknown) => isMiqError(e, 'MIQ_CORRUPT'));
  assert.throws(() => decodeFileRecord(bytes, B), (e: unknown) => isMiqError(e, 'MIQ_CORRUPT'));
});

test('the index keeps a one-chunk file as its size (format 3, golden); other records in full', () => {
  const one = { id: A, size: 1, chunks: [{ id: A, length: 1 }] };
  const bytes = encodeFileIndexRecord(one);
  assert.equal(bytes.toString('hex'), '6d7166310000000000000001');
  assert.deepEqual(decodeFileRecord(bytes, A), one);
  assert.deepEqual(decodeFileRecord(encodeFileRecord(one), A), one, 'the full form of the same record still reads');
  assert.throws(() => decodeFileRecord(bytes), (e: unknown) => isMiqError(e, 'MIQ_CORRUPT'), 'the id comes from the key');
  const zero = Buffer.from(bytes);
  zero[11] = 0;
  assert.throws(() => decodeFileRecord(zero, A), (e: unknown) => isMiqError(e, 'MIQ_CORRUPT'));
  const two = { id: A, size: 5, chunks: [{ id: A, length: 2 }, { id: B, length: 3 }] };
  assert.deepEqual(encodeFileIndexRecord(two), encodeFileRecord(two));
  const other = { id: A, size: 1, chunks: [{ id: B, length: 1 }] };
  assert.deepEqual(encodeFileIndexRecord(other), encodeFileRecord(other), 'one chunk under another id: full');
  const empty = { id: A, size: 0, chunks: [] };
  assert.deepEqual(encodeFileIndexRecord(empty), encodeFileRecord(empty));
});

test('store path record is canonical JSON (golden)', () => {
  const key = idOf(encodeTree(entries));
  const r: StorePathRecord = { path: storePathName('hello', key), name: 'hello', key, tree: key, references: ['zz-' + '0'.repeat(32), 'aa-' + '1'.repeat(32)], size: 10, files: 2, made: { kind: 'ingest' }, signatures: [] };
  const bytes = encodeStorePath(r);
  assert.equal(bytes.toString(), '{"files":2,"format":1,"key":"197e2bc71782e86f17b21acf8b5fd5a8008d5b071666e5f5e2721732692999d3","made":{"kind":"ingest"},"name":"hello","path":"hello-197e2bc71782e86f17b21acf8b5fd5a8","references":["aa-11111111111111111111111111111111","zz-00000000000000000000000000000000"],"signatures":[],"size":10,"tree":"197e2bc71782e86f17b21acf8b5fd5a8008d5b071666e5f5e2721732692999d3"}');
  assert.equal(decodeStorePath(bytes).path, 'hello-197e2bc71782e86f17b21acf8b5fd5a8');
  assert.throws(() => decodeStorePath(Buffer.from('{"format":2}')), (e: unknown) => isMiqError(e, 'MIQ_FORMAT') && /upgrade miq/.test((e as Error).message));
});

test('store path names: allowed characters, no leading dot', () => {
  assert.deepEqual(parseStorePath('gcc-libs+x_1.2-' + 'a'.repeat(32)), { name: 'gcc-libs+x_1.2', hash: 'a'.repeat(32) });
  for (const bad of ['.hidden', 'sp ace', 'slash/x', 'ünï']) assert.throws(() => storePathName(bad, A), (e: unknown) => isMiqError(e, 'MIQ_BAD_INPUT'));
  assert.throws(() => parseStorePath('hello'), (e: unknown) => isMiqError(e, 'MIQ_BAD_INPUT'));
});

test('database key schema and chunk locations are pinned (golden)', () => {
  assert.deepEqual([K_FORMAT, kChunk(A), kFile(A), kTree(A), kPath('x-' + '0'.repeat(32)), kMeta('roots/x')].map((k) => k.slice(0, 2)), ['F', 'c/', 'f/', 't/', 'p/', 'm/']);
  const loc = { pack: 7, offset: 2 ** 33 + 5, stored: 1234, plain: 65536, flags: 1 };
  const enc = encodeLocation(loc);
  assert.equal(enc.toString('hex'), '000000070000000200000005000004d20001000001');
  assert.deepEqual(decodeLocation(enc), loc);
});
