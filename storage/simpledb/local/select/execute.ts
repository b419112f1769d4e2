// Runs a parsed Select against a domain's items and cuts one page: limit (default 100, max 2500),
// a 1 MB response cap, and an opaque NextToken that resumes after the last returned sort key.
// count(*) ignores the default page size; `limit` caps how many it counts before a NextToken.
// Tokens from count(*) and from a plain select are interchangeable when domain, where and
// order by match (Developer Guide, "Count"), so the token binds only those.
import { createHash } from 'node:crypto';
import { SdbError } from '../errors.js';
import { compareStrings, itemMatches, operandValues, type ItemView } from './evaluate.js';
import { SELECT_LIMITS, type SelectQuery } from './parser.js';

export const MAX_RESPONSE_BYTES = 1024 * 1024;

export interface SelectedItem {
  name: string;
  attributes: Array<{ name: string; value: string }>;
}

export interface SelectPage {
  items: SelectedItem[];
  nextToken?: string;
}

interface SortKey {
  value: string;
  name: string;
}

interface TokenBody {
  v: 1;
  q: string; // hash of domain + where + order by
  k: [string, string]; // last sort key returned: [sort value, item name]
}

function queryHash(query: SelectQuery): string {
  return createHash('sha256')
    .update(JSON.stringify([query.domain, query.where ?? null, query.orderBy ?? null]))
    .digest('base64url')
    .slice(0, 22);
}

function encodeToken(query: SelectQuery, key: SortKey): string {
  const body: TokenBody = { v: 1, q: queryHash(query), k: [key.value, key.name] };
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64');
}

function decodeToken(query: SelectQuery, token: string): SortKey {
  const invalid = () => new SdbError('InvalidNextToken', 'The specified next token is not valid.');
  let body: TokenBody;
  try {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(token)) throw invalid();
    body = JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as TokenBody;
  } catch {
    throw invalid();
  }
  if (!body || body.v !== 1 || !Array.isArray(body.k) || body.k.length !== 2 || typeof body.k[0] !== 'string' || typeof body.k[1] !== 'string') {
    throw invalid();
  }
  if (body.q !== queryHash(query)) {
    throw new SdbError('InvalidNextToken', 'The specified next token does not belong to this query (domain, where and order by must not change).');
  }
  return { value: body.k[0], name: body.k[1] };
}

function sortKey(query: SelectQuery, item: ItemView): SortKey | undefined {
  const order = query.orderBy;
  if (!order || order.operand.kind === 'itemName') return { value: '', name: item.name };
  const values = operandValues(item, order.operand);
  // Results must carry the sort attribute; a multi-valued one sorts by its first value in the
  // requested direction.
  if (values.length === 0) return undefined;
  values.sort(compareStrings);
  return { value: order.descending ? values[values.length - 1] : values[0], name: item.name };
}

function compareKeys(a: SortKey, b: SortKey, descending: boolean): number {
  const c = compareStrings(a.value, b.value) || compareStrings(a.name, b.name);
  return descending ? -c : c;
}

/** Rough size of an item in the XML response, for the 1 MB cap. */
function responseBytes(item: SelectedItem): number {
  let n = 30 + Buffer.byteLength(item.name);
  for (const a of item.attributes) n += 60 + Buffer.byteLength(a.name) + Buffer.byteLength(a.value);
  return n;
}

function project(query: SelectQuery, item: ItemView): SelectedItem {
  const out: SelectedItem = { name: item.name, attributes: [] };
  if (query.output.kind === 'itemName') return out;
  const wanted = query.output.kind === 'attributes' ? new Set(query.output.names) : undefined;
  for (const [name, values] of item.attributes) {
    if (wanted && !wanted.has(name)) continue;
    for (const value of values) out.attributes.push({ name, value });
  }
  return out;
}

export function executeSelect(query: SelectQuery, items: Iterable<ItemView>, nextToken?: string): SelectPage {
  const descending = query.orderBy?.descending ?? false;
  const after = nextToken ? decodeToken(query, nextToken) : undefined;
  const matched: Array<{ key: SortKey; item: ItemView }> = [];
  for (const item of items) {
    if (!itemMatches(query.where, item)) continue;
    const key = sortKey(query, item);
    if (!key) continue;
    if (after && compareKeys(key, after, descending) <= 0) continue;
    matched.push({ key, item });
  }
  matched.sort((a, b) => compareKeys(a.key, b.key, descending));

  if (query.output.kind === 'count') {
    const limit = query.limit ?? Number.POSITIVE_INFINITY;
    const counted = Math.min(limit, matched.length);
    const page: SelectPage = { items: [{ name: 'Domain', attributes: [{ name: 'Count', value: String(counted) }] }] };
    if (matched.length > counted) page.nextToken = encodeToken(query, matched[counted - 1].key);
    return page;
  }

  const pageSize = query.limit ?? SELECT_LIMITS.defaultItems;
  const page: SelectPage = { items: [] };
  let bytes = 0;
  let taken = 0;
  for (const { item } of matched) {
    if (taken >= pageSize) break;
    const selected = project(query, item);
    const size = responseBytes(selected);
    if (taken > 0 && bytes + size > MAX_RESPONSE_BYTES) break;
    bytes += size;
    page.items.push(selected);
    taken++;
  }
  if (taken < matched.length) page.nextToken = encodeToken(query, matched[taken - 1].key);
  return page;
}
