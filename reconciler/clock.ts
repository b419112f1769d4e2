// Two clocks. Timestamps that leave the daemon (a transition's `at`, a snapshot's `taken_at`) are
// wall-clock time, Date.now(). Every interval the daemon measures (the full sync, how stale the
// last observation is for /healthz, how long a problem has lasted) is measured on a monotonic
// clock: measured on the wall clock, an NTP step back by an hour held the next full sync back by an
// hour and kept /healthz at 200 for an hour after the agent stopped answering.

/** Milliseconds on a monotonic clock (epoch-sized: the wall clock at process start plus the time since). */
export function monotonicMs(): number {
  return performance.timeOrigin + performance.now();
}
