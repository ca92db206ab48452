/**
 * The store's face: what other folders may import. A module listed here (re-exported whole or in
 * part) is public; every other store/ module is internal (test/layers.test.ts enforces it).
 */
export * from './api.js';
export * from './errors.js';
export * from './ids.js';
export * from './objects.js';
export { openStore } from './open.js';
export * as profiles from './profiles.js';
export { findStorePath, miqMountpoints, resolveStoreArg, resolveStorePath, splitStoreArg, type Resolved } from './resolve.js';
export { stageUsrMerged } from './usrmerge.js';
export { describeHolder, readHolder, type Holder } from './holder.js';
export { gcStore, markLive, type GcReport } from './gc.js';
export { TempRoots, TEMP_ROOT_PREFIX, tempRootOwnerAlive } from './temproots.js';
export { verifyStore, type Damage, type VerifyReport } from './verify.js';
export { storeStats, type PathStats, type StoreStats } from './stats.js';
export { exportFile, exportTree, type ExportStats } from './export.js';
export { watchIngest, type WatchEvent } from './watch.js';
export { mkdirp } from './mkdirp.js';
export { ByteLru, Lru, Mutex } from './lru.js';
export { FLAG_RAW, FLAG_ZSTD, FLAG_ZSTD_DICT, decodeChunk } from './codec.js';
export * as remote from './remote/index.js';
export { privateDir, runDirOf, storeViewsDir, viewsDir } from './private-dir.js';
export { chunkAt, chunkSpan, chunkStarts, copyPart, readRange } from './range.js';
export { PackFds, decodeVerified, preadStored } from './chunkread.js';
export { workerExecArgv, workerFlags } from './pool.js';
