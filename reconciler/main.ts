// `ecs-id-mapper reconciler`: builds the real source clients, the durable outbox in --state-dir,
// the reconcile loop and the reporter, serves /metrics and /healthz, and on SIGTERM/SIGINT stops
// observing, flushes what it can to the server (bounded) and resolves. Anything not delivered
// stays in the outbox for the next start.
import { createServer, type Server } from 'node:http';
import { Registry, collectProcessMetrics } from './prom.js';
import type { ReconcilerConfig } from '../config/index.js';
import { createEcsAgentClient } from './sources/ecs-agent.js';
import { createImdsClient } from './sources/imds.js';
import { createDockerClient, type DockerClient } from './sources/docker.js';
import { openOutbox, type Outbox, type OutboxRepairs } from './outbox.js';
import { createReconcileLoop, type ReconcileLoop } from './loop.js';
import { createReporter, type Reporter } from './reporter.js';
import { createReconcilerMetrics, RECONCILER_METRICS_PREFIX, type ReconcilerMetrics } from './metrics.js';
import { untilStopped } from '../cli/until-stopped.js';
import { createDaemonLogger, type DaemonLogger } from './log.js';
import { createHeapCeiling } from './heap-ceiling.js';
import { packageVersion } from '../cli/package-version.js';
import { monotonicMs } from './clock.js';
import { acquireStateLock, StateLockError, type LockHolder, type StateLock } from './state-lock.js';

export interface RunReconcilerOptions {
  /** Resolves the returned promise when aborted (tests); SIGTERM/SIGINT always do. */
  signal?: AbortSignal;
  /** Log destination (default stdout). */
  logStream?: NodeJS.WritableStream;
}

/** How long shutdown waits for the server to take what is queued. */
const FLUSH_ON_STOP_MS = 5_000;

export interface HealthState {
  loop: Pick<ReconcileLoop, 'hostState'>;
  outbox: Pick<Outbox, 'overCapacity' | 'depth'>;
  metrics: Pick<ReconcilerMetrics, 'lastObservationMs' | 'lastReportMs'>;
  reporter: Pick<Reporter, 'state'>;
  /** An observation older than this makes the daemon unhealthy. */
  staleAfterMs: number;
  now: () => number;
}

/** /healthz: 200 when the last observation is recent, the host identified and the outbox not full; 503 otherwise. */
export function health(state: HealthState): { status: 200 | 503; body: Record<string, unknown> } {
  const last = state.metrics.lastObservationMs();
  const age = last === null ? null : (state.now() - last) / 1000;
  const problems: string[] = [];
  if (last === null) problems.push('no successful observation yet');
  else if (state.now() - last > state.staleAfterMs) problems.push(`last successful observation ${age!.toFixed(1)} s ago`);
  // The agent may answer while instance metadata does not (a 401 page, a hop limit of 1 from a
  // bridged container): passes then succeed, but without the instance id nothing can be reported.
  if (last !== null && state.loop.hostState() === 'identifying') problems.push('the host is not identified: instance metadata (IMDS) does not answer, so nothing is reported');
  if (state.outbox.overCapacity()) problems.push('outbox full');
  const lastReport = state.metrics.lastReportMs();
  const body = {
    status: problems.length === 0 ? 'ok' : 'unhealthy',
    problems,
    host_state: state.loop.hostState(),
    reporter_state: state.reporter.state(),
    outbox_depth: state.outbox.depth(),
    seconds_since_last_observation: age,
    seconds_since_last_report: lastReport === null ? null : (state.now() - lastReport) / 1000,
  };
  return problems.length === 0 ? { status: 200, body } : { status: 503, body: { error: 'unhealthy', message: problems.join('; '), ...body } };
}

export async function runReconciler(config: ReconcilerConfig, options: RunReconcilerOptions = {}): Promise<void> {
  const log = createDaemonLogger({ level: config.logLevel, base: { service: 'ecs-id-mapper-reconciler' }, stream: options.logStream ?? process.stdout });
  const registry = new Registry();
  collectProcessMetrics(registry, RECONCILER_METRICS_PREFIX);
  const metrics = createReconcilerMetrics(registry);

  // Served from the start: a daemon waiting for another's lock answers /healthz 503 saying so.
  let healthState: HealthState | undefined;
  let waitingFor: LockHolder | undefined;
  const metricsServer = await serveMetrics(config, registry, () => {
    if (healthState) return health(healthState);
    const holder = waitingFor ? describeHolder(waitingFor) : 'another daemon';
    const message = `waiting for the lock on the state dir ${config.stateDir}, held by ${holder}`;
    return { status: 503, body: { error: 'unhealthy', message, status: 'unhealthy', problems: [message] } };
  });
  const closeMetricsServer = async () => {
    metricsServer.closeAllConnections();
    await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
  };
  const addr = metricsServer.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.metricsPort;
  const host = config.metricsHost.includes(':') ? `[${config.metricsHost}]` : config.metricsHost;
  const metricsUrl = `http://${host}:${port}/metrics`;

  // Stops waiting for the state dir lock on SIGTERM/SIGINT, and the daemon when the lock is lost.
  // `quit` also ends untilStopped (and removes its signal listeners) when the daemon fails.
  const quit = new AbortController();
  options.signal?.addEventListener('abort', () => quit.abort(), { once: true });
  if (options.signal?.aborted) quit.abort();
  const stopping = new AbortController();
  const stopped = untilStopped(quit.signal).then((reason) => {
    stopping.abort(new Error(reason));
    return reason;
  });
  let lockLost: StateLockError | undefined;
  const lost = new Promise<'lock lost'>((resolve) => {
    stopping.signal.addEventListener('abort', () => lockLost && resolve('lock lost'), { once: true });
  });

  let lock: StateLock;
  try {
    lock = await acquireStateLock({
      dir: config.stateDir,
      signal: stopping.signal,
      staleAfterMs: config.stateLockStaleAfterMs,
      heartbeatMs: Math.min(2_000, config.stateLockStaleAfterMs / 5),
      onWait: (holder) => {
        waitingFor = holder;
        metrics.stateLockWaiting.set(1);
        log.warn({ holder, state_dir: config.stateDir, metrics_url: metricsUrl }, `the state dir ${config.stateDir} is locked by ${describeHolder(holder)}; waiting until it stops (two daemons must not share one outbox)`);
      },
      onTakeover: (holder) => {
        metrics.stateLockTakeovers.inc();
        log.warn({ holder, state_dir: config.stateDir }, `took over the lock on ${config.stateDir} from ${describeHolder(holder)}, whose heartbeat stopped`);
      },
      onLost: (err) => {
        lockLost = err;
        log.error({ code: err.code }, err.message);
        stopping.abort(err);
      },
    });
  } catch (err) {
    await closeMetricsServer();
    if (stopping.signal.aborted && !(err instanceof StateLockError)) {
      log.info({ reason: await stopped }, 'stopped while waiting for the state dir lock');
      return;
    }
    quit.abort();
    throw err;
  }
  metrics.stateLockWaiting.set(0);

  let outbox: Outbox;
  try {
    outbox = openOutbox({ dir: config.stateDir, maxBytes: config.outboxMaxBytes, beforeWrite: () => lock.assertHeld() });
  } catch (err) {
    lock.release();
    await closeMetricsServer();
    quit.abort();
    throw err;
  }
  reportOutboxRepairs(outbox.repairsOnOpen(), config.stateDir, log, metrics);
  const agent = createEcsAgentClient({ baseUrl: config.ecsAgentUrl, timeoutMs: config.requestTimeoutMs });
  const imds = createImdsClient({
    baseUrl: config.imdsUrl,
    timeoutMs: config.requestTimeoutMs,
    tokenTtlSeconds: config.imdsTokenTtlSeconds,
    onFallback: () => {
      metrics.imdsV1Fallbacks.inc();
      log.warn('IMDSv2 token request timed out or was refused; using IMDSv1 (check the instance metadata hop limit)');
    },
  });
  const docker: DockerClient | undefined = config.dockerSocket
    ? createDockerClient({ socketPath: config.dockerSocket, timeoutMs: config.requestTimeoutMs })
    : undefined;

  const heapCeiling = createHeapCeiling({
    headroomBytes: config.heapHeadroomBytes,
    onCollect: () => metrics.heapCollections.inc(),
    onUnavailable: (err) => log.warn({ err }, 'cannot run garbage collections from JavaScript here; --heap-headroom-bytes has no effect'),
  });
  let reporter: Reporter | undefined;
  const loop = createReconcileLoop({
    agent,
    imds,
    docker,
    outbox,
    logger: log,
    metrics,
    resyncIntervalMs: config.resyncIntervalMs,
    eventDebounceMs: config.eventDebounceMs,
    requestTimeoutMs: config.requestTimeoutMs,
    onPass: () => {
      reporter?.notify();
      heapCeiling.afterPass();
    },
  });
  reporter = createReporter({
    server: config.server,
    token: config.reportToken,
    outbox,
    host: () => loop.identity(),
    snapshot: () => loop.snapshot(),
    batchSize: config.batchSize,
    timeoutMs: config.requestTimeoutMs,
    backoffBaseMs: config.backoffBaseMs,
    backoffMaxMs: config.backoffMaxMs,
    fullSyncIntervalMs: config.fullSyncIntervalMs,
    logger: log,
    metrics,
  });

  healthState = {
    loop,
    outbox,
    metrics,
    reporter,
    staleAfterMs: 3 * config.resyncIntervalMs + config.requestTimeoutMs,
    // The clock the loop and the reporter record observations and reports on (reconciler/clock.ts).
    now: monotonicMs,
  };
  log.info(
    { version: packageVersion(), metrics_url: metricsUrl, server: config.server.href, state_dir: config.stateDir, docker: config.dockerSocket ?? 'disabled', outbox_depth: outbox.depth(), last_seq: outbox.lastSeq() },
    `reconciler started; metrics on ${metricsUrl}`,
  );

  loop.start();
  reporter.start();

  log.info({ reason: await Promise.race([stopped, lost]) }, 'shutting down');

  await loop.stop();
  if (lockLost === undefined) {
    const drained = await reporter.flush(FLUSH_ON_STOP_MS);
    log.info({ drained, outbox_depth: outbox.depth() }, drained ? 'outbox flushed' : 'outbox not drained; kept for the next start');
  }
  reporter.stop();
  outbox.close();
  lock.release();
  await docker?.close();
  await closeMetricsServer();
  quit.abort();
  if (lockLost) throw lockLost;
  log.info('reconciler stopped');
}

function describeHolder(holder: LockHolder): string {
  const who = holder.pid === undefined ? 'a daemon' : `pid ${holder.pid}${holder.hostname ? ` on ${holder.hostname}` : ''}`;
  return `${who} (last heartbeat ${holder.heartbeat_age_seconds} s ago)`;
}

/** /metrics and /healthz on --metrics-host:--metrics-port; `healthz` is asked at every request. */
async function serveMetrics(config: ReconcilerConfig, registry: Registry, healthz: () => { status: number; body: Record<string, unknown> }): Promise<Server> {
  const metricsServer: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'application/json', allow: 'GET, HEAD' });
      res.end(JSON.stringify({ error: 'method_not_allowed', message: `${req.method} is not allowed` }));
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        (err: Error) => {
          res.writeHead(503, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'metrics_unavailable', message: err.message }));
        },
      );
      return;
    }
    if (path === '/healthz') {
      const h = healthz();
      res.writeHead(h.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(h.body));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'not_found', message: `no route ${path}` }));
  });
  try {
    await new Promise<void>((resolve, reject) => {
      metricsServer.once('error', reject);
      metricsServer.listen(config.metricsPort, config.metricsHost, () => resolve());
    });
  } catch (err) {
    throw new Error(`cannot serve metrics on ${config.metricsHost}:${config.metricsPort}: ${(err as Error).message}`, { cause: err });
  }
  return metricsServer;
}

/** Says what open found damaged in the state dir, and what it costs. */
function reportOutboxRepairs(repairs: OutboxRepairs, stateDir: string, log: DaemonLogger, metrics: ReconcilerMetrics): void {
  if (repairs.tornTail) {
    metrics.outboxRepairs.inc({ kind: 'torn_tail' });
    log.info({ state_dir: stateDir }, 'the outbox log ended inside a line (the daemon stopped mid-append): the partial line was dropped; nothing reported was lost');
  }
  if (repairs.corruptLines > 0) {
    metrics.outboxRepairs.inc({ kind: 'corrupt_line' }, repairs.corruptLines);
    log.warn(
      { state_dir: stateDir, lines: repairs.corruptLines },
      `${repairs.corruptLines} line(s) of the outbox log were not transitions and were dropped (a write cut short, or the file changed on disk): a transition they held is missing from the server's history; the next full sync corrects the containers' states`,
    );
  }
  if (repairs.metaRebuilt) {
    metrics.outboxRepairs.inc({ kind: 'meta_rebuilt' });
    log.warn({ state_dir: stateDir }, 'outbox.meta.json was unreadable and was rebuilt from the log: queued transitions are sent again (the server drops those it holds)');
  }
  if (repairs.checkpointUnreadable) {
    metrics.outboxRepairs.inc({ kind: 'checkpoint_unreadable' });
    log.warn({ state_dir: stateDir }, 'the container checkpoint was unreadable and was left out: containers only it knew are observed afresh by the first pass');
  }
}
