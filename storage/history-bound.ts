// How much history a live container keeps. A container restarting in place (an ECS restart
// policy, a crash loop) adds history rows for as long as it lives, and the retention only
// deletes a container's history once it is gone: for months, without bound (one such container
// reached 4.3 MB). So each store keeps a container's latest `limit` rows and deletes older ones.
//
// Counting a container's rows in the store on every write would add a read to every transition.
// Instead each store counts, in memory, the rows it writes per container, and every `checkEvery`
// of them (a tenth of the limit) counts the container's rows in the store and deletes the oldest
// beyond the limit. A container's history is then at most limit + checkEvery - 1 rows per process
// writing it (per API replica on SimpleDB), and after a restart a history past the limit is cut
// at its container's next checkEvery rows. No imports: the config module reads the default.

/** Default of `--history-limit`: rows of history kept per container. */
export const DEFAULT_HISTORY_LIMIT = 1000;

/** Containers whose written rows are counted at once; the least recently written is forgotten first (its count restarts). */
const TRACKED_CONTAINERS = 10_000;

export class HistoryBound {
  /** Rows written since the container's last check, least recently written first (Map order). */
  private readonly sinceCheck = new Map<string, number>();
  readonly checkEvery: number;

  /** `limit` 0 keeps every row (nothing is ever due). */
  constructor(readonly limit: number = DEFAULT_HISTORY_LIMIT) {
    if (!Number.isInteger(limit) || limit < 0) throw new RangeError(`history limit must be a whole number ≥ 0, got ${limit}`);
    this.checkEvery = Math.max(1, Math.ceil(limit / 10));
  }

  /** Notes `rows` written for the container; true when its history is due a count (and the count restarts). */
  written(containerId: string, rows = 1): boolean {
    if (this.limit === 0) return false;
    const n = (this.sinceCheck.get(containerId) ?? 0) + rows;
    this.sinceCheck.delete(containerId);
    if (n >= this.checkEvery) return true;
    this.sinceCheck.set(containerId, n);
    if (this.sinceCheck.size > TRACKED_CONTAINERS) this.sinceCheck.delete(this.sinceCheck.keys().next().value as string);
    return false;
  }

  /** Rows to delete, oldest first, from a history of `rows`. */
  excess(rows: number): number {
    return this.limit === 0 ? 0 : Math.max(0, rows - this.limit);
  }
}
