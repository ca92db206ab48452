import type { Command } from 'commander';
import { readBuildLog, storePathOf } from '../builder/log.js';
import { MiqError, isMiqError } from '../store/errors.js';
import { followUntilGone, runningBuildLog } from './follow.js';
import { resolveStorePath } from '../store/resolve.js';
import { globals, storeDir, withStore } from './context.js';

export function register(program: Command): void {
  program
    .command('log')
    .description('print the build log of a built store path (or of its last failed build)')
    .argument('<path>', 'store path: NAME, NAME-HASH, a hash prefix, or a path inside one')
    .option('-f, --follow', 'a build running now (NAME or NAME-HASH): print its log as it is written, until the build ends; exit 0 if it built, 6 if not')
    .action(async (path: string, o: { follow?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const running = o.follow ? runningBuildLog(storeDir(g), path) : undefined;
      if (running) {
        await followUntilGone(running.file, running.pid, (b) => process.stdout.write(b));
        // The build removes its work directory after the ingest (or the failure) is recorded.
        // The build may still hold the store for a moment (its ingest, then closing).
        let built;
        for (let i = 0; ; i++) {
          try {
            built = await withStore(g, (store) => store.getStorePath(running.path));
            break;
          } catch (e) {
            if (!isMiqError(e, 'MIQ_STORE_LOCKED') || i >= 150) throw e;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
        if (!built) throw new MiqError('MIQ_BUILD_FAILED', `the build of ${running.path} ended without a result; \`miq log ${running.path}\` prints its kept log`);
        return;
      }
      const log = await withStore(g, async (store) => {
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
