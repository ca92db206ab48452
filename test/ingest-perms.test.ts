/**
 * The store is public (as in Nix): ingest counts and names what was not world-readable, in text
 * and in --json, so a secret does not enter it unnoticed.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { json, miq, tempDir } from './helpers/cli.js';

const t = tempDir();
after(() => t.cleanup());

test('ingest counts and names files and directories other users could not read', () => {
  const src = join(t.dir, 'src');
  mkdirSync(join(src, 'private'), { recursive: true });
  mkdirSync(join(src, 'public'));
  writeFileSync(join(src, 'secret.key'), 'k');
  chmodSync(join(src, 'secret.key'), 0o600);
  writeFileSync(join(src, 'group-only'), 'g');
  chmodSync(join(src, 'group-only'), 0o640);
  writeFileSync(join(src, 'public', 'readme'), 'r');
  writeFileSync(join(src, 'private', 'inside'), 'i');
  chmodSync(join(src, 'private'), 0o700);
  for (let i = 0; i < 120; i++) {
    writeFileSync(join(src, 'public', `hidden${i}`), `${i}`);
    chmodSync(join(src, 'public', `hidden${i}`), 0o600);
  }
  const S = ['--store', join(t.dir, 'store')];
  const r = json<{ notWorldReadable: number; notWorldReadablePaths: string[] }>(miq([...S, 'ingest', src, '--json', '--no-pin']));
  assert.equal(r.notWorldReadable, 123);
  assert.equal(r.notWorldReadablePaths.length, 100, 'the first 100 are named');
  const named = new Set(r.notWorldReadablePaths);
  assert.ok(![...named].some((p) => p.endsWith('/readme') || p.endsWith('/inside') || p.endsWith('/public')), 'readable ones are not named');
  const small = join(t.dir, 'small');
  mkdirSync(small);
  writeFileSync(join(small, 'secret.key'), 'k');
  chmodSync(join(small, 'secret.key'), 0o600);
  writeFileSync(join(small, 'fine'), 'f');
  const text = miq([...S, 'ingest', small]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`1 files or directories were not world-readable; in the store every user can read them: ${join(small, 'secret.key')}\\n`));
  const open = join(t.dir, 'open');
  mkdirSync(open);
  writeFileSync(join(open, 'a'), 'a');
  const clean = json<{ notWorldReadable: number; notWorldReadablePaths: string[] }>(miq([...S, 'ingest', open, '--json']));
  assert.equal(clean.notWorldReadable, 0);
  assert.deepEqual(clean.notWorldReadablePaths, []);
  assert.doesNotMatch(miq([...S, 'ingest', open]).stdout, /world-readable/);
});
