import { PassThrough } from 'node:stream';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { readFixture, readJsonFixture } from '../../test/fixtures.js';
import { createEcsAgentClient } from '../../reconciler/sources/ecs-agent.js';
import { createImdsClient } from '../../reconciler/sources/imds.js';
import { CONTAINER_ID, TASK_ARN, TASK_ID } from '../../wire/index.js';
import type { SimulateHostConfig } from '../../config/index.js';
import { startSimulatedHost, type SimulatedHost, type SimulatedHostOptions } from './index.js';
import { runSimulateHost } from './main.js';
import { renderTask } from './agent-api.js';
import { tasksFromContainers } from './docker-tasks.js';
import { ECS_LABELS } from '../../reconciler/sources/types.js';
import { failure } from '../../test/support/observation.js';

const hosts: SimulatedHost[] = [];

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.close()));
});

const base: SimulatedHostOptions = {
  host: '127.0.0.1',
  agentPort: 0,
  imdsPort: 0,
  controlPort: 0,
  tasks: 3,
  containersPerTask: 2,
  churnIntervalMs: 0,
  cleanupAfterMs: 30_000,
  cluster: 'demo',
  instanceId: 'i-0123456789abcdef0',
  seed: 7,
};

async function simulate(overrides: Partial<SimulatedHostOptions> = {}) {
  const host = await startSimulatedHost({ ...base, ...overrides });
  hosts.push(host);
  return host;
}

function agentOf(host: SimulatedHost, timeoutMs = 2000) {
  return createEcsAgentClient({ baseUrl: new URL(host.agentUrl), timeoutMs });
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers });
  return { status: res.statusCode, body: await res.body.text() };
}

async function post(url: string, body?: unknown) {
  const res = await request(url, { method: 'POST', body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
}


describe('simulated ECS agent API', () => {
  it('lists the initial RUNNING tasks with well-formed ARNs and 64-hex container ids, read by the real client', async () => {
    const host = await simulate();
    const tasks = await agentOf(host).tasks();
    expect(tasks).toHaveLength(3);
    for (const task of tasks) {
      expect(task.arn).toMatch(TASK_ARN);
      expect(task.arn).toContain(':task/demo/');
      expect(task.task_id).toMatch(TASK_ID);
      expect(task).toMatchObject({ known_status: 'RUNNING', desired_status: 'RUNNING' });
      expect(task.containers).toHaveLength(2);
      for (const c of task.containers) {
        expect(c.docker_id).toMatch(CONTAINER_ID);
        expect(c.docker_name).toMatch(new RegExp(`^ecs-${task.family}-${task.version}-${c.name}-[0-9a-f]{20}$`));
        expect(c.started_at).not.toBeNull();
      }
      expect(task.containers[0].ports).toEqual([expect.objectContaining({ container_port: 80, protocol: 'tcp' })]);
    }
    expect(await agentOf(host).metadata()).toEqual({
      cluster: 'demo',
      container_instance_arn: expect.stringMatching(/^arn:aws:ecs:us-east-1:012345678910:container-instance\/demo\/[0-9a-f]{32}$/),
      version: 'Amazon ECS Agent - v1.105.1 (simulated)',
    });
  });

  it('shapes tasks like the agent: the fixture field order, newer-agent fields; DesiredStatus STOPPED once stopped, omitted for a task that never ran', async () => {
    const host = await simulate({ tasks: 1 });
    const arn = host.state[0].arn;
    const never = host.startTask();
    host.stopTask(arn);
    host.stopTask(never.arn);
    host.tick({ churn: false });
    host.tick({ churn: false });
    const { Tasks } = JSON.parse((await get(`${host.agentUrl}/v1/tasks`)).body) as { Tasks: Array<Record<string, unknown>> };
    const fixture = readJsonFixture<{ Tasks: Array<Record<string, unknown> & { Containers: Array<Record<string, unknown>> }> }>('ecs-agent/v1-tasks-bridge-full.composed.json');
    const stopped = Tasks[0] as Record<string, unknown> & { Containers: Array<Record<string, unknown>> };
    expect(stopped).toMatchObject({ DesiredStatus: 'STOPPED', KnownStatus: 'STOPPED' });
    expect(Object.keys(stopped)).toEqual(Object.keys(fixture.Tasks[0])); // the fixture's RUNNING task: every field
    expect(Object.keys(Tasks[1])).toEqual(Object.keys(fixture.Tasks[1])); // the fixture's STOPPED task, DesiredStatus lagging
    expect(Object.keys(stopped.Containers[0])).toEqual(Object.keys(fixture.Tasks[0].Containers[0]).filter((k) => k !== 'Volumes'));
    expect(Object.keys(stopped.Containers[1])).toEqual(Object.keys(fixture.Tasks[0].Containers[1]).filter((k) => k !== 'Ports'));
  });

  it('answers unknown paths with 200 and the agent\'s AvailableCommands body', async () => {
    const host = await simulate();
    expect(await get(`${host.agentUrl}/`)).toEqual({ status: 200, body: readFixture('ecs-agent/root-available-commands.json') });
    expect(await get(`${host.agentUrl}/v2/metadata`)).toEqual({ status: 200, body: readFixture('ecs-agent/root-available-commands.json') });
  });

  it('answers ?dockerid= (a unique prefix) and ?taskarn= with the single task, and misses with the zero-valued task', async () => {
    const host = await simulate();
    const [task] = host.state;
    const byDocker = await get(`${host.agentUrl}/v1/tasks?dockerid=${task.containers[1].docker_id.slice(0, 12)}`);
    expect(byDocker.status).toBe(200);
    expect(JSON.parse(byDocker.body)).toMatchObject({ Arn: task.arn, KnownStatus: 'RUNNING' });
    const byArn = await get(`${host.agentUrl}/v1/tasks?taskarn=${encodeURIComponent(task.arn)}`);
    expect(JSON.parse(byArn.body).Arn).toBe(task.arn);
    const zero = readFixture('ecs-agent/v1-tasks-error-single-task.json');
    expect(await get(`${host.agentUrl}/v1/tasks?dockerid=${'0'.repeat(64)}`)).toEqual({ status: 404, body: zero });
    expect(await get(`${host.agentUrl}/v1/tasks?taskarn=nope`)).toEqual({ status: 404, body: zero });
    expect(await get(`${host.agentUrl}/v1/tasks?taskarn=a&dockerid=b`)).toEqual({ status: 400, body: zero });
    // Longer than 12 characters is a whole id to the agent, not a prefix.
    expect(await get(`${host.agentUrl}/v1/tasks?dockerid=${task.containers[1].docker_id.slice(0, 13)}`)).toEqual({ status: 404, body: zero });
    expect((await get(`${host.agentUrl}/v1/tasks?dockerid=${task.containers[1].docker_id}`)).status).toBe(200);
  });
});

describe('simulated churn', () => {
  it('moves a started task PENDING → RUNNING, and a stopped one through desired STOPPED to STOPPED with exit codes', async () => {
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const host = await simulate({ tasks: 0, now: () => clock, cleanupAfterMs: 60_000 });
    const agent = agentOf(host);
    const started = host.startTask({ family: 'web', containers: 3 });
    expect((await agent.tasks())[0]).toMatchObject({ arn: started.arn, known_status: 'PENDING', desired_status: 'RUNNING' });
    expect((await agent.tasks())[0].containers.map((c) => c.started_at)).toEqual([null, null, null]);

    clock += 1000;
    host.tick({ churn: false });
    const running = (await agent.tasks())[0];
    expect(running.known_status).toBe('RUNNING');
    expect(running.containers.map((c) => c.started_at)).toEqual(Array(3).fill('2026-01-01T00:00:01.000Z'));

    host.stopTask(started.task_id);
    host.tick({ churn: false });
    expect((await agent.tasks())[0]).toMatchObject({ known_status: 'RUNNING', desired_status: 'STOPPED' });
    host.tick({ churn: false });
    expect((await agent.tasks())[0]).toMatchObject({ known_status: 'STOPPED', desired_status: 'STOPPED' });
    expect(host.state[0].containers.every((c) => typeof c.exit_code === 'number')).toBe(true);

    clock += 59_999;
    expect(await agent.tasks()).toHaveLength(1);
    clock += 1;
    expect(await agent.tasks()).toEqual([]);
  });

  it('stops a PENDING task before it ever runs', async () => {
    const host = await simulate({ tasks: 0 });
    const task = host.startTask();
    host.stopTask(task.arn);
    host.tick({ churn: false });
    expect(host.state[0]).toMatchObject({ known_status: 'STOPPED', desired_status: null });
    expect(host.state[0].containers.every((c) => c.started_at === null)).toBe(true);
  });

  it('is deterministic from the seed', async () => {
    const run = async (seed: number) => {
      const host = await simulate({ seed, now: () => 0 });
      for (let i = 0; i < 12; i++) host.tick();
      return host.state.map((t) => [t.arn, t.known_status, t.desired_status, t.containers.map((c) => [c.docker_id, c.exit_code])]);
    };
    const a = await run(42);
    expect(await run(42)).toEqual(a);
    expect(await run(43)).not.toEqual(a);
  });

  it('keeps the live population around the target while tasks start and stop', async () => {
    const host = await simulate({ tasks: 4, now: () => 0, cleanupAfterMs: 1 });
    const seen = new Set(host.state.map((t) => t.arn));
    for (let i = 0; i < 40; i++) {
      host.tick();
      for (const t of host.state) seen.add(t.arn);
      const live = host.state.filter((t) => t.known_status !== 'STOPPED' && t.desired_status !== 'STOPPED');
      expect(live.length).toBeGreaterThanOrEqual(3);
      expect(live.length).toBeLessThanOrEqual(4);
    }
    expect(seen.size).toBeGreaterThan(10);
  });

  it('hands out host ports from the ephemeral range, wrapping, never one a listed task holds (the reconciler refuses a port past 65535)', async () => {
    let clock = 0;
    const host = await simulate({ tasks: 2, now: () => (clock += 10), cleanupAfterMs: 1, containersPerTask: 1 });
    const agent = agentOf(host);
    const ports = () => host.state.flatMap((t) => t.containers.flatMap((c) => c.ports.map((p) => p.HostPort!)));
    const seen = new Set<number>();
    // About 30,000 task starts go round the range (28,232 ports) once.
    for (let i = 0; i < 60_000 && seen.size < 28_232; i++) {
      host.tick();
      for (const p of ports()) seen.add(p);
    }
    expect(Math.min(...seen)).toBe(32768);
    expect(Math.max(...seen)).toBe(60999);
    host.tick();
    const listed = ports();
    expect(new Set(listed).size).toBe(listed.length);
    expect(await agent.tasks()).toHaveLength(host.state.length);
  });

  it('restarts containers with a restart policy in place: same id, growing RestartCount', async () => {
    let clock = 0;
    const host = await simulate({ tasks: 3, now: () => clock, seed: 3 });
    let restarted: { docker_id: string; restart_count: number | null; started_at: string | null } | undefined;
    const firstStart = new Map<string, string | null>();
    for (let i = 0; i < 100 && !restarted; i++) {
      clock += 1000;
      host.tick();
      for (const c of host.state.flatMap((t) => t.containers)) {
        if (!firstStart.has(c.docker_id) && c.started_at) firstStart.set(c.docker_id, c.started_at);
        if ((c.restart_count ?? 0) > 0) restarted = c;
      }
    }
    expect(restarted).toBeDefined();
    expect(restarted!.started_at).not.toBe(firstStart.get(restarted!.docker_id));
    const agentView = (await agentOf(host).tasks()).flatMap((t) => t.containers).find((c) => c.docker_id === restarted!.docker_id);
    expect(agentView?.restart_count).toBe(restarted!.restart_count);
  });

  it('churns on its own timer', async () => {
    const host = await simulate({ churnIntervalMs: 10 });
    const first = host.state.map((t) => t.arn);
    await expect.poll(() => host.state.some((t) => !first.includes(t.arn)), { timeout: 5000 }).toBe(true);
  });
});

describe('a started task before Docker created its containers (pendingForMs)', () => {
  type Listed = { Tasks: Array<Record<string, unknown> & { Containers: Array<Record<string, unknown>> }> };
  const listing = async (host: SimulatedHost) => JSON.parse((await get(`${host.agentUrl}/v1/tasks`)).body) as Listed;
  const fixture = () => readJsonFixture<Listed>('ecs-agent/v1-tasks-bridge-full.composed.json');
  const T0 = Date.parse('2026-01-01T00:00:00Z');

  it('lists it with "Containers": [] for the first half, then DockerId "" under the names they will get, then with ids', async () => {
    let clock = T0;
    const host = await simulate({ tasks: 0, now: () => clock, pendingForMs: 1000 });
    const started = host.startTask({ family: 'web', containers: 2 });
    const [app, sidecar] = started.containers;

    // Pulling: the task is listed, its containers are not (the fixture's PENDING task).
    expect((await listing(host)).Tasks).toEqual([{ Arn: started.arn, DesiredStatus: 'RUNNING', KnownStatus: 'PENDING', Family: 'web', Version: started.version, Containers: [] }]);
    expect(Object.keys((await listing(host)).Tasks[0])).toEqual(Object.keys(fixture().Tasks[2]));

    // Creating: each container under its Docker name, no id, no CreatedAt, the dynamic host port not bound yet.
    clock += 500;
    expect((await listing(host)).Tasks[0].Containers).toEqual([
      { DockerId: '', DockerName: app.docker_name, Name: 'app', Image: 'nginx:1.27', ImageID: app.image_id, Ports: [{ ContainerPort: 80, Protocol: 'tcp' }] },
      { DockerId: '', DockerName: sidecar.docker_name, Name: 'sidecar', Image: 'busybox:1.36', ImageID: sidecar.image_id, RestartCount: 0 },
    ]);
    expect(app.docker_name).toMatch(new RegExp(`^ecs-web-${started.version}-app-[0-9a-f]{20}$`));
    // Nothing to find by Docker id yet, and the real client maps nothing.
    expect(await get(`${host.agentUrl}/v1/tasks?dockerid=${app.docker_id.slice(0, 12)}`)).toEqual({ status: 404, body: readFixture('ecs-agent/v1-tasks-error-single-task.json') });
    expect(await agentOf(host).tasks()).toEqual([expect.objectContaining({ arn: started.arn, known_status: 'PENDING', containers: [] })]);

    // Created: ids and CreatedAt (when pendingForMs ran out); still PENDING until a tick, and the
    // port still the task definition's until the container starts.
    clock += 500;
    const created = (await listing(host)).Tasks[0];
    expect(created.KnownStatus).toBe('PENDING');
    expect(created.Containers.map((c) => [c.DockerId, c.CreatedAt, c.StartedAt])).toEqual([
      [app.docker_id, '2026-01-01T00:00:01.000Z', undefined],
      [sidecar.docker_id, '2026-01-01T00:00:01.000Z', undefined],
    ]);
    expect(created.Containers[0].Ports).toEqual([{ ContainerPort: 80, Protocol: 'tcp' }]);
    expect((await get(`${host.agentUrl}/v1/tasks?dockerid=${app.docker_id.slice(0, 12)}`)).status).toBe(200);
    host.tick({ churn: false });
    const running = (await listing(host)).Tasks[0];
    expect(running).toMatchObject({ KnownStatus: 'RUNNING' });
    expect(running.Containers[0].Ports).toEqual(app.ports);
    expect(app.ports[0].HostPort).toBeGreaterThanOrEqual(32768);
  });

  it('does not delay ticks: a tick creates and runs a task whose containers do not exist yet', async () => {
    let clock = T0;
    const host = await simulate({ tasks: 0, now: () => clock, pendingForMs: 60_000 });
    const started = host.startTask({ containers: 1 });
    clock += 2000;
    host.tick({ churn: false });
    const [task] = (await listing(host)).Tasks;
    expect(task).toMatchObject({ KnownStatus: 'RUNNING', DesiredStatus: 'RUNNING' });
    expect(task.Containers.map((c) => [c.DockerId, c.CreatedAt, c.StartedAt])).toEqual([[started.containers[0].docker_id, '2026-01-01T00:00:02.000Z', '2026-01-01T00:00:02.000Z']]);
  });

  it('keeps the shape a task had when it was stopped before its containers existed, with no exit codes', async () => {
    let clock = T0;
    const host = await simulate({ tasks: 0, now: () => clock, pendingForMs: 1000 });
    const creating = host.startTask({ containers: 1 });
    clock += 250;
    const pulling = host.startTask({ containers: 1 });
    clock += 350; // 600 ms and 350 ms after they started, and nothing listed them meanwhile
    host.stopTask(creating.arn);
    host.stopTask(pulling.arn);
    host.tick({ churn: false });
    clock += 10_000;
    const tasks = (await listing(host)).Tasks;
    expect(tasks[0]).toMatchObject({ Arn: creating.arn, KnownStatus: 'STOPPED', Containers: [expect.objectContaining({ DockerId: '', DockerName: creating.containers[0].docker_name })] });
    expect(tasks[0]).not.toHaveProperty('DesiredStatus');
    // The fixture's STOPPED task: DesiredStatus omitted, "Containers": [].
    expect(tasks[1]).toEqual({ Arn: pulling.arn, KnownStatus: 'STOPPED', Family: pulling.family, Version: pulling.version, Containers: [] });
    expect(Object.keys(tasks[1])).toEqual(Object.keys(fixture().Tasks[1]));
    expect(host.state.map((t) => [t.creation, t.containers.map((c) => c.exit_code)])).toEqual([
      ['named', [null]],
      ['none', [null]],
    ]);
  });

  it('is off by default in the library: a started task is listed with its container ids at once', async () => {
    const host = await simulate({ tasks: 0 });
    const started = host.startTask({ containers: 1 });
    expect((await listing(host)).Tasks[0].Containers.map((c) => c.DockerId)).toEqual([started.containers[0].docker_id]);
  });
});

describe('Docker-derived tasks', () => {
  it('show "ImageID": "" when the image id is unknown, as the agent marshals an unset one (the field has no omitempty)', () => {
    const arn = 'arn:aws:ecs:us-east-1:012345678910:task/demo/0123456789abcdef0123456789abcdef';
    const [task] = tasksFromContainers([
      {
        id: 'a'.repeat(64), name: 'ecs-demo-1-app-0123', image: 'busybox', state: 'running', exit_code: null,
        labels: { [ECS_LABELS.taskArn]: arn, [ECS_LABELS.containerName]: 'app', [ECS_LABELS.family]: 'demo', [ECS_LABELS.version]: '1' },
      },
    ]);
    expect(JSON.stringify(renderTask(task))).toBe(
      `{"Arn":"${arn}","DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Family":"demo","Version":"1",` +
        `"Containers":[{"DockerId":"${'a'.repeat(64)}","DockerName":"ecs-demo-1-app-0123","Name":"app","Image":"busybox","ImageID":""}]}`,
    );
  });
});

describe('fault switches (control API)', () => {
  it.each([
    ['500', 'ERR_HTTP_STATUS'],
    ['garbage', 'ERR_GARBAGE'],
    ['zero', 'ERR_ZERO_VALUE'],
    ['wrong-path', 'ERR_WRONG_PATH'],
    ['timeout', 'ERR_TIMEOUT'],
  ])('agent fault %s makes the client fail with %s, and ok heals it', async (fault, code) => {
    const host = await simulate();
    const agent = agentOf(host, 200);
    expect(await post(`${host.controlUrl}/faults`, { agent: fault })).toEqual({ status: 200, json: { agent: fault, imds: 'ok' } });
    expect(await failure(agent.tasks())).toMatchObject({ source: 'agent', code });
    expect(await failure(agent.metadata())).toMatchObject({ source: 'agent', code });
    await post(`${host.controlUrl}/faults`, { agent: 'ok' });
    expect(await agent.tasks()).toHaveLength(3);
  });

  it('serves the agent\'s zero-valued bodies on a 500', async () => {
    const host = await simulate();
    host.setFault({ agent: '500' });
    expect(await get(`${host.agentUrl}/v1/tasks`)).toEqual({ status: 500, body: readFixture('ecs-agent/v1-tasks-error-list.json') });
    expect(await get(`${host.agentUrl}/v1/metadata`)).toEqual({ status: 500, body: readFixture('ecs-agent/v1-metadata-error.json') });
  });

  it('rejects unknown faults with a 400 JSON error', async () => {
    const host = await simulate();
    expect(await post(`${host.controlUrl}/faults`, { agent: 'explode' })).toMatchObject({ status: 400, json: { error: 'bad_request' } });
    expect(await post(`${host.controlUrl}/faults`, { disk: 'full' })).toMatchObject({ status: 400, json: { error: 'bad_request' } });
    expect(await post(`${host.controlUrl}/faults`, '{nope')).toMatchObject({ status: 400, json: { error: 'bad_request', message: 'body is not JSON' } });
    expect(host.faults).toEqual({ agent: 'ok', imds: 'ok' });
  });

  it('starts and stops tasks, ticks, and reports state over HTTP', async () => {
    const host = await simulate({ tasks: 1 });
    const started = await post(`${host.controlUrl}/tasks/start`, { family: 'api', containers: 1 });
    expect(started.status).toBe(201);
    expect(started.json).toMatchObject({ family: 'api', known_status: 'PENDING' });
    const arn = started.json.arn as string;
    expect((await post(`${host.controlUrl}/tick`, { churn: false })).json.tasks).toEqual(expect.arrayContaining([expect.objectContaining({ arn, known_status: 'RUNNING' })]));
    expect(await post(`${host.controlUrl}/tasks/${encodeURIComponent(arn)}/stop`)).toMatchObject({ status: 200, json: { arn, desired_status: 'STOPPED' } });
    expect(await post(`${host.controlUrl}/tasks/${'f'.repeat(32)}/stop`)).toMatchObject({ status: 404, json: { error: 'not_found' } });
    expect(await post(`${host.controlUrl}/tasks/start`, { containers: 11 })).toMatchObject({ status: 400, json: { error: 'bad_request' } });
    const state = JSON.parse((await get(`${host.controlUrl}/state`)).body);
    expect(state.faults).toEqual({ agent: 'ok', imds: 'ok' });
    expect(state.tasks).toHaveLength(2);
    expect((await post(`${host.controlUrl}/nope`)).status).toBe(404);
  });
});

describe('simulated IMDSv2', () => {
  it('serves the identity to the real client over IMDSv2', async () => {
    const host = await simulate();
    let fallbacks = 0;
    const imds = createImdsClient({ baseUrl: new URL(host.imdsUrl), timeoutMs: 1000, tokenTtlSeconds: 60, onFallback: () => fallbacks++ });
    expect(await imds.identity()).toEqual({
      instance_id: 'i-0123456789abcdef0',
      instance_ip: '127.0.0.1',
      instance_type: 'm5.large',
      instance_az: 'us-east-1a',
      region: 'us-east-1',
      host_name: 'ip-127-0-0-1.ec2.internal',
    });
    expect(fallbacks).toBe(0);
  });

  it('refuses GETs without a token (or with an expired one) with the 401 page, and unknown paths with the 404 page', async () => {
    let clock = 0;
    const host = await simulate({ now: () => clock });
    expect(await get(`${host.imdsUrl}/latest/meta-data/instance-id`)).toEqual({ status: 401, body: readFixture('imds/401-unauthorized.html') });
    const token = await request(`${host.imdsUrl}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '10' } }).then((r) => r.body.text());
    expect(await get(`${host.imdsUrl}/latest/meta-data/nope`, { 'x-aws-ec2-metadata-token': token })).toEqual({ status: 404, body: readFixture('imds/404-not-found.html') });
    expect((await get(`${host.imdsUrl}/latest/meta-data/instance-id`, { 'x-aws-ec2-metadata-token': token })).body).toBe('i-0123456789abcdef0');
    clock += 10_000;
    expect((await get(`${host.imdsUrl}/latest/meta-data/instance-id`, { 'x-aws-ec2-metadata-token': token })).status).toBe(401);
    const badTtl = await request(`${host.imdsUrl}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '0' } });
    expect({ status: badTtl.statusCode, body: await badTtl.body.text() }).toEqual({ status: 400, body: readFixture('imds/400-bad-request.html') });
    for (const ttl of ['1e2', '0x10', '60.0', '+60']) {
      const res = await request(`${host.imdsUrl}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': ttl } });
      await res.body.dump();
      expect(res.statusCode, ttl).toBe(400);
    }
  });

  it('token-timeout (hop limit): the client falls back to IMDSv1 and counts it', async () => {
    const host = await simulate();
    host.setFault({ imds: 'token-timeout' });
    let fallbacks = 0;
    const imds = createImdsClient({ baseUrl: new URL(host.imdsUrl), timeoutMs: 150, tokenTtlSeconds: 60, onFallback: () => fallbacks++ });
    expect((await imds.identity()).instance_id).toBe('i-0123456789abcdef0');
    expect(fallbacks).toBe(1);
  });

  it.each([
    ['401', 'ERR_UNAUTHORIZED'],
    ['timeout', 'ERR_TIMEOUT'],
  ])('imds fault %s makes the client fail with %s', async (fault, code) => {
    const host = await simulate();
    host.setFault({ imds: fault as '401' | 'timeout' });
    const imds = createImdsClient({ baseUrl: new URL(host.imdsUrl), timeoutMs: 150, tokenTtlSeconds: 60, v2RetryAfterMs: 0 });
    expect(await failure(imds.identity())).toMatchObject({ source: 'imds', code });
  });
});

describe('simulated host from a Docker engine', () => {
  it('refuses to start on a socket that is no Docker engine, instead of serving 500s as if ready', async () => {
    await expect(startSimulatedHost({ ...base, dockerSocket: '/nonexistent/docker.sock' })).rejects.toThrow(/^--docker-socket \/nonexistent\/docker\.sock: cannot list containers \(/);
  });
});

describe('runSimulateHost', () => {
  it('prints the three URLs as one JSON line, serves them, and resolves when stopped', async () => {
    const out = new PassThrough();
    const lines: string[] = [];
    out.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
    const controller = new AbortController();
    const config: SimulateHostConfig = { ...base, pendingForMs: 0, logLevel: 'silent' };
    const running = runSimulateHost(config, { signal: controller.signal, out, logStream: new PassThrough() });
    await expect.poll(() => lines.length).toBe(1);
    const urls = JSON.parse(lines[0]) as Record<string, string>;
    expect(Object.keys(urls)).toEqual(['agent_url', 'imds_url', 'control_url']);
    expect(await createEcsAgentClient({ baseUrl: new URL(urls.agent_url), timeoutMs: 1000 }).tasks()).toHaveLength(3);
    controller.abort();
    await running;
    await expect(get(`${urls.agent_url}/v1/tasks`)).rejects.toThrow();
  });
});
