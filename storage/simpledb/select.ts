// THE builder of SimpleDB select expressions. No other code concatenates select text: every
// name and value passes through quoteName/quoteValue here, so hostile ids (quotes, backticks,
// `%`, `itemName() like '%'`) can only ever be compared as literals.
//
// Quoting rules (SimpleDB Developer Guide, "Quoting Rules"): attribute and domain names are
// enclosed in backticks with a backtick inside doubled; values are enclosed in single quotes with a
// single quote inside doubled. We always quote, so reserved words and odd characters need no
// special cases. In `like` patterns `%` is the only wildcard; SimpleDB has no escape for it, so
// `startsWith` refuses values containing `%` and callers use range predicates for prefixes instead.

/** The item name pseudo-attribute: `itemName()`. */
export const ITEM_NAME = Symbol('itemName()');
export type Operand = string | typeof ITEM_NAME;

export type Comparison = '=' | '!=' | '<' | '<=' | '>' | '>=';

export type Predicate =
  | { attr: Operand; op: Comparison; value: string }
  | { attr: Operand; op: 'in'; values: readonly string[] }
  | { attr: Operand; op: 'between'; low: string; high: string }
  | { attr: Operand; op: 'is null' | 'is not null' }
  | { attr: Operand; op: 'starts with'; value: string };

export type Output = '*' | 'count(*)' | 'itemName()' | readonly string[];

export interface SelectSpec {
  output: Output;
  domain: string;
  /** Joined with `and`; empty means every item. */
  where?: readonly Predicate[];
  orderBy?: { attr: Operand; direction?: 'asc' | 'desc' };
  /** Page size, 1..2500 (SimpleDB's maximum). */
  limit?: number;
}

/** Bad input to the builder (a programming error, not user input: user input is always quoted). */
export class SelectExpressionError extends Error {
  readonly name = 'SelectExpressionError';
  readonly code = 'ERR_SELECT_EXPRESSION';
}

/** Limits from the SimpleDB Developer Guide ("Limits"). */
export const MAX_SELECT_LIMIT = 2500;
export const MAX_PREDICATE_VALUES = 20;
export const MAX_PREDICATES = 20;

export function quoteName(name: string): string {
  if (name.length === 0) throw new SelectExpressionError('an attribute or domain name cannot be empty');
  return '`' + name.replaceAll('`', '``') + '`';
}

export function quoteValue(value: string): string {
  return "'" + value.replaceAll("'", "''") + "'";
}

function operand(attr: Operand): string {
  return attr === ITEM_NAME ? 'itemName()' : quoteName(attr);
}

function predicate(p: Predicate): string {
  const left = operand(p.attr);
  switch (p.op) {
    case 'in':
      if (p.values.length === 0 || p.values.length > MAX_PREDICATE_VALUES) {
        throw new SelectExpressionError(`'in' takes 1..${MAX_PREDICATE_VALUES} values, got ${p.values.length}`);
      }
      return `${left} in (${p.values.map(quoteValue).join(', ')})`;
    case 'between':
      return `${left} between ${quoteValue(p.low)} and ${quoteValue(p.high)}`;
    case 'is null':
    case 'is not null':
      return `${left} ${p.op}`;
    case 'starts with':
      if (p.value.includes('%')) throw new SelectExpressionError('starts with: the value cannot contain % (SimpleDB has no escape for it)');
      return `${left} like ${quoteValue(p.value + '%')}`;
    default:
      return `${left} ${p.op} ${quoteValue(p.value)}`;
  }
}

/** Builds one select expression; throws SelectExpressionError on a spec SimpleDB would reject. */
export function buildSelect(spec: SelectSpec): string {
  const where = spec.where ?? [];
  if (where.length > MAX_PREDICATES) throw new SelectExpressionError(`at most ${MAX_PREDICATES} predicates, got ${where.length}`);
  let output: string;
  if (spec.output === '*' || spec.output === 'count(*)' || spec.output === 'itemName()') output = spec.output;
  else {
    if (spec.output.length === 0) throw new SelectExpressionError('output needs at least one attribute');
    output = spec.output.map(quoteName).join(', ');
  }
  let text = `select ${output} from ${quoteName(spec.domain)}`;
  if (where.length > 0) text += ` where ${where.map(predicate).join(' and ')}`;
  if (spec.orderBy) {
    // SimpleDB requires the sort attribute to appear in a predicate of the where clause.
    const sortAttr = spec.orderBy.attr;
    if (!where.some((p) => p.attr === sortAttr)) {
      throw new SelectExpressionError(`order by ${operand(sortAttr)} needs a predicate on it in the where clause`);
    }
    text += ` order by ${operand(sortAttr)} ${spec.orderBy.direction ?? 'asc'}`;
  }
  if (spec.limit !== undefined) {
    if (!Number.isInteger(spec.limit) || spec.limit < 1 || spec.limit > MAX_SELECT_LIMIT) {
      throw new SelectExpressionError(`limit must be an integer from 1 to ${MAX_SELECT_LIMIT}, got ${spec.limit}`);
    }
    text += ` limit ${spec.limit}`;
  }
  return text;
}

/**
 * The smallest string greater than every string starting with `prefix`, for the range predicate
 * `itemName() >= prefix and itemName() < prefixUpperBound(prefix)`. Undefined when no such bound
 * exists (prefix of only U+FFFF), meaning "no upper bound".
 */
export function prefixUpperBound(prefix: string): string | undefined {
  let p = prefix;
  while (p.length > 0) {
    const last = p.charCodeAt(p.length - 1);
    if (last < 0xffff) return p.slice(0, -1) + String.fromCharCode(last + 1);
    p = p.slice(0, -1);
  }
  return undefined;
}
