/**
 * `miq bench`: the report renderer on synthetic results (no network, no tools), and the real
 * `miq bench --quick` end to end on its small slice of real packages. Nothing here asserts a
 * wall-clock bound: the machine is shared and noisy; the report itself quotes ratios.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from '../benchmarks/bench.js';
import type { Manifest } from '../benchmarks/corpus.js';
import { renderReport, SECTIONS } from '../benchmarks/report.js';
import type { Series, StepRuns } from '../benchmarks/runner.js';
import { barChart, lineChart } from '../benchmarks/svg.js';
import { lazyRttChart, mountFromMarkdown, mountReadChart } from '../benchmarks/report-charts.js';
import { ANCHORS, miqTool } from '../benchmarks/tools.js';
import { median } from '../benchmarks/util.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Each section heading must be followed by a Markdown table before the next `## ` heading. */
function assertEveryTable(md: string): void {
  const lines = md.split('\n');
  for (const s of SECTIONS) {
    const at = lines.findIndex((l) => l.startsWith(`## ${s}`));
    assert.ok(at >= 0, `section "${s}" missing`);
    let end = lines.findIndex((l, i) => i > at && l.startsWith('## '));
    if (end < 0) end = lines.length;
    const body = lines.slice(at + 1, end);
    const header = body.findIndex((l) => l.startsWith('| '));
    assert.ok(header >= 0, `section "${s}" has no table`);
    assert.match(body[header + 1] ?? '', /^\| ---( \| ---)* \|$/, `section "${s}": table has no separator row`);
  }
}

function runs(seconds: number[], added: number[], total: number[]): StepRuns {
  return { seconds, added, total, reported: added };
}

test('median of odd and even counts', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test('charts are self-contained SVG with one bar or point per value', () => {
  const bar = barChart({ title: 'a & b', bars: [{ label: 'miq', value: 2, accent: true }, { label: 'casync', value: 3 }], format: String });
  assert.match(bar, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(bar, /<\/svg>$/);
  assert.match(bar, /a &amp; b/);
  assert.equal((bar.match(/<rect x="170"/g) ?? []).length, 2);
  const line = lineChart({
    title: 't',
    xLabels: ['1', '2', '3'],
    lines: [{ name: 'miq', values: [10, 1, 0.5] }, { name: 'casync', values: [10, 3, 2] }],
    format: String,
    logY: true,
  });
  assert.equal((line.match(/ class="pt"/g) ?? []).length, 6);
  assert.equal((line.match(/<polyline /g) ?? []).length, 2);
});

test('mount read and lazy-against-RTT charts say how to read them and show every system and link', () => {
  // The committed quiet mount run (Markdown form): four systems, cold and warm, throughput.
  const m = mountFromMarkdown(readFileSync(join(root, 'benchmarks', 'results', '2026-11-22-mount-quiet-all.md'), 'utf8'));
  assert.deepEqual(m.systems.map((s) => s.label), ['plain directory', 'miq mount, store/ view', 'miq mount, usr/ view (pointer, direct_io)', 'squashfuse (zstd image)']);
  assert.equal(m.systems[0]!.results.readCold!.median, 2.55);
  const mc = mountReadChart(m);
  assert.match(mc, /higher is better/);
  assert.match(mc, /cold read/);
  assert.equal((mc.match(/<rect x=/g) ?? []).length, 8, 'a bar per system, cold and warm');
  assert.match(mc, />706 MB\/s</, '1.80 GB in 2.55 s');
  assert.match(mc, />3\.83 GB\/s</, '1.80 GB in 0.47 s');
  // Lazy: three links with three runs each; whiskers drawn, x in proportion to the RTT.
  const row = (s: number) => ({ seconds: s, bytes: 1, requests: 1, all: [s * 0.9, s, s * 1.2] });
  const links = { loopback: { results: { lazy: row(0.6), curlTar: row(0.4) } }, '100mbit-10ms': { results: { lazy: row(1.4), curlTar: row(8) } }, '100mbit-30ms': { results: { lazy: row(2.1), curlTar: row(8.2) } } };
  const lc = lazyRttChart({ profileBytes: 160 * 2 ** 20, links });
  assert.match(lc, /lower is better/);
  assert.match(lc, /round-trip time/);
  assert.equal((lc.match(/class="pt"/g) ?? []).length, 6);
  assert.ok(lc.indexOf('>loopback<') < lc.indexOf('>10 ms<') && lc.indexOf('>10 ms<') < lc.indexOf('>30 ms<'));
  assert.equal((lc.match(/<path d="M[\d.]+,[\d.]+ V/g) ?? []).length, 6, 'a whisker per point');
});

test('report has every table and judges the targets from the figures', () => {
  const tools = [miqTool(), ...ANCHORS];
  const steps = [
    { label: 'v1', dir: '/x/1', bytes: 100e6, files: 10 },
    { label: 'v2', dir: '/x/2', bytes: 100e6, files: 10 },
  ];
  const series = (name: string, addedFor: (tool: string) => number, n = 2): Series => ({
    name,
    runs: 3,
    steps: steps.slice(0, n),
    tools: tools.map((t) => ({
      tool: t,
      available: t.name !== 'erofs',
      ...(t.name === 'erofs' ? { error: 'not installed' } : {}),
      probes: [{ uniqueChunks: 42, dbBytes: 1000 }],
      steps: steps.slice(0, n).map((_, i) =>
        runs([1, 2, 3].map((k) => (t.name === 'miq' ? 1 : 4) + k * 0.1), [addedFor(t.name), addedFor(t.name), addedFor(t.name)].map((a) => (i === 0 ? 50e6 : a)), [60e6, 60e6, 60e6]),
      ),
    })),
  });
  const sweep = ['4096/16384/65536', '16384/65536/262144'];
  const sweepSeries: Series = {
    name: 'sweep:security',
    runs: 3,
    steps,
    tools: sweep.map((c) => ({ tool: miqTool(c), available: true, probes: [{ uniqueChunks: 7, dbBytes: 10 }], steps: steps.map(() => runs([1], [1e6], [2e6])) })),
  };
  const manifest: Manifest = {
    spec: 'quick',
    cache: '/c',
    created: 'now',
    debianVersions: { libaom3: { point: '1', security: '2' } },
    trees: [],
    sets: [{ name: 'full', dir: '/c/full', members: ['a'], stats: { files: 1, dirs: 1, symlinks: 0, bytes: 1, inodeBytes: 1 } }],
  };
  const result: BenchResult = {
    date: '2026-01-01',
    quick: true,
    runs: 3,
    facts: { host: 'h', cpu: 'c', cores: 2, memoryGiB: 24, kernel: 'k', os: 'o', filesystem: 'ext4', node: 'v20', tools: { casync: '2' } },
    manifest,
    series: [
      series('releases:typescript', (t) => (t === 'miq' ? 1e6 : t === 'casync' ? 2e6 : 10e6)),
      series('security', (t) => (t === 'miq' ? 30e6 : t === 'casync' ? 29e6 : 40e6)),
      series('full', () => 0, 1),
      series('ingest', (t) => (t === 'miq' ? 1e6 : 2e6)),
      sweepSeries,
    ],
    sweep,
    reportPath: '/tmp/x.md',
  };
  const { markdown, charts } = renderReport(result, 'base');
  assertEveryTable(markdown);
  // releases: miq 1 MB vs best anchor casync 2 MB and file-level 10 MB: both hold.
  assert.match(markdown, /\| releases:typescript: miq adds no more than the best anchor \| [^|]+ \| \*\*yes\*\* \|/);
  assert.match(markdown, /\| releases:typescript: miq adds at most ½ of file-level dedup \| [^|]+ \| \*\*yes\*\* \|/);
  // security: casync adds less than miq: the report says so.
  assert.match(markdown, /\| security: miq adds no more than the best anchor \| miq 30.0 MB vs casync 29.0 MB \| \*\*no\*\* \|/);
  assert.match(markdown, /\| erofs \| not installed/);
  assert.ok(Object.keys(charts).length >= 4);
  for (const [name, svg] of Object.entries(charts)) {
    assert.match(name, /\.svg$/);
    assert.ok(markdown.includes(`](base/${name})`), `${name} is linked from the report`);
    assert.match(svg, /<\/svg>$/);
  }
});

test('miq bench refuses a scenario name it does not have and a run count that is not one', () => {
  const out = mkdtempSync(join(tmpdir(), 'miq-bench-bad-'));
  try {
    for (const [args, msg] of [[['--only', 'ful,nosuch'], /--only: no scenario starts with "nosuch"/], [['--runs', '0'], /--runs 0: expected a whole number/]] as const) {
      const r = spawnSync(join(root, 'bin', 'miq'), ['bench', '--out', out, ...args], { encoding: 'utf8' });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, msg);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
    assert.deepEqual(readdirSync(out), [], 'nothing was run or written');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

// One run, not three: the test checks the report's shape and that every tool produced figures;
// medians over runs are the benchmark's business, and three runs tripled the suite's longest file.
test('miq bench --quick writes a report with every table', { timeout: 20 * 60 * 1000 }, () => {
  const out = mkdtempSync(join(tmpdir(), 'miq-bench-'));
  try {
    const r = spawnSync(join(root, 'bin', 'miq'), ['bench', '--quick', '--runs', '1', '--out', out, '--json'], {
      encoding: 'utf8',
      env: { ...process.env, MIQ_BENCH_VERBOSE: '1' },
      maxBuffer: 64 * 1024 * 1024,
    });
    assert.equal(r.status, 0, `miq bench --quick failed:\n${r.stderr.slice(-3000)}`);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { report: string; series: string[] };
    for (const s of ['ingest', 'security', 'releases:typescript', 'full', 'sweep:security']) assert.ok(summary.series.includes(s), s);
    const md = readFileSync(summary.report, 'utf8');
    assertEveryTable(md);
    // miq itself must have produced figures (not "failed") in every scenario it ran in.
    for (const line of md.split('\n').filter((l) => l.startsWith('| miq |'))) assert.doesNotMatch(line, /failed|not installed/, line);
    const charts = readdirSync(summary.report.replace(/\.md$/, ''));
    assert.ok(charts.some((c) => c.endsWith('.svg')));
    assert.ok(charts.includes('results.json'));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
