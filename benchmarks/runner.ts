/**
 * Runs a series of trees (release after release) through each tool into a fresh repository and
 * records, per step, wall time, bytes the step added and the repository's total. Several runs,
 * tools interleaved and rotated between runs so that the machine's noise falls on all of them;
 * figures are medians.
 *
 * Wall time of a step = the command plus `sync -f` on the repository's filesystem: some tools
 * flush their writes and some leave them in the page cache, and both should pay for durability.
 * The input trees are read warm (the corpus fits in memory and was just walked).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { available, type Tool } from './tools.js';
import { median, quiet, sh, storedBytes, type Log } from './util.js';

export interface Step {
  label: string;
  dir: string;
  bytes: number;
  files: number;
}

export interface StepRuns {
  seconds: number[];
  added: number[];
  total: number[];
  /** miq's own `newBytes` from `--json`. */
  reported: number[];
}

export interface ToolSeries {
  tool: Tool;
  available: boolean;
  error?: string;
  steps: StepRuns[];
  /** Parsed output of the tool's probe, one per run. */
  probes: unknown[];
}

export interface Series {
  name: string;
  steps: Step[];
  tools: ToolSeries[];
  runs: number;
}

export function stepMedian(s: StepRuns): { seconds: number; added: number; total: number; reported: number } {
  return { seconds: median(s.seconds), added: median(s.added), total: median(s.total), reported: median(s.reported) };
}

function slug(s: string): string {
  return s.replace(/[^A-Za-z0-9]+/g, '-');
}

async function cleanRepo(repo: string): Promise<void> {
  for (const p of [repo, `${repo}.cache`, `${repo}.base`]) await rm(p, { recursive: true, force: true });
}

async function runToolOnce(t: Tool, steps: Step[], repo: string, log: Log): Promise<{ steps: StepRuns[]; probe?: unknown }> {
  await cleanRepo(repo);
  await mkdir(repo, { recursive: true });
  const env = { ...t.env, REPO: repo };
  if (t.init) await sh(t.init, { env });
  const out: StepRuns[] = [];
  let before = t.timeOnly ? 0 : await storedBytes(repo);
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i]!;
    const r = await sh(t.step, { env: { ...env, DIR: s.dir, I: String(i) } });
    const f = await sh(`sync -f ${JSON.stringify(repo)}`, { check: false });
    const seconds = r.seconds + f.seconds;
    if (t.settle) await sh(t.settle, { env: { ...env, DIR: s.dir, I: String(i) } });
    let reported = NaN;
    if (t.env?.MIQ) {
      const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (line) reported = Number((JSON.parse(line) as { newBytes?: number }).newBytes);
    }
    const total = t.timeOnly ? NaN : await storedBytes(repo);
    out.push({ seconds: [seconds], added: [total - before], total: [total], reported: [reported] });
    log(`  ${t.name} ${s.label}: ${seconds.toFixed(2)} s${t.timeOnly ? '' : `, +${((total - before) / 1e6).toFixed(2)} MB`}`);
    before = total;
  }
  let probe: unknown;
  if (t.probe) {
    const p = await sh(t.probe, { env, check: false });
    try {
      probe = JSON.parse(p.stdout.trim().split('\n').pop() ?? '');
    } catch {
      probe = undefined;
    }
  }
  await cleanRepo(repo);
  return { steps: out, probe };
}

export async function runSeries(
  name: string,
  tools: Tool[],
  steps: Step[],
  opts: { runs: number; work: string; log?: Log },
): Promise<Series> {
  const log = opts.log ?? quiet;
  const results: ToolSeries[] = [];
  for (const t of tools) {
    const ok = await available(t);
    const ts: ToolSeries = {
      tool: t,
      available: ok,
      steps: steps.map(() => ({ seconds: [], added: [], total: [], reported: [] })),
      probes: [],
    };
    if (!ok) ts.error = 'not installed';
    results.push(ts);
  }
  await mkdir(opts.work, { recursive: true });
  for (let run = 0; run < opts.runs; run++) {
    log(`${name}: run ${run + 1}/${opts.runs}`);
    const order = results.filter((r) => r.available && !r.error);
    const rot = order.length ? run % order.length : 0;
    for (const ts of [...order.slice(rot), ...order.slice(0, rot)]) {
      const repo = join(opts.work, slug(`${name}-${ts.tool.name}`));
      try {
        const once = await runToolOnce(ts.tool, steps, repo, log);
        if (once.probe !== undefined) ts.probes.push(once.probe);
        once.steps.forEach((s, i) => {
          const acc = ts.steps[i]!;
          acc.seconds.push(...s.seconds);
          acc.added.push(...s.added);
          acc.total.push(...s.total);
          acc.reported.push(...s.reported);
        });
      } catch (e) {
        ts.error = (e instanceof Error ? e.message : String(e)).split('\n').slice(0, 3).join(' ').slice(0, 300);
        log(`  ${ts.tool.name} failed: ${ts.error}`);
        await cleanRepo(repo);
      }
    }
  }
  return { name, steps, tools: results, runs: opts.runs };
}
