// The parts fault tests assemble: the real server on loopback (restartable on the same port and
// store file), a simulated ECS host, and the reconciler wired in-process from its real modules
// (the same wiring as reconciler/main.ts) so a test can inject a clock, a failing outbox fs, read
// the daemon's metrics registry and record every transition the loop appended.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { Registry } from 'prom-client';
import { buildServer, type ServerDeps } from '../../api/server.js';
import { parseLinks } from '../../config/links.js';
import type { StoreConfig } from '../../config/store-url.js';
import { openStore, type Store, type StoreDeps } from '../../storage/index.js';
import { createEcsAgentClient } from '../../reconciler/sources/ecs-agent.js';
import { createImdsClient } from '../../reconciler/sources/imds.js';
import { createDockerClient, type DockerClient } from '../../reconciler/sources/docker.js';
import { openOutbox, type Outbox, type OutboxFs } from '../../reconciler/outbox.js';
import { createReconcileLoop, type PassResult, type ReconcileLoop } from '../../reconciler/loop.js';
import { createReporter, type Reporter } from '../../reconciler/reporter.js';
import { createReconcilerMetrics, type ReconcilerMetrics } from '../../reconciler/metrics.js';
import { startSimulatedHost, type SimulatedHost, type SimulatedHostOptions } from '../../tools/simulate-host/index.js';
import type { GroundTruth } from './ground-truth.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Cleanups run in reverse order by the test's afterEach. */
export class Cleanups {
  private readonly fns: Array<() => unknown> = [];
  add(fn: () => unknown): void {
    this.fns.push(fn);
  }
  async run(): Promise<void> {
    while (this.fns.length) {
      try {
        await this.fns.pop()!();
      } catch {
        /* keep cleaning */
      }
    }
  }
  tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.add(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }
}

/** The value of one series (labels matched exactly on the given keys); 0 when absent. */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const hit = values.find((v) => Object.entries(labels).every(([k, val]) => String((v.labels as Record<string, unknown>)[k]) === val));
  return hit?.value ?? 0;
}

/** One sample of a Prometheus text exposition (`name{a="b"} 1`); undefined when absent. */
export function sampleOf(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** The real server (buildServer + a store) on loopback; stop() and start() keep port and store file. */
export class Api {
  store!: Store;
  app!: FastifyInstance;
  registry!: Registry;
  port = 0;
  up = false;
  constructor(
    private readonly storeConfig: StoreConfig,
    private readonly extra: Partial<ServerDeps> & { storeDeps?: StoreDeps; openStore?: typeof openStore } = {},
  ) {}

  static sqlite(cleanups: Cleanups, extra: Partial<ServerDeps> & { openStore?: typeof openStore } = {}): Api {
    const api = new Api({ backend: 'sqlite', path: join(cleanups.tempDir('faults-db-'), 'mapper.sqlite') }, extra);
    cleanups.add(() => api.stop());
    return api;
  }

  async start(): Promise<this> {
    // A given registry (one that already holds other metrics, e.g. Vault's) is for a single start.
    this.registry = this.extra.registry ?? new Registry();
    const { storeDeps, openStore: open = openStore, ...deps } = this.extra;
    this.store = await open(this.storeConfig, { registry: this.registry, ...storeDeps });
    this.app = await buildServer({
      store: this.store, registry: this.registry, logger: false, links: parseLinks([]), cadvisorPort: 8080,
      hostStaleAfterMs: 15 * 60_000, bodyLimitBytes: 16 * 1024 * 1024, reportRateLimitPerMinute: 1_000_000,
      ...deps,
    });
    await this.app.listen({ host: '127.0.0.1', port: this.port });
    const addr = this.app.server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : this.port;
    this.up = true;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    if (!this.up) return;
    this.up = false;
    this.app.server.closeAllConnections();
    await this.app.close();
    await this.store.close();
  }
}

export const INSTANCE_ID = 'i-0fa17fa17fa17fa17';

export async function startSim(cleanups: Cleanups, options: Partial<SimulatedHostOptions> = {}): Promise<SimulatedHost> {
  const sim = await startSimulatedHost({
    host: '127.0.0.1', agentPort: 0, imdsPort: 0, controlPort: 0, tasks: 4, containersPerTask: 2,
    churnIntervalMs: 0, cleanupAfterMs: 2500, cluster: 'faults', instanceId: INSTANCE_ID, seed: 7, ...options,
  });
  cleanups.add(() => sim.close());
  return sim;
}

export interface RigReconcilerOptions {
  server: string;
  sim: SimulatedHost;
  stateDir: string;
  truth: GroundTruth;
  resyncIntervalMs?: number;
  requestTimeoutMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  batchSize?: number;
  fullSyncIntervalMs?: number;
  outboxMaxBytes?: number;
  outboxFs?: OutboxFs;
  dockerSocket?: string;
  now?: () => number;
  /** Default true: the loop's timer runs passes. False: the test calls loop.runPass(). */
  autoStart?: boolean;
  imdsV2RetryAfterMs?: number;
  token?: string;
}

export interface RigReconciler {
  loop: ReconcileLoop;
  reporter: Reporter;
  outbox: Outbox;
  registry: Registry;
  metrics: ReconcilerMetrics;
  passes: PassResult[];
  /** One pass now, its transitions recorded in the truth, the reporter notified. */
  pass(): Promise<PassResult>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

/** The reconciler, wired as reconciler/main.ts does, with the test's clock, fs and truth. */
export function startReconciler(cleanups: Cleanups, o: RigReconcilerOptions): RigReconciler {
  const now = o.now ?? Date.now;
  const registry = new Registry();
  const metrics = createReconcilerMetrics(registry, now);
  const log = pino({ level: 'silent' });
  // Generous: on a loaded 2-core machine a loopback answer can take a second; a timed-out
  // observation would hide short-lived containers from the reconciler and fail the truth.
  const requestTimeoutMs = o.requestTimeoutMs ?? 2000;
  const outbox = openOutbox({ dir: o.stateDir, maxBytes: o.outboxMaxBytes ?? 64 * 1024 * 1024, ...(o.outboxFs ? { fs: o.outboxFs } : {}) });
  const docker: DockerClient | undefined = o.dockerSocket ? createDockerClient({ socketPath: o.dockerSocket, timeoutMs: requestTimeoutMs }) : undefined;
  const passes: PassResult[] = [];
  let reporter: Reporter | undefined;
  const record = (r: PassResult) => {
    passes.push(r);
    o.truth.recordEmitted(r.transitions);
  };
  const loop = createReconcileLoop({
    agent: createEcsAgentClient({ baseUrl: new URL(o.sim.agentUrl), timeoutMs: requestTimeoutMs }),
    imds: createImdsClient({
      baseUrl: new URL(o.sim.imdsUrl), timeoutMs: requestTimeoutMs, tokenTtlSeconds: 21600, now,
      onFallback: () => metrics.imdsV1Fallbacks.inc(),
      ...(o.imdsV2RetryAfterMs !== undefined ? { v2RetryAfterMs: o.imdsV2RetryAfterMs } : {}),
    }),
    docker,
    outbox,
    logger: log,
    metrics,
    resyncIntervalMs: o.resyncIntervalMs ?? 60,
    eventDebounceMs: 20,
    requestTimeoutMs,
    now,
    onPass: (r) => {
      record(r);
      reporter?.notify();
    },
  });
  reporter = createReporter({
    server: new URL(o.server),
    ...(o.token ? { token: o.token } : {}),
    outbox,
    host: () => loop.identity(),
    snapshot: () => loop.snapshot(),
    batchSize: o.batchSize ?? 7,
    timeoutMs: Math.max(requestTimeoutMs, 2000),
    backoffBaseMs: o.backoffBaseMs ?? 20,
    backoffMaxMs: o.backoffMaxMs ?? 200,
    fullSyncIntervalMs: o.fullSyncIntervalMs ?? 60 * 60_000,
    logger: log,
    metrics,
    now,
  });
  let stopped = false;
  const rig: RigReconciler = {
    loop,
    reporter,
    outbox,
    registry,
    metrics,
    passes,
    async pass() {
      const r = await loop.runPass();
      record(r);
      reporter!.notify();
      return r;
    },
    metric: (name, labels) => metricValue(registry, name, labels),
    async stop() {
      if (stopped) return;
      stopped = true;
      await loop.stop();
      reporter!.stop();
      outbox.close();
      await docker?.close();
    },
  };
  cleanups.add(() => rig.stop());
  if (o.autoStart !== false) loop.start();
  reporter.start();
  return rig;
}

/**
 * Advances the host one churn step at a time and tells the truth; waits `gapMs` (real time) after
 * each. `observable: false` while the agent is faulted: a container started and cleaned up
 * entirely while nothing can list it is unknowable, so the truth must not expect it.
 */
export async function churn(sim: SimulatedHost, truth: GroundTruth, rounds: number, gapMs = 60, observable = true): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    sim.tick();
    if (observable) truth.observe(sim.state);
    await sleep(gapMs);
  }
}
