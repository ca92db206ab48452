/**
 * The two charts users ask about first, from the results of benchmarks/mount.ts and
 * benchmarks/lazy.ts: how fast files read through the mount (views, backends, squashfuse, a
 * plain directory), and how long a program's first start from a lazy mount takes as the network's
 * round trip grows. Pure: data in, SVG out; the CLI at the bottom writes the files.
 *
 *   node dist/benchmarks/report-charts.js --mount R.json|R.md --lazy L.json --out DIR
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { barChart, lineChart, type Bar } from './svg.js';
import { MiqError } from '../store/errors.js';

type MetricId = 'readCold' | 'readWarm' | 'findCold' | 'findWarm' | 'duCold' | 'duWarm' | 'largeCold' | 'pyCold' | 'pyColdRecall' | 'pyWarm';

/** benchmarks/mount.ts --json (shape in .notes/fuse-needs.md §9); only what the chart reads. */
export interface MountBenchResult {
  kind: 'mount';
  date: string;
  tree: { bytes: number; files: number };
  rounds: number;
  loadavg?: { end: number[] };
  systems: { id: string; label: string; results: Partial<Record<MetricId, { runs: number[]; median: number; ratio?: number }>> }[];
}

const GB = 1e9;

/**
 * The older Markdown form of benchmarks/mount.ts (a table per run: `| target | cold read | vs
 * plain | warm re-read | …`), read into the same shape: medians only, no runs (no spread).
 */
export function mountFromMarkdown(md: string, section?: string): MountBenchResult {
  const text = section ? md.slice(Math.max(0, md.indexOf(section))) : md;
  const tree = /Tree: ([\d.]+) GB, (\d+) files/.exec(md);
  if (!tree) throw new MiqError('MIQ_BAD_INPUT', 'not a mount benchmark report: no "Tree: N GB, M files" line');
  const rows = text.split('\n').filter((l) => /^\| [^-|][^|]*\| [\d.]+ s \(/.test(l));
  const systems: MountBenchResult['systems'] = [];
  for (const l of rows) {
    const cells = l.split('|').slice(1, -1).map((c) => c.trim());
    if (systems.some((s) => s.label === cells[0])) break; // the next table of the file
    const sec = (c: string): number => Number(/^([\d.]+)/.exec(c)![1]);
    systems.push({ id: cells[0]!, label: cells[0]!, results: { readCold: { runs: [], median: sec(cells[1]!) }, readWarm: { runs: [], median: sec(cells[3]!) } } });
  }
  const load = /load average ([\d.]+) ([\d.]+) ([\d.]+) at the end/.exec(md);
  return { kind: 'mount', date: /\((\d{4}-\d\d-\d\d)\)/.exec(md)?.[1] ?? '', ...(load ? { loadavg: { end: load.slice(1).map(Number) } } : {}), tree: { bytes: Number(tree[1]) * GB, files: Number(tree[2]) }, rounds: Number(/Median of (\d+)/.exec(md)?.[1] ?? 1), systems };
}

/** Read throughput (GB/s) per system, cold and warm, with the spread of the rounds. */
export function mountReadChart(r: MountBenchResult): string {
  const bars: Bar[] = [];
  for (const [metric, group] of [['readCold', 'cold read (page cache dropped, server restarted)'], ['readWarm', 'warm re-read']] as const) {
    for (const s of r.systems) {
      const m = s.results[metric];
      if (!m) continue;
      const gbs = (sec: number): number => r.tree.bytes / GB / sec;
      bars.push({
        group, label: s.label.replace(/^miq mount, /, 'miq '), value: gbs(m.median), accent: /miq/.test(s.label),
        ...(m.runs.length > 1 ? { min: gbs(Math.max(...m.runs)), max: gbs(Math.min(...m.runs)) } : {}),
      });
    }
  }
  const load = r.loadavg ? ` · load ${r.loadavg.end[0]!.toFixed(1)} at the end` : '';
  return barChart({
    title: `Reading every file of a ${(r.tree.bytes / GB).toFixed(2)} GB tree (${r.tree.files} files) through the mount`,
    subtitle: `higher is better · the tree's bytes ÷ seconds, median of ${r.rounds} round${r.rounds > 1 ? 's' : ''}${r.systems.some((s) => (s.results.readCold?.runs.length ?? 0) > 1) ? '; whisker: slowest to fastest round' : ''}${load} · ${r.date.slice(0, 10)}`,
    bars,
    format: (v) => (v >= 1 ? `${v.toFixed(2)} GB/s` : `${(v * 1000).toFixed(v < 0.1 ? 1 : 0)} MB/s`),
  });
}

/** benchmarks/lazy.ts --json with --rtts: one link per RTT. */
export interface LazyResult {
  profileBytes: number;
  links: Record<string, { results: Record<string, { seconds: number; bytes: number; requests: number; all?: number[] }> }>;
}

const METHODS: [string, string][] = [
  ['lazy', 'miq lazy mount + first run'],
  ['lazyWithHints', 'the same, with a prefetch list'],
  ['lazyMountReady', 'of which: mount ready'],
  ['miqFetch', 'miq fetch (whole profile)'],
  ['curlTar', 'curl + zstd + tar (whole profile)'],
];

/** First start of a program from a cold lazy mount against the round-trip time, beside full downloads. */
export function lazyRttChart(r: LazyResult, note = ''): string {
  const links = Object.entries(r.links)
    .map(([name, v]) => ({ name, rtt: name === 'loopback' ? 0 : Number(/-(\d+(?:\.\d+)?)ms$/.exec(name)?.[1]), mbit: /^(\d+)mbit/.exec(name)?.[1], v }))
    .filter((l) => Number.isFinite(l.rtt))
    .sort((a, b) => a.rtt - b.rtt);
  const mbit = links.find((l) => l.mbit)?.mbit;
  const lines = METHODS.filter(([k]) => links.some((l) => l.v.results[k])).map(([k, name]) => ({
    name,
    values: links.map((l) => l.v.results[k]?.seconds ?? NaN),
    spread: links.map((l) => { const a = l.v.results[k]?.all; return a && a.length > 1 ? { min: Math.min(...a), max: Math.max(...a) } : undefined; }),
  }));
  const runs = Math.max(...links.flatMap((l) => Object.values(l.v.results).map((x) => x.all?.length ?? 1)));
  return lineChart({
    title: `Time to a program's first start from a lazy mount, against network round-trip time`,
    subtitle: `lower is better · python3 -c 'import json, email.parser' from a ${(r.profileBytes / 2 ** 20).toFixed(0)} MiB profile${mbit ? `, ${mbit} Mbit/s link` : ''} · median of ${runs}${runs > 1 ? ', whisker: fastest to slowest' : ''}${note ? ` · ${note}` : ''}`,
    xLabels: links.map((l) => (l.rtt === 0 ? 'loopback' : `${l.rtt} ms`)),
    xValues: links.map((l) => l.rtt),
    xTitle: 'round-trip time (loopback: nginx on 127.0.0.1, no emulated link)',
    lines,
    format: (v) => `${v.toFixed(v < 10 ? 1 : 0)} s`,
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (n: string): string | undefined => { const i = process.argv.indexOf(n); return i > 0 ? process.argv[i + 1] : undefined; };
  const out = arg('--out') ?? '.';
  const mount = arg('--mount');
  if (mount) {
    const text = readFileSync(mount, 'utf8');
    const r = mount.endsWith('.json') ? (JSON.parse(text) as MountBenchResult) : mountFromMarkdown(text, arg('--section'));
    writeFileSync(join(out, 'mount-read.svg'), mountReadChart(r));
    process.stdout.write(`${join(out, 'mount-read.svg')}\n`);
  }
  const lazy = arg('--lazy');
  if (lazy) {
    writeFileSync(join(out, 'lazy-rtt.svg'), lazyRttChart(JSON.parse(readFileSync(lazy, 'utf8')) as LazyResult, arg('--note')));
    process.stdout.write(`${join(out, 'lazy-rtt.svg')}\n`);
  }
}
