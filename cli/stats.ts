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
        `store paths:    ${s.storePaths} (data; profile generations apart, below)`,
        `logical size:   ${fmtBytes(s.logicalBytes)} (${s.logicalBytes} bytes: the trees as files)`,
        `on disk:        ${fmtBytes(s.storedBytes)} (packs ${fmtBytes(s.packBytes)}, index ${fmtBytes(s.dbBytes)})`,
        `unique chunks:  ${s.uniqueChunks} (${fmtBytes(s.plainChunkBytes)} before compression, ${fmtBytes(s.chunkBytes)} after)`,
        `dedup ratio:    ${s.dedupRatio.toFixed(2)}x (logical size / on disk)`,
        `generations:    ${s.generations.envPaths} merged profile trees, ${fmtBytes(s.generations.logicalBytes)} logical, made of the paths' own files (no chunks of their own)`,
      ];
      if (s.paths.length) {
        out.push('', `${'store path'.padEnd(46)} ${'logical'.padStart(10)} ${'on disk:'.padStart(11)} ${''.padStart(11)}`, `${''.padEnd(46)} ${''.padStart(10)} ${'shared'.padStart(11)} ${'only here'.padStart(11)}`);
        for (const p of s.paths) out.push(`${p.path.padEnd(46)} ${fmtBytes(p.logicalBytes).padStart(10)} ${fmtBytes(p.sharedBytes).padStart(11)} ${fmtBytes(p.uniqueBytes).padStart(11)}`);
        out.push('(shared: compressed bytes of chunks another store path also uses; only here: of chunks no other path uses)');
      }
      process.stdout.write(`${out.join('\n')}\n`);
    });
}
