// Recursive-descent parser for the SimpleDB Select language (API 2009-04-15):
//
//   select   := SELECT output FROM name [WHERE expr] [ORDER BY sortKey [ASC|DESC]] [LIMIT number]
//   output   := '*' | itemName() | count(*) | name (',' name)*
//   expr     := orExpr (INTERSECTION orExpr)*            -- lowest precedence
//   orExpr   := andExpr (OR andExpr)*
//   andExpr  := notExpr (AND notExpr)*
//   notExpr  := NOT notExpr | '(' expr ')' | comparison
//   comparison := operand ( op value | [NOT] LIKE value | BETWEEN value AND value
//                          | IN '(' value (',' value)* ')' | IS [NOT] NULL )
//   operand  := name | itemName() | EVERY '(' name ')'
//
// Precedence among intersection/or/and is not spelled out by the Developer Guide; this order
// (and binds tighter than or, intersection loosest) matches its examples.
import { SdbError } from '../errors.js';
import { queryError, tokenize, type Token } from './lexer.js';

export type Operand = { kind: 'attribute'; name: string } | { kind: 'itemName' };
export type CompareOp = '=' | '!=' | '>' | '>=' | '<' | '<=' | 'like' | 'not like';

export type Comparison =
  | { type: 'compare'; operand: Operand; every: boolean; op: CompareOp; value: string }
  | { type: 'between'; operand: Operand; every: boolean; low: string; high: string }
  | { type: 'in'; operand: Operand; every: boolean; values: string[] }
  | { type: 'null'; operand: Operand; isNull: boolean };

export type Expr =
  | Comparison
  | { type: 'and' | 'or' | 'intersection'; left: Expr; right: Expr }
  | { type: 'not'; expr: Expr };

export type Output =
  | { kind: 'all' }
  | { kind: 'itemName' }
  | { kind: 'count' }
  | { kind: 'attributes'; names: string[] };

export interface SelectQuery {
  output: Output;
  domain: string;
  where?: Expr;
  orderBy?: { operand: Operand; descending: boolean };
  /** As written; undefined means the default (100 items, or no limit for count(*)). */
  limit?: number;
}

/** Documented limits (Developer Guide, "Limits"). */
export const SELECT_LIMITS = {
  defaultItems: 100,
  maxItems: 2500,
  maxComparisons: 20,
  maxUniqueAttributes: 20,
  maxValueTests: 20,
  maxRequestedAttributes: 256,
} as const;

export function parseSelect(source: string): SelectQuery {
  const query = new Parser(tokenize(source)).parseQuery();
  validate(query);
  return query;
}

class Parser {
  private i = 0;
  constructor(private readonly tokens: Token[]) {}

  private peek(offset = 0): Token {
    return this.tokens[Math.min(this.i + offset, this.tokens.length - 1)];
  }

  private next(): Token {
    const t = this.peek();
    if (t.kind !== 'eof') this.i++;
    return t;
  }

  private isKeyword(word: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.kind === 'keyword' && t.value === word;
  }

  private isOp(op: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.kind === 'op' && t.value === op;
  }

  private expectKeyword(word: string): void {
    if (!this.isKeyword(word)) throw this.unexpected(`expected '${word}'`);
    this.next();
  }

  private expectOp(op: string): void {
    if (!this.isOp(op)) throw this.unexpected(`expected '${op}'`);
    this.next();
  }

  private unexpected(what: string): SdbError {
    const t = this.peek();
    const found = t.kind === 'eof' ? 'end of expression' : `'${'value' in t ? t.value : ''}' at position ${t.pos}`;
    return queryError(`Syntax error: ${what}, found ${found}.`);
  }

  /** A bare name (not a reserved word) or a backtick-quoted name. */
  private expectName(what: string): string {
    const t = this.peek();
    if (t.kind !== 'name') throw this.unexpected(`expected ${what}`);
    this.next();
    return t.value;
  }

  private isFunction(name: string): boolean {
    const t = this.peek();
    return t.kind === 'name' && !t.quoted && t.value.toLowerCase() === name.toLowerCase() && this.isOp('(', 1);
  }

  parseQuery(): SelectQuery {
    this.expectKeyword('select');
    const output = this.parseOutput();
    this.expectKeyword('from');
    const domain = this.expectName('a domain name');
    const query: SelectQuery = { output, domain };
    if (this.isKeyword('where')) {
      this.next();
      query.where = this.parseExpr();
    }
    if (this.isKeyword('order')) {
      this.next();
      this.expectKeyword('by');
      const operand = this.parseOperand(false).operand;
      let descending = false;
      if (this.isKeyword('asc')) this.next();
      else if (this.isKeyword('desc')) {
        this.next();
        descending = true;
      }
      query.orderBy = { operand, descending };
    }
    if (this.isKeyword('limit')) {
      this.next();
      const t = this.next();
      if (t.kind !== 'number') throw queryError('Syntax error: limit must be followed by a whole number.');
      query.limit = Number(t.value);
    }
    if (this.peek().kind !== 'eof') throw this.unexpected('end of expression');
    return query;
  }

  private parseOutput(): Output {
    if (this.isOp('*')) {
      this.next();
      return { kind: 'all' };
    }
    if (this.isFunction('itemName')) {
      this.next();
      this.expectOp('(');
      this.expectOp(')');
      return { kind: 'itemName' };
    }
    if (this.isFunction('count')) {
      this.next();
      this.expectOp('(');
      this.expectOp('*');
      this.expectOp(')');
      return { kind: 'count' };
    }
    const names = [this.expectName('*, itemName(), count(*) or an attribute name')];
    while (this.isOp(',')) {
      this.next();
      names.push(this.expectName('an attribute name'));
    }
    return { kind: 'attributes', names };
  }

  private parseExpr(): Expr {
    let left = this.parseOr();
    while (this.isKeyword('intersection')) {
      this.next();
      left = { type: 'intersection', left, right: this.parseOr() };
    }
    return left;
  }

  private parseOr(): Expr {
    let left = this.parseAnd();
    while (this.isKeyword('or')) {
      this.next();
      left = { type: 'or', left, right: this.parseAnd() };
    }
    return left;
  }

  private parseAnd(): Expr {
    let left = this.parseNot();
    while (this.isKeyword('and')) {
      this.next();
      left = { type: 'and', left, right: this.parseNot() };
    }
    return left;
  }

  private parseNot(): Expr {
    if (this.isKeyword('not')) {
      this.next();
      return { type: 'not', expr: this.parseNot() };
    }
    if (this.isOp('(')) {
      this.next();
      const inner = this.parseExpr();
      this.expectOp(')');
      return inner;
    }
    return this.parseComparison();
  }

  private parseOperand(allowEvery: boolean): { operand: Operand; every: boolean } {
    if (this.isFunction('itemName')) {
      this.next();
      this.expectOp('(');
      this.expectOp(')');
      return { operand: { kind: 'itemName' }, every: false };
    }
    if (allowEvery && this.isKeyword('every')) {
      this.next();
      this.expectOp('(');
      const name = this.expectName('an attribute name inside every()');
      this.expectOp(')');
      return { operand: { kind: 'attribute', name }, every: true };
    }
    return { operand: { kind: 'attribute', name: this.expectName('an attribute name or itemName()') }, every: false };
  }

  private parseValue(): string {
    const t = this.peek();
    if (t.kind !== 'string') throw this.unexpected('a quoted value');
    this.next();
    return t.value;
  }

  private parseComparison(): Comparison {
    const { operand, every } = this.parseOperand(true);
    const t = this.peek();
    if (t.kind === 'op' && ['=', '!=', '>', '>=', '<', '<='].includes(t.value)) {
      this.next();
      return { type: 'compare', operand, every, op: t.value as CompareOp, value: this.parseValue() };
    }
    if (this.isKeyword('like')) {
      this.next();
      return { type: 'compare', operand, every, op: 'like', value: this.parseValue() };
    }
    if (this.isKeyword('not') && this.isKeyword('like', 1)) {
      this.next();
      this.next();
      return { type: 'compare', operand, every, op: 'not like', value: this.parseValue() };
    }
    if (this.isKeyword('between')) {
      this.next();
      const low = this.parseValue();
      this.expectKeyword('and');
      return { type: 'between', operand, every, low, high: this.parseValue() };
    }
    if (this.isKeyword('in')) {
      this.next();
      this.expectOp('(');
      const values = [this.parseValue()];
      while (this.isOp(',')) {
        this.next();
        values.push(this.parseValue());
      }
      this.expectOp(')');
      return { type: 'in', operand, every, values };
    }
    if (this.isKeyword('is')) {
      this.next();
      let isNull = true;
      if (this.isKeyword('not')) {
        this.next();
        isNull = false;
      }
      this.expectKeyword('null');
      if (every) throw queryError('every() cannot be used with is null / is not null.');
      return { type: 'null', operand, isNull };
    }
    throw this.unexpected('a comparison operator (=, !=, >, >=, <, <=, like, not like, between, in, is)');
  }
}

/** Comparisons (leaves) of an expression, left to right. */
export function comparisons(expr: Expr | undefined): Comparison[] {
  if (!expr) return [];
  switch (expr.type) {
    case 'and':
    case 'or':
    case 'intersection':
      return [...comparisons(expr.left), ...comparisons(expr.right)];
    case 'not':
      return comparisons(expr.expr);
    default:
      return [expr];
  }
}

function validate(query: SelectQuery): void {
  const leaves = comparisons(query.where);
  if (leaves.length > SELECT_LIMITS.maxComparisons) {
    throw new SdbError('InvalidNumberPredicates', `Too many predicates in the query expression (${leaves.length}; the maximum is ${SELECT_LIMITS.maxComparisons}).`);
  }
  const attributes = new Set(leaves.flatMap((c) => (c.operand.kind === 'attribute' ? [c.operand.name] : [])));
  if (attributes.size > SELECT_LIMITS.maxUniqueAttributes) {
    throw new SdbError('InvalidNumberPredicates', `Too many attributes in the query expression (${attributes.size}; the maximum is ${SELECT_LIMITS.maxUniqueAttributes}).`);
  }
  for (const c of leaves) {
    if (c.type === 'in' && c.values.length > SELECT_LIMITS.maxValueTests) {
      throw new SdbError('InvalidNumberValueTests', `Too many value tests in one in() predicate (${c.values.length}; the maximum is ${SELECT_LIMITS.maxValueTests}).`);
    }
  }
  if (query.output.kind === 'attributes' && query.output.names.length > SELECT_LIMITS.maxRequestedAttributes) {
    throw new SdbError('TooManyRequestedAttributes', `Too many attributes requested (${query.output.names.length}; the maximum is ${SELECT_LIMITS.maxRequestedAttributes}).`);
  }
  if (query.limit !== undefined && query.output.kind !== 'count' && (query.limit < 1 || query.limit > SELECT_LIMITS.maxItems)) {
    throw new SdbError('InvalidParameterValue', `Value (${query.limit}) for parameter Limit is invalid. It must be between 1 and ${SELECT_LIMITS.maxItems}.`);
  }
  if (query.limit !== undefined && query.limit < 1) {
    throw new SdbError('InvalidParameterValue', `Value (${query.limit}) for parameter Limit is invalid. It must be at least 1.`);
  }
  // "The sort attribute must be present in at least one of the predicates of the expression",
  // and that predicate cannot be `is null` (results must carry the sort attribute).
  const sort = query.orderBy?.operand;
  if (sort && sort.kind === 'attribute') {
    const constrained = leaves.some((c) => c.operand.kind === 'attribute' && c.operand.name === sort.name && !(c.type === 'null' && c.isNull));
    if (!constrained) {
      throw new SdbError(
        'InvalidSortExpression',
        `The sort attribute (${sort.name}) must be present in at least one of the predicates, and the predicate cannot be 'is null'.`,
      );
    }
  }
}
