import type { Command } from 'commander';
import { verifyStore } from '../store/verify.js';
import { join } from 'node:path';
import { checkCache } from '../store/remote/index.js';
import { count, fmtBytes, globals, onLocal, printJson, progressLine, storeDir, withStore } from './context.js';

export function register(program: Command): void {
  program
    .command('verify')
    .description('re-hash everything reachable; exit 0 only if nothing is missing or corrupt')
    .option('--json', 'one JSON object')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const g = { ...globals(cmd), json: o.json };
      const bar = progressLine(g);
      const show = (e: unknown): void => {
        const p = e as { paths: number; total: number; bytes: number };
        bar.update(`verify: ${p.paths} of ${count(p.total, 'store path')}, ${fmtBytes(p.bytes)}`);
      };
      const v = await withStore(g, (s) => onLocal(s, 'verify', null, (ls) => verifyStore(ls, show), show));
      bar.done();
      // A lazy mount's cache of remote chunks: not part of the store (nothing in the index names
      // it) and self-healing (every load is re-checked), so a bad entry is reported, not a failure.
      const cache = await checkCache(join(storeDir(g), 'remote-cache'));
      const r = { ...v, ...(cache.chunks + cache.bad.length + cache.temps > 0 ? { remoteCache: cache } : {}) };
      if (o.json) {
        // One vocabulary: `paths` is a list everywhere; the count is storePaths.
        const { paths, ...rest } = r;
        printJson({ storePaths: paths, ...rest });
      }
      else {
        process.stdout.write(`checked ${count(r.paths, 'store path')}, ${count(r.trees, 'tree')}, ${count(r.files, 'file')}, ${count(r.chunks, 'chunk')} (${fmtBytes(r.bytes)}) in ${r.seconds.toFixed(2)} s\n`);
        if (r.unreferenced.chunks > 0) process.stdout.write(`unreferenced: ${r.unreferenced.chunks} chunks (${fmtBytes(r.unreferenced.storedBytes)} stored) that no store path uses; \`miq gc\` reclaims them\n`);
        for (const d of r.damaged) process.stdout.write(`DAMAGED ${d.kind} ${d.id}: ${d.problem} (${d.detail}); used by ${d.paths.join(', ') || 'no store path'}\n`);
        if (r.remoteCache) {
          const c = r.remoteCache;
          process.stdout.write(`remote cache: ${c.chunks} chunks (${fmtBytes(c.bytes)}) check out${c.bad.length ? `; ${c.bad.length} do not and will be fetched again when read: ${c.bad.join(', ')}` : ''}\n`);
        }
        process.stdout.write(r.ok ? 'ok: nothing missing or corrupt\n' : `FAILED: ${r.damaged.length} damaged objects\n`);
      }
      if (!r.ok) process.exitCode = 3;
    });
}
