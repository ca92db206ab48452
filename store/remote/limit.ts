/** A counting semaphore: at most `n` tasks run at once; the rest wait in FIFO order. */
export class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly n: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.n) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  get active(): number {
    return this.running;
  }
}

/** Runs `fn` over `items` with at most `n` in flight; the first failure rejects after all settle. */
export async function forEachLimit<T>(items: Iterable<T>, n: number, fn: (item: T) => Promise<void>): Promise<void> {
  const lim = new Limiter(n);
  const results = await Promise.allSettled([...items].map((it) => lim.run(() => fn(it))));
  const bad = results.find((r) => r.status === 'rejected');
  if (bad) throw (bad as PromiseRejectedResult).reason;
}
