/** A byte-bounded LRU (Map keeps insertion order; a hit re-inserts). */
export class ByteLru<K, V extends { length: number }> {
  private readonly map = new Map<K, V>();
  private bytes = 0;
  constructor(private readonly maxBytes: number) {}

  get(k: K): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }

  set(k: K, v: V): void {
    if (v.length > this.maxBytes) return;
    const old = this.map.get(k);
    if (old !== undefined) {
      this.bytes -= old.length;
      this.map.delete(k);
    }
    this.map.set(k, v);
    this.bytes += v.length;
    while (this.bytes > this.maxBytes) {
      const [ok, ov] = this.map.entries().next().value as [K, V];
      this.map.delete(ok);
      this.bytes -= ov.length;
    }
  }

  delete(k: K): void {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.bytes -= v.length;
      this.map.delete(k);
    }
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }
}

/** Serialises async critical sections (one writer per store). */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => (release = r));
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
