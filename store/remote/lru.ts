/** An in-memory LRU bounded by total weight (bytes, or 1 per entry). */
export class MemoryLru<V> {
  private readonly m = new Map<string, V>();
  weight = 0;

  constructor(private readonly max: number, private readonly weigh: (v: V) => number) {}

  get(k: string): V | undefined {
    const v = this.m.get(k);
    if (v !== undefined) {
      this.m.delete(k);
      this.m.set(k, v);
    }
    return v;
  }

  set(k: string, v: V): void {
    const w = this.weigh(v);
    if (w > this.max) return;
    const old = this.m.get(k);
    if (old !== undefined) {
      this.weight -= this.weigh(old);
      this.m.delete(k);
    }
    this.m.set(k, v);
    this.weight += w;
    for (const [key, val] of this.m) {
      if (this.weight <= this.max) break;
      this.m.delete(key);
      this.weight -= this.weigh(val);
    }
  }
}
