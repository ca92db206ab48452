/**
 * The README followed literally (issue 15): its runnable command blocks, extracted from
 * README.md itself (a fenced block right after a `<!-- runnable -->` line), run in order in one
 * `bash -eo pipefail` on a fresh store, with `miq` on PATH as `npm link` would put it. The
 * set-up block is checked for its two commands, and its `miq demo` is run the same way.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MIQ, ROOT, tempDir } from './helpers/cli.js';

const tmp = tempDir('miq-readme-');
after(() => tmp.cleanup());

/** Fenced blocks of README.md: their text, and whether a `<!-- runnable -->` line precedes them. */
export function blocks(md: string): { runnable: boolean; text: string; line: number }[] {
  const out: { runnable: boolean; text: string; line: number }[] = [];
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^```sh\s*$/.test(lines[i]!)) continue;
    let j = i + 1;
    while (j < lines.length && lines[j] !== '```') j++;
    let k = i - 1;
    while (k >= 0 && lines[k]!.trim() === '') k--;
    out.push({ runnable: k >= 0 && lines[k]!.trim() === '<!-- runnable -->', text: lines.slice(i + 1, j).join('\n'), line: i + 1 });
    i = j;
  }
  return out;
}

test('README: the set-up block is two commands, and every runnable block runs on a fresh store', { timeout: 900_000 }, () => {
  const md = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const all = blocks(md);
  const setup = all[0]!.text.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean);
  assert.deepEqual(setup, ['npm ci && npm link --ignore-scripts && miq demo', 'npm test'], 'the first screen sets up with two commands');
  const runnable = all.filter((b) => b.runnable);
  assert.ok(runnable.length >= 4, `runnable blocks found: ${runnable.length}`);

  // `npm link` puts a link to bin/miq on PATH; the test does the same without touching npm's prefix.
  const bin = join(tmp.dir, 'bin');
  mkdirSync(bin);
  symlinkSync(MIQ, join(bin, 'miq'));
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, MIQ_HOME: join(tmp.dir, 'store') };
  const steps = [{ text: 'miq demo', line: all[0]!.line }, ...runnable];
  for (const b of steps) {
    // One shell per block would lose the blocks' variables: carry them in a file of exports.
    const script = `set -eo pipefail\n[ -f ${tmp.dir}/env ] && . ${tmp.dir}/env\n${b.text}\nexport -p > ${tmp.dir}/env\n`;
    const r = spawnSync('bash', ['-c', script], { cwd: ROOT, env, encoding: 'utf8', maxBuffer: 1 << 28 });
    assert.equal(r.status, 0, `README.md block at line ${b.line} failed (exit ${r.status}):\n${b.text}\n--- stdout\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-3000)}`);
    if (b.text.includes("python3 -c 'print(1)'")) assert.match(r.stdout, /^1$/m);
    if (b.text.includes("python3 -c 'print(2)'")) assert.match(r.stdout, /^2$/m);
  }
});
