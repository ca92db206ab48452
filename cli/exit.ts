/**
 * Commands that leave nothing running once their action returns (a one-shot `miq ingest`) ask
 * main.ts to end the process at once with process.exit: otherwise node, with the event loop
 * drained, tears the main isolate's heap down first (Heap::TearDown, unmapping it page table by
 * page table), 30-35 ms after the result is printed on this VM's release N+1 of the small corpus.
 * stdout and stderr are synchronous for files, pipes and TTYs on Linux, so nothing printed is lost;
 * 'exit' listeners still run.
 */
let done = false;

export function exitWhenDone(): void {
  done = true;
}

export function exitsWhenDone(): boolean {
  return done;
}
