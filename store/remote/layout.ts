/**
 * The remote layout (DESIGN §8) and the on-the-wire chunk encoding. Pure: names and bytes only.
 *
 *   chunks/<2 hex>/<id>      one byte flag (0 raw, 1 zstd) + body; id = BLAKE3(plain)
 *   objects/<2 hex>/<id>     trees (id = BLAKE3(bytes)), file records (id = file content id,
 *                            vouched for by a signed per-path index), file indexes
 *   paths/<name>-<h>         signed remote path document (record + index id)
 *   profiles/<name>          signed pointer with a sequence number
 *   bundles/<2 hex>/<tree>-<k>   a directory's small files' chunks, for fewer round trips
 *   treepacks/<2 hex>/<tree>     every tree under a root, ditto (both: see below)
 *   hints/<2 hex>/<tree>         chunk ids a program's start read, to prefetch (see below)
 */
import { compress } from 'zstd-napi';
import { createRequire } from 'node:module';
import { MiqError } from '../errors.js';
import { type Id, idFromBytes, idOf, idToBytes } from '../ids.js';
import { checkPathName, parseStorePath } from '../objects.js';

// binding.js assigns module.exports at run time, so ESM sees only `default`: load it as CJS.
const zbinding = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof import('zstd-napi/binding.js');

export const chunkPath = (id: Id): string => `chunks/${id.slice(0, 2)}/${id}`;
export const objectPath = (id: Id): string => `objects/${id.slice(0, 2)}/${id}`;
export function pathDocPath(p: string): string {
  parseStorePath(p);
  return `paths/${p}`;
}
export function profilePath(name: string): string {
  return `profiles/${checkPathName(name)}`;
}

const RAW = 0;
const ZSTD = 1;

/** Compresses when that saves space, so a stored chunk is never longer than plain + 1 byte:
 * the client can cut any body at that size. */
export function encodeChunk(plain: Buffer): Buffer {
  if (plain.length >= 64) {
    const z = compress(plain, { compressionLevel: 3 });
    if (z.length + 1 < plain.length) return Buffer.concat([Buffer.from([ZSTD]), z]);
  }
  return Buffer.concat([Buffer.from([RAW]), plain]);
}

let dctx: InstanceType<typeof zbinding.DCtx> | undefined;

/**
 * Decodes and verifies a stored chunk. `length` is the expected plain length when known (from a
 * file record); otherwise `maxPlain` bounds the output so a hostile frame header cannot make us
 * allocate gigabytes.
 */
export function decodeChunk(id: Id, stored: Buffer, length: number | undefined, maxPlain: number): Buffer {
  const corrupt = (why: string): never => {
    throw new MiqError('MIQ_CORRUPT', `chunk ${id} from the remote is corrupt: ${why}`, { details: { id } });
  };
  if (stored.length === 0) corrupt('empty body');
  let plain: Buffer;
  if (stored[0] === RAW) {
    plain = stored.subarray(1);
  } else if (stored[0] === ZSTD) {
    const body = stored.subarray(1);
    let size = length;
    if (size === undefined) {
      let declared: number | null = null;
      try {
        declared = zbinding.getFrameContentSize(body);
      } catch {
        corrupt('bad zstd frame');
      }
      if (declared === null || declared > maxPlain) corrupt(`zstd frame declares ${String(declared)} bytes, limit ${maxPlain}`);
      size = declared!;
    }
    if (size > maxPlain) corrupt(`length ${size} over limit ${maxPlain}`);
    const out = Buffer.allocUnsafe(size);
    let n = -1;
    try {
      dctx ??= new zbinding.DCtx();
      n = dctx.decompress(out, body);
    } catch (e) {
      corrupt(`zstd: ${(e as Error).message}`);
    }
    plain = out.subarray(0, n);
  } else {
    return corrupt(`unknown flag ${stored[0]}`);
  }
  if (length !== undefined && plain.length !== length) corrupt(`length ${plain.length}, expected ${length}`);
  if (idOf(plain) !== id) corrupt('bytes do not hash to the id');
  return plain;
}

// --- bundles ------------------------------------------------------------------------------------
//
// A directory's small files, fetched one by one, cost a round trip each; a program starting up
// reads dozens of them (python's imports, a shell's rc files) one after another. So push also
// writes each tree's small single-chunk files as *bundles*: `bundles/<2 hex>/<tree id>-<part>`,
// the same encoded chunks back to back behind a table of (id, stored length). The chunk files stay
// (other readers and `miq fetch` use them); a bundle is a transport, not a source of truth: every
// chunk in it is verified against its id like any other, and a missing or wrong bundle only costs
// the client a fallback to the single chunk files.
//
// Which files go to which part follows from the tree alone, so a client needs no map: in tree
// order, every file/exe entry of 1..BUNDLE_FILE_MAX bytes is a candidate, and a new part starts
// when the candidates' plain bytes would pass BUNDLE_PART_MAX. Multi-chunk candidates (possible
// with small chunk settings) still count towards the split but are left out of the bundle.

export const BUNDLE_FILE_MAX = 128 * 1024;
export const BUNDLE_PART_MAX = 1024 * 1024;
const BUNDLE_MAGIC = Buffer.from('miqbndl1');

export const bundlePath = (tree: Id, part: number): string => `bundles/${tree.slice(0, 2)}/${tree}-${part}`;

export interface BundlePart {
  readonly part: number;
  readonly members: readonly { id: Id; size: number }[];
}

/** The bundle parts of a tree (see above); parts with no candidate are not made. */
export function bundleParts(entries: readonly { kind: string; size: number; id?: Id }[]): BundlePart[] {
  const parts: { part: number; members: { id: Id; size: number }[] }[] = [];
  let cur: { part: number; members: { id: Id; size: number }[] } | undefined;
  let bytes = 0;
  const seen = new Set<Id>();
  for (const e of entries) {
    if ((e.kind !== 'file' && e.kind !== 'exe') || !e.id || e.size < 1 || e.size > BUNDLE_FILE_MAX || seen.has(e.id)) continue;
    seen.add(e.id);
    if (!cur || bytes + e.size > BUNDLE_PART_MAX) {
      cur = { part: parts.length, members: [] };
      parts.push(cur);
      bytes = 0;
    }
    cur.members.push({ id: e.id, size: e.size });
    bytes += e.size;
  }
  return parts;
}

/** Table (magic, count, then id + stored length per chunk) and the encoded chunks in that order. */
export function encodeBundle(chunks: readonly { id: Id; stored: Buffer }[]): Buffer {
  return encodeTable(BUNDLE_MAGIC, chunks);
}

function encodeTable(magic: Buffer, items: readonly { id: Id; stored: Buffer }[]): Buffer {
  const head = Buffer.allocUnsafe(magic.length + 4 + items.length * 36);
  let o = magic.copy(head, 0);
  o = head.writeUInt32BE(items.length, o);
  for (const c of items) {
    o += idToBytes(c.id).copy(head, o);
    o = head.writeUInt32BE(c.stored.length, o);
  }
  return Buffer.concat([head, ...items.map((c) => c.stored)]);
}

/** The largest bundle of a part whose members are all in it (plain + flag byte each, and the table). */
export function bundleMaxBytes(p: BundlePart): number {
  return BUNDLE_MAGIC.length + 4 + p.members.reduce((a, m) => a + 36 + m.size + 1, 0);
}

/** Splits a bundle into (id, stored chunk) pairs; the chunks still need decodeChunk. */
export function splitBundle(b: Buffer, what: string): { id: Id; stored: Buffer }[] {
  return splitTable(BUNDLE_MAGIC, b, `bundle ${what}`);
}

function splitTable(magic: Buffer, b: Buffer, what: string): { id: Id; stored: Buffer }[] {
  const bad = (why: string): never => { throw new MiqError('MIQ_CORRUPT', `${what} from the remote is malformed: ${why}`); };
  if (b.length < magic.length + 4 || !b.subarray(0, magic.length).equals(magic)) bad('bad magic');
  const n = b.readUInt32BE(magic.length);
  let o = magic.length + 4;
  let body = o + n * 36;
  if (body > b.length) bad(`table of ${n} entries does not fit in ${b.length} bytes`);
  const out: { id: Id; stored: Buffer }[] = [];
  for (let i = 0; i < n; i++, o += 36) {
    const id = idFromBytes(b.subarray(o, o + 32));
    const len = b.readUInt32BE(o + 32);
    if (body + len > b.length) bad(`entry ${i} runs past the end`);
    out.push({ id, stored: b.subarray(body, body + len) });
    body += len;
  }
  if (body !== b.length) bad(`${b.length - body} bytes after the last entry`);
  return out;
}

// --- tree packs ---------------------------------------------------------------------------------
//
// Every tree under a root, in one file: `treepacks/<2 hex>/<root tree id>`, a table of (id, length)
// and the encoded trees. A mount loads a profile's whole directory structure before it switches to
// it; one request instead of a round trip per directory level. Like a bundle, a pack is only a
// transport: each tree in it is checked against its id, and a missing pack means the tree files.

export const TREE_PACK_MAX = 16 * 1024 * 1024;
const TREE_PACK_MAGIC = Buffer.from('miqtpak1');

export const treePackPath = (root: Id): string => `treepacks/${root.slice(0, 2)}/${root}`;

export function encodeTreePack(trees: readonly { id: Id; bytes: Buffer }[]): Buffer {
  return encodeTable(TREE_PACK_MAGIC, trees.map((t) => ({ id: t.id, stored: t.bytes })));
}

export function splitTreePack(b: Buffer, what: string): { id: Id; stored: Buffer }[] {
  return splitTable(TREE_PACK_MAGIC, b, `tree pack ${what}`);
}

// --- prefetch hints -----------------------------------------------------------------------------
//
// `hints/<2 hex>/<tree id>`: the chunk ids a program's start read from a lazy mount of that
// profile tree, in first-read order (recorded by `miq mount --record-hints`, published by `miq push
// --hints`). A client that mounts the tree fetches them in the background, many at once, instead
// of one round trip per file as the program asks (the eStargz / CernVM-FS prefetch-list idea).
// Advisory only: every chunk is still checked against its id, and a bad list costs bandwidth.

export const HINTS_MAX_IDS = 32768;
const HINTS_MAGIC = Buffer.from('miqhint1');

export const hintsPath = (tree: Id): string => `hints/${tree.slice(0, 2)}/${tree}`;
export const hintsMaxBytes = (): number => HINTS_MAGIC.length + 4 + HINTS_MAX_IDS * 32;

export function encodeHints(ids: readonly Id[]): Buffer {
  const list = ids.slice(0, HINTS_MAX_IDS);
  const out = Buffer.allocUnsafe(HINTS_MAGIC.length + 4 + list.length * 32);
  let o = HINTS_MAGIC.copy(out, 0);
  o = out.writeUInt32BE(list.length, o);
  for (const id of list) o += idToBytes(id).copy(out, o);
  return out;
}

export function decodeHints(b: Buffer, what: string): Id[] {
  if (b.length < HINTS_MAGIC.length + 4 || !b.subarray(0, HINTS_MAGIC.length).equals(HINTS_MAGIC)) {
    throw new MiqError('MIQ_CORRUPT', `${what} is not a miq hints file (no miqhint1 header)`);
  }
  const n = b.readUInt32BE(HINTS_MAGIC.length);
  if (n > HINTS_MAX_IDS || b.length !== HINTS_MAGIC.length + 4 + n * 32) throw new MiqError('MIQ_CORRUPT', `${what} is malformed: ${n} ids in ${b.length} bytes`);
  const out: Id[] = [];
  for (let o = HINTS_MAGIC.length + 4; o < b.length; o += 32) out.push(idFromBytes(b.subarray(o, o + 32)));
  return out;
}
