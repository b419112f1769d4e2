// Bodies over the 1 MiB limit, wrong content types and malformed JSON on every report route (legacy
// and v2): 413 / 415 / 400 with a JSON `{error, message}` body, and nothing stored. Sizes are
// checked with a declared content-length (inject) and, on a real listening server, without one
// (chunked transfer encoding) and with a content-length that lies.
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentEntry, agentMap, buildTestApp, type TestApp } from '../../api/test-helpers.js';
import { containerId, hostIdentity, instanceId, snapshot, snapshotContainer, taskId } from '../../storage/store.fixtures.js';

const LIMIT = 1024 * 1024;
const HOST = instanceId('limits');

const ROUTES = [
  { method: 'POST', url: '/report/map' },
  { method: 'POST', url: '/report/event' },
  { method: 'POST', url: `/v2/hosts/${HOST}/transitions` },
  { method: 'PUT', url: `/v2/hosts/${HOST}/snapshot` },
] as const;

/** A syntactically valid JSON document of exactly `bytes` bytes (a snapshot padded with a long string). */
function jsonOfSize(bytes: number): string {
  const head = '{"pad":"';
  const tail = '"}';
  return head + 'x'.repeat(bytes - head.length - tail.length) + tail;
}

/** A snapshot that is valid in every respect but its size: one container with a huge image name repeated. */
function validSnapshotOver(bytes: number): string {
  const one = JSON.stringify(snapshotContainer('running', { container_id: containerId('big'), image: 'i'.repeat(1000) })).length;
  const containers = Array.from({ length: Math.ceil(bytes / one) + 1 }, (_, i) => snapshotContainer('running', { container_id: containerId(`big-${i}`), image: 'i'.repeat(1000) }));
  const text = JSON.stringify(snapshot(hostIdentity({ instance_id: HOST }), 1, containers));
  if (text.length <= bytes) throw new Error('snapshot not large enough');
  return text;
}

let t: TestApp;
let base: { host: string; port: number };

async function nothingStored(): Promise<void> {
  expect((await t.store.listContainers({}, { limit: 10 })).items).toEqual([]);
  expect(await t.store.listHosts()).toEqual([]);
}

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Sends a body in chunks (no content-length) or with a declared length; tolerates the server cutting the upload short. */
function send(method: string, path: string, chunks: Buffer[], headers: Record<string, string>): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ ...base, method, path, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    // Writing after the server answered 413 may fail with EPIPE/ECONNRESET: the answer is what counts.
    req.on('error', (err) => reject(err));
    let i = 0;
    const writeNext = () => {
      while (i < chunks.length) {
        if (!req.write(chunks[i++])) return void req.once('drain', writeNext);
      }
      req.end();
    };
    writeNext();
  });
}

beforeAll(async () => {
  t = await buildTestApp({ bodyLimitBytes: LIMIT });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  base = { host: '127.0.0.1', port: (t.app.server.address() as AddressInfo).port };
});

afterAll(async () => {
  await t?.close();
});

describe('bodies over the 1 MiB limit', () => {
  it('a body of exactly the limit is read (and judged on its content), one byte more is 413 JSON, on every report route', async () => {
    for (const { method, url } of ROUTES) {
      const atLimit = await t.app.inject({ method, url, payload: jsonOfSize(LIMIT), headers: { 'content-type': 'application/json' } });
      expect(atLimit.statusCode, url).toBe(400);
      const over = await t.app.inject({ method, url, payload: jsonOfSize(LIMIT + 1), headers: { 'content-type': 'application/json' } });
      expect(over.statusCode, url).toBe(413);
      expect(over.headers['content-type']).toMatch(/^application\/json/);
      expect(over.json()).toEqual({ error: 'payload_too_large', message: expect.any(String) });
    }
    await nothingStored();
  });

  it('a valid v2 snapshot that is merely too large is refused with 413 and stores nothing', async () => {
    const res = await t.app.inject({ method: 'PUT', url: `/v2/hosts/${HOST}/snapshot`, payload: validSnapshotOver(LIMIT), headers: { 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(413);
    await nothingStored();
  });

  it('a valid legacy map that is merely too large is refused with 413 and stores nothing', async () => {
    const entries = Array.from({ length: 3000 }, (_, i) => agentEntry({ container_id: containerId(`legacy-big-${i}`), task_id: `prod/${taskId(`legacy-big-${i}`)}`, instance_id: HOST }));
    const payload = JSON.stringify(agentMap(entries));
    expect(payload.length).toBeGreaterThan(LIMIT);
    const res = await t.app.inject({ method: 'POST', url: '/report/map', payload, headers: { 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(413);
    await nothingStored();
  });

  it('a declared content-length over the limit is refused before the body is read', async () => {
    for (const { method, url } of ROUTES) {
      // Only a few bytes follow the header: the server must not wait for the 2 MiB it was promised.
      const res = await new Promise<RawAnswer>((resolve, reject) => {
        const req = request({ ...base, method, path: url, headers: { 'content-type': 'application/json', 'content-length': String(2 * LIMIT) } }, (r) => {
          const parts: Buffer[] = [];
          r.on('data', (c: Buffer) => parts.push(c));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, body: Buffer.concat(parts).toString('utf8') }));
        });
        req.on('error', reject);
        req.write('{"a":');
      });
      expect(res.status, url).toBe(413);
      expect(JSON.parse(res.body)).toMatchObject({ error: 'payload_too_large' });
    }
    await nothingStored();
  });

  it('a chunked body without content-length is cut off at the limit with 413 JSON', async () => {
    const chunk = Buffer.from('x'.repeat(64 * 1024));
    for (const { method, url } of ROUTES) {
      const chunks = [Buffer.from('{"pad":"'), ...Array.from({ length: 40 }, () => chunk), Buffer.from('"}')];
      const res = await send(method, url, chunks, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      expect(res.status, url).toBe(413);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(res.body)).toEqual({ error: 'payload_too_large', message: expect.any(String) });
    }
    await nothingStored();
  });

  it('the server still answers after every oversized upload', async () => {
    const res = await send('GET', '/health', [], {});
    expect(res.status).toBe(200);
  });
});

describe('wrong content types and malformed JSON', () => {
  const body = JSON.stringify(agentMap([agentEntry({ container_id: containerId('ct'), task_id: `prod/${taskId('ct')}`, instance_id: instanceId('ct') })]));

  it('answers 415 JSON for a body that is neither JSON nor text, and for none at all', async () => {
    for (const { method, url } of ROUTES) {
      for (const type of ['application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', 'application/merge-patch+json', 'image/png', undefined]) {
        const res = await t.app.inject({ method, url, payload: body, headers: type ? { 'content-type': type } : {} });
        expect(res.statusCode, `${url} ${type}`).toBe(415);
        expect(res.json()).toEqual({ error: 'unsupported_media_type', message: expect.any(String) });
      }
    }
    expect((await t.store.getContainer(containerId('ct'))).kind).toBe('missing');
  });

  it('answers 400 JSON for text/plain: text is read, as docs/api.md says, and is not a JSON object', async () => {
    for (const { method, url } of ROUTES) {
      const res = await t.app.inject({ method, url, payload: body, headers: { 'content-type': 'text/plain' } });
      expect(res.statusCode, url).toBe(400);
      expect(res.json()).toEqual({ error: 'bad_request', message: expect.any(String) });
    }
    expect((await t.store.getContainer(containerId('ct'))).kind).toBe('missing');
  });

  it('answers 400 JSON for malformed, empty, truncated or poisoned JSON', async () => {
    const bad = ['', '{', '{"a":1', '[1,]', "{'a':1}", '{"a":1}}', 'NaN', '{"a":01}', body.slice(0, -1), '{"__proto__":{"polluted":true}}', '{"constructor":{"prototype":{"polluted":true}}}'];
    for (const { method, url } of ROUTES) {
      for (const payload of bad) {
        const res = await t.app.inject({ method, url, payload, headers: { 'content-type': 'application/json' } });
        expect(res.statusCode, `${url} ${payload.slice(0, 40)}`).toBe(400);
        expect(res.json()).toEqual({ error: 'bad_request', message: expect.any(String) });
      }
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await nothingStored();
  });

  it('says whether a refused body broke JSON syntax, and where, or carried a prototype-poisoning key', async () => {
    const message = async (payload: string) =>
      (await t.app.inject({ method: 'POST', url: '/report/map', payload, headers: { 'content-type': 'application/json' } })).json().message;
    expect(await message('{"a":1')).toMatch(/^body is not valid JSON: .*position 6/);
    expect(await message("{'a':1}")).toMatch(/^body is not valid JSON: .*position 1/);
    expect(await message('{"__proto__":{"polluted":true}}')).toBe('body holds a "__proto__" or "constructor"."prototype" key, refused as prototype poisoning');
    expect(await message('{"constructor":{"prototype":{"polluted":true}}}')).toBe('body holds a "__proto__" or "constructor"."prototype" key, refused as prototype poisoning');
    expect(await message('')).toBe("Body cannot be empty when content-type is set to 'application/json'");
  });
});

describe('deeply nested JSON', () => {
  it('answers 400 JSON (never 5xx, never a crash) to nesting from a thousand to half a million levels, inside the limit', async () => {
    for (let depth = 1_000; depth <= 500_000; depth *= 4) {
      const deep = '['.repeat(depth) + ']'.repeat(depth);
      for (const { method, url } of ROUTES) {
        for (const payload of [deep, `{"host":${deep}}`, `{"a":{"b":${deep}}}`]) {
          const res = await t.app.inject({ method, url, payload, headers: { 'content-type': 'application/json' } });
          expect(res.statusCode, `${url} depth ${depth}`).toBe(400);
          expect(res.json()).toEqual({ error: 'bad_request', message: expect.any(String) });
        }
      }
    }
    await nothingStored();
    expect((await t.app.inject({ url: '/health' })).statusCode).toBe(200);
  });
});

// Last: it stores a record, which the tests above must not find.
describe('chunked uploads within the limit', () => {
  it('a small chunked body is read normally (chunked encoding itself is not refused)', async () => {
    const body = JSON.stringify(snapshot(hostIdentity({ instance_id: HOST }), 1, [snapshotContainer('running', { container_id: containerId('chunked-ok') })]));
    const chunks = [Buffer.from(body.slice(0, 100)), Buffer.from(body.slice(100))];
    const res = await send('PUT', `/v2/hosts/${HOST}/snapshot`, chunks, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    expect(res.status).toBe(200);
    expect((await t.store.getContainer(containerId('chunked-ok'))).kind).toBe('found');
  });

});
