/**
 * The LevelDB key schema (golden-tested). Keys are UTF-8 strings with a one-letter namespace.
 *   F              format header (JSON)
 *   c/<id>         chunk location (21 bytes, see pack.ts)
 *   f/<id>         file record
 *   t/<id>         tree encoding
 *   p/<path>       store path record
 *   r/<id>         reference candidates of a file (the 32-hex runs after '-' in its bytes),
 *                  newline-separated; only for files that have any. Lets a re-ingest that skips
 *                  reading a known file still find its references.
 *   l/<rel path>   the last file id ingested at that path relative to an ingest root (latin1 of
 *                  the raw path bytes): the base for delta compression of its next version.
 *                  The id as 32 bytes since format 3 (64 hex characters before; both read)
 *   s/<dev>.<ino>  stat cache: fingerprint of (dev, ino, size, mtime, ctime) and the file id last
 *                  read from that inode (ingest-statcache.ts); lets an ingest skip unchanged files
 *   m/<key>        small mutable records: roots, profiles, pointers (MetaStore)
 */
export const K_FORMAT = 'F';
export const kChunk = (id: string): string => `c/${id}`;
export const kFile = (id: string): string => `f/${id}`;
export const kTree = (id: string): string => `t/${id}`;
export const kRefs = (id: string): string => `r/${id}`;
export const kLast = (rel: string): string => `l/${rel}`;
export const kStat = (inode: string): string => `s/${inode}`;
export const kPath = (p: string): string => `p/${p}`;
export const kMeta = (k: string): string => `m/${k}`;
export { ROOT_PREFIX } from './api.js';

/** An `l/` value: the file id in 32 bytes (format 3; a third of what the hex was per entry). */
export const encodeLastFile = (id: string): Buffer => Buffer.from(id, 'hex');
/** The id an `l/` value names, in either form (32 bytes, or the 64 hex characters of format 2). */
export const decodeLastFile = (v: Buffer | undefined): string | undefined => (v === undefined ? undefined : v.length === 32 ? v.toString('hex') : v.toString('latin1'));
/** Range bounds for a namespace prefix: all keys k with prefix <= k < prefix + '\xff'. */
export const range = (prefix: string): { gte: string; lt: string } => ({ gte: prefix, lt: `${prefix}\xff` });
