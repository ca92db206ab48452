/** miq's command line: parses, calls one module function per command, prints. */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { MiqError } from '../store/errors.js';
import { registerFor } from './commands.js';

const EXIT: Record<string, number> = {
  MIQ_BAD_INPUT: 2, MIQ_NOT_FOUND: 2, MIQ_CONFLICT: 2,
  MIQ_CORRUPT: 3, MIQ_MISSING: 3,
  MIQ_STORE_LOCKED: 4, MIQ_FORMAT: 5,
  MIQ_BUILD_FAILED: 6, MIQ_REMOTE: 7, MIQ_UNTRUSTED: 7, MIQ_TIMEOUT: 7,
};

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

export async function buildProgram(args: readonly string[]): Promise<Command> {
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

export async function main(argv: string[]): Promise<number> {
  let program: Command;
  try {
    program = await buildProgram(argv.slice(2));
  } catch (e) {
    process.stderr.write(`miq: internal error: cannot load the command: ${(e as Error)?.message ?? String(e)}\n`);
    return 70;
  }
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    const debug = argv.includes('--debug');
    const json = argv.includes('--json');
    if (e instanceof MiqError) {
      if (json) process.stdout.write(`${JSON.stringify({ error: e.toJSON() })}\n`);
      process.stderr.write(`miq: ${e.message}\n`);
      if (debug) process.stderr.write(`${e.stack}\n`);
      return e.details?.source === 'remote' ? 7 : EXIT[e.code] ?? 1;
    }
    const err = e as Error;
    process.stderr.write(`miq: internal error: ${err?.message ?? String(e)}${debug ? '' : ' (run with --debug for details)'}\n`);
    if (debug) process.stderr.write(`${err?.stack}\n`);
    return 70;
  }
}

// A reader that goes away (`miq cat … | head`, `miq ls --json | head -c 0`) is not a failure of
// miq's work: stop quietly, as a program killed by SIGPIPE would, instead of a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(Number(process.exitCode ?? 0));
  process.stderr.write(`miq: cannot write to standard output: ${e.message}\n`);
  process.exit(74);
});

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`miq: ${String(e)}\n`);
    process.exitCode = 70;
  },
);
