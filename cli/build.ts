import type { Command } from 'commander';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MiqError } from '../store/errors.js';
import { openStore } from '../store/open.js';
import { loadTrustedKeys, localSink, openRemote } from '../store/remote/index.js';
import { type BuildEvent, type Substituter, build } from '../builder/build.js';
import { loadRecipes } from '../builder/load.js';
import type { Recipe } from '../builder/recipe.js';
import { remoteSubstituter, storeSubstituter } from '../builder/substitute.js';
import { globals, printJson, storeDir, trustedKeyFiles, withStore } from './context.js';
import { parseCount } from './args.js';
import { followFile, type Follower } from './follow.js';
import { leaseStore } from './lease.js';
import { connectControl } from '../mount/client.js';
import type { Store } from '../store/api.js';

interface BuildCliOptions {
  json?: boolean;
  jobs: string;
  cores?: string;
  mirror?: string[];
  substituter?: string[];
  trustedKey?: string[];
  storeView?: string;
  keepFailed?: boolean;
  pin: boolean;
  quiet?: boolean;
  printBuildLogs?: boolean;
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

function parseMirrors(specs: readonly string[] = []): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const s of specs) {
    const m = /^([A-Za-z0-9_-]+)=(.+)$/.exec(s);
    if (!m) throw new MiqError('MIQ_BAD_INPUT', `--mirror takes NAME=URL, got "${s}"`);
    (out[m[1]!] ??= []).push(m[2]!);
  }
  return out;
}

const positiveInt = (s: string, what: string): number => parseCount(s, what, 1, 4096);

function describe(e: BuildEvent): string | undefined {
  switch (e.type) {
    case 'present': return `present     ${e.path}`;
    case 'substituted': return `substituted ${e.path}`;
    case 'start': return `building    ${e.path}`;
    case 'fetch': return `fetching    ${e.source} for ${e.path}`;
    case 'built': return `built       ${e.path} in ${e.seconds.toFixed(1)} s`;
    case 'substitute-failed': return `not substituted from ${e.substituter}: ${e.error.message}`;
    case 'failed': return undefined;
  }
}

/**
 * Build state lives under the store, not in /tmp or /var/cache: sources in <store>/cache/sources
 * (unless $MIQ_CACHE or $XDG_CACHE_HOME names another cache), build directories in
 * <store>/tmp/build-<pid>. Directories of builds whose process is gone (killed) are removed
 * here: a build that ends in any other way removes its own.
 */
async function buildStateDirs(dir: string): Promise<{ tmpDir: string; cacheDir: string }> {
  const tmp = join(dir, 'tmp');
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  for (const name of await readdir(tmp).catch(() => [] as string[])) {
    const pid = /^build-(\d+)$/.exec(name)?.[1];
    if (!pid || Number(pid) === process.pid) continue;
    let gone = false;
    try {
      process.kill(Number(pid), 0);
    } catch (e) {
      gone = (e as NodeJS.ErrnoException).code === 'ESRCH';
    }
    if (gone) await rm(join(tmp, name), { recursive: true, force: true }).catch(() => undefined);
  }
  const tmpDir = join(tmp, `build-${process.pid}`);
  await mkdir(tmpDir, { recursive: true, mode: 0o700 });
  return { tmpDir, cacheDir: join(dir, 'cache', 'sources') };
}

/** Build logs streamed to stderr line by line, each line prefixed with its recipe's name. */
function logStreams(): { start(path: string, file: string): void; stop(path: string): void; close(): Promise<void> } {
  const live = new Map<string, { f: Follower; rest(): void }>();
  const stop = (path: string): void => {
    const l = live.get(path);
    live.delete(path);
    l?.f.stop();
    l?.rest();
  };
  return {
    start(path, file) {
      const name = path.replace(/-[0-9a-f]{32}$/, '');
      let part = '';
      const f = followFile(file, (b) => {
        const lines = (part + b.toString('utf8')).split('\n');
        part = lines.pop()!;
        for (const l of lines) process.stderr.write(`${name}> ${l}\n`);
      });
      live.set(path, { f, rest: () => { if (part) process.stderr.write(`${name}> ${part}\n`); } });
    },
    stop,
    async close() {
      for (const p of [...live.keys()]) stop(p);
    },
  };
}

export function register(program: Command): void {
  program
    .command('build')
    .description('build recipes and what they depend on into the store; prints one store path per recipe')
    .argument('<files...>', 'recipe files (recipes/hello.ts, or compiled .js) or names of recipes in recipes/ (hello)')
    .option('--json', 'print one JSON object')
    .option('-j, --jobs <n>', 'builds to run at once', '1')
    .option('--cores <n>', 'cores each build may use ($MIQ_CORES; default: cores / jobs)')
    .option('--mirror <name=url>', 'base URL for mirror://NAME/, repeatable (default for debian: the host apt sources)', collect, [])
    .option('--substituter <location>', 'a miq store directory or remote to fetch results from instead of building, repeatable (also $MIQ_SUBSTITUTERS, space-separated)', collect, [])
    .option('--trusted-key <key>', 'a public key trusted for remote substituters (name:base64 or a file), repeatable', collect, [])
    .option('--store-view <dir>', 'a directory serving store paths by name (a running mount\'s store/): bind dependencies from it instead of copying them out')
    .option('--keep-failed', 'keep the work directory of a failed build')
    .option('--no-pin', 'do not make built paths GC roots')
    .option('-q, --quiet', 'no progress lines on stderr')
    .option('-L, --print-build-logs', 'stream each build\'s log to stderr as it runs, its lines prefixed with NAME> (`miq log -f NAME` follows one from another terminal)')
    .action(async (files: string[], o: BuildCliOptions, cmd: Command) => {
      const g = { ...globals(cmd), json: o.json };
      // One sandboxed evaluation for all files, so a recipe they share is one object.
      const recipes: Recipe[] = await loadRecipes(files);
      const locations = [...(o.substituter ?? []), ...(process.env.MIQ_SUBSTITUTERS ?? '').split(/\s+/).filter(Boolean)];
      const dir = storeDir(g);
      const logs = logStreams();
      const opened: { close(): Promise<void> }[] = [];
      const substituters: Substituter[] = [];
      try {
        for (const loc of locations) {
          if (existsSync(join(loc, 'db'))) {
            // Another local store (its owner must not be running).
            const other = await openStore(loc);
            opened.push(other);
            substituters.push(storeSubstituter(loc, other));
          } else {
            const remote = await openRemote(loc, { trustedKeys: loadTrustedKeys(dir, trustedKeyFiles(g, o.trustedKey ?? [])), seenFile: join(dir, 'remote-seen.json') });
            opened.push(remote);
            substituters.push(remoteSubstituter(remote, (store) => localSink(store)));
          }
        }
        const state = await buildStateDirs(dir);
        opened.push(logs);
        // Mounted: calls go through the serving process, which holds the store anyway. Else the
        // store is opened only while the build uses it (never while a script runs).
        const mounted = await connectControl(dir);
        mounted?.close();
        const lease = mounted ? undefined : leaseStore(dir, (e) => { if (!o.json && !o.quiet) process.stderr.write(`miq: waiting: ${e.message}\n`); });
        if (lease) opened.push(lease);
        const using = <T>(fn: (s: Store) => Promise<T>): Promise<T> => (lease ? fn(lease.store) : withStore(g, fn));
        const results = await using((store) => build(store, recipes, {
          tmpDir: state.tmpDir,
          ...(process.env.MIQ_CACHE || process.env.XDG_CACHE_HOME ? {} : { cacheDir: state.cacheDir }),
          jobs: positiveInt(o.jobs, '--jobs'),
          ...(o.cores ? { cores: positiveInt(o.cores, '--cores') } : {}),
          mirrors: parseMirrors(o.mirror),
          substituters,
          ...(o.storeView ? { storeView: o.storeView } : {}),
          keepFailed: o.keepFailed === true,
          pin: o.pin,
          ...(o.printBuildLogs ? { onLogFile: (path: string, file: string) => logs.start(path, file) } : {}),
          onEvent: (e) => {
            if (e.type === 'built' || e.type === 'failed') logs.stop(e.path);
            if (o.json || o.quiet) return;
            const line = describe(e);
            if (line) process.stderr.write(`miq: ${line}\n`);
          },
        }));
        if (o.json) printJson({ results });
        else for (const r of results) process.stdout.write(`${r.path}\n`);
      } finally {
        await rm(join(dir, 'tmp', `build-${process.pid}`), { recursive: true, force: true }).catch(() => undefined);
        for (const r of opened) await r.close().catch(() => undefined);
      }
    });
}
