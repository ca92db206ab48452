/**
 * Resolution against apt itself: for each request, `miq resolve --json` must equal the set
 * `apt-get -s install --no-install-recommends` chooses on an empty dpkg status (dist-upgrade for
 * --essential), names and versions, computed by running apt now. For more requests, apt's set
 * must satisfy miq's rules (a difference may only be a choice between alternatives).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { encode, preferredAnswer, resolve, violations } from '../packages/resolve.js';
import { logicSolver } from '../packages/solver.js';
import { loadUniverse } from '../packages/packed.js';
import type { Universe } from '../packages/universe.js';
import { openStore } from '../store/open.js';
import { aptSet, debianStore, noAptLists } from './helpers/apt.js';
import { isCleanError, json, miq, tempDir } from './helpers/cli.js';

const skip = noAptLists();
if (skip) console.log(`# packages-resolve: skipped: ${skip}`);
const T = tempDir('miq-resolve-');
const store = join(T.dir, 'store');
const m = (...a: string[]) => miq(['--store', store, ...a]);
let u: Universe;

before(async () => {
  if (skip) return;
  debianStore(store, miq);
  const s = await openStore(store);
  try {
    u = await loadUniverse(s);
  } finally {
    await s.close();
  }
});
after(() => T.cleanup());

type P = { name: string; version: string; arch: string };
const ids = (l: readonly P[]): string[] => l.map((p) => `${p.name}=${p.version}`).sort();

for (const req of [['python3'], ['python3', 'perl', 'bash', 'coreutils'], ['build-essential'], ['--essential']]) {
  test(`miq resolve ${req.join(' ')} equals apt's choice`, { skip: skip ?? false }, () => {
    const essential = req[0] === '--essential';
    const r = m('resolve', '--json', ...req);
    assert.equal(r.code, 0, r.stderr);
    const got = json<{ packages: P[]; seconds: number }>(r);
    assert.equal(typeof got.seconds, 'number');
    const apt = aptSet(essential ? [] : req, essential ? 'dist-upgrade' : 'install');
    assert.ok(apt.length > 10, `apt chose only ${apt.length} packages`);
    assert.deepEqual(ids(got.packages), ids(apt));
    assert.deepEqual(got.packages.map((p) => p.arch).sort(), apt.map((p) => p.arch).sort());
    assert.deepEqual(violations(u, essential ? { packages: [], essential: true } : { packages: req }, apt), []);
  });
}

test("apt's answers satisfy miq's rules for more requests", { skip: skip ?? false }, () => {
  const report: string[] = [];
  for (const req of [['git'], ['curl', 'ca-certificates'], ['vim'], ['openssh-server'], ['make', 'gcc', 'libc6-dev']]) {
    const apt = aptSet(req);
    assert.deepEqual(violations(u, { packages: req }, apt), [], `apt's set for ${req.join(' ')} breaks miq's rules`);
    const a = new Set(ids(apt));
    const b = new Set(ids(resolve(u, { packages: req }).packages));
    report.push(`${req.join(' ')}: apt ${a.size}, miq ${b.size}, differ ${[...a].filter((x) => !b.has(x)).length + [...b].filter((x) => !a.has(x)).length}`);
  }
  console.log(`# ${report.join('; ')}`);
});

test('an unsatisfiable request exits 2 and names the rules', { skip: skip ?? false }, () => {
  const r = m('resolve', 'systemd-sysv', 'sysvinit-core');
  assert.equal(r.code, 2);
  assert.ok(isCleanError(r), r.stderr);
  assert.match(r.stderr, /you asked for systemd-sysv/);
  assert.match(r.stderr, /you asked for sysvinit-core/);
  assert.match(r.stderr, /sysvinit-core Conflicts: systemd-sysv/);
  assert.ok(r.stderr.trim().split('\n').length <= 6, `a small explanation, got:\n${r.stderr}`);
  const n = m('resolve', 'no-such-package-xyz');
  assert.equal(n.code, 2);
  assert.ok(isCleanError(n), n.stderr);
});

test('--dot writes a graph that Graphviz renders; --explain says why', { skip: skip ?? (spawnSync('dot', ['-V']).status !== 0 ? 'graphviz is not installed (apt-get install graphviz)' : false) }, () => {
  const f = join(T.dir, 'python3.dot');
  const r = m('resolve', 'python3', '--dot', f, '--explain', '--json');
  assert.equal(r.code, 0, r.stderr);
  const got = json<{ packages: (P & { why: unknown })[] }>(r);
  const text = readFileSync(f, 'utf8');
  for (const p of got.packages) assert.ok(text.includes(`"${p.name}=${p.version}"`), `node ${p.name}`);
  assert.ok((text.match(/ -> /g) ?? []).length >= got.packages.length - 1);
  const svg = spawnSync('dot', ['-Tsvg', f], { encoding: 'utf8' });
  assert.equal(svg.status, 0, svg.stderr);
  assert.match(svg.stdout, /<svg/);
  assert.equal(got.packages.find((p) => p.name === 'python3')?.why, 'requested');
  assert.ok(got.packages.every((p) => p.why !== undefined), 'every package has a reason');
});

test("the answer found without the solver, when there is one, is the solver's answer", { skip: skip ?? false }, () => {
  let quick = 0;
  for (const req of [['python3'], ['python3', 'perl', 'bash', 'coreutils'], ['build-essential'], ['git'], ['vim'], ['openssh-server'], ['curl', 'ca-certificates']]) {
    const enc = encode(u, { packages: req });
    const mine = preferredAnswer(enc);
    const ans = logicSolver.solve(enc.problem);
    assert.ok(ans.sat, req.join(' '));
    const solved = [...ans.trueVars].filter((v) => v <= enc.pkgs.length).sort((a, b) => a - b);
    if (mine) {
      quick++;
      assert.deepEqual([...mine].sort((a, b) => a - b), solved, req.join(' '));
    }
  }
  assert.ok(quick >= 3, `only ${quick} requests had an answer without the solver`);
});
