// Matching items against a parsed where-expression, with SimpleDB's semantics:
// - comparisons are lexicographic on strings (by code point, i.e. UTF-8 byte order);
// - an item without the attribute never satisfies a comparison on it (only `is null`);
// - a multi-valued attribute satisfies a comparison when ANY value does; every(attr) needs ALL;
// - comparisons on the same attribute joined by and/or form one predicate that is evaluated per
//   value ("Range Queries": `Year > '1975' and Year < '2008'` needs one value in the range), which
//   is why `intersection` exists to combine predicates across values ("Multiple Attribute Queries").
import type { Comparison, Expr, Operand } from './parser.js';

export type AttributeValues = ReadonlyMap<string, ReadonlySet<string> | readonly string[]>;

export interface ItemView {
  name: string;
  attributes: AttributeValues;
}

/** Compares by Unicode code point, which is the byte order of the UTF-8 encoding. */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

export function operandValues(item: ItemView, operand: Operand): string[] {
  if (operand.kind === 'itemName') return [item.name];
  const values = item.attributes.get(operand.name);
  return values ? [...values] : [];
}

interface LikePattern {
  prefixWildcard: boolean;
  suffixWildcard: boolean;
  body: string;
}

/**
 * `like` supports '%' only at the start and/or the end of the constant; `\%` is a literal percent
 * sign ("Comparison Operators"). A '%' anywhere else is taken literally.
 */
export function parseLike(pattern: string): LikePattern {
  let body = pattern;
  let prefixWildcard = false;
  let suffixWildcard = false;
  if (body.startsWith('%')) {
    prefixWildcard = true;
    body = body.slice(1);
  }
  if (body.endsWith('%') && !body.endsWith('\\%')) {
    suffixWildcard = true;
    body = body.slice(0, -1);
  }
  return { prefixWildcard, suffixWildcard, body: body.replace(/\\%/g, '%') };
}

export function likeMatches(value: string, p: LikePattern): boolean {
  if (p.prefixWildcard && p.suffixWildcard) return value.includes(p.body);
  if (p.prefixWildcard) return value.endsWith(p.body);
  if (p.suffixWildcard) return value.startsWith(p.body);
  return value === p.body;
}

/** Does a single value satisfy a (non-null) comparison? */
function valueSatisfies(c: Exclude<Comparison, { type: 'null' }>, v: string): boolean {
  switch (c.type) {
    case 'between':
      return compareStrings(v, c.low) >= 0 && compareStrings(v, c.high) <= 0;
    case 'in':
      return c.values.includes(v);
    case 'compare': {
      switch (c.op) {
        case '=':
          return v === c.value;
        case '!=':
          return v !== c.value;
        case '>':
          return compareStrings(v, c.value) > 0;
        case '>=':
          return compareStrings(v, c.value) >= 0;
        case '<':
          return compareStrings(v, c.value) < 0;
        case '<=':
          return compareStrings(v, c.value) <= 0;
        case 'like':
          return likeMatches(v, parseLike(c.value));
        case 'not like':
          return !likeMatches(v, parseLike(c.value));
      }
    }
  }
}

function comparisonMatches(c: Comparison, item: ItemView): boolean {
  const values = operandValues(item, c.operand);
  if (c.type === 'null') return c.isNull ? values.length === 0 : values.length > 0;
  if (values.length === 0) return false;
  return c.every ? values.every((v) => valueSatisfies(c, v)) : values.some((v) => valueSatisfies(c, v));
}

/**
 * The attribute an and/or subtree is entirely about, when every leaf is a plain value comparison
 * (no every(), no is [not] null, no not) on that one attribute; such a subtree is one predicate.
 */
function singleAttributePredicate(expr: Expr): string | undefined {
  let name: string | undefined;
  const walk = (e: Expr): boolean => {
    if (e.type === 'and' || e.type === 'or') return walk(e.left) && walk(e.right);
    if (e.type !== 'compare' && e.type !== 'between' && e.type !== 'in') return false;
    if (e.every || e.operand.kind !== 'attribute') return false;
    if (name === undefined) name = e.operand.name;
    return name === e.operand.name;
  };
  return walk(expr) ? name : undefined;
}

function valueMatchesPredicate(expr: Expr, v: string): boolean {
  if (expr.type === 'and') return valueMatchesPredicate(expr.left, v) && valueMatchesPredicate(expr.right, v);
  if (expr.type === 'or') return valueMatchesPredicate(expr.left, v) || valueMatchesPredicate(expr.right, v);
  return valueSatisfies(expr as Exclude<Comparison, { type: 'null' }>, v);
}

export function itemMatches(expr: Expr | undefined, item: ItemView): boolean {
  if (!expr) return true;
  switch (expr.type) {
    case 'and':
    case 'or': {
      const attribute = singleAttributePredicate(expr);
      if (attribute !== undefined) {
        return operandValues(item, { kind: 'attribute', name: attribute }).some((v) => valueMatchesPredicate(expr, v));
      }
      return expr.type === 'and'
        ? itemMatches(expr.left, item) && itemMatches(expr.right, item)
        : itemMatches(expr.left, item) || itemMatches(expr.right, item);
    }
    case 'intersection':
      return itemMatches(expr.left, item) && itemMatches(expr.right, item);
    case 'not':
      return !itemMatches(expr.expr, item);
    default:
      return comparisonMatches(expr, item);
  }
}
