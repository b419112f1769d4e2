// In-process stand-ins for a host's observation sources, driven by the simulated host's task model
// (tools/simulate-host/model.ts) so the churn is the same as simulate-host's. The agent answers the
// JSON body the simulated agent would serve, parsed by the reconciler's own parser, so a pass pays
// for the agent's JSON as a real one does; only the HTTP hop is left out.
import { renderTask } from '../tools/simulate-host/agent-api.js';
import { seededRandom, TaskModel } from '../tools/simulate-host/model.js';
import { parseAgentTasksBody } from '../reconciler/sources/ecs-agent.js';
import { ECS_LABELS, type AgentTask, type DockerContainer, type DockerEvent, type DockerSource, type EcsAgentSource, type ImdsSource } from '../reconciler/sources/types.js';

export interface FakeHost {
  model: TaskModel;
  /** `auto`: render on every tasks() call (live use); otherwise the body is rendered by hand before a measured pass. */
  agent: EcsAgentSource & { body: Buffer; auto: boolean; render(): void };
  imds: ImdsSource;
  docker: DockerSource & { emit(event: DockerEvent): void };
}

export function createFakeHost(options: { tasks: number; containersPerTask: number; now: () => number; seed?: number }): FakeHost {
  const model = new TaskModel({
    cluster: 'prod',
    region: 'us-east-1',
    accountId: '012345678910',
    containersPerTask: options.containersPerTask,
    cleanupAfterMs: 60_000,
    // The fake Docker lists the model's containers: they must exist as soon as they are listed.
    pendingForMs: 0,
    now: options.now,
    random: seededRandom(options.seed ?? 7),
  });
  for (let i = 0; i < options.tasks; i++) model.startTask({ running: true });

  const agent = {
    /** The /v1/tasks body's bytes, as the agent sends them. */
    body: Buffer.from('{"Tasks":[]}'),
    auto: false,
    /** Renders the model into the agent's /v1/tasks body (outside any measured pass). */
    render() {
      agent.body = Buffer.from(JSON.stringify({ Tasks: model.list().map(renderTask) }));
    },
    async metadata() {
      return { cluster: 'prod', container_instance_arn: 'arn:aws:ecs:us-east-1:012345678910:container-instance/prod/0123456789abcdef0123456789abcdef', version: 'Amazon ECS Agent - v1.87.0 (bench)' };
    },
    async tasks(): Promise<AgentTask[]> {
      if (agent.auto) agent.render();
      return parseAgentTasksBody(agent.body);
    },
  };

  const imds: ImdsSource = {
    async identity() {
      return { instance_id: 'i-0be0c0000000000a', instance_ip: '10.0.0.1', instance_type: 'm5.large', instance_az: 'us-east-1a', region: 'us-east-1', host_name: 'ip-10-0-0-1.ec2.internal' };
    },
  };

  let handlers: { onEvent(event: DockerEvent): void } | undefined;
  const docker = {
    async listContainers(): Promise<DockerContainer[]> {
      const out: DockerContainer[] = [];
      for (const t of model.list()) {
        for (const c of t.containers) {
          out.push({
            id: c.docker_id,
            name: c.docker_name,
            image: c.image ?? 'busybox:1.36',
            state: t.known_status === 'STOPPED' ? 'exited' : t.known_status === 'RUNNING' ? 'running' : 'created',
            labels: { [ECS_LABELS.taskArn]: t.arn, [ECS_LABELS.containerName]: c.name, [ECS_LABELS.family]: t.family, [ECS_LABELS.version]: t.version, [ECS_LABELS.cluster]: 'prod' },
            exit_code: c.exit_code,
          });
        }
      }
      return out;
    },
    watchEvents(h: { onEvent(event: DockerEvent): void; onConnected?(): void }, signal: AbortSignal): Promise<void> {
      handlers = h;
      h.onConnected?.();
      return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    },
    emit(event: DockerEvent) {
      handlers?.onEvent(event);
    },
  };
  return { model, agent, imds, docker };
}
