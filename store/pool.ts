/** The process-wide piscina pool for ingest work (one worker per core). */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { WorkerResult, WorkerTask } from './ingest-worker.js';

let pool: Piscina<WorkerTask, WorkerResult> | undefined;

export function ingestPool(): Piscina<WorkerTask, WorkerResult> {
  pool ??= new Piscina<WorkerTask, WorkerResult>({
    filename: new URL('./ingest-worker.js', import.meta.url).href,
    minThreads: 1,
    maxThreads: Math.max(1, Number(process.env.MIQ_THREADS) || availableParallelism()),
    idleTimeout: 2000,
  });
  return pool;
}

export function poolThreads(): number {
  return Math.max(1, Number(process.env.MIQ_THREADS) || availableParallelism());
}

export async function destroyPool(): Promise<void> {
  const p = pool;
  pool = undefined;
  if (p) await p.destroy();
}
