/**
 * Signed documents of a remote. Pure: bytes in, values out; signatures checked against the
 * trusted keys handed in.
 *
 * A tree names its files by content id, and a multi-chunk file record cannot be checked against
 * that id without fetching the whole file. So every path document carries the id of a *file
 * index* (file id → BLAKE3 of its record bytes) and the signature covers it: a record from the
 * remote is then verified before use, as every chunk and tree is.
 */
import { MiqError } from '../errors.js';
import { type Id, idFromBytes, idOf, idToBytes, isId } from '../ids.js';
import { canonicalJson, checkPathName, decodeStorePath, encodeStorePath, parseStorePath, signedBytes, type Signature, type StorePathRecord } from '../objects.js';
import { checkSigned, signBytes, type SigningKey, type TrustedKey } from './keys.js';

const PATH_FORMAT = 'miq-remote-path-1';
const POINTER_FORMAT = 'miq-pointer-1';
const INDEX_MAGIC = Buffer.from('miqfidx1');
/** Documents are small; anything bigger is a hostile or broken server. */
export const MAX_DOC_BYTES = 4 * 1024 * 1024;

export interface PathDoc {
  readonly record: StorePathRecord;
  /** Object id of the file index, or null when the path has no multi-chunk files. */
  readonly index: Id | null;
  readonly signatures: readonly Signature[];
}

function pathPayload(record: StorePathRecord, index: Id | null): Buffer {
  return Buffer.concat([Buffer.from(`${PATH_FORMAT}\n`), signedBytes(record), Buffer.from(`\n${index ?? '-'}`)]);
}

/** Signs the record itself (so it can go into a local store as is) and the document. */
export function makePathDoc(record: StorePathRecord, index: Id | null, key: SigningKey | undefined): Buffer {
  let rec = record;
  const sigs: Signature[] = [];
  if (key) {
    const own = signBytes(key, signedBytes(record));
    rec = { ...record, signatures: [...record.signatures.filter((s) => s.keyName !== key.name), own] };
    sigs.push(signBytes(key, pathPayload(rec, index)));
  }
  return Buffer.from(canonicalJson({ format: PATH_FORMAT, record: JSON.parse(encodeStorePath(rec).toString('utf8')), index, signatures: sigs }));
}

export function parsePathDoc(bytes: Buffer, path: string, trusted: readonly TrustedKey[]): PathDoc {
  const what = `store path ${path} from the remote`;
  let v: { format?: unknown; record?: unknown; index?: unknown; signatures?: unknown };
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new MiqError('MIQ_CORRUPT', `${what} is not valid JSON`, { cause: e });
  }
  if (v?.format !== PATH_FORMAT) throw new MiqError('MIQ_FORMAT', `${what} has format ${String(v?.format)}; this miq reads ${PATH_FORMAT}`);
  const record = decodeStorePath(Buffer.from(JSON.stringify(v.record)));
  const index = v.index === null ? null : typeof v.index === 'string' && isId(v.index) ? v.index : undefined;
  if (index === undefined) throw new MiqError('MIQ_CORRUPT', `${what} has a malformed index id`);
  const { hash } = parseStorePath(path);
  if (record.path !== path || record.key.slice(0, 32) !== hash || `${record.name}-${hash}` !== path) {
    throw new MiqError('MIQ_CORRUPT', `${what} describes "${record.path}" instead`);
  }
  checkSigned(pathPayload(record, index), v.signatures as Signature[], trusted, what);
  return { record, index, signatures: v.signatures as Signature[] };
}

export interface Pointer {
  readonly profile: string;
  /** Grows by one per push; a client never goes back to a smaller one it has seen. */
  readonly sequence: number;
  readonly generation: number;
  readonly paths: readonly string[];
  /** The merged tree of the generation. */
  readonly tree: Id;
  readonly time: string;
  /** Members' conflict priorities other than the default (profiles.ts); absent when none. */
  readonly priorities?: Readonly<Record<string, number>>;
}

/** The priorities worth writing: none at all is the same as an empty map (and keeps pointers
 * without priorities byte-identical to those written before priorities existed). */
function prioritiesOf(p: Pointer): Record<string, number> | undefined {
  const e = Object.entries(p.priorities ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return e.length ? Object.fromEntries(e) : undefined;
}

function pointerBody(p: Pointer): Buffer {
  const pr = prioritiesOf(p);
  return Buffer.from(`${POINTER_FORMAT}\n${canonicalJson({ profile: p.profile, sequence: p.sequence, generation: p.generation, paths: [...p.paths].sort(), tree: p.tree, time: p.time, ...(pr ? { priorities: pr } : {}) })}`);
}

export function makePointer(p: Pointer, key: SigningKey | undefined): Buffer {
  const sigs = key ? [signBytes(key, pointerBody(p))] : [];
  const { priorities: _, ...rest } = p;
  const pr = prioritiesOf(p);
  return Buffer.from(canonicalJson({ format: POINTER_FORMAT, ...rest, paths: [...p.paths].sort(), ...(pr ? { priorities: pr } : {}), signatures: sigs }));
}

/** Parses without checking signatures (push reads its own destination's pointer). */
export function parsePointerUnchecked(bytes: Buffer, name: string): Pointer & { signatures: Signature[] } {
  const what = `pointer of profile ${name}`;
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new MiqError('MIQ_CORRUPT', `${what} is not valid JSON`, { cause: e });
  }
  if (v?.format !== POINTER_FORMAT) throw new MiqError('MIQ_FORMAT', `${what} has format ${String(v?.format)}; this miq reads ${POINTER_FORMAT}`);
  const ok = v.profile === name && Number.isSafeInteger(v.sequence) && (v.sequence as number) >= 1 && Number.isSafeInteger(v.generation)
    && Array.isArray(v.paths) && v.paths.every((p) => typeof p === 'string') && typeof v.tree === 'string' && isId(v.tree) && typeof v.time === 'string';
  if (!ok) throw new MiqError('MIQ_CORRUPT', `${what} is malformed or names another profile`);
  for (const p of v.paths as string[]) parseStorePath(p);
  const pr = v.priorities;
  if (pr !== undefined && (typeof pr !== 'object' || pr === null || Array.isArray(pr)
    || !Object.entries(pr).every(([k, n]) => (v.paths as string[]).includes(k) && Number.isSafeInteger(n)))) {
    throw new MiqError('MIQ_CORRUPT', `${what} has malformed priorities`);
  }
  return {
    profile: checkPathName(name), sequence: v.sequence as number, generation: v.generation as number,
    paths: v.paths as string[], tree: v.tree as Id, time: v.time as string, signatures: (v.signatures ?? []) as Signature[],
    ...(pr ? { priorities: pr as Record<string, number> } : {}),
  };
}

export function parsePointer(bytes: Buffer, name: string, trusted: readonly TrustedKey[]): Pointer {
  const { signatures, ...p } = parsePointerUnchecked(bytes, name);
  checkSigned(pointerBody(p), signatures, trusted, `pointer of profile ${name}`);
  return p;
}

/** file id → BLAKE3(record bytes), sorted by file id. */
export function encodeFileIndex(entries: ReadonlyMap<Id, Id>): Buffer {
  const ids = [...entries.keys()].sort();
  const out = Buffer.allocUnsafe(INDEX_MAGIC.length + 4 + ids.length * 64);
  let o = INDEX_MAGIC.copy(out, 0);
  out.writeUInt32BE(ids.length, o); o += 4;
  for (const id of ids) {
    o += idToBytes(id).copy(out, o);
    o += idToBytes(entries.get(id)!).copy(out, o);
  }
  return out;
}

export function decodeFileIndex(bytes: Buffer, expect: Id): Map<Id, Id> {
  if (idOf(bytes) !== expect) throw new MiqError('MIQ_CORRUPT', `file index ${expect} from the remote does not match its hash`, { details: { id: expect } });
  if (bytes.length < 12 || !bytes.subarray(0, 8).equals(INDEX_MAGIC) || bytes.length !== 12 + bytes.readUInt32BE(8) * 64) {
    throw new MiqError('MIQ_CORRUPT', `file index ${expect} is malformed`);
  }
  const m = new Map<Id, Id>();
  for (let o = 12; o < bytes.length; o += 64) m.set(idFromBytes(bytes.subarray(o, o + 32)), idFromBytes(bytes.subarray(o + 32, o + 64)));
  return m;
}
