import type { Command } from 'commander';
import { basename, join, resolve } from 'node:path';
import { MiqError } from '../store/errors.js';
import type { IngestProgress, IngestResult } from '../store/api.js';
import { watchIngest } from '../store/watch.js';
import { exitWhenDone } from './exit.js';
import { count, eta, fmtBytes, globals, rate, printJson, progressLine, storeDir, withStore } from './context.js';

function summary(r: IngestResult): string {
  const extras: string[] = [];
  if (r.droppedModeBits) extras.push(`${r.droppedModeBits} setuid/setgid/sticky bits dropped`);
  if (r.notWorldReadable) {
    const more = r.notWorldReadable - r.notWorldReadablePaths.length;
    extras.push(`${r.notWorldReadable} files or directories were not world-readable; in the store every user can read them: ${r.notWorldReadablePaths.join(', ')}${more > 0 ? ` (and ${more} more)` : ''}`);
  }
  if (r.skipped.length) extras.push(`${r.skipped.length} special files skipped: ${r.skipped.map((s) => `${s.path} (${s.why})`).join(', ')}`);
  if (r.references.length) extras.push(`references: ${r.references.join(' ')}`);
  return `${r.files} files, ${fmtBytes(r.bytes)} in ${r.seconds.toFixed(2)} s; ${fmtBytes(r.newBytes)} new in the store${extras.length ? `\n${extras.join('\n')}` : ''}`;
}

/**
 * One progress line per phase: while the walk still finds files the totals grow, so only counts
 * are shown; once they are final, a percentage of bytes, the rate and an estimate of the time
 * left; then the commit (index, trees, store path), which reads nothing more.
 */
function ingestLine(p: IngestProgress, seconds: number): string {
  const found = `${count(p.totalFiles ?? p.files, 'file')}, ${fmtBytes(p.totalBytes ?? p.bytes)}`;
  if (p.phase === 'commit') return `ingest: committing ${found} (${fmtBytes(p.newBytes)} new) to the index`;
  if (p.phase === 'scan') return `ingest: scanning: ${found} found so far; ${fmtBytes(p.bytes)} read${rate(p.bytes, seconds)}`;
  const total = p.totalBytes ?? 0;
  const pct = total > 0 ? Math.floor((100 * p.bytes) / total) : 100;
  return `ingest: ${pct}% of ${found}${rate(p.bytes, seconds)}${eta(p.bytes, total, seconds)}; ${fmtBytes(p.newBytes)} new`;
}

export function register(program: Command): void {
  program
    .command('ingest')
    .description('add a directory tree to the store; prints the new store path as the last line')
    .argument('<dir>', 'directory to ingest')
    .option('--name <name>', 'name part of the store path (default: the directory name)')
    .option('--json', 'print one JSON object')
    .option('--lenient', 'skip device nodes, fifos and sockets (listed) instead of failing')
    .option('--no-pin', 'do not make the result a GC root')
    .option('--usrmerge', 'lay a Debian-style tree (bin etc lib usr …) out as a /usr: bin, sbin, lib* merged into usr/, other top-level directories (etc, var) kept under it; for `miq run`')
    .option('--watch', 'keep re-ingesting as the directory changes; --name then points at the newest result')
    .action(async (dir: string, o: { name?: string; json?: boolean; lenient?: boolean; pin: boolean; watch?: boolean; usrmerge?: boolean }, cmd: Command) => {
      const g = { ...globals(cmd), json: o.json };
      dir = resolve(dir); // a serving mount process reads it from its own working directory
      if (o.usrmerge && o.watch) throw new MiqError('MIQ_BAD_INPUT', '--usrmerge and --watch do not go together (a staged copy is ingested, not the directory)');
      if (o.watch) {
        await withStore(g, (store) =>
          watchIngest(store, dir, { name: o.name, lenient: o.lenient }, (ev) => {
            if (ev.type === 'result') {
              if (o.json) printJson({ ...ev.result, alias: ev.alias });
              else process.stdout.write(`${ev.result.path}\n`);
            } else if (ev.type === 'error') {
              if (o.json) printJson({ error: ev.error.toJSON() });
              else process.stderr.write(`miq: ${ev.error.message}\n`);
            }
          }),
        );
        return;
      }
      // The staging module (and node:child_process) only for --usrmerge.
      const staged = o.usrmerge ? await (await import('../store/usrmerge.js')).stageUsrMerged(dir, join(storeDir(g), 'tmp')) : undefined;
      const bar = progressLine(g);
      const t0 = performance.now();
      const r = await withStore(g, (store) =>
        store.ingest(staged?.dir ?? dir, {
          name: o.name ?? (staged ? basename(dir) : undefined), lenient: o.lenient, pin: o.pin,
          onProgress: (p) => bar.update(ingestLine(p, (performance.now() - t0) / 1000)),
        }),
      ).finally(() => staged?.cleanup());
      bar.done();
      if (o.json) printJson({ ...r, maxRssBytes: process.resourceUsage().maxRSS * 1024 });
      else process.stdout.write(`${summary(r)}\n${r.path}\n`);
      exitWhenDone();
    });
}
