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

  it('fails with ERR_TIMEOUT naming the request when the caller\'s deadline passes first', async () => {
    server = await startLoopback(() => undefined); // never answers
    const error = await exchange('docker', 'Docker GET /containers/json', { url: server.url, timeoutMs: 10_000, signal: AbortSignal.timeout(50) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ObservationError);
    expect(error).toMatchObject({ source: 'docker', code: 'ERR_TIMEOUT' });
    expect((error as Error).message).toBe('Docker GET /containers/json: no answer before the deadline');
  });

  it('fails with ERR_TIMEOUT when the caller\'s deadline has already passed', async () => {
    const signal = AbortSignal.timeout(1);
    await new Promise((r) => setTimeout(r, 20));
    const error = await exchange('agent', 'ECS agent /v1/tasks', { url: new URL('http://127.0.0.1:9/'), timeoutMs: 1000, signal }).catch((e: unknown) => e);
    expect(error).toMatchObject({ source: 'agent', code: 'ERR_TIMEOUT' });
  });

  it('rethrows the caller\'s own cancellation as is', async () => {
    server = await startLoopback(() => undefined);
    const controller = new AbortController();
    const stop = new Error('shutting down');
    setTimeout(() => controller.abort(stop), 50);
    await expect(exchange('agent', 'GET /', { url: server.url, timeoutMs: 10_000, signal: controller.signal })).rejects.toBe(stop);
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
