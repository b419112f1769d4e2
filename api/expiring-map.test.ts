import { describe, expect, it } from 'vitest';
import { ExpiringMap } from './expiring-map.js';

function clocked(max: number, ttlMs: number) {
  let now = 1_000;
  const map = new ExpiringMap<string, string>({ max, ttlMs, nowMs: () => now });
  return { map, tick: (ms: number) => (now += ms) };
}

describe('ExpiringMap', () => {
  it('answers an entry until its lifetime from set has passed, then forgets it', () => {
    const { map, tick } = clocked(10, 5_000);
    map.set('a', '1');
    tick(4_999);
    expect(map.get('a')).toBe('1');
    tick(1);
    expect(map.get('a')).toBeUndefined();
    expect(map.size).toBe(0);
  });

  it('does not extend a lifetime on read, only on set', () => {
    const { map, tick } = clocked(10, 100);
    map.set('a', '1');
    tick(60);
    expect(map.get('a')).toBe('1');
    tick(60);
    expect(map.get('a')).toBeUndefined();
    map.set('b', '2');
    tick(60);
    map.set('b', '3');
    tick(60);
    expect(map.get('b')).toBe('3');
  });

  it('evicts the oldest entries when over its bound', () => {
    const { map } = clocked(3, 1_000);
    for (const k of ['a', 'b', 'c', 'd']) map.set(k, k);
    expect(map.size).toBe(3);
    expect([map.get('a'), map.get('b'), map.get('d')]).toEqual([undefined, 'b', 'd']);
    map.set('b', 'B'); // re-set: b is now the newest, c the oldest
    map.set('e', 'e');
    expect([map.get('c'), map.get('b'), map.get('e')]).toEqual([undefined, 'B', 'e']);
  });

  it('sweeps expired entries when setting, so a map that is only written stays small', () => {
    const { map, tick } = clocked(1_000, 10);
    for (let i = 0; i < 500; i++) {
      map.set(`k${i}`, 'v');
      tick(1);
    }
    expect(map.size).toBeLessThanOrEqual(11);
  });

  it('refuses a bound or lifetime that cannot hold anything', () => {
    expect(() => new ExpiringMap({ max: 0, ttlMs: 1, nowMs: Date.now })).toThrow(RangeError);
    expect(() => new ExpiringMap({ max: 1, ttlMs: 0, nowMs: Date.now })).toThrow(RangeError);
  });
});
