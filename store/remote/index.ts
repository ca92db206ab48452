export { openRemote, parseSize, type OpenRemoteOptions } from './open.js';
export type { RemoteReader } from './reader.js';
export type { Pointer as RemotePointer } from './docs.js';
export { generateKey, loadSigningKey, loadTrustedKeys, parseTrustedKey, type SigningKey, type TrustedKey } from './keys.js';
export { push, type PushSource, type PushProfile, type PushOptions, type PushResult } from './push.js';
export { prefetch, type FetchSink, type FetchResult } from './fetch.js';
export type { HttpOptions } from './transport.js';
export { MemorySource, ingestToMemory } from './memory.js';
export { localSink } from './localsink.js';
