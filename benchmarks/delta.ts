/**
 * Issue 6 §3, "beyond plain chunking": the same update series ingested with delta chunks (the
 * default) and without (MIQ_NO_DELTA=1), in one run, medians of --runs. Prints a Markdown table
 * of the bytes each update added and its ingest time.
 *
 *   node dist/benchmarks/delta.js [--runs 3] [--cache /var/cache/miq-bench]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, sh } from './util.js';

const MIQ = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'bin', 'miq');

interface Series { name: string; steps: string[] }

async function ingest(store: string, dir: string, env: NodeJS.ProcessEnv): Promise<{ newBytes: number; seconds: number }> {
  const r = await sh(`${process.execPath} ${MIQ} --store ${store} ingest ${dir} --json`, { env });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { newBytes: number; seconds: number };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const runs = Number(args[args.indexOf('--runs') + 1] ?? 3) || 3;
  const cache = args.includes('--cache') ? args[args.indexOf('--cache') + 1]! : process.env.MIQ_BENCH_CACHE ?? '/var/cache/miq-bench';
  const series: Series[] = [
    { name: 'Debian security update (23 packages)', steps: [join(cache, 'sets/full/security-old'), join(cache, 'sets/full/security-new')] },
    { name: 'typescript 5.6.2 → 5.9.3 (7 updates)', steps: ['5.6.2', '5.6.3', '5.7.2', '5.7.3', '5.8.2', '5.8.3', '5.9.2', '5.9.3'].map((v) => join(cache, 'unpacked/npm', `typescript@${v}`)) },
    { name: 'next 16.4.4 → 16.4.6 (2 updates)', steps: ['16.4.4', '16.4.5', '16.4.6'].map((v) => join(cache, 'unpacked/npm', `next@${v}`)) },
  ];
  const rows: string[] = ['| series | mode | first | added by updates | update ingest time |', '| --- | --- | --- | --- | --- |'];
  for (const s of series) {
    const res: Record<string, { first: number[]; added: number[]; time: number[] }> = {};
    for (let r = 0; r < runs; r++) {
      // Alternate the order so neither mode always runs on a warmer cache.
      const modes = r % 2 === 0 ? ['delta', 'no delta'] : ['no delta', 'delta'];
      for (const mode of modes) {
        const env = mode === 'delta' ? {} : { MIQ_NO_DELTA: '1' };
        const store = await mkdtemp(join(tmpdir(), 'miq-delta-'));
        try {
          const first = await ingest(store, s.steps[0]!, env);
          let added = 0, time = 0;
          for (const dir of s.steps.slice(1)) {
            const x = await ingest(store, dir, env);
            added += x.newBytes;
            time += x.seconds;
          }
          const e = (res[mode] ??= { first: [], added: [], time: [] });
          e.first.push(first.newBytes);
          e.added.push(added);
          e.time.push(time);
        } finally {
          await rm(store, { recursive: true, force: true });
        }
      }
    }
    for (const mode of ['no delta', 'delta']) {
      const e = res[mode]!;
      rows.push(`| ${s.name} | ${mode} | ${(median(e.first) / 1e6).toFixed(1)} MB | ${(median(e.added) / 1e6).toFixed(2)} MB | ${median(e.time).toFixed(2)} s |`);
    }
  }
  process.stdout.write(`${rows.join('\n')}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`delta benchmark: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
