// The reconciler daemon's Prometheus metrics. The registry is passed in (one per daemon). Every
// labelled series is zero-initialised over its constant label set, so dashboards never show
// "no data"; container ids never appear as labels.
import { Counter, Gauge, Histogram, type Registry } from './prom.js';
import { LIFECYCLE_STATES, type LifecycleState } from '../wire/ids.js';
import { monotonicMs } from './clock.js';

/** Kinds of ecs_id_mapper_reconciler_outbox_repairs_total (outbox.ts OutboxRepairs). */
export const OUTBOX_REPAIR_KINDS = ['torn_tail', 'corrupt_line', 'meta_rebuilt', 'checkpoint_unreadable'] as const;

export const PASS_RESULTS = ['ok', 'degraded', 'failed'] as const;
export type PassResultKind = (typeof PASS_RESULTS)[number];
export const OBSERVATION_SOURCES = ['agent', 'imds', 'docker'] as const;
export const REPORT_KINDS = ['transitions', 'snapshot'] as const;
export const REPORT_RESULTS = ['success', 'rejected', 'http_error', 'timeout', 'unreachable', 'bad_response'] as const;
export type ReportResult = (typeof REPORT_RESULTS)[number];
/** `none` stands for the first observation of a container (from = null on the wire). */
export const TRANSITION_FROM = ['none', ...LIFECYCLE_STATES] as const;

/**
 * Pass duration buckets, seconds: a pass is ~1 ms of CPU plus the sources' request latency
 * (loopback agent: a few ms; timeouts reach --request-timeout, 3 s by default).
 */
export const PASS_DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface ReconcilerMetrics {
  passDuration: Histogram<string>;
  passes: Counter<'result'>;
  transitions: Counter<'from' | 'to'>;
  observationFailures: Counter<'source'>;
  imdsV1Fallbacks: Counter<string>;
  outboxDepth: Gauge<string>;
  outboxBytes: Gauge<string>;
  outboxCoalesced: Counter<string>;
  outboxWriteErrors: Counter<'code'>;
  outboxRepairs: Counter<'kind'>;
  reportAttempts: Counter<'kind' | 'result'>;
  containers: Gauge<'state'>;
  labelDisagreements: Counter<string>;
  dockerEvents: Counter<string>;
  dockerEventsConnected: Gauge<string>;
  heapCollections: Counter<string>;
  stateLockWaiting: Gauge<string>;
  stateLockTakeovers: Counter<string>;
  /** Records a successful observation, in milliseconds of the clock given to createReconcilerMetrics, for the seconds-since gauge. */
  observedAt(ms: number): void;
  reportedAt(ms: number): void;
  lastObservationMs(): number | null;
  lastReportMs(): number | null;
}

/**
 * Every series the daemon exposes starts with this, its Node process metrics too
 * (`ecs_id_mapper_reconciler_process_resident_memory_bytes`), so a dashboard tells the daemon's from the server's.
 */
export const RECONCILER_METRICS_PREFIX = 'ecs_id_mapper_reconciler_';

/** `now`: the monotonic clock the loop and the reporter record their times on (reconciler/clock.ts). */
export function createReconcilerMetrics(registry: Registry, now: () => number = monotonicMs): ReconcilerMetrics {
  let lastObservation: number | null = null;
  let lastReport: number | null = null;
  const p = RECONCILER_METRICS_PREFIX;
  const registers = [registry];

  const passDuration = new Histogram({ name: `${p}pass_duration_seconds`, help: 'Wall time of one reconcile pass (observe, apply machines, append to the outbox).', buckets: PASS_DURATION_BUCKETS, registers });
  const passes = new Counter({ name: `${p}passes_total`, help: 'Reconcile passes by result: ok, degraded (agent failed, labels used), failed (nothing observed).', labelNames: ['result'], registers });
  for (const result of PASS_RESULTS) passes.inc({ result }, 0);
  const transitions = new Counter({ name: `${p}transitions_total`, help: 'Lifecycle transitions emitted to the outbox, by from/to state (from="none" for a first observation).', labelNames: ['from', 'to'], registers });
  for (const from of TRANSITION_FROM) for (const to of LIFECYCLE_STATES) transitions.inc({ from, to }, 0);
  const observationFailures = new Counter({ name: `${p}observation_failures_total`, help: 'Failed observations by source.', labelNames: ['source'], registers });
  for (const source of OBSERVATION_SOURCES) observationFailures.inc({ source }, 0);
  const imdsV1Fallbacks = new Counter({ name: `${p}imds_v1_fallbacks_total`, help: 'Times the IMDSv2 token PUT timed out or was refused and IMDSv1 was used.', registers });
  const outboxDepth = new Gauge({ name: `${p}outbox_depth`, help: 'Transitions in the outbox not yet acknowledged by the server.', registers });
  const outboxBytes = new Gauge({ name: `${p}outbox_bytes`, help: 'Bytes of unacknowledged transitions in the outbox.', registers });
  const outboxCoalesced = new Counter({ name: `${p}outbox_coalesced_total`, help: 'Outbox entries dropped by coalescing to the latest state per container when the outbox was full.', registers });
  // The name predates read-back (queued lines are read from disk when sent); a failed read counts
  // here too, under its own code, so the existing alert covers it.
  const outboxWriteErrors = new Counter({ name: `${p}outbox_write_errors_total`, help: 'Outbox appends, compactions or read-backs of queued transitions that failed (retried on the next pass or send).', labelNames: ['code'], registers });
  for (const code of ['ERR_OUTBOX_WRITE', 'ERR_OUTBOX_NO_SPACE', 'ERR_OUTBOX_READ']) outboxWriteErrors.inc({ code }, 0);
  const outboxRepairs = new Counter({
    name: `${p}outbox_repairs_total`,
    help: 'Damage found in the state dir when the outbox was opened, by kind: torn_tail (a crash mid-append; nothing lost), corrupt_line (dropped; a transition may be lost), meta_rebuilt, checkpoint_unreadable.',
    labelNames: ['kind'],
    registers,
  });
  for (const kind of OUTBOX_REPAIR_KINDS) outboxRepairs.inc({ kind }, 0);
  const reportAttempts = new Counter({ name: `${p}report_attempts_total`, help: 'Requests to the server by kind and result.', labelNames: ['kind', 'result'], registers });
  for (const kind of REPORT_KINDS) for (const result of REPORT_RESULTS) reportAttempts.inc({ kind, result }, 0);
  const containers = new Gauge({ name: `${p}containers`, help: 'Containers tracked on this host by lifecycle state.', labelNames: ['state'], registers });
  for (const state of LIFECYCLE_STATES) containers.set({ state }, 0);
  const labelDisagreements = new Counter({ name: `${p}label_disagreements_total`, help: 'Containers whose ECS labels disagree with the agent (task ARN or container name).', registers });
  const dockerEvents = new Counter({ name: `${p}docker_events_total`, help: 'Docker container events received (each only shortens the wait for the next pass).', registers });
  const dockerEventsConnected = new Gauge({
    name: `${p}docker_events_connected`,
    help: '1 while the daemon follows Docker\'s event stream; 0 while the stream is lost and reconnecting (passes then run only every --resync-interval), and with --docker-socket none.',
    registers,
  });
  const heapCollections = new Counter({ name: `${p}heap_collections_total`, help: 'Full garbage collections the daemon ran because its heap grew --heap-headroom-bytes past the last one (V8\'s own are not counted).', registers });
  const stateLockWaiting = new Gauge({ name: `${p}state_dir_lock_waiting`, help: 'Set to 1 while this daemon waits for another daemon\'s lock on --state-dir (it observes and reports nothing meanwhile); 0 once it holds it.', registers });
  const stateLockTakeovers = new Counter({ name: `${p}state_dir_lock_takeovers_total`, help: 'Locks on --state-dir taken over because the daemon holding them stopped its heartbeat (killed, or frozen past the stale limit).', registers });
  new Gauge({
    name: `${p}seconds_since_last_observation`,
    help: 'Seconds since the last pass in which the ECS agent (or Docker labels) answered; -1 before the first.',
    registers,
    collect() {
      this.set(lastObservation === null ? -1 : (now() - lastObservation) / 1000);
    },
  });
  new Gauge({
    name: `${p}seconds_since_last_report`,
    help: 'Seconds since the server last accepted a report; -1 before the first.',
    registers,
    collect() {
      this.set(lastReport === null ? -1 : (now() - lastReport) / 1000);
    },
  });

  return {
    passDuration, passes, transitions, observationFailures, imdsV1Fallbacks, outboxDepth, outboxBytes, outboxCoalesced,
    outboxWriteErrors, outboxRepairs, reportAttempts, containers, labelDisagreements, dockerEvents, dockerEventsConnected, heapCollections, stateLockWaiting, stateLockTakeovers,
    observedAt: (ms) => void (lastObservation = ms),
    reportedAt: (ms) => void (lastReport = ms),
    lastObservationMs: () => lastObservation,
    lastReportMs: () => lastReport,
  };
}

export function transitionFromLabel(from: LifecycleState | null): (typeof TRANSITION_FROM)[number] {
  return from ?? 'none';
}
