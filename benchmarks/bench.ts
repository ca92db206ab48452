/**
 * `miq bench`: the dedup benchmark suite (issue 6) and the ingest benchmark (issue 2) in one run.
 * Fetches the corpus, runs miq and every anchor on the same trees, and writes a Markdown report
 * with SVG charts and the raw figures.
 *
 * Scenarios (each a series of trees added one after the other to a fresh repository):
 * - releases:<pkg>  consecutive npm releases; added bytes per release;
 * - security        the Debian security set at point-release then at security versions;
 * - full            the whole corpus in one step: stored bytes and wall time;
 * - ingest          (issue 2) Debian release N then N+1 (≥ 1 GB each) for miq, b3sum, tar+zstd,
 *                   casync and restic: full and incremental ingest;
 * - sweep:*         miq at several chunk-size settings over the releases and the security update.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fetchCorpus, findSet, FULL, npmSeries, QUICK, type Manifest } from './corpus.js';
import { machineFacts } from './machine.js';
import { renderReport } from './report.js';
import { runSeries, type Series, type Step } from './runner.js';
import { INGEST_TOOLS } from './ingest.js';
import { ANCHORS, ensureAnchors, miqTool, repoRoot, type Tool } from './tools.js';
import { quiet, type Log } from './util.js';
import type { BenchResult } from './result.js';

export type { BenchResult };

export interface BenchOptions {
  quick?: boolean;
  /** Folder for the report (`<date>-<machine>.md`) and its charts. */
  out?: string;
  runs?: number;
  /** Scenario names to run (prefix match); all by default. */
  only?: string[];
  /** Chunk settings for the sweep, "MIN/AVG/MAX" in bytes. */
  sweep?: string[];
  /** Keep the scenarios of an earlier run written to the same report whose tools all ran. */
  resume?: boolean;
  /** Install missing anchors with apt-get (default true). */
  install?: boolean;
  cache?: string;
  work?: string;
  log?: Log;
}


export const DEFAULT_SWEEP = ['4096/16384/65536', '8192/32768/131072', '16384/65536/262144', '65536/262144/1048576'];
export const QUICK_SWEEP = ['4096/16384/65536', '16384/65536/262144', '65536/262144/1048576'];

function stepsOf(trees: { label: string; dir: string; bytes: number; files: number }[]): Step[] {
  return trees;
}

function setStep(m: Manifest, name: string, label = name): Step {
  const s = findSet(m, name);
  return { label, dir: s.dir, bytes: s.stats.bytes, files: s.stats.files };
}

export async function runBench(opts: BenchOptions = {}): Promise<BenchResult> {
  const log = opts.log ?? quiet;
  const quick = !!opts.quick;
  const spec = quick ? QUICK : FULL;
  const runs = opts.runs ?? 3;
  const sweep = opts.sweep ?? (quick ? QUICK_SWEEP : DEFAULT_SWEEP);
  const want = (name: string) => !opts.only?.length || opts.only.some((o) => name.startsWith(o));
  if (opts.install !== false) await ensureAnchors(log);
  const manifest = await fetchCorpus(spec, { log, ...(opts.cache ? { cache: opts.cache } : {}) });
  // One scratch folder per invocation: two benches at once (a test beside a full run) must not
  // clear each other's repositories.
  const work = opts.work ?? join(manifest.cache, 'work', `${spec.name}-${process.pid}`);
  const facts = await machineFacts(work.replace(/\/work$/, '') || '/');
  const series: Series[] = [];
  const everyone: Tool[] = [miqTool(), ...ANCHORS];
  const date = new Date().toISOString().slice(0, 10);
  const out = opts.out ?? join(process.cwd(), 'bench-results');
  const base = `${date}-${facts.host.replace(/[^A-Za-z0-9._-]/g, '_')}${quick ? '-quick' : ''}`;
  const chartsDir = join(out, base);
  const result: BenchResult = { date, quick, runs, facts, manifest, series, sweep, reportPath: join(out, `${base}.md`) };
  // Rewritten after every scenario, so a long run that is stopped still leaves a report.
  const write = async () => {
    await mkdir(chartsDir, { recursive: true });
    const { markdown, charts } = renderReport(result, base);
    for (const [name, svg] of Object.entries(charts)) await writeFile(join(chartsDir, name), `${svg}\n`);
    await writeFile(join(chartsDir, 'results.json'), `${JSON.stringify({ ...result, manifest: summariseManifest(manifest) }, null, 1)}\n`);
    await writeFile(result.reportPath, markdown);
  };
  const earlier = new Map<string, Series>();
  if (opts.resume) {
    try {
      const old = JSON.parse(await readFile(join(chartsDir, 'results.json'), 'utf8')) as { series: Series[] };
      for (const s of old.series) if (s.tools.every((t) => !t.available || !t.error)) earlier.set(s.name, s);
    } catch {
      /* nothing to resume */
    }
  }
  const run = async (name: string, tools: Tool[], steps: Step[]) => {
    if (!want(name)) return;
    const kept = earlier.get(name);
    if (kept) {
      log(`${name}: kept from the earlier run`);
      series.push(kept);
      return;
    }
    series.push(await runSeries(name, tools, steps, { runs, work, log }));
    await write();
  };

  await run('ingest', INGEST_TOOLS(), [
    setStep(manifest, 'debian-N', 'release N'),
    setStep(manifest, 'debian-N1', 'release N+1'),
  ]);
  await run('security', everyone, [setStep(manifest, 'security-old', 'point release'), setStep(manifest, 'security-new', 'security update')]);
  const npmPkgs = spec.npm.map((s) => s.pkg);
  for (const pkg of npmPkgs) {
    const steps = stepsOf(
      npmSeries(manifest, pkg).map((t) => ({ label: t.version, dir: t.dir, bytes: t.stats.bytes, files: t.stats.files })),
    );
    await run(`releases:${pkg}`, everyone, steps);
  }
  await run('full', everyone, [setStep(manifest, 'full', 'full corpus')]);
  const sweepTools = sweep.map((c) => miqTool(c));
  const firstPkg = npmPkgs[0];
  if (firstPkg) {
    const steps = npmSeries(manifest, firstPkg).map((t) => ({ label: t.version, dir: t.dir, bytes: t.stats.bytes, files: t.stats.files }));
    await run(`sweep:releases:${firstPkg}`, sweepTools, steps);
  }
  await run('sweep:security', sweepTools, [setStep(manifest, 'security-old', 'point release'), setStep(manifest, 'security-new', 'security update')]);

  await write();
  await rm(work, { recursive: true, force: true });
  return result;
}

/** The manifest without local paths: what was measured, for the committed results. */
export function summariseManifest(m: Manifest): unknown {
  return {
    spec: m.spec,
    debianVersions: m.debianVersions,
    trees: m.trees.map((t) => ({ id: t.id, role: t.role, archiveBytes: t.archiveBytes, ...t.stats })),
    sets: m.sets.map((s) => ({ name: s.name, members: s.members.length, ...s.stats })),
  };
}

export { repoRoot };
