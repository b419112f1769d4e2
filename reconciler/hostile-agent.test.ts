// The real ECS agent client and the real loop against a loopback agent answering what another
// agent version, or a broken one, could: what ends up in the outbox and in the log.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildTestApp } from '../api/test-helpers.js';
import { readFixture } from '../test/fixtures.js';
import { reply, startLoopback } from '../test/support/loopback.js';
import { createReconcileLoop } from './loop.js';
import { openOutbox } from './outbox.js';
import { createEcsAgentClient } from './sources/ecs-agent.js';
import type { ImdsSource } from './sources/types.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const imds: ImdsSource = {
  async identity() {
    return { instance_id: 'i-0123456789abcdef0', instance_ip: '10.0.0.1', instance_type: 't3.micro', instance_az: 'us-west-2a', region: 'us-west-2', host_name: 'ip-10-0-0-1' };
  },
};

/** A loop reading a loopback agent whose /v1/tasks and /v1/metadata bodies the test sets. */
async function hostWithAgent() {
  const bodies = { tasks: readFixture('ecs-agent/v1-tasks.docs.json'), metadata: readFixture('ecs-agent/v1-metadata.docs.json'), metadataStatus: 200 };
  const server = await startLoopback((req, res) => {
    if (req.url === '/v1/tasks') reply(res, 200, bodies.tasks);
    else if (req.url === '/v1/metadata') reply(res, bodies.metadataStatus, bodies.metadata);
    else reply(res, 200, readFixture('ecs-agent/root-available-commands.json'));
  });
  const dir = mkdtempSync(join(tmpdir(), 'hostile-agent-test-'));
  const outbox = openOutbox({ dir, maxBytes: 1 << 22 });
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) });
  const loop = createReconcileLoop({
    agent: createEcsAgentClient({ baseUrl: server.url, timeoutMs: 2000 }),
    imds, outbox, logger, resyncIntervalMs: 60_000, eventDebounceMs: 10, requestTimeoutMs: 2000,
  });
  cleanups.push(() => server.close(), () => rmSync(dir, { recursive: true, force: true }), () => outbox.close(), () => loop.stop());
  const setMetadata = (status: number, body: string) => Object.assign(bodies, { metadataStatus: status, metadata: body });
  return { loop, bodies, lines, outbox, setMetadata };
}

const brief = (ts: Array<{ container_id: string; from: string | null; to: string; reason: string }>) => ts.map((t) => [t.container_id.slice(0, 12), t.from, t.to, t.reason]);
const MYSQL = '9581a69a761a557fbfce1d0f6745e4af5b9dbfb86b6b2c5c4df156f1a5932ff1';
const WORDPRESS = 'bf25c5c5b2d4dba68846c7236e75b6915e1e778d31611e3c6a06831e39814a15';

describe('the loop reading a hostile ECS agent', () => {
  it.each([
    ['in upper case', WORDPRESS.toUpperCase()],
    ['shortened to 12 characters', WORDPRESS.slice(0, 12)],
  ])('reports nothing gone when the agent lists a running container with its Docker id %s, and logs why the listing failed', async (_name, id) => {
    const { loop, bodies, lines } = await hostWithAgent();
    expect(brief((await loop.runPass()).transitions)).toEqual([
      ['9581a69a761a', null, 'running', 'agent.observed'],
      ['bf25c5c5b2d4', null, 'running', 'agent.observed'],
    ]);
    bodies.tasks = bodies.tasks.replace(WORDPRESS, id);
    const r = await loop.runPass();
    expect(r.result).toBe('failed');
    expect(r.transitions).toEqual([]);
    expect(loop.containersByState()).toMatchObject({ running: 2, gone: 0 });
    expect(lines).toContainEqual(expect.objectContaining({
      level: 40, code: 'ERR_GARBAGE',
      msg: expect.stringContaining('Tasks[0].Containers[1].DockerId: not a full Docker container id'),
    }));
  });
});

describe('the loop reading an agent that lists one Docker id twice', () => {
  /** The composed bridge listing with mysql's id given to the STOPPED task's container as well. */
  function listingWithMysqlTwice(): string {
    const listing = JSON.parse(readFixture('ecs-agent/v1-tasks-bridge-full.composed.json')) as { Tasks: Array<{ Containers: unknown[] }> };
    listing.Tasks[1].Containers = [{ DockerId: MYSQL, DockerName: 'ecs-hello_world-8-mysql-0a0b0c0d0e0f10111213', Name: 'mysql' }];
    return JSON.stringify(listing);
  }

  it('fails the listing, naming the id and both tasks, instead of mapping the container to each in turn', async () => {
    const { loop, bodies, lines } = await hostWithAgent();
    bodies.tasks = listingWithMysqlTwice();
    const r = await loop.runPass();
    expect(r.result).toBe('failed');
    expect(r.transitions).toEqual([]);
    expect(lines).toContainEqual(expect.objectContaining({
      level: 40, code: 'ERR_GARBAGE', msg: `ECS agent observation failed: ECS agent /v1/tasks: Tasks[1]: container ${MYSQL} is listed in Tasks[0] too`,
    }));
  });

  it('keeps what it had for the container: no second first transition, no state from the other task', async () => {
    const { loop, bodies } = await hostWithAgent();
    bodies.tasks = readFixture('ecs-agent/v1-tasks-bridge-full.composed.json');
    expect(brief((await loop.runPass()).transitions)).toEqual([
      ['9581a69a761a', null, 'running', 'agent.observed'],
      ['bf25c5c5b2d4', null, 'running', 'agent.observed'],
    ]);
    bodies.tasks = listingWithMysqlTwice();
    for (let i = 0; i < 3; i++) expect((await loop.runPass()).transitions).toEqual([]);
    expect(loop.containersByState()).toMatchObject({ running: 2, stopped: 0 });
  });
});

describe('the loop reading agent metadata the server would refuse', () => {
  it('keeps the host reporting when the agent gives a cluster longer than 255 characters', async () => {
    const { loop, bodies, outbox } = await hostWithAgent();
    // (A cluster ARN is taken by its name, which ECS keeps within 255 characters.)
    const cluster = 'c'.repeat(256);
    bodies.metadata = JSON.stringify({ ...JSON.parse(bodies.metadata) as object, Cluster: cluster });
    const r = await loop.runPass();
    expect(r.transitions).toHaveLength(2);
    const api = await buildTestApp();
    cleanups.push(() => api.close());
    const host = loop.identity()!;
    const res = await api.app.inject({ method: 'POST', url: `/v2/hosts/${host.instance_id}/transitions`, payload: { host, transitions: outbox.peek(100) } });
    expect(res.statusCode).toBe(200);
    expect(host.cluster).toBeNull();
  });
});

describe('the loop reading agent metadata that fails while the listing works', () => {
  it.each([
    ['an HTML error page', 200, readFixture('imds/404-not-found.html'), 'ERR_GARBAGE', 'ECS agent metadata observation failed: ECS agent /v1/metadata: body is not JSON'],
    ['a 500 with the zero-valued body', 500, readFixture('ecs-agent/v1-metadata-error.json'), 'ERR_HTTP_STATUS', 'ECS agent metadata observation failed: ECS agent /v1/metadata: HTTP 500'],
    ['the AvailableCommands index', 200, readFixture('ecs-agent/root-available-commands.json'), 'ERR_WRONG_PATH', 'ECS agent metadata observation failed: ECS agent /v1/metadata: answered with AvailableCommands (wrong path or not an agent)'],
    ['a cluster longer than the server takes', 200, JSON.stringify({ Cluster: 'c'.repeat(256), ContainerInstanceArn: null, Version: 'v' }), 'ERR_GARBAGE',
      'ECS agent metadata observation failed: ECS agent /v1/metadata: metadata.Cluster: longer than the 255 characters the server takes (256)'],
  ])('says at warn why the cluster is unknown: %s', async (_name, status, body, code, msg) => {
    const { loop, lines, setMetadata } = await hostWithAgent();
    setMetadata(status, body);
    expect((await loop.runPass()).result).toBe('ok');
    expect(loop.identity()).toMatchObject({ cluster: null, container_instance_arn: null, ecs_agent_version: null });
    expect(lines).toContainEqual(expect.objectContaining({ level: 40, code, msg }));
  });

  it('says once, at info, when the metadata works again', async () => {
    const { loop, lines, setMetadata } = await hostWithAgent();
    setMetadata(500, readFixture('ecs-agent/v1-metadata-error.json'));
    await loop.runPass();
    await loop.runPass();
    expect(lines.filter((l) => String(l.msg).startsWith('ECS agent metadata observation failed'))).toHaveLength(1);
    setMetadata(200, readFixture('ecs-agent/v1-metadata.docs.json'));
    await loop.runPass();
    expect(loop.identity()).toMatchObject({ cluster: 'cluster_name' });
    expect(lines).toContainEqual(expect.objectContaining({ level: 30, msg: 'ECS agent metadata observation works again', occurrences: 2 }));
  });

  it('keeps quiet at info about an agent that has not registered yet (zero-valued metadata)', async () => {
    const { loop, lines, setMetadata } = await hostWithAgent();
    setMetadata(200, readFixture('ecs-agent/v1-metadata-error.json'));
    await loop.runPass();
    expect(lines.filter((l) => String(l.msg).includes('metadata'))).toEqual([]);
  });
});

describe('the loop reading text the server cannot store (a lone UTF-16 surrogate, valid in JSON)', () => {
  it('reports the container with those values unknown, and the server takes it', async () => {
    const { loop, bodies, outbox } = await hostWithAgent();
    const listing = JSON.parse(readFixture('ecs-agent/v1-tasks-bridge-full.composed.json')) as { Tasks: Array<Record<string, unknown> & { Containers: Array<Record<string, unknown>> }> };
    const task = listing.Tasks[0];
    task.Family = 'hello\ud800world';
    Object.assign(task.Containers[0], { DockerName: 'ecs-\udc00-mysql', Name: 'my\ud83dsql', Image: 'mysql\udfff' });
    task.Containers[1].Ports = [{ ContainerPort: 80, Protocol: 't\ud800', HostPort: 80 }, { ContainerPort: 81, Protocol: 'tcp', HostPort: 81, HostIp: '\ud800' }];
    bodies.tasks = JSON.stringify(listing);
    const r = await loop.runPass();
    expect(r.transitions).toHaveLength(2);
    expect(r.transitions[0].container).toMatchObject({ task_family: null, docker_name: null, container_name: null, image: null, task_arn: task.Arn });
    expect(r.transitions[1].container.ports).toEqual([{ container_port: 81, host_port: 81, protocol: 'tcp' }]);
    const api = await buildTestApp();
    cleanups.push(() => api.close());
    const host = loop.identity()!;
    const res = await api.app.inject({ method: 'POST', url: `/v2/hosts/${host.instance_id}/transitions`, payload: { host, transitions: outbox.peek(100) } });
    expect(res.json()).toMatchObject({ applied: 2 });
  });

  it('reads agent metadata holding one as a failed observation, so the host keeps reporting', async () => {
    const { loop, setMetadata, lines } = await hostWithAgent();
    setMetadata(200, JSON.stringify({ Cluster: 'prod', ContainerInstanceArn: null, Version: 'Amazon ECS Agent - v1.105.1 \ud800' }));
    await loop.runPass();
    expect(loop.identity()).toMatchObject({ cluster: null, ecs_agent_version: null });
    expect(lines).toContainEqual(expect.objectContaining({ code: 'ERR_GARBAGE', msg: 'ECS agent metadata observation failed: ECS agent /v1/metadata: metadata.Version: holds a lone UTF-16 surrogate, which the server refuses' }));
  });
});

describe('the loop reading a task whose Arn is not an ECS task ARN', () => {
  it('maps its containers without a task ARN and says so at warn (the AWS docs sample has such a placeholder)', async () => {
    const { loop, lines } = await hostWithAgent();
    const r = await loop.runPass();
    expect(r.transitions.map((t) => [t.container.container_name, t.container.task_arn, t.container.task_family])).toEqual([
      ['mysql', null, 'hello_world'],
      ['wordpress', null, 'hello_world'],
    ]);
    const arn = 'arn:aws:ecs:us-west-2:012345678910:task/default/example5-58ff-46c9-ae05-543f8example';
    expect(lines).toContainEqual(expect.objectContaining({
      level: 40, tasks: 1, task_arn: arn, msg: `the ECS agent lists 1 task(s) whose Arn is not an ECS task ARN (${JSON.stringify(arn)}): their containers are reported without one`,
    }));
  });

  it('says nothing of the kind for well-formed ARNs, old and new, nor for a task without containers', async () => {
    const { loop, bodies, lines } = await hostWithAgent();
    const old = JSON.parse(readFixture('ecs-agent/v1-tasks-old-arn-stopped.docs.json')) as { Tasks: unknown[] };
    const bridge = JSON.parse(readFixture('ecs-agent/v1-tasks-bridge-full.composed.json')) as { Tasks: unknown[] };
    bodies.tasks = JSON.stringify({ Tasks: [...old.Tasks, ...bridge.Tasks, { Arn: 'not-an-arn', KnownStatus: 'PENDING', Family: 'f', Version: '1', Containers: [] }] });
    expect((await loop.runPass()).transitions).toHaveLength(6);
    expect(lines.filter((l) => String(l.msg).includes('task ARN'))).toEqual([]);
  });
});

describe('the loop logging an agent whose failure changes', () => {
  it('logs the new reason when the agent goes from one failure to another, and each reason once', async () => {
    const { loop, bodies, lines } = await hostWithAgent();
    bodies.tasks = '{"Tasks":[{"Arn":';
    await loop.runPass();
    await loop.runPass();
    bodies.tasks = readFixture('ecs-agent/v1-tasks-error-list.json');
    await loop.runPass();
    bodies.tasks = '{"Tasks":[{"Arn":';
    await loop.runPass();
    expect(lines.filter((l) => String(l.msg).startsWith('ECS agent observation failed')).map((l) => [l.code, l.msg])).toEqual([
      ['ERR_GARBAGE', 'ECS agent observation failed: ECS agent /v1/tasks: body is not JSON: body ends inside a value (at character 17)'],
      ['ERR_ZERO_VALUE', 'ECS agent observation failed: ECS agent /v1/tasks: zero-valued body {"Tasks":null}'],
    ]);
  });
});
