import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { documentAttributes, indexValue, padNumber, readDocument } from './encoding.js';

describe('document attributes', () => {
  it('round-trip any JSON value, in ASCII chunks of at most 1000 characters', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const attrs = documentAttributes(value);
        expect(attrs.every((a) => /^[\x00-\x7f]*$/.test(a.value) && a.value.length <= 1000)).toBe(true);
        expect(readDocument(attrs)).toEqual(JSON.parse(JSON.stringify(value)));
      }),
    );
  });

  it('splits a large document and ignores chunks left over from a longer earlier one', () => {
    const big = { name: 'ünïcödé 🚀', ports: Array.from({ length: 256 }, (_, i) => ({ container_port: i, host_port: 30000 + i, protocol: 'tcp' })) };
    const long = documentAttributes(big);
    expect(long.length).toBeGreaterThan(10);
    expect(long.at(-1)).toEqual({ name: 'dn', value: String(long.length - 1), replace: true });
    const short = documentAttributes({ small: true });
    // what an item holds after the short document replaced the long one's first chunks
    const merged = [...short, ...long.filter((a) => !short.some((s) => s.name === a.name))];
    expect(readDocument(merged)).toEqual({ small: true });
    expect(readDocument(long)).toEqual(big);
  });

  it('reads an item without a complete document as undefined', () => {
    expect(readDocument([])).toBeUndefined();
    expect(readDocument([{ name: 'dn', value: '2' }, { name: 'd0', value: '{' }])).toBeUndefined();
  });
});

describe('index values', () => {
  it('keep null apart from every string, the empty string included', () => {
    expect(indexValue(null)).toBe('-');
    expect(indexValue('')).toBe('=');
    expect(indexValue('-')).toBe('=-');
  });

  it('preserve string order', () => {
    fc.assert(fc.property(fc.string(), fc.string(), (a, b) => (a < b) === (indexValue(a) < indexValue(b))));
  });

  it('pad numbers so text order is numeric order', () => {
    expect(padNumber(7)).toBe('00000000000000000007');
    fc.assert(fc.property(fc.nat(), fc.nat(), (a, b) => (a < b) === (padNumber(a) < padNumber(b))));
    expect(() => padNumber(-1)).toThrow(RangeError);
  });
});
