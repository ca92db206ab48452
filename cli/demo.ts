import type { Command } from 'commander';
import { join } from 'node:path';
import { ROOT_DIR } from './root.js';
import { storeStats } from '../store/stats.js';
import { verifyStore } from '../store/verify.js';
import { fmtBytes, globals, onLocal, printJson, progressLine, storeDir, withStore } from './context.js';

/** The main job on an embedded default: ingest trees that every checkout has (its own
 * node_modules after `npm ci`) into the local store, show what dedup saved, verify. */
export function register(program: Command): void {
  program
    .command('demo')
    .description('the main job on an embedded default: ingest two trees of this checkout (node_modules/typescript, then all of node_modules) into the local store, show what dedup saved, verify')
    .option('--json', 'one JSON object')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const g = { ...globals(cmd), json: o.json };
      const bar = progressLine(g);
      const out = await withStore(g, async (s) => {
        const trees = [
          { dir: join(ROOT_DIR, 'node_modules', 'typescript'), name: 'typescript' },
          { dir: join(ROOT_DIR, 'node_modules'), name: 'node_modules' },
        ];
        const results = [];
        for (const t of trees) {
          results.push(await s.ingest(t.dir, { name: t.name, onProgress: (p) => bar.update(`ingest ${t.name}: ${p.files}/${p.totalFiles} files, ${fmtBytes(p.bytes)}`) }));
        }
        bar.done();
        const stats = await onLocal(s, 'stats', null, (ls) => storeStats(ls));
        const verify = await onLocal(s, 'verify', null, (ls) => verifyStore(ls));
        return { store: storeDir(g), results, stats, verify: { ok: verify.ok, damaged: verify.damaged.length } };
      });
      if (o.json) return printJson(out);
      const lines = [`store: ${out.store}`];
      for (const r of out.results) lines.push(`ingested ${r.path}: ${r.files} files, ${fmtBytes(r.bytes)} in ${r.seconds.toFixed(2)} s, ${fmtBytes(r.newBytes)} new`);
      lines.push(`store holds ${fmtBytes(out.stats.logicalBytes)} of trees in ${fmtBytes(out.stats.storedBytes)} on disk (dedup ${out.stats.dedupRatio.toFixed(2)}x)`);
      lines.push(`verify: ${out.verify.ok ? 'ok' : `${out.verify.damaged} damaged objects`}`);
      lines.push(`next: miq paths; miq ls ${out.results[0]!.path}; miq export ${out.results[0]!.path} /tmp/ts`);
      process.stdout.write(`${lines.join('\n')}\n`);
      if (!out.verify.ok) process.exitCode = 3;
    });
}
