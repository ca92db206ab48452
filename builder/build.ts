/**
 * The build driver: keys the graph, skips what the store already has, substitutes what a remote
 * has, and builds the rest in dependency order with at most `jobs` sandboxes at once. A failed
 * build leaves nothing in the store but its dependencies' results; its log's tail is in the error.
 */
import { lstatSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from '../store/api.js';
import { TempRoots } from '../store/index.js';
import { MiqError, isMiqError } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import { defaultCacheDir, fetchSource } from './fetch.js';
import { analyse, type Node, pathNameOf, runClosure } from './key.js';
import { forgetFailedLog, keepFailedLog } from './log.js';
import { materialize, rmTree } from './materialize.js';
import type { MirrorMap } from './mirrors.js';
import type { Recipe } from './recipe.js';
import { SANDBOX_SOURCES, SANDBOX_STORE, runSandbox, writeEtc } from './sandbox.js';

/** Something that can provide a store path instead of building it (a remote store, a cache). */
export interface Substituter {
  readonly name: string;
  /** Puts `path` (and what it references) into `store`; false when it does not have it. */
  substitute(path: string, key: Id, store: Store): Promise<boolean>;
}

export type BuildStatus = 'built' | 'present' | 'substituted';

export interface BuildOutcome {
  name: string;
  path: string;
  key: Id;
  tree: Id;
  status: BuildStatus;
  log?: Id;
  seconds: number;
}

export type BuildEvent =
  | { type: 'present' | 'substituted'; path: string }
  | { type: 'start'; path: string }
  | { type: 'built'; path: string; seconds: number }
  | { type: 'failed'; path: string; error: MiqError }
  | { type: 'substitute-failed'; path: string; substituter: string; error: MiqError }
  | { type: 'fetch'; path: string; source: string; url: string };

export interface BuildOptions {
  /** Builds run at once (default 1). */
  jobs?: number;
  /** Cores each build may use ($MIQ_CORES); default: available cores / jobs. */
  cores?: number;
  cacheDir?: string;
  mirrors?: MirrorMap;
  aptDir?: string;
  substituters?: readonly Substituter[];
  /** A directory serving store paths by name (a running mount's store/): bound, not copied. */
  storeView?: string;
  /** Where work directories go (default: the OS temp dir). */
  tmpDir?: string;
  keepFailed?: boolean;
  /** Pin built results as GC roots (default true). */
  pin?: boolean;
  timeoutMs?: number;
  /** Lines of log shown in a failure message (default 25). */
  tailLines?: number;
  onEvent?: (e: BuildEvent) => void;
  /** Called with a build's log file once it exists, before its script starts (`miq build -L`
   * follows it; the file goes when the build's work directory does). */
  onLogFile?: (path: string, file: string) => void;
}

/** Semaphore that stops handing out slots after the first failure (make without -k). */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  failed = false;
  constructor(n: number) {
    this.free = n;
  }
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
    } else {
      await new Promise<void>((r) => this.waiting.push(r));
    }
    if (this.failed) {
      this.release();
      throw new MiqError('MIQ_BUILD_FAILED', 'not started: another build failed', { details: { notStarted: true } });
    }
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

function tail(text: string, n: number): string {
  const lines = text.replace(/\n$/, '').split('\n');
  return lines.slice(-n).join('\n');
}

function envName(name: string): string {
  return name.replace(/[^A-Za-z0-9_]/g, '_').replace(/^([0-9])/, '_$1');
}

/** Builds `recipes` and everything they need. Resolves to one outcome per requested recipe. */
export async function build(store: Store, recipes: readonly Recipe[], opts: BuildOptions = {}): Promise<BuildOutcome[]> {
  const g = analyse(recipes);
  // Rooted before anything is checked for presence (Nix's order): from here until the results are
  // pinned, a gc in another process keeps every node's path and its closure. Paths a substituter
  // ingests (references of a substituted path) are added as they appear.
  const temp = new TempRoots(store);
  await temp.add(g.nodes.map((n) => n.path));
  try {
    return await buildRooted(rootingIngest(store, temp), g, opts);
  } finally {
    await temp.release().catch(() => undefined);
  }
}

/** `store` whose ingest adds each result to `temp` before returning it. */
function rootingIngest(store: Store, temp: TempRoots): Store {
  return new Proxy(store, {
    get(t, key) {
      const v = Reflect.get(t, key) as unknown;
      if (key === 'ingest') {
        return async (...a: Parameters<Store['ingest']>) => {
          const r = await t.ingest(...a);
          await temp.add([r.path]);
          return r;
        };
      }
      return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(t) : v;
    },
  });
}

async function buildRooted(store: Store, g: ReturnType<typeof analyse>, opts: BuildOptions): Promise<BuildOutcome[]> {
  const jobs = Math.max(1, Math.floor(opts.jobs ?? 1));
  const cores = opts.cores ?? Math.max(1, Math.floor(availableParallelism() / jobs));
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const slots = new Slots(jobs);
  const root = await mkdtemp(join(opts.tmpDir ?? tmpdir(), 'miq-build-'));
  const depsDir = join(root, 'deps');
  await mkdir(depsDir);
  const outcomes = new Map<Node, Promise<BuildOutcome>>();
  const exported = new Map<string, Promise<string>>();

  const depDir = (path: string): Promise<string> => {
    let p = exported.get(path);
    if (!p) {
      p = opts.storeView
        ? stat(join(opts.storeView, path)).then(() => join(opts.storeView!, path), () => {
          throw new MiqError('MIQ_MISSING', `store path ${path} is not visible under ${opts.storeView}`);
        })
        : materialize(store, path, depsDir);
      exported.set(path, p);
    }
    return p;
  };

  /** Direct dependencies plus their run-time closure: recipe runDeps and scanned references. */
  const visible = async (n: Node): Promise<string[]> => {
    const seen = new Set<string>();
    const todo: string[] = [];
    for (const d of [...n.buildDeps, ...n.runDeps]) {
      todo.push(d.path);
      for (const r of runClosure(d)) todo.push(r.path);
    }
    while (todo.length) {
      const p = todo.pop()!;
      if (seen.has(p) || p === n.path) continue;
      seen.add(p);
      const rec = await store.getStorePath(p);
      if (!rec) throw new MiqError('MIQ_MISSING', `dependency ${p} of ${n.path} is not in the store`, { details: { path: p, dependent: n.path } });
      todo.push(...rec.references);
    }
    return [...seen].sort();
  };

  const buildOne = async (n: Node): Promise<BuildOutcome> => {
    const r = n.recipe;
    const started = Date.now();
    opts.onEvent?.({ type: 'start', path: n.path });
    const work = await mkdtemp(join(root, `${n.path}-`));
    const buildDir = join(work, 'build');
    const outDir = join(work, 'out');
    const etcDir = join(work, 'etc');
    const logFile = join(work, 'log');
    let ok = false;
    try {
      await Promise.all([mkdir(buildDir), mkdir(outDir), mkdir(etcDir)]);
      await writeEtc(etcDir);
      const scriptFile = join(work, 'script.sh');
      await writeFile(scriptFile, `${r.script}\n`);
      const sources = await Promise.all(r.sources.map(async (s) => ({
        name: s.name,
        file: await fetchSource(s, {
          cacheDir,
          ...(opts.mirrors ? { mirrors: opts.mirrors } : {}),
          ...(opts.aptDir ? { aptDir: opts.aptDir } : {}),
          onEvent: (e) => {
            if (e.type === 'fetch') opts.onEvent?.({ type: 'fetch', path: n.path, source: e.source, url: e.url });
          },
        }),
      })));
      const depPaths = await visible(n);
      const deps = await Promise.all(depPaths.map(async (p) => ({ path: p, dir: await depDir(p) })));
      let shellFrom: string | undefined;
      const toolchain = r.host.includes('toolchain');
      if (!toolchain) {
        shellFrom = deps.find((d) => lstatOk(join(d.dir, 'bin', 'sh')))?.path;
        if (!shellFrom) throw new MiqError('MIQ_BAD_INPUT', `recipe ${r.name}: nothing provides /bin/sh: declare host: ['toolchain'] or depend on a recipe with bin/sh`);
      }
      const env: Record<string, string> = {};
      const direct = [...n.buildDeps, ...n.runDeps];
      const existing = async (sub: string): Promise<string[]> => {
        const out: string[] = [];
        for (const d of direct) {
          const dir = deps.find((x) => x.path === d.path)!.dir;
          if (await stat(join(dir, sub)).catch(() => undefined)) out.push(`${SANDBOX_STORE}/${d.path}/${sub}`);
        }
        return out;
      };
      const binDirs = await existing('bin');
      env.PATH = [...binDirs, ...(toolchain ? ['/usr/bin', '/bin', '/usr/sbin', '/sbin'] : [])].join(':') || '/miq/no-path';
      const inc = await existing('include');
      const lib = await existing('lib');
      const pc = await existing('lib/pkgconfig');
      if (inc.length) env.CPATH = inc.join(':');
      if (lib.length) env.LIBRARY_PATH = lib.join(':');
      if (pc.length) env.PKG_CONFIG_PATH = pc.join(':');
      for (const d of direct) env[envName(d.recipe.name)] = `${SANDBOX_STORE}/${d.path}`;
      Object.assign(env, {
        HOME: '/homeless-shelter',
        TMPDIR: '/tmp',
        TMP: '/tmp',
        TEMP: '/tmp',
        LANG: 'C',
        LC_ALL: 'C',
        TZ: 'UTC',
        SOURCE_DATE_EPOCH: '315532800',
        MIQ_CORES: String(cores),
        out: `${SANDBOX_STORE}/${n.path}`,
        src: sources.length ? `${SANDBOX_SOURCES}/${sources[0]!.name}` : '',
        srcs: sources.map((s) => `${SANDBOX_SOURCES}/${s.name}`).join(' '),
      });
      Object.assign(env, r.env);
      await writeFile(logFile, `miq: building ${n.path}\nmiq: key ${n.key}\n`);
      opts.onLogFile?.(n.path, logFile);
      const res = await runSandbox({
        buildDir, outDir, outPath: n.path, deps, sources, scriptFile, etcDir, toolchain, env,
        ...(shellFrom ? { shellFrom } : {}),
      }, logFile, opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {});
      const log = await readFile(logFile);
      if (res.code !== 0) {
        const why = res.timedOut ? 'timed out' : res.signal ? `killed by ${res.signal}` : `exit status ${res.code}`;
        // The full log stays in the store (never a computable name in /tmp, which a local user
        // could plant a symlink at): `miq log PATH` reads it back until the next gc.
        const kept = await keepFailedLog(store, n.path, log).catch(() => undefined);
        throw new MiqError('MIQ_BUILD_FAILED',
          `build of ${n.path} failed (${why}); last lines of its log:\n${tail(log.toString('utf8'), opts.tailLines ?? 25)}\n(full log: ${kept ? `miq log ${n.path}` : 'not kept'}${opts.keepFailed ? `; work directory kept: ${work}` : ''})`,
          { details: { path: n.path, key: n.key, log: kept, work, code: res.code, signal: res.signal } });
      }
      if ((await readdir(outDir)).length === 0) {
        throw new MiqError('MIQ_BUILD_FAILED', `build of ${n.path} succeeded but wrote nothing to $out`, { details: { path: n.path } });
      }
      const logRec = await store.putBytes(log);
      const ing = await store.ingest(outDir, {
        name: pathNameOf(r),
        key: n.key,
        made: { kind: 'build', recipe: n.key, log: logRec.id },
        pin: opts.pin ?? true,
      });
      if (ing.path !== n.path) {
        throw new MiqError('MIQ_CORRUPT', `store ingested ${n.path} as ${ing.path}: the store and the builder disagree on store path names`);
      }
      ok = true;
      await forgetFailedLog(store, n.path).catch(() => undefined);
      const seconds = (Date.now() - started) / 1000;
      opts.onEvent?.({ type: 'built', path: n.path, seconds });
      return { name: r.name, path: n.path, key: n.key, tree: ing.tree, status: 'built', log: logRec.id, seconds };
    } finally {
      if (ok || !opts.keepFailed) await rmTree(work);
    }
  };

  const ensure = (n: Node): Promise<BuildOutcome> => {
    let p = outcomes.get(n);
    if (p) return p;
    p = (async (): Promise<BuildOutcome> => {
      const t0 = Date.now();
      const have = await store.getStorePath(n.path);
      if (have) {
        opts.onEvent?.({ type: 'present', path: n.path });
        return { name: n.recipe.name, path: n.path, key: n.key, tree: have.tree, status: 'present', seconds: 0, ...(have.made.kind === 'build' && have.made.log ? { log: have.made.log } : {}) };
      }
      for (const s of opts.substituters ?? []) {
        let got: boolean;
        try {
          got = await s.substitute(n.path, n.key, store);
        } catch (e) {
          // A substituter that is down, untrusted or lying is a reason to build, not to fail.
          const err = isMiqError(e) ? e : new MiqError('MIQ_REMOTE', (e as Error).message, { cause: e });
          opts.onEvent?.({ type: 'substitute-failed', path: n.path, substituter: s.name, error: err });
          continue;
        }
        if (got) {
          const rec = await store.getStorePath(n.path);
          if (!rec) throw new MiqError('MIQ_REMOTE', `substituter ${s.name} reported ${n.path} but it is not in the store`);
          opts.onEvent?.({ type: 'substituted', path: n.path });
          return { name: n.recipe.name, path: n.path, key: n.key, tree: rec.tree, status: 'substituted', seconds: (Date.now() - t0) / 1000 };
        }
      }
      // allSettled so that a failing dependency does not leave siblings running unobserved.
      const deps = await Promise.allSettled([...n.buildDeps, ...n.runDeps].map(ensure));
      const bad = deps.find((d): d is PromiseRejectedResult => d.status === 'rejected');
      if (bad) throw bad.reason;
      await slots.acquire();
      try {
        return await buildOne(n);
      } catch (e) {
        slots.failed = true;
        const err = isMiqError(e) ? e : new MiqError('MIQ_BUILD_FAILED', `build of ${n.path} failed: ${(e as Error).message}`, { cause: e });
        opts.onEvent?.({ type: 'failed', path: n.path, error: err });
        throw err;
      } finally {
        slots.release();
      }
    })();
    outcomes.set(n, p);
    return p;
  };

  let anyFailed = false;
  try {
    const settled = await Promise.allSettled(g.roots.map(ensure));
    const failures = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => s.reason as Error);
    if (failures.length) {
      // Report the build that actually failed, not the "not started" ones it caused.
      anyFailed = true;
      throw failures.find((f) => !(isMiqError(f) && f.details?.notStarted)) ?? failures[0]!;
    }
    return settled.map((s) => (s as PromiseFulfilledResult<BuildOutcome>).value);
  } finally {
    // --keep-failed keeps the failed build's work directory (its path is in the error).
    if (!(opts.keepFailed && anyFailed)) await rmTree(root);
  }
}

function lstatOk(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
