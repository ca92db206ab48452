/**
 * `miq repo pull NAME --remote URL`: take a package repository from a miq remote (its signed
 * pointer, `miq push --repo`) instead of from the distribution's mirror. A plain store fetches
 * the index's closure now; a store mounted lazily from that remote reads it on use. Then
 * `miq install` resolves against it, and every package the remote holds comes from there.
 */
import type { Command } from 'commander';
import { join } from 'node:path';
import { controlOf } from '../mount/client.js';
import { adoptPublishedRepo } from '../packages/index.js';
import { MiqError } from '../store/errors.js';
import { fetchRepo, loadTrustedKeys, localSink, prefetch } from '../store/remote/index.js';
import { fmtBytes, globals, printJson, storeDir, trustedKeyFiles, withStore } from './context.js';
import { openRemoteFor } from './lazy.js';

const collect = (v: string, acc: string[]): string[] => [...acc, v];

export function registerPull(repo: Command): void {
  repo.command('pull')
    .description("take a repository from a miq remote's signed pointer (`miq push --repo NAME`), not from the distribution")
    .argument('<name>', 'repository name as published')
    .requiredOption('--remote <url>', 'remote: http(s)://…, file://… or a directory')
    .option('--trusted-key <key>', 'NAME:BASE64 or a .pub file; repeatable (also read: <store>/trusted-keys)', collect, [] as string[])
    .option('--proxy <url>', 'fetch through this HTTP proxy (default: $http_proxy / $https_proxy, minus $no_proxy)')
    .option('--json', 'one JSON object')
    .action(async (name: string, o: { remote: string; trustedKey: string[]; proxy?: string; json?: boolean }, cmd: Command) => {
      const g = { ...globals(cmd), json: o.json };
      const dir = storeDir(g);
      const doc = await fetchRepo(o.remote, name, { trusted: loadTrustedKeys(dir, trustedKeyFiles(g, o.trustedKey)), seenFile: join(dir, 'remote-seen.json'), http: { proxy: o.proxy } });
      const r = await withStore(g, async (s) => {
        let fetched = 0;
        const lazy = controlOf(s) !== undefined;
        if (!lazy) {
          const remote = await openRemoteFor(dir, o.remote, trustedKeyFiles(g, o.trustedKey), undefined, false, o.proxy);
          try {
            const sink = localSink(s);
            const res = await prefetch(remote, { paths: [doc.index] }, sink, 16);
            await sink.flush();
            fetched = res.bytes;
          } finally {
            await remote.close();
          }
          if (!(await s.getStorePath(doc.index))) throw new MiqError('MIQ_MISSING', `the index ${doc.index} of repository ${name} did not arrive from ${o.remote}`);
        }
        // Mounted (lazily from the remote): the serving store finds the index there on use; a
        // GC root would name a path the local part does not hold, so none is written.
        await adoptPublishedRepo(s, name, doc.state, doc.index, !lazy);
        return { repo: name, sequence: doc.sequence, index: doc.index, time: doc.time, fetchedBytes: fetched, lazy };
      });
      if (o.json) return printJson(r);
      process.stdout.write(`repository ${name}: sequence ${r.sequence} (${r.time}), index ${r.index}${r.lazy ? ' (read on use through the mount)' : `, ${fmtBytes(r.fetchedBytes)} fetched`}\n`);
    });
}
