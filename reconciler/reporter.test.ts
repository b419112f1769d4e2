import { describe, it, expect, afterEach, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import pino from 'pino';
import { Registry } from 'prom-client';
import { startLoopback, reply, refusedPort, type LoopbackServer } from '../test/support/loopback.js';
import { openOutbox, OutboxWriteError, type Outbox, type PendingTransition } from './outbox.js';
import { createReporter, encodeSnapshot, type Reporter } from './reporter.js';
import { createReconcilerMetrics } from './metrics.js';
import { buildTestApp } from '../api/test-helpers.js';
import { startSelfSignedHttps } from '../test/support/tls.js';
import type { HostIdentity, SnapshotContainer, Transition, TransitionBatch, HostSnapshot } from '../wire/index.js';

const host: HostIdentity = {
  instance_id: 'i-0123456789abcdef0', cluster: 'demo', container_instance_arn: null, instance_ip: '10.0.0.1',
  instance_type: 't3.micro', instance_az: 'eu-west-1a', region: 'eu-west-1', host_name: 'ip-10-0-0-1', ecs_agent_version: '1.0',
};
const cid = (n: number) => n.toString(16).padStart(64, '0');
function t(n: number): PendingTransition {
  return {
    container_id: cid(n), from: null, to: 'running', at: '2026-01-01T00:00:00.000Z', reason: 'agent.observed',
    container: {
      container_id: cid(n), docker_name: null, container_name: null, image: null, task_arn: null, task_family: null,
      task_version: null, ports: [], desired_status: null, known_status: 'RUNNING', restart_count: 0, exit_code: null,
      started_at: null, source: 'agent',
    },
  };
}

describe('encodeSnapshot', () => {
  it.each([0, 1, 3000])('encodes %i containers as the JSON of the snapshot, in chunks cut anywhere', (n) => {
    const containers: SnapshotContainer[] = Array.from({ length: n }, (_, i) => ({ ...t(i + 1).container, docker_name: `ecs-\u{1F680}-${'x'.repeat(i % 7)}`, state: 'running' as const }));
    const head = { host, seq: 42, taken_at: '2026-01-01T00:00:00.000Z' };
    const body = encodeSnapshot(head, containers);
    const whole = Buffer.concat(body.chunks);
    expect(whole.length).toBe(body.bytes);
    expect(JSON.parse(whole.toString('utf8'))).toEqual({ ...head, containers });
    if (n === 3000) expect(body.chunks.length).toBeGreaterThan(1);
  });
});

/** A stand-in for the server's v2 report routes that can be told to fail. */
class FakeServer {
  held = 0;
  batches: TransitionBatch[] = [];
  snapshots: HostSnapshot[] = [];
  failWith: number | null = null;
  /** A seq the server refuses with 400 in any batch that holds it (a line it will never take). */
  refuseSeq: number | null = null;
  auth: Array<string | undefined> = [];
  server!: LoopbackServer;
  async start() {
    this.server = await startLoopback((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => this.handle(req, body, res));
    });
    return this;
  }
  private handle(req: IncomingMessage, body: string, res: Parameters<Parameters<typeof startLoopback>[0]>[1]) {
    this.auth.push(req.headers.authorization);
    if (this.failWith !== null) return reply(res, this.failWith, JSON.stringify({ error: 'x', message: 'told to fail' }));
    if (req.method === 'POST' && req.url === `/v2/hosts/${host.instance_id}/transitions`) {
      const batch = JSON.parse(body) as TransitionBatch;
      if (batch.transitions.some((x) => x.seq === this.refuseSeq)) {
        return reply(res, 400, JSON.stringify({ error: 'bad_request', message: `body/transitions: seq ${this.refuseSeq} refused` }));
      }
      this.batches.push(batch);
      let applied = 0;
      for (const tr of batch.transitions) if (tr.seq > this.held) (this.held = tr.seq), applied++;
      return reply(res, 200, JSON.stringify({ applied, duplicates: batch.transitions.length - applied, acked_seq: this.held }));
    }
    if (req.method === 'PUT' && req.url === `/v2/hosts/${host.instance_id}/snapshot`) {
      this.snapshots.push(JSON.parse(body) as HostSnapshot);
      return reply(res, 200, JSON.stringify({ upserted: 0, gone: 0, skipped: 0 }));
    }
    reply(res, 404, JSON.stringify({ error: 'not_found', message: req.url }));
  }
  seqs(): number[] {
    return this.batches.flatMap((b) => b.transitions.map((x: Transition) => x.seq));
  }
}

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** `newStateDir`: the outbox has not been told the server's mark yet, so the reporter first asks for it (outbox.rebase). */
function setup(server: URL, extra: Partial<Parameters<typeof createReporter>[0]> = {}, newStateDir = false) {
  const dir = mkdtempSync(join(tmpdir(), 'reporter-test-'));
  const outbox = openOutbox({ dir, maxBytes: 1 << 20 });
  if (!newStateDir) outbox.rebase(0);
  const registry = new Registry();
  const metrics = createReconcilerMetrics(registry);
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) });
  let containers: SnapshotContainer[] | null = [];
  // 5 s per request: on a loaded CI machine a loopback answer once took over 500 ms, the reporter
  // rightly sent the batch again, and counts of batches sent were off by one. Tests of timeouts set
  // their own.
  const reporter = createReporter({
    server, token: 'sekret', outbox, host: () => host, snapshot: () => containers, batchSize: 2, timeoutMs: 5000,
    backoffBaseMs: 5, backoffMaxMs: 20, rejectedBackoffMs: 50, fullSyncIntervalMs: 60_000, logger, metrics, ...extra,
  });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => outbox.close(), () => reporter.stop());
  return { outbox, registry, reporter, lines, setContainers: (c: SnapshotContainer[] | null) => (containers = c) };
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function untilAsync(cond: () => Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name)!;
  const v = (m.values as Array<{ labels: Record<string, string>; value: number }>).find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? NaN;
}

describe('reporter', () => {
  it('sends batches in seq order with the bearer token and compacts the outbox up to acked_seq', async () => {
    const fake = await new FakeServer().start();
    cleanups.push(() => fake.server.close());
    const { outbox, reporter, registry } = setup(fake.server.url);
    outbox.append([t(1), t(2), t(3), t(4), t(5)]);
    reporter.start();
    await until(() => outbox.depth() === 0 && reporter.state() === 'idle');
    expect(fake.batches.map((b) => b.transitions.length)).toEqual([2, 2, 1]);
    expect(fake.seqs()).toEqual([1, 2, 3, 4, 5]);
    expect(fake.batches[0].host).toEqual(host);
    expect(new Set(fake.auth)).toEqual(new Set(['Bearer sekret']));
    expect(outbox.ackedSeq()).toBe(5);
    expect(await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'success' })).toBe(3);
    expect(await metric(registry, 'ecs_id_mapper_reconciler_outbox_depth', {})).toBe(0);
  });

  it('sends the snapshot only once the outbox is drained, with seq = last acknowledged seq', async () => {
    const fake = await new FakeServer().start();
    cleanups.push(() => fake.server.close());
    const { outbox, reporter, setContainers } = setup(fake.server.url);
    setContainers([{ ...t(1).container, state: 'running' }]);
    outbox.append([t(1), t(2), t(3)]);
    reporter.start();
    await until(() => fake.snapshots.length === 1);
    expect(fake.snapshots[0].seq).toBe(3);
    expect(fake.snapshots[0].containers.map((c) => c.container_id)).toEqual([cid(1)]);
    expect(fake.held).toBe(3); // every transition arrived before the snapshot
  });

  it('sends a snapshot the server refused with a 5xx again after the backoff, not at the next full sync', async () => {
    const fake = await new FakeServer().start();
    cleanups.push(() => fake.server.close());
    // Full syncs an hour apart: only a retry can bring the snapshot within the test.
    const { reporter, setContainers, registry } = setup(fake.server.url, { fullSyncIntervalMs: 3_600_000 });
    setContainers([{ ...t(1).container, state: 'running' }]);
    fake.failWith = 503;
    reporter.start();
    await until(() => fake.auth.length >= 1);
    fake.failWith = null;
    await until(() => fake.snapshots.length === 1);
    expect(fake.snapshots[0].containers.map((c) => c.container_id)).toEqual([cid(1)]);
    expect(await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'snapshot', result: 'http_error' })).toBeGreaterThanOrEqual(1);
  });

  it('keeps the full sync every --full-sync-interval when the wall clock is set back (an NTP step)', async () => {
    const fake = await new FakeServer().start();
    cleanups.push(() => fake.server.close());
    // The daemon's own clocks, as main.ts wires them: nothing injected. Date.now is what an NTP step moves.
    const wall = Date.now.bind(Date);
    let offset = 0;
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => wall() + offset);
    cleanups.push(() => spy.mockRestore());
    const { reporter, setContainers } = setup(fake.server.url, { fullSyncIntervalMs: 200 });
    setContainers([{ ...t(1).container, state: 'running' }]);
    reporter.start();
    await until(() => fake.snapshots.length === 1);
    offset = -3_600_000;
    // The loop notifies the reporter after every pass.
    const passes = setInterval(() => reporter.notify(), 20);
    cleanups.push(() => clearInterval(passes));
    await until(() => fake.snapshots.length >= 2, 2000);
  });

  it('sends an empty batch instead of a snapshot while the loop says one would be incomplete, once per full sync', async () => {
    const fake = await new FakeServer().start();
    cleanups.push(() => fake.server.close());
    let clock = 1_000_000;
    const { reporter, setContainers, registry } = setup(fake.server.url, { now: () => clock, fullSyncIntervalMs: 300_000 });
    setContainers(null);
    reporter.start();
    await until(() => fake.batches.length === 1);
    expect(fake.batches[0]).toEqual({ host, transitions: [] });
    // Passes notify the reporter after every pass: nothing more until the next full sync is due.
    for (let i = 0; i < 5; i++) reporter.notify();
    await new Promise((r) => setTimeout(r, 50));
    expect(fake.batches.length).toBe(1);
    clock += 300_000;
    reporter.notify();
    await until(() => fake.batches.length === 2);
    expect(fake.snapshots).toEqual([]);
    // The fake has the batch before the reporter has its answer and counts it.
    await untilAsync(async () => (await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'success' })) === 2);
    // The agent answers again: the next full sync is a snapshot.
    setContainers([{ ...t(1).container, state: 'running' }]);
    clock += 300_000;
    reporter.notify();
    await until(() => fake.snapshots.length === 1);
    expect(fake.batches.length).toBe(2);
  });

  it('backs off on 503 and delivers everything exactly once when the server recovers', async () => {
    const fake = await new FakeServer().start();
    cleanups.push(() => fake.server.close());
    const { outbox, reporter, registry } = setup(fake.server.url);
    fake.failWith = 503;
    outbox.append([t(1), t(2), t(3)]);
    reporter.start();
    await until(() => fake.auth.length >= 3);
    expect(outbox.depth()).toBe(3);
    expect(['backingOff', 'sending']).toContain(reporter.state());
    fake.failWith = null;
    await until(() => outbox.depth() === 0);
    expect(fake.seqs()).toEqual([1, 2, 3]);
    expect(await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'http_error' })).toBeGreaterThanOrEqual(3);
  });

  it('logs failed reports when they start failing and when they are delivered again, not at every retry', async () => {
    const fake = await new FakeServer().start();
    cleanups.push(() => fake.server.close());
    const { outbox, reporter, registry, lines } = setup(fake.server.url);
    fake.failWith = 503;
    outbox.append([t(1)]);
    reporter.start();
    await until(() => fake.auth.length >= 4);
    fake.failWith = null;
    await until(() => outbox.depth() === 0);
    const failed = await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'http_error' });
    const about = lines.map((l) => JSON.parse(l) as { level: number; msg: string; occurrences?: number }).filter((l) => /report failed|delivered again/.test(l.msg));
    expect(about.map((l) => [l.level, l.msg.replace(/:.*/, ''), l.occurrences])).toEqual([
      [40, 'report failed, backing off', undefined],
      [30, 'reports are delivered again', failed],
    ]);
  });

  it('keeps a rejected batch (401), logs it, waits the long backoff before retrying, and says when the server takes reports again', async () => {
    const fake = await new FakeServer().start();
    cleanups.push(() => fake.server.close());
    const { outbox, reporter, lines, registry } = setup(fake.server.url, { rejectedBackoffMs: 200 });
    fake.failWith = 401;
    outbox.append([t(1)]);
    reporter.start();
    await until(() => reporter.state() === 'rejected');
    expect(outbox.depth()).toBe(1);
    const attemptsWhenRejected = fake.auth.length;
    await new Promise((r) => setTimeout(r, 60));
    expect(fake.auth.length).toBe(attemptsWhenRejected); // no fast retry
    expect(lines.some((l) => JSON.parse(l).level === 50 && JSON.parse(l).code === 'ERR_REPORT_REJECTED')).toBe(true);
    expect(await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'rejected' })).toBe(1);
    fake.failWith = null;
    await until(() => outbox.depth() === 0);
    expect(fake.seqs()).toEqual([1]);
    // The refusal ended (the token fixed): said once, as a transient failure's end is.
    const again = lines.map((l) => JSON.parse(l) as { level: number; msg: string; occurrences?: number }).filter((l) => l.msg.includes('takes this host'));
    expect(again.map((l) => [l.level, l.msg, l.occurrences])).toEqual([[30, "the server takes this host's reports again", 1]]);
  });

  it('narrows a batch refused with 400 down to the one line refused, delivers the lines before it, and sends whole batches once the line is taken', async () => {
    const fake = await new FakeServer().start();
    cleanups.push(() => fake.server.close());
    const { outbox, reporter, lines, registry } = setup(fake.server.url, { batchSize: 8, rejectedBackoffMs: 100 });
    fake.refuseSeq = 3;
    outbox.append(Array.from({ length: 12 }, (_, i) => t(i + 1)));
    reporter.start();
    await until(() => reporter.state() === 'rejected');

    // 1..8 refused, 1..4 refused, 1..2 taken; then 3..4 refused and 3 alone refused.
    expect(fake.seqs()).toEqual([1, 2]);
    expect(outbox.depth()).toBe(10);
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged.filter((l) => l.level === 40 && l.status === 400).map((l) => [l.first_seq, l.last_seq, l.batch_size])).toEqual([[1, 8, 4], [1, 4, 2], [3, 4, 1]]);
    const refused = logged.find((l) => l.level === 50 && l.status === 400)!;
    expect(refused).toMatchObject({ code: 'ERR_REPORT_REJECTED', seq: 3, container_id: cid(3), to: 'running', size: 1 });
    expect(refused.msg).toContain('seq 3 refused');
    expect(await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'rejected' })).toBe(4);

    // The server is fixed (upgraded): the line goes alone, then whole batches again, each line once.
    fake.refuseSeq = null;
    await until(() => outbox.depth() === 0);
    expect(fake.seqs()).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(fake.batches.map((b) => b.transitions.length)).toEqual([2, 1, 8, 1]);
  });

  describe('behind a proxy whose body limit is below the server\'s (its own 413 page)', () => {
    const proxy413 = async () => {
      const proxy = await startLoopback((req, res) => {
        req.resume();
        reply(res, 413, '<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>', 'text/html');
      });
      cleanups.push(() => proxy.close());
      return proxy;
    };

    it('names the proxy\'s limit, not the server\'s --body-limit, for a snapshot', async () => {
      const proxy = await proxy413();
      const { reporter, lines, setContainers } = setup(proxy.url, { token: undefined });
      setContainers([{ ...t(1).container, state: 'running' }]);
      reporter.start();
      await until(() => lines.some((l) => JSON.parse(l).status === 413));
      const refused = lines.map((l) => JSON.parse(l) as { level: number; kind?: string; status?: number; msg: string }).find((l) => l.status === 413)!;
      expect(refused).toMatchObject({ level: 50, kind: 'snapshot' });
      expect(refused.msg).toBe(
        "a proxy in front of the server refused this host's snapshot of 1 containers as too large (its answer is not the server's); transitions are still reported, the snapshot is tried again at the next full sync (raise the proxy's request body limit, e.g. nginx's client_max_body_size)",
      );
    });

    it('names the proxy\'s limit, not the server\'s --body-limit, while halving a batch of transitions', async () => {
      const proxy = await proxy413();
      const { outbox, reporter, lines } = setup(proxy.url, { token: undefined, batchSize: 2 });
      outbox.append([t(1), t(2)]);
      reporter.start();
      await until(() => lines.some((l) => JSON.parse(l).level === 40 && JSON.parse(l).status === 413));
      const halved = lines.map((l) => JSON.parse(l) as { level: number; status?: number; msg: string }).find((l) => l.level === 40 && l.status === 413)!;
      expect(halved.msg).toBe(
        "a proxy in front of the server refused 2 transitions as too large (its answer is not the server's); sending at most 1 per request from now on (raise the proxy's request body limit, e.g. nginx's client_max_body_size)",
      );
      expect(outbox.depth()).toBe(2);
    });
  });

  describe('against the real server with a small --body-limit', () => {
    /** The API server listening on loopback, refusing bodies over `bodyLimitBytes` with 413. */
    async function server(bodyLimitBytes: number) {
      const api = await buildTestApp({ bodyLimitBytes });
      await api.app.listen({ port: 0, host: '127.0.0.1' });
      cleanups.push(() => api.close());
      const { port } = api.app.server.address() as { port: number };
      return { api, url: new URL(`http://127.0.0.1:${port}/`) };
    }
    const oneTransitionBytes = JSON.stringify({ host, transitions: [{ ...t(1), seq: 1 }] }).length;

    it('halves a batch the server refuses as too large (413) until it fits, keeps that size, and delivers everything once, in order', async () => {
      // Room for two transitions and a half: batches of 8 → 4 → 2.
      const { api, url } = await server(Math.floor(oneTransitionBytes * 2.5));
      const { outbox, reporter, lines, registry, setContainers } = setup(url, { token: undefined, batchSize: 8 });
      setContainers(null); // no snapshot after the transitions (an empty batch instead): the history holds exactly what was sent
      outbox.append(Array.from({ length: 10 }, (_, i) => t(i + 1)));
      reporter.start();
      await until(() => outbox.depth() === 0 && reporter.state() === 'idle');
      for (let n = 1; n <= 10; n++) expect((await api.store.history(cid(n))).map((h) => h.seq), `container ${n}`).toEqual([n]);
      expect((await api.store.listHosts())[0].last_seq).toBe(10);
      const warnings = lines.map((l) => JSON.parse(l) as { level: number; status?: number; size?: number; batch_size?: number }).filter((l) => l.level === 40 && l.status === 413);
      expect(warnings.map((w) => [w.size, w.batch_size])).toEqual([[8, 4], [4, 2]]);
      expect(await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'rejected' })).toBe(2);
      // 5 batches (2 + 2 + 2 + 2 + 2), then the empty one in place of the snapshot.
      expect(await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'success' })).toBe(6);
    });

    it('keeps reporting transitions when the snapshot is over the limit, and tries the snapshot again at the next full sync', async () => {
      const { api, url } = await server(Math.floor(oneTransitionBytes * 2.5));
      let clock = 1_000_000;
      const { outbox, reporter, lines, registry, setContainers } = setup(url, { token: undefined, batchSize: 2, now: () => clock, fullSyncIntervalMs: 300_000 });
      setContainers(Array.from({ length: 20 }, (_, i) => ({ ...t(i + 1).container, state: 'running' as const })));
      reporter.start();
      await until(() => lines.some((l) => JSON.parse(l).kind === 'snapshot' && JSON.parse(l).status === 413));
      expect(await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'snapshot', result: 'rejected' })).toBe(1);
      // Not held behind the long backoff: the next transitions go out at once.
      outbox.append([t(21), t(22)]);
      reporter.notify();
      await until(() => outbox.depth() === 0);
      expect(reporter.state()).toBe('idle');
      expect((await api.store.history(cid(21))).map((h) => h.seq)).toEqual([1]);
      expect(await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'snapshot', result: 'rejected' })).toBe(1);
      // The next full sync tries again.
      clock += 300_000;
      reporter.notify();
      await until(() => lines.filter((l) => JSON.parse(l).kind === 'snapshot' && JSON.parse(l).status === 413).length === 2);
    });

    it('delivers a snapshot of thousands of containers whole, and logs the real size of one over the limit', async () => {
      const many = Array.from({ length: 3000 }, (_, i) => ({ ...t(i + 1).container, container_name: `caf\u00e9-${i}`, state: 'running' as const }));
      const big = await server(8 * 1024 * 1024);
      const first = setup(big.url, { token: undefined });
      first.setContainers(many);
      first.reporter.start();
      for (let waited = 0; (await big.api.store.getContainer(cid(3000))).kind !== 'found'; waited += 20) {
        expect(waited, 'snapshot applied').toBeLessThan(10_000);
        await new Promise((r) => setTimeout(r, 20));
      }
      const running = (await big.api.store.countByState()).filter((c) => c.state === 'running').reduce((n, c) => n + c.count, 0);
      expect(running).toBe(3000);
      expect(await big.api.store.getContainer(cid(1234))).toMatchObject({ kind: 'found', record: { container_name: 'caf\u00e9-1233' } });
      // Over a 64 KiB limit: refused with 413, logged with the size that was sent, not taken for a network failure.
      const small = await server(64 * 1024);
      const second = setup(small.url, { token: undefined });
      second.setContainers(many);
      second.reporter.start();
      await until(() => second.lines.some((l) => JSON.parse(l).kind === 'snapshot' && JSON.parse(l).status === 413), 10_000);
      const refused = second.lines.map((l) => JSON.parse(l) as { status?: number; bytes?: number; size?: number }).find((l) => l.status === 413)!;
      const sent = encodeSnapshot({ host, seq: 0, taken_at: new Date(0).toISOString() }, many).bytes;
      expect(refused.size).toBe(3000);
      expect(Math.abs(refused.bytes! - sent)).toBeLessThan(100); // the same containers; only taken_at may differ in length
      expect(await metric(second.registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'snapshot', result: 'rejected' })).toBe(1);
    });

    describe('from a new state dir (lost or wiped) on a host the server knows', () => {
      /** The server holds seqs 1..60 for the host: containers 1..60, each reported running once. */
      async function serverHolding(n: number) {
        const real = await server(1024 * 1024);
        await real.api.store.applyTransitions({ host, transitions: Array.from({ length: n }, (_, i) => ({ ...t(i + 1), seq: i + 1 })) }, new Date());
        return real;
      }

      it('delivers everything queued, numbered above the server\'s mark, and says why', async () => {
        const { api, url } = await serverHolding(60);
        const { outbox, reporter, lines, setContainers } = setup(url, { token: undefined, batchSize: 50 }, true);
        setContainers(null);
        // Numbered 1..80 by the new state dir: 1..60 would be replays to the server.
        outbox.append(Array.from({ length: 80 }, (_, i) => t(100 + i)));
        reporter.start();
        await until(() => outbox.depth() === 0 && reporter.state() === 'idle');
        for (let i = 0; i < 80; i++) expect((await api.store.history(cid(100 + i))).map((h) => h.seq), `container ${100 + i}`).toEqual([81 + i]);
        expect((await api.store.listHosts())[0].last_seq).toBe(160);
        const warning = lines.map((l) => JSON.parse(l) as { level: number; server_seq?: number; renumbered?: number; msg: string }).find((l) => l.server_seq !== undefined);
        expect(warning).toMatchObject({ level: 40, server_seq: 60, renumbered: 80 });
        expect(warning!.msg).toContain('was the state dir lost or wiped?');
      });

      it("marks gone, by its first snapshot, what the server still holds as live on a host that now runs nothing", async () => {
        const { api, url } = await serverHolding(3);
        const { reporter, setContainers, outbox } = setup(url, { token: undefined }, true);
        setContainers([]);
        // Without the mark, its snapshot carried seq 0 and the server skipped every record above it.
        reporter.start();
        await untilAsync(async () => ((await api.store.getContainer(cid(1))) as { record?: { state: string } }).record?.state === 'gone');
        for (const n of [1, 2, 3]) expect(((await api.store.getContainer(cid(n))) as { record: { state: string } }).record.state).toBe('gone');
        expect(outbox.lastSeq()).toBe(3);
      });

      it('numbers from 1 for a host the server has never seen (404)', async () => {
        const { api, url } = await server(1024 * 1024);
        const { outbox, reporter, setContainers } = setup(url, { token: undefined }, true);
        setContainers(null);
        outbox.append([t(1), t(2)]);
        reporter.start();
        await until(() => outbox.depth() === 0);
        expect((await api.store.history(cid(2))).map((h) => h.seq)).toEqual([2]);
        expect(outbox.serverSeqKnown()).toBe(true);
      });

      it('does not take a 404 that is not the server\'s "no such host" for one: --server with a wrong path, then fixed', async () => {
        const { api, url } = await serverHolding(60);
        const wrong = new URL('/mapper/', url);
        const first = setup(wrong, { token: undefined }, true);
        first.setContainers(null);
        first.outbox.append([t(100)]);
        first.reporter.start();
        await until(() => first.lines.some((l) => JSON.parse(l).code === 'ERR_REPORT_REJECTED'));
        // Our server answers a wrong path `no_route`: rejected, logged, and the mark still unknown.
        expect(first.outbox.serverSeqKnown()).toBe(false);
        expect(first.lines.map((l) => JSON.parse(l).msg as string).find((m) => m.includes('404'))).toContain('no_route');
        first.reporter.stop();
        // Fixed: the mark is asked for again, and the queued transition numbered above it.
        const fixed = createReporter({
          server: url, outbox: first.outbox, host: () => host, snapshot: () => null, batchSize: 50, timeoutMs: 5000,
          backoffBaseMs: 5, backoffMaxMs: 20, fullSyncIntervalMs: 60_000, logger: pino({ level: 'silent' }),
        });
        cleanups.push(() => fixed.stop());
        fixed.start();
        await until(() => first.outbox.depth() === 0);
        expect((await api.store.history(cid(100))).map((h) => h.seq)).toEqual([61]);
      });

      it("asks again for the mark when the state dir comes from another instance: its seqs are not this host's", async () => {
        // The server holds this host (i-0123456789abcdef0) up to seq 3, containers 1..3 live.
        const { api, url } = await serverHolding(3);
        // A state dir that reported for another instance up to seq 1, then moved here (a volume moved).
        const dir = mkdtempSync(join(tmpdir(), 'reporter-test-'));
        cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
        const before = openOutbox({ dir, maxBytes: 1 << 20 });
        before.claim('i-0aaaaaaaaaaaaaaaa');
        before.rebase(0);
        before.append([t(50)]);
        before.ack(1);
        before.close();
        const outbox = openOutbox({ dir, maxBytes: 1 << 20 });
        cleanups.push(() => outbox.close());
        expect(outbox.claim(host.instance_id).previous).toBe('i-0aaaaaaaaaaaaaaaa');
        const registry = new Registry();
        const reporter = createReporter({
          server: url, outbox, host: () => host, snapshot: () => [], batchSize: 2, timeoutMs: 5000,
          backoffBaseMs: 5, backoffMaxMs: 20, rejectedBackoffMs: 50, fullSyncIntervalMs: 60_000,
          logger: pino({ level: 'silent' }), metrics: createReconcilerMetrics(registry),
        });
        cleanups.push(() => reporter.stop());
        // This host now runs nothing: its first snapshot must mark gone what the server holds for it.
        reporter.start();
        await untilAsync(async () => ((await api.store.getContainer(cid(1))) as { record?: { state: string } }).record?.state === 'gone', 1500);
        for (const n of [1, 2, 3]) expect(((await api.store.getContainer(cid(n))) as { record: { state: string } }).record.state).toBe('gone');
        expect(outbox.lastSeq()).toBe(3);
      });
    });

    it('delivers a transition queued by a version that did not hold observations to the wire (a port range listed port by port)', async () => {
      const { api, url } = await server(1024 * 1024);
      const { outbox, reporter, setContainers } = setup(url, { token: undefined });
      setContainers(null);
      // As an earlier version queued it: 1,001 bindings of a port range, over the wire's 256.
      const old = t(1);
      const ports = Array.from({ length: 1001 }, (_, i) => ({ container_port: 8000 + i, host_port: 8000 + i, protocol: 'tcp' }));
      outbox.append([{ ...old, container: { ...old.container, ports } }, t(2)]);
      reporter.start();
      await until(() => outbox.depth() === 0 || reporter.state() === 'rejected');
      expect(reporter.state()).not.toBe('rejected');
      await until(() => outbox.depth() === 0);
      expect((await api.store.history(cid(1))).map((h) => h.seq)).toEqual([1]);
      expect((await api.store.history(cid(2))).map((h) => h.seq)).toEqual([2]);
      const stored = await api.store.getContainer(cid(1));
      expect(stored.kind === 'found' && stored.record.ports.length).toBe(256);
    });

    it('delivers the lines queued before one the real server refuses (a hand-edited state), and names that line', async () => {
      const { api, url } = await server(1 << 20);
      const { outbox, reporter, lines } = setup(url, { token: undefined, batchSize: 4 });
      outbox.append([t(1), { ...t(2), to: 'exploded' as Transition['to'] }, t(3)]);
      reporter.start();
      await until(() => reporter.state() === 'rejected');
      expect((await api.store.history(cid(1))).map((h) => h.seq)).toEqual([1]);
      expect(await api.store.history(cid(3))).toEqual([]);
      expect(outbox.depth()).toBe(2);
      const refused = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.level === 50)!;
      expect(refused).toMatchObject({ status: 400, seq: 2, container_id: cid(2), to: 'exploded' });
    });

    it('keeps a single transition over the limit queued and waits the long backoff, as for any rejection', async () => {
      const { api, url } = await server(Math.floor(oneTransitionBytes / 2));
      const { outbox, reporter, lines } = setup(url, { token: undefined, batchSize: 4 });
      outbox.append([t(1), t(2)]);
      reporter.start();
      await until(() => reporter.state() === 'rejected');
      expect(outbox.depth()).toBe(2);
      expect((await api.store.listHosts())).toEqual([]);
      expect(lines.some((l) => JSON.parse(l).level === 50 && JSON.parse(l).status === 413)).toBe(true);
    });
  });

  it('says how to trust a server behind a private CA when its certificate is not trusted, and keeps retrying', async () => {
    const https = await startSelfSignedHttps((_req, res) => res.writeHead(500).end());
    cleanups.push(() => https.close());
    const { outbox, reporter, lines, registry } = setup(new URL(https.url));
    outbox.append([t(1)]);
    reporter.start();
    await until(() => lines.some((l) => JSON.parse(l).level === 40));
    const warning = lines.map((l) => JSON.parse(l) as { level: number; code?: string; msg: string }).find((l) => l.level === 40)!;
    expect(warning.code).toBe('ERR_REPORT_UNREACHABLE');
    expect(warning.msg).toContain("the peer's TLS certificate is not trusted (DEPTH_ZERO_SELF_SIGNED_CERT); if it comes from a private CA, start with NODE_EXTRA_CA_CERTS=/path/to/ca.pem");
    expect(outbox.depth()).toBe(1);
    expect(await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'unreachable' })).toBeGreaterThan(0);
  });

  it('does not blame a line for a 400 that is not the server\'s (a proxy\'s page): the batch is kept whole and retried', async () => {
    const proxy = await startLoopback((req, res) => {
      req.resume();
      reply(res, 400, '<html><head><title>400 The plain HTTP request was sent to HTTPS port</title></head><body>nginx</body></html>', 'text/html');
    });
    cleanups.push(() => proxy.close());
    const { outbox, reporter, lines } = setup(proxy.url, { batchSize: 8 });
    outbox.append(Array.from({ length: 4 }, (_, i) => t(i + 1)));
    reporter.start();
    await until(() => reporter.state() === 'rejected');

    expect(proxy.requests.map((r) => r.method)).toEqual(['POST']);
    expect(outbox.depth()).toBe(4);
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged.filter((l) => l.status === 400).map((l) => [l.level, l.size, l.seq])).toEqual([[50, 4, undefined]]);
    // Named by its title, not quoted as markup.
    expect(logged.find((l) => l.level === 50)!.msg).toContain('HTTP 400: a page titled "400 The plain HTTP request was sent to HTTPS port", not the server\'s JSON: from a proxy or load balancer in front of it');
    expect(logged.find((l) => l.level === 50)!.msg).not.toContain('<');
  });

  it('names where a redirect points (an HTTP listener redirecting to HTTPS) and keeps the batch queued', async () => {
    const redirecting = await startLoopback((req, res) => {
      res.writeHead(301, { location: `https://mapper.example.com${req.url}`, 'content-type': 'text/html' }).end('<html><body><h1>301 Moved Permanently</h1></body></html>');
    });
    cleanups.push(() => redirecting.close());
    const { outbox, reporter, lines, registry } = setup(new URL(redirecting.url));
    outbox.append([t(1)]);
    reporter.start();
    await until(() => lines.some((l) => JSON.parse(l).level === 40));
    const warning = lines.map((l) => JSON.parse(l) as { level: number; code?: string; status?: number; msg: string }).find((l) => l.level === 40)!;
    expect(warning).toMatchObject({ code: 'ERR_REPORT_HTTP_STATUS', status: 301 });
    expect(warning.msg).toBe(
      `report failed, backing off: POST /v2/hosts/${host.instance_id}/transitions: HTTP 301, a redirect to https://mapper.example.com/v2/hosts/${host.instance_id}/transitions: set --server to the address it redirects to (reports never follow a redirect)`,
    );
    expect(outbox.depth()).toBe(1);
    expect(await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'http_error' })).toBeGreaterThan(0);
  });

  it('says an https:// --server names a plain HTTP port rather than quoting OpenSSL', async () => {
    const plain = await startLoopback((_req, res) => reply(res, 500, '{}'));
    cleanups.push(() => plain.close());
    const { outbox, reporter, lines, registry } = setup(new URL(`https://${plain.url.host}`));
    outbox.append([t(1)]);
    reporter.start();
    await until(() => lines.some((l) => JSON.parse(l).level === 40));
    const warning = lines.map((l) => JSON.parse(l) as { level: number; code?: string; msg: string }).find((l) => l.level === 40)!;
    expect(warning.code).toBe('ERR_REPORT_UNREACHABLE');
    expect(warning.msg).toBe(
      `report failed, backing off: POST /v2/hosts/${host.instance_id}/transitions: the peer does not speak TLS (ERR_SSL_WRONG_VERSION_NUMBER): does this https:// URL name a plain HTTP port?`,
    );
    expect(outbox.depth()).toBe(1);
    expect(await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'unreachable' })).toBeGreaterThan(0);
  });

  it('treats 429 and 408 as retryable, not as rejections', async () => {
    const fake = await new FakeServer().start();
    cleanups.push(() => fake.server.close());
    const { outbox, reporter } = setup(fake.server.url);
    fake.failWith = 429;
    outbox.append([t(1)]);
    reporter.start();
    await until(() => fake.auth.length >= 1 && reporter.state() !== 'sending');
    expect(reporter.state()).toBe('backingOff');
  });

  it('backs off while the outbox cannot be read back, logs it, and delivers once it can', async () => {
    const fake = await new FakeServer().start();
    cleanups.push(() => fake.server.close());
    const dir = mkdtempSync(join(tmpdir(), 'reporter-test-'));
    const real = openOutbox({ dir, maxBytes: 1 << 20 });
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => real.close());
    let unreadable = true;
    let refused = 0;
    const outbox: Outbox = {
      ...real,
      peek(max) {
        if (unreadable) {
          refused++;
          throw new OutboxWriteError('ERR_OUTBOX_READ', 'outbox read failed: EIO: i/o error, read', 'EIO');
        }
        return real.peek(max);
      },
    };
    const { reporter, lines, registry } = setup(fake.server.url, { outbox });
    outbox.append([t(1), t(2), t(3)]);
    reporter.start();
    await until(() => refused >= 2);
    expect(reporter.state()).not.toBe('idle');
    expect(fake.batches).toEqual([]);
    expect(lines.some((l) => JSON.parse(l).level === 50 && JSON.parse(l).msg === 'reading the outbox failed')).toBe(true);
    expect(await metric(registry, 'ecs_id_mapper_reconciler_outbox_write_errors_total', { code: 'ERR_OUTBOX_READ' })).toBeGreaterThanOrEqual(2);
    unreadable = false;
    await until(() => real.depth() === 0 && reporter.state() === 'idle');
    expect(fake.seqs()).toEqual([1, 2, 3]);
  });

  it('backs off when the server refuses connections', async () => {
    const port = await refusedPort();
    const { outbox, reporter, registry } = setup(new URL(`http://127.0.0.1:${port}`));
    outbox.append([t(1)]);
    reporter.start();
    await until(() => reporter.state() === 'backingOff');
    expect(outbox.depth()).toBe(1);
    expect(await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'unreachable' })).toBeGreaterThanOrEqual(1);
  });

  it('times out a server that never answers and keeps the batch', async () => {
    const hanging = await startLoopback(() => {});
    cleanups.push(() => hanging.close());
    const { outbox, reporter, registry } = setup(hanging.url, { timeoutMs: 50 });
    outbox.append([t(1)]);
    reporter.start();
    await until(() => reporter.state() === 'backingOff');
    expect(outbox.depth()).toBe(1);
    expect(await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'timeout' })).toBeGreaterThanOrEqual(1);
  });

  it('backs off instead of spinning when the server acknowledges less than it was sent', async () => {
    const stingy = await startLoopback((req, res) => {
      req.resume();
      req.on('end', () => reply(res, 200, JSON.stringify({ applied: 0, duplicates: 0, acked_seq: 0 })));
    });
    cleanups.push(() => stingy.close());
    const { outbox, reporter } = setup(stingy.url);
    outbox.append([t(1)]);
    reporter.start();
    await until(() => reporter.state() === 'backingOff');
    expect(outbox.depth()).toBe(1);
  });

  it('takes no acked_seq beyond what a sequence number can hold, which would have wedged the outbox for good', async () => {
    // A 2xx whose acked_seq no server can hold (a proxy's or a broken replica's answer), then the real thing.
    const fake = await new FakeServer().start();
    cleanups.push(() => fake.server.close());
    let bogus = 1;
    const front = await startLoopback((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const forward = () =>
          fetch(new URL(req.url!, fake.server.url), { method: req.method, headers: { 'content-type': 'application/json' }, ...(body ? { body } : {}) }).then(async (r) => reply(res, r.status, await r.text()))
            // The full sync may still be on its way when the test ends and closes the fake server.
            .catch(() => res.destroy());
        // Only transition batches are tampered with; the full sync that follows a drained outbox passes through.
        if (!req.url!.endsWith('/transitions')) return void forward();
        const batch = JSON.parse(body) as TransitionBatch;
        if (batch.transitions.some((x) => !Number.isSafeInteger(x.seq))) return reply(res, 400, JSON.stringify({ error: 'bad_request', message: 'seq' }));
        if (bogus-- > 0) return reply(res, 200, JSON.stringify({ applied: 0, duplicates: 0, acked_seq: 1e300 }));
        void forward();
      });
    });
    cleanups.push(() => front.close());
    const { outbox, reporter, registry } = setup(front.url);
    outbox.append([t(1), t(2), t(3)]);
    reporter.start();
    await until(() => outbox.depth() === 0, 2000);
    expect(fake.seqs()).toEqual([1, 2, 3]);
    expect(outbox.lastSeq()).toBe(3);
    expect(await metric(registry, 'ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'bad_response' })).toBe(1);
  });

  it('sends nothing before the host is identified', async () => {
    const fake = await new FakeServer().start();
    cleanups.push(() => fake.server.close());
    const { outbox, reporter } = setup(fake.server.url, { host: () => null });
    outbox.append([t(1)]);
    reporter.start();
    await new Promise((r) => setTimeout(r, 50));
    expect(fake.auth).toEqual([]);
    expect(reporter.state()).toBe('idle');
  });

  it('flush resolves true once everything queued is delivered', async () => {
    const fake = await new FakeServer().start();
    cleanups.push(() => fake.server.close());
    const { outbox, reporter } = setup(fake.server.url);
    reporter.start();
    outbox.append([t(1), t(2), t(3)]);
    expect(await reporter.flush(2000)).toBe(true);
    expect(fake.seqs()).toEqual([1, 2, 3]);
  });
});

describe('reporter: seqs the server holds for other transitions (a second daemon on this instance)', () => {
  async function server() {
    const api = await buildTestApp({ bodyLimitBytes: 1 << 20 });
    await api.app.listen({ port: 0, host: '127.0.0.1' });
    cleanups.push(() => api.close());
    const { port } = api.app.server.address() as { port: number };
    return { api, url: new URL(`http://127.0.0.1:${port}/`) };
  }
  const conflictErrors = (lines: string[]) =>
    lines.map((l) => JSON.parse(l) as { level: number; msg: string; conflicts?: number }).filter((l) => l.level === 50 && l.msg.includes('a second reconciler reports instance'));

  it('logs one error for a run of answers with conflicts, saying what they mean, and one more when a new run starts', async () => {
    const { api, url } = await server();
    // Two state dirs on one instance, both numbering from the same mark.
    const first = setup(url, { token: undefined });
    const second = setup(url, { token: undefined });
    first.setContainers(null);
    second.setContainers(null);
    const deliver = async (daemon: ReturnType<typeof setup>, transitions: PendingTransition[]) => {
      daemon.outbox.append(transitions);
      daemon.reporter.notify();
      await until(() => daemon.outbox.depth() === 0 && daemon.reporter.state() === 'idle');
    };
    first.reporter.start();
    second.reporter.start();
    await deliver(first, [t(1), t(2), t(3), t(4)]);

    // Two batches of two, each seq held for another container: one run, one error.
    await deliver(second, [t(11), t(12), t(13), t(14)]);
    const errors = conflictErrors(second.lines);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ conflicts: 2, msg: expect.stringContaining('or this state dir was restored from an old copy') });
    expect(await api.store.history(cid(11))).toEqual([]);

    // Acknowledged up to the server's mark, the outbox numbers above it: taken, and the run is over.
    await deliver(second, [t(15)]);
    expect((await api.store.history(cid(15))).map((h) => h.seq)).toEqual([5]);
    expect(conflictErrors(first.lines)).toEqual([]);

    // The first daemon now meets the second's seq 5, and moves above it; the second then meets the first's seq 6.
    await deliver(first, [t(5)]);
    expect(conflictErrors(first.lines)).toHaveLength(1);
    await deliver(first, [t(6)]);
    await deliver(second, [t(16)]);
    expect(conflictErrors(second.lines)).toHaveLength(2);
    expect((await api.store.history(cid(6))).map((h) => h.seq)).toEqual([6]);
    expect(await api.store.history(cid(16))).toEqual([]);
  });
});
