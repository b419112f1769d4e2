// Fleet-level series computed from the store at scrape time (issue 5):
//
// - `ecs_id_mapper_hosts{freshness="fresh"|"stale"|"retired"}`: hosts by whether they reported
//   within --host-stale-after, and those silent past --host-gone-after (fleetFreshness).
// - `ecs_id_mapper_host_report_age_seconds{stat="min"|"p50"|"p90"|"max"}`: seconds since hosts last
//   reported, as an aggregate over the hosts not retired (never one series per host).
//
// One read of the hosts feeds both and is reused for `minRefreshMs`, so several scrapers (or one
// Prometheus per AZ) do not multiply store load; SimpleDB bills every request. The per-container
// `ecs_id_mapper_container_info` family is built apart, as text (container-info.ts).
import { Gauge, type Registry } from 'prom-client';
import type { HostRecord, Store } from '../storage/store.js';
import type { WarnLog } from './log-throttle.js';

export const HOST_FRESHNESS = ['fresh', 'stale', 'retired'] as const;
export type HostFreshness = (typeof HOST_FRESHNESS)[number];

export interface FreshnessWindows {
  hostStaleAfterMs: number;
  /** 0: hosts are never retired. */
  hostGoneAfterMs: number;
}

/** Whether some host reported within the stale window. While none does, the server hears nobody. */
export function someHostReporting(hosts: ReadonlyArray<Pick<HostRecord, 'last_report_at'>>, nowMs: number, hostStaleAfterMs: number): boolean {
  return hosts.some((h) => nowMs - Date.parse(h.last_report_at) <= hostStaleAfterMs);
}

/**
 * Whether a host may be retired: a reconciler host silent longer than `hostGoneAfterMs`. Original
 * agents' hosts never are (Store.retireSilentHosts). The fleet guard is the caller's.
 */
export function silentPastGoneAfter(h: Pick<HostRecord, 'last_report_at' | 'reporter'>, nowMs: number, hostGoneAfterMs: number): boolean {
  return h.reporter === 'reconciler' && nowMs - Date.parse(h.last_report_at) > hostGoneAfterMs;
}

/**
 * Each host's freshness, in order. A host is stale once silent longer than `hostStaleAfterMs`, and a
 * reconciler host retired once silent longer than `hostGoneAfterMs` (0: never; original agents'
 * hosts are never retired, Store.retireSilentHosts): most often a terminated instance,
 * whose records the server marks gone (host-retirement.ts), so it no longer counts as stale. While
 * no host at all reports, that retirement is held, and every silent host counts as stale: a server
 * that hears nobody must keep the stale-host alert firing, not resolve it.
 */
export function fleetFreshness(hosts: ReadonlyArray<Pick<HostRecord, 'last_report_at' | 'reporter'>>, nowMs: number, o: FreshnessWindows): HostFreshness[] {
  const retiring = o.hostGoneAfterMs > 0 && someHostReporting(hosts, nowMs, o.hostStaleAfterMs);
  return hosts.map((h) => {
    if (retiring && silentPastGoneAfter(h, nowMs, o.hostGoneAfterMs)) return 'retired';
    return nowMs - Date.parse(h.last_report_at) > o.hostStaleAfterMs ? 'stale' : 'fresh';
  });
}
export const REPORT_AGE_STATS = ['min', 'p50', 'p90', 'max'] as const;

export interface FleetMetricsOptions extends FreshnessWindows {
  store: Store;
  now: () => Date;
  /** Store reads are reused for this long (default 10 s). */
  minRefreshMs?: number;
  log?: WarnLog;
}

interface FleetView {
  hosts: HostRecord[];
  /** fleetFreshness of `hosts`, in the same order. */
  freshness: HostFreshness[];
  at: number;
}

async function readFleet(options: FleetMetricsOptions, at: number): Promise<FleetView> {
  const hosts = await options.store.listHosts();
  return { hosts, freshness: fleetFreshness(hosts, at, options), at };
}

/** Nearest-rank quantile of an ascending array (empty → undefined). */
function quantile(sorted: number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function registerFleetMetrics(registry: Registry, options: FleetMetricsOptions): void {
  const minRefreshMs = options.minRefreshMs ?? 10_000;
  let cached: FleetView | undefined;
  let inflight: Promise<FleetView | undefined> | undefined;

  // Both gauges call this during one scrape; they share one read.
  const fleet = (): Promise<FleetView | undefined> => {
    const now = options.now().getTime();
    if (cached && now - cached.at < minRefreshMs) return Promise.resolve(cached);
    inflight ??= readFleet(options, now)
      .then((view) => (cached = view))
      .catch((err: unknown) => {
        // A scrape must still answer when the store is down: the series are absent, the error logged.
        options.log?.warn({ err }, 'reading the fleet for /metrics failed');
        cached = undefined;
        return undefined;
      })
      .finally(() => (inflight = undefined));
    return inflight;
  };

  new Gauge({
    name: 'ecs_id_mapper_hosts',
    help: 'Reporting hosts by freshness: stale when the last report is older than --host-stale-after, retired (its records marked gone) when older than --host-gone-after.',
    labelNames: ['freshness'] as const,
    registers: [registry],
    async collect() {
      const view = await fleet();
      this.reset();
      if (!view) return;
      const counts: Record<HostFreshness, number> = { fresh: 0, stale: 0, retired: 0 };
      for (const freshness of view.freshness) counts[freshness]++;
      for (const freshness of HOST_FRESHNESS) this.set({ freshness }, counts[freshness]);
    },
  });

  new Gauge({
    name: 'ecs_id_mapper_host_report_age_seconds',
    help: 'Seconds since hosts last reported, aggregated over the hosts not retired (stat: min, p50, p90, max); absent when there are none.',
    labelNames: ['stat'] as const,
    registers: [registry],
    async collect() {
      const view = await fleet();
      this.reset();
      const reporting = view?.hosts.filter((_, i) => view.freshness[i] !== 'retired');
      if (!view || !reporting || reporting.length === 0) return;
      const ages = reporting.map((h) => Math.max(0, (view.at - Date.parse(h.last_report_at)) / 1000)).sort((a, b) => a - b);
      const stats: Record<(typeof REPORT_AGE_STATS)[number], number | undefined> = {
        min: ages[0],
        p50: quantile(ages, 0.5),
        p90: quantile(ages, 0.9),
        max: ages[ages.length - 1],
      };
      for (const stat of REPORT_AGE_STATS) this.set({ stat }, stats[stat] ?? 0);
    },
  });
}
