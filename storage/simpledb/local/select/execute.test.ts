import { describe, expect, it } from 'vitest';
import { SdbError } from '../errors.js';
import type { ItemView } from './evaluate.js';
import { compareStrings, likeMatches, parseLike } from './evaluate.js';
import { executeSelect, MAX_RESPONSE_BYTES } from './execute.js';
import { parseSelect } from './parser.js';

function item(name: string, attributes: Record<string, string[]>): ItemView {
  return { name, attributes: new Map(Object.entries(attributes)) };
}

// A small catalogue with multi-valued attributes and zero-padded numbers.
const books: ItemView[] = [
  item('b1', { title: ['The Right Stuff'], year: ['1979'], pages: ['00304'], keyword: ['Book', 'Paperback'], rating: ['****', '5 stars'] }),
  item('b2', { title: ['Snow Crash'], year: ['1992'], pages: ['00480'], keyword: ['Book', 'Hardcover'], rating: ['****'] }),
  item('b3', { title: ['Cryptonomicon'], year: ['1999'], keyword: ['Book', 'Paperback', 'Hardcover'], rating: ['***'] }),
  item('m1', { title: ['The Right Stuff (film)'], year: ['1983'], keyword: ['DVD'], rating: ['*****'] }),
  item('m2', { title: ['100% Pure'], year: ['2007'], keyword: ['Music'] }),
];

function names(expression: string, data: ItemView[] = books, token?: string): string[] {
  return executeSelect(parseSelect(expression), data, token).items.map((i) => i.name);
}

describe('Select evaluation', () => {
  it('compares lexicographically, not numerically', () => {
    const data = [item('a', { n: ['9'] }), item('b', { n: ['10'] }), item('c', { n: ['010'] })];
    expect(names("select * from d where n > '5'", data)).toEqual(['a']);
    expect(names("select * from d where n < '5'", data)).toEqual(['b', 'c']);
  });

  it('compares by code point (UTF-8 byte order)', () => {
    expect(compareStrings('Z', 'a')).toBeLessThan(0);
    expect(compareStrings('\u{ffff}', '\u{10000}')).toBeLessThan(0);
    expect(compareStrings('ab', 'abc')).toBeLessThan(0);
  });

  it('matches a multi-valued attribute when any value matches, and every() only when all do', () => {
    expect(names("select * from d where rating = '****'")).toEqual(['b1', 'b2']);
    expect(names("select * from d where every(rating) = '****'")).toEqual(['b2']);
    expect(names("select * from d where every(keyword) in ('Book', 'Hardcover', 'Paperback')")).toEqual(['b1', 'b2', 'b3']);
  });

  it('ignores items without the attribute in comparisons, including != and not like', () => {
    expect(names("select * from d where pages != '00304'")).toEqual(['b2']);
    expect(names("select * from d where pages not like '003%'")).toEqual(['b2']);
  });

  it('evaluates comparisons on one attribute joined by and per value, and intersection across values', () => {
    expect(names("select * from d where keyword = 'Book' and keyword = 'Hardcover'")).toEqual([]);
    expect(names("select * from d where keyword = 'Book' intersection keyword = 'Hardcover'")).toEqual(['b2', 'b3']);
    expect(names("select * from d where year > '1980' and year < '2000'")).toEqual(['b2', 'b3', 'm1']);
    expect(names("select * from d where (year > '1950' and year < '1980') or year like '200%'")).toEqual(['b1', 'm2']);
  });

  it('combines predicates on different attributes per item', () => {
    expect(names("select * from d where keyword = 'Book' and year > '1990'")).toEqual(['b2', 'b3']);
    expect(names("select * from d where keyword = 'DVD' or pages = '00304'")).toEqual(['b1', 'm1']);
  });

  it('supports like with % at the start, the end or both, and \\% for a literal percent sign', () => {
    expect(names("select * from d where title like 'The Right%'")).toEqual(['b1', 'm1']);
    expect(names("select * from d where title like '%(film)'")).toEqual(['m1']);
    expect(names("select * from d where title like '%Crash%'")).toEqual(['b2']);
    expect(names("select * from d where title like '100\\%%'")).toEqual(['m2']);
    expect(names("select * from d where title like 'Snow Crash'")).toEqual(['b2']);
    expect(likeMatches('a%b', parseLike('a%b'))).toBe(true); // a % in the middle is literal
    expect(likeMatches('axxb', parseLike('a%b'))).toBe(false);
  });

  it('supports between (inclusive), in, is null and is not null', () => {
    expect(names("select * from d where year between '1979' and '1992'")).toEqual(['b1', 'b2', 'm1']);
    expect(names("select * from d where year in ('1999', '2007', '1800')")).toEqual(['b3', 'm2']);
    expect(names('select * from d where pages is null')).toEqual(['b3', 'm1', 'm2']);
    expect(names('select * from d where rating is not null')).toEqual(['b1', 'b2', 'b3', 'm1']);
  });

  it('uses itemName() in predicates', () => {
    expect(names("select * from d where itemName() like 'm%'")).toEqual(['m1', 'm2']);
    expect(names("select * from d where itemName() in ('b3', 'zz')")).toEqual(['b3']);
  });

  it('takes not as the complement over all items', () => {
    expect(names("select * from d where not keyword = 'Book'")).toEqual(['m1', 'm2']);
    expect(names("select * from d where not (year < '1990' or year > '2000')")).toEqual(['b2', 'b3']);
  });

  it('returns only the requested attributes, or none for itemName()', () => {
    const page = executeSelect(parseSelect("select title, year from d where itemName() = 'b2'"), books);
    expect(page.items).toEqual([{ name: 'b2', attributes: [{ name: 'title', value: 'Snow Crash' }, { name: 'year', value: '1992' }] }]);
    expect(executeSelect(parseSelect("select itemName() from d where itemName() = 'b2'"), books).items).toEqual([{ name: 'b2', attributes: [] }]);
  });

  it('sorts by an attribute ascending or descending, and by itemName()', () => {
    expect(names("select * from d where year > '0' order by year")).toEqual(['b1', 'm1', 'b2', 'b3', 'm2']);
    expect(names("select * from d where year > '0' order by year desc")).toEqual(['m2', 'b3', 'b2', 'm1', 'b1']);
    expect(names('select * from d order by itemName() desc')).toEqual(['m2', 'm1', 'b3', 'b2', 'b1']);
    // Items without the sort attribute are left out of sorted results.
    expect(names("select * from d where pages > '0' or keyword = 'DVD' order by pages")).toEqual(['b1', 'b2']);
  });

  it('pages with limit and a NextToken that resumes after the last item', () => {
    const q = parseSelect("select * from d where year > '0' order by year limit 2");
    const first = executeSelect(q, books);
    expect(first.items.map((i) => i.name)).toEqual(['b1', 'm1']);
    expect(first.nextToken).toBeDefined();
    const second = executeSelect(q, books, first.nextToken);
    expect(second.items.map((i) => i.name)).toEqual(['b2', 'b3']);
    const third = executeSelect(q, books, second.nextToken);
    expect(third.items.map((i) => i.name)).toEqual(['m2']);
    expect(third.nextToken).toBeUndefined();
  });

  it('uses a default page size of 100', () => {
    const many = Array.from({ length: 150 }, (_, i) => item(`i${String(i).padStart(3, '0')}`, { a: ['x'] }));
    const page = executeSelect(parseSelect('select * from d'), many);
    expect(page.items).toHaveLength(100);
    expect(executeSelect(parseSelect('select * from d'), many, page.nextToken).items).toHaveLength(50);
  });

  it('cuts a page at 1 MB and continues with a NextToken', () => {
    const big = 'v'.repeat(1000);
    const data = Array.from({ length: 8 }, (_, i) => item(`big${i}`, { a: Array.from({ length: 250 }, (_, j) => `${j}${big}`.slice(0, 1024)) }));
    const q = parseSelect('select * from d limit 2500');
    const first = executeSelect(q, data);
    expect(first.items.length).toBeGreaterThan(0);
    expect(first.items.length).toBeLessThan(8);
    const bytes = first.items.reduce((n, i) => n + i.attributes.reduce((m, a) => m + a.value.length, 0), 0);
    expect(bytes).toBeLessThanOrEqual(MAX_RESPONSE_BYTES);
    let seen = first.items.length;
    let token = first.nextToken;
    while (token) {
      const page = executeSelect(q, data, token);
      seen += page.items.length;
      token = page.nextToken;
    }
    expect(seen).toBe(8);
  });

  it('counts matches as a Domain item with a Count attribute, capped by limit with a NextToken', () => {
    expect(executeSelect(parseSelect("select count(*) from d where keyword = 'Book'"), books)).toEqual({
      items: [{ name: 'Domain', attributes: [{ name: 'Count', value: '3' }] }],
    });
    const many = Array.from({ length: 250 }, (_, i) => item(`i${String(i).padStart(3, '0')}`, { a: ['x'] }));
    expect(executeSelect(parseSelect('select count(*) from d'), many).items[0].attributes[0].value).toBe('250');
    const capped = executeSelect(parseSelect('select count(*) from d limit 200'), many);
    expect(capped.items[0].attributes[0].value).toBe('200');
    // The count's token continues a select with the same where/order by (an "offset").
    expect(names('select * from d', many, capped.nextToken)).toEqual(['i200', ...many.slice(201, 250).map((i) => i.name)]);
  });

  it('rejects a malformed NextToken or one from another query with InvalidNextToken', () => {
    const token = executeSelect(parseSelect("select * from d where year > '0' limit 1"), books).nextToken!;
    for (const [expr, t] of [
      ["select * from d where year > '1' limit 1", token],
      ["select * from d where year > '0' limit 1", 'not a token!'],
      ["select * from d where year > '0' limit 1", Buffer.from('{"v":2}').toString('base64')],
    ] as const) {
      try {
        executeSelect(parseSelect(expr), books, t);
        throw new Error('expected InvalidNextToken');
      } catch (err) {
        expect((err as SdbError).code).toBe('InvalidNextToken');
      }
    }
    // A different limit or output keeps the token valid.
    expect(names("select itemName() from d where year > '0' limit 10", books, token)).toHaveLength(4);
  });
});
