// Property-based fuzzing (fast-check) of every route's params, query and body through inject(), on
// a real in-memory SQLite store seeded with known records. Properties, for every request:
//   - the status is below 500;
//   - every 4xx/5xx answers JSON `{error, message}` (the legacy routes answer text only on success);
//   - a report that is refused (4xx) changed nothing in the store;
//   - a 200 lookup only returns records that match the id literally;
//   - nothing reaches Object.prototype (`__proto__` / `constructor` keys).
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { agentEntry, agentMap, buildTestApp, type TestApp } from '../../api/test-helpers.js';
import type { ContainerRecord } from '../../storage/store.js';
import { batch, containerId, hostIdentity, instanceId, snapshot, snapshotContainer, taskArn, taskId, transition } from '../../storage/store.fixtures.js';
import { INJECTION_CORPUS, safeEncode } from '../support/injection-corpus.js';

const RUNS = 200;
const WEB_ROOT = fileURLToPath(new URL('../../api/web/', import.meta.url));
const HOST = instanceId('fuzz-host');
const OTHER_HOST = instanceId('fuzz-other');
const C1 = containerId('fuzz-1');
const C2 = containerId('fuzz-2');
const LEGACY = containerId('fuzz-legacy');
const TASK = taskId('fuzz-task');

let t: TestApp;

/** Everything a refused report could have changed. */
async function storeState(): Promise<string> {
  const containers = (await t.store.listContainers({}, { limit: 1000 })).items;
  const history = await Promise.all(containers.map((c) => t.store.history(c.container_id)));
  return JSON.stringify({ containers, hosts: await t.store.listHosts(), history });
}

function checkAnswer(res: LightMyRequestResponse, what: string): void {
  if (res.statusCode >= 500) throw new Error(`${what} → ${res.statusCode} ${res.body.slice(0, 300)}`);
  if (res.statusCode >= 400 && res.raw.req.method !== 'HEAD') {
    expect(res.headers['content-type'], what).toMatch(/^application\/json/);
    const body = res.json() as Record<string, unknown>;
    expect(typeof body.error, what).toBe('string');
    expect(typeof body.message, what).toBe('string');
    expect(body.error, what).toMatch(/^[a-z_]+$/);
  }
}

function expectPrototypeClean(): void {
  const probe = {} as Record<string, unknown>;
  expect(Object.keys(Object.prototype)).toEqual([]);
  for (const key of ['polluted', 'isAdmin', 'toString_', 'a', 'x']) expect(probe[key]).toBeUndefined();
}

// ---- arbitraries ----------------------------------------------------------------------------------

/** Strings of every kind: ASCII, full unicode (incl. lone surrogates), the corpus, huge ones. */
const hostileString = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 64 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
  { weight: 2, arbitrary: fc.constantFrom(...INJECTION_CORPUS) },
  { weight: 1, arbitrary: fc.stringMatching(/^[0-9a-fA-F]{10,70}$/) },
  { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty') },
  { weight: 1, arbitrary: fc.nat({ max: 70_000 }).map((n) => 'x'.repeat(n)) },
);

const POLLUTION_KEYS = fc.constantFrom('__proto__', 'constructor', 'prototype', 'polluted', '__defineGetter__');

/** Any JSON value, including objects keyed by prototype-pollution names and deep nesting. */
const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.oneof(POLLUTION_KEYS, fc.string()), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }) },
  { weight: 1, arbitrary: hostileString },
  { weight: 1, arbitrary: fc.constantFrom(Number.MAX_SAFE_INTEGER + 2, -1, 1e308, -0, 0.5, 2 ** 53, -(2 ** 63)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 2000 }).map((depth) => JSON.parse('['.repeat(depth) + ']'.repeat(depth)) as unknown) },
);

/** JSON text for a value; object keys named `__proto__` are written as own keys (JSON.stringify keeps them). */
const jsonText = (value: unknown) => JSON.stringify(value) ?? 'null';

/** Every path (array of keys) inside a JSON value, the root included. */
function pathsOf(value: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...pathsOf(v, [...prefix, i])));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push(...pathsOf(v, [...prefix, k]));
  return out;
}

type Mutation = { kind: 'replace' | 'add' | 'delete'; pathIndex: number; key: string; value: unknown };

/** A valid body changed at one place: a value replaced (wrong type, hostile text), a key added or removed. */
function mutate(valid: unknown, m: Mutation): unknown {
  const copy = JSON.parse(JSON.stringify(valid)) as unknown;
  const paths = pathsOf(copy);
  const path = paths[m.pathIndex % paths.length];
  if (path.length === 0) return m.kind === 'replace' ? m.value : copy;
  let parent = copy as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const last = path[path.length - 1];
  if (m.kind === 'replace') parent[last] = m.value;
  else if (m.kind === 'delete') {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete parent[last];
  } else {
    const target = parent[last];
    if (target !== null && typeof target === 'object' && !Array.isArray(target)) Object.defineProperty(target, m.key, { value: m.value, enumerable: true, configurable: true, writable: true });
    else parent[last] = m.value;
  }
  return copy;
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('replace', 'replace', 'add', 'delete'),
  pathIndex: fc.nat(),
  key: fc.oneof(POLLUTION_KEYS, fc.string({ maxLength: 12 })),
  value: hostileJson,
});

/** A query string of hostile pairs; sometimes with raw, malformed percent escapes. */
const hostileQuery = fc
  .array(fc.tuple(fc.oneof(fc.constantFrom('cluster', 'instance_id', 'state', 'task_family', 'limit', 'cursor', 'redir', '__proto__', 'constructor[prototype]'), fc.string({ maxLength: 12 })), hostileString, fc.boolean()), { maxLength: 4 })
  .map((pairs) => pairs.map(([k, v, raw]) => `${safeEncode(k)}=${raw ? v.replace(/[^\x21-\x7e]/g, '').replace(/[#&]/g, '%') : safeEncode(v)}`).join('&'));

// ---- valid bodies, the starting points of mutation --------------------------------------------------

const host = hostIdentity({ instance_id: HOST });
const validTransitions = () =>
  batch(host, [transition(100, 'running', { from: null, container: { container_id: containerId('fuzz-new'), task_arn: taskArn(taskId('fuzz-new')) } })]);
const validSnapshot = () => snapshot(host, 100, [snapshotContainer('running', { container_id: C1, task_arn: taskArn(TASK) })]);
const validMap = () => agentMap([agentEntry({ container_id: containerId('fuzz-legacy-new'), task_id: `prod/${taskId('fuzz-legacy-new')}`, instance_id: OTHER_HOST })]);
const validEvent = () => ({ event_id: 'a'.repeat(64), event: 'added', timestamp: 1767225600.5 });

const REPORT_ROUTES = [
  { method: 'POST' as const, url: `/v2/hosts/${HOST}/transitions`, valid: validTransitions },
  { method: 'PUT' as const, url: `/v2/hosts/${HOST}/snapshot`, valid: validSnapshot },
  { method: 'POST' as const, url: '/report/map', valid: validMap },
  { method: 'POST' as const, url: '/report/event', valid: validEvent },
];

const ID_ROUTES = [
  '/query/container_id/%s',
  '/query/container_id/%s/_all',
  '/query/container_id/%s/cadvisor',
  '/query/container_id/%s/urls',
  '/query/task_id/%s',
  '/query/task_id/%s/_all',
  '/query/task_id/%s/cadvisor',
  '/v2/lookup/%s',
  '/v2/containers/%s/history',
  '/v2/hosts/%s',
  '/v2/hosts/%s/transitions',
  '/v2/hosts/%s/snapshot',
  '/docs/%s',
  '/docs/static/%s',
  '/%s',
  '/%s/%s',
];

const QUERY_ROUTES = ['/health', '/metrics', '/v2/containers', '/v2/hosts', `/v2/hosts/${HOST}`, `/query/container_id/${C1}/cadvisor`, `/query/task_id/${TASK}/cadvisor`, `/query/container_id/${C1}`, '/report/map', '/'];

beforeAll(async () => {
  t = await buildTestApp({ webRoot: WEB_ROOT });
  const seeded = [
    await t.app.inject({
      method: 'POST',
      url: `/v2/hosts/${HOST}/transitions`,
      payload: batch(host, [
        transition(1, 'running', { from: null, container: { container_id: C1, task_arn: taskArn(TASK), docker_name: 'ecs-web-3-app-aa11' } }),
        transition(2, 'running', { from: null, container: { container_id: C2, task_arn: taskArn(TASK), docker_name: 'ecs-web-3-proxy-bb22' } }),
      ]),
    }),
    await t.app.inject({ method: 'POST', url: '/report/map', payload: agentMap([agentEntry({ container_id: LEGACY, task_id: `prod/${taskId('fuzz-legacy')}`, instance_id: OTHER_HOST })]) }),
  ];
  for (const res of seeded) expect(res.statusCode, res.body).toBe(200);
});

afterAll(async () => {
  await t?.close();
});

describe('fuzzing every route', () => {
  it('ids in every path parameter: never 5xx, errors are JSON, 200 lookups match literally', async () => {
    await fc.assert(
      fc.asyncProperty(hostileString, fc.constantFrom(...ID_ROUTES), fc.constantFrom('GET', 'GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH'), async (id, route, method) => {
        const url = route.replaceAll('%s', safeEncode(id));
        const res = await t.app.inject({ method, url });
        checkAnswer(res, `${method} ${url.slice(0, 200)}`);
        if (res.statusCode === 200 && route === '/v2/lookup/%s' && method === 'GET') {
          const body = res.json() as { kind: string; query: string; containers: ContainerRecord[] };
          for (const c of body.containers) {
            const literal =
              c.container_id.startsWith(body.query) || c.task_id === body.query || c.task_arn === body.query || c.docker_name === body.query;
            expect(literal, `${body.query} returned ${c.container_id}`).toBe(true);
          }
        }
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('hostile query strings on every route: never 5xx, errors are JSON, filters match literally', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...QUERY_ROUTES), hostileQuery, async (route, query) => {
        const url = `${route}?${query}`;
        const res = await t.app.inject({ method: 'GET', url });
        checkAnswer(res, url.slice(0, 300));
        if (res.statusCode === 200 && route === '/v2/containers') {
          const params = new URLSearchParams(query);
          const items = (res.json() as { items: ContainerRecord[] }).items;
          for (const field of ['cluster', 'instance_id', 'task_family', 'state'] as const) {
            const wanted = params.get(field);
            if (wanted !== null) for (const item of items) expect(item[field], url).toBe(wanted);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  for (const route of REPORT_ROUTES) {
    it(`${route.method} ${route.url.replace(HOST, ':instance_id')}: mutated bodies never 5xx and, when refused, change nothing`, async () => {
      const statuses = new Set<number>();
      await fc.assert(
        fc.asyncProperty(mutation, async (m) => {
          const payload = jsonText(mutate(route.valid(), m));
          const before = await storeState();
          const res = await t.app.inject({ method: route.method, url: route.url, payload, headers: { 'content-type': 'application/json' } });
          statuses.add(res.statusCode);
          checkAnswer(res, `${route.url} ${payload.slice(0, 300)}`);
          if (res.statusCode >= 400) expect(await storeState(), payload.slice(0, 300)).toBe(before);
        }),
        { numRuns: RUNS },
      );
      // One change at a time keeps some bodies valid: the property saw both outcomes.
      expect(statuses).toContain(200);
      expect(statuses).toContain(400);
      expectPrototypeClean();
    });

    it(`${route.method} ${route.url.replace(HOST, ':instance_id')}: arbitrary JSON bodies never 5xx and, when refused, change nothing`, async () => {
      await fc.assert(
        fc.asyncProperty(hostileJson, async (value) => {
          const payload = jsonText(value);
          const before = await storeState();
          const res = await t.app.inject({ method: route.method, url: route.url, payload, headers: { 'content-type': 'application/json' } });
          checkAnswer(res, `${route.url} ${payload.slice(0, 300)}`);
          if (res.statusCode >= 400) expect(await storeState()).toBe(before);
        }),
        { numRuns: RUNS },
      );
      expectPrototypeClean();
    });
  }

  it('raw bytes, truncated JSON and odd content types on report routes: 400 or 415 JSON, nothing stored', async () => {
    const contentTypes = fc.constantFrom(
      'application/json',
      'application/json; charset=utf-8',
      'application/json; charset=latin1',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
      'application/jsonx',
      '',
      'json',
      ';;;',
    );
    const body = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.constantFrom('{', '{"a":', '[1,2', 'nul', '{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"polluted":1}}}', '\uFEFF{}', '{}garbage', '"\\ud800"'),
      fc.constant(jsonText(validSnapshot())).map((s) => s.slice(0, Math.floor(s.length / 2))),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...REPORT_ROUTES), contentTypes, body, async (route, type, payload) => {
        const before = await storeState();
        const headers: Record<string, string> = type === '' ? {} : { 'content-type': type };
        const res = await t.app.inject({ method: route.method, url: route.url, payload, headers });
        checkAnswer(res, `${route.url} ${type} ${payload.slice(0, 100)}`);
        if (res.statusCode >= 400) expect(await storeState()).toBe(before);
        expect([200, 400, 413, 415], `${type} ${payload.slice(0, 100)}`).toContain(res.statusCode);
      }),
      { numRuns: RUNS },
    );
    expectPrototypeClean();
  });

  it('serves nothing from outside the web folder, whatever the path', async () => {
    const traversals = ['../package.json', '..%2fpackage.json', '..%252fpackage.json', '%2e%2e/package.json', '%2e%2e%2fpackage.json', '....//package.json', '..\\package.json', '..%5cpackage.json', '%00index.html', 'index.html%00.txt', '/etc/passwd', '%2fetc%2fpasswd', '..%2f..%2f..%2f..%2fetc%2fpasswd', '.git/config', '.%2egit/config', 'index.html/..', '%c0%ae%c0%ae/package.json', '~/.ssh/id_rsa'];
    for (const path of traversals) {
      for (const url of [`/${path}`, `/docs/static/${path}`, `/docs/${path}`]) {
        const res = await t.app.inject({ url });
        checkAnswer(res, url);
        expect(res.body, url).not.toContain('"devDependencies"');
        expect(res.body, url).not.toMatch(/root:.*:0:0:/);
        expect(res.body, url).not.toContain('[core]');
      }
    }
  });

  it('the seeded records are still there after all of it', async () => {
    for (const id of [C1, C2, LEGACY]) expect((await t.store.getContainer(id)).kind).toBe('found');
  });
});
