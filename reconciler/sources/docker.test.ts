import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerResponse } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFixture, readJsonFixture } from '../../test/fixtures.js';
import { reply, startLoopback, type Handler, type LoopbackServer } from '../../test/support/loopback.js';
import { createDockerClient, parseContainerSummary, parseEventLine, type DockerClient } from './docker.js';
import { ObservationError, type DockerEvent } from './types.js';
import { failure } from '../../test/support/observation.js';

const ID_A = 'a'.repeat(64);
const ID_B = 'b'.repeat(64);
const ID_C = 'c'.repeat(64);
const TASK_ARN = 'arn:aws:ecs:us-east-1:012345678910:task/demo/0123456789abcdef0123456789abcdef';

/** Shaped like dockerd 20.10's `GET /containers/json?all=1` entries. */
function summary(id: string, state: string, status: string, labels: Record<string, string> | null = {}) {
  return { Id: id, Names: [`/ecs-demo-${id.slice(0, 4)}`], Image: 'busybox', ImageID: 'sha256:' + 'f'.repeat(64), Command: '/bin/sleep 3600', Created: 1795621945, Ports: [], Labels: labels, State: state, Status: status, HostConfig: { NetworkMode: 'none' } };
}

function eventLine(action: string, id: string, extra: Record<string, string> = {}, timeNano = '1629574695515050031'): string {
  // timeNano is written as a bare JSON number, as dockerd does: larger than 2^53.
  return `{"status":"${action}","id":"${id}","from":"busybox","Type":"container","Action":"${action}","Actor":{"ID":"${id}","Attributes":${JSON.stringify({ image: 'busybox', name: 'c1', ...extra })}},"scope":"local","time":1629574695,"timeNano":${timeNano}}\n`;
}

let dir: string;
let socketPath: string;
let server: LoopbackServer | undefined;
let client: DockerClient | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'docker-client-'));
  socketPath = join(dir, 'docker.sock');
});

afterEach(async () => {
  await client?.close();
  await server?.close();
  client = undefined;
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function fakeDocker(handler: Handler) {
  server = await startLoopback(handler, socketPath);
  return server;
}


describe('Docker client: listContainers', () => {
  it('lists running and exited containers with labels, exit codes from Status or inspect', async () => {
    const inspect = readJsonFixture<Record<string, unknown>>('docker/container-inspect-excerpt.swagger-example.json');
    await fakeDocker((req, res) => {
      if (req.url === '/containers/json?all=1') {
        return reply(res, 200, JSON.stringify([
          summary(ID_A, 'running', 'Up 2 minutes', { 'com.amazonaws.ecs.task-arn': TASK_ARN }),
          summary(ID_B, 'exited', 'Exited (137) 5 seconds ago'),
          summary(ID_C, 'dead', 'Dead', null),
        ]));
      }
      if (req.url === `/containers/${ID_C}/json`) return reply(res, 200, JSON.stringify({ ...inspect, Id: ID_C }));
      reply(res, 404, readFixture('docker/container-inspect-404.swagger-example.json'));
    });
    client = createDockerClient({ socketPath, timeoutMs: 1000 });
    expect(await client.listContainers()).toEqual([
      { id: ID_A, name: 'ecs-demo-aaaa', image: 'busybox', state: 'running', labels: { 'com.amazonaws.ecs.task-arn': TASK_ARN }, exit_code: null },
      { id: ID_B, name: 'ecs-demo-bbbb', image: 'busybox', state: 'exited', labels: {}, exit_code: 137 },
      { id: ID_C, name: 'ecs-demo-cccc', image: 'busybox', state: 'dead', labels: {}, exit_code: 9 },
    ]);
  });

  it('keeps only the ECS labels of a container, whatever else its task definition put there', async () => {
    const ecs = {
      'com.amazonaws.ecs.task-arn': TASK_ARN,
      'com.amazonaws.ecs.container-name': 'app',
      'com.amazonaws.ecs.task-definition-family': 'web',
      'com.amazonaws.ecs.task-definition-version': '7',
      'com.amazonaws.ecs.cluster': 'prod',
    };
    const others = { 'traefik.http.routers.web.rule': 'Host(`example.com`) && PathPrefix(`/api`)', 'com.datadoghq.ad.instances': '[{"url":"x"}]'.repeat(50) };
    await fakeDocker((req, res) => reply(res, 200, JSON.stringify([summary(ID_A, 'running', 'Up 2 minutes', { ...others, ...ecs })])));
    client = createDockerClient({ socketPath, timeoutMs: 1000 });
    expect((await client.listContainers())[0].labels).toEqual(ecs);
  });

  it("asks for a dead container's exit code once, not at every listing, and forgets it once the container is gone", async () => {
    const inspect = readJsonFixture<Record<string, unknown>>('docker/container-inspect-excerpt.swagger-example.json');
    let listing = [summary(ID_B, 'dead', 'Dead'), summary(ID_C, 'dead', 'Dead')];
    const inspected: string[] = [];
    await fakeDocker((req, res) => {
      if (req.url === '/containers/json?all=1') return reply(res, 200, JSON.stringify(listing));
      const id = /^\/containers\/([0-9a-f]+)\/json$/.exec(req.url ?? '')?.[1];
      if (id) {
        inspected.push(id);
        return reply(res, 200, JSON.stringify({ ...inspect, Id: id }));
      }
      reply(res, 404, readFixture('docker/container-inspect-404.swagger-example.json'));
    });
    client = createDockerClient({ socketPath, timeoutMs: 1000 });
    for (let pass = 0; pass < 3; pass++) expect((await client.listContainers()).map((c) => c.exit_code)).toEqual([9, 9]);
    expect(inspected).toEqual([ID_B, ID_C]);
    // ID_C removed at last, then a new dead container with the same id would be asked again.
    listing = [summary(ID_B, 'dead', 'Dead')];
    await client.listContainers();
    listing = [summary(ID_B, 'dead', 'Dead'), summary(ID_C, 'dead', 'Dead')];
    await client.listContainers();
    expect(inspected).toEqual([ID_B, ID_C, ID_C]);
  });

  it('leaves the exit code null when the container was removed before inspect', async () => {
    await fakeDocker((req, res) => {
      if (req.url === '/containers/json?all=1') return reply(res, 200, JSON.stringify([summary(ID_B, 'exited', 'Exited')]));
      reply(res, 404, readFixture('docker/container-inspect-404.swagger-example.json'));
    });
    client = createDockerClient({ socketPath, timeoutMs: 1000 });
    expect((await client.listContainers())[0].exit_code).toBeNull();
  });

  it.each([
    ['not an array', '{"message":"x"}'],
    ['not JSON', 'Bad Gateway'],
    ['an unknown state', JSON.stringify([summary(ID_A, 'sleeping', 'Up')])],
    ['non-string labels', JSON.stringify([summary(ID_A, 'running', 'Up', { a: 1 } as unknown as Record<string, string>)])],
  ])('fails with ERR_GARBAGE on %s', async (_name, body) => {
    await fakeDocker((_req, res) => reply(res, 200, body));
    client = createDockerClient({ socketPath, timeoutMs: 1000 });
    expect(await failure(client.listContainers())).toMatchObject({ source: 'docker', code: 'ERR_GARBAGE' });
  });

  it('fails with ERR_HTTP_STATUS on a 500', async () => {
    await fakeDocker((_req, res) => reply(res, 500, '{"message":"daemon busy"}'));
    client = createDockerClient({ socketPath, timeoutMs: 1000 });
    expect(await failure(client.listContainers())).toMatchObject({ code: 'ERR_HTTP_STATUS', status: 500 });
  });

  it('fails with ERR_UNREACHABLE when the socket does not exist', async () => {
    client = createDockerClient({ socketPath, timeoutMs: 1000 });
    expect(await failure(client.listContainers())).toMatchObject({ source: 'docker', code: 'ERR_UNREACHABLE' });
  });

  it('says the socket path is a directory, not a socket, when it is one (a bind mount of a missing host path)', async () => {
    mkdirSync(socketPath);
    client = createDockerClient({ socketPath, timeoutMs: 1000 });
    expect(await failure(client.listContainers())).toMatchObject({
      source: 'docker',
      code: 'ERR_UNREACHABLE',
      message: `Docker GET /containers/json?all=1: ${socketPath} is a directory, not the Docker engine's socket (check --docker-socket and the mount)`,
    });
  });

  it('says the socket path is a regular file, not a socket, when it is one', async () => {
    writeFileSync(socketPath, 'not a socket');
    client = createDockerClient({ socketPath, timeoutMs: 1000 });
    expect((await failure(client.listContainers())).message).toContain(`${socketPath} is a regular file, not the Docker engine's socket`);
  });

  it('fails with ERR_TIMEOUT when the engine never answers', async () => {
    await fakeDocker(() => {
      // never answers
    });
    client = createDockerClient({ socketPath, timeoutMs: 150 });
    expect(await failure(client.listContainers())).toMatchObject({ code: 'ERR_TIMEOUT' });
  });

  it('fails with ERR_TIMEOUT, not the bare abort, when the pass\'s deadline passes before the client\'s', async () => {
    await fakeDocker(() => {
      // never answers
    });
    // The reconcile loop passes AbortSignal.timeout(--request-timeout) as well, set just before the client's own timer.
    client = createDockerClient({ socketPath, timeoutMs: 150 });
    expect(await failure(client.listContainers(AbortSignal.timeout(150)))).toMatchObject({ source: 'docker', code: 'ERR_TIMEOUT', message: 'Docker GET /containers/json?all=1: no answer before the deadline' });
  });
});

describe('Docker client: container names', () => {
  it("takes a linked container's own name, not the /<other>/<alias> Docker also lists it under", () => {
    const linked = { ...summary(ID_A, 'running', 'Up 1 minute'), Names: ['/ecs-web-3-app-e4f2/db', '/ecs-web-3-db-aa11'] };
    expect(parseContainerSummary(linked).name).toBe('ecs-web-3-db-aa11');
    expect(parseContainerSummary(summary(ID_B, 'running', 'Up 1 minute')).name).toBe(`ecs-demo-${ID_B.slice(0, 4)}`);
    expect(parseContainerSummary({ ...summary(ID_C, 'running', 'Up'), Names: [] }).name).toBe('');
  });
});

describe('Docker client: event lines', () => {
  it('keeps timeNano exact, separates labels from attributes and reads the exit code of die', () => {
    const event = parseEventLine(eventLine('die', ID_A, { exitCode: '137', 'com.amazonaws.ecs.task-arn': TASK_ARN }).trim());
    expect(event).toEqual({ action: 'die', container_id: ID_A, time_nano: '1629574695515050031', labels: { 'com.amazonaws.ecs.task-arn': TASK_ARN }, exit_code: 137 });
  });

  it('ignores the swagger example (a create event) and non-container events', () => {
    expect(parseEventLine(JSON.stringify(readJsonFixture('docker/event-message.swagger-example.json')))).toBeUndefined();
    expect(parseEventLine('{"Type":"network","Action":"connect","Actor":{"ID":"n"}}')).toBeUndefined();
    expect(parseEventLine('not json')).toBeUndefined();
  });
});

describe('Docker client: watchEvents', () => {
  /** A fake engine whose event stream stays open, followed until connected: write to `stream()`. */
  async function followOneStream() {
    let open: ServerResponse | undefined;
    await fakeDocker((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      open = res;
    });
    client = createDockerClient({ socketPath, timeoutMs: 1000 });
    const controller = new AbortController();
    const events: DockerEvent[] = [];
    let connected = 0;
    const done = client.watchEvents({ onEvent: (e) => events.push(e), onConnected: () => connected++ }, controller.signal);
    await expect.poll(() => connected).toBe(1);
    return { stream: () => open!, events, controller, done };
  }

  it('asks for container start/die/destroy only and delivers the events in order', async () => {
    const { stream, events, controller, done } = await followOneStream();
    // One line split across two writes, then two lines in one write.
    const start = eventLine('start', ID_A);
    stream().write(start.slice(0, 40));
    stream().write(start.slice(40) + eventLine('die', ID_A, { exitCode: '0' }) + eventLine('destroy', ID_A));
    await expect.poll(() => events.map((e) => e.action)).toEqual(['start', 'die', 'destroy']);
    const filters = new URL(server!.requests[0].path, 'http://docker').searchParams.get('filters');
    expect(JSON.parse(filters!)).toEqual({ type: ['container'], event: ['start', 'die', 'destroy'] });
    expect(new URL(server!.requests[0].path, 'http://docker').searchParams.get('since')).toBeNull();
    controller.abort();
    await done;
  });

  it('holds at most one bounded line of a stream that sends no line end, and reads the events after it', async () => {
    const { stream, events, controller, done } = await followOneStream();
    // An event with 200 KiB of labels (a container that is not ECS's may carry any) is still read.
    stream().write(eventLine('start', ID_A, { big: 'y'.repeat(200 * 1024) }));
    await expect.poll(() => events.length).toBe(1);
    expect(events[0].labels.big).toHaveLength(200 * 1024);
    // Then 32 MiB without a line end: the client held all of it (and searched it again at every
    // chunk), 150-odd MiB of heap on the way, in a daemon meant to live in 64 MiB.
    const heapBefore = process.memoryUsage().heapUsed;
    let peak = 0;
    const chunk = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 32 * 16; i++) {
      if (!stream().write(chunk)) await new Promise((r) => stream().once('drain', r));
      peak = Math.max(peak, process.memoryUsage().heapUsed - heapBefore);
    }
    stream().write('\n' + eventLine('die', ID_B, { exitCode: '1' }));
    await expect.poll(() => events.map((e) => [e.action, e.container_id])).toEqual([['start', ID_A], ['die', ID_B]]);
    expect(peak).toBeLessThan(32 * 1024 * 1024);
    controller.abort();
    await done;
  });

  it('says the socket path is a directory when the event stream cannot connect to one', async () => {
    mkdirSync(socketPath);
    const controller = new AbortController();
    const disconnects: ObservationError[] = [];
    client = createDockerClient({ socketPath, timeoutMs: 1000, sleep: async () => controller.abort() });
    await client.watchEvents({ onEvent: () => undefined, onDisconnected: (e) => disconnects.push(e as ObservationError) }, controller.signal);
    expect(disconnects.map((e) => [e.code, e.message])).toEqual([
      ['ERR_UNREACHABLE', `Docker GET /events: ${socketPath} is a directory, not the Docker engine's socket (check --docker-socket and the mount)`],
    ]);
  });

  it('reconnects with capped, growing backoff after the socket disappears and comes back', async () => {
    const streams: ServerResponse[] = [];
    const handler: Handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      streams.push(res);
    };
    await fakeDocker(handler);
    const sleeps: number[] = [];
    let recreate: (() => void) | undefined;
    client = createDockerClient({
      socketPath,
      timeoutMs: 1000,
      backoff: { baseMs: 100, maxMs: 400 },
      random: () => 0.999,
      sleep: async (ms) => {
        sleeps.push(ms);
        if (sleeps.length === 5) recreate?.();
        await new Promise((r) => setTimeout(r, 5));
      },
    });
    const controller = new AbortController();
    const events: DockerEvent[] = [];
    const disconnects: ObservationError[] = [];
    let connected = 0;
    const done = client.watchEvents(
      { onEvent: (e) => events.push(e), onConnected: () => connected++, onDisconnected: (e) => disconnects.push(e as ObservationError) },
      controller.signal,
    );
    await expect.poll(() => connected).toBe(1);
    streams[0].write(eventLine('start', ID_A));
    await expect.poll(() => events.length).toBe(1);

    // The engine goes away: stream closed and socket file removed (server.close unlinks it).
    let recreated: Promise<void> | undefined;
    recreate = () => {
      recreated = fakeDocker(handler).then(() => undefined);
    };
    await server!.close();
    await expect.poll(() => connected, { timeout: 5000 }).toBe(2);
    await recreated;
    streams.at(-1)!.write(eventLine('start', ID_B));
    await expect.poll(() => events.map((e) => e.container_id)).toEqual([ID_A, ID_B]);
    // The reconnect (first request to the new server) replays from the last event seen.
    expect(new URL(server!.requests[0].path, 'http://docker').searchParams.get('since')).toBe('1629574695.515050031');

    expect(sleeps.slice(0, 5)).toEqual([100, 200, 400, 400, 400]);
    expect(disconnects.length).toBeGreaterThanOrEqual(5);
    expect(disconnects.every((e) => e instanceof ObservationError && e.code === 'ERR_UNREACHABLE')).toBe(true);
    controller.abort();
    await done;
  });

  it.each([
    // Each connection accepted and dropped at once: the wait keeps growing (no reconnect storm).
    ['keeps backing off, growing, from a stream that ends as soon as it opens', [0, 0, 0, 0], [50, 100, 200, 200]],
    // The third stays up 450 ms, past maxMs, before the engine drops it: the backoff starts over.
    ['starts the backoff over after a stream that stayed up as long as the longest wait', [0, 0, 450], [50, 100, 50]],
  ])('%s', async (_name, heldMs, expectedSleeps) => {
    let answered = 0;
    await fakeDocker((_req, res) => {
      const held = heldMs[answered++];
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      setTimeout(() => res.end(), held);
    });
    const sleeps: number[] = [];
    const controller = new AbortController();
    client = createDockerClient({
      socketPath,
      timeoutMs: 1000,
      backoff: { baseMs: 100, maxMs: 400 },
      random: () => 0,
      sleep: async (ms) => {
        sleeps.push(ms);
        if (sleeps.length === heldMs.length) controller.abort();
      },
    });
    await client.watchEvents({ onEvent: () => undefined }, controller.signal);
    expect(answered).toBe(heldMs.length);
    expect(sleeps).toEqual(expectedSleeps);
  });

  it('returns when aborted while waiting to reconnect', async () => {
    client = createDockerClient({ socketPath, timeoutMs: 1000, backoff: { baseMs: 60_000, maxMs: 60_000 } });
    const controller = new AbortController();
    const disconnects: Error[] = [];
    const done = client.watchEvents({ onEvent: () => undefined, onDisconnected: (e) => disconnects.push(e) }, controller.signal);
    await expect.poll(() => disconnects.length).toBe(1);
    controller.abort();
    await expect(done).resolves.toBeUndefined();
  });
});
