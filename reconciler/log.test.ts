import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { LogLevel } from '../config/index.js';
import { createDaemonLogger, type DaemonLogger } from './log.js';

function sink(): { stream: Writable; lines: () => string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { stream, lines: () => chunks.join('').split('\n').filter(Boolean) };
}

/** The same calls through pino (as the daemon configured it before) and through the daemon's logger. */
async function both(level: LogLevel, calls: (log: Pick<DaemonLogger, 'info' | 'warn' | 'error' | 'debug'>) => void) {
  const a = sink();
  const b = sink();
  const base = { service: 'ecs-id-mapper-reconciler' };
  calls(pino({ level, base, timestamp: () => ',"time":1764662400000', serializers: { err: pino.stdSerializers.errWithCause } }, a.stream));
  calls(createDaemonLogger({ level, base, stream: b.stream, now: () => 1764662400000 }));
  await new Promise((r) => setImmediate(r));
  return { pino: a.lines(), ours: b.lines() };
}

describe('the daemon’s logger', () => {
  it('writes the lines pino writes: level number, time, base fields, fields, msg', async () => {
    const { pino: expected, ours } = await both('info', (log) => {
      log.info('reconciler stopped');
      log.info({ instance_id: 'i-0123456789abcdef0' }, 'host identified via IMDS');
      log.warn({ code: 'ERR_AGENT_HTTP_STATUS', count: 3, ok: false, nothing: null }, 'ECS agent observation failed: 500');
      log.info({ drained: true, outbox_depth: 0, nested: { a: [1, 'two'] } }, 'outbox flushed');
      log.error({ code: 'ENOSPC', pending: 2 }, 'outbox append failed; the next pass retries: no space');
      log.info({ quote: 'a "quoted" \\ line\nwith a newline' }, 'escapes');
    });
    expect(ours).toEqual(expected);
    expect(ours).toHaveLength(6);
  });

  it('drops lines under the level, as pino does, and writes nothing when silent', async () => {
    const calls = (log: Pick<DaemonLogger, 'info' | 'warn' | 'error' | 'debug'>) => {
      log.debug({ sent: 3 }, 'transitions acknowledged');
      log.info('following Docker events');
      log.warn('Docker events disconnected: socket hang up');
      log.error({ code: 'x' }, 'server rejected the report');
    };
    for (const level of ['debug', 'warn', 'error', 'silent'] as const) {
      const { pino: expected, ours } = await both(level, calls);
      expect(ours).toEqual(expected);
    }
    expect((await both('warn', calls)).ours.map((l) => JSON.parse(l).level)).toEqual([40, 50]);
  });

  it('writes an `err` field as pino’s error serializer does: type, message, stack, own fields', async () => {
    class OutboxError extends Error {
      code = 'ERR_OUTBOX';
      syscallCode = 'ENOSPC';
    }
    const err = new OutboxError('disk full');
    const { pino: expected, ours } = await both('info', (log) => log.error({ err }, 'outbox compaction after acknowledgement failed'));
    expect(JSON.parse(ours[0])).toEqual(JSON.parse(expected[0]));
    expect(JSON.parse(ours[0]).err).toMatchObject({ type: 'OutboxError', message: 'disk full', code: 'ERR_OUTBOX', syscallCode: 'ENOSPC', stack: expect.stringContaining('disk full') });
  });

  it('writes the cause of an `err` as an error of its own, with its code, as the server does', async () => {
    const cause = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    const err = new Error('outbox append failed', { cause });
    const { pino: expected, ours } = await both('info', (log) => log.error({ err }, 'outbox append failed'));
    expect(JSON.parse(ours[0])).toEqual(JSON.parse(expected[0]));
    expect(JSON.parse(ours[0]).err).toMatchObject({ message: 'outbox append failed', cause: { type: 'Error', message: 'no space left on device', code: 'ENOSPC' } });
  });

  it('still writes the line, without its fields, when a field cannot be written as JSON', () => {
    const out = sink();
    const log = createDaemonLogger({ level: 'info', stream: out.stream, now: () => 5 });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    log.warn({ cyclic }, 'odd fields');
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        expect(out.lines().map((l) => JSON.parse(l))).toEqual([{ level: 40, time: 5, msg: 'odd fields', log_error: expect.stringMatching(/^fields not serializable: /) }]);
        resolve();
      }),
    );
  });
});
