/**
 * Numbers and names from the command line: sizes with units parse, nonsense is refused with exit
 * 2 and one `miq: …` line before anything is opened or mounted, names that become keys follow
 * the store-name rule.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseCount, parseSeconds, parseSize } from '../cli/args.js';
import { isMiqError } from '../store/errors.js';
import { isCleanError, json, miq, tempDir } from './helpers/cli.js';
import { cleanup, startMiqMount, type MiqMount } from './helpers/fuse.js';

const tmp = tempDir();
after(() => tmp.cleanup());
const S = ['--store', join(tmp.dir, 'store')];

test('sizes: units are powers of 1024, B is bytes, a bare number takes the option\'s unit', () => {
  assert.equal(parseSize('512M', 'x'), 512 * 2 ** 20);
  assert.equal(parseSize('2G', 'x'), 2 * 2 ** 30);
  assert.equal(parseSize('2GiB', 'x'), 2 * 2 ** 30);
  assert.equal(parseSize('1.5k', 'x'), 1536);
  assert.equal(parseSize('4096', 'x'), 4096);
  assert.equal(parseSize('4096B', 'x', { bare: 'M' }), 4096);
  assert.equal(parseSize('128', 'x', { bare: 'M' }), 128 * 2 ** 20);
  for (const bad of ['-5', '1Q', 'NaN', '1e20', '', ' ', 'Infinity', '0x10', '2 G B', '1..5M', '99999999999999999T']) {
    assert.throws(() => parseSize(bad, '--cache-size'), (e: unknown) => isMiqError(e, 'MIQ_BAD_INPUT') && (e as Error).message.startsWith('--cache-size'), JSON.stringify(bad));
  }
  assert.throws(() => parseSize('0', 'x', { min: 1 << 20 }), /too small/);
  assert.throws(() => parseSize('2000T', 'x'), /too large/);
  assert.equal(parseCount('12', 'n'), 12);
  for (const bad of ['-1', '1.5', '1e3', 'NaN', '', ' ']) assert.throws(() => parseCount(bad, 'n'), (e: unknown) => isMiqError(e, 'MIQ_BAD_INPUT'), JSON.stringify(bad));
  assert.equal(parseSeconds('0.5', 's'), 0.5);
  for (const bad of ['0', '-1', 'Infinity', 'NaN', '1e9']) assert.throws(() => parseSeconds(bad, 's'), (e: unknown) => isMiqError(e, 'MIQ_BAD_INPUT'), JSON.stringify(bad));
});

test('miq mount refuses a nonsense --cache-size or --pull-interval with exit 2 and one line, before mounting', () => {
  const mnt = join(tmp.dir, 'mnt');
  mkdirSync(mnt);
  for (const bad of ['-5', '1Q', 'NaN', '1e20', '0']) {
    const r = miq([...S, 'mount', mnt, `--cache-size=${bad}`]);
    assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
    assert.ok(isCleanError(r), r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^miq: --cache-size "${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}" `));
  }
  for (const bad of ['NaN', '-3', 'Infinity']) {
    const r = miq([...S, 'mount', mnt, '--remote', 'http://127.0.0.1:9/x', `--pull-interval=${bad}`]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^miq: --pull-interval/);
  }
});

test('miq mount accepts --cache-size 2G (the help\'s own example) and serves', async () => {
  const b = join(tmp.dir, 'm2');
  mkdirSync(join(b, 'mnt'), { recursive: true });
  let m: MiqMount | undefined;
  try {
    m = await startMiqMount([...S, 'mount', join(b, 'mnt'), '--cache-size', '2G', '--json']);
    assert.equal(m.status.mounted, true);
    assert.equal(await m.stop(), 0, `miq mount ended by ${m.child.signalCode ?? "exit"}; stderr: ${m.stderr()}`);
  } finally {
    if (m && m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGKILL');
    await cleanup(b);
  }
});

test('names that become keys are checked like store names: pin --as ../x is refused', () => {
  const src = join(tmp.dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'f'), 'x');
  const p = json<{ path: string }>(miq([...S, 'ingest', src, '--json'])).path;
  for (const bad of ['../x', 'a/b', '.hidden', '', 'x'.repeat(201), 'sp ace']) {
    const r = miq([...S, 'pin', p, '--as', bad]);
    assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
    assert.ok(isCleanError(r), r.stderr);
    assert.match(r.stderr, /^miq: --as ".*" is not allowed/);
  }
  assert.equal(miq([...S, 'pin', p, '--as', 'keep-me_1.0']).code, 0);
  const roots = json<{ root: string; path: string }[]>(miq([...S, 'roots', '--json']));
  assert.ok(roots.some((r) => r.root === 'keep-me_1.0' && r.path === p));
  assert.ok(!roots.some((r) => r.root.includes('/')), JSON.stringify(roots));
});

test('counts are whole numbers: --keep, --priority, --jobs', () => {
  for (const args of [['profile', 'delete-generations', 'system', '--keep', '-1'], ['profile', 'delete-generations', 'system', '--keep', '1.5'], ['profile', 'delete-generations', 'system', '--older-than', 'NaN']]) {
    const r = miq([...S, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(isCleanError(r), r.stderr);
  }
});
