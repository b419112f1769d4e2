import { afterEach, describe, expect, it } from 'vitest';
import { reply, startLoopback, type LoopbackServer } from '../../test/support/loopback.js';
import { exchange } from './http.js';
import { ObservationError } from './types.js';

let server: LoopbackServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('exchange', () => {
  it('returns status and body for any HTTP status', async () => {
    server = await startLoopback((_req, res) => reply(res, 503, 'busy', 'text/plain'));
    expect(await exchange('agent', 'GET /', { url: server.url, timeoutMs: 1000 })).toEqual({ status: 503, body: 'busy' });
  });

  it('fails with ERR_GARBAGE when the body exceeds the limit', async () => {
    server = await startLoopback((_req, res) => reply(res, 200, 'x'.repeat(100), 'text/plain'));
    const error = await exchange('imds', 'GET /', { url: server.url, timeoutMs: 1000, maxBodyBytes: 10 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ObservationError);
    expect(error).toMatchObject({ source: 'imds', code: 'ERR_GARBAGE', status: 200 });
  });

  it('does not keep listening on the caller signal after the exchange', async () => {
    server = await startLoopback((_req, res) => reply(res, 200, 'ok', 'text/plain'));
    const controller = new AbortController();
    let added = 0;
    let removed = 0;
    const add = controller.signal.addEventListener.bind(controller.signal);
    const remove = controller.signal.removeEventListener.bind(controller.signal);
    controller.signal.addEventListener = ((...args: Parameters<typeof add>) => (added++, add(...args))) as typeof add;
    controller.signal.removeEventListener = ((...args: Parameters<typeof remove>) => (removed++, remove(...args))) as typeof remove;
    for (let i = 0; i < 3; i++) await exchange('agent', 'GET /', { url: server.url, timeoutMs: 1000, signal: controller.signal });
    expect(added).toBeGreaterThanOrEqual(3);
    expect(removed).toBe(added);
  });
});
