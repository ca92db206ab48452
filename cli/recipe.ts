import type { Command } from 'commander';
import { loadRecipe } from '../builder/load.js';
import { describeRecipe } from '../builder/show.js';
import { printJson } from './context.js';

export function register(program: Command): void {
  const recipe = program.command('recipe').description('inspect recipes without building them');
  recipe
    .command('show')
    .description('print a recipe\'s key, the store path it will have, and its inputs')
    .argument('<file>', 'recipe file (recipes/hello.ts) or name (hello)')
    .option('--json', 'print one JSON object (with the canonical bytes the key hashes)')
    .action(async (file: string, o: { json?: boolean }) => {
      const info = describeRecipe(await loadRecipe(file));
      if (o.json) {
        printJson(info);
        return;
      }
      const lines = [
        `name     ${info.name} ${info.version}`,
        `key      ${info.key}`,
        `path     ${info.path}`,
        `host     ${info.host.length ? info.host.join(' ') : '(none)'}`,
        ...info.sources.map((s) => `source   ${s.name}\n         ${s.url}\n         ${s.algo}:${s.hash}`),
        ...info.buildDeps.map((d) => `build    ${d.path}`),
        ...info.runDeps.map((d) => `run      ${d.path}`),
        ...Object.entries(info.env).map(([k, v]) => `env      ${k}=${v}`),
        'script',
        ...info.script.split('\n').map((l) => `  ${l}`),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
