// Real processes for tests that need live /metrics. The server: `runServer` exactly as
// `ecs-id-mapper server` runs it (config parsed by the config module, store opened and instrumented, default process
// metrics), on 127.0.0.1 with a free port and an in-memory SQLite store. The URL is read from the
// server's own "listening" log line.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runServer } from '../../api/main.js';
import { loadCommand, type ReconcilerConfig, type ServerConfig } from '../../config/index.js';
import { runReconciler } from '../../reconciler/main.js';
import { startSimulatedHost } from '../../tools/simulate-host/index.js';

export interface RunningServer {
  url: string;
  /** Everything the server logged (pino JSON lines). */
  log(): string;
  /** Aborts runServer and waits for its clean shutdown. */
  stop(): Promise<void>;
}

/** `store` is a --store URL (default an in-memory SQLite store); `extraArgs` more server flags. */
export async function startServer(extraArgs: string[] = [], store = 'sqlite::memory:'): Promise<RunningServer> {
  const loaded = loadCommand('server', ['--host', '127.0.0.1', '--port', '0', '--store', store, ...extraArgs], {});
  if (loaded.kind !== 'run') throw new Error('server config did not load');
  const abort = new AbortController();
  const logStream = new PassThrough();
  let logged = '';
  const listening = new Promise<string>((resolve) => {
    logStream.on('data', (chunk: Buffer) => {
      logged += chunk.toString('utf8');
      const match = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(logged);
      if (match) resolve(match[1]);
    });
  });
  const done = runServer(loaded.config as ServerConfig, { signal: abort.signal, logStream });
  const url = await Promise.race([
    listening,
    done.then(() => Promise.reject(new Error(`server stopped before listening:\n${logged}`))),
  ]);
  let stopped = false;
  return {
    url,
    log: () => logged,
    async stop() {
      if (stopped) return;
      stopped = true;
      abort.abort();
      await done;
    },
  };
}

export interface LiveExposition {
  exposition: string;
  close(): Promise<void>;
}

/** GET /metrics of a freshly started server (the server is stopped by `close`). */
export async function serverMetricsExposition(): Promise<LiveExposition> {
  const server = await startServer();
  try {
    const res = await fetch(`${server.url}/metrics`);
    if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
    return { exposition: await res.text(), close: () => server.stop() };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/**
 * The real daemon (runReconciler, as `ecs-id-mapper reconciler` runs it) against a simulated host
 * (ECS agent introspection API + IMDSv2 on loopback, 3 running tasks of 2 containers, no churn),
 * reporting to `serverUrl`, serving /metrics on a free loopback port.
 */
export async function startReconcilerOnSimulatedHost(serverUrl: string): Promise<{ metricsTarget: string; log(): string; stop(): Promise<void> }> {
  const host = await startSimulatedHost({
    host: '127.0.0.1', agentPort: 0, imdsPort: 0, controlPort: 0, tasks: 3, containersPerTask: 2,
    churnIntervalMs: 0, cleanupAfterMs: 60_000, cluster: 'sim', instanceId: 'i-0123456789abcdef0', seed: 7,
  });
  const stateDir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-reconciler-'));
  const loaded = loadCommand('reconciler', [
    '--server', serverUrl, '--ecs-agent-url', host.agentUrl, '--imds-url', host.imdsUrl, '--docker-socket', 'none',
    '--state-dir', stateDir, '--metrics-host', '127.0.0.1', '--metrics-port', '0', '--resync-interval', '500ms', '--request-timeout', '1s',
  ], {});
  if (loaded.kind !== 'run') throw new Error('reconciler config did not load');
  const abort = new AbortController();
  const logStream = new PassThrough();
  let logged = '';
  const started = new Promise<string>((resolve) => {
    logStream.on('data', (chunk: Buffer) => {
      logged += chunk.toString('utf8');
      const match = /"metrics_url":"http:\/\/(127\.0\.0\.1:\d+)\/metrics"/.exec(logged);
      if (match) resolve(match[1]);
    });
  });
  const done = runReconciler(loaded.config as ReconcilerConfig, { signal: abort.signal, logStream });
  const cleanup = async () => {
    await host.close();
    rmSync(stateDir, { recursive: true, force: true });
  };
  let metricsTarget: string;
  try {
    metricsTarget = await Promise.race([started, done.then(() => Promise.reject(new Error(`reconciler stopped at start:\n${logged}`)))]);
  } catch (err) {
    await cleanup();
    throw err;
  }
  return {
    metricsTarget,
    log: () => logged,
    async stop() {
      abort.abort();
      await done;
      await cleanup();
    },
  };
}

/** GET /metrics of the real reconciler daemon on a simulated host (stopped by `close`). */
export async function reconcilerMetricsExposition(serverUrl = 'http://127.0.0.1:9'): Promise<LiveExposition> {
  const daemon = await startReconcilerOnSimulatedHost(serverUrl);
  try {
    const res = await fetch(`http://${daemon.metricsTarget}/metrics`);
    if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
    return { exposition: await res.text(), close: () => daemon.stop() };
  } catch (err) {
    await daemon.stop();
    throw err;
  }
}

/**
 * GET /metrics of a server whose store is SimpleDB (the project's simpledb-local endpoint on
 * loopback) and whose secret comes from Vault (the stand-in), after one request, so the SimpleDB
 * request counters have moved.
 */
export async function simpleDbServerMetricsExposition(): Promise<LiveExposition> {
  const { startSimpleDbLocal } = await import('../../storage/simpledb/local/index.js');
  const { startVaultStandin } = await import('../vault-standin.js');
  const credentials = { accessKeyId: 'AKIDECSIDMAPPERTEST', secretAccessKey: 'ecs-id-mapper-test-secret' };
  const sdb = await startSimpleDbLocal({ host: '127.0.0.1', port: 0, ...credentials });
  // The AWS keys come from Vault (the loopback stand-in), as in a fleet: the Vault series are exposed too.
  const vault = await startVaultStandin({
    secret: { aws_access_key_id: credentials.accessKeyId, aws_secret_access_key: credentials.secretAccessKey, report_token: 'metrics-test' },
    staticToken: { token: 'hvs.metrics', ttlSeconds: 3600 },
  });
  let server: RunningServer | undefined;
  try {
    server = await startServer(
      ['--vault-addr', vault.url, '--vault-token', 'hvs.metrics', '--vault-secret-path', 'secret/ecs-id-mapper'],
      `simpledb://us-east-1?prefix=metrics_test&shards=2&create_domains=true&endpoint=${encodeURIComponent(sdb.url)}`,
    );
    const lookup = await fetch(`${server.url}/v2/lookup/${'a'.repeat(64)}`);
    if (lookup.status !== 404) throw new Error(`a lookup on the SimpleDB server answered ${lookup.status}: ${await lookup.text()}`);
    const res = await fetch(`${server.url}/metrics`);
    if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
    const exposition = await res.text();
    const running = server;
    return { exposition, close: async () => { await running.stop(); await sdb.close(); await vault.close(); } };
  } catch (err) {
    await server?.stop();
    await sdb.close();
    await vault.close();
    throw err;
  }
}
