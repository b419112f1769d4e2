// The per-host rate limit on report routes (@fastify/rate-limit, keyed by the reporting instance id,
// else the client address): one noisy host gets 429 JSON with Retry-After once over its limit and
// what it sent then is not stored, while other hosts' reports still get through and reads are never
// limited. Unauthenticated requests naming a host cannot use up that host's allowance.
import { afterEach, describe, expect, it } from 'vitest';
import { agentEntry, agentMap, buildTestApp, type TestApp } from '../../api/test-helpers.js';
import { batch, containerId, hostIdentity, instanceId, snapshot, snapshotContainer, taskArn, taskId, transition } from '../../storage/store.fixtures.js';

const LIMIT = 5;
const NOISY = instanceId('noisy');
const QUIET = instanceId('quiet');

let t: TestApp;

afterEach(async () => {
  await t?.close();
});

const transitions = (host: string, seq: number) =>
  batch(hostIdentity({ instance_id: host }), [transition(seq, 'running', { container: { container_id: containerId(`${host}-${seq}`), task_arn: taskArn(taskId(`${host}-${seq}`)) } })]);

function expect429(res: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, what: string): void {
  expect(res.statusCode, what).toBe(429);
  expect(res.headers['content-type'], what).toMatch(/^application\/json/);
  expect(res.json(), what).toEqual({ error: 'rate_limited', message: expect.any(String) });
  expect(Number(res.headers['retry-after']), what).toBeGreaterThan(0);
}

describe('per-host report rate limit', () => {
  it('answers the noisy host 429 JSON after its limit, stores nothing it sent then, and still takes the quiet host', async () => {
    t = await buildTestApp({ reportRateLimitPerMinute: LIMIT });
    for (let seq = 1; seq <= LIMIT; seq++) {
      const res = await t.app.inject({ method: 'POST', url: `/v2/hosts/${NOISY}/transitions`, payload: transitions(NOISY, seq) });
      expect(res.statusCode, `request ${seq}`).toBe(200);
    }
    for (let seq = LIMIT + 1; seq <= LIMIT + 20; seq++) {
      const res = await t.app.inject({ method: 'POST', url: `/v2/hosts/${NOISY}/transitions`, payload: transitions(NOISY, seq) });
      expect429(res, `request ${seq}`);
      expect((await t.store.getContainer(containerId(`${NOISY}-${seq}`))).kind).toBe('missing');
    }
    for (let seq = 1; seq <= LIMIT; seq++) {
      const res = await t.app.inject({ method: 'POST', url: `/v2/hosts/${QUIET}/transitions`, payload: transitions(QUIET, seq) });
      expect(res.statusCode, `quiet host request ${seq}`).toBe(200);
    }
    expect((await t.store.listHosts()).find((h) => h.instance_id === NOISY)?.last_seq).toBe(LIMIT);
    expect((await t.store.listHosts()).find((h) => h.instance_id === QUIET)?.last_seq).toBe(LIMIT);
  });

  it('limits a broken daemon that keeps sending invalid reports too, without starving the others', async () => {
    t = await buildTestApp({ reportRateLimitPerMinute: LIMIT });
    const broken = { ...transitions(NOISY, 1), transitions: [{ seq: 'one' }] };
    const statuses: number[] = [];
    for (let i = 0; i < LIMIT * 4; i++) {
      statuses.push((await t.app.inject({ method: 'POST', url: `/v2/hosts/${NOISY}/transitions`, payload: broken })).statusCode);
    }
    expect(statuses.slice(0, LIMIT)).toEqual(Array(LIMIT).fill(400));
    expect(statuses.slice(LIMIT)).toEqual(Array(LIMIT * 3).fill(429));
    expect((await t.app.inject({ method: 'POST', url: `/v2/hosts/${QUIET}/transitions`, payload: transitions(QUIET, 1) })).statusCode).toBe(200);
  });

  it('does not limit reads: lookups keep answering while the noisy host is limited', async () => {
    t = await buildTestApp({ reportRateLimitPerMinute: LIMIT });
    for (let seq = 1; seq <= LIMIT + 1; seq++) await t.app.inject({ method: 'POST', url: `/v2/hosts/${NOISY}/transitions`, payload: transitions(NOISY, seq) });
    for (let i = 0; i < LIMIT * 4; i++) {
      expect((await t.app.inject({ url: `/v2/lookup/${containerId(`${NOISY}-1`)}` })).statusCode).toBe(200);
      expect((await t.app.inject({ url: '/v2/containers' })).statusCode).toBe(200);
    }
  });

  it('keys snapshots by the URL host', async () => {
    t = await buildTestApp({ reportRateLimitPerMinute: LIMIT });
    const put = (host: string, seq: number) =>
      t.app.inject({ method: 'PUT', url: `/v2/hosts/${host}/snapshot`, payload: snapshot(hostIdentity({ instance_id: host }), seq, [snapshotContainer('running', { container_id: containerId(`${host}-snap-${seq}`) })]) });
    for (let seq = 1; seq <= LIMIT; seq++) expect((await put(NOISY, seq)).statusCode).toBe(200);
    expect429(await put(NOISY, LIMIT + 1), 'noisy snapshot');
    expect((await t.store.getContainer(containerId(`${NOISY}-snap-${LIMIT + 1}`))).kind).toBe('missing');
    expect((await put(QUIET, 1)).statusCode).toBe(200);
  });

  it("keys the original agent's map by the instance id inside it, even from one shared address", async () => {
    t = await buildTestApp({ reportRateLimitPerMinute: LIMIT });
    const map = (host: string, n: number) =>
      t.app.inject({
        method: 'POST',
        url: '/report/map',
        remoteAddress: '10.0.0.9',
        payload: agentMap([agentEntry({ container_id: containerId(`${host}-map-${n}`), task_id: `prod/${taskId(`${host}-map-${n}`)}`, instance_id: host })]),
      });
    for (let n = 1; n <= LIMIT; n++) expect((await map(NOISY, n)).statusCode).toBe(200);
    expect429(await map(NOISY, LIMIT + 1), 'noisy map');
    expect((await t.store.getContainer(containerId(`${NOISY}-map-${LIMIT + 1}`))).kind).toBe('missing');
    expect((await map(QUIET, 1)).statusCode).toBe(200);
    expect((await t.store.getContainer(containerId(`${QUIET}-map-1`))).kind).toBe('found');
  });

  it('keys legacy events (which name no host) by client address', async () => {
    t = await buildTestApp({ reportRateLimitPerMinute: LIMIT });
    const event = (remoteAddress: string) => t.app.inject({ method: 'POST', url: '/report/event', remoteAddress, payload: { event_id: 'a'.repeat(64), event: 'added', timestamp: 1767225600 } });
    for (let n = 1; n <= LIMIT; n++) expect((await event('10.0.0.1')).statusCode).toBe(200);
    expect429(await event('10.0.0.1'), 'noisy address');
    expect((await event('10.0.0.2')).statusCode).toBe(200);
  });

  it("does not let unauthenticated requests naming a host use up that host's allowance", async () => {
    t = await buildTestApp({ reportRateLimitPerMinute: LIMIT, reportToken: 'tok' });
    for (let i = 0; i < LIMIT * 4; i++) {
      const res = await t.app.inject({ method: 'POST', url: `/v2/hosts/${NOISY}/transitions`, payload: transitions(NOISY, 1), headers: { authorization: 'Bearer spoofed' } });
      expect(res.statusCode).toBe(401);
    }
    for (let seq = 1; seq <= LIMIT; seq++) {
      const res = await t.app.inject({ method: 'POST', url: `/v2/hosts/${NOISY}/transitions`, payload: transitions(NOISY, seq), headers: { authorization: 'Bearer tok' } });
      expect(res.statusCode, `authenticated request ${seq}`).toBe(200);
    }
  });

  it('counts limited reports as rejected in reports_received_total', async () => {
    t = await buildTestApp({ reportRateLimitPerMinute: 1 });
    await t.app.inject({ method: 'POST', url: `/v2/hosts/${NOISY}/transitions`, payload: transitions(NOISY, 1) });
    expect((await t.app.inject({ method: 'POST', url: `/v2/hosts/${NOISY}/transitions`, payload: transitions(NOISY, 2) })).statusCode).toBe(429);
    const metrics = (await t.app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(/ecs_id_mapper_reports_received_total\{[^}]*kind="transitions"[^}]*result="ok"[^}]*\} 1/);
    expect(metrics).toMatch(/ecs_id_mapper_reports_received_total\{[^}]*kind="transitions"[^}]*result="rejected"[^}]*\} 1/);
  });
});
