// The v2 report and read routes through inject(), on the real SQLite store.
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  batch,
  containerId,
  hostIdentity,
  instanceId,
  iso,
  observation,
  snapshot,
  snapshotContainer,
  taskArn,
  taskId,
  transition,
} from '../storage/store.fixtures.js';
import { openStore } from '../storage/index.js';
import type { Store } from '../storage/store.js';
import { agentEntry, agentMap, buildTestApp, type TestApp } from './test-helpers.js';

let t: TestApp;
const host = hostIdentity({ instance_id: instanceId('v2') });
const C1 = containerId('one');
const C2 = containerId('two');
const TASK = taskId('web');
const ARN = taskArn(TASK);

beforeEach(async () => {
  t = await buildTestApp();
});
afterEach(async () => {
  await t.close();
});

const post = (url: string, payload: unknown) => t.app.inject({ method: 'POST', url, payload: payload as object });
const put = (url: string, payload: unknown) => t.app.inject({ method: 'PUT', url, payload: payload as object });
const get = (url: string) => t.app.inject({ method: 'GET', url });

function seedBatch() {
  return batch(host, [
    transition(1, 'running', { from: null, container: { container_id: C1, task_arn: ARN, docker_name: 'ecs-web-3-app-aa11' } }),
    transition(2, 'pending', { from: null, container: { container_id: C2, task_arn: ARN, container_name: 'proxy', docker_name: 'ecs-web-3-proxy-bb22' } }),
    transition(3, 'running', { from: 'pending', container: { container_id: C2, task_arn: ARN, container_name: 'proxy', docker_name: 'ecs-web-3-proxy-bb22' } }),
  ]);
}

describe('POST /v2/hosts/:instance_id/transitions', () => {
  it('applies a batch and acknowledges a replay of it as duplicates without changing anything', async () => {
    const first = await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());
    expect(first.statusCode).toBe(200);
    expect(first.json()).toEqual({ applied: 3, duplicates: 0, conflicts: 0, acked_seq: 3 });
    const historyBefore = await t.store.history(C2);
    const replay = await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());
    expect(replay.json()).toEqual({ applied: 0, duplicates: 3, conflicts: 0, acked_seq: 3 });
    expect(await t.store.history(C2)).toEqual(historyBefore);
  });

  describe('a seq the host already sent for another transition (two daemons, or a restored state dir)', () => {
    const lines: string[] = [];
    const C3 = containerId('three');
    const secondDaemon = () => batch(host, [transition(3, 'running', { from: null, container: { container_id: C3 } }), transition(4, 'running', { from: null, container: { container_id: C3 } })]);
    const seqConflicts = async () => {
      const text = await t.registry.metrics();
      return Number(text.split('\n').find((l) => l.startsWith('ecs_id_mapper_report_seq_conflicts_total '))?.split(' ')[1]);
    };
    const warnings = () =>
      lines.map((l) => JSON.parse(l) as Record<string, unknown> & { level: number; msg: string }).filter((l) => l.level === 40 && l.msg.includes('already sent for other transitions'));

    beforeEach(async () => {
      lines.length = 0;
      await t.close();
      t = await buildTestApp({ logger: pino({ level: 'info' }, { write: (line: string) => lines.push(line) }) });
      await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());
    });

    it('is acknowledged with the conflicts counted apart from duplicates, and the stored history kept', async () => {
      const historyBefore = await t.store.history(C2);
      const res = await post(`/v2/hosts/${host.instance_id}/transitions`, secondDaemon());
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ applied: 1, duplicates: 0, conflicts: 1, acked_seq: 4 });
      expect(await t.store.history(C2)).toEqual(historyBefore);
      expect((await t.store.history(C3)).map((h) => h.seq)).toEqual([4]);
    });

    it('counts each conflict in ecs_id_mapper_report_seq_conflicts_total, which starts at 0', async () => {
      expect(await seqConflicts()).toBe(0);
      await post(`/v2/hosts/${host.instance_id}/transitions`, batch(host, [transition(2, 'running', { container: { container_id: C3 } }), transition(3, 'running', { container: { container_id: C3 } })]));
      expect(await seqConflicts()).toBe(2);
      await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());
      expect(await seqConflicts()).toBe(2);
    });

    it('logs a warning naming the host, the seq and both containers, once a minute per host', async () => {
      await post(`/v2/hosts/${host.instance_id}/transitions`, secondDaemon());
      await post(`/v2/hosts/${host.instance_id}/transitions`, secondDaemon());
      expect(warnings()).toHaveLength(1);
      const [w] = warnings();
      expect(w).toMatchObject({
        instance_id: host.instance_id,
        conflicts: 1,
        seq: 3,
        stored: { container_id: C2, from: 'pending', to: 'running' },
        reported: { container_id: C3, from: null, to: 'running' },
      });
      expect(w.msg).toContain(`seq 3: held for container ${C2}`);
      expect(w.msg).toContain(`reported for container ${C3}`);
      t.setNow(new Date(Date.parse('2026-01-01T00:10:00.000Z') + 61_000));
      await post(`/v2/hosts/${host.instance_id}/transitions`, secondDaemon());
      expect(warnings()).toHaveLength(2);
      expect(warnings()[1]).toMatchObject({ repeats_not_logged: 1 });
    });
  });

  it('stores null fields as null (no coercion of a JSON null to "" or 0)', async () => {
    const nullHost = hostIdentity({ instance_id: host.instance_id, cluster: null, instance_ip: null });
    const res = await post(`/v2/hosts/${host.instance_id}/transitions`, batch(nullHost, [
      transition(1, 'running', { container: { container_id: C1, docker_name: null, image: null, task_arn: null, exit_code: null, started_at: null } }),
    ]));
    expect(res.statusCode).toBe(200);
    const view = (await get(`/v2/lookup/${C1}`)).json().containers[0];
    expect(view).toMatchObject({ docker_name: null, image: null, task_arn: null, task_id: null, exit_code: null, cluster: null, instance_ip: null, links: [] });
  });

  it('answers 400 for a seq given twice in one batch, which the store would drop as a replay', async () => {
    const [first, second] = seedBatch().transitions;
    const res = await post(`/v2/hosts/${host.instance_id}/transitions`, batch(host, [first, { ...second, seq: first.seq }]));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'bad_request', message: `seq ${first.seq} appears twice in the batch` });
    expect((await t.store.getContainer(C1)).kind).toBe('missing');
  });

  it('keeps a leap second as the last millisecond before it, and answers 400 for a time past the year 9999', async () => {
    const [first] = seedBatch().transitions;
    const leap = await post(`/v2/hosts/${host.instance_id}/transitions`, batch(host, [{ ...first, at: '2016-12-31T23:59:60Z' }]));
    expect(leap.statusCode).toBe(200);
    expect((await t.store.history(C1)).map((h) => h.at)).toEqual(['2016-12-31T23:59:59.999Z']);
    const far = await put(`/v2/hosts/${host.instance_id}/snapshot`, { ...snapshot(host, 1, []), taken_at: '9999-12-31T23:59:59-23:59' });
    expect(far.statusCode).toBe(400);
    expect(far.json()).toEqual({ error: 'bad_request', message: '"9999-12-31T23:59:59-23:59" is outside the years 0000-9999' });
  });

  it('answers 400 when the URL names another host than the body', async () => {
    const res = await post(`/v2/hosts/${instanceId('other')}/transitions`, seedBatch());
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'bad_request', message: expect.stringContaining('differs') });
    expect((await t.store.getContainer(C1)).kind).toBe('missing');
  });

  it('takes an empty batch as a heartbeat from a daemon whose agent fails: the host stays fresh, its records as they were', async () => {
    await t.close();
    t = await buildTestApp({ hostGoneAfterMs: 60 * 60_000 });
    t.setNow(new Date(iso(0)));
    await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());
    t.setNow(new Date(iso(50)));
    const res = await post(`/v2/hosts/${host.instance_id}/transitions`, { host, transitions: [] });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ applied: 0, duplicates: 0, conflicts: 0, acked_seq: 3 });
    t.setNow(new Date(iso(61))); // 61 minutes after the last transitions, 11 after the heartbeat
    const [view] = (await get('/v2/hosts')).json().hosts;
    expect(view).toMatchObject({ instance_id: host.instance_id, stale: false, retired: false, last_seq: 3 });
    expect((await get(`/v2/lookup/${C1}`)).json().containers[0].state).toBe('running');
  });

  it.each([
    ['an instance id of the wrong shape in the URL', (b: ReturnType<typeof seedBatch>) => b, '/v2/hosts/not-an-instance/transitions'],
    ['an unknown state', (b: ReturnType<typeof seedBatch>) => ({ ...b, transitions: [{ ...b.transitions[0], to: 'exploded' }] }), undefined],
    ['an unknown field', (b: ReturnType<typeof seedBatch>) => ({ ...b, extra: 1 }), undefined],
    ['a container id that differs from the observation', (b: ReturnType<typeof seedBatch>) => ({ ...b, transitions: [{ ...b.transitions[0], container_id: C2 }] }), undefined],
    ['a seq past 2^53 - 1', (b: ReturnType<typeof seedBatch>) => ({ ...b, transitions: [{ ...b.transitions[0], seq: 1e300 }] }), undefined],
    ['an exit code past 32 bits', (b: ReturnType<typeof seedBatch>) => ({ ...b, transitions: [{ ...b.transitions[0], container: { ...b.transitions[0].container, exit_code: 2 ** 31 } }] }), undefined],
  ])('answers 400 JSON for %s', async (_name, mutate, url) => {
    const res = await post(url ?? `/v2/hosts/${host.instance_id}/transitions`, mutate(seedBatch()));
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toBe('bad_request');
  });
});

describe('PUT /v2/hosts/:instance_id/snapshot', () => {
  it('replaces the host state: containers absent from the snapshot become gone', async () => {
    await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());
    const res = await put(`/v2/hosts/${host.instance_id}/snapshot`, snapshot(host, 3, [snapshotContainer('running', { container_id: C1, task_arn: ARN })]));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ gone: 1 });
    const c2 = await t.store.getContainer(C2);
    expect(c2.kind === 'found' && c2.record.state).toBe('gone');
  });

  it('answers 400 when the URL names another host, or a container appears twice', async () => {
    const snap = snapshot(host, 1, [snapshotContainer('running', { container_id: C1 })]);
    expect((await put(`/v2/hosts/${instanceId('x')}/snapshot`, snap)).statusCode).toBe(400);
    const twice = snapshot(host, 1, [snapshotContainer('running', { container_id: C1 }), snapshotContainer('running', { container_id: C1 })]);
    expect((await put(`/v2/hosts/${host.instance_id}/snapshot`, twice)).statusCode).toBe(400);
  });
});

describe('GET /v2/lookup/:id', () => {
  beforeEach(async () => {
    await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());
  });

  it.each([
    ['a full container id', () => C1, 'container_id', [C1]],
    ['a 12-hex prefix', () => C1.slice(0, 12), 'container_prefix', [C1]],
    ['a task id', () => TASK, 'task_id', [C1, C2].sort()],
    ['a URL-encoded task ARN', () => encodeURIComponent(ARN), 'task_arn', [C1, C2].sort()],
    ['a docker name', () => 'ecs-web-3-proxy-bb22', 'docker_name', [C2]],
  ])('finds %s', async (_name, id, kind, ids) => {
    const res = await get(`/v2/lookup/${id()}`);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.kind).toBe(kind);
    expect(body.containers.map((c: { container_id: string }) => c.container_id)).toEqual(ids);
    expect(body.containers[0].links[0]).toEqual({ name: 'cadvisor', url: `http://10.0.1.17:8080/docker/${body.containers[0].container_id}` });
  });

  it('also finds a task ARN sent without URL-encoding', async () => {
    const res = await get(`/v2/lookup/${ARN}`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ kind: 'task_arn', query: ARN });
  });

  it('finds a task ARN whose task id is written in upper case, keeping the cluster name as sent', async () => {
    const upper = ARN.replace(/[^/]*$/, (id) => id.toUpperCase());
    const res = await get(`/v2/lookup/${encodeURIComponent(upper)}`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ kind: 'task_arn', query: ARN, containers: [{ container_id: [C1, C2].sort()[0] }, {}] });
    // The cluster name is case-sensitive in ECS: another case is another cluster.
    const otherCluster = ARN.replace(/task\/([^/]+)\//, (_m, c: string) => `task/${c.toUpperCase()}/`);
    expect(otherCluster).not.toBe(ARN);
    expect((await get(`/v2/lookup/${encodeURIComponent(otherCluster)}`)).json()).toMatchObject({ error: 'not_found' });
  });

  it('treats a 32-hex id as a task first, then as a container prefix', async () => {
    const res = await get(`/v2/lookup/${C1.slice(0, 32)}`);
    expect(res.json()).toMatchObject({ kind: 'container_prefix', containers: [{ container_id: C1 }] });
  });

  it('answers 404, 409 and 400 JSON', async () => {
    expect((await get(`/v2/lookup/${'d'.repeat(64)}`)).json()).toMatchObject({ error: 'not_found' });
    expect((await get(`/v2/lookup/${encodeURIComponent('arn:aws:ecs:us-east-1:1:task/nope')}`)).statusCode).toBe(400);
    expect((await get(`/v2/lookup/${encodeURIComponent('a b/c')}`)).json()).toMatchObject({ error: 'bad_request' });
    const twins = batch(host, [
      transition(10, 'running', { from: null, container: { container_id: `abcabcabcabc${'1'.repeat(52)}` } }),
      transition(11, 'running', { from: null, container: { container_id: `abcabcabcabc${'2'.repeat(52)}` } }),
    ]);
    await post(`/v2/hosts/${host.instance_id}/transitions`, twins);
    const amb = await get('/v2/lookup/abcabcabcabc');
    expect(amb.statusCode).toBe(409);
    expect(amb.json().candidates).toHaveLength(2);
    expect(amb.json().message).toBe('container id prefix "abcabcabcabc" matches 2 containers');
  });

  it('says an ambiguous prefix matches more containers than the 20 it lists, not that it matches 20', async () => {
    const ids = Array.from({ length: 25 }, (_, i) => `abcabcabcabc${i.toString(16).padStart(2, '0')}${'3'.repeat(50)}`);
    await post(`/v2/hosts/${host.instance_id}/transitions`, batch(host, ids.map((id, i) => transition(10 + i, 'running', { from: null, container: { container_id: id } }))));
    for (const url of ['/v2/lookup/abcabcabcabc', '/v2/containers/abcabcabcabc/history', '/query/container_id/abcabcabcabc']) {
      const res = await get(url);
      expect(res.statusCode, url).toBe(409);
      expect(res.json(), url).toEqual({
        error: 'ambiguous',
        message: 'container id prefix "abcabcabcabc" matches more than 20 containers (the first 20 are listed)',
        candidates: ids.slice(0, 20),
        more_candidates: true,
      });
    }
  });
});

describe('GET /v2/lookup/:id, over-long ids', () => {
  it('names the id, not the catch-all route, when an id is over 2048 characters', async () => {
    for (const id of ['a'.repeat(2049), `arn:aws:ecs:us-east-1:123456789012:task/${'b'.repeat(2100)}`]) {
      const res = await get(`/v2/lookup/${id}`);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: 'bad_request', message: 'params/id must not have more than 2048 characters' });
    }
  });
});

describe('GET /v2/containers', () => {
  beforeEach(async () => {
    await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());
  });

  it('pages through the filtered containers with next_cursor', async () => {
    const first = (await get(`/v2/containers?cluster=prod&state=running&limit=1`)).json();
    expect(first.items).toHaveLength(1);
    expect(first.next_cursor).toEqual(expect.any(String));
    const second = (await get(`/v2/containers?cluster=prod&state=running&limit=1&cursor=${encodeURIComponent(first.next_cursor)}`)).json();
    expect([first.items[0].container_id, second.items[0].container_id]).toEqual([C1, C2].sort());
    expect((await get(`/v2/containers?state=stopped`)).json()).toEqual({ items: [], next_cursor: null });
  });

  it('answers 400 for a bad state, a limit out of range, or a cursor it did not issue', async () => {
    const state = await get('/v2/containers?state=exploded');
    expect(state.statusCode).toBe(400);
    expect(state.json().message).toBe('querystring/state must be one of "pending", "running", "stopping", "stopped", "gone"');
    expect((await get('/v2/containers?limit=0')).statusCode).toBe(400);
    expect((await get('/v2/containers?limit=abc')).statusCode).toBe(400);
    // Not read as 1, 16 or 100: a limit is a plain decimal integer.
    for (const loose of ['1.9', '0x10', '1e2']) {
      const res = await get(`/v2/containers?limit=${loose}`);
      expect(res.statusCode).toBe(400);
      expect(res.json().message).toBe('querystring/limit must be integer');
    }
    const cursor = await get('/v2/containers?cursor=garbage');
    expect(cursor.statusCode).toBe(400);
    expect(cursor.json().error).toBe('invalid_cursor');
  });
});

describe('GET /v2/containers/:id/history and /v2/hosts', () => {
  it("answers only a container's latest transitions with ?limit=, and says older ones were left out", async () => {
    await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());

    const latest = await get(`/v2/containers/${C2}/history?limit=1`);
    expect(latest.statusCode).toBe(200);
    expect(latest.json()).toMatchObject({ container_id: C2, truncated: true });
    expect(latest.json().history.map((h: { to: string }) => h.to)).toEqual(['running']);
    const all = (await get(`/v2/containers/${C2}/history?limit=2`)).json();
    expect(all.history).toHaveLength(2);
    expect(all).not.toHaveProperty('truncated');
    for (const bad of ['0', '-1', 'x', '100001']) {
      const res = await get(`/v2/containers/${C2}/history?limit=${bad}`);
      expect(res.statusCode, bad).toBe(400);
      expect(res.json(), bad).toMatchObject({ error: 'bad_request' });
    }
  });

  it("answers a container's history oldest first", async () => {
    await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());
    const res = await get(`/v2/containers/${C2.slice(0, 14)}/history`);
    expect(res.statusCode).toBe(200);
    expect(res.json().container_id).toBe(C2);
    expect(res.json().history.map((h: { from: string | null; to: string }) => [h.from, h.to])).toEqual([[null, 'pending'], ['pending', 'running']]);
    expect((await get(`/v2/containers/${'e'.repeat(64)}/history`)).statusCode).toBe(404);
    expect((await get(`/v2/containers/xyz/history`)).statusCode).toBe(400);
  });

  it('answers hosts with seconds since their last report, staleness and containers by state', async () => {
    t.setNow(new Date(iso(0)));
    await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());
    t.setNow(new Date(Date.parse(iso(0)) + 90_500));
    const fresh = (await get('/v2/hosts')).json().hosts[0];
    expect(fresh).toMatchObject({ instance_id: host.instance_id, seconds_since_report: 90.5, stale: false, containers_by_state: { running: 2, pending: 0, gone: 0 } });
    t.setNow(new Date(Date.parse(iso(0)) + 16 * 60_000));
    expect((await get('/v2/hosts')).json().hosts[0].stale).toBe(true);
  });

  it('answers one host as /v2/hosts lists it, staleness included, and 404 or 400 for a host it does not know or an id of the wrong shape', async () => {
    t.setNow(new Date(iso(0)));
    await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());
    t.setNow(new Date(iso(16)));
    const one = await get(`/v2/hosts/${host.instance_id}`);
    expect(one.statusCode).toBe(200);
    expect(one.json()).toEqual((await get('/v2/hosts')).json().hosts[0]);
    expect(one.json()).toMatchObject({ instance_id: host.instance_id, stale: true, retired: false, containers_by_state: { running: 2 } });
    const viaLookup = await get(`/v2/lookup/${host.instance_id}`);
    expect(viaLookup.statusCode).toBe(404);
    expect(viaLookup.json().message).toBe(`nothing matches docker name "${host.instance_id}" (for the host ${host.instance_id}, see /v2/hosts/${host.instance_id})`);
    const unknown = await get(`/v2/hosts/${instanceId('never-reported')}`);
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ error: 'not_found', message: `no host ${instanceId('never-reported')} has reported (or it was retired and forgotten once its records were purged)` });
    for (const bad of ['/v2/hosts/not-an-instance', `/v2/hosts/${encodeURIComponent('" or "1"="1')}`, `/v2/hosts/${host.instance_id}?verbose=1`]) {
      const res = await get(bad);
      expect(res.statusCode, bad).toBe(400);
      expect(res.json()).toMatchObject({ error: 'bad_request', message: expect.any(String) });
    }
    // Reports still go to the host's own routes; reading them is refused by method, not misrouted.
    expect((await t.app.inject({ method: 'GET', url: `/v2/hosts/${host.instance_id}/transitions` })).statusCode).toBe(405);
  });

  it('filters hosts by cluster and by staleness, and rejects a staleness that is not true or false', async () => {
    const other = hostIdentity({ instance_id: instanceId('v2-staging'), cluster: 'staging' });
    t.setNow(new Date(iso(0)));
    await put(`/v2/hosts/${other.instance_id}/snapshot`, snapshot(other, 1, []));
    t.setNow(new Date(iso(10)));
    await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());
    t.setNow(new Date(iso(20))); // the staging host has been silent 20 minutes (stale after 15), prod 10
    const ids = async (url: string) => {
      const res = await get(url);
      expect(res.statusCode).toBe(200);
      return res.json().hosts.map((h: { instance_id: string }) => h.instance_id);
    };
    expect(await ids('/v2/hosts')).toEqual([host.instance_id, other.instance_id].sort());
    expect(await ids('/v2/hosts?cluster=prod')).toEqual([host.instance_id]);
    expect(await ids('/v2/hosts?stale=true')).toEqual([other.instance_id]);
    expect(await ids('/v2/hosts?stale=false&cluster=prod')).toEqual([host.instance_id]);
    expect(await ids('/v2/hosts?stale=true&cluster=prod')).toEqual([]);
    expect(await ids(`/v2/hosts?cluster=${encodeURIComponent('" or "1"="1')}`)).toEqual([]);
    for (const bad of ['/v2/hosts?stale=maybe', '/v2/hosts?stale=1', '/v2/hosts?stale=TRUE', '/v2/hosts?cluster=']) {
      const res = await get(bad);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ error: 'bad_request', message: expect.any(String) });
    }
  });

  it('shows hosts silent past --host-gone-after as retired, not stale, and filters by it', async () => {
    await t.close();
    t = await buildTestApp({ hostGoneAfterMs: 60 * 60_000 });
    const gone = hostIdentity({ instance_id: instanceId('v2-terminated') });
    t.setNow(new Date(iso(0)));
    await put(`/v2/hosts/${gone.instance_id}/snapshot`, snapshot(gone, 1, []));
    t.setNow(new Date(iso(60)));
    await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());
    t.setNow(new Date(iso(70))); // the terminated host has been silent 70 minutes, the other 10
    const freshness = async () =>
      ((await get('/v2/hosts')).json().hosts as Array<{ instance_id: string; stale: boolean; retired: boolean }>)
        .map(({ instance_id, stale, retired }) => ({ instance_id, stale, retired }))
        .sort((a, b) => a.instance_id.localeCompare(b.instance_id));
    const expected = (other: { stale: boolean; retired: boolean }, terminated: { stale: boolean; retired: boolean }) =>
      [
        { instance_id: host.instance_id, ...other },
        { instance_id: gone.instance_id, ...terminated },
      ].sort((a, b) => a.instance_id.localeCompare(b.instance_id));
    expect(await freshness()).toEqual(expected({ stale: false, retired: false }, { stale: false, retired: true }));
    expect((await get('/v2/hosts?retired=true')).json().hosts.map((h: { instance_id: string }) => h.instance_id)).toEqual([gone.instance_id]);
    expect((await get('/v2/hosts?retired=true&cluster=staging')).json().hosts).toEqual([]);
    // Once no host at all reports, the server hears nobody: every silent host is stale, none retired.
    t.setNow(new Date(iso(80)));
    expect(await freshness()).toEqual(expected({ stale: true, retired: false }, { stale: true, retired: false }));
  });

  it('answers 400 naming the unknown key when a v2 read gets one (a typo must not read as "no filter")', async () => {
    for (const [url, message] of [
      ['/v2/containers?clustr=prod', 'querystring has unknown key "clustr" (known: cluster, instance_id, state, task_family, limit, cursor)'],
      ['/v2/hosts?stal=true', 'querystring has unknown key "stal" (known: cluster, stale, retired)'],
      [`/v2/lookup/${C1}?verbose=1`, 'querystring has unknown key "verbose" (it takes none)'],
      [`/v2/containers/${C1}/history?limt=5`, 'querystring has unknown key "limt" (known: limit)'],
      ['/v2/hosts?a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8', 'querystring has unknown keys "a", "b", "c", "d", "e", "f", "g", "h" (known: cluster, stale, retired)'],
    ]) {
      const res = await get(url);
      expect(res.statusCode, url).toBe(400);
      expect(res.json()).toEqual({ error: 'bad_request', message });
    }
  });

  it('counts containers per host from the grouped count, never listing containers, with zeros for hosts without records', async () => {
    const real = await openStore({ backend: 'sqlite', path: ':memory:' });
    let grouped = 0;
    const spy: Store = Object.create(real, {
      listContainers: { value: () => Promise.reject(new Error('GET /v2/hosts must not list containers')) },
      countByHostAndState: { value: () => { grouped++; return real.countByHostAndState(); } },
    });
    await t.close();
    t = await buildTestApp({}, spy);
    const other = hostIdentity({ instance_id: instanceId('v2-other') });
    const idle = hostIdentity({ instance_id: instanceId('v2-idle') });
    await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());
    await put(`/v2/hosts/${other.instance_id}/snapshot`, snapshot(other, 1, [snapshotContainer('stopped', { container_id: containerId('o1') }), snapshotContainer('running', { container_id: containerId('o2') })]));
    await put(`/v2/hosts/${other.instance_id}/snapshot`, snapshot(other, 2, [snapshotContainer('stopped', { container_id: containerId('o1') })]));
    await put(`/v2/hosts/${idle.instance_id}/snapshot`, snapshot(idle, 1, []));
    const res = await get('/v2/hosts');
    expect(res.statusCode).toBe(200);
    const byHost = Object.fromEntries(res.json().hosts.map((h: { instance_id: string; containers_by_state: unknown }) => [h.instance_id, h.containers_by_state]));
    expect(byHost).toEqual({
      [host.instance_id]: { pending: 0, running: 2, stopping: 0, stopped: 0, gone: 0 },
      [other.instance_id]: { pending: 0, running: 0, stopping: 0, stopped: 1, gone: 1 },
      [idle.instance_id]: { pending: 0, running: 0, stopping: 0, stopped: 0, gone: 0 },
    });
    expect(grouped).toBe(1);
  });
});

describe('DELETE /v2/hosts/:instance_id (forgetting a host by hand)', () => {
  const LEGACY_HOST = 'i-0123456789abcdef0'; // agentEntry's
  const del = (id: string, headers: Record<string, string> = {}) => t.app.inject({ method: 'DELETE', url: `/v2/hosts/${id}`, headers });
  const L1 = containerId('legacy-one');
  const L2 = containerId('legacy-two');
  const reportLegacy = () => post('/report/map', agentMap([agentEntry({ container_id: L1, task_id: TASK }), agentEntry({ container_id: L2, task_id: TASK, container_name: 'proxy' })]));

  it("marks an original agent's host's containers gone and drops the host from /v2/hosts; lookups still answer", async () => {
    expect((await reportLegacy()).statusCode).toBe(200);
    await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());

    const res = await del(LEGACY_HOST);

    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ instance_id: LEGACY_HOST, containers_gone: 2 });
    expect((await get('/v2/hosts')).json().hosts.map((h: { instance_id: string }) => h.instance_id)).toEqual([host.instance_id]);
    expect((await get(`/v2/hosts/${LEGACY_HOST}`)).statusCode).toBe(404);
    const lookup = (await get(`/v2/lookup/${L1}`)).json();
    expect(lookup.containers.map((c: { state: string }) => c.state)).toEqual(['gone']);
    expect((await get(`/v2/lookup/${C1}`)).json().containers[0].state).toBe('running');
    expect((await get(`/v2/containers/${L1}/history`)).json().history.at(-1)).toMatchObject({ to: 'gone', reason: 'host.forgotten', host: LEGACY_HOST });
    // The original agent's next map brings it back.
    await reportLegacy();
    expect((await get(`/v2/hosts/${LEGACY_HOST}`)).statusCode).toBe(200);
  });

  it("answers 409 for a reconciler's host, and changes nothing", async () => {
    await post(`/v2/hosts/${host.instance_id}/transitions`, seedBatch());

    const res = await del(host.instance_id);

    expect(res.statusCode).toBe(409);
    expect(res.json()).toEqual({ error: 'conflict', message: expect.stringContaining('--host-gone-after') });
    expect((await get(`/v2/lookup/${C1}`)).json().containers[0].state).toBe('running');
    expect((await get(`/v2/hosts/${host.instance_id}`)).json()).toMatchObject({ instance_id: host.instance_id, last_seq: 3 });
  });

  it('answers 404 for a host it does not list, and 400 for a malformed instance id', async () => {
    const unknown = await del('i-0000000000000000f');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ error: 'not_found', message: 'no host i-0000000000000000f is listed' });
    const bad = await del('i-nope');
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: 'bad_request' });
  });

  it('needs the report token when one is set, and is not counted as a report', async () => {
    await t.close();
    t = await buildTestApp({ reportToken: 's3cret' });
    await t.app.inject({ method: 'POST', url: '/report/map', payload: agentMap([agentEntry({ container_id: L1, task_id: TASK })]), headers: { authorization: 'Bearer s3cret' } });

    const anonymous = await del(LEGACY_HOST);
    const wrong = await del(LEGACY_HOST, { authorization: 'Bearer nope' });
    expect([anonymous.statusCode, wrong.statusCode]).toEqual([401, 401]);
    expect(wrong.json()).toMatchObject({ error: 'unauthorized' });
    expect(await t.store.getContainer(L1)).toMatchObject({ record: { state: 'running' } });

    const basic = await del(LEGACY_HOST, { authorization: `Basic ${Buffer.from('x:s3cret').toString('base64')}` });
    expect(basic.statusCode).toBe(200);
    const metrics = await t.registry.metrics();
    expect(metrics).not.toMatch(/reports_received_total\{[^}]*result="unauthorized"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/reports_received_total\{kind="legacy_map",result="ok"\} 1/);
  });
});
