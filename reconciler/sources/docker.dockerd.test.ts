// The Docker client against a real, private dockerd (test/support/dockerd.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipWithoutDockerd, startDockerd, type Dockerd } from '../../test/support/dockerd.js';
import { createDockerClient, type DockerClient } from './docker.js';
import { ECS_LABELS, type DockerEvent } from './types.js';

const TASK_ARN = 'arn:aws:ecs:us-east-1:012345678910:task/demo/0123456789abcdef0123456789abcdef';
const labels = {
  [ECS_LABELS.taskArn]: TASK_ARN,
  [ECS_LABELS.containerName]: 'web',
  [ECS_LABELS.family]: 'demo-web',
  [ECS_LABELS.version]: '3',
  [ECS_LABELS.cluster]: 'demo',
};
const labelArgs = Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]);

describe.skipIf(skipWithoutDockerd())('Docker client against a real dockerd', () => {
  let engine: Dockerd;
  let client: DockerClient;

  beforeAll(async () => {
    engine = await startDockerd();
    client = createDockerClient({ socketPath: engine.socketPath, timeoutMs: 5000 });
  });

  afterAll(async () => {
    await client?.close();
    await engine?.stop();
  });

  it('follows a labelled container through start, stop and rm in both the list and the event stream', async () => {
    const controller = new AbortController();
    const events: DockerEvent[] = [];
    let connected = 0;
    const watching = client.watchEvents({ onEvent: (e) => events.push(e), onConnected: () => connected++ }, controller.signal);
    try {
      await expect.poll(() => connected).toBe(1);
      const id = await engine.run(['run', '-d', '--network', 'none', '--name', 'ecs-demo-web-3-web-1', ...labelArgs, engine.image]);

      const running = (await client.listContainers()).find((c) => c.id === id);
      expect(running).toEqual({ id, name: 'ecs-demo-web-3-web-1', image: engine.image, state: 'running', labels, exit_code: null });
      await expect.poll(() => events.map((e) => e.action)).toEqual(['start']);
      expect(events[0]).toMatchObject({ container_id: id, labels });
      expect(events[0].time_nano).toMatch(/^\d{19}$/);

      // PID 1 ignores SIGTERM, so docker stop ends in SIGKILL: exit code 137.
      await engine.run(['stop', '-t', '1', id]);
      const exited = (await client.listContainers()).find((c) => c.id === id);
      expect(exited).toMatchObject({ state: 'exited', exit_code: 137 });
      await expect.poll(() => events.map((e) => e.action)).toEqual(['start', 'die']);
      expect(events[1].exit_code).toBe(137);

      await engine.run(['rm', id]);
      await expect.poll(() => events.map((e) => e.action)).toEqual(['start', 'die', 'destroy']);
      expect((await client.listContainers()).some((c) => c.id === id)).toBe(false);
    } finally {
      controller.abort();
      await watching;
    }
  });

  it('reads the exit code of a container that exited by itself', async () => {
    const id = await engine.run(['run', '-d', '--network', 'none', engine.image, '/bin/sh', '-c', 'exit 3']);
    await engine.run(['wait', id]);
    expect((await client.listContainers()).find((c) => c.id === id)).toMatchObject({ state: 'exited', exit_code: 3, labels: {} });
  });

  it('reconnects the event stream when the engine restarts, and sees what happens afterwards', async () => {
    const watcher = createDockerClient({ socketPath: engine.socketPath, timeoutMs: 5000, backoff: { baseMs: 100, maxMs: 500 } });
    const controller = new AbortController();
    const events: DockerEvent[] = [];
    const disconnects: Error[] = [];
    let connected = 0;
    const watching = watcher.watchEvents(
      { onEvent: (e) => events.push(e), onConnected: () => connected++, onDisconnected: (e) => disconnects.push(e) },
      controller.signal,
    );
    try {
      await expect.poll(() => connected).toBe(1);
      await engine.restart();
      await expect.poll(() => connected, { timeout: 20_000 }).toBe(2);
      expect(disconnects.length).toBeGreaterThanOrEqual(1);
      const id = await engine.run(['run', '-d', '--network', 'none', ...labelArgs, engine.image]);
      await expect.poll(() => events.filter((e) => e.container_id === id).map((e) => e.action)).toEqual(['start']);
    } finally {
      controller.abort();
      await watching;
      await watcher.close();
    }
  });
});
