import type { Command } from 'commander';
import { join, resolve } from 'node:path';
import { generateKey } from '../store/remote/index.js';
import { globals, printJson, storeDir } from './context.js';

export function register(program: Command): void {
  const key = program.command('key').description('signing keys for remotes (ed25519)');
  key
    .command('generate')
    .description('make a key pair: NAME.key (secret, mode 0600; give it to `miq push --sign-key`) and NAME.pub (give it to clients as a trusted key)')
    .argument('<name>', 'key name, recorded in every signature (e.g. cache.example.org-1)')
    .option('--dir <dir>', 'where to write the files (default: <store>/keys)')
    .option('--json', 'print one JSON object')
    .action(async (name: string, o: { dir?: string; json?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const r = await generateKey(o.dir ? resolve(o.dir) : join(storeDir(g), 'keys'), name);
      if (o.json) printJson(r);
      else process.stdout.write(`secret key: ${r.secretFile}\npublic key: ${r.publicFile}\n${r.publicText}\n`);
    });
}
