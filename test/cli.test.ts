/** The command line loads only the module of the command it runs: the lists that map commands
 * to modules must match what each module registers, or a command would go missing. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Command } from 'commander';
import { MODULES, commandWord } from '../cli/commands.js';
import { workerFlags } from '../store/index.js';
import { MIQ, miq, tempDir } from './helpers/cli.js';

const tmp = tempDir();
after(() => tmp.cleanup());

test('each command module registers exactly the commands listed for it', async () => {
  const seen = new Set<string>();
  for (const [load, names] of MODULES) {
    const program = new Command();
    (await load()).register(program);
    const got = program.commands.map((c) => c.name());
    assert.deepEqual(got, names);
    for (const n of got) {
      assert.ok(!seen.has(n), `${n} is registered twice`);
      seen.add(n);
    }
  }
});

test('the command word skips global options; help and unknown words still see every command', () => {
  assert.equal(commandWord(['--store', '/s', '--debug', 'ingest', 'dir']), 'ingest');
  assert.equal(commandWord(['--debug']), undefined);
  const help = miq(['--help']);
  assert.equal(help.code, 0);
  for (const [, names] of MODULES) for (const n of names) assert.match(help.stdout, new RegExp(`^  ${n}\\b`, 'm'));
  const bad = miq(['ingets']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown command 'ingets'/);
  const store = join(tmp.dir, 's');
  const paths = miq(['--store', store, 'paths', '--json']);
  assert.equal(paths.code, 0, paths.stderr);
  assert.equal(paths.stdout.trim(), '[]');
});

test('node flags given to miq that a worker refuses stay the process\'s (an ingest with them works)', () => {
  // A Worker refuses V8 and per-process flags; the pool used to hand it all of node's flags.
  assert.deepEqual(workerFlags(['--max-old-space-size=2048', '--enable-source-maps', '--no-opt', '--stack-size', '900']), ['--enable-source-maps']);
  assert.deepEqual(workerFlags([]), []);
  const src = join(tmp.dir, 'flags-src');
  mkdirSync(src, { recursive: true });
  for (let i = 0; i < 4; i++) writeFileSync(join(src, `f${i}`), randomBytes(300_000));
  const store = join(tmp.dir, 'flags-store');
  const run = (args: string[]) => spawnSync(process.execPath, ['--max-old-space-size=2048', '--no-opt', MIQ, '--store', store, ...args], { encoding: 'utf8' });
  const r = run(['ingest', src, '--name', 'flags', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const v = run(['verify']);
  assert.equal(v.status, 0, v.stderr);
});
