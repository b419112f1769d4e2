// Per-request log lines that can repeat at fleet rate are written at most once per interval for
// each key. A full disk answers every report 503, and a fleet of 2,000 daemons reporting every few
// seconds turned that into hundreds of identical warnings a second, on a disk that may be the full
// one. The metrics count every occurrence; the log only needs to say what is wrong, and how often.

/** One log line per key per this interval. */
export const LOG_THROTTLE_INTERVAL_MS = 60_000;
/** Keys remembered at once (the oldest logged is forgotten first: its next occurrence is logged). */
const MAX_KEYS = 10_000;

export class LogThrottle {
  /** Per key: when its last line was written, and how many occurrences were held back since. */
  private readonly windows = new Map<string, { loggedAtMs: number; held: number }>();

  constructor(
    private readonly nowMs: () => number,
    private readonly intervalMs: number = LOG_THROTTLE_INTERVAL_MS,
  ) {}

  /**
   * Whether this occurrence of `key` is to be logged: `undefined` when not (it is counted), else
   * the number of occurrences not logged since the key's last line, for the line to report.
   */
  admit(key: string): number | undefined {
    const now = this.nowMs();
    const window = this.windows.get(key);
    if (window && now - window.loggedAtMs < this.intervalMs) {
      window.held++;
      return undefined;
    }
    // Re-inserted, so the map's order is the order of the keys' last lines.
    this.windows.delete(key);
    this.windows.set(key, { loggedAtMs: now, held: 0 });
    if (this.windows.size > MAX_KEYS) this.windows.delete(this.windows.keys().next().value!);
    return window?.held ?? 0;
  }
}

/** What the /metrics collectors log with: one warning per failed read. */
export interface WarnLog {
  warn(fields: Record<string, unknown>, msg: string): void;
}

/**
 * `log` with each warning message written at most once per interval of `throttle`, the next line
 * carrying `repeats_not_logged`. The /metrics collectors read the store at every scrape; with the
 * store away (SimpleDB unreachable) each scrape by each Prometheus wrote three warnings.
 */
export function throttledWarnings(log: WarnLog, throttle: LogThrottle): WarnLog {
  return {
    warn(fields, msg) {
      const held = throttle.admit(`warn ${msg}`);
      if (held !== undefined) log.warn(held > 0 ? { ...fields, repeats_not_logged: held } : fields, msg);
    },
  };
}
