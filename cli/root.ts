import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
/** The checkout's root (dist/cli/root.js → ../..). */
export const ROOT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
