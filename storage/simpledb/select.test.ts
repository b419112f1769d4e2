import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { INJECTION_STRINGS } from '../store.fixtures.js';
import { buildSelect, ITEM_NAME, prefixUpperBound, quoteName, quoteValue, SelectExpressionError } from './select.js';

/** Reads one quoted literal the way SimpleDB's lexer does: doubled quote = one quote, single quote ends it. */
function readLiteral(text: string, quote: string): { value: string; rest: string } {
  expect(text[0]).toBe(quote);
  let value = '';
  for (let i = 1; i < text.length; i++) {
    if (text[i] === quote) {
      if (text[i + 1] === quote) {
        value += quote;
        i++;
        continue;
      }
      return { value, rest: text.slice(i + 1) };
    }
    value += text[i];
  }
  throw new Error('unterminated literal');
}

describe('quoteValue', () => {
  it('doubles single quotes and wraps the value in single quotes', () => {
    expect(quoteValue("it's")).toBe("'it''s'");
    expect(quoteValue('')).toBe("''");
  });

  it.each(INJECTION_STRINGS.map((s) => [s]))('keeps the hostile string %j one literal', (hostile) => {
    const { value, rest } = readLiteral(quoteValue(hostile), "'");
    expect(value).toBe(hostile);
    expect(rest).toBe('');
  });

  it('round-trips any string as exactly one literal', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        const { value, rest } = readLiteral(quoteValue(s), "'");
        return value === s && rest === '';
      }),
    );
  });
});

describe('quoteName', () => {
  it('doubles backticks and wraps the name in backticks', () => {
    expect(quoteName('task_id')).toBe('`task_id`');
    expect(quoteName('we`ird')).toBe('`we``ird`');
    expect(quoteName('select')).toBe('`select`');
  });

  it('round-trips any non-empty name as exactly one quoted name', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), (s) => {
        const { value, rest } = readLiteral(quoteName(s), '`');
        return value === s && rest === '';
      }),
    );
  });

  it('refuses an empty name', () => {
    expect(() => quoteName('')).toThrow(SelectExpressionError);
  });
});

describe('buildSelect', () => {
  it('builds a filtered, ordered, limited select with every value quoted', () => {
    const text = buildSelect({
      output: '*',
      domain: 'ecs_id_mapper_containers_0',
      where: [
        { attr: 'cluster', op: '=', value: "pr'od" },
        { attr: ITEM_NAME, op: '>', value: 'abc' },
      ],
      orderBy: { attr: ITEM_NAME },
      limit: 100,
    });
    expect(text).toBe("select * from `ecs_id_mapper_containers_0` where `cluster` = 'pr''od' and itemName() > 'abc' order by itemName() asc limit 100");
  });

  it('quotes every member of in, between and starts with', () => {
    expect(buildSelect({ output: 'itemName()', domain: 'd', where: [{ attr: 'a', op: 'in', values: ["x'", '`y'] }] })).toBe(
      "select itemName() from `d` where `a` in ('x''', '`y')",
    );
    expect(buildSelect({ output: 'count(*)', domain: 'd', where: [{ attr: 'at', op: 'between', low: "'", high: 'z' }] })).toBe(
      "select count(*) from `d` where `at` between '''' and 'z'",
    );
    expect(buildSelect({ output: ['x', 'y`'], domain: 'd', where: [{ attr: 'n', op: 'starts with', value: "o'" }] })).toBe(
      "select `x`, `y``` from `d` where `n` like 'o''%'",
    );
    expect(buildSelect({ output: '*', domain: 'd', where: [{ attr: 'g', op: 'is not null' }] })).toBe('select * from `d` where `g` is not null');
  });

  it('refuses a like pattern it cannot escape, an order by without a predicate and out-of-range limits', () => {
    expect(() => buildSelect({ output: '*', domain: 'd', where: [{ attr: 'n', op: 'starts with', value: '50%' }] })).toThrow(/cannot contain %/);
    expect(() => buildSelect({ output: '*', domain: 'd', orderBy: { attr: 'x' } })).toThrow(/needs a predicate/);
    expect(() => buildSelect({ output: '*', domain: 'd', limit: 2501 })).toThrow(/limit/);
    expect(() => buildSelect({ output: '*', domain: 'd', limit: 0 })).toThrow(/limit/);
    expect(() => buildSelect({ output: '*', domain: 'd', where: [{ attr: 'a', op: 'in', values: [] }] })).toThrow(/'in'/);
  });
});

describe('prefixUpperBound', () => {
  it('is the prefix with its last character incremented', () => {
    expect(prefixUpperBound('abc')).toBe('abd');
    expect(prefixUpperBound('0f')).toBe('0g');
    expect(prefixUpperBound('a\uffff')).toBe('b');
    expect(prefixUpperBound('\uffff')).toBeUndefined();
  });
});
