// Tokenizer for SimpleDB Select expressions (Developer Guide: "Select Quoting Rules").
// - Values are quoted with ' or "; the quote character is doubled inside ('That''s').
// - Names are bare ([A-Za-z_$][A-Za-z0-9_$]*) or quoted with backticks, ` doubled inside.
// - Keywords are case-insensitive; a reserved word used as a name must be backtick-quoted.
import { SdbError } from '../errors.js';

export const RESERVED = new Set([
  'or', 'and', 'not', 'from', 'where', 'select', 'like', 'null', 'is', 'order', 'by', 'asc', 'desc',
  'in', 'between', 'intersection', 'limit', 'every',
]);

export type Token =
  | { kind: 'keyword'; value: string; pos: number } // lower-cased reserved word
  | { kind: 'name'; value: string; quoted: boolean; pos: number }
  | { kind: 'string'; value: string; pos: number }
  | { kind: 'number'; value: string; pos: number }
  | { kind: 'op'; value: '=' | '!=' | '>' | '>=' | '<' | '<=' | '(' | ')' | ',' | '*'; pos: number }
  | { kind: 'eof'; pos: number };

export function queryError(message: string): SdbError {
  return new SdbError('InvalidQueryExpression', `The specified query expression syntax is not valid. ${message}`);
}

export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const pos = i;
    if (c === "'" || c === '"' || c === '`') {
      const [text, end] = readQuoted(source, i, c);
      i = end;
      tokens.push(c === '`' ? { kind: 'name', value: text, quoted: true, pos } : { kind: 'string', value: text, pos });
      continue;
    }
    if (/[A-Za-z_$]/.test(c)) {
      let j = i + 1;
      while (j < source.length && /[A-Za-z0-9_$]/.test(source[j])) j++;
      const word = source.slice(i, j);
      i = j;
      const lower = word.toLowerCase();
      tokens.push(RESERVED.has(lower) ? { kind: 'keyword', value: lower, pos } : { kind: 'name', value: word, quoted: false, pos });
      continue;
    }
    if (/[0-9]/.test(c)) {
      let j = i + 1;
      while (j < source.length && /[0-9]/.test(source[j])) j++;
      tokens.push({ kind: 'number', value: source.slice(i, j), pos });
      i = j;
      continue;
    }
    const two = source.slice(i, i + 2);
    if (two === '!=' || two === '>=' || two === '<=') {
      tokens.push({ kind: 'op', value: two, pos });
      i += 2;
      continue;
    }
    if (c === '=' || c === '>' || c === '<' || c === '(' || c === ')' || c === ',' || c === '*') {
      tokens.push({ kind: 'op', value: c, pos });
      i++;
      continue;
    }
    throw queryError(`Invalid character '${c}' at position ${pos}.`);
  }
  tokens.push({ kind: 'eof', pos: source.length });
  return tokens;
}

/** Reads a quoted run starting at `start` (the opening quote); returns the text and the index after it. */
function readQuoted(source: string, start: number, quote: string): [string, number] {
  let text = '';
  let i = start + 1;
  for (;;) {
    const next = source.indexOf(quote, i);
    if (next < 0) throw queryError(`Unterminated ${quote === '`' ? 'name' : 'value'} starting at position ${start}.`);
    text += source.slice(i, next);
    if (source[next + 1] === quote) {
      text += quote;
      i = next + 2;
      continue;
    }
    return [text, next + 1];
  }
}
