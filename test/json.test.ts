/**
 * One --json vocabulary (issue 15; README.md "JSON output"): every command that has --json is run,
 * found by walking the command tree (so a new command is walked too). Success: JSON on stdout,
 * byte sizes as non-negative integers in fields named *Bytes (or bytes/size), durations finite
 * `seconds`, no NaN or Infinity (JSON would print null). Failure: `{"error":{"code","message"}}`
 * on stdout and one `miq: …` line on stderr.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Command } from 'commander';
import { MODULES } from '../cli/commands.js';
import { ROOT, json, miq, tempDir } from './helpers/cli.js';

const tmp = tempDir();
after(() => tmp.cleanup());
const S = ['--store', join(tmp.dir, 's')];

/** Arguments that make a command do its real work on the test store; others run bare. */
const ARGS: Record<string, string[]> = {
  ingest: [join(ROOT, 'node_modules', 'commander'), '--name', 'commander2'],
  ls: ['commander'], export: ['commander', join(tmp.dir, 'exp')],
  'profile switch': ['p', 'commander'], 'profile add': ['p', 'commander2'], 'profile remove': ['p', 'commander2'],
  'profile generations': ['p'], 'profile diff': ['p', '1', '2'], 'profile rollback': ['p'],
  'profile delete-generations': ['p', '--keep', '5'], 'key generate': ['k1'], push: [join(tmp.dir, 'remote'), 'commander'],
  fetch: ['--remote', join(tmp.dir, 'nowhere'), 'x'], bench: ['--only', 'nonsense'], recipe: [], 'recipe show': [join(ROOT, 'recipes', 'hello.ts')],
  umount: [join(tmp.dir, 'nomount')], mount: [join(tmp.dir, 'nomountdir')],
  completion: ['bash'],
};
/** Not run: they serve or watch until stopped, or download a corpus. */
const SKIP = new Set(['demo', 'mount', 'repo update', 'install', 'upgrade', 'build']);

function walk(c: Command, prefix: string[], out: { name: string; hasJson: boolean }[]): void {
  for (const sub of c.commands) {
    if (sub.name() === 'help') continue;
    const name = [...prefix, sub.name()].join(' ');
    out.push({ name, hasJson: sub.options.some((o) => o.long === '--json') });
    walk(sub, [...prefix, sub.name()], out);
  }
}

function check(v: unknown, where: string): void {
  if (Array.isArray(v)) return v.forEach((x, i) => check(x, `${where}[${i}]`));
  if (v === null || typeof v !== 'object') return;
  for (const [k, x] of Object.entries(v)) {
    const at = `${where}.${k}`;
    if (/Bytes$|^bytes$|^size$/.test(k) && typeof x === 'number') assert.ok(Number.isInteger(x) && x >= 0, `${at} = ${x}: sizes are whole bytes`);
    if (/Bytes$|^seconds$|Seconds$|Ratio$/.test(k)) assert.notEqual(x, null, `${at} is null (NaN or Infinity?)`);
    // A field named paths is always a list (of store paths or of objects naming one); a count
    // of store paths is storePaths, or *Paths with a qualifier (livePaths).
    if (k === 'paths') assert.ok(Array.isArray(x), `${at} = ${JSON.stringify(x)}: paths is a list; a count is storePaths`);
    if (/^(created|since)$|At$/.test(k) && x !== undefined && x !== null) assert.ok(k === 'created' ? Number.isInteger(x) : typeof x === 'string' && !Number.isNaN(Date.parse(x)), `${at} = ${String(x)}: created is epoch ms, since/*At ISO 8601`);
    if (/^seconds$|Seconds$/.test(k) && x !== undefined) assert.ok(typeof x === 'number' && Number.isFinite(x) && x >= 0, `${at} = ${String(x)}`);
    check(x, at);
  }
}

test('every command with --json speaks the one vocabulary, on success and on failure', async () => {
  assert.equal(miq([...S, 'ingest', join(ROOT, 'node_modules', 'commander'), '--name', 'commander']).code, 0);
  const program = new Command();
  for (const [load] of MODULES) (await load()).register(program);
  const all: { name: string; hasJson: boolean }[] = [];
  walk(program, [], all);
  const withJson = all.filter((c) => c.hasJson);
  assert.ok(withJson.length >= 25, `${withJson.length} commands with --json`);
  const ran: string[] = [];
  for (const c of withJson) {
    if (SKIP.has(c.name)) continue;
    const r = miq([...S, ...c.name.split(' '), ...(ARGS[c.name] ?? []), '--json']);
    ran.push(`${c.name}:${r.code}`);
    if (r.code === 0) {
      const lines = r.stdout.trim().split('\n').filter(Boolean);
      assert.ok(lines.length >= 1, `${c.name}: no output`);
      for (const l of lines) check(JSON.parse(l), c.name);
    } else {
      const e = json<{ error: { code: string; message: string } }>(r);
      assert.match(e.error?.code ?? '', /^MIQ_[A-Z_]+$/, `${c.name}: ${r.stdout}`);
      assert.equal(typeof e.error.message, 'string');
      assert.equal(r.stderr.trim().split('\n').length, 1, `${c.name}: one line on stderr: ${r.stderr}`);
      assert.match(r.stderr, /^miq: /);
    }
  }
  console.log(`json walk: ${ran.join(' ')}`);
  const ok = ran.filter((x) => x.endsWith(':0')).length;
  assert.ok(ok >= 15, `most commands succeed on the test store (${ok} did)`);
});
