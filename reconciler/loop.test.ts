import { describe, it, expect, afterEach } from 'vitest';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { createReconcileLoop, type LoopOptions } from './loop.js';
import { openOutbox, type OutboxFs } from './outbox.js';
import { createReconcilerMetrics } from './metrics.js';
import { buildTestApp } from '../api/test-helpers.js';
import type { HostIdentity } from '../wire/index.js';
import {
  ObservationError, ECS_LABELS,
  type AgentTask, type AgentTaskStatus, type DockerContainer, type DockerSource, type EcsAgentSource, type ImdsSource, type DockerEvent,
} from './sources/types.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const cid = (n: number) => 'c' + n.toString(16).padStart(63, '0');
const taskId = (n: number) => n.toString(16).padStart(32, 'a');
const arn = (n: number) => `arn:aws:ecs:eu-west-1:123456789012:task/demo/${taskId(n)}`;

function task(n: number, known: AgentTaskStatus, desired: AgentTaskStatus | null = known, containers = [n], restart = 0): AgentTask {
  return {
    arn: arn(n), task_id: taskId(n), family: 'web', version: '3', desired_status: desired, known_status: known,
    containers: containers.map((c) => ({
      docker_id: cid(c), docker_name: `ecs-web-3-c${c}`, name: `c${c}`, image: 'nginx:1',
      started_at: null, ports: [], restart_count: restart,
    })),
  };
}

/** Stand-ins for the three sources; each can be told to fail. */
class FakeAgent implements EcsAgentSource {
  list: AgentTask[] = [];
  fail: ObservationError | null = null;
  async metadata() {
    if (this.fail) throw this.fail;
    return { cluster: 'demo', container_instance_arn: 'arn:aws:ecs:eu-west-1:123456789012:container-instance/demo/abc', version: 'Amazon ECS Agent - v1.80.0' };
  }
  async tasks() {
    if (this.fail) throw this.fail;
    return this.list;
  }
}
class FakeImds implements ImdsSource {
  fail = false;
  instanceId = 'i-0123456789abcdef0';
  async identity() {
    if (this.fail) throw new ObservationError('imds', 'ERR_TIMEOUT', 'IMDS timed out');
    return { instance_id: this.instanceId, instance_ip: '10.0.0.1', instance_type: 't3.micro', instance_az: 'eu-west-1a', region: 'eu-west-1', host_name: 'ip-10-0-0-1' };
  }
}
class FakeDocker implements DockerSource {
  list: DockerContainer[] = [];
  fail = false;
  handlers: Parameters<DockerSource['watchEvents']>[0] | null = null;
  async listContainers() {
    if (this.fail) throw new ObservationError('docker', 'ERR_UNREACHABLE', 'docker.sock refused');
    return this.list;
  }
  async watchEvents(handlers: Parameters<DockerSource['watchEvents']>[0], signal: AbortSignal) {
    this.handlers = handlers;
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
  }
  emit(event: DockerEvent) {
    this.handlers?.onEvent(event);
  }
}
function dockerContainer(n: number, state: DockerContainer['state'], labels: Record<string, string> = ecsLabels(n)): DockerContainer {
  return { id: cid(n), name: `ecs-web-3-c${n}`, image: 'nginx:1', state, labels, exit_code: state === 'exited' ? 0 : null };
}
function ecsLabels(n: number, taskN = n): Record<string, string> {
  return { [ECS_LABELS.taskArn]: arn(taskN), [ECS_LABELS.containerName]: `c${n}`, [ECS_LABELS.family]: 'web', [ECS_LABELS.version]: '3', [ECS_LABELS.cluster]: 'demo' };
}

function setup(opts: { docker?: boolean; fs?: OutboxFs; maxBytes?: number; dir?: string; logger?: LoopOptions['logger']; now?: () => number } = {}) {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'loop-test-'));
  const outbox = openOutbox({ dir, maxBytes: opts.maxBytes ?? 1 << 22, fs: opts.fs });
  const agent = new FakeAgent();
  const imds = new FakeImds();
  const docker = opts.docker ? new FakeDocker() : undefined;
  const registry = new Registry();
  const metrics = createReconcilerMetrics(registry);
  const options: LoopOptions = {
    agent, imds, docker, outbox, metrics, logger: opts.logger ?? pino({ level: 'silent' }),
    resyncIntervalMs: 60_000, eventDebounceMs: 10, requestTimeoutMs: 1000, now: opts.now,
  };
  const loop = createReconcileLoop(options);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => outbox.close(), () => loop.stop());
  return { loop, agent, imds, docker, outbox, registry, options, dir };
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name)!;
  const v = (m.values as Array<{ labels: Record<string, string>; value: number }>).find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? NaN;
}

/** `c<n>` for the container made by cid(n). */
const short = (id: string) => `c${parseInt(id.slice(1), 16)}`;
const brief = (ts: Array<{ container_id: string; from: string | null; to: string; reason: string }>) => ts.map((t) => [short(t.container_id), t.from, t.to, t.reason]);

describe('reconcile loop', () => {
  it('maps every container on the first pass and appends one transition each to the outbox', async () => {
    const { loop, agent, outbox } = setup();
    agent.list = [task(1, 'RUNNING', 'RUNNING', [1, 2]), task(3, 'PENDING', 'RUNNING')];
    const r = await loop.runPass();
    expect(r.result).toBe('ok');
    expect(brief(r.transitions)).toEqual([
      ['c1', null, 'running', 'agent.observed'],
      ['c2', null, 'running', 'agent.observed'],
      ['c3', null, 'pending', 'agent.observed'],
    ]);
    expect(r.transitions.map((t) => t.seq)).toEqual([1, 2, 3]);
    expect(outbox.depth()).toBe(3);
    const c1 = r.transitions[0].container;
    expect(c1).toMatchObject({ task_arn: arn(1), task_family: 'web', task_version: '3', container_name: 'c1', docker_name: 'ecs-web-3-c1', source: 'agent', known_status: 'RUNNING' });
    expect(loop.identity()).toMatchObject({ instance_id: 'i-0123456789abcdef0', cluster: 'demo', ecs_agent_version: 'Amazon ECS Agent - v1.80.0' });
    expect(loop.hostState()).toBe('steady');
  });

  it('emits nothing when nothing changed', async () => {
    const { loop, agent } = setup();
    agent.list = [task(1, 'RUNNING')];
    await loop.runPass();
    const r = await loop.runPass();
    expect(r.transitions).toEqual([]);
  });

  it('follows a task through stopping, stopped and the agent cleaning it up, then forgets it', async () => {
    const { loop, agent } = setup();
    agent.list = [task(1, 'RUNNING')];
    await loop.runPass();
    agent.list = [task(1, 'RUNNING', 'STOPPED')];
    const a = await loop.runPass();
    agent.list = [task(1, 'STOPPED', null)];
    const b = await loop.runPass();
    agent.list = [];
    const c = await loop.runPass();
    expect(brief([...a.transitions, ...b.transitions, ...c.transitions])).toEqual([
      ['c1', 'running', 'stopping', 'agent.observed'],
      ['c1', 'stopping', 'stopped', 'agent.observed'],
      ['c1', 'stopped', 'gone', 'container.vanished'],
    ]);
    expect(c.containers).toBe(0);
    expect(loop.containersByState()).toEqual({ pending: 0, running: 0, stopping: 0, stopped: 0, gone: 0 });
  });

  it('skips the containers of a pending task that Docker has not created yet', async () => {
    const { loop, agent } = setup();
    const t = task(1, 'PENDING', 'RUNNING');
    t.containers[0].docker_id = '';
    agent.list = [t];
    const r = await loop.runPass();
    expect(r.transitions).toEqual([]);
  });

  it('records a restart when the agent reports a higher RestartCount', async () => {
    const { loop, agent } = setup();
    agent.list = [task(1, 'RUNNING', 'RUNNING', [1], 0)];
    await loop.runPass();
    agent.list = [task(1, 'RUNNING', 'RUNNING', [1], 1)];
    const r = await loop.runPass();
    expect(brief(r.transitions)).toEqual([['c1', 'running', 'running', 'container.restarted']]);
    expect(r.transitions[0].container.restart_count).toBe(1);
  });

  it('never marks anything gone when the agent fails, and degrades the host', async () => {
    const { loop, agent, registry } = setup();
    agent.list = [task(1, 'RUNNING'), task(2, 'RUNNING')];
    await loop.runPass();
    for (const code of ['ERR_TIMEOUT', 'ERR_ZERO_VALUE', 'ERR_GARBAGE', 'ERR_HTTP_STATUS'] as const) {
      agent.fail = new ObservationError('agent', code, code);
      const r = await loop.runPass();
      expect(r.result).toBe('failed');
      expect(r.transitions).toEqual([]);
      expect(r.containers).toBe(2);
    }
    expect(loop.hostState()).toBe('degraded');
    expect(loop.snapshot()).toBeNull();
    expect(await metricValue(registry, 'ecs_id_mapper_reconciler_observation_failures_total', { source: 'agent' })).toBe(4);
    expect(await metricValue(registry, 'ecs_id_mapper_reconciler_passes_total', { result: 'failed' })).toBe(4);
    agent.fail = null;
    const back = await loop.runPass();
    expect(back.transitions).toEqual([]);
    expect(loop.hostState()).toBe('steady');
    expect(loop.snapshot()!.map((c) => [short(c.container_id), c.state])).toEqual([['c1', 'running'], ['c2', 'running']]);
  });

  it('logs a failing agent once when it starts failing and once when it works again, and counts every failed pass', async () => {
    const lines: Array<Record<string, unknown>> = [];
    let now = 0;
    const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) });
    const { loop, agent, registry } = setup({ logger, now: () => now });
    agent.list = [task(1, 'RUNNING')];
    await loop.runPass();
    agent.fail = new ObservationError('agent', 'ERR_HTTP_STATUS', 'ECS agent answered 500');
    for (let i = 0; i < 5; i++, now += 10_000) await loop.runPass();
    agent.fail = null;
    await loop.runPass();
    expect(await metricValue(registry, 'ecs_id_mapper_reconciler_observation_failures_total', { source: 'agent' })).toBe(5);
    const about = lines.filter((l) => String(l.msg).startsWith('ECS agent observation'));
    expect(about.map((l) => [l.level, l.msg, l.code, l.occurrences, l.for_s])).toEqual([
      [40, 'ECS agent observation failed: ECS agent answered 500', 'ERR_HTTP_STATUS', undefined, undefined],
      [30, 'ECS agent observation works again', undefined, 5, 50],
    ]);
  });

  it('observes without an identity while IMDS fails, and identifies later', async () => {
    const { loop, agent, imds, registry } = setup();
    imds.fail = true;
    agent.list = [task(1, 'RUNNING')];
    const r = await loop.runPass();
    expect(r.imdsOk).toBe(false);
    expect(r.transitions).toHaveLength(1);
    expect(loop.identity()).toBeNull();
    expect(loop.hostState()).toBe('identifying');
    expect(await metricValue(registry, 'ecs_id_mapper_reconciler_observation_failures_total', { source: 'imds' })).toBe(1);
    imds.fail = false;
    await loop.runPass();
    expect(loop.identity()?.instance_id).toBe('i-0123456789abcdef0');
  });

  describe('with Docker', () => {
    it('maps a new container from its ECS labels while the agent is down', async () => {
      const { loop, agent, docker } = setup({ docker: true });
      agent.fail = new ObservationError('agent', 'ERR_UNREACHABLE', 'refused');
      docker!.list = [dockerContainer(1, 'running'), { ...dockerContainer(9, 'running'), labels: {} }];
      const r = await loop.runPass();
      expect(r.result).toBe('degraded');
      expect(brief(r.transitions)).toEqual([['c1', null, 'running', 'labels.observed']]);
      expect(r.transitions[0].container).toMatchObject({ source: 'labels', task_arn: arn(1), container_name: 'c1', task_family: 'web', task_version: '3' });
    });

    it('follows Docker (die, rm) for known containers while the agent is down', async () => {
      const { loop, agent, docker } = setup({ docker: true });
      agent.list = [task(1, 'RUNNING'), task(2, 'RUNNING')];
      docker!.list = [dockerContainer(1, 'running'), dockerContainer(2, 'running')];
      await loop.runPass();
      agent.fail = new ObservationError('agent', 'ERR_TIMEOUT', 'timeout');
      docker!.list = [dockerContainer(1, 'exited')];
      const r = await loop.runPass();
      expect(brief(r.transitions)).toEqual([
        ['c1', 'running', 'stopped', 'docker.died'],
        ['c2', 'running', 'gone', 'container.vanished'],
      ]);
    });

    it('reads Docker after the agent, so a container that exits while the agent answers stops with its exit code', async () => {
      const { loop, agent, docker } = setup({ docker: true });
      agent.list = [task(1, 'RUNNING')];
      docker!.list = [dockerContainer(1, 'running')];
      await loop.runPass();
      // The container exits while the agent is answering: the agent's answer already says STOPPED,
      // and from then on Docker lists it exited with code 137.
      const answer = agent.tasks.bind(agent);
      agent.tasks = async () => {
        const listed = [task(1, 'STOPPED', 'STOPPED')];
        await new Promise((resolve) => setTimeout(resolve, 5));
        docker!.list = [{ ...dockerContainer(1, 'exited'), exit_code: 137 }];
        return listed;
      };
      const r = await loop.runPass();
      agent.tasks = answer;
      expect(brief(r.transitions)).toEqual([['c1', 'running', 'stopped', 'agent.observed']]);
      expect(r.transitions[0].container.exit_code).toBe(137);
    });

    it('stops a container the agent still lists running once Docker no longer has it (docker rm -f)', async () => {
      const { loop, agent, docker } = setup({ docker: true });
      agent.list = [task(1, 'RUNNING'), task(2, 'RUNNING')];
      docker!.list = [dockerContainer(1, 'running'), dockerContainer(2, 'running')];
      await loop.runPass();
      docker!.list = [dockerContainer(2, 'running')];
      const r = await loop.runPass();
      expect(brief(r.transitions)).toEqual([['c1', 'running', 'stopped', 'agent.observed']]);
      expect(loop.snapshot()!.map((c) => [short(c.container_id), c.state])).toEqual([['c1', 'stopped'], ['c2', 'running']]);
      // Not gone while the agent lists it; gone once it drops it too.
      expect((await loop.runPass()).transitions).toEqual([]);
      agent.list = [task(2, 'RUNNING')];
      expect(brief((await loop.runPass()).transitions)).toEqual([['c1', 'stopped', 'gone', 'container.vanished']]);
    });

    it('marks nothing gone when both the agent and Docker fail', async () => {
      const { loop, agent, docker } = setup({ docker: true });
      agent.list = [task(1, 'RUNNING')];
      docker!.list = [dockerContainer(1, 'running')];
      await loop.runPass();
      agent.fail = new ObservationError('agent', 'ERR_TIMEOUT', 'timeout');
      docker!.fail = true;
      const r = await loop.runPass();
      expect(r.result).toBe('failed');
      expect(r.transitions).toEqual([]);
      expect(r.containers).toBe(1);
    });

    it('keeps a container the agent dropped while Docker still has it', async () => {
      const { loop, agent, docker } = setup({ docker: true });
      agent.list = [task(1, 'STOPPED', null)];
      docker!.list = [dockerContainer(1, 'exited')];
      await loop.runPass();
      agent.list = [];
      expect((await loop.runPass()).transitions).toEqual([]);
      docker!.list = [];
      expect(brief((await loop.runPass()).transitions)).toEqual([['c1', 'stopped', 'gone', 'container.vanished']]);
    });

    it('counts containers whose labels disagree with the agent', async () => {
      const { loop, agent, docker, registry } = setup({ docker: true });
      agent.list = [task(1, 'RUNNING', 'RUNNING', [1, 2])];
      docker!.list = [dockerContainer(1, 'running'), dockerContainer(2, 'running', ecsLabels(2, 7))];
      const r = await loop.runPass();
      expect(r.labelDisagreements).toBe(1);
      expect(r.transitions[1].container.task_arn).toBe(arn(1)); // the agent wins
      expect(await metricValue(registry, 'ecs_id_mapper_reconciler_label_disagreements_total')).toBe(1);
    });

    it('shows in docker_events_connected whether it follows Docker\'s event stream', async () => {
      const { loop, docker, registry } = setup({ docker: true });
      const connected = () => metricValue(registry, 'ecs_id_mapper_reconciler_docker_events_connected');
      expect(await connected()).toBe(0);
      loop.start();
      await until(() => docker!.handlers !== null);
      docker!.handlers!.onConnected?.();
      expect(await connected()).toBe(1);
      docker!.handlers!.onDisconnected?.(new ObservationError('docker', 'ERR_HTTP_STATUS', 'Docker GET /events: HTTP 403', { status: 403 }));
      expect(await connected()).toBe(0);
      docker!.handlers!.onConnected?.();
      await loop.stop();
      expect(await connected()).toBe(0);
    });

    it('logs a lost Docker event stream at its first failed reconnection and says when it follows events again', async () => {
      const lines: Array<Record<string, unknown>> = [];
      let now = 0;
      const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) });
      const { loop, docker } = setup({ docker: true, logger, now: () => now });
      loop.start();
      await until(() => docker!.handlers !== null);
      for (let i = 0; i < 4; i++, now += 30_000) docker!.handlers!.onDisconnected?.(new ObservationError('docker', 'ERR_UNREACHABLE', 'Docker GET /events: unreachable (ENOENT)'));
      docker!.handlers!.onConnected?.();
      const about = lines.filter((l) => String(l.msg).includes('Docker events'));
      expect(about.map((l) => [l.level, l.msg, l.occurrences, l.for_s])).toEqual([
        [40, 'Docker events disconnected: Docker GET /events: unreachable (ENOENT)', undefined, undefined],
        [30, 'following Docker events', 4, 120],
      ]);
    });

    it("sends the agent's mapping of a container known from its labels once the agent answers again, as a same-state transition", async () => {
      const { loop, agent, docker } = setup({ docker: true });
      agent.fail = new ObservationError('agent', 'ERR_UNREACHABLE', 'refused');
      docker!.list = [dockerContainer(1, 'running')];
      await loop.runPass();
      agent.fail = null;
      agent.list = [task(1, 'RUNNING')];
      agent.list[0].containers[0].ports = [{ container_port: 80, host_port: 32768, protocol: 'tcp' }];
      const r = await loop.runPass();
      expect(brief(r.transitions)).toEqual([['c1', 'running', 'running', 'agent.observed']]);
      expect(r.transitions[0].container).toMatchObject({ source: 'agent', known_status: 'RUNNING', ports: [{ container_port: 80, host_port: 32768, protocol: 'tcp' }] });
      expect((await loop.runPass()).transitions).toEqual([]);
    });

    it("never adopts an awsvpc task's pause container, and leaves a labels-only container alone while Docker fails", async () => {
      const { loop, agent, docker } = setup({ docker: true });
      agent.fail = new ObservationError('agent', 'ERR_UNREACHABLE', 'refused');
      const pause = { ...dockerContainer(99, 'running'), labels: { ...ecsLabels(99, 1), [ECS_LABELS.containerName]: '~internal~ecs~pause' } };
      docker!.list = [dockerContainer(2, 'running'), pause];
      expect(brief((await loop.runPass()).transitions)).toEqual([['c2', null, 'running', 'labels.observed']]);
      // The agent answers without listing c2 (not yet), and Docker fails once: c2 is not gone.
      agent.fail = null;
      agent.list = [];
      docker!.fail = true;
      expect((await loop.runPass()).transitions).toEqual([]);
      docker!.fail = false;
      docker!.list = [dockerContainer(99, 'running')];
      expect(brief((await loop.runPass()).transitions)).toEqual([['c2', 'running', 'gone', 'container.vanished']]);
    });

    it("never adopts any of the agent's internal containers: the namespace and Service Connect pause containers, the empty volume source", async () => {
      // The agent labels every container it creates and lists none of its internal ones
      // (Container.IsInternal), named in agent/api/task/task.go. While the agent is down (an upgrade
      // restarts it), they were mapped from their labels as containers of the task, and stayed so
      // after the agent answered again (Docker still lists them).
      const { loop, agent, docker } = setup({ docker: true });
      agent.fail = new ObservationError('agent', 'ERR_UNREACHABLE', 'refused');
      const internal = ['~internal~ecs~pause~namespace', '~internal~ecs~pause-web', '~internal~ecs-emptyvolume-source'].map((name, i) => ({
        ...dockerContainer(90 + i, 'running'),
        labels: { ...ecsLabels(90 + i, 1), [ECS_LABELS.containerName]: name },
      }));
      docker!.list = [dockerContainer(1, 'running'), ...internal];
      expect(brief((await loop.runPass()).transitions)).toEqual([['c1', null, 'running', 'labels.observed']]);
      agent.fail = null;
      agent.list = [task(1, 'RUNNING')];
      await loop.runPass();
      expect(loop.snapshot()!.map((c) => c.container_name)).toEqual(['c1']);
    });

    /** A started loop with Docker, after its first pass over one running container; `passes` counts each pass's transitions. */
    async function startedLoop() {
      const { loop, agent, docker, options } = setup({ docker: true });
      const passes: number[] = [];
      options.onPass = (r) => passes.push(r.transitions.length);
      agent.list = [task(1, 'RUNNING')];
      docker!.list = [dockerContainer(1, 'running')];
      loop.start();
      await until(() => passes.length === 1);
      return { loop, agent, docker: docker!, passes };
    }

    it('runs a pass on a Docker event after being stopped and started again', async () => {
      const { loop, docker, passes } = await startedLoop();
      docker!.emit({ action: 'start', container_id: cid(1), time_nano: '1', labels: {} });
      await loop.stop();
      loop.start();
      await until(() => passes.length === 2);
      docker!.emit({ action: 'die', container_id: cid(1), time_nano: '2', labels: {} });
      await until(() => passes.length === 3);
      expect(passes.length).toBe(3);
    });

    it('runs an earlier pass when Docker reports an event (debounced into one pass)', async () => {
      const { agent, docker, passes } = await startedLoop();
      agent.list = [task(1, 'RUNNING'), task(2, 'RUNNING')];
      docker!.list = [dockerContainer(1, 'running'), dockerContainer(2, 'running')];
      for (let i = 0; i < 5; i++) docker!.emit({ action: 'start', container_id: cid(2), time_nano: '1', labels: {} });
      await until(() => passes.length === 2);
      await new Promise((r) => setTimeout(r, 50));
      expect(passes).toEqual([1, 1]); // resync is 60 s: only the event could have caused the second pass
    });
  });

  it("reads the agent's version again after the agent failed a pass (an upgrade restarts it), and every 30 passes", async () => {
    const { loop, agent } = setup();
    let version = 'Amazon ECS Agent - v1.80.0';
    let calls = 0;
    agent.metadata = async () => {
      calls++;
      return { cluster: 'demo', container_instance_arn: 'arn:aws:ecs:eu-west-1:123456789012:container-instance/demo/abc', version };
    };
    agent.list = [task(1, 'RUNNING')];
    await loop.runPass();
    await loop.runPass();
    expect([calls, loop.identity()?.ecs_agent_version]).toEqual([1, 'Amazon ECS Agent - v1.80.0']);
    version = 'Amazon ECS Agent - v1.90.0';
    agent.fail = new ObservationError('agent', 'ERR_UNREACHABLE', 'refused');
    await loop.runPass();
    agent.fail = null;
    await loop.runPass();
    expect(loop.identity()?.ecs_agent_version).toBe('Amazon ECS Agent - v1.90.0');
    const before = calls;
    for (let i = 0; i < 30; i++) await loop.runPass();
    expect(calls - before).toBe(1);
  });

  it('discards a pass whose outbox append failed and emits the same transitions on the next pass', async () => {
    let full = false;
    const failing: OutboxFs = {
      ...(fs as unknown as OutboxFs),
      fsyncSync(fd: number) {
        if (full) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        fs.fsyncSync(fd);
      },
    };
    const { loop, agent, outbox, registry } = setup({ fs: failing });
    agent.list = [task(1, 'RUNNING')];
    await loop.runPass();
    full = true;
    agent.list = [task(1, 'STOPPED', null)];
    const failed = await loop.runPass();
    expect(failed.outboxError?.code).toBe('ERR_OUTBOX_NO_SPACE');
    expect(failed.transitions).toEqual([]);
    expect(await metricValue(registry, 'ecs_id_mapper_reconciler_outbox_write_errors_total', { code: 'ERR_OUTBOX_NO_SPACE' })).toBe(1);
    // The snapshot still holds what was last appended, not the observation whose append failed.
    expect(loop.snapshot()!.map((c) => [short(c.container_id), c.state, c.known_status])).toEqual([['c1', 'running', 'RUNNING']]);
    full = false;
    const retried = await loop.runPass();
    expect(brief(retried.transitions)).toEqual([['c1', 'running', 'stopped', 'agent.observed']]);
    expect(outbox.peek(10).map((t) => t.seq)).toEqual([1, 2]);
  });

  it('continues from the emitted states after a restart instead of reporting every container again', async () => {
    const first = setup();
    first.agent.list = [task(1, 'RUNNING'), task(2, 'RUNNING'), task(3, 'RUNNING')];
    await first.loop.runPass();
    first.outbox.ack(2); // the server took part of it
    first.agent.list = [task(1, 'RUNNING', 'STOPPED'), task(2, 'RUNNING')];
    await first.loop.runPass();
    first.outbox.close(); // as after kill -9: nothing else was flushed
    const second = setup({ dir: first.dir });
    second.agent.list = [task(1, 'RUNNING', 'STOPPED'), task(2, 'RUNNING')];
    const r = await second.loop.runPass();
    expect(r.transitions).toEqual([]);
    expect(second.loop.containersByState()).toMatchObject({ running: 1, stopping: 1 });
    second.agent.list = [task(2, 'RUNNING')];
    const gone = await second.loop.runPass();
    expect(brief(gone.transitions)).toEqual([['c1', 'stopping', 'gone', 'container.vanished']]);
    // The gone transition still carries the container's task mapping from before the restart.
    expect(gone.transitions[0].container).toMatchObject({ task_arn: arn(1), container_name: 'c1', source: 'agent' });
  });

  it("does not report another instance's containers when its state dir is reused (an AMI made from a running host)", async () => {
    const first = setup();
    first.agent.list = [task(1, 'RUNNING'), task(2, 'RUNNING'), task(3, 'RUNNING')];
    await first.loop.runPass();
    first.outbox.ack(2); // the server took part of it; seq 3 is still queued
    first.outbox.close();
    // A new instance starts with a copy of the first one's state dir; IMDS does not answer at first.
    const second = setup({ dir: first.dir });
    second.imds.instanceId = 'i-0fedcba9876543210';
    second.imds.fail = true;
    second.agent.list = [task(7, 'RUNNING')];
    const before = await second.loop.runPass();
    expect(brief(before.transitions)).toEqual([['c7', null, 'running', 'agent.observed']]);
    second.imds.fail = false;
    const r = await second.loop.runPass();
    expect(r.transitions).toEqual([]);
    // What it sends under its own instance id: its own containers only, with seqs never used here before.
    expect(second.outbox.peek(10).map((x) => [short(x.container_id), x.to, x.seq])).toEqual([['c7', 'running', 4]]);
    expect(second.loop.containersByState()).toMatchObject({ running: 1, gone: 0 });
    second.outbox.close();
    // And after its own restart, only its own containers come back.
    const third = setup({ dir: first.dir });
    third.imds.instanceId = 'i-0fedcba9876543210';
    expect(third.loop.containersByState()).toMatchObject({ running: 1, gone: 0 });
    third.agent.list = [task(7, 'RUNNING')];
    expect((await third.loop.runPass()).transitions).toEqual([]);
    expect(third.outbox.peek(10).map((x) => x.seq)).toEqual([4]);
  });

  it('does not grow with churn: machines of gone containers are dropped', async () => {
    const { loop, agent, outbox } = setup();
    for (let round = 0; round < 100; round++) {
      agent.list = [task(1000 + round, 'RUNNING', 'RUNNING', [1000 + round, 5000 + round])];
      await loop.runPass();
      outbox.ack(outbox.lastSeq());
    }
    const r = await loop.runPass();
    expect(r.containers).toBe(2);
  });

  it('reconciles 250 containers in a pass (CPU cost reported, not asserted)', async () => {
    const { loop, agent } = setup();
    const tasks = Array.from({ length: 125 }, (_, i) => task(i + 1, 'RUNNING', 'RUNNING', [2 * i + 1, 2 * i + 2]));
    agent.list = tasks;
    // Warm up xstate and the JIT on another loop first: the number reported is a warm process's.
    const warm = setup();
    warm.agent.list = tasks;
    await warm.loop.runPass();
    const first = await loop.runPass();
    expect(first.transitions).toHaveLength(250);
    const steady: number[] = [];
    for (let i = 0; i < 50; i++) steady.push((await loop.runPass()).reconcileCpuMicros);
    // One task stops per pass: the common "something changed" pass.
    const churn: number[] = [];
    for (let i = 0; i < 20; i++) {
      agent.list = tasks.map((t, j) => (j === i ? { ...t, known_status: 'STOPPED' as const, desired_status: null } : t));
      const r = await loop.runPass();
      expect(r.transitions).toHaveLength(2);
      churn.push(r.reconcileCpuMicros);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(`[loop] 250 containers: first pass ${first.reconcileCpuMicros} µs CPU; steady pass median ${median(steady)} µs; one-task-changed pass median ${median(churn)} µs`);
    expect(first.containers).toBe(250);
  });
});

describe('reconcile loop: what the agent lists within its own limits, the server accepts', () => {
  /** POSTs what the outbox holds to the real API, as the reporter would. */
  async function deliver(outbox: ReturnType<typeof setup>['outbox'], host: HostIdentity) {
    const api = await buildTestApp();
    cleanups.push(() => api.close());
    const res = await api.app.inject({ method: 'POST', url: `/v2/hosts/${host.instance_id}/transitions`, payload: { host, transitions: outbox.peek(100) } });
    return { status: res.statusCode, body: res.json() as { applied?: number; message?: string }, app: api.app };
  }

  it('a 255-character family and container name (legal in ECS) give the agent its longest DockerName: reported whole', async () => {
    const { loop, agent, outbox } = setup();
    const family = 'f'.repeat(255);
    const t = task(1, 'RUNNING');
    // The agent names it "ecs-" + family + "-" + version + "-" + name + "-" + 20 hex (docker_task_engine.go).
    t.family = family;
    const name = 'n'.repeat(255);
    t.containers[0].name = name;
    t.containers[0].docker_name = `ecs-${family}-2147483647-${name}-${'ab'.repeat(10)}`;
    agent.list = [t];
    const r = await loop.runPass();
    expect(r.transitions).toHaveLength(1);
    const sent = await deliver(outbox, loop.identity()!);
    expect(sent).toMatchObject({ status: 200, body: { applied: 1 } });
    expect(r.transitions[0].container).toMatchObject({ task_family: family, container_name: name, docker_name: t.containers[0].docker_name });
    // And found by that name.
    const found = await sent.app.inject({ method: 'GET', url: `/v2/lookup/${t.containers[0].docker_name}` });
    expect(found.statusCode).toBe(200);
    expect(found.json()).toMatchObject({ kind: 'docker_name', containers: [{ container_id: r.transitions[0].container_id }] });
  });

  it('a container port range the agent lists port by port (over 256 bindings) is reported with the first 256', async () => {
    const { loop, agent, outbox } = setup();
    const t = task(1, 'RUNNING');
    t.containers[0].ports = Array.from({ length: 1001 }, (_, i) => ({ container_port: 8000 + i, host_port: 8000 + i, protocol: 'tcp' }));
    agent.list = [t];
    const r = await loop.runPass();
    const sent = await deliver(outbox, loop.identity()!);
    expect(sent).toMatchObject({ status: 200, body: { applied: 1 } });
    expect(r.transitions[0].container.ports).toHaveLength(256);
    expect(r.transitions[0].container.ports[255]).toEqual({ container_port: 8255, host_port: 8255, protocol: 'tcp' });
  });

  it('labels of a container known only from Docker are held to the same limits (anyone may label a container)', async () => {
    const { loop, agent, docker, outbox } = setup({ docker: true });
    agent.fail = new ObservationError('agent', 'ERR_UNREACHABLE', 'agent down');
    docker!.list = [{ ...dockerContainer(1, 'running', { ...ecsLabels(1), [ECS_LABELS.containerName]: 'n'.repeat(10_000), [ECS_LABELS.version]: '9'.repeat(40) }), image: 'i'.repeat(2000) }];
    const r = await loop.runPass();
    expect(r.transitions).toHaveLength(1);
    const sent = await deliver(outbox, loop.identity()!);
    expect(sent).toMatchObject({ status: 200, body: { applied: 1 } });
    expect(r.transitions[0].container).toMatchObject({ source: 'labels', container_name: null, task_version: null, image: null, task_arn: arn(1) });
  });
});

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
