/**
 * ed25519 keys (node:crypto). Text forms follow the Nix binary-cache convention:
 *   public  `<name>:<base64 of the 32 raw key bytes>`
 *   secret  `miq-secret-ed25519:<name>:<base64 PKCS#8 DER>`
 * A signature names its key, and a client checks it only against keys it trusts by that name.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MiqError, ioError } from '../errors.js';
import { checkPathName, type Signature } from '../objects.js';
import { mkdirp } from '../mkdirp.js';

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const SECRET_TAG = 'miq-secret-ed25519';

export interface SigningKey {
  readonly name: string;
  readonly key: KeyObject;
  readonly publicText: string;
}

export interface TrustedKey {
  readonly name: string;
  readonly key: KeyObject;
}

function publicText(name: string, pub: KeyObject): string {
  const der = pub.export({ format: 'der', type: 'spki' });
  return `${name}:${der.subarray(SPKI_PREFIX.length).toString('base64')}`;
}

/** Writes `<dir>/<name>.key` (mode 0600, refuses to overwrite) and `<dir>/<name>.pub`. */
export async function generateKey(dir: string, name: string): Promise<{ secretFile: string; publicFile: string; publicText: string }> {
  checkPathName(name);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const secretFile = join(dir, `${name}.key`);
  const publicFile = join(dir, `${name}.pub`);
  const pub = publicText(name, publicKey);
  const secret = `${SECRET_TAG}:${name}:${privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64')}\n`;
  await mkdirp(dirname(secretFile)).catch((e) => { throw ioError(e, 'cannot create the key folder', dirname(secretFile)); });
  for (const [file, text, mode] of [[secretFile, secret, 0o600], [publicFile, `${pub}\n`, 0o644]] as const) {
    let fh;
    try {
      fh = await open(file, 'wx', mode);
      await fh.writeFile(text);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new MiqError('MIQ_BAD_INPUT', `${file} already exists; not overwriting a key`);
      throw ioError(e, 'cannot write key file', file);
    } finally {
      await fh?.close();
    }
  }
  return { secretFile, publicFile, publicText: pub };
}

export function loadSigningKey(file: string): SigningKey {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw ioError(e, 'cannot read signing key', file);
  }
  const parts = text.split(':');
  if (parts.length !== 3 || parts[0] !== SECRET_TAG) throw new MiqError('MIQ_BAD_INPUT', `${file} is not a miq secret key (expected ${SECRET_TAG}:<name>:<base64>)`);
  try {
    const key = createPrivateKey({ key: Buffer.from(parts[2]!, 'base64'), format: 'der', type: 'pkcs8' });
    if (key.asymmetricKeyType !== 'ed25519') throw new MiqError('MIQ_BAD_INPUT', `${file} holds a ${String(key.asymmetricKeyType)} key, not ed25519`);
    return { name: checkPathName(parts[1]!), key, publicText: publicText(parts[1]!, createPublicKey(key)) };
  } catch (e) {
    throw new MiqError('MIQ_BAD_INPUT', `${file} holds an unreadable ed25519 key`, { cause: e });
  }
}

/** Parses `name:base64`, or reads it from a file when the argument names one. */
export function parseTrustedKey(spec: string): TrustedKey {
  let text = spec.trim();
  if (!/^[A-Za-z0-9+._-]+:[A-Za-z0-9+/=]{43,44}$/.test(text) && existsSync(text)) text = readFileSync(text, 'utf8').trim();
  const m = /^([A-Za-z0-9+._-]+):([A-Za-z0-9+/=]+)$/.exec(text);
  const raw = m ? Buffer.from(m[2]!, 'base64') : undefined;
  if (!m || raw!.length !== 32) throw new MiqError('MIQ_BAD_INPUT', `trusted key "${spec}" is neither <name>:<base64 of 32 bytes> nor a file holding one`);
  return { name: m[1]!, key: createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw!]), format: 'der', type: 'spki' }) };
}

/** Keys from the command line plus `<storeDir>/trusted-keys` (one per line, # comments). */
export function loadTrustedKeys(storeDir: string | undefined, specs: readonly string[] = []): TrustedKey[] {
  const all = [...specs];
  if (storeDir) {
    const file = join(storeDir, 'trusted-keys');
    if (existsSync(file)) {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        const t = line.replace(/#.*/, '').trim();
        if (t) all.push(t);
      }
    }
  }
  return all.map(parseTrustedKey);
}

export function signBytes(k: SigningKey, bytes: Buffer): Signature {
  return { keyName: k.name, sig: sign(null, bytes, k.key).toString('base64') };
}

/** Name of the first trusted key that signed `bytes`; MIQ_UNTRUSTED when there is none. */
export function checkSigned(bytes: Buffer, sigs: readonly Signature[] | undefined, trusted: readonly TrustedKey[], what: string): string {
  if (trusted.length === 0) throw new MiqError('MIQ_UNTRUSTED', `${what}: no trusted keys are configured (use --trusted-key NAME:KEY or <store>/trusted-keys)`);
  const names = new Set<string>();
  for (const s of Array.isArray(sigs) ? sigs : []) {
    if (typeof s?.keyName !== 'string' || typeof s?.sig !== 'string') continue;
    names.add(s.keyName);
    for (const t of trusted) {
      if (t.name !== s.keyName) continue;
      let ok = false;
      try {
        ok = verify(null, bytes, t.key, Buffer.from(s.sig, 'base64'));
      } catch {
        ok = false;
      }
      if (ok) return t.name;
      throw new MiqError('MIQ_UNTRUSTED', `${what}: the signature by "${s.keyName}" does not verify (tampered, or signed by a different key of that name)`);
    }
  }
  const by = names.size ? `signed only by ${[...names].map((n) => `"${n}"`).join(', ')}` : 'not signed';
  throw new MiqError('MIQ_UNTRUSTED', `${what} is ${by}; trusted: ${trusted.map((t) => `"${t.name}"`).join(', ')}`);
}
