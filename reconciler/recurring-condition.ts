// A problem that a pass can find again and again (the ECS agent, IMDS or Docker failing, the
// outbox disk full, Docker's event stream down) is logged when it starts, again every `repeatMs`
// while it lasts, and once when it ends. Logged on every occurrence, an ECS agent that was down
// wrote a warning every resync interval (10 s), 360 an hour on each host of the fleet, and the
// line saying when it came back was missing. The metrics still count every occurrence.

/** How often a lasting condition is logged again. */
export const CONDITION_REPEAT_MS = 10 * 60_000;

export interface ConditionHeld {
  /** Consecutive occurrences so far, this one included. */
  occurrences: number;
  /** Seconds since the first of them. */
  for_s: number;
}

export class RecurringCondition {
  private firstMs: number | null = null;
  private lastLoggedMs = 0;
  private occurrences = 0;
  /** The causes already logged since the condition began. */
  private causes = new Set<string>();

  constructor(private readonly repeatMs: number = CONDITION_REPEAT_MS) {}

  /**
   * The condition was found again. Returns what to log with it when a line is due (the first
   * occurrence, the first of each `cause` not logged yet while it lasts, and then one every
   * `repeatMs`), else undefined. Without causes, an agent that went from refusing connections to
   * answering garbage kept its first reason in the log for ten minutes.
   */
  occurred(nowMs: number, cause?: string): ConditionHeld | undefined {
    this.occurrences++;
    const newCause = cause !== undefined && !this.causes.has(cause);
    if (cause !== undefined) this.causes.add(cause);
    if (this.firstMs === null) this.firstMs = nowMs;
    else if (!newCause && nowMs - this.lastLoggedMs < this.repeatMs) return undefined;
    this.lastLoggedMs = nowMs;
    return { occurrences: this.occurrences, for_s: Math.round((nowMs - this.firstMs) / 1000) };
  }

  /** The condition was not found. Returns how long it had held when it just ended, else undefined. */
  ended(nowMs: number): ConditionHeld | undefined {
    if (this.firstMs === null) return undefined;
    const held = { occurrences: this.occurrences, for_s: Math.round((nowMs - this.firstMs) / 1000) };
    this.firstMs = null;
    this.occurrences = 0;
    this.causes.clear();
    return held;
  }
}
