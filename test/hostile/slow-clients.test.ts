// Slow clients against a real listening server (buildServer + listen on 127.0.0.1:0): a socket that
// goes quiet, headers sent byte by byte, a body that trickles. Each is cut off (408 or a closed
// socket) once its timeout passes, while other clients keep getting answers. The timeouts are
// buildServer's deps (requestTimeoutMs, connectionTimeoutMs, keepAliveTimeoutMs).
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../api/test-helpers.js';
import type { ServerDeps } from '../../api/server.js';
import { containerId, hostIdentity, instanceId, snapshot, snapshotContainer } from '../../storage/store.fixtures.js';

let t: TestApp | undefined;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await t?.close();
  t = undefined;
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function listening(overrides: Partial<ServerDeps>): Promise<{ port: number }> {
  t = await buildTestApp(overrides);
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  return { port: (t.app.server.address() as AddressInfo).port };
}

interface SlowClient {
  /** Everything the server sent. */
  received(): string;
  /** Resolves with ms since connect when the server closes the socket (or after `guardMs`, with -1). */
  closed(guardMs: number): Promise<number>;
  /** Writes `text` one byte every `gapMs` until done or the socket closes. */
  trickle(text: string, gapMs: number): void;
}

function slowClient(port: number): SlowClient {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  const started = Date.now();
  let data = '';
  let closedAt: number | undefined;
  const waiters: Array<() => void> = [];
  socket.on('data', (c: Buffer) => (data += c.toString('utf8')));
  socket.on('error', () => {});
  socket.on('close', () => {
    closedAt = Date.now() - started;
    for (const w of waiters.splice(0)) w();
  });
  return {
    received: () => data,
    closed: (guardMs) =>
      new Promise((resolve) => {
        if (closedAt !== undefined) return resolve(closedAt);
        const guard = setTimeout(() => resolve(-1), guardMs);
        waiters.push(() => {
          clearTimeout(guard);
          resolve(closedAt ?? -1);
        });
      }),
    trickle(text, gapMs) {
      let i = 0;
      const timer = setInterval(() => {
        if (closedAt !== undefined || socket.destroyed || i >= text.length) return clearInterval(timer);
        socket.write(text[i++]);
      }, gapMs);
    },
  };
}

async function health(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(5000) });
  await res.text();
  return res.status;
}

/** 408 answered, or the socket closed without an answer: both mean "cut off". */
function expectCutOff(client: SlowClient): void {
  const answer = client.received();
  if (answer !== '') {
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({ error: 'request_timeout', message: expect.any(String) });
  }
}

describe('timeouts buildServer sets', () => {
  it('defaults to 15 s per request, 30 s idle socket and 5 s keep-alive, and takes each from deps', async () => {
    t = await buildTestApp();
    expect(t.app.server.requestTimeout).toBe(15_000);
    expect(t.app.server.timeout).toBe(30_000);
    expect(t.app.server.keepAliveTimeout).toBe(5_000);
    // Node only checks request deadlines every connectionsCheckingInterval; it must not exceed the request timeout.
    expect(t.app.server.headersTimeout).toBeLessThanOrEqual(15_000);
    await t.close();
    t = await buildTestApp({ requestTimeoutMs: 1_234, connectionTimeoutMs: 2_345, keepAliveTimeoutMs: 345 });
    expect(t.app.server.requestTimeout).toBe(1_234);
    expect(t.app.server.timeout).toBe(2_345);
    expect(t.app.server.keepAliveTimeout).toBe(345);
    expect(t.app.server.headersTimeout).toBeLessThanOrEqual(1_234);
  });
});

describe('slow clients on a listening server', () => {
  it('closes a socket that sends part of its headers and then goes quiet (idle timeout)', async () => {
    const { port } = await listening({ connectionTimeoutMs: 300, requestTimeoutMs: 10_000 });
    const client = slowClient(port);
    client.trickle('GET /health HTTP/1.1\r\nHost: x\r\n', 1);
    const closedAfter = await client.closed(8_000);
    expect(closedAfter).toBeGreaterThan(0);
    expectCutOff(client);
    expect(await health(port)).toBe(200);
  });

  it('cuts off headers sent byte by byte, each byte inside the idle timeout but the whole slower than the request timeout', async () => {
    const { port } = await listening({ connectionTimeoutMs: 5_000, requestTimeoutMs: 600 });
    const client = slowClient(port);
    // ~60 bytes at one per 100 ms: 6 s to finish, ten times the request timeout.
    client.trickle(`GET /v2/lookup/${containerId('slow')} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${'z'.repeat(10)}\r\n\r\n`, 100);
    const closedAfter = await client.closed(5_000);
    expect(closedAfter, 'the slow client was never cut off').toBeGreaterThan(0);
    expectCutOff(client);
  });

  it('cuts off a report whose body trickles in slower than the request timeout, and stores nothing', async () => {
    const { port } = await listening({ connectionTimeoutMs: 5_000, requestTimeoutMs: 600 });
    const host = instanceId('slow-body');
    const body = JSON.stringify(snapshot(hostIdentity({ instance_id: host }), 1, [snapshotContainer('running', { container_id: containerId('slow-body') })]));
    const client = slowClient(port);
    const head = `PUT /v2/hosts/${host}/snapshot HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
    client.trickle(head + body, 5);
    const closedAfter = await client.closed(8_000);
    expect(closedAfter).toBeGreaterThan(0);
    expectCutOff(client);
    expect((await t!.store.getContainer(containerId('slow-body'))).kind).toBe('missing');
  });

  it('keeps an idle keep-alive connection for the keep-alive timeout, even past the idle socket timeout (a load balancer reuses it)', async () => {
    const { port } = await listening({ connectionTimeoutMs: 300, keepAliveTimeoutMs: 1_500, requestTimeoutMs: 5_000 });
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (d) => (received += String(d)));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    const answers = () => (received.match(/HTTP\/1\.1 200/g) ?? []).length;
    socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => answers() === 1);
    await new Promise((r) => setTimeout(r, 900)); // three idle timeouts, within the keep-alive timeout
    socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => answers() === 2);
    // Then closed by the server once idle for the keep-alive timeout.
    const idleSince = Date.now();
    await closed;
    expect(Date.now() - idleSince).toBeGreaterThan(1_000);
  });

  it('keeps answering other clients while twenty slow clients hold sockets open', async () => {
    const { port } = await listening({ connectionTimeoutMs: 5_000, requestTimeoutMs: 2_000 });
    const slow = Array.from({ length: 20 }, () => slowClient(port));
    for (const c of slow) c.trickle('GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ' + 'y'.repeat(200), 50);
    for (let i = 0; i < 5; i++) expect(await health(port)).toBe(200);
    const report = await fetch(`http://127.0.0.1:${port}/report/event`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ event_id: 'a'.repeat(64), event: 'added', timestamp: 1767225600 }),
      signal: AbortSignal.timeout(5000),
    });
    expect(report.status).toBe(200);
    const closed = await Promise.all(slow.map((c) => c.closed(8_000)));
    expect(closed.every((ms) => ms > 0)).toBe(true);
    for (const c of slow) expectCutOff(c);
    expect(await health(port)).toBe(200);
  });

  it('closes an idle keep-alive connection after the keep-alive timeout', async () => {
    const { port } = await listening({ keepAliveTimeoutMs: 300, connectionTimeoutMs: 10_000, requestTimeoutMs: 10_000 });
    const client = slowClient(port);
    client.trickle('GET /health HTTP/1.1\r\nHost: x\r\n\r\n', 0);
    const closedAfter = await client.closed(5_000);
    expect(closedAfter).toBeGreaterThan(0);
    expect(client.received()).toMatch(/^HTTP\/1\.1 200 /);
  });
});
