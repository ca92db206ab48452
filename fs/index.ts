/** The fs layer's face (what mount/ may import): views over a store and the FUSE operations. */
export { ERRNO, FsError, toErrno, type ErrnoName, type Logger } from './errno.js';
export { createOps, statOf, XATTR_ID, XATTR_PATH, type FsOps, type OpsHandle, type OpsOptions, type Stat } from './ops.js';
export { ChunkReader, openFile, type ChunkReaderOptions, type OpenFile } from './reader.js';
export { TreeCache, displayName, escapedKey, type IndexedTree } from './trees.js';
export * from './views.js';
export { Inodes, OP, ROOT_INO, type InodeOptions, type Replier, type UsrSource } from './inodes.js';
export { Recall, recallBytes, recallPath, type Recalled } from './recall.js';
