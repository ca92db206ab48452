import type { Command } from 'commander';
import { MiqError } from '../store/errors.js';
import { gcStore } from '../store/gc.js';
import { resolveStorePath } from '../store/resolve.js';
import { checkKeyName } from './args.js';
import { count, fmtBytes, globals, onLocal, printJson, progressLine, withStore } from './context.js';

export function register(program: Command): void {
  program
    .command('gc')
    .description('delete what no pin or profile generation reaches; repack packs whose live share is low')
    .option('--dry-run', 'report what would be freed, change nothing')
    .option('--json', 'one JSON object')
    .action(async (o: { dryRun?: boolean; json?: boolean }, cmd: Command) => {
      const g = { ...globals(cmd), json: o.json };
      const bar = progressLine(g);
      const show = (e: unknown): void => {
        const p = e as { phase: string; done: number };
        bar.update(`gc: ${p.phase} ${p.done}`);
      };
      const r = await withStore(g, (s) => onLocal(s, 'gc', { dryRun: o.dryRun }, (ls) => gcStore(ls, { dryRun: o.dryRun, onProgress: (phase, done) => show({ phase, done }) }), show));
      bar.done();
      if (o.json) return printJson(r);
      const verb = r.dryRun ? 'would free' : 'freed';
      process.stdout.write(`${count(r.livePaths, 'live store path')} from ${count(r.roots, 'root')}; ${verb} ${count(r.deadPaths.length, 'store path')}, ${count(r.deadTrees, 'tree')}, ${count(r.deadFiles, 'file')}, ${count(r.deadChunks, 'chunk')}, ${fmtBytes(r.freedBytes)} on disk${r.dryRun ? '' : ` (${r.repackedPacks} packs repacked, ${r.removedPacks} removed)`}\n`);
      for (const p of r.deadPaths) process.stdout.write(`  ${r.dryRun ? 'would delete' : 'deleted'} ${p}\n`);
    });

  program
    .command('pin')
    .description('make a store path a GC root')
    .argument('<path>', 'store path')
    .option('--as <root>', 'root name (default: the store path)')
    .action(async (p: string, o: { as?: string }, cmd: Command) => {
      if (o.as !== undefined) checkKeyName(o.as, '--as');
      await withStore(globals(cmd), async (s) => {
        const r = await resolveStorePath(s, p);
        await s.pin(r.path, o.as);
        process.stdout.write(`pinned ${r.path}\n`);
      });
    });

  program
    .command('unpin')
    .description('remove a GC root (by root name or store path)')
    .argument('<path>', 'root name or store path')
    .action(async (p: string, _o: unknown, cmd: Command) => {
      await withStore(globals(cmd), async (s) => {
        if (await s.unpin(p)) return void process.stdout.write(`unpinned ${p}\n`);
        // Not a root name: the store path it names, by the rules every command uses.
        const r = await resolveStorePath(s, p).catch(() => undefined);
        if (!r || !(await s.unpin(r.path))) throw new MiqError('MIQ_NOT_FOUND', `no GC root named ${p}; \`miq roots\` lists them`);
        process.stdout.write(`unpinned ${r.path}\n`);
      });
    });

  program
    .command('roots')
    .description('list GC roots')
    .option('--json', 'one JSON array')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const roots = await withStore(globals(cmd), (s) => s.listRoots());
      if (o.json) printJson(roots);
      else for (const r of roots) process.stdout.write(`${r.root === r.path ? r.path : `${r.root} -> ${r.path}`}\n`);
    });
}
