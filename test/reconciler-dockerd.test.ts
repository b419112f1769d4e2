// The reconciler against a real Docker engine: containers started with ECS labels (`--network
// none`), a simulated agent that lists exactly what the engine runs, the real daemon with Docker
// events, and the real server. With a 30 s resync, only Docker events can explain a mapping that
// shows up within seconds; `docker stop` and `docker rm` must be followed the same way.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { buildServer } from '../api/server.js';
import { parseLinks } from '../config/links.js';
import { loadCommand, type ReconcilerConfig } from '../config/index.js';
import { openStore, type Store, type ContainerRecord } from '../storage/index.js';
import { runReconciler } from '../reconciler/main.js';
import { startSimulatedHost, type SimulatedHost } from '../tools/simulate-host/index.js';
import { startDockerd, skipWithoutDockerd, type Dockerd } from './support/dockerd.js';

const INSTANCE_ID = 'i-0a1b2c3d4e5f60718';
const RESYNC = '30s';

describe.skipIf(skipWithoutDockerd())('reconciler with a real dockerd', () => {
  let dockerd: Dockerd;
  let sim: SimulatedHost;
  let store: Store;
  let app: FastifyInstance;
  let dir: string;
  let stopReconciler: () => Promise<void>;

  beforeAll(async () => {
    dockerd = await startDockerd();
    dir = mkdtempSync(join(tmpdir(), 'rdockerd-'));
    store = await openStore({ backend: 'sqlite', path: join(dir, 'mapper.sqlite') });
    app = await buildServer({
      store, registry: new Registry(), logger: false, links: parseLinks([]), cadvisorPort: 8080,
      hostStaleAfterMs: 15 * 60_000, bodyLimitBytes: 16 * 1024 * 1024, reportRateLimitPerMinute: 1_000_000,
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    sim = await startSimulatedHost({
      host: '127.0.0.1', agentPort: 0, imdsPort: 0, controlPort: 0, tasks: 0, containersPerTask: 1, churnIntervalMs: 0,
      cleanupAfterMs: 60_000, cluster: 'dockerd', instanceId: INSTANCE_ID, seed: 1, dockerSocket: dockerd.socketPath,
    });
    const loaded = loadCommand('reconciler', [
      '--server', `http://127.0.0.1:${port}`, '--ecs-agent-url', sim.agentUrl, '--imds-url', sim.imdsUrl,
      '--docker-socket', dockerd.socketPath, '--state-dir', join(dir, 'state'), '--metrics-host', '127.0.0.1', '--metrics-port', '0',
      '--resync-interval', RESYNC, '--event-debounce', '50ms', '--request-timeout', '2s', '--backoff-base', '50ms', '--backoff-max', '500ms',
      '--log-level', 'warn',
    ], {});
    if (loaded.kind !== 'run') throw new Error('reconciler config did not load');
    const abort = new AbortController();
    const done = runReconciler(loaded.config as ReconcilerConfig, { signal: abort.signal, logStream: new PassThrough().resume() });
    stopReconciler = async () => {
      abort.abort();
      await done;
    };
  }, 180_000);

  afterAll(async () => {
    await stopReconciler?.();
    await sim?.close();
    await app?.close();
    await store?.close();
    await dockerd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  async function record(id: string): Promise<ContainerRecord | null> {
    const found = await store.getContainer(id);
    return found.kind === 'found' ? found.record : null;
  }

  /** Resolves with the ms it took until the server's record for `id` satisfies `ok`. */
  async function waitFor(id: string, ok: (r: ContainerRecord | null) => boolean, timeoutMs = 45_000): Promise<number> {
    const start = Date.now();
    while (Date.now() - start < timeoutMs) {
      if (ok(await record(id))) return Date.now() - start;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`record of ${id.slice(0, 12)} never matched; last: ${JSON.stringify(await record(id))}`);
  }

  const taskArn = (n: number) => `arn:aws:ecs:us-east-1:012345678910:task/dockerd/${n.toString(16).padStart(32, '0')}`;
  async function runEcsContainer(n: number, name: string): Promise<string> {
    return dockerd.run([
      'run', '-d', '--network', 'none',
      '--label', `com.amazonaws.ecs.task-arn=${taskArn(n)}`,
      '--label', `com.amazonaws.ecs.container-name=${name}`,
      '--label', 'com.amazonaws.ecs.task-definition-family=web',
      '--label', 'com.amazonaws.ecs.task-definition-version=4',
      '--label', 'com.amazonaws.ecs.cluster=dockerd',
      '--name', `ecs-web-4-${name}-${n}`,
      dockerd.image,
    ]);
  }

  it('maps each started container through Docker events, well before a resync could', async () => {
    const latencies: number[] = [];
    for (let n = 1; n <= 3; n++) {
      const id = await runEcsContainer(n, 'app');
      const ms = await waitFor(id, (r) => r?.state === 'running');
      latencies.push(ms);
      const r = (await record(id))!;
      expect(r).toMatchObject({ task_arn: taskArn(n), container_name: 'app', task_family: 'web', task_version: '4', source: 'agent', instance_id: INSTANCE_ID, docker_name: `ecs-web-4-app-${n}` });
    }
    console.log(`[dockerd] docker run → running on the server: ${latencies.join(', ')} ms (resync ${RESYNC})`);
    for (const ms of latencies) expect(ms).toBeLessThan(15_000);
  });

  it('follows docker stop to stopped and docker rm to gone', async () => {
    const id = await runEcsContainer(10, 'worker');
    await waitFor(id, (r) => r?.state === 'running');
    await dockerd.run(['stop', '-t', '0', id]);
    const stopMs = await waitFor(id, (r) => r?.state === 'stopped');
    expect((await record(id))!.exit_code).not.toBeNull();
    await dockerd.run(['rm', id]);
    const rmMs = await waitFor(id, (r) => r?.state === 'gone');
    console.log(`[dockerd] docker stop → stopped ${stopMs} ms, docker rm → gone ${rmMs} ms`);
    const history = await store.history(id);
    expect(history.map((h) => [h.from, h.to])).toEqual([[null, 'running'], ['running', 'stopped'], ['stopped', 'gone']]);
  });

  it('follows docker start of a stopped container back to running', async () => {
    const id = await runEcsContainer(11, 'again');
    await waitFor(id, (r) => r?.state === 'running');
    await dockerd.run(['stop', '-t', '0', id]);
    await waitFor(id, (r) => r?.state === 'stopped');
    await dockerd.run(['start', id]);
    await waitFor(id, (r) => r?.state === 'running');
    const history = await store.history(id);
    expect(history.map((h) => [h.from, h.to, h.reason])).toEqual([[null, 'running', 'agent.observed'], ['running', 'stopped', 'agent.observed'], ['stopped', 'running', 'docker.started']]);
  });

  it('ignores containers without ECS labels', async () => {
    const id = await dockerd.run(['run', '-d', '--network', 'none', dockerd.image]);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await record(id)).toBeNull();
  });
});
