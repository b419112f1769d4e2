// The server's Prometheus metrics, registered on a registry passed in (one per app, never global).
//
// Label sets are constant (route templates, never raw URLs; fixed kinds and results) and
// zero-initialised where bounded, so dashboards never show "no data" for a path that has not run yet.
import { Counter, Gauge, type Registry } from 'prom-client';
import { LIFECYCLE_STATES } from '../wire/index.js';
import type { Store } from '../storage/store.js';
import { BoundHistogram, type HistogramSeries } from './bound-histogram.js';
import { packageVersion } from '../cli/package-version.js';
import type { WarnLog } from './log-throttle.js';

export const LOOKUP_KINDS = ['container_id', 'container_prefix', 'task_id', 'task_arn', 'docker_name'] as const;
export type LookupKind = (typeof LOOKUP_KINDS)[number];
export const LOOKUP_RESULTS = ['hit', 'miss', 'ambiguous'] as const;
export type LookupResult = (typeof LOOKUP_RESULTS)[number];

export const REPORT_KINDS = ['legacy_map', 'legacy_event', 'transitions', 'snapshot'] as const;
export type ReportKind = (typeof REPORT_KINDS)[number];
export const REPORT_RESULTS = ['ok', 'rejected', 'unauthorized', 'error'] as const;
export type ReportResult = (typeof REPORT_RESULTS)[number];

/**
 * Request duration buckets in seconds: lookups answer in well under a millisecond on the embedded
 * store, SimpleDB round trips take tens of milliseconds, and batch ingests up to a second or two.
 */
export const HTTP_DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** The request-duration histogram of one route template and method, by status class. */
export interface RouteDurations {
  observe(status: number, seconds: number): void;
}

export interface ApiMetrics {
  /** Binds the duration histogram to a route template and method: once per route, not per request. */
  routeDurations(route: string, method: string): RouteDurations;
  lookup(kind: LookupKind, result: LookupResult): void;
  report(kind: ReportKind, result: ReportResult): void;
  /** A report request authenticated with the previous token (a rotation in progress). */
  previousTokenReport(kind: ReportKind): void;
  /** Transitions acknowledged as conflicts: their seq held for another transition (storage/store.ts). */
  seqConflicts(count: number): void;
}

/** The package version, read once from package.json (found by walking up from this module). */
export function createApiMetrics(registry: Registry, store: Store, log: WarnLog | undefined): ApiMetrics {
  const duration = new BoundHistogram({
    name: 'ecs_id_mapper_http_request_duration_seconds',
    help: 'HTTP request duration in seconds, by route template, method and status class.',
    labelNames: ['route', 'method', 'status_class'] as const,
    buckets: HTTP_DURATION_BUCKETS,
    registers: [registry],
  });
  // Both counters have a small constant label set; requests add to plain numbers (tallies below)
  // and a scrape moves them into prom-client, which validates and hashes the labels of every inc().
  const lookupTally = tallies(LOOKUP_KINDS, LOOKUP_RESULTS);
  const lookups = new Counter({
    name: 'ecs_id_mapper_lookups_total',
    help: 'Id lookups (legacy and v2 routes) by the kind of id looked up and the result.',
    labelNames: ['kind', 'result'] as const,
    registers: [registry],
    collect() {
      lookupTally.flush((kind, result, n) => this.inc({ kind, result }, n));
    },
  });
  for (const kind of LOOKUP_KINDS) for (const result of LOOKUP_RESULTS) lookups.inc({ kind, result }, 0);

  const reportTally = tallies(REPORT_KINDS, REPORT_RESULTS);
  const reports = new Counter({
    name: 'ecs_id_mapper_reports_received_total',
    help: 'Report requests received, by kind and result (rejected = invalid or rate limited).',
    labelNames: ['kind', 'result'] as const,
    registers: [registry],
    collect() {
      reportTally.flush((kind, result, n) => this.inc({ kind, result }, n));
    },
  });
  for (const kind of REPORT_KINDS) for (const result of REPORT_RESULTS) reports.inc({ kind, result }, 0);

  // Rare (only while a token rotation is in progress), so counted directly.
  const previousToken = new Counter({
    name: 'ecs_id_mapper_reports_previous_token_total',
    help: 'Report requests authenticated with the previous token (--report-token-previous), by kind. Once it stops growing, every reporter sends the new token and the previous one can be removed.',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  for (const kind of REPORT_KINDS) previousToken.inc({ kind }, 0);

  // Rare (a second numbering of one host's seqs), so counted directly. No labels: which host and
  // which containers is in the log line that goes with it (api/routes/reports.ts).
  const seqConflicts = new Counter({
    name: 'ecs_id_mapper_report_seq_conflicts_total',
    help: "Reported transitions acknowledged without effect because the host's history holds another transition under their seq: two reconcilers report one instance, or a state dir was restored from an old copy. Their history is lost; the host's next full sync repairs its records.",
    registers: [registry],
  });
  seqConflicts.inc(0);

  new Gauge({
    name: 'ecs_id_mapper_containers',
    help: 'Container records in the store, by lifecycle state and cluster (every state present for each cluster).',
    labelNames: ['state', 'cluster'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      let counts;
      try {
        counts = await store.countByState();
      } catch (err) {
        // A scrape must still answer when the store is down; the gauge is simply absent then.
        log?.warn({ err }, 'counting containers for /metrics failed');
        return;
      }
      const clusters = new Set(counts.map((c) => c.cluster ?? ''));
      for (const cluster of clusters) for (const state of LIFECYCLE_STATES) this.set({ state, cluster }, 0);
      for (const c of counts) this.set({ state: c.state, cluster: c.cluster ?? '' }, c.count);
    },
  });

  const buildInfo = new Gauge({
    name: 'ecs_id_mapper_build_info',
    help: 'Always 1; labels carry the server version and the Node.js version.',
    labelNames: ['version', 'node_version'] as const,
    registers: [registry],
  });
  buildInfo.set({ version: packageVersion(), node_version: process.version }, 1);

  // Route templates come from the router (a constant set), so the bindings stay few.
  const routes = new Map<string, RouteDurations>();
  const routeDurations = (route: string, method: string): RouteDurations => {
    const key = `${route} ${method}`;
    let bound = routes.get(key);
    if (bound === undefined) {
      // Index = status / 100: 1xx..5xx, bound when a class first occurs.
      const byClass: (HistogramSeries<'route' | 'method' | 'status_class'> | undefined)[] = [];
      bound = {
        observe(status, seconds) {
          const c = Math.floor(status / 100);
          (byClass[c] ??= duration.bind({ route, method, status_class: `${c}xx` })).observe(seconds);
        },
      };
      routes.set(key, bound);
    }
    return bound;
  };

  return {
    routeDurations,
    lookup(kind, result) {
      lookupTally.add(kind, result);
    },
    report(kind, result) {
      reportTally.add(kind, result);
    },
    previousTokenReport(kind) {
      previousToken.inc({ kind });
    },
    seqConflicts(count) {
      seqConflicts.inc(count);
    },
  };
}

/** Per-(kind, result) counts not yet moved into their prom-client counter. */
function tallies<K extends string, R extends string>(kinds: readonly K[], results: readonly R[]) {
  const pending = Object.fromEntries(kinds.map((k) => [k, Object.fromEntries(results.map((r) => [r, 0]))])) as Record<K, Record<R, number>>;
  return {
    add(kind: K, result: R): void {
      pending[kind][result]++;
    },
    flush(inc: (kind: K, result: R, n: number) => void): void {
      for (const kind of kinds) {
        for (const result of results) {
          const n = pending[kind][result];
          if (n > 0) {
            pending[kind][result] = 0;
            inc(kind, result, n);
          }
        }
      }
    },
  };
}

export function reportResultForStatus(status: number): ReportResult {
  if (status < 400) return 'ok';
  if (status === 401) return 'unauthorized';
  if (status >= 500) return 'error';
  return 'rejected';
}
