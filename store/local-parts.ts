/**
 * The insides of a LocalStore (LevelDB handle, packs, write lock), handed by LocalStore to the
 * store-internal modules that implement its operations (ingest, prune). Nothing outside store/
 * sees this: LocalStore keeps the object in a private field and the store's face (index.ts) does
 * not export it.
 */
import type { ClassicLevel } from 'classic-level';
import type { ObjectReader } from './api.js';
import type { ChunkParams } from './chunker.js';
import type { Id } from './ids.js';
import type { Mutex } from './lru.js';
import type { ChunkLocation, PackReader, PackWriter } from './pack.js';

export type Db = ClassicLevel<string, Buffer>;

export interface LocalParts {
  readonly dir: string;
  readonly db: Db;
  readonly packs: PackReader;
  readonly packDir: string;
  readonly params: ChunkParams;
  readonly writeLock: Mutex;
  /** The store's own verified reads. */
  readonly objects: ObjectReader;
  /** The pack writer, created on first write so read-only sessions make no pack. */
  packWriter(): Promise<PackWriter>;
  /** The pack this process is appending to, if any (gc must not repack it). */
  openPack(): number | undefined;
  /** Verified plain bytes of a chunk at a known location. */
  readAt(id: Id, loc: ChunkLocation): Promise<Buffer>;
}
