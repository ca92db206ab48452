import type { Command } from 'commander';
import { install, remove, upgrade, why, type InstallEvent, type InstallResult } from '../packages/install.js';
import { fmtBytes, globals, printJson, progressLine, withStore } from './context.js';

type O = { profile: string; json?: boolean; jobs?: string };

function report(r: InstallResult, o: O): void {
  if (o.json) return printJson(r);
  const w = process.stdout;
  w.write(`${r.profile}: generation ${r.generation}${r.previous === undefined ? '' : ` (was ${r.previous})`}: ${r.packages} packages for ${r.world.join(' ') || '(essential set)'}; ${r.fetched} unpacked now (${fmtBytes(r.downloadedBytes)} downloaded), ${r.added.length} store paths added, ${r.removed.length} removed; ${r.seconds.total.toFixed(1)} s\n`);
  for (const t of r.triggers) w.write(`  trigger ${t.name}: ${t.cached ? 'cached' : `ran in ${t.seconds.toFixed(1)} s`}${t.note ? ` (${t.note})` : ''}\n`);
  if (r.uncoveredScripts.length) w.write(`  maintainer scripts not run and not covered by a trigger: ${r.uncoveredScripts.join(' ')}\n`);
}

function progress(cmd: Command, o: O): { onEvent(e: InstallEvent): void; done(): void } {
  const bar = progressLine({ ...globals(cmd), json: o.json });
  return {
    onEvent: (e) => bar.update(e.phase === 'fetch' ? `fetch and unpack ${e.done}/${e.total} ${e.name ?? ''}` : e.phase),
    done: () => bar.done(),
  };
}

const jobs = (o: O): number | undefined => (o.jobs ? Math.max(1, Number(o.jobs) || 1) : undefined);

export function register(program: Command): void {
  program.command('install')
    .description('install packages by name from the repositories into a profile (resolved, fetched, checked, unpacked, triggers, one atomic switch)')
    .argument('<packages...>', 'package names, or name=version')
    .option('--profile <name>', 'profile', 'system')
    .option('--jobs <n>', 'packages fetched and unpacked at once (default 6)')
    .option('--json', 'one JSON object')
    .action(async (pkgs: string[], o: O, cmd: Command) => {
      const p = progress(cmd, o);
      const r = await withStore(globals(cmd), (s) => install(s, o.profile, pkgs, { onEvent: p.onEvent, jobs: jobs(o) }));
      p.done();
      report(r, o);
    });

  program.command('remove')
    .description('remove packages you asked for; what nothing else needs goes too')
    .argument('<packages...>')
    .option('--profile <name>', 'profile', 'system')
    .option('--json', 'one JSON object')
    .action(async (pkgs: string[], o: O, cmd: Command) => {
      const p = progress(cmd, o);
      const r = await withStore(globals(cmd), (s) => remove(s, o.profile, pkgs, { onEvent: p.onEvent }));
      p.done();
      report(r, o);
    });

  program.command('upgrade')
    .description("re-resolve the profile's packages against the current repository indexes")
    .option('--profile <name>', 'profile', 'system')
    .option('--json', 'one JSON object')
    .action(async (o: O, cmd: Command) => {
      const p = progress(cmd, o);
      const r = await withStore(globals(cmd), (s) => upgrade(s, o.profile, { onEvent: p.onEvent }));
      p.done();
      report(r, o);
    });

  program.command('why')
    .description('why a package is in the profile: the chain from what you asked for')
    .argument('<package>')
    .option('--profile <name>', 'profile', 'system')
    .option('--json', 'one JSON object')
    .action(async (name: string, o: O, cmd: Command) => {
      const r = await withStore(globals(cmd), (s) => why(s, o.profile, name));
      if (o.json) return printJson(r);
      if (r.chain.length === 0) return void process.stdout.write(`${r.name} ${r.version}: you asked for it\n`);
      let line = `${r.name} ${r.version}`;
      for (const c of r.chain) line += `\n  <- ${c.name} (${c.via})`;
      process.stdout.write(`${line}\n  (asked for)\n`);
    });
}
