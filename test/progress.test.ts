/**
 * Progress on a terminal, quiet otherwise: an ingest run under script(1) (a real pseudo-terminal)
 * draws its percentage, rate and commit phase on stderr; the same ingest through a pipe writes
 * nothing there, and --json prints one object on stdout.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MIQ, ROOT, json, miq, tempDir } from './helpers/cli.js';

const t = tempDir('miq-progress-');
after(() => t.cleanup());

test('ingest progress: percentage, rate and commit on a TTY; nothing on a pipe', () => {
  const src = join(ROOT, 'node_modules', 'typescript');
  const cmd = `${process.execPath} ${MIQ} --store ${join(t.dir, 'a')} ingest ${src}`;
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env: { ...process.env, COLUMNS: '200' } });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const lines = r.stdout.split(/\r|\n/).map((l) => l.replace(/\x1b\[K/g, '').trim()).filter(Boolean);
  assert.ok(lines.some((l) => /^ingest: \d+% of \d+ files, [\d.]+ MiB(, [\d.]+ [KM]iB\/s)?/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /^ingest: committing \d+ files/.test(l)), 'the commit phase is shown');
  assert.match(lines.at(-1)!, /^typescript-[0-9a-f]{32}$/);

  const piped = miq(['--store', join(t.dir, 'a'), 'ingest', src, '--name', 'again']);
  assert.equal(piped.code, 0);
  assert.equal(piped.stderr, '', 'no progress on a pipe');
  const j = miq(['--store', join(t.dir, 'a'), 'ingest', src, '--name', 'json', '--json']);
  assert.equal(json<{ files: number }>(j).files > 100, true);
  assert.equal(j.stdout.trim().split('\n').length, 1);
});
