/** `miq bench`: runs the dedup benchmark suite and writes its Markdown report (benchmarks/bench.ts). */
import type { Command } from 'commander';
import { runBench } from '../benchmarks/bench.js';
import { MiqError } from '../store/errors.js';

const SCENARIOS = ['releases', 'security', 'full', 'ingest', 'sweep'];

export function register(program: Command): void {
  program
    .command('bench')
    .description('measure ingest time and dedup of miq beside casync, restic, borg, OSTree, squashfs, erofs and file-level dedup; write a Markdown report')
    .option('--quick', 'a small slice in a couple of minutes')
    .option('--out <dir>', 'folder for the report and its charts', 'bench-results')
    .option('--runs <n>', 'runs per figure (the median is reported)')
    .option('--only <names>', 'comma-separated scenario prefixes: releases, security, full, ingest, sweep')
    .option('--sweep <settings>', 'comma-separated chunk settings MIN/AVG/MAX for the sweep')
    .option('--resume', 'keep scenarios already in this report whose tools all ran; run the rest')
    .option('--no-install', 'do not apt-get install missing anchors')
    .option('--json', 'print the result summary as JSON')
    .action(async (o: { quick?: boolean; out: string; runs?: string; only?: string; sweep?: string; install: boolean; resume?: boolean; json?: boolean }) => {
      for (const name of o.only?.split(',') ?? []) {
        if (!name || !SCENARIOS.some((s) => s.startsWith(name) || name.startsWith(`${s}:`))) throw new MiqError('MIQ_BAD_INPUT', `--only: no scenario starts with "${name}"; the scenarios are ${SCENARIOS.join(', ')}`);
      }
      if (o.runs !== undefined && !/^[1-9][0-9]*$/.test(o.runs)) throw new MiqError('MIQ_BAD_INPUT', `--runs ${o.runs}: expected a whole number of runs, 1 or more`);
      const r = await runBench({
        quick: !!o.quick,
        out: o.out,
        ...(o.runs ? { runs: Number(o.runs) } : o.quick ? { runs: 1 } : {}),
        ...(o.only ? { only: o.only.split(',') } : {}),
        ...(o.sweep ? { sweep: o.sweep.split(',') } : {}),
        install: o.install,
        resume: !!o.resume,
        log: process.stderr.isTTY || process.env.MIQ_BENCH_VERBOSE ? (l) => process.stderr.write(`${l}\n`) : () => {},
      });
      if (o.json) process.stdout.write(`${JSON.stringify({ report: r.reportPath, series: r.series.map((s) => s.name) })}\n`);
      else process.stdout.write(`${r.reportPath}\n`);
    });
}
