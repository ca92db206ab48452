/** The packages layer's face (what cli/ may import): Debian repositories and queries over them. */
export * from './repo.js';
export * from './query.js';
export * from './resolve.js';
export * from './universe.js';
export * from './packed.js';
export * from './install.js';
export * from './published.js';
