// SimpleDB's own metrics: requests by action and answer code, the BoxUsage SimpleDB bills, and the
// read cache. (Operation durations come from storage/metrics.ts instrumentStore, for both backends.)
import { Counter, type Registry } from 'prom-client';
import { SIMPLEDB_ACTIONS, type SimpleDbMetricsHook, type SimpleDbRequestEvent } from './client.js';

export const CACHE_LOOKUPS = ['container', 'task', 'docker_name', 'history'] as const;
export type CacheLookup = (typeof CACHE_LOOKUPS)[number];

export interface SimpleDbStoreMetrics extends SimpleDbMetricsHook {
  cacheHit(lookup: CacheLookup): void;
  cacheMiss(lookup: CacheLookup): void;
}

export function createSimpleDbMetrics(registry: Registry): SimpleDbStoreMetrics {
  const requests = new Counter({
    name: 'ecs_id_mapper_simpledb_requests_total',
    help: 'SimpleDB HTTP requests (each retry counts), by action and answer: code="ok" or SimpleDB\'s error Code.',
    labelNames: ['action', 'code'] as const,
    registers: [registry],
  });
  const boxUsage = new Counter({
    name: 'ecs_id_mapper_simpledb_box_usage_hours_total',
    help: 'Machine hours SimpleDB reported as BoxUsage (what it bills), summed over every answer.',
    registers: [registry],
  });
  const hits = new Counter({
    name: 'ecs_id_mapper_simpledb_cache_hits_total',
    help: 'Lookups answered from the read cache without a SimpleDB request, by lookup.',
    labelNames: ['lookup'] as const,
    registers: [registry],
  });
  const misses = new Counter({
    name: 'ecs_id_mapper_simpledb_cache_misses_total',
    help: 'Lookups the read cache could not answer (sent to SimpleDB), by lookup.',
    labelNames: ['lookup'] as const,
    registers: [registry],
  });
  for (const action of SIMPLEDB_ACTIONS) requests.inc({ action, code: 'ok' }, 0);
  for (const lookup of CACHE_LOOKUPS) {
    hits.inc({ lookup }, 0);
    misses.inc({ lookup }, 0);
  }
  return {
    onRequest(e: SimpleDbRequestEvent) {
      requests.inc({ action: e.action, code: e.code });
      if (e.boxUsage > 0) boxUsage.inc(e.boxUsage);
    },
    cacheHit: (lookup) => hits.inc({ lookup }),
    cacheMiss: (lookup) => misses.inc({ lookup }),
  };
}
