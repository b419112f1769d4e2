import { afterEach, describe, expect, it } from 'vitest';
import { readFixture, readJsonFixture } from '../../test/fixtures.js';
import { refusedPort, reply, startLoopback, type LoopbackServer } from '../../test/support/loopback.js';
import { createImdsClient } from './imds.js';
import { failure } from '../../test/support/observation.js';

const bodies = readJsonFixture<Record<string, string>>('imds/meta-data-text-bodies.aemm.json');
const page401 = readFixture('imds/401-unauthorized.html');
const page400 = readFixture('imds/400-bad-request.html');
const page404 = readFixture('imds/404-not-found.html');

interface FakeImds {
  /** How the token PUT is answered: a status, or 'hang' (the hop-limit case: never answers). */
  put: number | 'hang';
  /** GETs without a valid token get the 401 page (IMDSv2 only). */
  v2Only: boolean;
  /** Paths answered 404 even though a body exists. */
  missing: Set<string>;
  /** Tokens issued so far; revoking one makes GETs with it 401. */
  issued: string[];
  revoked: Set<string>;
  /** The text of the n-th token issued (from 1); `token-<n>` by default. */
  tokenText?: (n: number) => string;
}

let server: LoopbackServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function startImds(overrides: Partial<FakeImds> = {}): Promise<FakeImds> {
  const imds: FakeImds = { put: 200, v2Only: true, missing: new Set(), issued: [], revoked: new Set(), ...overrides };
  server = await startLoopback((req, res) => {
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      if (imds.put === 'hang') return;
      if (imds.put !== 200) return reply(res, imds.put, imds.put === 400 ? page400 : '', 'text/html');
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!(ttl >= 1 && ttl <= 21600)) return reply(res, 400, page400, 'text/html');
      const token = imds.tokenText?.(imds.issued.length + 1) ?? `token-${imds.issued.length + 1}`;
      imds.issued.push(token);
      return reply(res, 200, token, 'text/plain');
    }
    const token = req.headers['x-aws-ec2-metadata-token'];
    const valid = typeof token === 'string' && imds.issued.includes(token) && !imds.revoked.has(token);
    if ((imds.v2Only && !valid) || (token !== undefined && !valid)) return reply(res, 401, page401, 'text/html');
    const body = bodies[req.url ?? ''];
    if (body === undefined || imds.missing.has(req.url ?? '')) return reply(res, 404, page404, 'text/html');
    reply(res, 200, body, 'text/plain');
  });
  return imds;
}

const identity = {
  instance_id: 'i-1234567890abcdef0',
  instance_ip: '172.16.34.43',
  instance_type: 'm4.xlarge',
  instance_az: 'us-east-1a',
  region: 'us-east-1',
  host_name: 'ip-172-16-34-43.ec2.internal',
};

function gets() {
  return server!.requests.filter((r) => r.method === 'GET');
}
function puts() {
  return server!.requests.filter((r) => r.method === 'PUT');
}


describe('IMDS client', () => {
  it('reads the identity over IMDSv2: one token PUT with the TTL header, then GETs with the token', async () => {
    await startImds();
    const client = createImdsClient({ baseUrl: server!.url, timeoutMs: 1000, tokenTtlSeconds: 300 });
    expect(await client.identity()).toEqual(identity);
    expect(puts()).toHaveLength(1);
    expect(puts()[0].headers['x-aws-ec2-metadata-token-ttl-seconds']).toBe('300');
    expect(gets()).toHaveLength(6);
    expect(gets().every((r) => r.headers['x-aws-ec2-metadata-token'] === 'token-1')).toBe(true);
  });

  it('reuses the token until 80% of its TTL, then fetches a new one', async () => {
    await startImds();
    let clock = 1_000_000;
    const client = createImdsClient({ baseUrl: server!.url, timeoutMs: 1000, tokenTtlSeconds: 100, now: () => clock });
    await client.identity();
    clock += 79_000;
    await client.identity();
    expect(puts()).toHaveLength(1);
    clock += 2_000;
    await client.identity();
    expect(puts()).toHaveLength(2);
    expect(gets().at(-1)?.headers['x-aws-ec2-metadata-token']).toBe('token-2');
  });

  it('drops a token answered with 401, fetches a new one and retries once', async () => {
    const imds = await startImds();
    const client = createImdsClient({ baseUrl: server!.url, timeoutMs: 1000, tokenTtlSeconds: 21600 });
    await client.identity();
    imds.revoked.add('token-1');
    expect(await client.identity()).toEqual(identity);
    expect(puts()).toHaveLength(2);
    expect(gets().at(-1)?.headers['x-aws-ec2-metadata-token']).toBe('token-2');
  });

  it('fails with ERR_UNAUTHORIZED when even a fresh token is refused', async () => {
    const imds = await startImds();
    const client = createImdsClient({ baseUrl: server!.url, timeoutMs: 1000, tokenTtlSeconds: 60 });
    imds.revoked.add('token-1').add('token-2');
    expect(await failure(client.identity())).toMatchObject({ source: 'imds', code: 'ERR_UNAUTHORIZED', status: 401 });
  });

  it('falls back to IMDSv1 when the token PUT never answers (hop limit), counting the fallback', async () => {
    await startImds({ put: 'hang', v2Only: false });
    let fallbacks = 0;
    const client = createImdsClient({ baseUrl: server!.url, timeoutMs: 150, tokenTtlSeconds: 60, onFallback: () => fallbacks++ });
    expect(await client.identity()).toEqual(identity);
    expect(fallbacks).toBe(1);
    expect(gets().every((r) => r.headers['x-aws-ec2-metadata-token'] === undefined)).toBe(true);
  });

  // 404 as the AWS SDKs take it: an endpoint (an older emulator, a proxy) without the token route.
  it.each([403, 404, 405])('falls back to IMDSv1 when the token PUT is refused with %i', async (status) => {
    await startImds({ put: status, v2Only: false });
    let fallbacks = 0;
    const client = createImdsClient({ baseUrl: server!.url, timeoutMs: 1000, tokenTtlSeconds: 60, onFallback: () => fallbacks++ });
    expect((await client.identity()).instance_id).toBe('i-1234567890abcdef0');
    expect(fallbacks).toBe(1);
  });

  it('keeps using IMDSv1 for a while after a fallback, then tries IMDSv2 again', async () => {
    const imds = await startImds({ put: 403, v2Only: false });
    let clock = 0;
    let fallbacks = 0;
    const client = createImdsClient({ baseUrl: server!.url, timeoutMs: 1000, tokenTtlSeconds: 60, now: () => clock, v2RetryAfterMs: 10_000, onFallback: () => fallbacks++ });
    await client.identity();
    clock += 5_000;
    await client.identity();
    expect(puts()).toHaveLength(1);
    imds.put = 200;
    clock += 6_000;
    await client.identity();
    expect(puts()).toHaveLength(2);
    expect(gets().at(-1)?.headers['x-aws-ec2-metadata-token']).toBe('token-1');
    expect(fallbacks).toBe(1);
  });

  it('does not fall back when the token PUT is answered 400, and reports the status', async () => {
    await startImds({ put: 400, v2Only: false });
    let fallbacks = 0;
    const client = createImdsClient({ baseUrl: server!.url, timeoutMs: 1000, tokenTtlSeconds: 60, onFallback: () => fallbacks++ });
    expect(await failure(client.identity())).toMatchObject({ code: 'ERR_HTTP_STATUS', status: 400 });
    expect(fallbacks).toBe(0);
    expect(gets()).toHaveLength(0);
  });

  it.each([
    ['an emoji', 'token-\u{1F642}'],
    ['a control character', 'tok\u0001en'],
    ['a Latin-1 letter', 'token-\u00e9'],
  ])('fails with ERR_GARBAGE on a token holding %s (no header can carry it), and asks for a new one next time', async (_name, text) => {
    await startImds({ tokenText: (n) => (n === 1 ? text : `token-${n}`) });
    const client = createImdsClient({ baseUrl: server!.url, timeoutMs: 1000, tokenTtlSeconds: 60 });
    expect(await failure(client.identity())).toMatchObject({ source: 'imds', code: 'ERR_GARBAGE', message: 'IMDS PUT /latest/api/token: not a token' });
    expect(gets()).toHaveLength(0);
    expect(await client.identity()).toEqual(identity);
    expect(puts()).toHaveLength(2);
  });

  it('returns null for optional paths answered 404', async () => {
    await startImds({ missing: new Set(['/latest/meta-data/placement/region', '/latest/meta-data/hostname']) });
    const client = createImdsClient({ baseUrl: server!.url, timeoutMs: 1000, tokenTtlSeconds: 60 });
    expect(await client.identity()).toEqual({ ...identity, region: null, host_name: null });
  });

  it('fails when instance-id is answered 404', async () => {
    await startImds({ missing: new Set(['/latest/meta-data/instance-id']) });
    const client = createImdsClient({ baseUrl: server!.url, timeoutMs: 1000, tokenTtlSeconds: 60 });
    expect(await failure(client.identity())).toMatchObject({ source: 'imds', code: 'ERR_HTTP_STATUS', status: 404 });
  });

  it('fails with ERR_GARBAGE when instance-id is not an instance id', async () => {
    server = await startLoopback((req, res) => {
      if (req.method === 'PUT') return reply(res, 200, 'tok', 'text/plain');
      reply(res, 200, '<html>captive portal</html>', 'text/html');
    });
    const client = createImdsClient({ baseUrl: server.url, timeoutMs: 1000, tokenTtlSeconds: 60 });
    expect(await failure(client.identity())).toMatchObject({ code: 'ERR_GARBAGE' });
  });

  it('fails with ERR_GARBAGE when an optional path is answered 200 with an error page, instead of identifying the host with it', async () => {
    // The loop keeps the first identity for good and the server refuses a host field over its limit
    // (instance_az, region: 64 characters): identified with this page, the host never reported again.
    for (const path of ['placement/availability-zone', 'placement/region', 'instance-type', 'local-ipv4', 'hostname']) {
      server = await startLoopback((req, res) => {
        if (req.method === 'PUT') return reply(res, 200, 'tok', 'text/plain');
        if (req.url === `/latest/meta-data/${path}`) return reply(res, 200, page404, 'text/html');
        const body = bodies[req.url ?? ''];
        reply(res, body === undefined ? 404 : 200, body ?? page404, 'text/plain');
      });
      const client = createImdsClient({ baseUrl: server.url, timeoutMs: 1000, tokenTtlSeconds: 60 });
      const error = await failure(client.identity());
      expect(error, path).toMatchObject({ source: 'imds', code: 'ERR_GARBAGE' });
      expect(error.message).toContain(path);
      await server.close();
      server = undefined;
    }
  });

  it('takes the shapes real instances answer: local zones, metal and dotted instance types, a hostname with a custom domain', async () => {
    const odd: Record<string, string> = {
      '/latest/meta-data/placement/availability-zone': 'us-west-2-lax-1a',
      '/latest/meta-data/instance-type': 'u-6tb1.metal',
      '/latest/meta-data/hostname': 'ip-10-0-0-1.corp.example.com',
    };
    server = await startLoopback((req, res) => {
      if (req.method === 'PUT') return reply(res, 200, 'tok', 'text/plain');
      const body = odd[req.url ?? ''] ?? bodies[req.url ?? ''];
      reply(res, body === undefined ? 404 : 200, body ?? page404, 'text/plain');
    });
    const client = createImdsClient({ baseUrl: server.url, timeoutMs: 1000, tokenTtlSeconds: 60 });
    expect(await client.identity()).toEqual({ ...identity, instance_az: 'us-west-2-lax-1a', instance_type: 'u-6tb1.metal', host_name: 'ip-10-0-0-1.corp.example.com' });
  });

  it('falls back when the token PUT is refused at the TCP level, then fails as unreachable', async () => {
    const port = await refusedPort();
    let fallbacks = 0;
    const client = createImdsClient({ baseUrl: new URL(`http://127.0.0.1:${port}`), timeoutMs: 1000, tokenTtlSeconds: 60, onFallback: () => fallbacks++ });
    expect(await failure(client.identity())).toMatchObject({ source: 'imds', code: 'ERR_UNREACHABLE' });
    expect(fallbacks).toBe(1);
  });

  it('fails with ERR_TIMEOUT when a GET never answers', async () => {
    server = await startLoopback((req, res) => {
      if (req.method === 'PUT') reply(res, 200, 'tok', 'text/plain');
    });
    const client = createImdsClient({ baseUrl: server.url, timeoutMs: 150, tokenTtlSeconds: 60 });
    expect(await failure(client.identity())).toMatchObject({ code: 'ERR_TIMEOUT' });
  });
});
