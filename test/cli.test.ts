/** The command line loads only the module of the command it runs: the lists that map commands
 * to modules must match what each module registers, or a command would go missing. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Command } from 'commander';
import { MODULES, commandWord } from '../cli/commands.js';
import { workerFlags } from '../store/index.js';
import { compressInC, scanInC } from '../store/ingest-c.js';
import { hashFilesAsync } from '../store/ingest-hash.js';
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

test('a run loads only the packages it uses: `--version` no command module, an update done in C no worker pool and no zstd binding', () => {
  // The CommonJS packages a process loaded, from require's cache, printed as it exits.
  const probe = join(tmp.dir, 'probe.cjs');
  writeFileSync(probe, `process.on('exit', () => {
  const p = new Set();
  for (const k of Object.keys(require.cache)) { const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(k); if (m) p.add(m[1]); }
  process.stderr.write('miq-test-packages ' + [...p].sort().join(' ') + '\\n');
});
`);
  const run = (args: string[]) => spawnSync(process.execPath, ['--require', probe, MIQ, ...args], { encoding: 'utf8' });
  const packagesOf = (stderr: string): string[] => {
    const m = /^miq-test-packages (.*)$/m.exec(stderr);
    assert.ok(m, `no package list in: ${stderr}`);
    return m[1]!.split(' ').filter(Boolean);
  };
  const v = run(['--version']);
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
  assert.deepEqual(packagesOf(v.stderr), ['commander'], 'the version needs no command module (and none of their packages)');

  const src = join(tmp.dir, 'lazy-src');
  mkdirSync(join(src, 'd'), { recursive: true });
  writeFileSync(join(src, 'big'), randomBytes(400_000));
  for (let i = 0; i < 8; i++) writeFileSync(join(src, 'd', `f${i}`), `small file ${i}\n`.repeat(50 * (i + 1)));
  const store = join(tmp.dir, 'lazy-store');
  const first = miq(['--store', store, 'ingest', src, '--json']);
  assert.equal(first.code, 0, first.stderr);
  // An update with new content: a changed large file (a delta) and a new small one.
  appendFileSync(join(src, 'big'), randomBytes(70_000));
  writeFileSync(join(src, 'd', 'new'), 'a new file\n'.repeat(40));
  const upd = run(['--store', store, 'ingest', src, '--json']);
  assert.equal(upd.status, 0, upd.stderr);
  const r = JSON.parse(upd.stdout) as { newChunks: number; tree: string };
  assert.ok(r.newChunks > 0);
  const got = packagesOf(upd.stderr);
  assert.ok(got.includes('classic-level'), `the probe sees the packages loaded: ${got.join(' ')}`);
  // With the addon's C paths (hash, scan, compress on libuv's threads) an update starts no worker,
  // so piscina is never loaded, and the main thread compresses nothing in JS (no zstd-napi).
  if (hashFilesAsync && scanInC() && compressInC()) {
    assert.ok(!got.includes('piscina'), `piscina loaded by an update done in C: ${got.join(' ')}`);
    assert.ok(!got.includes('zstd-napi'), `zstd-napi loaded by an update done in C: ${got.join(' ')}`);
  }
  const fresh = miq(['--store', join(tmp.dir, 'lazy-fresh'), 'ingest', src, '--json']);
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.equal((JSON.parse(fresh.stdout) as { tree: string }).tree, r.tree, 'the same tree as a new store\'s');
});
