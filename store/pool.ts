/** The process-wide piscina pool for ingest work (one worker per core). */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { WorkerResult, WorkerTask } from './ingest-worker.js';

let pool: Piscina<WorkerTask, WorkerResult> | undefined;

export function ingestPool(): Piscina<WorkerTask, WorkerResult> {
  pool ??= new Piscina<WorkerTask, WorkerResult>({
    filename: new URL('./ingest-worker.js', import.meta.url).href,
    minThreads: 1,
    maxThreads: poolThreads(),
    idleTimeout: 2000,
    execArgv: WORKER_EXEC_ARGV,
  });
  return pool;
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
export const WORKER_EXEC_ARGV = process.allowedNodeEnvironmentFlags.has('--experimental-require-module')
  ? [...process.execArgv, '--no-experimental-require-module']
  : [...process.execArgv];

/**
 * One worker more than cores: the main thread (walk, index lookups, pack writes) takes a share of
 * a core, and with exactly one worker per core the workers sat idle ~15% of a full-corpus ingest
 * waiting for it. Measured on 2 cores, full corpus (2.85 GB), 3 alternating runs each: 2 workers
 * 8.9 s, 3 workers 8.3 s, 4 workers 8.3 s; release N (1.75 GB) no difference. MIQ_THREADS overrides.
 */
export function poolThreads(): number {
  return Math.max(1, Number(process.env.MIQ_THREADS) || availableParallelism() + 1);
}

/**
 * Starts two workers now (the walk's and the first scan's), each loading its modules (zstd,
 * BLAKE3, the chunker: ~0.2-0.3 s of a thread under load) while the caller opens the store:
 * piscina starts a worker only when a task finds none free, so the scanning one began loading
 * only once the walk had sent its first batch (small release N: first scan result 0.5-0.67 s
 * after the ingest began, 0.15-0.2 s warmed). One no-op task each, sent at once, makes it start
 * both. Not all three: a tiny tree never needs the third, and each costs its isolate's start.
 */
export function warmPool(): void {
  const p = ingestPool();
  for (let i = 0; i < Math.min(2, poolThreads()); i++) p.run({ type: 'warm' }).catch(() => {});
}

export async function destroyPool(): Promise<void> {
  const p = pool;
  pool = undefined;
  if (p) await p.destroy();
}
