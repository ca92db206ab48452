import type { Command } from 'commander';
import { readBuildLog, storePathOf } from '../builder/log.js';
import { isMiqError } from '../store/errors.js';
import { resolveStorePath } from '../store/resolve.js';
import { globals, withStore } from './context.js';

export function register(program: Command): void {
  program
    .command('log')
    .description('print the build log of a built store path (or of its last failed build)')
    .argument('<path>', 'store path: NAME, NAME-HASH, a hash prefix, or a path inside one')
    .action(async (path: string, _o: unknown, cmd: Command) => {
      const log = await withStore(globals(cmd), async (store) => {
        try {
          return await readBuildLog(store, (await resolveStorePath(store, path)).path);
        } catch (e) {
          // A failed build made no store path, but its log is kept under the full NAME-HASH
          // its failure message printed.
          const full = isMiqError(e, 'MIQ_NOT_FOUND') ? (() => { try { return storePathOf(path); } catch { return undefined; } })() : undefined;
          if (full) return readBuildLog(store, full);
          throw e;
        }
      });
      process.stdout.write(log);
    });
}
