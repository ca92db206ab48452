/** miq's command line: parses, calls one module function per command, prints. */
import { CommanderError, type Command } from 'commander';
import { MiqError, isNoSpace } from '../store/errors.js';
import { exitsWhenDone } from './exit.js';
import { buildProgram } from './program.js';

const EXIT: Record<string, number> = {
  MIQ_BAD_INPUT: 2, MIQ_NOT_FOUND: 2, MIQ_CONFLICT: 2,
  MIQ_CORRUPT: 3, MIQ_MISSING: 3,
  MIQ_STORE_LOCKED: 4, MIQ_FORMAT: 5,
  MIQ_BUILD_FAILED: 6, MIQ_REMOTE: 7, MIQ_UNTRUSTED: 7, MIQ_TIMEOUT: 7,
};

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
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return 0;
      // The one error shape of --json, for parser errors too (the message went to stderr).
      if (argv.includes('--json')) process.stdout.write(`${JSON.stringify({ error: { code: 'MIQ_BAD_INPUT', message: e.message.replace(/^error: /, '') } })}\n`);
      return 2;
    }
    const debug = argv.includes('--debug');
    const json = argv.includes('--json');
    if (e instanceof MiqError) {
      if (json) process.stdout.write(`${JSON.stringify({ error: e.toJSON() })}\n`);
      process.stderr.write(`miq: ${e.message}\n`);
      if (debug) process.stderr.write(`${e.stack}\n`);
      return e.details?.source === 'remote' ? 7 : EXIT[e.code] ?? 1;
    }
    const err = e as Error;
    if (isNoSpace(e)) {
      // A full disk is the machine's state, not a bug in miq: say so, and what to do.
      process.stderr.write(`miq: no space left on the device (${err?.message ?? String(e)}); free space there (\`miq gc\` removes what no root reaches), then retry\n`);
      return 1;
    }
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
    if (exitsWhenDone()) process.exit(code);
  },
  (e) => {
    process.stderr.write(`miq: ${String(e)}\n`);
    process.exitCode = 70;
  },
);
