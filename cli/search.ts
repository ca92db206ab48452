import type { Command } from 'commander';
import { searchPackages, showPackage } from '../packages/query.js';
import { globals, printJson, withStore } from './context.js';

type G = { json?: boolean };

export function register(program: Command): void {
  program.command('search')
    .description('search package names and descriptions in the repositories')
    .argument('<term>', 'a word or regular expression')
    .option('--names-only', 'match names only')
    .option('--json', 'one JSON array')
    .action(async (term: string, o: G & { namesOnly?: boolean }, cmd: Command) => {
      const hits = await withStore(globals(cmd), (s) => searchPackages(s, term, { namesOnly: o.namesOnly }));
      if (o.json) return printJson(hits);
      for (const h of hits) process.stdout.write(`${h.name} ${h.version} (${h.suite})\n  ${h.summary}\n`);
    });

  program.command('show')
    .description("a package's record from the repositories (name or name=version)")
    .argument('<pkg>')
    .option('--json', 'one JSON object')
    .action(async (spec: string, o: G, cmd: Command) => {
      const p = await withStore(globals(cmd), (s) => showPackage(s, spec));
      if (o.json) return printJson(p);
      for (const [k, v] of Object.entries(p.fields)) process.stdout.write(`${k}: ${v.replace(/\n/g, '\n ')}\n`);
      process.stdout.write(`Miq-Repository: ${p.repo} ${p.suite}\nMiq-Versions: ${p.versions.join(' ')}\n`);
    });
}
