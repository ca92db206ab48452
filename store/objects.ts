/**
 * Canonical, versioned encodings of the immutable objects. Everything here is pure: bytes in,
 * values out. The bytes of a tree are what its id hashes, so any change here is a format change
 * (golden tests in test/objects.test.ts pin them).
 */
import { MiqError } from './errors.js';
import { type Id, idOf, idFromBytes, idToBytes, isId } from './ids.js';

export type EntryKind = 'file' | 'exe' | 'symlink' | 'dir';

export interface TreeEntry {
  /** Raw name bytes: names that are not UTF-8 keep their bytes. */
  readonly name: Buffer;
  readonly kind: EntryKind;
  /** file/exe: content size; dir: logical bytes of the subtree; symlink: target length. */
  readonly size: number;
  /** file/exe: file id; dir: tree id. */
  readonly id?: Id;
  /** symlink target bytes. */
  readonly target?: Buffer;
}

export interface Tree {
  readonly entries: readonly TreeEntry[];
}

export interface ChunkRef {
  readonly id: Id;
  readonly length: number;
}

export interface FileRecord {
  /** BLAKE3 of the whole content. */
  readonly id: Id;
  readonly size: number;
  readonly chunks: readonly ChunkRef[];
}

export type Made =
  | { readonly kind: 'ingest' }
  | { readonly kind: 'build'; readonly recipe: string; readonly log?: Id };

export interface Signature {
  readonly keyName: string;
  /** base64 ed25519 signature over `signedBytes(record)`. */
  readonly sig: string;
}

export interface StorePathRecord {
  /** `<name>-<hash>`: what appears under /miq/store. */
  readonly path: string;
  readonly name: string;
  /** Full key; the hash part of `path` is its first 32 hex characters. */
  readonly key: Id;
  readonly tree: Id;
  /** Other store paths whose hash occurs in this one's bytes (sorted). */
  readonly references: readonly string[];
  /** Logical bytes of all files. */
  readonly size: number;
  readonly files: number;
  readonly made: Made;
  readonly signatures: readonly Signature[];
}

const KIND_CODE: Record<EntryKind, number> = { file: 1, exe: 2, symlink: 3, dir: 4 };
const CODE_KIND: Record<number, EntryKind> = { 1: 'file', 2: 'exe', 3: 'symlink', 4: 'dir' };
const TREE_MAGIC = Buffer.from('miqtree1');
const FILE_MAGIC = Buffer.from('miqfile1');
/** The index's record of a file that is one chunk (store format 3; see encodeFileIndexRecord). */
const FILE_ONE_MAGIC = Buffer.from('mqf1');
const FILE_ONE_LEN = FILE_ONE_MAGIC.length + 8;
export const STORE_PATH_FORMAT = 1;

const NAME_RE = /^[A-Za-z0-9+._-]+$/;
export const HASH_LEN = 32;

export function checkPathName(name: string): string {
  if (!NAME_RE.test(name) || name.startsWith('.') || name.length > 200) {
    throw new MiqError('MIQ_BAD_INPUT', `name "${name}" is not allowed: use letters, digits and + . _ - (not starting with ".", at most 200 characters)`);
  }
  return name;
}

export function storePathName(name: string, key: Id): string {
  return `${checkPathName(name)}-${key.slice(0, HASH_LEN)}`;
}

/** Splits `<name>-<hash>`; throws MIQ_BAD_INPUT for anything else. */
export function parseStorePath(p: string): { name: string; hash: string } {
  const m = /^([A-Za-z0-9+._-]+)-([0-9a-f]{32})$/.exec(p);
  if (!m || m[1]!.startsWith('.')) throw new MiqError('MIQ_BAD_INPUT', `"${p}" is not a store path (expected <name>-<32 hex characters>)`);
  return { name: m[1]!, hash: m[2]! };
}

export function compareBytes(a: Buffer, b: Buffer): number {
  return Buffer.compare(a, b);
}

function checkEntryName(name: Buffer): void {
  const n = name.length;
  let bad = n === 0 || n > 65535 || (name[0] === 0x2e && (n === 1 || (n === 2 && name[1] === 0x2e)));
  for (let i = 0; !bad && i < n; i++) bad = name[i] === 0x2f || name[i] === 0;
  if (bad) throw new MiqError('MIQ_BAD_INPUT', `invalid entry name ${JSON.stringify(name.toString('latin1'))}`);
}

/** 1 for the characters of a lowercase hex id. */
const LOWER_HEX = new Uint8Array(128);
for (const c of '0123456789abcdef') LOWER_HEX[c.charCodeAt(0)] = 1;

/** Writes `id` (64 lowercase hex characters, as isId) as 32 bytes at `o`; false when it is not one. */
function writeIdAt(out: Buffer, o: number, id: string | undefined): boolean {
  if (id === undefined || id.length !== 64) return false;
  for (let i = 0; i < 64; i++) if (LOWER_HEX[id.charCodeAt(i)] !== 1) return false;
  return out.write(id, o, 32, 'hex') === 32;
}

const byName = (a: TreeEntry, b: TreeEntry): number => Buffer.compare(a.name, b.name);

/**
 * Sorts entries by name bytes and encodes; rejects duplicates. Written for ingest, which encodes
 * every directory of a tree at its end with the workers done (buildTrees: 36k files in 7.8k
 * directories were ~130 ms of that tail quiet, ~0.45 s at load 8): no Buffer per id (hex written
 * in place), a byte loop instead of two native `includes` per name, no regular expression per id.
 */
export function encodeTree(entries: readonly TreeEntry[]): Buffer {
  const sorted = entries.length > 1 ? [...entries].sort(byName) : entries;
  let len = TREE_MAGIC.length + 4;
  for (let i = 0; i < sorted.length; i++) {
    const e = sorted[i]!;
    checkEntryName(e.name);
    if (i > 0 && sorted[i - 1]!.name.equals(e.name)) throw new MiqError('MIQ_BAD_INPUT', `duplicate entry name ${e.name.toString()}`);
    len += 1 + 2 + e.name.length + 8 + (e.kind === 'symlink' ? 2 + (e.target?.length ?? 0) : 32);
  }
  const out = Buffer.allocUnsafe(len);
  let o = TREE_MAGIC.copy(out, 0);
  out.writeUInt32BE(sorted.length, o); o += 4;
  for (const e of sorted) {
    out[o++] = KIND_CODE[e.kind];
    const n = e.name.length;
    out[o++] = n >>> 8;
    out[o++] = n & 0xff;
    out.set(e.name, o); o += n;
    writeU64(out, o, e.size); o += 8;
    if (e.kind === 'symlink') {
      const t = e.target ?? Buffer.alloc(0);
      if (t.length === 0 || t.length > 4095) throw new MiqError('MIQ_BAD_INPUT', `symlink ${e.name.toString()} has an invalid target length ${t.length}`);
      out[o++] = t.length >>> 8;
      out[o++] = t.length & 0xff;
      out.set(t, o); o += t.length;
    } else {
      if (!writeIdAt(out, o, e.id)) throw new MiqError('MIQ_BAD_INPUT', `entry ${e.name.toString()} has no id`);
      o += 32;
    }
  }
  return out;
}

export function decodeTree(buf: Buffer, expect?: Id): Tree {
  return { entries: decodeTreePacked(buf, expect).entries };
}

/**
 * A decoded tree kept as its canonical encoding plus where each entry starts; an entry's name,
 * id and target are made only when asked. The mount decodes every tree a walk lists and keeps
 * them: as TreeEntry objects (a Buffer name and a 64-character hex id each) a cold `find` of
 * 74k entries held ~50 MB, nearly all of it surviving the young generation (issue 11, notes
 * §14-15). Validated as decodeTree validates, when it is made.
 */
export class PackedTree implements Tree {
  /** `bytes`: the encoding, owned by this tree; `at[i]`: offset of entry i's kind byte. */
  constructor(readonly bytes: Buffer, private readonly at: Uint32Array) {}

  get length(): number {
    return this.at.length;
  }

  kind(i: number): EntryKind {
    return CODE_KIND[this.bytes[this.at[i]!]!]!;
  }

  /** file or exe. */
  isFile(i: number): boolean {
    const k = this.bytes[this.at[i]!]!;
    return k === 1 || k === 2;
  }

  isDir(i: number): boolean {
    return this.bytes[this.at[i]!] === 4;
  }

  nameLength(i: number): number {
    return this.bytes.readUInt16BE(this.at[i]! + 1);
  }

  /** The name's bytes: a view into the tree's encoding (never written to). */
  name(i: number): Buffer {
    const o = this.at[i]! + 3;
    return this.bytes.subarray(o, o + this.bytes.readUInt16BE(o - 2));
  }

  /** Copies entry i's name into `out` at `to`; returns its length. */
  copyName(i: number, out: Buffer, to: number): number {
    const o = this.at[i]! + 3, b = this.bytes;
    const n = b.readUInt16BE(o - 2);
    // By hand: Buffer#copy makes a Uint8Array view per call (names are short; a cold find
    // copies 74k of them).
    for (let j = 0; j < n; j++) out[to + j] = b[o + j]!;
    return n;
  }

  size(i: number): number {
    const o = this.at[i]! + 3 + this.nameLength(i);
    const hi = this.bytes.readUInt32BE(o), lo = this.bytes.readUInt32BE(o + 4);
    // Below 4 GiB without the multiplication, whose result V8 keeps as a boxed double in every
    // node that stores it (65k heap numbers in a cold find's heap).
    return hi === 0 ? lo : hi * 0x100000000 + lo;
  }

  /** file/exe: file id; dir: tree id; symlink: undefined. */
  id(i: number): Id | undefined {
    const o = this.at[i]!;
    if (this.bytes[o] === 3) return undefined;
    const p = o + 11 + this.bytes.readUInt16BE(o + 1);
    return this.bytes.toString('hex', p, p + 32) as Id;
  }

  /** symlink: the target's bytes (a view into the encoding). */
  target(i: number): Buffer | undefined {
    const o = this.at[i]!;
    if (this.bytes[o] !== 3) return undefined;
    const p = o + 11 + this.bytes.readUInt16BE(o + 1);
    return this.bytes.subarray(p + 2, p + 2 + this.bytes.readUInt16BE(p));
  }

  /** Entry i as decodeTree gives it (own copies of the name and target). */
  entry(i: number): TreeEntry {
    const name = Buffer.from(this.name(i));
    const kind = this.kind(i), size = this.size(i);
    if (kind === 'symlink') return { name, kind, size, target: Buffer.from(this.target(i)!) };
    return { name, kind, size, id: this.id(i)! };
  }

  /** Every entry as decodeTree gives them (made on each call). */
  get entries(): TreeEntry[] {
    const out = new Array<TreeEntry>(this.at.length);
    for (let i = 0; i < out.length; i++) out[i] = this.entry(i);
    return out;
  }

  /** The index of the entry named `name` (raw bytes), or -1: entries are sorted by name bytes. */
  find(name: Buffer): number {
    let lo = 0, hi = this.at.length - 1;
    const b = this.bytes;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const o = this.at[mid]! + 3;
      const c = b.compare(name, 0, name.length, o, o + b.readUInt16BE(o - 2));
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
}

/** Decodes and validates a tree into its packed form (see PackedTree); `buf` is not kept (a copy is,
 * unless `buf` is a buffer of its own). */
export function decodeTreePacked(buf: Buffer, expect?: Id): PackedTree {
  if (expect !== undefined && idOf(buf) !== expect) throw new MiqError('MIQ_CORRUPT', `tree ${expect} does not match its hash`, { details: { id: expect } });
  const fail = (why: string): never => { throw new MiqError('MIQ_CORRUPT', `tree ${expect ?? '?'} is malformed: ${why}`); };
  if (buf.length < 12 || !buf.subarray(0, 8).equals(TREE_MAGIC)) fail('bad magic (written by a newer miq?)');
  let o = 8;
  const n = buf.readUInt32BE(o); o += 4;
  // Each entry takes at least 12 bytes: a count beyond that is a damaged tree, not an allocation.
  if (n > (buf.length - 12) / 12) fail('truncated');
  const at = new Uint32Array(n);
  let prev = -1, prevLen = 0;
  for (let i = 0; i < n; i++) {
    if (o + 3 > buf.length) fail('truncated');
    at[i] = o;
    const kind = CODE_KIND[buf[o++]!];
    if (!kind) fail('unknown kind');
    const nl = buf.readUInt16BE(o); o += 2;
    if (o + nl > buf.length) fail('truncated');
    if (prev >= 0 && buf.compare(buf, o, o + nl, prev, prev + prevLen) >= 0) fail('entries not sorted');
    prev = o; prevLen = nl;
    o += nl;
    if (o + 8 > buf.length) fail('truncated');
    o += 8;
    if (kind === 'symlink') {
      if (o + 2 > buf.length) fail('truncated');
      const tl = buf.readUInt16BE(o); o += 2 + tl;
      if (o > buf.length) fail('truncated');
    } else {
      if (o + 32 > buf.length) fail('truncated');
      o += 32;
    }
  }
  if (o !== buf.length) fail('trailing bytes');
  const own = buf.byteOffset === 0 && buf.buffer.byteLength === buf.length ? buf : Buffer.from(buf);
  return new PackedTree(own, at);
}

/** The packed form of a tree decoded some other way. */
export function packTree(t: Tree): PackedTree {
  return t instanceof PackedTree ? t : decodeTreePacked(encodeTree(t.entries));
}

export function encodeFileRecord(f: FileRecord): Buffer {
  const out = Buffer.allocUnsafe(FILE_MAGIC.length + 32 + 8 + 4 + f.chunks.length * 36);
  let o = FILE_MAGIC.copy(out, 0);
  o += idToBytes(f.id).copy(out, o);
  writeU64(out, o, f.size); o += 8;
  out.writeUInt32BE(f.chunks.length, o); o += 4;
  let total = 0;
  for (const c of f.chunks) {
    o += idToBytes(c.id).copy(out, o);
    out.writeUInt32BE(c.length, o); o += 4;
    total += c.length;
  }
  if (total !== f.size) throw new MiqError('MIQ_BAD_INPUT', `file ${f.id}: chunk lengths sum to ${total}, size is ${f.size}`);
  return out;
}

/**
 * How the local index stores a file record (format 3). Most files of a package tree are one
 * chunk, whose id is the file's own (the same BLAKE3 over the same bytes): for them the index
 * keeps only a tag and the size (12 bytes instead of 88); the id is the record's key. On the
 * many-small-files corpus's release N (18 794 files) the index shrank by ~1.3 MB, ~1% of the
 * store. Other records, and every record that leaves the store (pushed remotes, ids of record
 * bytes), keep the full encoding (encodeFileRecord).
 */
export function encodeFileIndexRecord(f: FileRecord): Buffer {
  const [c] = f.chunks;
  if (f.chunks.length !== 1 || c!.id !== f.id || c!.length !== f.size || f.size <= 0) return encodeFileRecord(f);
  const out = Buffer.allocUnsafe(FILE_ONE_LEN);
  FILE_ONE_MAGIC.copy(out, 0);
  writeU64(out, FILE_ONE_MAGIC.length, f.size);
  return out;
}

/** Decodes either encoding; a one-chunk index record needs its id (`expect`, the key's). */
export function decodeFileRecord(buf: Buffer, expect?: Id): FileRecord {
  const fail = (why: string): never => { throw new MiqError('MIQ_CORRUPT', `file record ${expect ?? '?'} is malformed: ${why}`, { details: { id: expect } }); };
  if (buf.length === FILE_ONE_LEN && buf.subarray(0, FILE_ONE_MAGIC.length).equals(FILE_ONE_MAGIC)) {
    if (expect === undefined) fail('a one-chunk record read without its id');
    const size = readU64(buf, FILE_ONE_MAGIC.length);
    if (size <= 0 || size > 0xffffffff) fail('one-chunk record of a size no chunk has');
    return { id: expect!, size, chunks: [{ id: expect!, length: size }] };
  }
  if (buf.length < 52 || !buf.subarray(0, 8).equals(FILE_MAGIC)) fail('bad magic');
  const id = idFromBytes(buf.subarray(8, 40));
  if (expect !== undefined && id !== expect) fail('id mismatch');
  const size = readU64(buf, 40);
  const n = buf.readUInt32BE(48);
  if (buf.length !== 52 + n * 36) fail('length mismatch');
  const chunks: ChunkRef[] = [];
  let o = 52, total = 0;
  for (let i = 0; i < n; i++) {
    const length = buf.readUInt32BE(o + 32);
    chunks.push({ id: idFromBytes(buf.subarray(o, o + 32)), length });
    total += length;
    o += 36;
  }
  if (total !== size) fail('chunk lengths do not add up');
  return { id, size, chunks };
}

/** Canonical JSON: keys sorted, no whitespace. Used for store path records and signatures. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

export function encodeStorePath(r: StorePathRecord): Buffer {
  return Buffer.from(canonicalJson({ format: STORE_PATH_FORMAT, ...r, references: [...r.references].sort() }));
}

/** The bytes a signature covers: the record without its signatures. */
export function signedBytes(r: StorePathRecord): Buffer {
  return encodeStorePath({ ...r, signatures: [] });
}

export function decodeStorePath(buf: Buffer): StorePathRecord {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(buf.toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new MiqError('MIQ_CORRUPT', 'store path record is not valid JSON', { cause: e });
  }
  if (v.format !== STORE_PATH_FORMAT) throw new MiqError('MIQ_FORMAT', `store path record has format ${String(v.format)}; this miq reads format ${STORE_PATH_FORMAT}: upgrade miq`);
  const { format: _f, ...rest } = v;
  const r = rest as unknown as StorePathRecord;
  if (typeof r.path !== 'string' || !isId(String(r.key)) || !isId(String(r.tree))) throw new MiqError('MIQ_CORRUPT', 'store path record is missing fields');
  return r;
}

function writeU64(buf: Buffer, o: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new MiqError('MIQ_BAD_INPUT', `size ${v} out of range`);
  const hi = Math.floor(v / 0x100000000), lo = v >>> 0;
  buf[o] = hi >>> 24; buf[o + 1] = (hi >>> 16) & 0xff; buf[o + 2] = (hi >>> 8) & 0xff; buf[o + 3] = hi & 0xff;
  buf[o + 4] = lo >>> 24; buf[o + 5] = (lo >>> 16) & 0xff; buf[o + 6] = (lo >>> 8) & 0xff; buf[o + 7] = lo & 0xff;
}

function readU64(buf: Buffer, o: number): number {
  return buf.readUInt32BE(o) * 0x100000000 + buf.readUInt32BE(o + 4);
}

export function treeId(entries: readonly TreeEntry[]): { id: Id; bytes: Buffer } {
  const bytes = encodeTree(entries);
  return { id: idOf(bytes), bytes };
}
