// `ecs-id-mapper server`: opens the store, builds the app, listens, purges gone records
// periodically, and on SIGTERM/SIGINT closes the app, the store and the secrets (revoking the Vault
// token its AppRole login obtained) before resolving.
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { ServerConfig } from '../config/index.js';
import { openStore } from '../storage/index.js';
import { simpleDbCredentialSource, simpleDbCredentials } from '../storage/simpledb/index.js';
import { loadSecrets as loadVaultSecrets, type LoadedSecrets } from '../secrets/index.js';
import type { ReportTokenSource } from './auth.js';
import type { ExtraHealthCheck } from './context.js';
import { buildServer } from './server.js';
import { retireSilentHosts } from './host-retirement.js';
import { packageVersion } from '../cli/package-version.js';
import { untilStopped } from '../cli/until-stopped.js';

/** api/web/ next to this module in the source tree, or (from dist/api/) two levels up. */
export function defaultWebRoot(): string | undefined {
  for (const rel of ['./web/', '../../api/web/']) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** What the Vault integration hands the server: the current (and previous) report token and a readiness check. */
interface ServerSecrets {
  reportToken: ReportTokenSource;
  previousReportToken: ReportTokenSource;
  health?: ExtraHealthCheck;
  close(): Promise<void>;
}

async function loadSecrets(config: ServerConfig, log: Logger, registry: Registry): Promise<ServerSecrets & Pick<LoadedSecrets, 'awsCredentials'>> {
  // ---- VAULT (issue 4): secrets/index.ts; throws one clear VaultError when Vault is unusable at start. ----
  return loadVaultSecrets(config, { logger: log, registry });
}

/** The server's metrics registry with the Node process metrics on it (bench:api measures the server with it). */
export function serverRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'ecs_id_mapper_' });
  // prom-client names these gauges `*_total`, which promtool (rightly) rejects for non-counters.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(`ecs_id_mapper_${name}`);
  }
  return registry;
}

export interface RunServerOptions {
  /** Resolves the returned promise when aborted (tests); SIGTERM/SIGINT always do. */
  signal?: AbortSignal;
  /** Log destination (default stdout). */
  logStream?: NodeJS.WritableStream;
}

/**
 * The server's logger. `err` goes through errWithCause: an error's message as it is, and its cause
 * as an error of its own, with its code (pino's default appended the cause's message to the
 * message, which for the store's errors already held it, and dropped the cause's code).
 */
export function serverLogger(level: ServerConfig['logLevel'], stream: NodeJS.WritableStream): Logger {
  return pino({ level, base: { service: 'ecs-id-mapper-server' }, serializers: { err: pino.stdSerializers.errWithCause } }, stream);
}

export async function runServer(config: ServerConfig, options: RunServerOptions = {}): Promise<void> {
  const log = serverLogger(config.logLevel, options.logStream ?? process.stdout);
  const registry = serverRegistry();

  const secrets = await loadSecrets(config, log, registry);
  let store;
  try {
    // SimpleDB signs with explicit keys from config, else Vault's current keys, else the AWS default chain.
    let credentials;
    if (config.store.backend === 'simpledb') {
      const from = { awsAccessKeyId: config.awsAccessKeyId, awsSecretAccessKey: config.awsSecretAccessKey, vault: secrets.awsCredentials };
      credentials = await simpleDbCredentials(from);
      log.info({ credentials: simpleDbCredentialSource(from) }, 'simpledb credentials');
    }
    store = await openStore(config.store, {
      logger: log,
      registry,
      simpledb: { credentials, cacheTtlMs: config.cacheTtlMs },
      historyLimit: config.historyLimit,
      sqlite: { cacheSizeBytes: config.sqliteCacheBytes, mmapSizeBytes: config.sqliteMmapBytes },
    });
  } catch (err) {
    await secrets.close().catch(() => {});
    throw err;
  }
  let app;
  try {
    app = await buildServer({
      store,
      registry,
      logger: log,
      links: config.links,
      cadvisorPort: config.cadvisorPort,
      reportToken: secrets.reportToken,
      previousReportToken: secrets.previousReportToken,
      hostStaleAfterMs: config.hostStaleAfterMs,
      hostGoneAfterMs: config.hostGoneAfterMs,
      bodyLimitBytes: config.bodyLimitBytes,
      keepAliveTimeoutMs: config.keepAliveTimeoutMs,
      reportRateLimitPerMinute: config.reportRateLimitPerMinute,
      trustProxy: config.trustProxy,
      taskCacheTtlMs: config.cacheTtlMs,
      webRoot: defaultWebRoot(),
      health: secrets.health,
    });
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await app?.close().catch(() => {});
    await store.close().catch(() => {});
    await secrets.close().catch(() => {});
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  log.info({ url, store: config.store.backend, version: packageVersion() }, `server listening on ${url}`);

  // A purge of a big backlog runs for minutes in small chunks (storage/sqlite/sqlite-store.ts);
  // the next interval does not start a second one beside it. Silent hosts are retired first, so a
  // terminated instance's records start their retention (host-retirement.ts).
  // Up-time for the retirement guard, on the monotonic clock: a wall-clock step is no up-time.
  const startedAt = performance.now();
  let purging: Promise<void> | undefined;
  const purge = () =>
    (purging ??= (async () => {
      try {
        await retireSilentHosts({ store, goneAfterMs: config.hostGoneAfterMs, staleAfterMs: config.hostStaleAfterMs, upForMs: performance.now() - startedAt, log }, Date.now());
        const removed = await store.purgeGone(new Date(Date.now() - config.retentionMs));
        if (removed > 0) log.info({ removed }, 'purged records gone longer than the retention');
      } catch (err) {
        log.warn({ err }, 'retiring silent hosts or purging gone records failed; will retry');
      }
    })().finally(() => (purging = undefined)));
  const purgeTimer = setInterval(() => void purge(), config.purgeIntervalMs);
  purgeTimer.unref();
  void purge();

  log.info({ reason: await untilStopped(options.signal) }, 'shutting down');

  clearInterval(purgeTimer);
  // Each step runs whatever failed before it: the store is closed (its WAL checkpointed) even if
  // the app's close threw, and the Vault token this process logged in for is still revoked.
  try {
    await app.close();
  } finally {
    try {
      await store.close();
    } finally {
      await secrets.close();
    }
  }
  log.info('server stopped');
  log.flush?.();
}
