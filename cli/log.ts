import type { Command } from 'commander';
import { readBuildLog } from '../builder/log.js';
import { globals, withStore } from './context.js';

export function register(program: Command): void {
  program
    .command('log')
    .description('print the build log of a built store path')
    .argument('<path>', 'store path (<name>-<hash>, or any path inside one)')
    .action(async (path: string, _o: unknown, cmd: Command) => {
      const log = await withStore(globals(cmd), (store) => readBuildLog(store, path));
      process.stdout.write(log);
    });
}
