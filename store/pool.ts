/** The process-wide piscina pool for ingest work (one worker per core). */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import type { WorkerResult, WorkerTask } from './ingest-worker.js';

type Pool = Piscina<WorkerTask, WorkerResult>;
type RunOptions = Parameters<Pool['run']>[1];

/** The pool once made; `making` from its first use (piscina is loaded then: ~10 ms of module
 * loading that an update ingest doing all its work in C, or a command that ingests nothing,
 * never needs). */
let pool: Pool | undefined;
let making: Promise<Pool> | undefined;
/** The size the first use asked for (the pool is made with it). */
let size: number | undefined;

/** The pool, made on first use with `threads` workers at most (later calls get it as it is:
 * a CLI process runs one ingest, so its first call decides). */
function ingestPool(threads = poolThreads()): Promise<Pool> {
  if (!making) {
    size = threads;
    const mine: Promise<Pool> = import('piscina').then(({ Piscina: P }) => {
      const p = new P<WorkerTask, WorkerResult>({
        filename: new URL('./ingest-worker.js', import.meta.url).href,
        minThreads: 1,
        maxThreads: threads,
        idleTimeout: 2000,
        execArgv: workerExecArgv(),
      });
      // A destroyPool while piscina was loading destroys this pool (it awaits `mine`): it must
      // not become the current one.
      if (making === mine) pool = p;
      return p;
    });
    making = mine;
  }
  return making;
}

/** Runs `task` in the pool (made on first use with poolThreads() workers at most). */
export async function runInPool(task: WorkerTask, options?: RunOptions): Promise<WorkerResult> {
  return (await ingestPool()).run(task, options);
}

/**
 * Piscina loads a worker's module with require() first and falls back to import(). On Node
 * 20.19+ require() of an ES module succeeds (require(esm)), and a worker terminated while that
 * require links the module aborts the whole process (`CreateRequiredModuleFacade: Assertion
 * failed: facade->InstantiateModule(...)`): a clean-clone `npm test` lost an ingest to it when the
 * pool was destroyed while a warming worker was still loading. With require(esm) off in the
 * workers, require() throws ERR_REQUIRE_ESM at once and piscina uses import(), which a
 * termination ends cleanly. Older Nodes have no such flag (and no require(esm)): nothing added.
 */
export function workerExecArgv(): string[] {
  // Worked out at the first worker (process.allowedNodeEnvironmentFlags builds a set of every
  // flag: ~0.5 ms that a command starting no worker does not pay).
  execArgv ??= process.allowedNodeEnvironmentFlags.has('--experimental-require-module')
    ? [...workerFlags(process.execArgv), '--no-experimental-require-module']
    : workerFlags(process.execArgv);
  return execArgv;
}
let execArgv: string[] | undefined;

/**
 * `argv` (node's own flags, as `node FLAGS bin/miq …` gave them) without those a Worker refuses:
 * V8 options (`--max-old-space-size=…`, `--no-opt`) and per-process ones (`--title`) are the
 * process's, and passing them on made every ingest fail with "invalid execArgv flags" (exit 70).
 * Node names the refused flags when a Worker is created with them (before its thread starts); a
 * flag given without `=` takes the next word along. Three probes at most, then no flags at all. Empty (no
 * probe, no thread) in the usual case: `miq` run as itself.
 */
export function workerFlags(argv: readonly string[]): string[] {
  let flags = [...argv];
  for (let probes = 0; flags.length > 0; probes++) {
    const refused = refusedFlags(flags);
    if (refused.size === 0) return flags;
    if (probes === 2) return [];
    flags = withoutRefused(flags, refused);
  }
  return flags;
}

/** `flags` without the refused ones, and without the word after a refused flag given without
 * `=` (its value: `--stack-size 900`). */
function withoutRefused(flags: readonly string[], refused: ReadonlySet<string>): string[] {
  const valueOfRefused = (i: number): boolean => i > 0 && refused.has(flags[i - 1]!) && !flags[i - 1]!.includes('=') && !flags[i]!.startsWith('-');
  return flags.filter((a, i) => !refused.has(a) && !valueOfRefused(i));
}

/** The flags of `flags` a Worker refuses (a probe worker that is accepted is stopped at once). */
function refusedFlags(flags: string[]): Set<string> {
  try {
    const probe = new Worker('', { eval: true, execArgv: flags });
    probe.unref();
    void probe.terminate();
    return new Set();
  } catch (e) {
    const m = /flags: (.*)$/.exec(e instanceof Error ? e.message : '');
    if ((e as { code?: string }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV' || !m) return new Set(flags);
    return new Set(m[1]!.split(', '));
  }
}

/**
 * One worker per core. Each isolate starts, loads its modules and optimises the same JS again
 * (TurboFan was ~12 % of the small corpus's CPU, in four isolates), and on this 2-core VM a third
 * worker costs more than the main thread's share of a core leaves idle. A new store, A/B
 * against cores + 1 (the default until 2026-12-04, measured then on another 2-core host: full
 * corpus 8.9 s with 2 workers, 8.3 s with 3), 2026-12-04 under CFS (.notes/store-interface.md):
 * small N lower in 10 of 11 pairs (medians 2.69 vs 2.835 s, CPU 4.65 vs 5.06 s), the small
 * corpus's full tree 4 of 4 (4.38 vs 4.67 s), release N 3 of 3 (6.62 vs 6.74 s). MIQ_THREADS
 * overrides.
 */
export function poolThreads(): number {
  return threadsOr(availableParallelism());
}

/** MIQ_THREADS when set to a positive number, else `dflt` (at least one). */
function threadsOr(dflt: number): number {
  return Math.max(1, Number(process.env.MIQ_THREADS) || dflt);
}

/**
 * Workers for an ingest into a store that has files (an update: most files are stat hits or
 * only hashed, in C, and the rest are deltas): one per core, as for a new store since
 * 2026-12-04 (before, a new store had one more); see the ingest round of 2026-12-03, afternoon,
 * in .notes/store-interface.md. MIQ_THREADS overrides.
 */
export function updateThreads(): number {
  return poolThreads();
}

/**
 * Starts two workers now (the walk's and the first scan's), each loading its modules (zstd,
 * BLAKE3, the chunker: ~0.2-0.3 s of a thread under load) while the caller opens the store:
 * piscina starts a worker only when a task finds none free, so the scanning one began loading
 * only once the walk had sent its first batch (small release N: first scan result 0.5-0.67 s
 * after the ingest began, 0.15-0.2 s warmed). One no-op task each, sent at once, makes it start
 * both. Not more than two on more cores: a tiny tree never needs them, and each costs its
 * isolate's start.
 */
export function warmPool(threads = poolThreads()): void {
  ingestPool(threads).then((p) => {
    for (let i = 0; i < Math.min(2, threads); i++) p.run({ type: 'warm' }).catch(() => {});
  }, () => {});
}

/** How many workers the pool has at most (it is made on first use: a later ingest of the same
 * process gets the first one's size), without starting it: one not made yet will have
 * poolThreads(). */
export function poolSize(): number {
  return size ?? poolThreads();
}

/** Workers the pool has started (0: not made; tests: an update whose files are all known starts
 * none; MIQ_INGEST_TRACE). */
export function poolStarted(): number {
  return pool?.threads.length ?? 0;
}

export async function destroyPool(): Promise<void> {
  const p = making;
  pool = making = size = undefined;
  if (p) await (await p.catch(() => undefined))?.destroy();
}
