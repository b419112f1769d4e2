// Report routes with --report-token set: only `Authorization: Bearer <token>` or Basic auth whose
// password is the token gets in. Everything else (no header, wrong token, token in the wrong place,
// malformed Basic, the token as username) is a 401 JSON answer with WWW-Authenticate, decided before
// the body is read, and nothing is stored. Read routes stay open. During a token rotation the same
// holds for the previous token, accepted beside the current one.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { agentEntry, agentMap, buildTestApp, type TestApp } from '../../api/test-helpers.js';
import { batch, containerId, hostIdentity, instanceId, snapshot, snapshotContainer, taskArn, taskId, transition } from '../../storage/store.fixtures.js';

const TOKEN = 'r3port-T0ken_2026';
const HOST = instanceId('auth');
const C = containerId('auth');
const LEGACY_C = containerId('auth-legacy');
const EVENT_ID = 'e'.repeat(64);

const basic = (userPass: string) => `Basic ${Buffer.from(userPass, 'utf8').toString('base64')}`;

/** One valid body per report route; each stores something recognisable when accepted. */
const ROUTES = [
  { name: 'transitions', method: 'POST', url: `/v2/hosts/${HOST}/transitions`, payload: () => batch(hostIdentity({ instance_id: HOST }), [transition(1, 'running', { container: { container_id: C, task_arn: taskArn(taskId('auth')) } })]) },
  { name: 'snapshot', method: 'PUT', url: `/v2/hosts/${HOST}/snapshot`, payload: () => snapshot(hostIdentity({ instance_id: HOST }), 1, [snapshotContainer('running', { container_id: C })]) },
  { name: 'legacy map', method: 'POST', url: '/report/map', payload: () => agentMap([agentEntry({ container_id: LEGACY_C, task_id: `prod/${taskId('auth-legacy')}`, instance_id: HOST })]) },
  { name: 'legacy event', method: 'POST', url: '/report/event', payload: () => ({ event_id: EVENT_ID, event: 'added', timestamp: 1767225600 }) },
] as const;

/** Headers that must all be refused, made for one token (the current one, or a rotation's previous one). */
const refusedHeaders = (TOKEN: string): Array<[string, Record<string, string>]> => [
  ['no Authorization header', {}],
  ['an empty Authorization header', { authorization: '' }],
  ['Bearer with a wrong token', { authorization: 'Bearer wrong-token' }],
  ['Bearer with the token in another case', { authorization: `Bearer ${TOKEN.toUpperCase()}` }],
  ['Bearer with a prefix of the token', { authorization: `Bearer ${TOKEN.slice(0, -1)}` }],
  ['Bearer with the token and more', { authorization: `Bearer ${TOKEN}x` }],
  ['Bearer with a space inside the token', { authorization: `Bearer ${TOKEN.slice(0, 4)} ${TOKEN.slice(4)}` }],
  ['Bearer with the token quoted', { authorization: `Bearer "${TOKEN}"` }],
  ['Bearer with a lookalike token (Cyrillic е)', { authorization: `Bearer ${TOKEN.replace('e', 'е')}` }],
  ['Bearer glued to the token', { authorization: `Bearer${TOKEN}` }],
  ['Bearer and a tab instead of a space', { authorization: `Bearer\t${TOKEN}` }],
  ['Bearer with nothing after it', { authorization: 'Bearer ' }],
  ['the bare token without a scheme', { authorization: TOKEN }],
  ['an unknown scheme', { authorization: `Token ${TOKEN}` }],
  ['Digest', { authorization: `Digest username="x", response="${TOKEN}"` }],
  ['Basic with a wrong password', { authorization: basic('x:wrong') }],
  ['Basic with the token as username only', { authorization: basic(`${TOKEN}:`) }],
  ['Basic with the token and no colon', { authorization: basic(TOKEN) }],
  ['Basic with the token as username and a wrong password', { authorization: basic(`${TOKEN}:nope`) }],
  ['Basic with the token followed by a colon in the password', { authorization: basic(`x:${TOKEN}:`) }],
  ['Basic with the token not base64-encoded', { authorization: `Basic x:${TOKEN}` }],
  ['Basic with malformed base64', { authorization: 'Basic !!!not*base64%%%' }],
  ['Basic with truncated base64', { authorization: basic(`x:${TOKEN}`).slice(0, -4) }],
  ['Basic with nothing after it', { authorization: 'Basic ' }],
  ['Basic with the token as password in another case', { authorization: basic(`x:${TOKEN.toLowerCase()}`) }],
  ['the token in a cookie', { cookie: `token=${TOKEN}` }],
  ['the token in an X-Report-Token header', { 'x-report-token': TOKEN }],
  ['the token in Proxy-Authorization', { 'proxy-authorization': `Bearer ${TOKEN}` }],
];
const REFUSED = refusedHeaders(TOKEN);

/** Headers that carry the token and must be accepted. */
const acceptedHeaders = (TOKEN: string): Array<[string, Record<string, string>]> => [
  ['Bearer with the token', { authorization: `Bearer ${TOKEN}` }],
  ['bearer in lower case (auth schemes are case-insensitive, RFC 9110 11.1)', { authorization: `bearer ${TOKEN}` }],
  ['Bearer with extra spaces around the token', { authorization: `Bearer   ${TOKEN}  ` }],
  ['Basic with the token as password (http://x:TOKEN@server/)', { authorization: basic(`x:${TOKEN}`) }],
  ['Basic with an empty username', { authorization: basic(`:${TOKEN}`) }],
  ['BASIC in upper case', { authorization: basic(`agent:${TOKEN}`).replace('Basic', 'BASIC') }],
];
const ACCEPTED = acceptedHeaders(TOKEN);

let t: TestApp;

beforeEach(async () => {
  t = await buildTestApp({ reportToken: TOKEN });
});
afterEach(async () => {
  await t.close();
});

async function storedNothing(): Promise<void> {
  expect((await t.store.listContainers({}, { limit: 10 })).items).toEqual([]);
  expect(await t.store.listHosts()).toEqual([]);
  expect(await t.store.history(C)).toEqual([]);
}

function expect401(res: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, what: string): void {
  expect(res.statusCode, what).toBe(401);
  expect(res.headers['content-type'], what).toMatch(/^application\/json/);
  expect(res.json(), what).toEqual({ error: 'unauthorized', message: expect.any(String) });
  expect(res.headers['www-authenticate'], what).toMatch(/Bearer realm="[^"]+".*Basic realm="[^"]+"/);
}

describe('report routes with a token configured', () => {
  for (const route of ROUTES) {
    it(`${route.name}: refuses every request that does not carry the token, with 401 JSON and WWW-Authenticate, storing nothing`, async () => {
      for (const [what, headers] of REFUSED) {
        const res = await t.app.inject({ method: route.method, url: route.url, payload: route.payload(), headers });
        expect401(res, what);
      }
      await storedNothing();
    });

    it(`${route.name}: accepts Bearer and Basic-with-token-as-password`, async () => {
      for (const [what, headers] of ACCEPTED) {
        const res = await t.app.inject({ method: route.method, url: route.url, payload: route.payload(), headers });
        expect(res.statusCode, `${what}: ${res.body}`).toBe(200);
      }
      if (route.name === 'legacy event') return;
      const id = route.name === 'legacy map' ? LEGACY_C : C;
      expect((await t.store.getContainer(id)).kind).toBe('found');
    });
  }

  it('decides before reading the body: an unauthenticated malformed, oversized, compressed or wrongly typed body is a 401, not a 400/413/415', async () => {
    const cases = [
      { payload: '{not json', headers: { 'content-type': 'application/json' } },
      { payload: 'x'.repeat(2 * 1024 * 1024), headers: { 'content-type': 'application/json' } },
      { payload: '<xml/>', headers: { 'content-type': 'application/xml' } },
      { payload: '{"__proto__":{"polluted":1}}', headers: { 'content-type': 'application/json' } },
      { payload: '{}', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } },
    ];
    for (const route of ROUTES) {
      for (const c of cases) {
        const res = await t.app.inject({ method: route.method, url: route.url, payload: c.payload, headers: { ...c.headers, authorization: 'Bearer wrong' } });
        expect401(res, `${route.url} ${c.payload.slice(0, 20)}`);
      }
    }
    await storedNothing();
  });

  it('refuses the token in the query string or the body', async () => {
    const withQuery = await t.app.inject({ method: 'PUT', url: `/v2/hosts/${HOST}/snapshot?token=${TOKEN}&access_token=${TOKEN}`, payload: ROUTES[1].payload() });
    expect401(withQuery, 'query string');
    const withBody = await t.app.inject({ method: 'POST', url: '/report/event', payload: { event_id: EVENT_ID, event: 'added', timestamp: 1, token: TOKEN } });
    expect401(withBody, 'body');
    await storedNothing();
  });

  it('refuses every arbitrary Authorization header that does not carry the token (property)', async () => {
    const header = fc.oneof(
      fc.string({ maxLength: 80 }).filter((s) => /^[\x20-\x7e]*$/.test(s)),
      fc.string({ maxLength: 60 }).map((s) => basic(s)),
      fc.tuple(fc.constantFrom('Bearer', 'bearer', 'Basic', 'BEARER', 'Negotiate', ''), fc.string({ maxLength: 40 })).map(([scheme, v]) => `${scheme} ${v}`.replace(/[^\x20-\x7e]/g, '')),
      fc.string({ maxLength: 40 }).map((s) => basic(`${TOKEN}${s.replace(/:/g, '')}:`)),
    );
    await fc.assert(
      fc.asyncProperty(header, fc.constantFrom(...ROUTES), async (authorization, route) => {
        fc.pre(!authorization.includes(TOKEN) || authorization.startsWith('Basic'));
        const res = await t.app.inject({ method: route.method, url: route.url, payload: route.payload(), headers: { authorization } });
        expect401(res, authorization);
      }),
      { numRuns: 300 },
    );
    await storedNothing();
  });

  it('follows a rotated token: the old one is refused from the next request on', async () => {
    await t.close();
    let current = 'first-token';
    t = await buildTestApp({ reportToken: () => current });
    const route = ROUTES[1];
    expect((await t.app.inject({ method: route.method, url: route.url, payload: route.payload(), headers: { authorization: 'Bearer first-token' } })).statusCode).toBe(200);
    current = 'second-token';
    expect401(await t.app.inject({ method: route.method, url: route.url, payload: route.payload(), headers: { authorization: 'Bearer first-token' } }), 'old token');
    expect401(await t.app.inject({ method: route.method, url: route.url, payload: route.payload(), headers: { authorization: basic('x:first-token') } }), 'old token, Basic');
    expect((await t.app.inject({ method: route.method, url: route.url, payload: route.payload(), headers: { authorization: basic('x:second-token') } })).statusCode).toBe(200);
  });

  it('keeps the read routes open: lookups need no token', async () => {
    const stored = await t.app.inject({ method: 'PUT', url: ROUTES[1].url, payload: ROUTES[1].payload(), headers: { authorization: `Bearer ${TOKEN}` } });
    expect(stored.statusCode).toBe(200);
    for (const url of [`/v2/lookup/${C}`, `/query/container_id/${C}`, '/v2/containers', '/v2/hosts', `/v2/containers/${C}/history`, '/health', '/metrics']) {
      const res = await t.app.inject({ url });
      expect(res.statusCode, url).toBe(200);
    }
  });

  it('counts refused reports as unauthorized in reports_received_total', async () => {
    await t.app.inject({ method: 'PUT', url: ROUTES[1].url, payload: ROUTES[1].payload(), headers: { authorization: 'Bearer wrong' } });
    const metrics = (await t.app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(/ecs_id_mapper_reports_received_total\{[^}]*kind="snapshot"[^}]*result="unauthorized"[^}]*\} 1/);
  });
});

describe('report routes during a token rotation (--report-token-previous)', () => {
  const PREVIOUS = 'pr3vious-T0ken_2025';

  beforeEach(async () => {
    await t.close();
    t = await buildTestApp({ reportToken: TOKEN, previousReportToken: PREVIOUS });
  });

  for (const route of ROUTES) {
    it(`${route.name}: refuses every header refused for either token alone, storing nothing`, async () => {
      for (const [what, headers] of [...refusedHeaders(TOKEN), ...refusedHeaders(PREVIOUS)]) {
        const res = await t.app.inject({ method: route.method, url: route.url, payload: route.payload(), headers });
        expect401(res, `${what} (${Object.values(headers).join(' ').slice(0, 40)})`);
      }
      await storedNothing();
    });

    it(`${route.name}: accepts both tokens, each as Bearer and as the Basic password`, async () => {
      for (const [what, headers] of [...acceptedHeaders(TOKEN), ...acceptedHeaders(PREVIOUS)]) {
        const res = await t.app.inject({ method: route.method, url: route.url, payload: route.payload(), headers });
        expect(res.statusCode, `${what}: ${res.body}`).toBe(200);
      }
    });
  }

  it('refuses a token made of the two tokens, or of parts of each', async () => {
    for (const token of [`${TOKEN}${PREVIOUS}`, `${TOKEN},${PREVIOUS}`, `${TOKEN} ${PREVIOUS}`, `${PREVIOUS.slice(0, 10)}${TOKEN.slice(10)}`]) {
      expect401(await t.app.inject({ method: 'PUT', url: ROUTES[1].url, payload: ROUTES[1].payload(), headers: { authorization: `Bearer ${token}` } }), token);
      expect401(await t.app.inject({ method: 'PUT', url: ROUTES[1].url, payload: ROUTES[1].payload(), headers: { authorization: basic(`x:${token}`) } }), `Basic ${token}`);
    }
    await storedNothing();
  });
});
