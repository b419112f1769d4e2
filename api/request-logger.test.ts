import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { buildTestApp, type TestApp } from './test-helpers.js';
import { lazyRequestLoggerFactory } from './request-logger.js';
import { openStore } from '../storage/index.js';
import { StoreUnavailableError, type Store } from '../storage/store.js';

interface LogLine {
  level: number;
  msg: string;
  reqId?: string;
  service?: string;
  url?: string;
  repeats_not_logged?: number;
  [field: string]: unknown;
}

let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

function capture(level: string) {
  const lines: LogLine[] = [];
  const logger = pino({ level, base: { service: 'test' } }, { write: (line: string) => lines.push(JSON.parse(line) as LogLine) });
  return { logger, lines };
}

const ID = 'a'.repeat(64);

/** A store whose getContainer fails as a locked SQLite database does. */
async function lockedStore(): Promise<Store> {
  const real = await openStore({ backend: 'sqlite', path: ':memory:' });
  return new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === 'getContainer') return async () => { throw new StoreUnavailableError('database is locked'); };
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

describe('request loggers', () => {
  it('carry the request id and the base bindings on a line a request writes', async () => {
    const { logger, lines } = capture('info');
    t = await buildTestApp({ logger }, await lockedStore());
    expect((await t.app.inject({ url: `/query/container_id/${ID}` })).statusCode).toBe(503);
    expect((await t.app.inject({ url: `/query/container_id/${ID}` })).statusCode).toBe(503);
    t.setNow(new Date('2026-01-01T00:11:00.000Z'));
    expect((await t.app.inject({ url: `/query/container_id/${ID}` })).statusCode).toBe(503);
    const warnings = lines.filter((l) => l.msg === 'store unavailable');
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatchObject({ level: 40, service: 'test', reqId: expect.stringMatching(/^req-/) });
    expect(warnings[1].reqId).not.toBe(warnings[0].reqId);
  });

  it('write a repeated store failure once a minute, with the count of the requests not logged', async () => {
    const { logger, lines } = capture('info');
    t = await buildTestApp({ logger }, await lockedStore());
    for (let i = 0; i < 4; i++) expect((await t.app.inject({ url: `/query/container_id/${ID}` })).statusCode).toBe(503);
    expect(lines.filter((l) => l.msg === 'store unavailable')).toHaveLength(1);
    t.setNow(new Date('2026-01-01T00:11:00.000Z'));
    expect((await t.app.inject({ url: `/query/container_id/${ID}` })).statusCode).toBe(503);
    const warnings = lines.filter((l) => l.msg === 'store unavailable');
    expect(warnings).toHaveLength(2);
    expect(warnings[0].repeats_not_logged).toBeUndefined();
    expect(warnings[1]).toMatchObject({ repeats_not_logged: 3, err: { message: 'database is locked' } });
  });

  it('write a rejected report once a minute per reporter and status', async () => {
    const { logger, lines } = capture('info');
    t = await buildTestApp({ logger, reportToken: 'right-token' });
    const report = (host: string, token: string) =>
      t!.app.inject({ method: 'POST', url: `/v2/hosts/${host}/transitions`, headers: { authorization: `Bearer ${token}` }, payload: { transitions: 'not a list' } });
    for (let i = 0; i < 3; i++) expect((await report('i-0123456789abcdef0', 'right-token')).statusCode).toBe(400);
    expect((await report('i-0fedcba9876543210', 'right-token')).statusCode).toBe(400);
    const rejected = lines.filter((l) => l.msg === 'report rejected');
    expect(rejected.map((l) => l.url)).toEqual(['/v2/hosts/i-0123456789abcdef0/transitions', '/v2/hosts/i-0fedcba9876543210/transitions']);
    t.setNow(new Date('2026-01-01T00:11:00.000Z'));
    expect((await report('i-0123456789abcdef0', 'right-token')).statusCode).toBe(400);
    expect(lines.filter((l) => l.msg === 'report rejected').at(-1)).toMatchObject({ statusCode: 400, repeats_not_logged: 2 });
  });

  it('write unauthenticated reports once a minute per client address, whatever instance id their URL names', async () => {
    const { logger, lines } = capture('info');
    t = await buildTestApp({ logger, reportToken: 'right-token' });
    for (let i = 0; i < 20; i++) {
      const host = `i-${i.toString(16).padStart(17, '0')}`;
      const res = await t.app.inject({ method: 'POST', url: `/v2/hosts/${host}/transitions`, headers: { authorization: 'Bearer wrong-token' }, payload: {} });
      expect(res.statusCode).toBe(401);
    }
    expect(lines.filter((l) => l.msg === 'report rejected')).toHaveLength(1);
  });

  it('write nothing for a request that logs nothing', async () => {
    const { logger, lines } = capture('info');
    t = await buildTestApp({ logger });
    const before = lines.length;
    expect((await t.app.inject({ url: `/query/container_id/${ID}` })).statusCode).toBe(404);
    expect(lines.length).toBe(before);
  });

  it('log each completed request with its id at debug level', async () => {
    const { logger, lines } = capture('debug');
    t = await buildTestApp({ logger });
    await t.app.inject({ url: '/health' });
    const completed = lines.filter((l) => l.msg === 'request completed');
    expect(completed).toHaveLength(1);
    expect(completed[0]).toMatchObject({ level: 20, reqId: expect.stringMatching(/^req-/) });
  });

  it('build the pino child only when a line is written at an enabled level', () => {
    const { logger, lines } = capture('info');
    let children = 0;
    const counting = Object.assign(Object.create(logger) as typeof logger, {
      child: (...args: Parameters<typeof logger.child>) => {
        children++;
        return logger.child(...args);
      },
    });
    const log = lazyRequestLoggerFactory.call(undefined as never, counting, { reqId: 'req-7' }, {}, undefined as never);
    log.debug('not written');
    expect(log.level).toBe('info');
    expect(children).toBe(0);
    log.info({ n: 1 }, 'written');
    log.warn('again');
    expect(children).toBe(1);
    expect(lines.map((l) => [l.msg, l.reqId])).toEqual([
      ['written', 'req-7'],
      ['again', 'req-7'],
    ]);
  });

  it('give a route with its own log level a pino child at once', () => {
    const { logger } = capture('info');
    const log = lazyRequestLoggerFactory.call(undefined as never, logger, { reqId: 'req-8' }, { level: 'debug' }, undefined as never);
    expect(log.level).toBe('debug');
    expect((log as unknown as { bindings(): object }).bindings()).toMatchObject({ reqId: 'req-8' });
  });
});
