// A small simulated fleet for the lookup page and CLI tests, reported through the server's real v2
// report routes (POST /v2/hosts/:id/transitions, PUT /v2/hosts/:id/snapshot) exactly as a
// reconciler sends them, so the tests read back what the whole write path stored.
//
// Host `prod-a` (fresh):
//   task web:3    app (running, port 80 → 32768) and proxy (running)
//   task worker:7 job: pending → running → stopped (exit 0), a full history timeline
//   two tasks whose containers share the 12-hex prefix `feedfacecafe` (an ambiguous short id)
// Host `staging-b` (stale): one running container, reported while the server's clock was set back.
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { buildServer } from '../../api/server.js';
import { parseLinks } from '../../config/links.js';
import { openStore } from '../../storage/index.js';
import type { ContainerObservation, HostIdentity, HostSnapshot, Transition, TransitionBatch } from '../../wire/index.js';
import { containerId, hostIdentity, instanceId, observation, snapshotContainer, taskArn, taskId } from '../../storage/store.fixtures.js';

/** The lookup page's folder, as the server serves it in production. */
export const WEB_ROOT = fileURLToPath(new URL('../../api/web/', import.meta.url));

export interface LookupServer {
  /** Base URL, `http://127.0.0.1:<port>`, no trailing slash. */
  url: string;
  cadvisorPort: number;
  hostStaleAfterMs: number;
  /** Moves the server's clock (its `now` dependency). */
  setNow(at: Date): void;
  close(): Promise<void>;
}

/**
 * A real server (in-memory SQLite store, the lookup page's folder as webRoot) listening on
 * 127.0.0.1 on a free port, with a clock the test controls.
 */
export async function startLookupServer(options: { now: Date; hostStaleAfterMs?: number; hostGoneAfterMs?: number; cadvisorPort?: number; links?: string[] }): Promise<LookupServer> {
  const store = await openStore({ backend: 'sqlite', path: ':memory:' });
  let now = options.now;
  const hostStaleAfterMs = options.hostStaleAfterMs ?? 15 * 60_000;
  const cadvisorPort = options.cadvisorPort ?? 8080;
  const app = await buildServer({
    store,
    registry: new Registry(),
    logger: false,
    links: parseLinks(options.links ?? []),
    cadvisorPort,
    hostStaleAfterMs,
    hostGoneAfterMs: options.hostGoneAfterMs ?? 0,
    bodyLimitBytes: 1024 * 1024,
    reportRateLimitPerMinute: 10_000,
    now: () => now,
    webRoot: WEB_ROOT,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    cadvisorPort,
    hostStaleAfterMs,
    setNow(at) {
      now = at;
    },
    async close() {
      await app.close();
      await store.close();
    },
  };
}

export interface SeededTask {
  taskId: string;
  taskArn: string;
  family: string;
  revision: string;
}

export interface SeededFleet {
  host: HostIdentity;
  staleHost: HostIdentity;
  web: SeededTask & { app: ContainerObservation; proxy: ContainerObservation };
  worker: SeededTask & { job: ContainerObservation };
  /** Two containers whose ids both start with `ambiguousPrefix`. */
  twins: [ContainerObservation, ContainerObservation];
  ambiguousPrefix: string;
  staleContainer: ContainerObservation;
}

export interface SeedOptions {
  /** The server's current time; transition times are set a few minutes before it. */
  now: Date;
  /** Moves the server's clock (its `now` dependency); the stale host reports at `now - staleBy`. */
  setServerTime(at: Date): void;
  /** How far in the past the stale host's only report is (longer than the server's hostStaleAfterMs). */
  staleByMs: number;
  /** Sent as a Bearer token when the server requires one. */
  reportToken?: string;
}

function task(seed: string, family: string, revision: string, cluster: string): SeededTask {
  const id = taskId(seed);
  return { taskId: id, taskArn: taskArn(id, cluster), family, revision };
}

function containerOf(t: SeededTask, name: string, id: string, overrides: Partial<ContainerObservation> = {}): ContainerObservation {
  return observation({
    container_id: id,
    container_name: name,
    docker_name: `ecs-${t.family}-${t.revision}-${name}-${id.slice(0, 20)}`,
    task_arn: t.taskArn,
    task_family: t.family,
    task_version: t.revision,
    ports: [],
    ...overrides,
  });
}

async function send(baseUrl: string, method: 'POST' | 'PUT', path: string, body: unknown, token?: string): Promise<unknown> {
  const res = await fetch(new URL(path, baseUrl), {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`seed: ${method} ${path} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

export async function seedFleet(baseUrl: string, options: SeedOptions): Promise<SeededFleet> {
  const { now } = options;
  const minutesAgo = (m: number) => new Date(now.getTime() - m * 60_000).toISOString();

  const host = hostIdentity({ instance_id: instanceId('prod-a'), cluster: 'prod', instance_ip: '10.0.1.17', instance_type: 'm5.large', instance_az: 'us-east-1a' });
  const staleHost = hostIdentity({
    instance_id: instanceId('staging-b'),
    cluster: 'staging',
    instance_ip: '10.0.2.9',
    instance_type: 't3.small',
    instance_az: 'us-east-1b',
    host_name: 'ip-10-0-2-9.ec2.internal',
    container_instance_arn: 'arn:aws:ecs:us-east-1:123456789012:container-instance/staging/5ef86972cbc03cb5630af8850b3a0966',
  });

  const web = task('web', 'web', '3', 'prod');
  const app = containerOf(web, 'app', containerId('web-app'), {
    image: 'nginx:1.27',
    ports: [{ container_port: 80, host_port: 32768, protocol: 'tcp' }],
    started_at: minutesAgo(30),
  });
  const proxy = containerOf(web, 'proxy', containerId('web-proxy'), { image: 'envoyproxy/envoy:v1.31', started_at: minutesAgo(30) });
  const worker = task('worker', 'worker', '7', 'prod');
  const jobRunning = containerOf(worker, 'job', containerId('worker-job'), { image: 'busybox:1.36', started_at: minutesAgo(20) });
  const job: ContainerObservation = { ...jobRunning, known_status: 'STOPPED', desired_status: 'STOPPED', exit_code: 0 };

  // Both ids start with the same 12 hex characters; the 13th differs so 13-hex prefixes are unique.
  const ambiguousPrefix = 'feedfacecafe';
  const batchA = task('batch-a', 'batch', '1', 'prod');
  const batchB = task('batch-b', 'batch', '1', 'prod');
  const twins: [ContainerObservation, ContainerObservation] = [
    containerOf(batchA, 'step', `${ambiguousPrefix}0${containerId('twin-a').slice(13)}`),
    containerOf(batchB, 'step', `${ambiguousPrefix}1${containerId('twin-b').slice(13)}`),
  ];

  const transitions: Transition[] = [];
  const step = (container: ContainerObservation, from: Transition['from'], to: Transition['to'], minutes: number) =>
    transitions.push({ seq: transitions.length + 1, container_id: container.container_id, from, to, at: minutesAgo(minutes), reason: 'agent.observed', container });
  step(app, null, 'pending', 31);
  step(app, 'pending', 'running', 30);
  step(proxy, null, 'pending', 31);
  step(proxy, 'pending', 'running', 30);
  step(jobRunning, null, 'pending', 21);
  step(jobRunning, 'pending', 'running', 20);
  step(job, 'running', 'stopped', 5);
  step(twins[0], null, 'running', 10);
  step(twins[1], null, 'running', 10);

  const token = options.reportToken;
  const path = (h: HostIdentity, what: string) => `/v2/hosts/${encodeURIComponent(h.instance_id)}/${what}`;

  // The stale host first, while the server's clock is set back; then the clock returns to now.
  const staleContainer = containerOf(task('legacy-svc', 'legacy-svc', '12', 'staging'), 'svc', containerId('staging-svc'));
  options.setServerTime(new Date(now.getTime() - options.staleByMs));
  const staleBatch: TransitionBatch = {
    host: staleHost,
    transitions: [{ seq: 1, container_id: staleContainer.container_id, from: null, to: 'running', at: new Date(now.getTime() - options.staleByMs).toISOString(), reason: 'agent.observed', container: staleContainer }],
  };
  await send(baseUrl, 'POST', path(staleHost, 'transitions'), staleBatch, token);
  options.setServerTime(now);

  const batch: TransitionBatch = { host, transitions };
  await send(baseUrl, 'POST', path(host, 'transitions'), batch, token);
  const snap: HostSnapshot = {
    host,
    seq: transitions.length,
    taken_at: minutesAgo(1),
    containers: [
      snapshotContainer('running', app),
      snapshotContainer('running', proxy),
      snapshotContainer('stopped', job),
      snapshotContainer('running', twins[0]),
      snapshotContainer('running', twins[1]),
    ],
  };
  await send(baseUrl, 'PUT', path(host, 'snapshot'), snap, token);

  return { host, staleHost, web: { ...web, app, proxy }, worker: { ...worker, job }, twins, ambiguousPrefix, staleContainer };
}

/**
 * `count` running containers on one host of their own whose ids all start with the 12-hex `prefix`
 * (then two hex digits of their index): more than a server lists as the candidates of an ambiguous
 * prefix (20). Returns their ids, sorted.
 */
export async function seedSharedPrefix(baseUrl: string, options: { now: Date; prefix: string; count: number }): Promise<string[]> {
  const host = hostIdentity({ instance_id: instanceId(`shared-${options.prefix}`), cluster: 'prod' });
  const t = task(`shared-${options.prefix}`, 'shared', '1', 'prod');
  const ids = Array.from({ length: options.count }, (_, i) => `${options.prefix}${i.toString(16).padStart(2, '0')}${containerId(`shared-${i}`).slice(14)}`);
  const transitions: Transition[] = ids.map((id, i) => ({
    seq: i + 1,
    container_id: id,
    from: null,
    to: 'running',
    at: options.now.toISOString(),
    reason: 'agent.observed',
    container: containerOf(t, `step-${i}`, id),
  }));
  await send(baseUrl, 'POST', `/v2/hosts/${encodeURIComponent(host.instance_id)}/transitions`, { host, transitions } satisfies TransitionBatch);
  return ids.sort();
}

