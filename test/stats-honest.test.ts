/** `miq stats` counts data, not profiles (issue 15): making generations must not move the dedup ratio. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ROOT, json, miq, tempDir } from './helpers/cli.js';

const tmp = tempDir();
after(() => tmp.cleanup());
const S = ['--store', join(tmp.dir, 's')];

interface Stats { storePaths: number; logicalBytes: number; dedupRatio: number; paths: { path: string; sharedBytes: number }[]; generations: { envPaths: number; logicalBytes: number } }

test('profile generations are reported apart from the data; the dedup ratio stays', () => {
  const a = json<{ path: string; bytes: number }>(miq([...S, 'ingest', join(ROOT, 'node_modules', 'commander'), '--name', 'a', '--json']));
  const before = json<Stats>(miq([...S, 'stats', '--json']));
  for (let i = 0; i < 5; i++) assert.equal(miq([...S, 'profile', 'switch', `p${i}`, 'a']).code, 0);
  assert.equal(miq([...S, 'profile', 'switch', 'p0', 'a', a.path]).code, 0);
  const after = json<Stats>(miq([...S, 'stats', '--json']));
  assert.equal(after.storePaths, 1);
  assert.equal(after.logicalBytes, before.logicalBytes);
  assert.deepEqual(after.paths.map((p) => [p.path, p.sharedBytes]), [[a.path, 0]], 'a member does not "share" chunks with its own generation');
  assert.equal(after.generations.envPaths, 1, 'five profiles of the same member make one merged tree');
  assert.equal(after.generations.logicalBytes, a.bytes);
  assert.ok(after.dedupRatio <= before.dedupRatio * 1.01 && after.dedupRatio >= before.dedupRatio * 0.8, `${before.dedupRatio} -> ${after.dedupRatio}: only the index grows`);
  const text = miq([...S, 'stats']).stdout;
  assert.match(text, /generations: +1 merged profile trees/);
  assert.match(text, /shared +only here/);
});
