export * from './api.js';
export * from './errors.js';
export * from './ids.js';
export * from './objects.js';
export { openStore } from './open.js';

