// The original server's routes, through inject(): what the Python agent reports, and what the
// original's clients read back (text, Flask-style JSON, redirects), plus the fixes (400/409/404 JSON).
import { deflateSync, gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseLinks } from '../config/links.js';
import { batch, hostIdentity, INJECTION_STRINGS, transition } from '../storage/store.fixtures.js';
import { agentEntry, agentKey, agentMap, buildTestApp, type AgentEntry, type TestApp } from './test-helpers.js';

const C1 = 'c1'.repeat(32);
const C2 = 'c2'.repeat(32);
const TASK = 'a1b2c3d4'.repeat(4);
const UUID_TASK = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
const C3 = 'c3'.repeat(32);

let t: TestApp;

async function report(entries: AgentEntry[] | Record<string, unknown>, headers: Record<string, string> = {}) {
  const payload = Array.isArray(entries) ? agentMap(entries) : entries;
  return t.app.inject({ method: 'POST', url: '/report/map', payload, headers });
}

const get = (url: string) => t.app.inject({ method: 'GET', url });

beforeEach(async () => {
  t = await buildTestApp({ links: parseLinks(['logs=https://logs.example/search?q={container_id_short}&task={task_id}']) });
});
afterEach(async () => {
  await t.close();
});

describe('POST /report/map (the original agent)', () => {
  it('answers "true" as text and stores the map as the host snapshot, with the bare task id of a new-format ARN', async () => {
    const res = await report([agentEntry({ container_id: C1, task_id: `prod/${TASK}` })]);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.body).toBe('true');
    const found = await t.store.getContainer(C1);
    expect(found.kind).toBe('found');
    if (found.kind !== 'found') return;
    expect(found.record).toMatchObject({
      task_id: TASK,
      task_id_raw: `prod/${TASK}`,
      task_family: 'web',
      cluster: 'prod',
      instance_id: 'i-0123456789abcdef0',
      region: 'us-east-1',
      state: 'running',
      source: 'legacy',
      ports: [{ container_port: 80, host_port: 32768, protocol: 'tcp' }],
      legacy_key: agentKey({ container_id: C1, task_id: `prod/${TASK}`, desired_status: 'RUNNING' }),
    });
  });

  it('accepts the first agent version, which sent fewer fields and null where instance metadata failed', async () => {
    const entry: Record<string, unknown> = { ...agentEntry({ container_id: C1, task_id: UUID_TASK }), instance_ip: null };
    for (const k of ['container_port', 'instance_port', 'instance_az', 'cluster_name', 'ecs_agent_version']) delete entry[k];
    const res = await report({ [agentKey(entry as unknown as AgentEntry)]: entry });
    expect(res.statusCode).toBe(200);
    const found = await t.store.getContainer(C1);
    expect(found.kind === 'found' && found.record).toMatchObject({ task_id: UUID_TASK, instance_ip: null, ports: [], cluster: null });
  });

  it('marks containers missing from the next map gone; they still resolve while retained', async () => {
    await report([agentEntry({ container_id: C1, task_id: TASK }), agentEntry({ container_id: C2, task_id: TASK, container_name: 'proxy' })]);
    await report([agentEntry({ container_id: C1, task_id: TASK })]);
    const gone = await t.store.getContainer(C2);
    expect(gone.kind === 'found' && gone.record.state).toBe('gone');
    expect((await get(`/query/container_id/${C2}`)).body).toBe(TASK);
  });

  it('takes a container listed under two keys once, by the later sample, then the further state, whatever the key order', async () => {
    const running = agentEntry({ container_id: C1, task_id: TASK });
    const stopped = agentEntry({ container_id: C1, task_id: TASK, desired_status: 'STOPPED', known_status: 'STOPPED' });
    for (const order of [[stopped, running], [running, stopped]]) {
      await t.close();
      t = await buildTestApp();
      expect((await report(order)).statusCode).toBe(200);
      const found = await t.store.getContainer(C1);
      expect(found.kind === 'found' && found.record.state).toBe('stopped');
      expect((await t.store.history(C1)).map((h) => `${h.from}->${h.to}`)).toEqual(['null->stopped']);
    }
    // A later sample wins over a further state.
    await report([{ ...stopped, sample_time: running.sample_time - 10 }, running]);
    const found = await t.store.getContainer(C1);
    expect(found.kind === 'found' && found.record.state).toBe('running');
  });

  it('answers 400 saying what is wrong for JSON nested thousands of levels deep', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/report/map', payload: `{"k":${'['.repeat(5000)}${']'.repeat(5000)}}`, headers: { 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'bad_request', message: expect.stringMatching(/^body\/k must be object/) });
  });

  it('stores a stopped container as stopped, and it still resolves to its task', async () => {
    await report([agentEntry({ container_id: C1, task_id: TASK, desired_status: 'STOPPED', known_status: 'STOPPED' })]);
    const res = await get(`/query/container_id/${C1}/_all`);
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ state: 'stopped', known_status: 'STOPPED', task_id: TASK });
  });

  it('acknowledges an empty map without changing anything (it names no host)', async () => {
    await report([agentEntry({ container_id: C1, task_id: TASK })]);
    const res = await report({});
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('true');
    const found = await t.store.getContainer(C1);
    expect(found.kind === 'found' && found.record.state).toBe('running');
  });

  it('skips entries whose container the ECS agent has not created yet (empty DockerId)', async () => {
    const res = await report([agentEntry({ container_id: C1, task_id: TASK }), agentEntry({ container_id: '', task_id: TASK, container_name: 'sidecar' })]);
    expect(res.statusCode).toBe(200);
    expect((await t.store.findByTask(TASK)).map((r) => r.container_id)).toEqual([C1]);
  });

  it('marks the host\'s other containers gone when its map holds only containers not created yet', async () => {
    await report([agentEntry({ container_id: C1, task_id: TASK })]);
    // The replacement task is still pulling its image: listed, with no DockerId.
    const res = await report([agentEntry({ container_id: '', task_id: UUID_TASK, desired_status: 'RUNNING', known_status: 'PENDING' })]);
    expect(res.statusCode).toBe(200);
    const found = await t.store.getContainer(C1);
    expect(found.kind === 'found' && found.record.state).toBe('gone');
    expect((await t.store.history(C1)).map((h) => `${h.from}->${h.to}`)).toEqual(['null->running', 'running->gone']);
  });

  it('rejects a map whose second host has a sample_time past the year 9999, storing neither host', async () => {
    const other = { ...agentEntry({ container_id: C2, task_id: TASK }), instance_id: 'i-0fedcba9876543210', sample_time: 1e12 };
    const res = await report({ a: agentEntry({ container_id: C1, task_id: TASK }), b: other });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'bad_request', message: 'entry b: sample_time is not an epoch time in seconds before the year 10000' });
    expect((await t.store.getContainer(C1)).kind).toBe('missing');
    expect((await t.store.getContainer(C2)).kind).toBe('missing');
  });

  it('rejects the map of an agent that could not read instance metadata (IMDSv2 required), saying why and what to do', async () => {
    for (const instanceId of ['', null]) {
      const res = await report({ k: { ...agentEntry({ container_id: C1, task_id: TASK }), instance_id: instanceId, instance_ip: '', instance_type: '', instance_az: '' } });
      expect(res.statusCode).toBe(400);
      expect(res.json().message).toBe(
        'entry k: instance_id "" is not an EC2 instance id: the agent could not read instance metadata (an instance that requires IMDSv2 answers its plain requests 401); allow IMDSv1 on the instance (HttpTokens=optional) or run the reconciler there',
      );
    }
    expect((await t.store.getContainer(C1)).kind).toBe('missing');
  });

  it.each([
    ['a malformed container id', { container_id: 'xyz' }],
    ['a task id of no known shape', { task_id: 'prod/not-a-task' }],
    ['a missing instance id', { instance_id: '' }],
    ['a string sample_time', { sample_time: 'yesterday' }],
    ['a missing desired_status', { desired_status: undefined }],
  ])('rejects %s with 400 JSON and stores nothing', async (_name, override) => {
    const entry = { ...agentEntry({ container_id: C1, task_id: TASK }), ...override };
    const res = await report({ k: entry });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.json()).toMatchObject({ error: 'bad_request' });
    expect((await t.store.getContainer(C1)).kind).toBe('missing');
  });

  it('rejects a body that is not JSON: 400 for malformed JSON or text, 415 for an unknown media type', async () => {
    const bad = await t.app.inject({ method: 'POST', url: '/report/map', payload: '{"a":', headers: { 'content-type': 'application/json' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toBe('bad_request');
    const text = await t.app.inject({ method: 'POST', url: '/report/map', payload: 'hello', headers: { 'content-type': 'text/plain' } });
    expect(text.statusCode).toBe(400);
    // What `curl -d @map.json` sends: the answer says what to send instead.
    const form = await t.app.inject({ method: 'POST', url: '/report/map', payload: 'a=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(form.statusCode).toBe(415);
    expect(form.json()).toEqual({ error: 'unsupported_media_type', message: 'Content-Type not supported: send the body as JSON, with Content-Type: application/json' });
    expect(await t.store.listHosts()).toEqual([]);
  });

  it('refuses a compressed body with 415 naming the coding, and takes Content-Encoding: identity as uncompressed', async () => {
    const body = JSON.stringify({ k: agentEntry({ container_id: C1, task_id: TASK }) });
    for (const coding of ['gzip', 'GZIP', 'deflate', 'br', 'gzip, identity']) {
      const payload = coding.toLowerCase().startsWith('gzip') ? gzipSync(body) : deflateSync(body);
      const res = await t.app.inject({ method: 'POST', url: '/report/map', payload, headers: { 'content-type': 'application/json', 'content-encoding': coding } });
      expect(res.statusCode, coding).toBe(415);
      expect(res.json(), coding).toEqual({ error: 'unsupported_media_type', message: `Content-Encoding "${coding.toLowerCase()}" is not supported: send the body uncompressed` });
    }
    // A body labelled compressed but sent plain is refused too, not taken at face value.
    const mislabelled = await t.app.inject({ method: 'POST', url: '/report/map', payload: body, headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } });
    expect(mislabelled.statusCode).toBe(415);
    expect((await t.store.getContainer(C1)).kind).toBe('missing');
    // Every route that takes a body refuses it the same way.
    for (const [method, url] of [['POST', '/report/event'], ['POST', '/v2/hosts/i-0123456789abcdef0/transitions'], ['PUT', '/v2/hosts/i-0123456789abcdef0/snapshot']] as const) {
      const res = await t.app.inject({ method, url, payload: gzipSync('{}'), headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } });
      expect(res.statusCode, url).toBe(415);
    }
    // Requests without a body are not judged by the header.
    expect((await t.app.inject({ url: '/health', headers: { 'content-encoding': 'gzip' } })).statusCode).toBe(200);
    expect((await t.app.inject({ url: `/query/container_id/${C1}`, headers: { 'content-encoding': 'gzip' } })).statusCode).toBe(404);
    const identity = await t.app.inject({ method: 'POST', url: '/report/map', payload: body, headers: { 'content-type': 'application/json', 'content-encoding': 'identity' } });
    expect(identity.statusCode).toBe(200);
    expect((await t.store.getContainer(C1)).kind).toBe('found');
  });

  it('answers 413 JSON for a body over the limit', async () => {
    const big = { k: { ...agentEntry({ container_id: C1, task_id: TASK }), container_name: 'x'.repeat(1000) } };
    const entries = Object.fromEntries(Array.from({ length: 1200 }, (_, i) => [`k${i}`, big.k]));
    const res = await report(entries);
    expect(res.statusCode).toBe(413);
    expect(res.json().error).toBe('payload_too_large');
  });
});

describe('POST /report/event', () => {
  it('answers "true" and writes the event into the history of the container its key names', async () => {
    const entry = agentEntry({ container_id: C1, task_id: TASK });
    await report([entry]);
    const res = await t.app.inject({ method: 'POST', url: '/report/event', payload: { event_id: agentKey(entry), event: 'removed', timestamp: 1767226000.5 } });
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('true');
    const history = await t.store.history(C1);
    expect(history.find((h) => h.reason === 'legacy.removed')).toMatchObject({ at: '2026-01-01T00:06:40.500Z' });
  });

  it("keeps an added event the agent posts before the map that brings its key, as the agent does, and writes it with that map", async () => {
    const entry = agentEntry({ container_id: C1, task_id: TASK });
    const res = await t.app.inject({ method: 'POST', url: '/report/event', payload: { event_id: agentKey(entry), event: 'added', timestamp: 1767225600 } });
    expect(res.body).toBe('true');
    await report([entry]);
    expect((await t.store.history(C1)).map((h) => [h.reason, h.at])).toEqual([
      ['legacy.added', '2026-01-01T00:00:00.000Z'],
      ['snapshot', '2026-01-01T00:00:00.250Z'],
    ]);
  });

  it("marks the host's last container gone on its `removed` event, though the agent's last map is {} (it names no host)", async () => {
    const entry = agentEntry({ container_id: C1, task_id: TASK });
    await report([entry]);
    // The task stops: the agent's key changes (desired STOPPED) with `added` before `removed`, then the map.
    const stopping = { ...entry, desired_status: 'STOPPED' };
    for (const [key, event] of [[agentKey(stopping), 'added'], [agentKey(entry), 'removed']] as const) {
      await t.app.inject({ method: 'POST', url: '/report/event', payload: { event_id: key, event, timestamp: 1767226000 } });
    }
    await report([stopping]);
    expect((await get(`/v2/lookup/${C1}`)).json().containers).toMatchObject([{ state: 'stopping' }]);
    // The task leaves the agent's listing: `removed` for its key, then the empty map.
    await t.app.inject({ method: 'POST', url: '/report/event', payload: { event_id: agentKey(stopping), event: 'removed', timestamp: 1767226100 } });
    expect((await report({})).body).toBe('true');
    expect((await get(`/v2/lookup/${C1}`)).json().containers).toMatchObject([{ state: 'gone' }]);
  });

  it('rejects a timestamp past the year 9999 with 400 before the store sees it', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/report/event', payload: { event_id: 'abc', event: 'added', timestamp: 8.64e12 } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'bad_request', message: 'timestamp is not an epoch time in seconds before the year 10000' });
  });

  it('rejects an unknown event kind with 400 naming the kinds it takes', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/report/event', payload: { event_id: 'abc', event: 'exploded', timestamp: 1 } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'bad_request', message: 'body/event must be one of "added", "removed"' });
  });
});

describe('GET /query/container_id/<id>', () => {
  beforeEach(async () => {
    await report([
      agentEntry({ container_id: C1, task_id: `prod/${TASK}` }),
      agentEntry({ container_id: C2, task_id: `prod/${TASK}`, container_name: 'proxy', container_port: '0', instance_port: '0' }),
      agentEntry({ container_id: C3, task_id: UUID_TASK, task_name: 'old' }),
    ]);
  });

  it('answers the task id as text for the full id, a 12-hex prefix and upper-case hex', async () => {
    for (const id of [C1, C1.slice(0, 12), C1.slice(0, 40).toUpperCase()]) {
      const res = await get(`/query/container_id/${id}`);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(res.body).toBe(TASK);
    }
  });

  it('answers a full id from memory once seen (a container never changes task), even when the store is down', async () => {
    expect((await get(`/query/container_id/${C1}`)).body).toBe(TASK);
    const getContainer = t.store.getContainer.bind(t.store);
    t.store.getContainer = async () => {
      throw new Error('store down');
    };
    try {
      const res = await get(`/query/container_id/${C1}`);
      expect(res.statusCode).toBe(200);
      expect(res.body).toBe(TASK);
      // Prefixes are never cached: one may become ambiguous later.
      expect((await get(`/query/container_id/${C1.slice(0, 12)}`)).statusCode).toBe(500);
    } finally {
      t.store.getContainer = getContainer;
    }
  });

  it('stops answering from memory once the cache TTL has passed, so a purged record stops resolving', async () => {
    expect((await get(`/query/container_id/${C1}`)).body).toBe(TASK);
    const getContainer = t.store.getContainer.bind(t.store);
    t.store.getContainer = async () => ({ kind: 'missing' });
    try {
      t.setNow(new Date('2026-01-01T00:10:04.999Z')); // the default TTL is 5 s
      expect((await get(`/query/container_id/${C1}`)).statusCode).toBe(200);
      t.setNow(new Date('2026-01-01T00:10:05.000Z'));
      const res = await get(`/query/container_id/${C1}`);
      expect(res.statusCode).toBe(404);
      expect(JSON.parse(res.body)).toMatchObject({ error: 'not_found' });
    } finally {
      t.store.getContainer = getContainer;
    }
  });

  it('answers a task id given in place of a container id with the task (as the original README documents)', async () => {
    expect((await get(`/query/container_id/${TASK}`)).body).toBe(`${C1}\n${C2}`);
    const all = await get(`/query/container_id/${UUID_TASK}/_all`);
    expect(JSON.parse(all.body)).toMatchObject({ container_id: C3, task_id: UUID_TASK });
  });

  it('answers _all as Flask jsonify did: application/json, sorted keys, original names as strings plus the new fields', async () => {
    const res = await get(`/query/container_id/${C1}/_all`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.body.startsWith('{\n  "cadvisor_url": "http://10.0.1.17:8080/docker/')).toBe(true);
    expect(res.body).toContain(`  "container_id": "${C1}", \n`);
    expect(res.body.endsWith('\n}')).toBe(true);
    const body = JSON.parse(res.body);
    expect(Object.keys(body)).toEqual(Object.keys(body).sort());
    expect(body).toMatchObject({
      container_id: C1,
      container_name: 'app',
      container_port: '80',
      instance_port: '32768',
      task_id: TASK,
      task_id_raw: `prod/${TASK}`,
      task_name: 'web',
      task_version: '3',
      instance_ip: '10.0.1.17',
      instance_id: 'i-0123456789abcdef0',
      instance_type: 'm5.large',
      instance_az: 'us-east-1a',
      desired_status: 'RUNNING',
      known_status: 'RUNNING',
      host_name: 'ip-10-0-1-17',
      cluster_name: 'prod',
      ecs_agent_version: '1.14.4',
      // The agent's own sample time (1767225600.25), not the server's receive time (00:10:00).
      sample_time: '1767225600.25',
      sampled_at: '2026-01-01T00:00:00.250Z',
      last_seen: '2026-01-01T00:10:00.000Z',
      cadvisor_url: `http://10.0.1.17:8080/docker/${C1}`,
      logs_url: `https://logs.example/search?q=${C1.slice(0, 12)}&task=${TASK}`,
      state: 'running',
    });
  });

  it('answers _all and /urls on one line to an XMLHttpRequest (jQuery ajax), as Flask 0.10.1 jsonify did', async () => {
    for (const suffix of ['_all', 'urls']) {
      const indented = await get(`/query/container_id/${C1}/${suffix}`);
      const xhr = await t.app.inject({ method: 'GET', url: `/query/container_id/${C1}/${suffix}`, headers: { 'x-requested-with': 'XMLHttpRequest' } });
      expect(xhr.statusCode).toBe(200);
      expect(xhr.headers['content-type']).toBe('application/json');
      expect(xhr.body).not.toContain('\n');
      expect(xhr.body).toContain(`"cadvisor_url": "http://10.0.1.17:8080/docker/${C1}", `);
      expect(JSON.parse(xhr.body)).toEqual(JSON.parse(indented.body));
    }
    const urls = await t.app.inject({ method: 'GET', url: `/query/container_id/${C1}/urls`, headers: { 'x-requested-with': 'xmlhttprequest' } });
    expect(urls.body).toBe(`{"cadvisor_url": "http://10.0.1.17:8080/docker/${C1}", "logs_url": "https://logs.example/search?q=${C1.slice(0, 12)}&task=${TASK}"}`);
  });

  it('answers sample_time as the time the server last saw a container that a reconciler reports (no agent sample time)', async () => {
    const C4 = 'c4'.repeat(32);
    await t.store.applyTransitions(batch(hostIdentity(), [transition(1, 'running', { container: { container_id: C4 } })]), new Date('2026-01-01T00:20:00.500Z'));
    const body = JSON.parse((await get(`/query/container_id/${C4}/_all`)).body);
    expect(body).toMatchObject({ sample_time: '1767226800.5', sampled_at: null, last_seen: '2026-01-01T00:20:00.500Z' });
  });

  it('answers the cAdvisor URL as text, and a 302 to it when redir is true in any case', async () => {
    const url = `http://10.0.1.17:8080/docker/${C1}`;
    const text = await get(`/query/container_id/${C1.slice(0, 12)}/cadvisor`);
    expect(text.statusCode).toBe(200);
    expect(text.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(text.body).toBe(url);
    for (const redir of ['true', 'TRUE', 'True']) {
      const res = await get(`/query/container_id/${C1}/cadvisor?redir=${redir}`);
      expect(res.statusCode).toBe(302);
      expect(res.headers.location).toBe(url);
    }
    expect((await get(`/query/container_id/${C1}/cadvisor?redir=false`)).statusCode).toBe(200);
    // As Flask's request.args.get: the first of a repeated key, and any other value is no redirect.
    expect((await get(`/query/container_id/${C1}/cadvisor?redir=true&redir=false`)).statusCode).toBe(302);
    expect((await get(`/query/container_id/${C1}/cadvisor?redir=false&redir=true`)).statusCode).toBe(200);
    expect((await get(`/query/container_id/${C1}/cadvisor?redir=${'x'.repeat(100)}`)).statusCode).toBe(200);
  });

  it('builds no link from an instance IP that is not an IP address, and brackets an IPv6 one', async () => {
    const PHISH = 'c5'.repeat(32);
    const V6 = 'c6'.repeat(32);
    await report([agentEntry({ container_id: PHISH, task_id: TASK, instance_ip: 'phish.example' })]);
    await report([agentEntry({ container_id: V6, task_id: TASK, instance_id: 'i-0123456789abcdef6', instance_ip: '2001:db8::17' })]);

    const redirect = await get(`/query/container_id/${PHISH}/cadvisor?redir=true`);
    expect(redirect.statusCode).toBe(404);
    expect(redirect.json()).toMatchObject({ error: 'not_found', message: expect.stringContaining('no cAdvisor link') });
    expect(JSON.parse((await get(`/query/container_id/${PHISH}/urls`)).body)).toEqual({ logs_url: `https://logs.example/search?q=${PHISH.slice(0, 12)}&task=${TASK}` });
    expect((await get(`/query/container_id/${V6}/cadvisor`)).body).toBe(`http://[2001:db8::17]:8080/docker/${V6}`);
  });

  it('answers /urls with every configured link as "<name>_url"', async () => {
    const res = await get(`/query/container_id/${C1}/urls`);
    expect(res.headers['content-type']).toBe('application/json');
    expect(JSON.parse(res.body)).toEqual({
      cadvisor_url: `http://10.0.1.17:8080/docker/${C1}`,
      logs_url: `https://logs.example/search?q=${C1.slice(0, 12)}&task=${TASK}`,
    });
  });

  it('answers 404 JSON for an unknown id on every suffix', async () => {
    for (const suffix of ['', '/_all', '/cadvisor', '/urls']) {
      const res = await get(`/query/container_id/${'d'.repeat(64)}${suffix}`);
      expect(res.statusCode).toBe(404);
      expect(res.json()).toEqual({ error: 'not_found', message: expect.stringContaining('d'.repeat(64)) });
    }
  });

  it('answers 409 with the candidates for a prefix two containers share, whatever their states', async () => {
    const twinA = `feedfacecafe${'1'.repeat(52)}`;
    const twinB = `feedfacecafe${'2'.repeat(52)}`;
    await report([
      agentEntry({ container_id: twinA, task_id: 'e'.repeat(32), instance_id: 'i-0aaaaaaaaaaaaaaaa' }),
      agentEntry({ container_id: twinB, task_id: 'f'.repeat(32), instance_id: 'i-0aaaaaaaaaaaaaaaa', desired_status: 'STOPPED', known_status: 'STOPPED' }),
    ]);
    const res = await get('/query/container_id/feedfacecafe');
    expect(res.statusCode).toBe(409);
    expect(res.json()).toEqual({ error: 'ambiguous', message: expect.any(String), candidates: [twinA, twinB] });
    expect((await get(`/query/container_id/feedfacecafe1`)).body).toBe('e'.repeat(32));
  });

  it.each([
    ['shorter than 12 hex', 'abcdef'],
    ['not hex', 'zzzzzzzzzzzzzzzz'],
    ['longer than 64 hex', 'a'.repeat(65)],
  ])('answers 400 JSON for an id %s', async (_name, id) => {
    const res = await get(`/query/container_id/${id}`);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toBe('bad_request');
  });

  it('finds nothing and never errors for the injection strings the original select was open to', async () => {
    for (const s of INJECTION_STRINGS) {
      for (const route of ['/query/container_id/', '/query/task_id/']) {
        for (const suffix of ['', '/_all', '/cadvisor']) {
          const res = await get(`${route}${encodeURIComponent(s)}${suffix}`);
          expect([400, 404]).toContain(res.statusCode);
          expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
        }
      }
    }
  });
});

describe('GET /query/task_id/<id>', () => {
  beforeEach(async () => {
    await report([
      agentEntry({ container_id: C2, task_id: `prod/${TASK}`, container_name: 'proxy' }),
      agentEntry({ container_id: C1, task_id: `prod/${TASK}` }),
      agentEntry({ container_id: C3, task_id: UUID_TASK }),
    ]);
  });

  it("answers the task's container ids as text, one per line, ordered by container id", async () => {
    const res = await get(`/query/task_id/${TASK}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.body).toBe(`${C1}\n${C2}`);
    expect((await get(`/query/task_id/${UUID_TASK.toUpperCase()}`)).body).toBe(C3);
  });

  it('answers _all as a JSON array for several containers and an object for one', async () => {
    const many = JSON.parse((await get(`/query/task_id/${TASK}/_all`)).body);
    expect(many.map((c: { container_id: string }) => c.container_id)).toEqual([C1, C2]);
    const one = JSON.parse((await get(`/query/task_id/${UUID_TASK}/_all`)).body);
    expect(one.container_id).toBe(C3);
  });

  it('answers the cAdvisor URLs one per line, and redirects to the first', async () => {
    const res = await get(`/query/task_id/${TASK}/cadvisor`);
    expect(res.body).toBe(`http://10.0.1.17:8080/docker/${C1}\nhttp://10.0.1.17:8080/docker/${C2}`);
    const redir = await get(`/query/task_id/${TASK}/cadvisor?redir=tRuE`);
    expect(redir.statusCode).toBe(302);
    expect(redir.headers.location).toBe(`http://10.0.1.17:8080/docker/${C1}`);
  });

  it('answers 404, not 409, for a 32-hex task id that no task has but two containers begin with', async () => {
    const prefix = 'c1'.repeat(16);
    await report([agentEntry({ container_id: C1, task_id: TASK }), agentEntry({ container_id: prefix + 'd'.repeat(32), task_id: TASK, container_name: 'proxy' })]);
    expect((await get(`/query/container_id/${prefix}`)).statusCode).toBe(409);
    for (const suffix of ['', '/_all', '/cadvisor']) {
      const res = await get(`/query/task_id/${prefix}${suffix}`);
      expect(res.statusCode).toBe(404);
      expect(res.json()).toEqual({ error: 'not_found', message: `no task with id ${prefix}` });
    }
  });

  it('answers 404 for an unknown task and 400 for an id that is no task id', async () => {
    expect((await get(`/query/task_id/${'9'.repeat(32)}`)).statusCode).toBe(404);
    expect((await get(`/query/task_id/${C1}`)).statusCode).toBe(400);
    expect((await get(`/query/task_id/${C1.slice(0, 32)}`)).statusCode).toBe(404);
  });
});
