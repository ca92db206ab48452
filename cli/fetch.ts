import type { Command } from 'commander';
import { join } from 'node:path';
import { MiqError } from '../store/errors.js';
import { controlOf } from '../mount/client.js';
import { loadTrustedKeys, localSink, openRemote, prefetch } from '../store/remote/index.js';
import { switchTo, current } from '../store/profiles.js';
import { count, fmtBytes, globals, printJson, progressLine, storeDir, trustedKeyFiles, withStore } from './context.js';

const collect = (v: string, acc: string[]): string[] => [...acc, v];

export function register(program: Command): void {
  program
    .command('fetch')
    .description('download a closure from a remote into the local store, verified, for offline use')
    .argument('[paths...]', 'store paths to fetch with their references')
    .requiredOption('--remote <url>', 'remote: http(s)://…, file://… or a directory')
    .option('--profile <name>', "the remote profile's current generation")
    .option('--proxy <url>', 'fetch through this HTTP proxy (default: $http_proxy / $https_proxy, minus $no_proxy)')
    .option('--trusted-key <key>', 'NAME:BASE64, a .pub file, or NAME of <store>/keys/NAME.pub; repeatable (also read: <store>/trusted-keys)', collect, [])
    .option('--json', 'print one JSON object')
    .action(async (paths: string[], o: { remote: string; profile?: string; trustedKey: string[]; json?: boolean; proxy?: string }, cmd: Command) => {
      const g = { ...globals(cmd), json: o.json };
      if (paths.length === 0 && !o.profile) throw new MiqError('MIQ_BAD_INPUT', 'name store paths or --profile');
      const dir = storeDir(g);
      const remote = await openRemote(o.remote, { trustedKeys: loadTrustedKeys(dir, trustedKeyFiles(g, o.trustedKey)), seenFile: join(dir, 'remote-seen.json'), http: { proxy: o.proxy } });
      const t0 = performance.now();
      try {
        const r = await withStore(g, async (store) => {
          if (controlOf(store)) throw new MiqError('MIQ_STORE_LOCKED', `the store at ${dir} is mounted; stop the mount to run miq fetch (a lazy mount fetches on read)`);
          const sink = localSink(store);
          const bar = progressLine(g);
          let res;
          try {
            res = await prefetch(remote, { paths, profile: o.profile }, sink, 16, (p) => bar.update(`fetch: ${p.files} of ${count(p.filesTotal, 'file')}, ${fmtBytes(p.bytes)}`));
          } finally {
            bar.done();
          }
          await sink.flush();
          for (const p of paths.length ? paths : res.paths) await store.pin(p);
          // The fetched pointer becomes the local profile's current generation, so
          // `miq mount --profile NAME` serves it offline (unless it already is current).
          let local: { generation: number; changed: boolean } | undefined;
          if (res.profile) {
            const cur = await current(store, res.profile.name);
            if (cur && cur.tree === res.profile.tree) local = { generation: cur.generation, changed: false };
            else {
              const c = await switchTo(store, res.profile.name, { paths: res.profile.paths, tree: res.profile.tree, priorities: res.profile.priorities });
              local = { generation: c.generation, changed: true };
            }
          }
          return { ...res, local };
        });
        const seconds = (performance.now() - t0) / 1000;
        if (o.json) return printJson({ ...r, seconds, transport: remote.stats().transport });
        process.stdout.write(`${count(r.paths.length, 'store path')}, ${count(r.files, 'file')}, ${count(r.chunks, 'chunk')} (${fmtBytes(r.bytes)}) fetched in ${seconds.toFixed(2)} s\n`);
        if (r.profile) process.stdout.write(`profile ${r.profile.name}: remote generation ${r.profile.generation} (sequence ${r.profile.sequence}, tree ${r.profile.tree.slice(0, 16)}…) is ${r.local!.changed ? 'now' : 'already'} the local generation ${r.local!.generation}\n`);
      } finally {
        await remote.close();
      }
    });
}
