/**
 * A package repository published beside the store paths (issue 14 §2): `repos/<name>` is a signed
 * pointer with a sequence number, like a profile's, naming the repository's verified index (a
 * store path whose closure is pushed with it) and carrying the repository's state record as the
 * publisher accepted it. A client with only the remote's URL and key learns every package
 * version's metadata from the index, and each package's store path is computed from that
 * metadata, so it can install without the distribution's mirror.
 *
 * The state is opaque here (the packages layer owns its shape); only `index` is looked at.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MiqError } from '../errors.js';
import { idOf, type Id } from '../ids.js';
import { canonicalJson, checkPathName, parseStorePath, type Signature } from '../objects.js';
import { writeAtomic } from './atomic.js';
import { MAX_DOC_BYTES } from './docs.js';
import { checkSigned, signBytes, type SigningKey, type TrustedKey } from './keys.js';
import { mkdirp } from '../mkdirp.js';
import { SeenPointers } from './seen.js';
import { openTransport, remoteFolder, type HttpOptions } from './transport.js';

const FORMAT = 'miq-repo-1';

export const repoDocPath = (name: string): string => `repos/${checkPathName(name)}`;

export interface RepoDoc {
  readonly repo: string;
  readonly sequence: number;
  /** The index store path (pushed with its closure). */
  readonly index: string;
  /** The repository's state record (packages/repo.ts RepoState), as JSON. */
  readonly state: Record<string, unknown>;
  readonly time: string;
}

function body(d: RepoDoc): Buffer {
  return Buffer.from(`${FORMAT}\n${canonicalJson({ repo: d.repo, sequence: d.sequence, index: d.index, state: d.state, time: d.time })}`);
}

export function makeRepoDoc(d: RepoDoc, key: SigningKey): Buffer {
  return Buffer.from(canonicalJson({ format: FORMAT, ...d, signatures: [signBytes(key, body(d))] }));
}

function parseUnchecked(bytes: Buffer, name: string): RepoDoc & { signatures: Signature[] } {
  const what = `repository ${name}`;
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new MiqError('MIQ_CORRUPT', `${what} on the remote is not valid JSON`, { cause: e });
  }
  if (v?.format !== FORMAT) throw new MiqError('MIQ_FORMAT', `${what} has format ${String(v?.format)}; this miq reads ${FORMAT}`);
  const ok = v.repo === name && Number.isSafeInteger(v.sequence) && (v.sequence as number) >= 1 && typeof v.index === 'string'
    && typeof v.state === 'object' && v.state !== null && !Array.isArray(v.state) && typeof v.time === 'string' && Array.isArray(v.signatures);
  if (!ok) throw new MiqError('MIQ_CORRUPT', `${what} is malformed or names another repository`);
  parseStorePath(v.index as string);
  return { repo: name, sequence: v.sequence as number, index: v.index as string, state: v.state as Record<string, unknown>, time: v.time as string, signatures: v.signatures as Signature[] };
}

/** Writes `repos/<name>` into a remote folder; a new sequence only when the index or state changed. */
export async function publishRepo(dest: string, name: string, index: string, state: Record<string, unknown>, key: SigningKey, durable = true): Promise<{ sequence: number; written: boolean }> {
  const dir = remoteFolder(dest);
  if (dir === undefined) throw new MiqError('MIQ_BAD_INPUT', `push writes to a directory, not ${dest}`);
  const file = join(dir, repoDocPath(name));
  const old = await readFile(file).then((b) => parseUnchecked(b, name), () => undefined);
  if (old && old.index === index && canonicalJson(old.state) === canonicalJson(state)) return { sequence: old.sequence, written: false };
  const sequence = (old?.sequence ?? 0) + 1;
  await mkdirp(join(dir, 'repos'));
  await writeAtomic(file, makeRepoDoc({ repo: name, sequence, index, state, time: new Date().toISOString() }, key), { sync: durable, what: 'cannot write the repository pointer' });
  return { sequence, written: true };
}

/** The remote's repository pointer, signature-checked and rollback-checked. */
export async function fetchRepo(location: string, name: string, o: { trusted: readonly TrustedKey[]; seenFile: string; http?: HttpOptions }): Promise<RepoDoc> {
  const t = openTransport(location, o.http);
  try {
    const bytes = await t.get(repoDocPath(name), MAX_DOC_BYTES);
    if (!bytes) throw new MiqError('MIQ_NOT_FOUND', `the remote ${location} publishes no repository "${name}" (push one with \`miq push DEST --repo ${name} --sign-key KEY\`)`);
    const { signatures, ...d } = parseUnchecked(bytes, name);
    checkSigned(body(d), signatures, o.trusted, `repository ${name}`);
    await new SeenPointers(o.seenFile).check(t.url, `repo:${name}`, d.sequence, idOf(body(d)) as Id);
    return d;
  } finally {
    await t.close();
  }
}
