/** `miq completion` and `miq man` (issue 15): generated from the command tree, so checked against it. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ENV_VARS } from '../cli/env.js';
import { MODULES } from '../cli/commands.js';
import { MIQ, ROOT, json, miq, tempDir } from './helpers/cli.js';

const tmp = tempDir();
after(() => tmp.cleanup());
const store = join(tmp.dir, 'store');

function complete(script: string, words: string[]): string[] {
  // The script calls `miq`: put bin/miq first on PATH as `npm link` would.
  const r = spawnSync('bash', ['-c', `miq() { ${process.execPath} ${MIQ} "$@"; }\nsource ${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _miq; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

test('miq completion bash completes commands, subcommands, options and store path names', () => {
  const path = json<{ path: string }>(miq(['--store', store, 'ingest', join(ROOT, 'node_modules', 'commander'), '--name', 'commander', '--json'])).path;
  const script = join(tmp.dir, 'miq.bash');
  const gen = miq(['completion', 'bash']);
  assert.equal(gen.code, 0, gen.stderr);
  writeFileSync(script, gen.stdout);
  const all = complete(script, ['miq', '']);
  for (const [, names] of MODULES) for (const n of names) assert.ok(all.includes(n), `command ${n} completes`);
  assert.deepEqual(complete(script, ['miq', 'st']).sort(), ['stats', 'status']);
  assert.deepEqual(complete(script, ['miq', 'profile', 'sw']), ['switch']);
  assert.ok(complete(script, ['miq', 'ingest', '--us']).includes('--usrmerge'));
  assert.deepEqual(complete(script, ['miq', '--store', store, 'ls', 'comm']).sort(), ['commander', path].sort());
  assert.deepEqual(complete(script, ['miq', '--store', store, 'profile', 'add', 'system', 'comm']).sort(), ['commander', path].sort());
  for (const sh of ['zsh', 'fish']) assert.equal(miq(['completion', sh]).code, 0);
  assert.equal(miq(['completion', 'tcsh']).code, 2);
});

test('man ./miq.1 renders, naming every command and every environment variable', () => {
  const file = join(tmp.dir, 'miq.1');
  assert.equal(miq(['man', '--out', file]).code, 0);
  const r = spawnSync('man', ['--warnings', '-l', file], { encoding: 'utf8', env: { ...process.env, MANPAGER: 'cat', MANWIDTH: '100' } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', 'groff warns about nothing');
  for (const [, names] of MODULES) for (const n of names) assert.match(r.stdout, new RegExp(`miq ${n}\\b`), `${n} in the manual`);
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  for (const [k] of ENV_VARS) {
    assert.ok(r.stdout.includes(k.replace(/-/g, '‐')) || r.stdout.includes(k), `${k} in the manual`);
    assert.ok(readme.includes(`\`${k}\``), `${k} in README.md`);
  }
});

test('every MIQ_ variable the shipped code reads is in the list that the manual and README.md print', () => {
  const read = new Set<string>();
  const scan = (dir: string): void => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const f = join(dir, e.name);
      if (e.isDirectory()) scan(f);
      else if (/\.(ts|c)$/.test(e.name)) {
        const src = readFileSync(join(ROOT, f), 'utf8');
        for (const m of src.matchAll(/(?:process\.env\.|process\.env\[['"]|getenv\("|envNum\(')(MIQ_[A-Z0-9_]+)/g)) read.add(m[1]!);
      }
    }
  };
  for (const d of ['cli', 'fs', 'mount', 'store', 'builder', 'packages', 'native']) scan(d);
  assert.ok(read.has('MIQ_HOME') && read.has('MIQ_MOUNT_THREADS'), 'the scan finds the variables it must');
  const listed = new Set(ENV_VARS.map(([k]) => k));
  assert.deepEqual([...read].filter((v) => !listed.has(v)).sort(), [], 'read by the code but missing from cli/env.ts');
});
