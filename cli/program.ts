/** The root command: global options, version, one-line parser errors, and the command modules. */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { registerFor } from './commands.js';

/** The version in package.json, read at run time so a linked checkout reports what it is. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Commander prints `error: …` and hint lines; a user mistake is one `miq: …` line (DESIGN, STYLE). */
export function oneLine(str: string): string {
  const parts = str.trim().split('\n').map((l) => l.trim()).filter(Boolean);
  const first = (parts.shift() ?? '').replace(/^error: /, '');
  const hint = parts.join(' ').replace(/^\((.*)\)$/, '$1');
  return `miq: ${first}${hint ? ` (${hint.replace(/\?$/, '')}?)` : ''}; \`miq --help\` lists commands and options\n`;
}

export async function buildProgram(args: readonly string[] = []): Promise<Command> {
  const program = new Command();
  program
    .name('miq')
    .version(version(), '-V, --version', 'print the version')
    .description('An immutable, content-addressed package store: one deduplicated chunk store, served by FUSE')
    .option('--store <dir>', 'store directory (default: $MIQ_HOME, else $XDG_DATA_HOME/miq, or /var/lib/miq for root)')
    .option('--debug', 'print stack traces for errors')
    .configureOutput({ outputError: (str, write) => write(oneLine(str)) })
    .exitOverride();
  await registerFor(program, args);
  return program;
}

