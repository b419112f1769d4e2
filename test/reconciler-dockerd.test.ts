// End to end with real parts: a private dockerd runs ECS-labelled containers (--network none), the
// simulated agent lists them from the engine, the real reconciler daemon (runReconciler, with the
// engine's event stream) reports to the real server (runServer, in-memory SQLite). Every container
// must become queryable, then follow `docker stop` and `docker rm`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCommand, type ReconcilerConfig } from '../config/index.js';
import { runReconciler } from '../reconciler/main.js';
import { ECS_LABELS } from '../reconciler/sources/types.js';
import { startSimulatedHost, type SimulatedHost } from '../tools/simulate-host/index.js';
import { skipWithoutDockerd, startDockerd, type Dockerd } from './support/dockerd.js';
import { startServer, type RunningServer } from './support/live-server.js';

const TASK_ARN = 'arn:aws:ecs:us-east-1:012345678910:task/demo/4f5e6d7c8b9a00112233445566778899';
const INSTANCE_ID = 'i-0fedcba9876543210';
/** Generous: this is a correctness test, not a latency measurement (see docs/benchmarks.md). */
const CONVERGE = { timeout: 20_000, interval: 100 };

function labels(container: string): string[] {
  const values = {
    [ECS_LABELS.taskArn]: TASK_ARN,
    [ECS_LABELS.containerName]: container,
    [ECS_LABELS.family]: 'demo-web',
    [ECS_LABELS.version]: '7',
    [ECS_LABELS.cluster]: 'demo',
  };
  return Object.entries(values).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
}

describe.skipIf(skipWithoutDockerd())('reconciler with a real dockerd', () => {
  let engine: Dockerd;
  let server: RunningServer;
  let host: SimulatedHost;
  let stateDir: string;
  const abort = new AbortController();
  let daemon: Promise<void> | undefined;
  let logged = '';

  beforeAll(async () => {
    engine = await startDockerd();
    server = await startServer();
    host = await startSimulatedHost({
      host: '127.0.0.1', agentPort: 0, imdsPort: 0, controlPort: 0, tasks: 0, containersPerTask: 1, churnIntervalMs: 0,
      cleanupAfterMs: 60_000, cluster: 'demo', instanceId: INSTANCE_ID, seed: 1, dockerSocket: engine.socketPath,
    });
    stateDir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-reconciler-dockerd-'));
    const loaded = loadCommand('reconciler', [
      '--server', server.url, '--ecs-agent-url', host.agentUrl, '--imds-url', host.imdsUrl, '--docker-socket', engine.socketPath,
      '--state-dir', stateDir, '--metrics-host', '127.0.0.1', '--metrics-port', '0', '--resync-interval', '5s', '--request-timeout', '2s',
      '--full-sync-interval', '1m',
    ], {});
    if (loaded.kind !== 'run') throw new Error('reconciler config did not load');
    const logStream = new PassThrough();
    logStream.on('data', (chunk: Buffer) => (logged += chunk.toString('utf8')));
    daemon = runReconciler(loaded.config as ReconcilerConfig, { signal: abort.signal, logStream });
  });

  afterAll(async () => {
    abort.abort();
    await daemon;
    await host?.close();
    await server?.stop();
    await engine?.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  async function lookup(id: string): Promise<{ status: number; containers: Array<Record<string, unknown>> }> {
    const res = await fetch(`${server.url}/v2/lookup/${encodeURIComponent(id)}`);
    const body = (await res.json()) as { containers?: Array<Record<string, unknown>> };
    return { status: res.status, containers: body.containers ?? [] };
  }

  const stateOf = async (id: string) => (await lookup(id)).containers[0]?.state;

  it('maps each labelled container, then follows docker stop and docker rm', async () => {
    const app = await engine.run(['run', '-d', '--network', 'none', '--name', 'ecs-demo-web-7-app', ...labels('app'), engine.image]);
    const sidecar = await engine.run(['run', '-d', '--network', 'none', '--name', 'ecs-demo-web-7-sidecar', ...labels('sidecar'), engine.image]);

    await expect.poll(() => stateOf(app), CONVERGE).toBe('running');
    await expect.poll(() => stateOf(sidecar), CONVERGE).toBe('running');
    const record = (await lookup(app)).containers[0];
    expect(record).toMatchObject({
      container_id: app,
      docker_name: 'ecs-demo-web-7-app',
      container_name: 'app',
      task_arn: TASK_ARN,
      task_id: '4f5e6d7c8b9a00112233445566778899',
      task_family: 'demo-web',
      task_version: '7',
      cluster: 'demo',
      instance_id: INSTANCE_ID,
    });
    // The task id finds both containers of the task.
    expect((await lookup('4f5e6d7c8b9a00112233445566778899')).containers.map((c) => c.container_id).sort()).toEqual([app, sidecar].sort());

    // One container of the task stops (Docker knows, the agent's task stays RUNNING); then the other.
    await engine.run(['stop', '-t', '1', sidecar]);
    await expect.poll(() => stateOf(sidecar), CONVERGE).toBe('stopped');
    expect(await stateOf(app)).toBe('running');
    expect((await lookup(sidecar)).containers[0].exit_code).toBe(137);
    await engine.run(['stop', '-t', '1', app]);
    await expect.poll(async () => [await stateOf(app), await stateOf(sidecar)], CONVERGE).toEqual(['stopped', 'stopped']);

    await engine.run(['rm', app, sidecar]);
    await expect.poll(async () => [await stateOf(app), await stateOf(sidecar)], CONVERGE).toEqual(['gone', 'gone']);
  });

  it('maps a new container from its labels while the agent is failing, and marks the record so', async () => {
    host.setFault({ agent: '500' });
    try {
      const worker = await engine.run(['run', '-d', '--network', 'none', '--name', 'ecs-demo-web-7-worker', ...labels('worker'), engine.image]);
      await expect.poll(() => stateOf(worker), CONVERGE).toBe('running');
      expect((await lookup(worker)).containers[0]).toMatchObject({ task_arn: TASK_ARN, container_name: 'worker', source: 'labels' });
    } finally {
      host.setFault({ agent: 'ok' });
    }
  });
});
