// The parts of prom-client the daemon uses, loaded by their own files. The package index also
// loads the Pushgateway client, the cluster aggregator and collectDefaultMetrics, whose CPU
// counters import @opentelemetry/api (51 modules, about 6 MiB RSS) only to attach trace exemplars,
// which the daemon never enables. The process metrics are prom-client's own collectors, except
// the three CPU counters, which are reimplemented below without the tracing import: same names,
// same help, same values. reconciler/prom.test.ts checks that the series match prom-client's
// collectDefaultMetrics and fails if an upgrade moves these files.
//
// Everything in reconciler/ that defines metrics imports from here, never from 'prom-client'.
import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';

const load = createRequire(import.meta.url);

export const Registry: typeof PromClient.Registry = load('prom-client/lib/registry.js');
export type Registry = PromClient.Registry;
export const Counter: typeof PromClient.Counter = load('prom-client/lib/counter.js');
export type Counter<T extends string = string> = PromClient.Counter<T>;
export const Gauge: typeof PromClient.Gauge = load('prom-client/lib/gauge.js');
export type Gauge<T extends string = string> = PromClient.Gauge<T>;
export const Histogram: typeof PromClient.Histogram = load('prom-client/lib/histogram.js');
export type Histogram<T extends string = string> = PromClient.Histogram<T>;

type Collector = (registry: Registry, config: { prefix: string; eventLoopMonitoringPrecision: number }) => void;

/** prom-client's default collectors (lib/defaultMetrics.js), in its order, minus processCpuTotal. */
const PROCESS_COLLECTORS = [
  'processStartTime',
  'osMemoryHeap',
  'processOpenFileDescriptors',
  'processMaxFileDescriptors',
  'eventLoopLag',
  'processResources',
  'processHandles',
  'processRequests',
  'heapSizeAndUsed',
  'heapSpacesSizeAndUsed',
  'version',
  'gc',
] as const;

/**
 * Registers the Node process metrics prom-client's `collectDefaultMetrics({ register, prefix })`
 * would (CPU, memory, heap spaces, event-loop lag at 10 ms resolution, handles, GC durations,
 * file descriptors, version), each name prefixed with `prefix`.
 */
export function collectProcessMetrics(registry: Registry, prefix: string): void {
  registerCpuCounters(registry, prefix);
  for (const name of PROCESS_COLLECTORS) {
    (load(`prom-client/lib/metrics/${name}.js`) as Collector)(registry, { prefix, eventLoopMonitoringPrecision: 10 });
  }
}

/** process_cpu_{user,system}_seconds_total and process_cpu_seconds_total, from process.cpuUsage(). */
function registerCpuCounters(registry: Registry, prefix: string): void {
  const registers = [registry];
  let last = process.cpuUsage();
  // One collect updates all three (registered in prom-client's order), so a scrape sees one reading.
  new Counter({
    name: `${prefix}process_cpu_user_seconds_total`,
    help: 'Total user CPU time spent in seconds.',
    registers,
    collect() {
      const usage = process.cpuUsage();
      const userMicros = usage.user - last.user;
      const systemMicros = usage.system - last.system;
      last = usage;
      this.inc(userMicros / 1e6);
      system.inc(systemMicros / 1e6);
      total.inc((userMicros + systemMicros) / 1e6);
    },
  });
  const system = new Counter({ name: `${prefix}process_cpu_system_seconds_total`, help: 'Total system CPU time spent in seconds.', registers });
  const total = new Counter({ name: `${prefix}process_cpu_seconds_total`, help: 'Total user and system CPU time spent in seconds.', registers });
}
