// Storage metrics as a Store decorator, so both backends are measured the same way and the
// backends themselves stay free of metric code.
import { Histogram, type Registry } from 'prom-client';
import type { Store } from './store.js';

/** Every Store method that talks to the backend (close is not measured). */
export const STORE_OPERATIONS = [
  'applyTransitions',
  'replaceSnapshot',
  'replaceLegacySnapshot',
  'recordLegacyEvent',
  'getContainer',
  'findByTask',
  'findByDockerName',
  'listContainers',
  'scanContainers',
  'history',
  'listHosts',
  'purgeGone',
  'retireSilentHosts',
  'forgetHost',
  'countByState',
  'countByHostAndState',
  'health',
] as const satisfies ReadonlyArray<keyof Store>;
export type StoreOperation = (typeof STORE_OPERATIONS)[number];
// Compile-time check: a Store method added without being listed above fails the build here.
type MustBeNever<T extends never> = T;
export type UnmeasuredStoreMethods = MustBeNever<Exclude<keyof Store, StoreOperation | 'backend' | 'close'>>;

/**
 * Seconds. SQLite answers lookups in tens of microseconds and writes a snapshot in milliseconds;
 * SimpleDB round trips take 10 ms to seconds with retries. The buckets span both: 0.1 ms to 10 s.
 */
export const STORAGE_DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const STORAGE_DURATION_METRIC = 'ecs_id_mapper_storage_operation_duration_seconds';

/**
 * Errors that refuse the caller's input (a cursor the store did not issue, a time it cannot keep):
 * the API answers 400, and the backend did its work. Counted as ok, so that `result="error"` means
 * the backend failed, and clients' typos do not read as storage trouble.
 */
const CALLER_ERROR_CODES: ReadonlySet<unknown> = new Set(['ERR_INVALID_CURSOR', 'ERR_INVALID_TIME']);

/**
 * Wraps a store so every operation is timed into
 * `ecs_id_mapper_storage_operation_duration_seconds{backend, operation, result}`, result = ok | error.
 * A health check that answers `ok: false` counts as an error; a refusal of the caller's input as ok.
 * Every label combination starts at zero.
 */
export function instrumentStore(store: Store, registry: Registry, backend: string = store.backend): Store {
  const histogram = new Histogram({
    name: STORAGE_DURATION_METRIC,
    help: 'Duration of storage operations in seconds, by backend, operation and result (ok, or error when the backend failed).',
    labelNames: ['backend', 'operation', 'result'] as const,
    buckets: STORAGE_DURATION_BUCKETS,
    registers: [registry],
  });
  for (const operation of STORE_OPERATIONS) {
    for (const result of ['ok', 'error'] as const) histogram.zero({ backend, operation, result });
  }

  function timed<A extends unknown[], R>(operation: StoreOperation, fn: (...args: A) => Promise<R>, failed?: (r: R) => boolean) {
    return async (...args: A): Promise<R> => {
      const end = histogram.startTimer({ backend, operation });
      try {
        const value = await fn(...args);
        end({ result: failed?.(value) ? 'error' : 'ok' });
        return value;
      } catch (err) {
        end({ result: CALLER_ERROR_CODES.has((err as { code?: unknown } | null)?.code) ? 'ok' : 'error' });
        throw err;
      }
    };
  }

  return {
    backend: store.backend,
    applyTransitions: timed('applyTransitions', store.applyTransitions.bind(store)),
    replaceSnapshot: timed('replaceSnapshot', store.replaceSnapshot.bind(store)),
    replaceLegacySnapshot: timed('replaceLegacySnapshot', store.replaceLegacySnapshot.bind(store)),
    recordLegacyEvent: timed('recordLegacyEvent', store.recordLegacyEvent.bind(store)),
    getContainer: timed('getContainer', store.getContainer.bind(store)),
    findByTask: timed('findByTask', store.findByTask.bind(store)),
    findByDockerName: timed('findByDockerName', store.findByDockerName.bind(store)),
    listContainers: timed('listContainers', store.listContainers.bind(store)),
    scanContainers: timed('scanContainers', store.scanContainers.bind(store)),
    history: timed('history', store.history.bind(store)),
    listHosts: timed('listHosts', store.listHosts.bind(store)),
    purgeGone: timed('purgeGone', store.purgeGone.bind(store)),
    retireSilentHosts: timed('retireSilentHosts', store.retireSilentHosts.bind(store)),
    forgetHost: timed('forgetHost', store.forgetHost.bind(store)),
    countByState: timed('countByState', store.countByState.bind(store)),
    countByHostAndState: timed('countByHostAndState', store.countByHostAndState.bind(store)),
    health: timed('health', store.health.bind(store), (h) => !h.ok),
    close: () => store.close(),
  };
}
