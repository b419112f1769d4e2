// The SimpleDB backend's entry: openSimpleDbStore builds the client, checks or creates the domains
// and returns the Store. Credentials are a provider function, called before every request, so keys
// rotated in Vault (or refreshed by the AWS default chain) are used without a restart.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Dispatcher } from 'undici';
import type { StoreConfig } from '../../config/index.js';
import { defaultCredentials, SimpleDbClient, staticCredentials, type CredentialProvider } from './client.js';
import { createSimpleDbMetrics } from './metrics.js';
import { SimpleDbStore } from './store.js';

export { SimpleDbClient, SimpleDbError, SimpleDbLimitError, staticCredentials, defaultCredentials, LIMITS, type AwsCredentials, type CredentialProvider } from './client.js';
export { SimpleDbStore, domainNames } from './store.js';
export { buildSelect, quoteName, quoteValue } from './select.js';

export type SimpleDbStoreConfig = Extract<StoreConfig, { backend: 'simpledb' }>;

export interface SimpleDbOpenDeps {
  /** Default: the AWS default provider chain. */
  credentials?: CredentialProvider;
  /** Read cache TTL (ServerConfig.cacheTtlMs); default 5000, 0 disables. */
  cacheTtlMs?: number;
  /** Rows of history kept per container (default DEFAULT_HISTORY_LIMIT; 0 keeps all): storage/history-bound.ts. */
  historyLimit?: number;
  /** SimpleDB request, BoxUsage and cache counters go here when given. */
  registry?: Registry;
  logger?: Logger;
  dispatcher?: Dispatcher;
  /** Client retry tuning (tests). */
  maxAttempts?: number;
  sleep?: (ms: number) => Promise<void>;
}

export interface SimpleDbCredentialOptions {
  awsAccessKeyId?: string;
  awsSecretAccessKey?: string;
  vault?: () => { accessKeyId: string; secretAccessKey: string };
}

/**
 * Where the credentials to sign with come from: explicit keys from config when both are set, else
 * Vault's current keys, else the AWS default chain (env, profile, ECS task role, instance profile).
 */
export function simpleDbCredentialSource(opts: SimpleDbCredentialOptions): 'flags' | 'vault' | 'aws default chain' {
  if (opts.awsAccessKeyId && opts.awsSecretAccessKey) return 'flags';
  return opts.vault ? 'vault' : 'aws default chain';
}

/** The credential provider of simpleDbCredentialSource's choice. */
export async function simpleDbCredentials(opts: SimpleDbCredentialOptions): Promise<CredentialProvider> {
  const source = simpleDbCredentialSource(opts);
  if (source === 'flags') return staticCredentials({ accessKeyId: opts.awsAccessKeyId!, secretAccessKey: opts.awsSecretAccessKey! });
  if (source === 'vault') {
    const current = opts.vault!;
    return async () => current();
  }
  return defaultCredentials();
}

/** Throws StoreUnavailableError with one readable line when SimpleDB cannot be reached or domains are missing. */
export async function openSimpleDbStore(config: SimpleDbStoreConfig, deps: SimpleDbOpenDeps = {}): Promise<SimpleDbStore> {
  const metrics = deps.registry ? createSimpleDbMetrics(deps.registry) : undefined;
  const client = new SimpleDbClient({
    endpoint: config.endpoint,
    credentials: deps.credentials ?? (await defaultCredentials()),
    ...(metrics ? { metrics } : {}),
    ...(deps.dispatcher ? { dispatcher: deps.dispatcher } : {}),
    ...(deps.maxAttempts ? { maxAttempts: deps.maxAttempts } : {}),
    ...(deps.sleep ? { sleep: deps.sleep } : {}),
  });
  const store = new SimpleDbStore({
    client,
    prefix: config.prefix,
    shards: config.shards,
    cacheTtlMs: deps.cacheTtlMs ?? 5000,
    ...(deps.historyLimit === undefined ? {} : { historyLimit: deps.historyLimit }),
    ...(metrics ? { metrics } : {}),
    ...(deps.logger ? { logger: deps.logger } : {}),
  });
  try {
    await store.ensureDomains(config.createDomains);
  } catch (err) {
    await client.close();
    throw err;
  }
  deps.logger?.info({ endpoint: config.endpoint.origin, prefix: config.prefix, shards: config.shards }, 'simpledb store open');
  return store;
}
