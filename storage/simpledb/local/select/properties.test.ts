// Properties of the Select tokenizer/parser and evaluator over generated inputs.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ItemView } from './evaluate.js';
import { itemMatches } from './evaluate.js';
import { parseSelect } from './parser.js';

const quoteValue = (v: string, q: "'" | '"') => q + v.split(q).join(q + q) + q;
const quoteName = (n: string) => '`' + n.split('`').join('``') + '`';

describe('Select properties', () => {
  it('reads back any value quoted with either quote character', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.constantFrom("'" as const, '"' as const), (v, q) => {
        const where = parseSelect(`select * from d where a = ${quoteValue(v, q)}`).where;
        expect(where).toMatchObject({ type: 'compare', value: v });
      }),
    );
  });

  it('reads back any non-empty name quoted with backticks, as attribute and as domain', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', minLength: 1 }), (n) => {
        const q = parseSelect(`select ${quoteName(n)} from ${quoteName(n)} where ${quoteName(n)} is not null`);
        expect(q.domain).toBe(n);
        expect(q.output).toEqual({ kind: 'attributes', names: [n] });
      }),
    );
  });

  const value = fc.string({ maxLength: 4, unit: fc.constantFrom('a', 'b', 'c', '0', '9', 'é') });
  const item = fc.array(value, { minLength: 0, maxLength: 3 }).map(
    (values): ItemView => ({ name: 'i', attributes: values.length ? new Map([['a', new Set(values)]]) : new Map() }),
  );

  it('evaluates between x and y like the per-value predicate a >= x and a <= y', () => {
    fc.assert(
      fc.property(item, value, value, (it, x, y) => {
        const between = parseSelect(`select * from d where a between ${quoteValue(x, "'")} and ${quoteValue(y, "'")}`).where;
        const range = parseSelect(`select * from d where a >= ${quoteValue(x, "'")} and a <= ${quoteValue(y, "'")}`).where;
        expect(itemMatches(between, it)).toBe(itemMatches(range, it));
      }),
    );
  });

  it('evaluates in (...) like a chain of = joined by or, and every() as "no value fails"', () => {
    fc.assert(
      fc.property(item, fc.array(value, { minLength: 1, maxLength: 4 }), (it, values) => {
        const list = values.map((v) => quoteValue(v, "'"));
        const inList = parseSelect(`select * from d where a in (${list.join(',')})`).where;
        const ors = parseSelect(`select * from d where ${list.map((v) => `a = ${v}`).join(' or ')}`).where;
        expect(itemMatches(inList, it)).toBe(itemMatches(ors, it));
        const every = parseSelect(`select * from d where every(a) in (${list.join(',')})`).where;
        const has = it.attributes.has('a');
        const allIn = has && [...(it.attributes.get('a') as Set<string>)].every((v) => values.includes(v));
        expect(itemMatches(every, it)).toBe(allIn);
      }),
    );
  });

  it('treats is null as the complement of is not null', () => {
    fc.assert(
      fc.property(item, (it) => {
        expect(itemMatches(parseSelect('select * from d where a is null').where, it)).toBe(
          !itemMatches(parseSelect('select * from d where a is not null').where, it),
        );
      }),
    );
  });
});
