/**
 * Turns a bench result into Markdown tables and SVG charts. Pure: data in, text out.
 * Every figure is a median over the runs; every ratio compares tools measured in the same run.
 */
import type { BenchResult } from './result.js';
import { stepMedian, type Series, type ToolSeries } from './runner.js';
import { barChart, lineChart } from './svg.js';
import { fmtBytes, fmtRatio, fmtSec } from './util.js';

/** The section headings a report always has (the test checks each is followed by a table). */
export const SECTIONS = [
  'Targets',
  'Full corpus',
  'Release after release',
  'Security update',
  'Ingest',
  'Chunk-size sweep',
  'Machine',
  'Corpus',
  'Commands',
] as const;

interface Row {
  name: string;
  ts: ToolSeries;
}

function usable(s: Series): Row[] {
  return s.tools.map((ts) => ({ name: ts.tool.name, ts }));
}

function ok(ts: ToolSeries): boolean {
  return ts.available && !ts.error && ts.steps.every((st) => st.seconds.length > 0);
}

/** Bytes added by steps 2..n (the updates), median per step, summed. */
function addedAfterFirst(ts: ToolSeries): number {
  if (!ok(ts) || ts.tool.timeOnly) return NaN;
  return ts.steps.slice(1).reduce((a, st) => a + stepMedian(st).added, 0);
}

function secondsAfterFirst(ts: ToolSeries): number {
  if (!ok(ts)) return NaN;
  return ts.steps.slice(1).reduce((a, st) => a + stepMedian(st).seconds, 0);
}

function cell(ts: ToolSeries, f: () => string): string {
  if (!ts.available) return 'not installed';
  if (ts.error) return 'failed';
  return f();
}

function find(series: Series[], name: string): Series | undefined {
  return series.find((s) => s.name === name);
}

function tool(s: Series | undefined, name: string): ToolSeries | undefined {
  return s?.tools.find((t) => t.tool.name === name);
}

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

function bestAnchor(s: Series): { name: string; added: number } | undefined {
  let best: { name: string; added: number } | undefined;
  for (const ts of s.tools) {
    if (ts.tool.env?.MIQ || ts.tool.name === 'file-level' || ts.tool.timeOnly) continue;
    const a = addedAfterFirst(ts);
    if (Number.isFinite(a) && (!best || a < best.added)) best = { name: ts.tool.name, added: a };
  }
  return best;
}

const yes = (b: boolean | undefined) => (b === undefined ? 'n/a' : b ? '**yes**' : '**no**');

/** What every report section shares: the Markdown lines so far, the charts, and the series the
 * sections look at. */
interface ReportCtx {
  md: string[];
  chart(name: string, svg: string, alt: string): void;
  releaseSeries: Series[];
  security: Series | undefined;
  full: Series | undefined;
  ingest: Series | undefined;
}

function sectionHeadline(_r: BenchResult, c: ReportCtx): void {
  const { md, full } = c;
  const fm = tool(full, 'miq');
  if (full && fm && ok(fm)) {
    const m = stepMedian(fm.steps[0]!);
    const parts: string[] = [];
    for (const ts of full.tools) {
      if (ts.tool.env?.MIQ || !ok(ts)) continue;
      const a = stepMedian(ts.steps[0]!);
      const bytes = ts.tool.timeOnly ? '' : `stored ${fmtRatio(m.total / a.total)}`;
      parts.push(`${ts.tool.name}: ${[bytes, `time ${fmtRatio(m.seconds / a.seconds)}`].filter(Boolean).join(', ')}`);
    }
    md.push('', `**Headline (full corpus, miq ÷ anchor):** ${parts.join('; ')}.`);
  }
}

function sectionTargets(_r: BenchResult, c: ReportCtx): void {
  const { md, releaseSeries, security, full, ingest } = c;
  md.push('', '## Targets', '');
  const trows: string[][] = [];
  for (const s of [...releaseSeries, ...(security ? [security] : [])]) {
    const m = tool(s, 'miq');
    const fl = tool(s, 'file-level');
    const best = bestAnchor(s);
    const ma = m ? addedAfterFirst(m) : NaN;
    const fa = fl ? addedAfterFirst(fl) : NaN;
    trows.push([
      `${s.name}: miq adds no more than the best anchor`,
      `miq ${fmtBytes(ma)} vs ${best ? `${best.name} ${fmtBytes(best.added)}` : 'n/a'}`,
      yes(best && Number.isFinite(ma) ? ma <= best.added : undefined),
    ]);
    trows.push([
      `${s.name}: miq adds at most ½ of file-level dedup`,
      `miq ${fmtBytes(ma)} vs file-level ${fmtBytes(fa)} (${fmtRatio(ma / fa)})`,
      yes(Number.isFinite(ma) && Number.isFinite(fa) ? ma <= fa / 2 : undefined),
    ]);
  }
  const timeTarget = (s: Series | undefined, label: string) => {
    const m = tool(s, 'miq');
    const c = tool(s, 'casync');
    if (!s || !m || !c || !ok(m) || !ok(c)) return;
    const mt = stepMedian(m.steps[0]!).seconds;
    const ct = stepMedian(c.steps[0]!).seconds;
    trows.push([`${label}: miq wall time ≤ ½ casync's`, `${fmtSec(mt)} vs ${fmtSec(ct)} (${fmtRatio(mt / ct)})`, yes(mt <= ct / 2)]);
    const mb = stepMedian(m.steps[0]!).total;
    const cb = stepMedian(c.steps[0]!).total;
    trows.push([`${label}: miq stored bytes ≤ casync's`, `${fmtBytes(mb)} vs ${fmtBytes(cb)} (${fmtRatio(mb / cb)})`, yes(mb <= cb)]);
  };
  timeTarget(full, 'full corpus');
  timeTarget(ingest, 'ingest (release N)');
  const im = tool(ingest, 'miq');
  if (im && ok(im) && im.steps.length > 1) {
    const f = stepMedian(im.steps[0]!).seconds;
    const i = stepMedian(im.steps[1]!).seconds;
    trows.push(['ingest: incremental (N+1 after N) ≤ ⅓ of full', `${fmtSec(i)} vs ${fmtSec(f)} (${fmtRatio(i / f)})`, yes(i <= f / 3)]);
  }
  md.push(table(['target', 'measured', 'holds'], trows.length ? trows : [['(no scenario ran)', '', 'n/a']]));
}

function sectionFullCorpus(_r: BenchResult, c: ReportCtx): void {
  const { md, chart, full } = c;
  const fm = tool(full, 'miq');
  md.push('', '## Full corpus', '');
  if (full) {
    const st = full.steps[0]!;
    md.push(`One step: ${st.files} files, ${fmtBytes(st.bytes)} (every name counted; hard links inside Debian packages make the unique inodes fewer).`, '');
    const m = fm && ok(fm) ? stepMedian(fm.steps[0]!) : undefined;
    md.push(
      table(
        ['tool', 'stored', 'stored ÷ input', 'miq ÷ tool (stored)', 'wall time', 'MB/s', 'miq ÷ tool (time)'],
        usable(full).map(({ name, ts }) => {
          const a = ok(ts) ? stepMedian(ts.steps[0]!) : undefined;
          return [
            name,
            cell(ts, () => (ts.tool.timeOnly ? '—' : fmtBytes(a!.total))),
            cell(ts, () => (ts.tool.timeOnly ? '—' : `${((a!.total / st.bytes) * 100).toFixed(1)} %`)),
            cell(ts, () => (ts.tool.timeOnly || !m ? '—' : fmtRatio(m.total / a!.total))),
            cell(ts, () => fmtSec(a!.seconds)),
            cell(ts, () => (st.bytes / 1e6 / a!.seconds).toFixed(0)),
            cell(ts, () => (m ? fmtRatio(m.seconds / a!.seconds) : '—')),
          ];
        }),
      ),
    );
    const okRows = full.tools.filter(ok);
    chart(
      'full-stored.svg',
      barChart({
        title: 'Full corpus, one ingest into an empty repository: bytes stored',
        subtitle: `lower is better · median of ${full.runs} runs (stored bytes do not vary between runs)`,
        bars: okRows.filter((t) => !t.tool.timeOnly).map((t) => ({ label: t.tool.name, value: stepMedian(t.steps[0]!).total, accent: !!t.tool.env?.MIQ })),
        format: fmtBytes,
      }),
      'stored bytes, full corpus',
    );
    chart(
      'full-time.svg',
      barChart({
        title: 'Full corpus, one ingest into an empty repository: wall time',
        subtitle: `lower is better · bar: median of ${full.runs} runs; whisker: fastest to slowest run`,
        bars: okRows.map((t) => ({ label: t.tool.name, value: stepMedian(t.steps[0]!).seconds, min: Math.min(...t.steps[0]!.seconds), max: Math.max(...t.steps[0]!.seconds), accent: !!t.tool.env?.MIQ })),
        format: fmtSec,
      }),
      'wall time, full corpus',
    );
  } else md.push(table(['tool', 'stored', 'wall time'], [['(not run)', '', '']]));
}

function sectionReleases(_r: BenchResult, c: ReportCtx): void {
  const { md, chart, releaseSeries } = c;
  md.push('', '## Release after release', '');
  md.push(
    'Each release added after the previous one to the same repository. The first column is the full ' +
      'first release; the others are the bytes each later release added. tar+zstd and erofs have no ' +
      'dedup across steps: each step is a new archive or image.',
  );
  if (!releaseSeries.length) md.push('', table(['tool', 'added'], [['(not run)', '']]));
  for (const s of releaseSeries) {
    md.push('', `### ${s.name.replace('releases:', '')}`, '');
    const m = tool(s, 'miq');
    const mAdded = m ? addedAfterFirst(m) : NaN;
    md.push(
      table(
        ['tool', ...s.steps.map((st, i) => (i === 0 ? `${st.label} (first)` : st.label)), 'added by updates', 'tool ÷ miq', 'update time'],
        usable(s)
          .filter(({ ts }) => !ts.tool.timeOnly)
          .map(({ name, ts }) => [
            name,
            ...s.steps.map((_, i) => cell(ts, () => fmtBytes(stepMedian(ts.steps[i]!).added))),
            cell(ts, () => fmtBytes(addedAfterFirst(ts))),
            cell(ts, () => fmtRatio(addedAfterFirst(ts) / mAdded)),
            cell(ts, () => fmtSec(secondsAfterFirst(ts))),
          ]),
      ),
    );
    chart(
      `${s.name.replace(/[^A-Za-z0-9]+/g, '-')}.svg`,
      lineChart({
        title: `${s.name.replace('releases:', '')}: bytes each release adds to the repository (log scale)`,
        subtitle: 'lower is better · median of the runs; first point: the whole first release',
        xLabels: s.steps.map((st) => st.label),
        lines: s.tools
          .filter((t) => ok(t) && !t.tool.timeOnly)
          .map((t) => ({ name: t.tool.name, values: t.steps.map((st) => stepMedian(st).added) })),
        format: fmtBytes,
        logY: true,
      }),
      `added bytes per release, ${s.name}`,
    );
  }
}

function sectionSecurity(_r: BenchResult, c: ReportCtx): void {
  const { md, chart, security } = c;
  md.push('', '## Security update', '');
  if (security) {
    const [a, b] = security.steps as [typeof security.steps[0], typeof security.steps[0]];
    md.push(
      `The Debian security set (${a.files} files, ${fmtBytes(a.bytes)}) at its point-release versions, then at its ` +
        'security-archive versions: patched rebuilds of the same upstream release.',
      '',
    );
    const m = tool(security, 'miq');
    const mAdded = m ? addedAfterFirst(m) : NaN;
    md.push(
      table(
        ['tool', 'point release: stored', 'security update: added', 'added ÷ update size', 'tool ÷ miq', 'update time'],
        usable(security)
          .filter(({ ts }) => !ts.tool.timeOnly)
          .map(({ name, ts }) => [
            name,
            cell(ts, () => fmtBytes(stepMedian(ts.steps[0]!).total)),
            cell(ts, () => fmtBytes(addedAfterFirst(ts))),
            cell(ts, () => `${((addedAfterFirst(ts) / b.bytes) * 100).toFixed(1)} %`),
            cell(ts, () => fmtRatio(addedAfterFirst(ts) / mAdded)),
            cell(ts, () => fmtSec(secondsAfterFirst(ts))),
          ]),
      ),
    );
    chart(
      'security-added.svg',
      barChart({
        title: 'Security update ingested after the release: bytes added',
        subtitle: 'lower is better · median of the runs',
        bars: security.tools
          .filter((t) => ok(t) && !t.tool.timeOnly)
          .map((t) => ({ label: t.tool.name, value: addedAfterFirst(t), accent: !!t.tool.env?.MIQ })),
        format: fmtBytes,
      }),
      'added bytes, security update',
    );
  } else md.push(table(['tool', 'added'], [['(not run)', '']]));
}

function sectionIngest(_r: BenchResult, c: ReportCtx): void {
  const { md, ingest } = c;
  const im = tool(ingest, 'miq');
  md.push('', '## Ingest', '');
  if (ingest) {
    const [n, n1] = ingest.steps as [typeof ingest.steps[0], typeof ingest.steps[0]];
    md.push(
      `Debian release N (${n.files} files, ${fmtBytes(n.bytes)}) into an empty repository, then release N+1 ` +
        `(${fmtBytes(n1.bytes)}: the same packages with the security set updated) into the same repository.`,
      '',
    );
    const m = im && ok(im) ? stepMedian(im.steps[0]!) : undefined;
    md.push(
      table(
        ['tool', 'N: wall time', 'N: MB/s', 'N: stored', 'miq ÷ tool (time)', 'miq ÷ tool (stored)', 'N+1: wall time', 'N+1: added', 'N+1 time ÷ N time'],
        usable(ingest).map(({ name, ts }) => {
          const a = ok(ts) ? stepMedian(ts.steps[0]!) : undefined;
          const b = ok(ts) ? stepMedian(ts.steps[1]!) : undefined;
          return [
            name,
            cell(ts, () => fmtSec(a!.seconds)),
            cell(ts, () => (n.bytes / 1e6 / a!.seconds).toFixed(0)),
            cell(ts, () => (ts.tool.timeOnly ? '—' : fmtBytes(a!.total))),
            cell(ts, () => (m ? fmtRatio(m.seconds / a!.seconds) : '—')),
            cell(ts, () => (m && !ts.tool.timeOnly ? fmtRatio(m.total / a!.total) : '—')),
            cell(ts, () => fmtSec(b!.seconds)),
            cell(ts, () => (ts.tool.timeOnly ? '—' : fmtBytes(b!.added))),
            cell(ts, () => fmtRatio(b!.seconds / a!.seconds)),
          ];
        }),
      ),
    );
  } else md.push(table(['tool', 'wall time'], [['(not run)', '']]));
}

function sectionSweep(r: BenchResult, c: ReportCtx): void {
  const { md, chart } = c;
  md.push('', '## Chunk-size sweep', '');
  const sweeps = r.series.filter((s) => s.name.startsWith('sweep:'));
  if (sweeps.length) {
    md.push(
      'miq with different content-defined chunking parameters (MIQ_CHUNK = min/avg/max bytes, fixed when the ' +
        'store is created). Smaller chunks find more shared runs but cost more index entries and per-chunk ' +
        'overhead; "stored" includes the database.',
      '',
    );
    const head = ['setting'];
    for (const s of sweeps) head.push(`${s.name.replace('sweep:', '')}: added`, `${s.name.replace('sweep:', '')}: stored`);
    head.push('unique chunks (last)', 'db bytes (last)', 'update time (last)');
    const rows: string[][] = r.sweep.map((c) => {
      const row = [c];
      let last: ToolSeries | undefined;
      for (const s of sweeps) {
        const ts = tool(s, `miq ${c}`);
        last = ts;
        row.push(ts ? cell(ts, () => fmtBytes(addedAfterFirst(ts))) : 'n/a');
        row.push(ts ? cell(ts, () => fmtBytes(stepMedian(ts.steps[ts.steps.length - 1]!).total)) : 'n/a');
      }
      const probe = last?.probes[0] as { uniqueChunks?: number; dbBytes?: number } | undefined;
      row.push(probe?.uniqueChunks !== undefined ? String(probe.uniqueChunks) : 'n/a');
      row.push(probe?.dbBytes !== undefined ? fmtBytes(probe.dbBytes) : 'n/a');
      row.push(last ? cell(last, () => fmtSec(secondsAfterFirst(last!))) : 'n/a');
      return row;
    });
    md.push(table(head, rows));
    for (const s of sweeps) {
      chart(
        `${s.name.replace(/[^A-Za-z0-9]+/g, '-')}.svg`,
        barChart({
          title: `Chunk-size sweep, ${s.name.replace('sweep:', '')}: bytes added by updates`,
          subtitle: 'lower is better · median of the runs',
          bars: s.tools.filter(ok).map((t) => ({ label: t.tool.name.replace('miq ', ''), value: addedAfterFirst(t), accent: true })),
          format: fmtBytes,
        }),
        `chunk-size sweep, ${s.name}`,
      );
    }
  } else md.push(table(['setting', 'added'], [['(not run)', '']]));
}

function sectionMachine(r: BenchResult, c: ReportCtx): void {
  const { md } = c;
  md.push('', '## Machine', '');
  const f = r.facts;
  md.push(
    table(
      ['fact', 'value'],
      [
        ['host', f.host],
        ['cpu', `${f.cpu}, ${f.cores} cores`],
        ['memory', `${f.memoryGiB} GiB`],
        ['os / kernel', `${f.os} / ${f.kernel}`],
        ['filesystem of the work dir', f.filesystem],
        ['node', f.node],
        ...Object.entries(f.tools).map(([k, v]) => [k, v]),
      ],
    ),
  );
}

function sectionCorpus(r: BenchResult, c: ReportCtx): void {
  const { md } = c;
  md.push('', '## Corpus', '');
  md.push('Fetched with `npm pack` and `apt-get download`, unpacked with `tar` and `dpkg-deb -x`; nothing is committed.', '');
  md.push(
    table(
      ['set', 'packages', 'files', 'bytes'],
      r.manifest.sets.map((s) => [s.name, String(s.members.length), String(s.stats.files), fmtBytes(s.stats.bytes)]),
    ),
  );
  const npm = r.manifest.trees.filter((t) => t.kind === 'npm');
  const pkgs = [...new Set(npm.map((t) => t.pkg))];
  md.push('', `npm releases: ${pkgs.map((p) => `${p} ${npm.filter((t) => t.pkg === p).map((t) => t.version).join(', ')}`).join('; ')}.`);
  const sec = Object.entries(r.manifest.debianVersions).filter(([, v]) => v.security);
  if (sec.length) md.push('', `Debian security set (point → security): ${sec.map(([p, v]) => `${p} ${v.point} → ${v.security}`).join('; ')}.`);
  const baseP = Object.entries(r.manifest.debianVersions).filter(([, v]) => !v.security);
  if (baseP.length) md.push('', `Debian base packages: ${baseP.map(([p, v]) => `${p} ${v.point}`).join('; ')}.`);
}

function sectionCommands(r: BenchResult, c: ReportCtx): void {
  const { md } = c;
  md.push('', '## Commands', '');
  const seen = new Map<string, ToolSeries>();
  for (const s of r.series) for (const ts of s.tools) if (!seen.has(ts.tool.name)) seen.set(ts.tool.name, ts);
  md.push(
    table(
      ['tool', 'what', 'init (untimed)', 'each step (timed)', 'env'],
      [...seen.values()].map((ts) => [
        ts.tool.name,
        ts.tool.about,
        ts.tool.init ? `\`${ts.tool.init}\`` : '—',
        `\`${ts.tool.step.replace(/\|/g, '\\|')}\``,
        Object.entries(ts.tool.env ?? {})
          .filter(([k]) => k !== 'MIQ' && k !== 'FILELEVEL')
          .map(([k, v]) => `${k}=${v}`)
          .join(' ') || '—',
      ]),
    ),
  );
  md.push('', '`$MIQ` is `bin/miq`; `$FILELEVEL` is `dist/benchmarks/filelevel.js`; `$REPO` is a fresh folder per tool and run; `$DIR` the tree of the step; `$I` the step number.');
  const errors = r.series.flatMap((s) => s.tools.filter((t) => t.error).map((t) => `- ${s.name} / ${t.tool.name}: ${t.error}`));
  if (errors.length) md.push('', '### Tools that did not run', '', ...errors);
  md.push('');
}

export function renderReport(r: BenchResult, base: string): { markdown: string; charts: Record<string, string> } {
  const charts: Record<string, string> = {};
  const md: string[] = [];
  const chart = (name: string, svg: string, alt: string) => {
    charts[name] = svg;
    md.push('', `![${alt}](${base}/${name})`);
  };
  const releaseSeries = r.series.filter((s) => s.name.startsWith('releases:'));
  const security = find(r.series, 'security');
  const full = find(r.series, 'full');
  const ingest = find(r.series, 'ingest');

  md.push(`# miq dedup benchmark: ${r.date}, ${r.facts.host}${r.quick ? ' (quick slice)' : ''}`, '');
  md.push(
    `Written by \`miq bench${r.quick ? ' --quick' : ''}\`. Every figure is the median of ${r.runs} run${r.runs > 1 ? 's' : ''}; ` +
      'tools run one after the other, interleaved and rotated between runs, on the same trees in the same run, ' +
      'so compare ratios, not absolute times, across machines. Inputs are read warm from the page cache. ' +
      'Wall time of a step is the command plus `sync -f` of the repository, so tools that flush and tools that ' +
      'leave dirty pages pay the same. Stored bytes: apparent size of everything in the repository or image ' +
      '(caches and config kept beside it are not counted).',
  );
  const c: ReportCtx = { md, chart, releaseSeries, security, full, ingest };
  sectionHeadline(r, c);
  sectionTargets(r, c);
  sectionFullCorpus(r, c);
  sectionReleases(r, c);
  sectionSecurity(r, c);
  sectionIngest(r, c);
  sectionSweep(r, c);
  sectionMachine(r, c);
  sectionCorpus(r, c);
  sectionCommands(r, c);
  return { markdown: md.join('\n'), charts };
}
