import type { Command } from 'commander';
import { readBuildLog } from '../builder/log.js';
import { resolveStorePath } from '../store/resolve.js';
import { globals, withStore } from './context.js';

export function register(program: Command): void {
  program
    .command('log')
    .description('print the build log of a built store path')
    .argument('<path>', 'store path: NAME, NAME-HASH, a hash prefix, or a path inside one')
    .action(async (path: string, _o: unknown, cmd: Command) => {
      const log = await withStore(globals(cmd), async (store) => readBuildLog(store, (await resolveStorePath(store, path)).path));
      process.stdout.write(log);
    });
}
