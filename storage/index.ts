// The storage folder's entry: the Store interface and types, and openStore, which builds the
// configured backend (instrumented with metrics when a registry is passed).
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { StoreConfig } from '../config/index.js';
import { instrumentStore } from './metrics.js';
import { openSqliteStore } from './sqlite/index.js';
import type { Store } from './store.js';
import type { CredentialProvider } from './simpledb/client.js';

export * from './store.js';
export { instrumentStore, STORE_OPERATIONS, STORAGE_DURATION_BUCKETS, STORAGE_DURATION_METRIC } from './metrics.js';

export interface StoreDeps {
  logger?: Logger;
  /** When given, every operation is timed into ecs_id_mapper_storage_operation_duration_seconds. */
  registry?: Registry;
  /** The clock, for backends that need one (request signing, cache expiry). */
  now?: () => Date;
  /** SimpleDB only: credentials (default: the AWS default chain) and read cache TTL (default 5 s). */
  simpledb?: { credentials?: CredentialProvider; cacheTtlMs?: number };
  /** SQLite only: page cache and memory-map sizes in bytes (defaults in storage/sqlite/index.ts). */
  sqlite?: { cacheSizeBytes?: number; mmapSizeBytes?: number };
  /** Rows of history kept per container (default DEFAULT_HISTORY_LIMIT; 0 keeps all): storage/history-bound.ts. */
  historyLimit?: number;
}

/**
 * Opens the configured store. Throws StoreUnavailableError (or a plain Error for a backend that is
 * not available) with one readable line; the caller exits non-zero.
 */
export async function openStore(config: StoreConfig, deps: StoreDeps = {}): Promise<Store> {
  let store: Store;
  switch (config.backend) {
    case 'sqlite':
      store = openSqliteStore({ path: config.path, ...deps.sqlite, ...(deps.historyLimit === undefined ? {} : { historyLimit: deps.historyLimit }), ...(deps.logger ? { logger: deps.logger } : {}) });
      break;
    case 'simpledb': {
      // ---- SIMPLEDB BACKEND (issue 4): credentials and cache TTL come in deps.simpledb. ----
      const { openSimpleDbStore } = await import('./simpledb/index.js');
      store = await openSimpleDbStore(config, {
        ...deps.simpledb,
        ...(deps.historyLimit === undefined ? {} : { historyLimit: deps.historyLimit }),
        ...(deps.registry ? { registry: deps.registry } : {}),
        ...(deps.logger ? { logger: deps.logger } : {}),
      });
      break;
    }
  }
  return deps.registry ? instrumentStore(store, deps.registry, config.backend) : store;
}
