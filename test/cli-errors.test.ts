/** A new user's first commands: `--version`, and a mistake on the command line is one `miq: …` line. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ROOT, isCleanError, miq, tempDir } from './helpers/cli.js';

const tmp = tempDir();
after(() => tmp.cleanup());

test('miq --version prints the version of package.json', () => {
  const v = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  for (const flag of ['--version', '-V']) {
    const r = miq([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), v);
  }
});

test("commander's parser errors are one `miq: …` line with exit 2", () => {
  const store = ['--store', join(tmp.dir, 's')];
  const cases: [string[], RegExp][] = [
    [['ingets'], /unknown command 'ingets' \(Did you mean ingest\?\)/],
    [[...store, 'paths', '--bogus'], /unknown option '--bogus'/],
    [[...store, 'ls'], /missing required argument 'path'/],
    [[...store, 'ingest', '/x', '--name'], /option '--name <name>' argument missing/],
    [[...store, 'key', 'generat', 'k'], /unknown command 'generat'/],
  ];
  for (const [args, re] of cases) {
    const r = miq(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(isCleanError(r), r.stderr);
    assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, `one line: ${JSON.stringify(r.stderr)}`);
    assert.match(r.stderr, re);
  }
});
