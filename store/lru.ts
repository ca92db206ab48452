/** An LRU bounded by total weight (bytes, or 1 per entry). Map keeps insertion order; a hit
 * re-inserts. */
export class Lru<K, V> {
  private readonly map = new Map<K, V>();
  /** Total weight held now. */
  weight = 0;
  constructor(private readonly max: number, private readonly weigh: (v: V) => number) {}

  get(k: K): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }

  set(k: K, v: V): void {
    const w = this.weigh(v);
    if (w > this.max) return;
    this.delete(k);
    this.map.set(k, v);
    this.weight += w;
    while (this.weight > this.max) {
      const [ok, ov] = this.map.entries().next().value as [K, V];
      this.map.delete(ok);
      this.weight -= this.weigh(ov);
    }
  }

  delete(k: K): void {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.weight -= this.weigh(v);
      this.map.delete(k);
    }
  }

  clear(): void {
    this.map.clear();
    this.weight = 0;
  }
}

/** An LRU of buffers bounded by their total length. */
export class ByteLru<K, V extends { length: number }> extends Lru<K, V> {
  constructor(maxBytes: number) {
    super(maxBytes, (v) => v.length);
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
