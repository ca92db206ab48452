/**
 * The ingest benchmark of issue 2: on a real tree of at least 1 GB (Debian release N: a few dozen
 * binary packages), ingest time and stored bytes for miq beside b3sum, `tar | zstd -3 -T2`,
 * `casync make` and `restic backup`, in the same run; then release N+1 (the same packages with
 * the security set updated) added to the same repository, the incremental case.
 *
 * `--small` (issue 13) adds the many-small-files corpus (corpus.ts SMALL) in the same run: its
 * whole tree into a new repository, then its release N and N+1 the same way.
 *
 * Usage: `node dist/benchmarks/ingest.js [--quick] [--small|--small-only] [--runs N]
 * [--tools miq,casync] [--before BIN]` (after `npm run build`). `--tools` keeps only the named
 * tools (a loaded machine cannot afford all five); `--before BIN` adds `miq before`, another
 * build's bin/miq, in the same run, so a change is judged against the code before it. Prints a
 * table of medians and the ratios the targets are judged by.
 */
import { join } from 'node:path';
import { fetchCorpus, findSet, FULL, QUICK, SMALL, type CorpusSpec } from './corpus.js';
import { runSeries, stepMedian, type Series } from './runner.js';
import { anchor, ensureAnchors, miqTool, type Tool } from './tools.js';
import { fmtBytes, fmtRatio, fmtSec, q, type Log } from './util.js';

export const INGEST_TOOLS = (): Tool[] => [miqTool(), anchor('b3sum'), anchor('tar+zstd'), anchor('casync'), anchor('restic')];

/** Another build of miq as a tool of the same run (`--before BIN`). */
export function miqBefore(bin: string): Tool {
  const t = miqTool();
  return { ...t, name: 'miq before', about: `miq ingest from ${bin} (the code before a change)`, env: { ...t.env, MIQ: bin } };
}

/**
 * Each tool's untimed `init` (before its first step of a run) reads every file of `dirs` once.
 * This host evicts idle file pages: without it whichever tool ran first read the trees from disk
 * and the others from memory (2026-12-02, one run: miq first on the full corpus 67.6 s, the
 * same build 30 s when warm).
 */
export function warmed(tools: Tool[], dirs: string[]): Tool[] {
  const cmd = `find ${dirs.map(q).join(' ')} -type f -print0 | xargs -0 -r cat > /dev/null`;
  return tools.map((t) => ({ ...t, init: t.init ? `${t.init} && ${cmd}` : cmd }));
}

/** `tools` narrowed to the names in `keep` (all when undefined), plus `extra`. */
export function pickTools(tools: Tool[], keep: string[] | undefined, extra: Tool[]): Tool[] {
  return [...(keep ? tools.filter((t) => keep.includes(t.name)) : tools), ...extra];
}

export async function runIngestBench(opts: { quick?: boolean; runs?: number; log?: Log; spec?: CorpusSpec; tools?: Tool[] }): Promise<Series> {
  const log = opts.log ?? (() => {});
  await ensureAnchors(log);
  const spec = opts.spec ?? (opts.quick ? QUICK : FULL);
  const m = await fetchCorpus(spec, { log });
  const n = findSet(m, 'debian-N');
  const n1 = findSet(m, 'debian-N1');
  return runSeries(
    spec === SMALL ? 'ingest-small' : 'ingest',
    warmed(opts.tools ?? INGEST_TOOLS(), [n.dir, n1.dir]),
    [
      { label: 'release N', dir: n.dir, bytes: n.stats.bytes, files: n.stats.files },
      { label: 'release N+1', dir: n1.dir, bytes: n1.stats.bytes, files: n1.stats.files },
    ],
    { runs: opts.runs ?? 3, work: join(m.cache, 'work'), log },
  );
}

/** The many-small-files corpus: its whole tree into a new repository (the full-ingest figure),
 * with miq and casync (and b3sum as a floor) in the same run. */
export async function runSmallFullBench(opts: { runs?: number; log?: Log; tools?: Tool[] }): Promise<Series> {
  const log = opts.log ?? (() => {});
  await ensureAnchors(log);
  const m = await fetchCorpus(SMALL, { log });
  const full = findSet(m, 'full');
  return runSeries('ingest-small-full', warmed(opts.tools ?? [miqTool(), anchor('b3sum'), anchor('casync')], [full.dir]), [{ label: 'all', dir: full.dir, bytes: full.stats.bytes, files: full.stats.files }], { runs: opts.runs ?? 3, work: join(m.cache, 'work'), log });
}

/** One-step series (a whole tree into a new repository): miq against each anchor. */
export function formatFull(s: Series): string {
  const [st] = s.steps;
  const out = [`${s.name}: ${st!.files} files, ${fmtBytes(st!.bytes)}; medians of ${s.runs} runs`];
  const med = (name: string) => {
    const t = s.tools.find((x) => x.tool.name === name);
    return t && t.available && !t.error ? { m: stepMedian(t.steps[0]!), timeOnly: !!t.tool.timeOnly } : undefined;
  };
  for (const t of s.tools) {
    const m = med(t.tool.name);
    out.push(m ? `${t.tool.name.padEnd(12)}${fmtSec(m.m.seconds).padEnd(12)}${m.timeOnly ? '—' : fmtBytes(m.m.total)}` : `${t.tool.name.padEnd(12)}${t.error ?? 'n/a'}`);
  }
  const miq = med('miq'), c = med('casync'), before = med('miq before');
  if (miq && before) out.push(`miq ÷ miq before: time ${fmtRatio(miq.m.seconds / before.m.seconds)}, stored ${fmtRatio(miq.m.total / before.m.total)}`);
  if (miq && c) {
    out.push(`target: miq time ≤ 0.4× casync: ${miq.m.seconds <= 0.4 * c.m.seconds ? 'holds' : 'not met'} (${fmtRatio(miq.m.seconds / c.m.seconds)})`);
    out.push(`target: miq stored ≤ casync: ${miq.m.total <= c.m.total ? 'holds' : 'not met'} (${fmtRatio(miq.m.total / c.m.total)})`);
  }
  return out.join('\n');
}

/** Plain-text table and the target ratios. */
export function formatIngest(s: Series): string {
  const out: string[] = [];
  const [n] = s.steps;
  out.push(`tree: ${n!.files} files, ${fmtBytes(n!.bytes)}; medians of ${s.runs} runs`);
  out.push(['tool', 'N time', 'N stored', 'N+1 time', 'N+1 added'].map((h) => h.padEnd(14)).join(''));
  const med = (name: string) => {
    const t = s.tools.find((x) => x.tool.name === name);
    if (!t || !t.available || t.error) return undefined;
    return { a: stepMedian(t.steps[0]!), b: stepMedian(t.steps[1]!), timeOnly: !!t.tool.timeOnly };
  };
  for (const t of s.tools) {
    const m = med(t.tool.name);
    if (!m) {
      out.push(`${t.tool.name.padEnd(14)}${t.error ?? 'n/a'}`);
      continue;
    }
    out.push(
      [t.tool.name, fmtSec(m.a.seconds), m.timeOnly ? '—' : fmtBytes(m.a.total), fmtSec(m.b.seconds), m.timeOnly ? '—' : fmtBytes(m.b.added)]
        .map((c) => c.padEnd(14))
        .join(''),
    );
  }
  const miq = med('miq');
  if (miq) {
    out.push('');
    for (const name of ['miq before', 'b3sum', 'tar+zstd', 'casync', 'restic']) {
      const a = med(name);
      if (!a) continue;
      const bytes = a.timeOnly ? '' : `, stored ${fmtRatio(miq.a.total / a.a.total)}`;
      out.push(`miq ÷ ${name}: time ${fmtRatio(miq.a.seconds / a.a.seconds)}${bytes}`);
    }
    const c = med('casync');
    if (c) {
      out.push(`target: miq time ≤ 0.4× casync: ${miq.a.seconds <= 0.4 * c.a.seconds ? 'holds' : 'not met'} (${fmtRatio(miq.a.seconds / c.a.seconds)})`);
      out.push(`target: miq stored ≤ casync: ${miq.a.total <= c.a.total ? 'holds' : 'not met'} (${fmtRatio(miq.a.total / c.a.total)})`);
    }
    const inc = miq.b.seconds / miq.a.seconds;
    out.push(`target: incremental N+1 ≤ ⅓ of full: ${inc <= 1 / 3 ? 'holds' : 'not met'} (${fmtRatio(inc)})`);
    const before = med('miq before');
    if (before) out.push(`miq before: N+1 at ${fmtRatio(before.b.seconds / before.a.seconds)} of full; miq ÷ miq before: N ${fmtRatio(miq.a.seconds / before.a.seconds)}, N+1 ${fmtRatio(miq.b.seconds / before.b.seconds)}, N+1 added ${fmtRatio(miq.b.added / before.b.added)}`);
  }
  return out.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const ri = args.indexOf('--runs');
  const runs = ri >= 0 ? { runs: Number(args[ri + 1]) } : {};
  const ti = args.indexOf('--tools');
  const keep = ti >= 0 ? args[ti + 1]!.split(',') : undefined;
  const bi = args.indexOf('--before');
  const extra = bi >= 0 ? [miqBefore(args[bi + 1]!)] : [];
  const log = (l: string) => process.stderr.write(`${l}\n`);
  (async () => {
    const out: string[] = [];
    if (!args.includes('--small-only')) out.push(formatIngest(await runIngestBench({ quick: args.includes('--quick'), ...runs, log, tools: pickTools(INGEST_TOOLS(), keep, extra) })));
    if (args.includes('--small') || args.includes('--small-only')) {
      out.push(formatFull(await runSmallFullBench({ ...runs, log, tools: pickTools([miqTool(), anchor('b3sum'), anchor('casync')], keep, extra) })));
      out.push(formatIngest(await runIngestBench({ spec: SMALL, ...runs, log, tools: pickTools([miqTool(), anchor('casync')], keep, extra) })));
    }
    return out.join('\n\n');
  })().then(
    (s) => process.stdout.write(`${s}\n`),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
