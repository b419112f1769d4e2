// A bounded map whose entries live a fixed time from when they were set. Every entry has the same
// lifetime, so insertion order is expiry order: the oldest entry is both the first to expire and
// the one to evict when full, and a plain Map (which iterates in insertion order) is all it needs.
// It replaced lru-cache on the text lookup's hot path, where lru-cache's bookkeeping and timers
// cost about 0.9 µs of some 40 µs per request (see docs/benchmarks.md).
export class ExpiringMap<K, V> {
  private readonly entries = new Map<K, { value: V; expiresAt: number }>();

  constructor(
    private readonly opts: { max: number; ttlMs: number; nowMs: () => number },
  ) {
    if (!(opts.max >= 1) || !(opts.ttlMs > 0)) throw new RangeError('ExpiringMap needs max >= 1 and ttlMs > 0');
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > this.opts.nowMs()) return entry.value;
    this.entries.delete(key);
    return undefined;
  }

  set(key: K, value: V): void {
    const now = this.opts.nowMs();
    // Re-setting moves the key to the end, where its new expiry belongs.
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt: now + this.opts.ttlMs });
    // Drop expired entries from the front, then the oldest live ones while over the bound.
    for (const [k, e] of this.entries) {
      if (e.expiresAt > now && this.entries.size <= this.opts.max) break;
      this.entries.delete(k);
    }
  }
}
