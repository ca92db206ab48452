import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { explain, resolve, toDot } from '../packages/resolve.js';
import { loadUniverse } from '../packages/packed.js';
import { ioError, MiqError } from '../store/errors.js';
import { globals, printJson, withStore } from './context.js';

export function register(program: Command): void {
  program.command('resolve')
    .description('the packages (one version each) that satisfy a request on an empty system, as apt would choose them')
    .argument('[packages...]', 'package names, or name=version')
    .option('--essential', "add Debian's Essential set (what dist-upgrade installs on an empty system)")
    .option('--repo <name>', 'only this repository (default: all)')
    .option('--json', 'one JSON object: {"packages":[{"name","version","arch"}…],"seconds"}')
    .option('--dot <file>', 'write the resolution graph for Graphviz')
    .option('--explain', 'say why each package is there')
    .action(async (pkgs: string[], o: { essential?: boolean; repo?: string; json?: boolean; dot?: string; explain?: boolean }, cmd: Command) => {
      if (pkgs.length === 0 && !o.essential) throw new MiqError('MIQ_BAD_INPUT', 'miq resolve: name at least one package (or pass --essential)');
      const u = await withStore(globals(cmd), (s) => loadUniverse(s, o.repo ? [o.repo] : undefined));
      const r = resolve(u, { packages: pkgs, essential: o.essential });
      if (o.dot) await writeFile(o.dot, toDot(r)).catch((e) => { throw ioError(e, 'cannot write the graph to', o.dot!); });
      const why = o.explain ? explain(r) : undefined;
      if (o.json) {
        return printJson({
          packages: r.packages.map((p) => {
            const w = why?.get(p);
            return { name: p.name, version: p.version, arch: p.arch, ...(w ? { why: w === 'requested' ? 'requested' : { by: `${w.from.name}=${w.from.version}`, group: w.label } } : {}) };
          }),
          seconds: Number(r.seconds.toFixed(3)),
        });
      }
      for (const p of r.packages) {
        const w = why?.get(p);
        const tail = w === undefined ? '' : w === 'requested' ? '\trequested' : `\t<- ${w.from.name} (${w.label})`;
        process.stdout.write(`${p.name}\t${p.version}\t${p.arch}${tail}\n`);
      }
      process.stderr.write(`${r.packages.length} packages, resolved in ${r.seconds.toFixed(2)} s (${r.closure} candidates in the closure)\n`);
    });
}
