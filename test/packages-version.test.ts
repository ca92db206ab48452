/**
 * Debian version comparison against dpkg itself, on version pairs drawn from this machine's
 * real package index (and a few hand-made edge cases), so `compareVersions` is dpkg's order.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { compareVersions, satisfies } from '../packages/version.js';
import { noAptLists, packagesTexts } from './helpers/apt.js';

/** dpkg's answer for each pair: -1, 0 or 1, from shells running dpkg per comparison (two
 * shells over halves of the list: the run is ~1000 dpkg processes, each a fork and exec). */
async function dpkgOrder(pairs: [string, string][]): Promise<number[]> {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const one = (part: [string, string][]): Promise<number[]> => new Promise((resolve, reject) => {
    const script = part.map(([a, b]) => `if dpkg --compare-versions ${q(a)} lt ${q(b)}; then echo -1; elif dpkg --compare-versions ${q(a)} eq ${q(b)}; then echo 0; else echo 1; fi`).join('\n');
    const c = spawn('sh', ['-s'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve(out.trim().split('\n').map(Number)) : reject(new Error(`sh exited ${code}: ${err}`))));
    c.stdin.end(script);
  });
  const half = Math.ceil(pairs.length / 2);
  const [a, b] = await Promise.all([one(pairs.slice(0, half)), one(pairs.slice(half))]);
  const all = [...a, ...b];
  assert.equal(all.length, pairs.length);
  return all;
}

const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);

test('edge cases agree with dpkg --compare-versions', { skip: spawnSync('dpkg', ['--version']).status !== 0 ? 'dpkg is not installed' : false }, async () => {
  const pairs: [string, string][] = [
    ['1.0', '1.0-0'], ['1.0~rc1', '1.0'], ['1.0~~', '1.0~'], ['1.0~', '1.0'], ['1:0.1', '2.0'], ['1.0a', '1.0+'], ['1.0+', '1.0.'],
    ['1.0-1', '1.0-1.1'], ['1.00', '1.0'], ['2.0-1+b1', '2.0-1'], ['0:1.2', '1.2'], ['1.2-3~bpo1', '1.2-3'], ['9', '10'], ['a', 'B'],
    ['1.0-a', '1.0-A'], ['1-2-3', '1-2'], ['1.2.3', '1.2.3.0'], ['3.11.2-6+deb12u9', '3.11.2-6+deb12u10'], ['1:1', '1:01'], ['0.0', '0'],
  ];
  const want = await dpkgOrder(pairs);
  pairs.forEach(([a, b], i) => assert.equal(sign(compareVersions(a, b)), want[i], `${a} vs ${b}`));
});

test('hundreds of pairs from the real index agree with dpkg', { skip: noAptLists() ?? false }, async () => {
  const versions = new Set<string>();
  const byName = new Map<string, Set<string>>();
  for (const text of packagesTexts()) {
    for (const m of text.matchAll(/^Package: (\S+)\n(?:[^\n]+\n)*?Version: (\S+)$/gm)) {
      versions.add(m[2]!);
      let s = byName.get(m[1]!);
      if (!s) byName.set(m[1]!, (s = new Set()));
      s.add(m[2]!);
    }
    for (const m of text.matchAll(/\((?:>=|<=|<<|>>|=) ([^)\s]+)\)/g)) versions.add(m[1]!);
  }
  const all = [...versions];
  assert.ok(all.length > 1000, `only ${all.length} versions found`);
  // Deterministic sample: a fixed-stride walk, plus neighbours in sorted order (the hard cases:
  // near-equal strings), plus every name with versions in several suites.
  const pairs: [string, string][] = [];
  const stride = Math.floor(all.length / 200);
  for (let i = 0; i < 200; i++) pairs.push([all[(i * stride) % all.length]!, all[(i * stride * 7 + 13) % all.length]!]);
  const sorted = [...all].sort();
  for (let i = 0; i < 200; i++) {
    const k = (i * Math.floor(sorted.length / 200)) % (sorted.length - 1);
    pairs.push([sorted[k]!, sorted[k + 1]!]);
  }
  for (const s of byName.values()) if (s.size > 1 && pairs.length < 600) { const [a, b] = [...s]; pairs.push([a!, b!]); }
  const want = await dpkgOrder(pairs);
  let bad = 0;
  pairs.forEach(([a, b], i) => {
    if (sign(compareVersions(a, b)) !== want[i]) bad++;
    assert.equal(sign(compareVersions(a, b)), want[i], `${a} vs ${b}`);
    assert.equal(sign(compareVersions(b, a)), -want[i]!, `${b} vs ${a}`);
  });
  assert.ok(pairs.length >= 500, `${pairs.length} pairs`);
  assert.equal(bad, 0);
});

test('relation operators', () => {
  assert.ok(satisfies('1.2-1', '>=', '1.2'));
  assert.ok(!satisfies('1.2~rc1', '>=', '1.2'));
  assert.ok(satisfies('1.2', '<<', '1.2.1'));
  assert.ok(satisfies('2:1', '>>', '1:9'));
  assert.ok(satisfies('1.0', '=', '1.0-0'));
});
