import { describe, expect, it } from 'vitest';
import { SdbError } from '../errors.js';
import { parseSelect } from './parser.js';

function errorCode(expression: string): string {
  try {
    parseSelect(expression);
  } catch (err) {
    if (err instanceof SdbError) return err.code;
    throw err;
  }
  throw new Error(`expected ${expression} to be rejected`);
}

describe('Select parser', () => {
  it('parses the output forms: *, itemName(), count(*) and an attribute list', () => {
    expect(parseSelect('select * from d').output).toEqual({ kind: 'all' });
    expect(parseSelect('SELECT itemName() FROM d').output).toEqual({ kind: 'itemName' });
    expect(parseSelect('select count(*) from d').output).toEqual({ kind: 'count' });
    expect(parseSelect('select a, `b-c`, $d from d').output).toEqual({ kind: 'attributes', names: ['a', 'b-c', '$d'] });
  });

  it('reads backtick-quoted names with doubled backticks and quoted values with doubled quotes', () => {
    const q = parseSelect("select * from `my-domain` where `abc``123` = 'That''s' and b = \"say \"\"hi\"\"\"");
    expect(q.domain).toBe('my-domain');
    expect(q.where).toEqual({
      type: 'and',
      left: { type: 'compare', operand: { kind: 'attribute', name: 'abc`123' }, every: false, op: '=', value: "That's" },
      right: { type: 'compare', operand: { kind: 'attribute', name: 'b' }, every: false, op: '=', value: 'say "hi"' },
    });
  });

  it('treats keywords case-insensitively and requires backticks for reserved words used as names', () => {
    expect(parseSelect('SeLeCt * FrOm d WhErE `select` IS NOT NULL').where).toEqual({
      type: 'null',
      operand: { kind: 'attribute', name: 'select' },
      isNull: false,
    });
    expect(errorCode('select * from d where order = \'1\'')).toBe('InvalidQueryExpression');
    expect(errorCode('select * from from')).toBe('InvalidQueryExpression');
  });

  it('parses like, not like, between, in, is null, every() and itemName() predicates', () => {
    const q = parseSelect(
      "select * from d where a like 'x%' and b not like '%y' and c between '1' and '2' and itemName() in ('i1', 'i2') and e is null and every(f) = 'z'",
    );
    const json = JSON.stringify(q.where);
    expect(json).toContain('"op":"like","value":"x%"');
    expect(json).toContain('"op":"not like","value":"%y"');
    expect(json).toContain('"type":"between","operand":{"kind":"attribute","name":"c"},"every":false,"low":"1","high":"2"');
    expect(json).toContain('"type":"in","operand":{"kind":"itemName"},"every":false,"values":["i1","i2"]');
    expect(json).toContain('"type":"null","operand":{"kind":"attribute","name":"e"},"isNull":true');
    expect(json).toContain('"operand":{"kind":"attribute","name":"f"},"every":true,"op":"=","value":"z"');
  });

  it('gives and precedence over or, and intersection the lowest precedence', () => {
    const q = parseSelect("select * from d where a = '1' or b = '2' and c = '3' intersection d = '4'");
    expect(q.where?.type).toBe('intersection');
    const left = (q.where as { left: { type: string; right: { type: string } } }).left;
    expect(left.type).toBe('or');
    expect(left.right.type).toBe('and');
  });

  it('parses not and parentheses', () => {
    const q = parseSelect("select * from d where not (a = '1' or a = '2')");
    expect(q.where?.type).toBe('not');
  });

  it('parses order by with direction and limit', () => {
    const q = parseSelect("select * from d where a > '0' order by a desc limit 7");
    expect(q.orderBy).toEqual({ operand: { kind: 'attribute', name: 'a' }, descending: true });
    expect(q.limit).toBe(7);
    expect(parseSelect('select * from d order by itemName()').orderBy).toEqual({ operand: { kind: 'itemName' }, descending: false });
  });

  it('rejects a sort attribute that no predicate constrains, or only `is null` does', () => {
    expect(errorCode('select * from d order by a')).toBe('InvalidSortExpression');
    expect(errorCode("select * from d where b = '1' order by a")).toBe('InvalidSortExpression');
    expect(errorCode('select * from d where a is null order by a')).toBe('InvalidSortExpression');
    expect(parseSelect('select * from d where author is null and title is not null order by title').orderBy?.operand).toEqual({
      kind: 'attribute',
      name: 'title',
    });
  });

  it('enforces the limits: page size 1..2500, 20 comparisons, 20 values per in()', () => {
    expect(errorCode('select * from d limit 2501')).toBe('InvalidParameterValue');
    expect(errorCode('select * from d limit 0')).toBe('InvalidParameterValue');
    expect(parseSelect('select * from d limit 2500').limit).toBe(2500);
    expect(parseSelect('select count(*) from d limit 10000').limit).toBe(10000);
    const many = Array.from({ length: 21 }, (_, i) => `a = '${i}'`).join(' or ');
    expect(errorCode(`select * from d where ${many}`)).toBe('InvalidNumberPredicates');
    const values = Array.from({ length: 21 }, (_, i) => `'${i}'`).join(',');
    expect(errorCode(`select * from d where a in (${values})`)).toBe('InvalidNumberValueTests');
  });

  it('rejects malformed expressions with InvalidQueryExpression', () => {
    for (const bad of [
      '',
      'select',
      'select * d',
      "select * from d where a = 1", // values must be quoted
      "select * from d where a = 'unterminated",
      'select * from `unterminated',
      "select * from d where a == '1'",
      "select * from d where (a = '1'",
      "select * from d where a = '1' limit",
      "select * from d where a = '1' garbage",
      'select * from d where every(a) is null',
      "select * from d where a ~ '1'",
    ]) {
      expect(errorCode(bad), bad).toBe('InvalidQueryExpression');
    }
  });
});
