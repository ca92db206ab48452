/**
 * A deterministic tar stream of a stored tree: POSIX ustar headers, PAX records only where ustar
 * cannot hold a value (long or non-ASCII names, long link targets, sizes of 8 GiB and more).
 * Every entry has mtime 0, owner 0:0 ("root"), mode 0755 (directories, executables), 0644 (files)
 * or 0777 (symlinks), and entries come in byte order of their names, depth first: the bytes
 * depend on the tree id alone, so the same generation always gives the same digest.
 */
import type { ObjectReader } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import { IdHasher, type Id } from '../store/ids.js';

const BLOCK = 512;
const MAX_OCTAL_SIZE = 0o77777777777;

/** Where the bytes go: a sink that may apply back-pressure by returning a promise. */
export type TarSink = (b: Buffer) => Promise<void> | void;

export interface TarStats { files: number; dirs: number; symlinks: number; bytes: number; size: number }

type Kind = 'dir' | 'file' | 'exe' | 'symlink';

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0');
}

function paxRecord(key: string, value: Buffer): Buffer {
  // "<len> <key>=<value>\n" where <len> counts itself: grow until the count is stable.
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function isPlainAscii(b: Buffer): boolean {
  for (const c of b) if (c < 0x20 || c > 0x7e) return false;
  return true;
}

/** Splits a name into ustar's prefix (≤155) and name (≤100) at a slash, if it can. */
function ustarSplit(name: Buffer): { prefix: Buffer; name: Buffer } | undefined {
  if (!isPlainAscii(name)) return undefined;
  if (name.length <= 100) return { prefix: Buffer.alloc(0), name };
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== 0x2f) continue;
    if (i > 155) continue;
    if (name.length - i - 1 > 100) return undefined;
    if (name.length - i - 1 === 0) continue;
    return { prefix: name.subarray(0, i), name: name.subarray(i + 1) };
  }
  return undefined;
}

function header(o: { name: Buffer; prefix: Buffer; mode: number; size: number; type: string; link: Buffer }): Buffer {
  const h = Buffer.alloc(BLOCK);
  o.name.copy(h, 0, 0, Math.min(100, o.name.length));
  h.write(octal(o.mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(o.size, 12), 124, 'ascii');
  h.write(octal(0, 12), 136, 'ascii');
  h.write(' '.repeat(8), 148, 'ascii');
  h.write(o.type, 156, 'ascii');
  o.link.copy(h, 157, 0, Math.min(100, o.link.length));
  h.write('ustar\u000000', 257, 'binary');
  const owner = o.type === 'x' ? '' : 'root';
  h.write(owner, 265, 'ascii');
  h.write(owner, 297, 'ascii');
  h.write(octal(0, 8), 329, 'ascii');
  h.write(octal(0, 8), 337, 'ascii');
  o.prefix.copy(h, 345, 0, Math.min(155, o.prefix.length));
  let sum = 0;
  for (const c of h) sum += c;
  h.write(`${octal(sum, 7)}\u0000`, 148, 'binary');
  return h;
}

function pad(n: number): Buffer {
  const r = n % BLOCK;
  return Buffer.alloc(r === 0 ? 0 : BLOCK - r);
}

/** The header blocks (a PAX header first when needed) of one entry. */
export function entryHeader(name: Buffer, kind: Kind, size: number, target?: Buffer): Buffer {
  const full = kind === 'dir' ? Buffer.concat([name, Buffer.from('/')]) : name;
  const link = target ?? Buffer.alloc(0);
  const split = ustarSplit(full);
  const pax: Buffer[] = [];
  if (!split) pax.push(paxRecord('path', full));
  if (link.length > 100 || !isPlainAscii(link)) pax.push(paxRecord('linkpath', link));
  if (size > MAX_OCTAL_SIZE) pax.push(paxRecord('size', Buffer.from(String(size))));
  const mode = kind === 'dir' || kind === 'exe' ? 0o755 : kind === 'symlink' ? 0o777 : 0o644;
  const type = kind === 'dir' ? '5' : kind === 'symlink' ? '2' : '0';
  const main = header({
    name: split ? split.name : full.subarray(0, 100),
    prefix: split ? split.prefix : Buffer.alloc(0),
    mode, size: size > MAX_OCTAL_SIZE ? 0 : size, type,
    link: link.length > 100 || !isPlainAscii(link) ? link.subarray(0, 100) : link,
  });
  if (pax.length === 0) return main;
  const body = Buffer.concat(pax);
  // The PAX header's own name is informational; a fixed one keeps the bytes deterministic.
  const ph = header({ name: Buffer.from('PaxHeader'), prefix: Buffer.alloc(0), mode: 0o644, size: body.length, type: 'x', link: Buffer.alloc(0) });
  return Buffer.concat([ph, body, pad(body.length), main]);
}

/** Writes the tree `root` as a tar stream into `sink`, each file's bytes verified against its id
 * before the next entry (a corrupt chunk fails the export with MIQ_CORRUPT, never wrong bytes). */
export async function writeTreeTar(store: ObjectReader, root: Id, sink: TarSink): Promise<TarStats> {
  const st: TarStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0, size: 0 };
  const put = async (b: Buffer): Promise<void> => {
    if (b.length === 0) return;
    st.size += b.length;
    await sink(b);
  };
  const walk = async (tree: Id, prefix: Buffer): Promise<void> => {
    const t = await store.getTree(tree);
    if (!t) throw new MiqError('MIQ_MISSING', `tree ${tree} is missing from the store; run \`miq verify\``, { details: { id: tree, kind: 'tree' } });
    const entries = [...t.entries].sort((a, b) => Buffer.compare(a.name, b.name));
    for (const e of entries) {
      const name = prefix.length ? Buffer.concat([prefix, Buffer.from('/'), e.name]) : e.name;
      if (e.kind === 'dir') {
        await put(entryHeader(name, 'dir', 0));
        st.dirs++;
        await walk(e.id!, name);
      } else if (e.kind === 'symlink') {
        await put(entryHeader(name, 'symlink', 0, e.target!));
        st.symlinks++;
      } else {
        const rec = await store.getFile(e.id!);
        if (!rec) throw new MiqError('MIQ_MISSING', `file ${e.id} is missing from the store; run \`miq verify\``, { details: { id: e.id, kind: 'file' } });
        await put(entryHeader(name, e.kind, rec.size));
        const h = new IdHasher();
        let pos = 0;
        for (const c of rec.chunks) {
          const b = await store.readFile(rec, pos, c.length);
          h.update(b);
          await put(b);
          pos += b.length;
        }
        if (pos !== rec.size || h.digest() !== rec.id) throw new MiqError('MIQ_CORRUPT', `file ${rec.id} does not match its hash`, { details: { id: rec.id, kind: 'file' } });
        await put(pad(rec.size));
        st.files++;
        st.bytes += rec.size;
      }
    }
  };
  await walk(root, Buffer.alloc(0));
  await put(Buffer.alloc(2 * BLOCK));
  return st;
}
