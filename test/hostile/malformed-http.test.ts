// Requests Node cannot parse as HTTP (garbage request lines, invalid header bytes, a header block
// over the size limit, Content-Length and Transfer-Encoding together, a bad chunk) on a real
// listening server: the answer is still our `{error, message}` JSON with a stable snake_case code,
// the connection is closed, nothing is stored, and the server keeps answering others.
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../api/test-helpers.js';

let t: TestApp;
let port: number;

beforeAll(async () => {
  t = await buildTestApp({ requestTimeoutMs: 500, connectionTimeoutMs: 5_000 });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  port = (t.app.server.address() as AddressInfo).port;
});
afterAll(async () => {
  await t?.close();
});

/** Writes raw bytes and collects everything until the server closes the connection. */
function raw(bytes: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const guard = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within 5 s; got ${JSON.stringify(data.slice(0, 200))}`));
    }, 5_000);
    socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(guard);
      resolve(data);
    });
    socket.write(bytes);
  });
}

function parse(answer: string): { status: number; headers: string; body: string } {
  const [head, ...rest] = answer.split('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), headers: head, body: rest.join('\r\n\r\n') };
}

function expectJsonError(answer: string, status: number, error: string): void {
  const res = parse(answer);
  expect(res.status, answer.slice(0, 200)).toBe(status);
  expect(res.headers).toMatch(/content-type: application\/json/i);
  expect(JSON.parse(res.body)).toEqual({ error, message: expect.any(String) });
}

const HOST = 'i-0123456789abcdef0';

describe('requests that are not valid HTTP', () => {
  it('answers 400 bad_request JSON to a garbage request line', async () => {
    expectJsonError(await raw('HELLO THERE\r\n\r\n'), 400, 'bad_request');
    expectJsonError(await raw('GET / HTTP/9.9\r\n\r\n'), 400, 'bad_request');
    expectJsonError(await raw('\x00\x01\x02\x03\r\n\r\n'), 400, 'bad_request');
  });

  it('answers 400 bad_request JSON to an HTTP/1.1 request without a Host header, and serves HTTP/1.0 without one', async () => {
    expectJsonError(await raw('GET /health HTTP/1.1\r\n\r\n'), 400, 'bad_request');
    const old = parse(await raw('GET /health HTTP/1.0\r\n\r\n'));
    expect(old.status).toBe(200);
  });

  it('answers 400 bad_request JSON to a header with invalid bytes or no colon', async () => {
    expectJsonError(await raw('GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n'), 400, 'bad_request');
    expectJsonError(await raw('GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n'), 400, 'bad_request');
  });

  it('answers 400 to Content-Length together with Transfer-Encoding (request smuggling), storing nothing', async () => {
    const body = '{"event_id":"' + 'a'.repeat(64) + '","event":"added","timestamp":1}';
    const answer = await raw(
      `POST /report/event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    );
    expectJsonError(answer, 400, 'bad_request');
    expect(await t.store.listHosts()).toEqual([]);
  });

  it('answers 400 to two different Content-Length headers and to a malformed chunk', async () => {
    expectJsonError(await raw(`PUT /v2/hosts/${HOST}/snapshot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}`), 400, 'bad_request');
    expectJsonError(await raw(`PUT /v2/hosts/${HOST}/snapshot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`), 400, 'bad_request');
  });

  it('answers 431 headers_too_large JSON to a header block over the limit', async () => {
    expectJsonError(await raw(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(64 * 1024)}\r\n\r\n`), 431, 'headers_too_large');
  });

  it('answers 408 request_timeout JSON to a request that does not arrive in time', async () => {
    expectJsonError(await raw('GET /health HTTP/1.1\r\nHost: x\r\n'), 408, 'request_timeout');
  });

  it('keeps answering well-formed requests', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/health`);
    expect(res.status).toBe(200);
  });
});
