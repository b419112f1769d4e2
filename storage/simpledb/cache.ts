// The read cache in front of SimpleDB lookups. Entries live `ttlMs` (other replicas' writes show up
// within that time) and are dropped at once when this process writes a record they could contain,
// so a replica always reads its own writes. Values are cloned in and out: callers may mutate them.
import { LRUCache } from 'lru-cache';
import type { ContainerRecord } from '../store.js';
import type { CacheLookup, SimpleDbStoreMetrics } from './metrics.js';

export interface ReadCacheOptions {
  /** 0 disables the cache. */
  ttlMs: number;
  maxEntries?: number;
  metrics?: Pick<SimpleDbStoreMetrics, 'cacheHit' | 'cacheMiss'>;
  /** Monotonic milliseconds (default performance.now), injectable for tests. */
  nowMs?: () => number;
}

type Key = `${'c' | 't' | 'n' | 'h'}:${string}`;

export class ReadCache {
  private readonly entries?: LRUCache<string, { value: unknown }>;
  /** Prefix lookups, kept apart so a write scans only these. */
  private readonly prefixes?: LRUCache<string, { value: unknown }>;
  private readonly metrics?: ReadCacheOptions['metrics'];
  private hitCount = 0;
  /** Bumped by every local write: an answer loaded while a write happened is not kept. */
  private generation = 0;
  private missCount = 0;

  constructor(opts: ReadCacheOptions) {
    this.metrics = opts.metrics;
    if (opts.ttlMs <= 0) return;
    // With an injected clock, staleness is checked on every read (lru-cache otherwise caches `now` for 1 ms).
    const perf = opts.nowMs ? { perf: { now: opts.nowMs }, ttlResolution: 0 } : undefined;
    this.entries = new LRUCache({ max: opts.maxEntries ?? 10_000, ttl: opts.ttlMs, ...perf });
    this.prefixes = new LRUCache({ max: Math.max(1, Math.floor((opts.maxEntries ?? 10_000) / 10)), ttl: opts.ttlMs, ...perf });
  }

  get stats(): { hits: number; misses: number } {
    return { hits: this.hitCount, misses: this.missCount };
  }

  /** Full container id, unique prefix, task id, docker name or history: one cached answer per query. */
  async container<T>(idOrPrefix: string, load: () => Promise<T>): Promise<T> {
    return idOrPrefix.length === 64 ? this.through('container', this.entries, `c:${idOrPrefix}`, load) : this.through('container', this.prefixes, idOrPrefix, load);
  }

  async task<T>(taskId: string, load: () => Promise<T>): Promise<T> {
    return this.through('task', this.entries, `t:${taskId}`, load);
  }

  async dockerName<T>(name: string, load: () => Promise<T>): Promise<T> {
    return this.through('docker_name', this.entries, `n:${name}`, load);
  }

  async history<T>(containerId: string, load: () => Promise<T>): Promise<T> {
    return this.through('history', this.entries, `h:${containerId}`, load);
  }

  /** Drops every answer the write of this record (before → after) can change. */
  recordWritten(before: ContainerRecord | undefined, after: ContainerRecord | undefined): void {
    this.generation++;
    if (!this.entries || !this.prefixes) return;
    const id = (after ?? before)?.container_id;
    if (!id) return;
    const keys = new Set<Key>([`c:${id}`]);
    for (const r of [before, after]) {
      if (r?.task_id) keys.add(`t:${r.task_id}`);
      if (r?.docker_name !== null && r?.docker_name !== undefined) keys.add(`n:${r.docker_name}`);
    }
    for (const k of keys) this.entries.delete(k);
    for (const prefix of [...this.prefixes.keys()]) if (id.startsWith(prefix)) this.prefixes.delete(prefix);
  }

  historyWritten(containerId: string): void {
    this.generation++;
    this.entries?.delete(`h:${containerId}`);
  }

  clear(): void {
    this.entries?.clear();
    this.prefixes?.clear();
  }

  private async through<T>(lookup: CacheLookup, cache: LRUCache<string, { value: unknown }> | undefined, key: string, load: () => Promise<T>): Promise<T> {
    const cached = cache?.get(key);
    if (cached) {
      this.hitCount++;
      this.metrics?.cacheHit(lookup);
      return structuredClone(cached.value) as T;
    }
    this.missCount++;
    this.metrics?.cacheMiss(lookup);
    const generation = this.generation;
    const value = await load();
    if (generation === this.generation) cache?.set(key, { value: structuredClone(value) });
    return value;
  }
}
