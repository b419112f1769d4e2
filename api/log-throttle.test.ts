import { describe, expect, it } from 'vitest';
import { LogThrottle, throttledWarnings } from './log-throttle.js';

describe('LogThrottle', () => {
  it('admits the first occurrence of a key and holds back the rest of its minute', () => {
    let now = 0;
    const throttle = new LogThrottle(() => now, 60_000);
    expect(throttle.admit('503 disk full')).toBe(0);
    now = 1_000;
    expect(throttle.admit('503 disk full')).toBeUndefined();
    now = 59_999;
    expect(throttle.admit('503 disk full')).toBeUndefined();
  });

  it('reports how many were held back on the next line it admits', () => {
    let now = 0;
    const throttle = new LogThrottle(() => now, 60_000);
    throttle.admit('k');
    for (let i = 0; i < 5; i++) throttle.admit('k');
    now = 60_000;
    expect(throttle.admit('k')).toBe(5);
    now = 60_001;
    expect(throttle.admit('k')).toBeUndefined();
    now = 500_000;
    expect(throttle.admit('k')).toBe(1);
  });

  it('keeps each key to its own window', () => {
    const throttle = new LogThrottle(() => 0, 60_000);
    expect(throttle.admit('rejected 401 i-1')).toBe(0);
    expect(throttle.admit('rejected 401 i-2')).toBe(0);
    expect(throttle.admit('rejected 401 i-1')).toBeUndefined();
  });

  it('forgets the key logged longest ago when it holds ten thousand, so its next occurrence is logged', () => {
    const throttle = new LogThrottle(() => 0, 60_000);
    for (let i = 0; i <= 10_000; i++) expect(throttle.admit(`key ${i}`)).toBe(0);
    expect(throttle.admit('key 0')).toBe(0);
    expect(throttle.admit('key 10000')).toBeUndefined();
  });
});

describe('throttledWarnings', () => {
  it('writes each warning message once per interval, the next with the count held back', () => {
    let now = 0;
    const lines: Array<[Record<string, unknown>, string]> = [];
    const log = throttledWarnings({ warn: (fields, msg) => lines.push([fields, msg]) }, new LogThrottle(() => now, 60_000));
    for (let i = 0; i < 3; i++) log.warn({ err: 'unreachable' }, 'reading the fleet for /metrics failed');
    log.warn({ err: 'unreachable' }, 'counting containers for /metrics failed');
    now = 60_000;
    log.warn({ err: 'still unreachable' }, 'reading the fleet for /metrics failed');
    expect(lines).toEqual([
      [{ err: 'unreachable' }, 'reading the fleet for /metrics failed'],
      [{ err: 'unreachable' }, 'counting containers for /metrics failed'],
      [{ err: 'still unreachable', repeats_not_logged: 2 }, 'reading the fleet for /metrics failed'],
    ]);
  });
});
