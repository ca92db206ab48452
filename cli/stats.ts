import type { Command } from 'commander';
import { storeStats } from '../store/stats.js';
import { fmtBytes, globals, onLocal, printJson, withStore } from './context.js';

export function register(program: Command): void {
  program
    .command('stats')
    .description('logical and stored bytes, unique chunks, dedup ratio; per store path, shared and own bytes')
    .option('--json', 'one JSON object')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const s = await withStore(globals(cmd), (st) => onLocal(st, 'stats', null, (ls) => storeStats(ls)));
      if (o.json) return printJson(s);
      const out = [
        `store paths:   ${s.storePaths}`,
        `logical bytes: ${fmtBytes(s.logicalBytes)} (${s.logicalBytes})`,
        `stored bytes:  ${fmtBytes(s.storedBytes)} (${s.storedBytes}; packs ${fmtBytes(s.packBytes)}, database ${fmtBytes(s.dbBytes)})`,
        `unique chunks: ${s.uniqueChunks} (${fmtBytes(s.plainChunkBytes)} plain, ${fmtBytes(s.chunkBytes)} compressed)`,
        `dedup ratio:   ${s.dedupRatio.toFixed(2)}x (logical / stored)`,
      ];
      if (s.paths.length) {
        out.push('', 'store path                                      logical      shared   only here');
        for (const p of s.paths) out.push(`${p.path.padEnd(46)} ${fmtBytes(p.logicalBytes).padStart(10)} ${fmtBytes(p.sharedBytes).padStart(11)} ${fmtBytes(p.uniqueBytes).padStart(11)}`);
      }
      process.stdout.write(`${out.join('\n')}\n`);
    });
}
