// How records become SimpleDB attributes and back. SimpleDB stores strings only and compares them
// lexicographically, so:
// - the whole record is one JSON document (`d0`..`dN`, ≤1000 ASCII characters each, `dn` = count):
//   the document is the truth a read returns; chunking keeps any record under the 1024-byte limit;
// - the attributes queries filter on are written beside it as *index values*: `=` + value for a
//   string, `-` for null, so a null never equals a queried string and '' stays distinct from null;
// - numbers that are compared or ordered are zero-padded to 20 digits; times are ISO-8601 UTC with
//   milliseconds (Date#toISOString), whose text order is time order.
// Writers replace every attribute they own on every write (Replace=true); readers ignore document
// chunks beyond `dn`, so a shorter document never mixes with leftovers of a longer one.
import type { Attribute, ReplaceableAttribute } from './client.js';

const CHUNK = 1000;

export function padNumber(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`cannot encode ${n} as an ordered number`);
  return String(n).padStart(20, '0');
}

export function indexValue(value: string | null): string {
  return value === null ? '-' : `=${value}`;
}

/** JSON with every non-ASCII character escaped, so chunks split anywhere and XML carries it safely. */
function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

export function documentAttributes(value: unknown): ReplaceableAttribute[] {
  const json = asciiJson(value);
  const attrs: ReplaceableAttribute[] = [];
  for (let i = 0; i * CHUNK < json.length || i === 0; i++) {
    attrs.push({ name: `d${i}`, value: json.slice(i * CHUNK, (i + 1) * CHUNK), replace: true });
  }
  attrs.push({ name: 'dn', value: String(attrs.length), replace: true });
  return attrs;
}

/** Undefined when the item has no (complete) document. */
export function readDocument<T>(attrs: readonly Attribute[]): T | undefined {
  const byName = new Map(attrs.map((a) => [a.name, a.value]));
  const n = Number(byName.get('dn'));
  if (!Number.isInteger(n) || n < 1) return undefined;
  let json = '';
  for (let i = 0; i < n; i++) {
    const part = byName.get(`d${i}`);
    if (part === undefined) return undefined;
    json += part;
  }
  return JSON.parse(json) as T;
}

export function attributeValue(attrs: readonly Attribute[], name: string): string | undefined {
  return attrs.find((a) => a.name === name)?.value;
}
