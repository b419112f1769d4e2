// The simulated agent deriving its tasks from a real, private dockerd's ECS-labelled containers.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEcsAgentClient } from '../../reconciler/sources/ecs-agent.js';
import { ECS_LABELS } from '../../reconciler/sources/types.js';
import { skipWithoutDockerd, startDockerd, type Dockerd } from '../../test/support/dockerd.js';
import { ControlError, startSimulatedHost, type SimulatedHost } from './index.js';

const ARN_A = 'arn:aws:ecs:us-east-1:012345678910:task/demo/0123456789abcdef0123456789abcdef';
const ARN_B = 'arn:aws:ecs:us-east-1:012345678910:task/demo/fedcba9876543210fedcba9876543210';

function ecsLabels(arn: string, container: string): string[] {
  const labels = { [ECS_LABELS.taskArn]: arn, [ECS_LABELS.containerName]: container, [ECS_LABELS.family]: 'demo-web', [ECS_LABELS.version]: '3', [ECS_LABELS.cluster]: 'demo' };
  return Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
}

describe.skipIf(skipWithoutDockerd())('simulate-host with tasks from a real dockerd', () => {
  let engine: Dockerd;
  let host: SimulatedHost;

  beforeAll(async () => {
    engine = await startDockerd();
    host = await startSimulatedHost({
      host: '127.0.0.1', agentPort: 0, imdsPort: 0, controlPort: 0, tasks: 5, containersPerTask: 2, churnIntervalMs: 0,
      cleanupAfterMs: 1000, cluster: 'demo', instanceId: 'i-0123456789abcdef0', seed: 1, dockerSocket: engine.socketPath,
    });
  });

  afterAll(async () => {
    await host?.close();
    await engine?.stop();
  });

  it('lists labelled containers as tasks and follows docker stop and docker rm', async () => {
    const agent = createEcsAgentClient({ baseUrl: new URL(host.agentUrl), timeoutMs: 5000 });
    expect(await agent.tasks()).toEqual([]); // no scripted tasks in Docker mode

    const app = await engine.run(['run', '-d', '--network', 'none', '--name', 'ecs-demo-web-3-app', ...ecsLabels(ARN_A, 'app'), engine.image]);
    const sidecar = await engine.run(['run', '-d', '--network', 'none', '--name', 'ecs-demo-web-3-sidecar', ...ecsLabels(ARN_A, 'sidecar'), engine.image]);
    const other = await engine.run(['run', '-d', '--network', 'none', ...ecsLabels(ARN_B, 'app'), engine.image]);
    await engine.run(['run', '-d', '--network', 'none', '--label', 'not=ecs', engine.image]);

    let tasks = await agent.tasks();
    expect(tasks.map((t) => [t.arn, t.known_status, t.desired_status])).toEqual([
      [ARN_A, 'RUNNING', 'RUNNING'],
      [ARN_B, 'RUNNING', 'RUNNING'],
    ]);
    expect(tasks[0]).toMatchObject({ task_id: '0123456789abcdef0123456789abcdef', family: 'demo-web', version: '3' });
    expect(tasks[0].containers.map((c) => [c.docker_id, c.docker_name, c.name])).toEqual([
      [app, 'ecs-demo-web-3-app', 'app'],
      [sidecar, 'ecs-demo-web-3-sidecar', 'sidecar'],
    ]);
    // The engine's listing gives no image id: served as the agent marshals an unset one, "ImageID": "".
    const single = await request(`${host.agentUrl}/v1/tasks?taskarn=${encodeURIComponent(ARN_B)}`);
    expect(((await single.body.json()) as { Containers: unknown[] }).Containers).toEqual([
      { DockerId: other, DockerName: expect.any(String), Name: 'app', Image: engine.image, ImageID: '' },
    ]);

    // One container of task A stops: the task is still RUNNING; both stop: STOPPED.
    await engine.run(['stop', '-t', '1', sidecar]);
    expect((await agent.tasks())[0].known_status).toBe('RUNNING');
    await engine.run(['stop', '-t', '1', app]);
    tasks = await agent.tasks();
    expect(tasks[0]).toMatchObject({ arn: ARN_A, known_status: 'STOPPED', desired_status: null });
    await host.refresh();
    expect(host.state[0].containers.map((c) => c.exit_code)).toEqual([137, 137]);

    await engine.run(['rm', app, sidecar]);
    expect((await agent.tasks()).map((t) => t.arn)).toEqual([ARN_B]);
    const byDocker = await request(`${host.agentUrl}/v1/tasks?dockerid=${other.slice(0, 12)}`);
    expect(byDocker.statusCode).toBe(200);
    expect(((await byDocker.body.json()) as { Arn: string }).Arn).toBe(ARN_B);
  });

  it('refuses scripted start/stop in Docker mode with a 409', async () => {
    expect(() => host.startTask()).toThrow(ControlError);
    const res = await request(`${host.controlUrl}/tasks/start`, { method: 'POST' });
    expect(res.statusCode).toBe(409);
    expect(await res.body.json()).toMatchObject({ error: 'conflict' });
  });
});
