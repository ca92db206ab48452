/**
 * Every command module; each exports `register(program)`. Help lists them in this order.
 * A run loads only the module of the command it names (each pulls in its own part of the tree:
 * FUSE, the builder, remotes, benchmarks); help, an unknown name or no name load them all.
 */
import type { Command } from 'commander';

type Loader = () => Promise<{ register(program: Command): void }>;

/** Module, and the top-level commands it registers (test/cli.test.ts checks the lists). */
export const MODULES: [Loader, string[]][] = [
  [() => import('./demo.js'), ['demo']],
  [() => import('./ingest.js'), ['ingest']],
  [() => import('./inspect.js'), ['paths', 'ls', 'cat', 'export']],
  [() => import('./stats.js'), ['stats']],
  [() => import('./verify.js'), ['verify']],
  [() => import('./repair.js'), ['repair']],
  [() => import('./gc.js'), ['gc', 'pin', 'unpin', 'roots']], // store (issue 2)
  [() => import('./build.js'), ['build']],
  [() => import('./recipe.js'), ['recipe']],
  [() => import('./log.js'), ['log']], // builds (issue 5)
  [() => import('./bench.js'), ['bench']], // benchmarks (issue 6)
  [() => import('./key.js'), ['key']],
  [() => import('./push.js'), ['push']],
  [() => import('./fetch.js'), ['fetch']], // remotes (issue 4)
  [() => import('./mount.js'), ['mount']],
  [() => import('./profile.js'), ['profile']], // mount and profiles (issue 3)
  [() => import('./run.js'), ['run', 'shell']], // the first hour (issue 15)
  [() => import('./status.js'), ['status', 'umount']],
  [() => import('./help.js'), ['completion', 'man']],
  [() => import('./repo.js'), ['repo']],
  [() => import('./search.js'), ['search', 'show']],
  [() => import('./resolve.js'), ['resolve']],
  [() => import('./install.js'), ['install', 'remove', 'upgrade', 'why']], // packages (issue 12)
];

/** Commands that describe the whole command tree (completion, manual): they load every module. */
const WHOLE_TREE = ['completion', 'man'];

/** The command a command line names: the first word that is not a global option. */
export function commandWord(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--store') i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/** Registers the module that serves `args` (all of them when that is not one known command). */
export async function registerFor(program: Command, args: readonly string[]): Promise<void> {
  const word = commandWord(args);
  const wantsHelp = args.includes('--help') || args.includes('-h') || word === 'help';
  // `miq --version` names no command: the root program answers it, and loading every module
  // (the whole tree: FUSE, builder, remotes) tripled its time.
  if (word === undefined && !wantsHelp && (args.includes('--version') || args.includes('-V'))) return;
  const one = word && !wantsHelp && !WHOLE_TREE.includes(word) ? MODULES.find(([, names]) => names.includes(word)) : undefined;
  const mods = one ? [one] : MODULES;
  for (const m of await Promise.all(mods.map(([load]) => load()))) m.register(program);
}
