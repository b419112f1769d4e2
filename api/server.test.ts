// Cross-cutting behaviour of buildServer: report auth, the per-host rate limit, error mapping,
// /health, /metrics (checked by the real promtool), OpenAPI and the static web page.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import fc from 'fast-check';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '../storage/index.js';
import { StoreUnavailableError, type Store } from '../storage/store.js';
import { agentEntry, agentMap, buildTestApp, type TestApp } from './test-helpers.js';
import { batch, containerId, hostIdentity, transition } from '../storage/store.fixtures.js';

const C1 = 'c1'.repeat(32);
const TASK = 'a1b2c3d4'.repeat(4);
const TOKEN = 's3cret-token';

let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const mapBody = (instanceId = 'i-0123456789abcdef0', containerId = C1) => agentMap([agentEntry({ container_id: containerId, task_id: TASK, instance_id: instanceId })]);
const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

async function metricValue(app: TestApp, line: string): Promise<number | undefined> {
  const text = await app.registry.metrics();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

/** A store whose named methods fail with the given error. */
async function failingStore(methods: Array<keyof Store>, error: () => Error): Promise<Store> {
  const real = await openStore({ backend: 'sqlite', path: ':memory:' });
  return new Proxy(real, {
    get(target, prop, receiver) {
      if (methods.includes(prop as keyof Store)) return async () => { throw error(); };
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

describe('report authentication', () => {
  it('rejects reports without a token with 401 JSON and a WWW-Authenticate challenge, and counts them', async () => {
    t = await buildTestApp({ reportToken: TOKEN });
    const res = await t.app.inject({ method: 'POST', url: '/report/map', payload: mapBody() });
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toContain('Bearer');
    expect(res.headers['www-authenticate']).toContain('Basic');
    expect(res.json()).toEqual({ error: 'unauthorized', message: expect.any(String) });
    expect((await t.store.getContainer(C1)).kind).toBe('missing');
    expect(await metricValue(t, 'ecs_id_mapper_reports_received_total{kind="legacy_map",result="unauthorized"}')).toBe(1);
  });

  it.each([
    ['a wrong bearer token', `Bearer ${TOKEN}x`],
    ['a bearer token differing only in case', `Bearer ${TOKEN.toUpperCase()}`],
    ['Basic auth with a wrong password', basic('x', 'nope')],
    ['Basic auth with the token as user name', basic(TOKEN, '')],
    ['an unknown scheme', `Token ${TOKEN}`],
    ['garbage', 'Bearer'],
  ])('rejects %s on every report route', async (_name, authorization) => {
    t = await buildTestApp({ reportToken: TOKEN });
    for (const [method, url] of [['POST', '/report/map'], ['POST', '/report/event'], ['POST', '/v2/hosts/i-0123456789abcdef0/transitions'], ['PUT', '/v2/hosts/i-0123456789abcdef0/snapshot']] as const) {
      const res = await t.app.inject({ method, url, payload: {}, headers: { authorization } });
      expect(res.statusCode, `${method} ${url}`).toBe(401);
    }
  });

  it('accepts the token as Bearer, and as the Basic password the original agent carries in its endpoint URL', async () => {
    t = await buildTestApp({ reportToken: TOKEN });
    const bearer = await t.app.inject({ method: 'POST', url: '/report/map', payload: mapBody(), headers: { authorization: `Bearer ${TOKEN}` } });
    expect(bearer.statusCode).toBe(200);
    const viaBasic = await t.app.inject({ method: 'POST', url: '/report/map', payload: mapBody(), headers: { authorization: basic('x', TOKEN) } });
    expect(viaBasic.statusCode).toBe(200);
    expect((await t.store.getContainer(C1)).kind).toBe('found');
    // Reads stay open.
    expect((await t.app.inject({ url: `/query/container_id/${C1}` })).statusCode).toBe(200);
  });

  it('uses the current token when it rotates (Vault)', async () => {
    let current = 'old';
    t = await buildTestApp({ reportToken: () => current });
    const send = (token: string) => t!.app.inject({ method: 'POST', url: '/report/map', payload: mapBody(), headers: { authorization: `Bearer ${token}` } });
    expect((await send('old')).statusCode).toBe(200);
    current = 'new';
    expect((await send('old')).statusCode).toBe(401);
    expect((await send('new')).statusCode).toBe(200);
  });

  describe('during a token rotation (--report-token-previous)', () => {
    const send = (authorization: string, url = '/report/map') =>
      t!.app.inject({ method: 'POST', url, payload: url === '/report/map' ? mapBody() : { event_id: 'e', event: 'added', timestamp: 1 }, headers: { authorization } });

    it('accepts the new token and the previous one, as Bearer and as the Basic password, and counts each report sent with the previous one by kind', async () => {
      t = await buildTestApp({ reportToken: 'new-token', previousReportToken: 'old-token' });
      expect((await send('Bearer new-token')).statusCode).toBe(200);
      expect((await send('Bearer old-token')).statusCode).toBe(200);
      expect((await send(basic('x', 'old-token'))).statusCode).toBe(200);
      expect((await send('Bearer old-token', '/report/event')).statusCode).toBe(200);
      expect(await metricValue(t, 'ecs_id_mapper_reports_previous_token_total{kind="legacy_map"}')).toBe(2);
      expect(await metricValue(t, 'ecs_id_mapper_reports_previous_token_total{kind="legacy_event"}')).toBe(1);
      expect(await metricValue(t, 'ecs_id_mapper_reports_previous_token_total{kind="transitions"}')).toBe(0);
      expect(await metricValue(t, 'ecs_id_mapper_reports_received_total{kind="legacy_map",result="ok"}')).toBe(3);
    });

    it('still refuses any other token', async () => {
      t = await buildTestApp({ reportToken: 'new-token', previousReportToken: 'old-token' });
      expect((await send('Bearer older-token')).statusCode).toBe(401);
      expect((await send('Bearer ')).statusCode).toBe(401);
      expect(await metricValue(t, 'ecs_id_mapper_reports_previous_token_total{kind="legacy_map"}')).toBe(0);
    });

    it('never opens the routes: a previous token without a current one (Vault secret without report_token) accepts nothing it would not anyway', async () => {
      let current: string | undefined = 'new-token';
      t = await buildTestApp({ reportToken: () => current, previousReportToken: () => 'old-token' });
      expect((await send('Bearer nothing')).statusCode).toBe(401);
      current = undefined;
      // No token at all: reports are open, as documented, and the previous token is not what lets them in.
      expect((await send('Bearer nothing')).statusCode).toBe(200);
      expect(await metricValue(t, 'ecs_id_mapper_reports_previous_token_total{kind="legacy_map"}')).toBe(0);
    });

    it('names each reporter still signing with the previous token in the log, once', async () => {
      const lines: string[] = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
      t = await buildTestApp({ logger, reportToken: 'new-token', previousReportToken: 'old-token' });
      const transitions = (instance: string, token: string) =>
        t!.app.inject({ method: 'POST', url: `/v2/hosts/${instance}/transitions`, payload: batch(hostIdentity({ instance_id: instance }), [transition(1, 'running', { container: { container_id: containerId(instance) } })]), headers: { authorization: `Bearer ${token}` } });
      for (const [instance, token] of [['i-0aaaaaaaaaaaaaaa1', 'old-token'], ['i-0aaaaaaaaaaaaaaa1', 'old-token'], ['i-0bbbbbbbbbbbbbbb2', 'old-token'], ['i-0ccccccccccccccc3', 'new-token']]) {
        expect((await transitions(instance, token)).statusCode).toBe(200);
      }
      expect((await send('Bearer old-token')).statusCode).toBe(200);
      expect((await send('Bearer old-token')).statusCode).toBe(200);
      const named = lines.map((l) => JSON.parse(l) as { level: number; msg: string; instance_id?: string; address?: string }).filter((l) => l.msg.startsWith('report signed with the previous report token'));
      expect(named.map((l) => [l.level, l.instance_id ?? l.address])).toEqual([[40, 'i-0aaaaaaaaaaaaaaa1'], [40, 'i-0bbbbbbbbbbbbbbb2'], [40, '127.0.0.1']]);
    });

    it('ends when the previous token is removed (Vault refresh)', async () => {
      let previous: string | undefined = 'old-token';
      t = await buildTestApp({ reportToken: 'new-token', previousReportToken: () => previous });
      expect((await send('Bearer old-token')).statusCode).toBe(200);
      previous = undefined;
      expect((await send('Bearer old-token')).statusCode).toBe(401);
      expect((await send('Bearer new-token')).statusCode).toBe(200);
    });
  });

  it('accepts reports without credentials when no token is configured, and warns about it once at start', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    t = await buildTestApp({ logger });
    expect((await t.app.inject({ method: 'POST', url: '/report/map', payload: mapBody() })).statusCode).toBe(200);
    await t.app.inject({ method: 'POST', url: '/report/map', payload: mapBody() });
    const warnings = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 40 && l.msg.includes('no report token'));
    expect(warnings).toHaveLength(1);
  });
});

describe('report rate limit', () => {
  it('answers 429 JSON once one host exceeds its limit, while other hosts still report', async () => {
    t = await buildTestApp({ reportRateLimitPerMinute: 2 });
    const send = (instance: string) => t!.app.inject({ method: 'POST', url: '/report/map', payload: mapBody(instance) });
    expect((await send('i-0aaaaaaaaaaaaaaaa')).statusCode).toBe(200);
    expect((await send('i-0aaaaaaaaaaaaaaaa')).statusCode).toBe(200);
    const limited = await send('i-0aaaaaaaaaaaaaaaa');
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toEqual({ error: 'rate_limited', message: expect.stringContaining('2 per minute') });
    expect(limited.headers['retry-after']).toBeDefined();
    expect((await send('i-0bbbbbbbbbbbbbbbb')).statusCode).toBe(200);
    expect(await metricValue(t, 'ecs_id_mapper_reports_received_total{kind="legacy_map",result="rejected"}')).toBe(1);
  });

  it("keys the original agent's events by the client a trusted load balancer names, and by the peer otherwise", async () => {
    const event = (forwardedFor: string) =>
      t!.app.inject({ method: 'POST', url: '/report/event', remoteAddress: '10.0.5.9', headers: { 'x-forwarded-for': forwardedFor }, payload: { event_id: 'e'.repeat(64), event: 'added', timestamp: 1767225600 } });
    t = await buildTestApp({ reportRateLimitPerMinute: 1, trustProxy: ['10.0.0.0/16'] });
    expect((await event('192.0.2.1')).statusCode).toBe(200);
    expect((await event('192.0.2.1')).statusCode).toBe(429);
    expect((await event('192.0.2.2')).statusCode).toBe(200);
    await t.close();
    // Untrusted: every agent behind the balancer shares its address, and one bucket.
    t = await buildTestApp({ reportRateLimitPerMinute: 1 });
    expect((await event('192.0.2.1')).statusCode).toBe(200);
    expect((await event('192.0.2.2')).statusCode).toBe(429);
  });

  it('limits the v2 report routes too, and never the lookups, which carry no rate-limit headers', async () => {
    t = await buildTestApp({ reportRateLimitPerMinute: 1 });
    const transitions = () => t!.app.inject({ method: 'POST', url: '/v2/hosts/i-0123456789abcdef0/transitions', payload: {} });
    expect((await transitions()).statusCode).toBe(400);
    expect((await transitions()).statusCode).toBe(429);
    expect((await t.app.inject({ method: 'POST', url: '/report/map', payload: mapBody('i-0cccccccccccccccc') })).statusCode).toBe(200);
    for (let i = 0; i < 3; i++) {
      const lookup = await t.app.inject({ url: `/query/container_id/${C1}` });
      expect(lookup.statusCode).toBe(200);
      expect(Object.keys(lookup.headers).filter((h) => h.startsWith('x-ratelimit') || h === 'retry-after')).toEqual([]);
    }
  });
});

describe('errors', () => {
  it('answers 503 JSON when the store is unavailable', async () => {
    t = await buildTestApp({}, await failingStore(['getContainer', 'replaceLegacySnapshot'], () => new StoreUnavailableError('database is locked')));
    const res = await t.app.inject({ url: `/query/container_id/${C1}` });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ error: 'store_unavailable', message: 'database is locked' });
    const report = await t.app.inject({ method: 'POST', url: '/report/map', payload: mapBody() });
    expect(report.statusCode).toBe(503);
    expect(await metricValue(t, 'ecs_id_mapper_reports_received_total{kind="legacy_map",result="error"}')).toBe(1);
  });

  it('answers 500 JSON without the internal message for an unexpected error', async () => {
    t = await buildTestApp({}, await failingStore(['findByTask'], () => new Error('secret internals')));
    const res = await t.app.inject({ url: `/query/task_id/${TASK}` });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: 'internal', message: 'internal server error' });
  });

  it('answers 404 JSON for a path no route takes, whatever the method', async () => {
    t = await buildTestApp();
    for (const method of ['GET', 'POST', 'DELETE'] as const) {
      const res = await t.app.inject({ method, url: '/no/such/route' });
      expect(res.statusCode, method).toBe(404);
      expect(res.json()).toMatchObject({ error: 'no_route' });
    }
  });

  it('answers 405 JSON with Allow naming every method the path takes, OPTIONS included, as Flask did', async () => {
    t = await buildTestApp();
    const cases = [
      ['DELETE', `/query/container_id/${C1}`, 'GET, HEAD, OPTIONS'],
      ['GET', '/report/map', 'OPTIONS, POST'],
      ['GET', '/v2/hosts/i-0123456789abcdef0/snapshot', 'OPTIONS, PUT'],
      ['POST', '/v2/hosts/i-0123456789abcdef0/snapshot?x=1', 'OPTIONS, PUT'],
      ['PUT', '/v2/hosts/i-0123456789abcdef0/transitions', 'OPTIONS, POST'],
      ['POST', '/v2/hosts', 'GET, HEAD, OPTIONS'],
      ['POST', '/metrics', 'GET, HEAD, OPTIONS'],
    ] as const;
    for (const [method, url, allow] of cases) {
      const res = await t.app.inject({ method, url });
      expect(res.statusCode, `${method} ${url}`).toBe(405);
      expect(res.headers.allow).toBe(allow);
      expect(res.json()).toEqual({ error: 'method_not_allowed', message: `${method} is not allowed on ${url.split('?')[0]} (allowed: ${allow})` });
    }
    expect(await t.store.listHosts()).toEqual([]);
  });

  it('answers OPTIONS on a known path with 200 and Allow, as Flask did, and 404 on an unknown one', async () => {
    t = await buildTestApp();
    const known = await t.app.inject({ method: 'OPTIONS', url: `/query/container_id/${C1}` });
    expect(known.statusCode).toBe(200);
    expect(known.headers.allow).toBe('GET, HEAD, OPTIONS');
    expect(known.body).toBe('');
    expect((await t.app.inject({ method: 'OPTIONS', url: '/report/map' })).headers.allow).toBe('OPTIONS, POST');
    expect((await t.app.inject({ method: 'OPTIONS', url: '/nowhere' })).statusCode).toBe(404);
  });
});

describe('/health', () => {
  it('answers the original text when the store answers', async () => {
    t = await buildTestApp();
    const res = await t.app.inject({ url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.body).toBe('All systems go!');
  });

  it('answers 503 JSON with the reason when the store fails, or an extra check is not ok', async () => {
    t = await buildTestApp({}, await failingStore(['health'], () => new Error('disk I/O error')));
    const res = await t.app.inject({ url: '/health' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ error: 'store_unavailable', message: expect.stringContaining('disk I/O error') });
    await t.close();
    t = await buildTestApp({ health: async () => ({ ok: false, detail: 'vault secret not loaded' }) });
    const extra = await t.app.inject({ url: '/health' });
    expect(extra.statusCode).toBe(503);
    expect(extra.json().message).toBe('vault secret not loaded');
  });
});

describe('/metrics', () => {
  it('exposes request durations by route template, lookups, reports, containers and build info', async () => {
    t = await buildTestApp();
    await t.app.inject({ method: 'POST', url: '/report/map', payload: mapBody() });
    await t.app.inject({ url: `/query/container_id/${C1}` });
    await t.app.inject({ url: `/query/container_id/${'d'.repeat(64)}` });
    const res = await t.app.inject({ url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    const text = res.body;
    expect(text).toContain('ecs_id_mapper_http_request_duration_seconds_count{route="/query/container_id/:container_id",method="GET",status_class="2xx"} 1');
    expect(text).toContain('ecs_id_mapper_http_request_duration_seconds_count{route="/query/container_id/:container_id",method="GET",status_class="4xx"} 1');
    // Container ids appear on the one documented *_info series only, never on request or lookup series.
    const linesWithId = text.split('\n').filter((l) => l.includes(C1));
    expect(linesWithId.length).toBeGreaterThan(0);
    expect(linesWithId.filter((l) => !l.startsWith('ecs_id_mapper_container_info{'))).toEqual([]);
    expect(text).toContain('ecs_id_mapper_lookups_total{kind="container_id",result="hit"} 1');
    expect(text).toContain('ecs_id_mapper_lookups_total{kind="container_id",result="miss"} 1');
    expect(text).toContain('ecs_id_mapper_lookups_total{kind="task_arn",result="ambiguous"} 0');
    expect(text).toContain('ecs_id_mapper_reports_received_total{kind="legacy_map",result="ok"} 1');
    expect(text).toContain('ecs_id_mapper_reports_received_total{kind="snapshot",result="error"} 0');
    expect(text).toContain('ecs_id_mapper_containers{state="running",cluster="prod"} 1');
    expect(text).toContain('ecs_id_mapper_containers{state="gone",cluster="prod"} 0');
    expect(text).toMatch(/ecs_id_mapper_build_info\{version="[^"]+",node_version="v\d+/);
  });

  it('counts each request once, under its route template and method, and unknown routes as unmatched', async () => {
    t = await buildTestApp();
    await t.app.inject({ method: 'POST', url: '/report/map', payload: mapBody() });
    await t.app.inject({ url: `/query/container_id/${C1}` });
    await t.app.inject({ url: `/query/container_id/${C1}` });
    await t.app.inject({ method: 'HEAD', url: `/query/container_id/${C1}` });
    await t.app.inject({ url: '/query/container_id/not-hex' });
    await t.app.inject({ method: 'DELETE', url: '/query/container_id/abc' });
    // GET of any other path is the web page's wildcard route (404 JSON for a missing file), not unmatched.
    await t.app.inject({ method: 'POST', url: '/no/such/route', payload: {} });
    const count = (labels: string) => metricValue(t!, `ecs_id_mapper_http_request_duration_seconds_count{${labels}}`);
    expect(await count('route="/query/container_id/:container_id",method="GET",status_class="2xx"')).toBe(2);
    expect(await count('route="/query/container_id/:container_id",method="GET",status_class="4xx"')).toBe(1);
    expect(await count('route="/query/container_id/:container_id",method="HEAD",status_class="2xx"')).toBe(1);
    expect(await count('route="/report/map",method="POST",status_class="2xx"')).toBe(1);
    expect(await count('route="unmatched",method="DELETE",status_class="4xx"')).toBe(1);
    expect(await count('route="unmatched",method="POST",status_class="4xx"')).toBe(1);
    // Only report routes count reports.
    expect(await metricValue(t, 'ecs_id_mapper_reports_received_total{kind="legacy_map",result="ok"}')).toBe(1);
    expect(await metricValue(t, 'ecs_id_mapper_reports_received_total{kind="legacy_map",result="rejected"}')).toBe(0);
  });

  it('passes promtool check metrics', async () => {
    const promtool = '/usr/bin/promtool';
    if (!existsSync(promtool)) {
      // CI installs the Debian prometheus package; a missing promtool there is a failure, not a skip.
      if (process.env.CI === 'true') throw new Error('promtool is not installed (Debian package prometheus)');
      return;
    }
    t = await buildTestApp();
    await t.app.inject({ method: 'POST', url: '/report/map', payload: mapBody() });
    await t.app.inject({ url: `/query/container_id/${C1}` });
    const text = (await t.app.inject({ url: '/metrics' })).body;
    // promtool exits non-zero on errors; its lint findings are printed, and we want none.
    const out = execFileSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(out.trim()).toBe('');
  });
});

describe('OpenAPI', () => {
  it('serves the document at /docs/json with every route, and the UI at /docs', async () => {
    t = await buildTestApp();
    const doc = (await t.app.inject({ url: '/docs/json' })).json();
    expect(doc.openapi).toMatch(/^3\./);
    for (const path of ['/query/container_id/{container_id}/_all', '/query/task_id/{task_id}', '/report/map', '/report/event', '/v2/hosts/{instance_id}/transitions', '/v2/hosts/{instance_id}/snapshot', '/v2/lookup/{id}', '/v2/containers', '/v2/containers/{id}/history', '/v2/hosts', '/health', '/metrics']) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
    expect(doc.paths['/query/task_id/{task_id}'].get.responses['200'].content).toHaveProperty(['text/plain']);
    expect(doc.paths['/query/container_id/{container_id}/_all'].get.responses['200'].content).toHaveProperty(['application/json']);
    expect(doc.paths['/report/map'].post.security).toEqual([{ reportToken: [] }]);
    const ui = await t.app.inject({ url: '/docs' });
    expect([200, 302]).toContain(ui.statusCode);
  });

  it('does not let other sites frame the UI or its document', async () => {
    t = await buildTestApp();
    for (const url of ['/docs', '/docs/static/index.html', '/docs/json']) {
      const res = await t.app.inject({ url });
      expect(res.headers['content-security-policy'], url).toBe("frame-ancestors 'none'");
      expect(res.headers['x-frame-options'], url).toBe('DENY');
      expect(res.headers['x-content-type-options'], url).toBe('nosniff');
    }
  });

  it('answers 404, not 405, for a UI file that does not exist, with GET as with HEAD', async () => {
    t = await buildTestApp();
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await t.app.inject({ method, url: '/docs/static/nope' });
      expect(res.statusCode).toBe(404);
      if (method === 'GET') expect(res.json()).toMatchObject({ error: 'no_route' });
    }
  });
});

describe('the web page at /', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('serves index.html and its assets with content types, and nothing outside the folder', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-web-'));
    const root = join(dir, 'web');
    mkdirSync(root);
    writeFileSync(join(root, 'index.html'), '<!doctype html><title>lookup</title>');
    writeFileSync(join(root, 'app.js'), 'console.log(1)');
    writeFileSync(join(root, '.secret'), 'hidden');
    writeFileSync(join(dir, 'outside.txt'), 'outside');
    t = await buildTestApp({ webRoot: root });
    const index = await t.app.inject({ url: '/' });
    expect(index.statusCode).toBe(200);
    expect(index.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(index.body).toContain('<title>lookup</title>');
    const js = await t.app.inject({ url: '/app.js' });
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    for (const url of ['/../outside.txt', '/%2e%2e/outside.txt', '/..%2foutside.txt', '/.secret', '/nope.html', '/app.js/x']) {
      const res = await t.app.inject({ url });
      expect(res.statusCode, url).toBe(404);
      expect(res.json().error).toBe('no_route');
    }
  });

  it('answers 404 JSON, not 500, for a file name longer than the file system allows (found by the route fuzzer)', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-web-'));
    t = await buildTestApp({ webRoot: dir });
    const res = await t.app.inject({ url: `/${'a'.repeat(300)}` });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toBe('no_route');
  });

  it('answers 404 JSON at / when there is no web folder', async () => {
    t = await buildTestApp({ webRoot: '/nonexistent/ecs-id-mapper-web' });
    const res = await t.app.inject({ url: '/' });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toBe('no_route');
  });
});

describe('hostile input', () => {
  it('never answers 5xx for arbitrary ids on any lookup route', async () => {
    t = await buildTestApp();
    await t.app.inject({ method: 'POST', url: '/report/map', payload: mapBody() });
    const routes = ['/query/container_id/%s', '/query/container_id/%s/_all', '/query/container_id/%s/cadvisor', '/query/task_id/%s', '/v2/lookup/%s', '/v2/containers/%s/history'];
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 80 }), fc.constantFrom(...routes), async (id, route) => {
        const res = await t!.app.inject({ url: route.replace('%s', encodeURIComponent(id)) });
        expect(res.statusCode).toBeLessThan(500);
        if (res.statusCode >= 400) expect(res.json()).toHaveProperty('error');
      }),
      { numRuns: 150 },
    );
  });

  it('never answers 5xx for arbitrary JSON on the report routes', async () => {
    t = await buildTestApp();
    const routes = [['POST', '/report/map'], ['POST', '/report/event'], ['POST', '/v2/hosts/i-0123456789abcdef0/transitions'], ['PUT', '/v2/hosts/i-0123456789abcdef0/snapshot']] as const;
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(...routes), async (body, [method, url]) => {
        const res = await t!.app.inject({ method, url, payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
        expect(res.statusCode).toBeLessThan(500);
      }),
      { numRuns: 150 },
    );
  });

  it('closes a connection that sends nothing once the connection timeout passes', async () => {
    t = await buildTestApp({ connectionTimeoutMs: 300 });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = t.app.server.address() as { port: number };
    const socket = connect(port, '127.0.0.1');
    const closed = await new Promise<boolean>((resolve) => {
      const guard = setTimeout(() => resolve(false), 10_000);
      socket.once('close', () => {
        clearTimeout(guard);
        resolve(true);
      });
      socket.write('GET /health HTTP/1.1\r\nHost: x\r\n');
    });
    socket.destroy();
    expect(closed).toBe(true);
  });
});
