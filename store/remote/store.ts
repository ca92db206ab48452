/**
 * A remote (a folder written by `miq push`, or an http(s) URL serving one) as a read-only Store:
 * every read verified by the remote reader; writes and meta changes refused with MIQ_READ_ONLY.
 * It has no meta of its own (profiles on a remote are pointers, read with `getProfile`).
 */
import type { IngestResult, Store } from '../api.js';
import { MiqError } from '../errors.js';
import type { RemoteReader } from './reader.js';

export function readOnlyStore(remote: RemoteReader): Store {
  const refuse = async (what: string): Promise<never> => {
    throw new MiqError('MIQ_READ_ONLY', `the store at ${remote.url} is a remote, read-only here: cannot ${what}; write into a local store and \`miq push\` it`);
  };
  return {
    dir: remote.url,
    chunks: remote.chunks,
    open: async () => {},
    close: () => remote.close(),
    getFile: (id) => remote.getFile(id),
    getTree: (id) => remote.getTree(id),
    getStorePath: (p) => remote.getStorePath(p),
    listStorePaths: () => remote.listStorePaths(),
    readFile: (f, off, len) => remote.readFile(f, off, len),
    ingest: (): Promise<IngestResult> => refuse('ingest'),
    putTree: () => refuse('write a tree'),
    putBytes: () => refuse('write a file'),
    putStorePath: () => refuse('write a store path'),
    pin: () => refuse('pin'),
    unpin: () => refuse('unpin'),
    listRoots: async () => [],
    getMeta: async () => undefined,
    batchMeta: () => refuse('change its records'),
    listMeta: async () => [],
  };
}
