import type { Command } from 'commander';
import { join, resolve } from 'node:path';
import { generateKey } from '../store/remote/index.js';
import { existsSync, readFileSync } from 'node:fs';
import { MiqError } from '../store/errors.js';
import { globals, keyFile, printJson, storeDir } from './context.js';

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

  key
    .command('public')
    .description('print the public key NAME:BASE64 of a key pair (for --trusted-key or <store>/trusted-keys)')
    .argument('<name>', 'NAME of <store>/keys/NAME.pub, or a .pub file')
    .action((name: string, _o: unknown, cmd: Command) => {
      const file = keyFile(globals(cmd), name, '.pub');
      if (file === name && !existsSync(file)) throw new MiqError('MIQ_NOT_FOUND', `no public key "${name}": neither a file nor ${join(storeDir(globals(cmd)), 'keys', `${name}.pub`)}; \`miq key generate ${name}\` makes one`);
      process.stdout.write(`${readFileSync(file, 'utf8').trim()}\n`);
    });
}
