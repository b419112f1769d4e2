// A small SimpleDB (2009-04-15 Query API) client: form-encoded POST over undici, Signature Version 2
// (storage/simpledb/sigv2.ts), XML answers via fast-xml-parser. AWS SDK v3 has no SimpleDB client and
// v2 is end-of-support, so this is the one place that speaks SimpleDB's protocol.
//
// Contract:
// - Every failure is a SimpleDbError (SimpleDB's `Code`, HTTP status, RequestID, BoxUsage) or, for a
//   request that breaks SimpleDB's limits, a SimpleDbLimitError raised before anything is sent.
// - Only 5xx answers, ServiceUnavailable and RequestTimeout are retried, with exponential backoff and
//   full jitter. Conditional-check failures and every other 4xx go straight to the caller.
// - Each HTTP attempt is reported to the metrics hook (action, "ok" or the error code, BoxUsage).
import { Agent, request, type Dispatcher } from 'undici';
import { XMLParser } from 'fast-xml-parser';
import { canonicalQuery, rfc3986Encode, signParams } from './sigv2.js';

export const API_VERSION = '2009-04-15';

/** Limits from the SimpleDB Developer Guide ("Limits"), enforced before sending. */
export const LIMITS = {
  nameBytes: 1024,
  valueBytes: 1024,
  attributesPerItem: 256,
  itemsPerBatch: 25,
  batchBytes: 1024 * 1024,
  domainNameLength: 255,
} as const;

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Called before every request, so rotated or refreshed credentials are used at once. */
export type CredentialProvider = () => Promise<AwsCredentials>;

export function staticCredentials(creds: AwsCredentials): CredentialProvider {
  return async () => creds;
}

/** The AWS default chain: env, shared config/profile, ECS task role, instance profile. */
export async function defaultCredentials(): Promise<CredentialProvider> {
  const { fromNodeProviderChain } = await import('@aws-sdk/credential-providers');
  const provider = fromNodeProviderChain();
  return async () => {
    const c = await provider();
    return { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken };
  };
}

export type SimpleDbAction =
  | 'CreateDomain'
  | 'ListDomains'
  | 'DomainMetadata'
  | 'PutAttributes'
  | 'BatchPutAttributes'
  | 'GetAttributes'
  | 'DeleteAttributes'
  | 'BatchDeleteAttributes'
  | 'Select';

export const SIMPLEDB_ACTIONS: readonly SimpleDbAction[] = [
  'CreateDomain',
  'ListDomains',
  'DomainMetadata',
  'PutAttributes',
  'BatchPutAttributes',
  'GetAttributes',
  'DeleteAttributes',
  'BatchDeleteAttributes',
  'Select',
];

/** One answered request (or transport failure), for metrics. */
export interface SimpleDbRequestEvent {
  action: SimpleDbAction;
  /** "ok", SimpleDB's error Code, ERR_SIMPLEDB_TRANSPORT, or ERR_SIMPLEDB_CREDENTIALS (nothing was sent). */
  code: string;
  status: number;
  /** Machine hours SimpleDB billed for the request (0 when absent). */
  boxUsage: number;
}

export interface SimpleDbMetricsHook {
  onRequest(event: SimpleDbRequestEvent): void;
}

/** An error answer from SimpleDB, or a request that never got one. */
export class SimpleDbError extends Error {
  readonly name = 'SimpleDbError';
  constructor(
    /** SimpleDB's `Code` (NoSuchDomain, ConditionalCheckFailed, ...); ERR_SIMPLEDB_TRANSPORT without an answer; ERR_SIMPLEDB_CREDENTIALS when nothing could be signed. */
    readonly code: string,
    message: string,
    readonly action: SimpleDbAction,
    /** HTTP status; 0 when no answer arrived. */
    readonly status: number,
    readonly requestId: string | null,
    readonly boxUsage: number,
    options?: { cause?: unknown },
  ) {
    super(`SimpleDB ${action}: ${code}: ${message}`, options);
  }

  /** The codes worth another attempt. */
  get retryable(): boolean {
    return this.status >= 500 || this.code === 'ServiceUnavailable' || this.code === 'RequestTimeout';
  }
}

/** A request that breaks one of SimpleDB's limits; raised before anything is sent. */
export class SimpleDbLimitError extends Error {
  readonly name = 'SimpleDbLimitError';
  readonly code = 'ERR_SIMPLEDB_LIMIT';
  constructor(
    readonly limit: keyof typeof LIMITS,
    message: string,
  ) {
    super(message);
  }
}

export interface Attribute {
  name: string;
  value: string;
}

export interface ReplaceableAttribute extends Attribute {
  /** Replace every existing value of this attribute instead of adding one. */
  replace?: boolean;
}

/** `Expected` of a conditional write: the attribute must hold `value`, or must not exist (`exists: false`). */
export type Expected = { name: string; value: string } | { name: string; exists: false };

export interface Item {
  name: string;
  attributes: Attribute[];
}

export interface SelectPage {
  items: Item[];
  nextToken: string | null;
}

export interface DomainMetadata {
  itemCount: number;
  itemNamesSizeBytes: number;
  attributeNameCount: number;
  attributeNamesSizeBytes: number;
  attributeValueCount: number;
  attributeValuesSizeBytes: number;
  timestamp: number;
}

export interface SimpleDbClientOptions {
  /** e.g. https://sdb.amazonaws.com or http://127.0.0.1:8443 */
  endpoint: URL;
  credentials: CredentialProvider;
  dispatcher?: Dispatcher;
  metrics?: SimpleDbMetricsHook;
  /** Attempts per request including the first (default 6). */
  maxAttempts?: number;
  /** First backoff ceiling (default 50 ms); doubles per attempt up to backoffMaxMs (default 2 s). */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Per-attempt timeout (default 10 s). */
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  now?: () => Date;
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  // Values are data: keep leading/trailing spaces and never turn "007" into 7.
  trimValues: false,
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (name) => ['Attribute', 'Item', 'DomainName', 'Error'].includes(name),
});

type XmlNode = Record<string, unknown>;

/**
 * Text of an element, decoding SimpleDB's base64 alternate encoding for non-XML characters. The
 * Developer Guide ("Working with XML-Restricted Characters") marks it with an `encoding="base64"`
 * attribute; AWS's API model has a sibling element instead (`<AlternateValueEncoding>base64</…>`,
 * what the SDKs read and the local endpoint sends): `siblingEncoding` is that element's text.
 */
function text(node: unknown, siblingEncoding?: unknown): string {
  if (node === undefined || node === null) return '';
  const obj = typeof node === 'object' ? (node as XmlNode) : undefined;
  const raw = obj ? (typeof obj['#text'] === 'string' ? (obj['#text'] as string) : '') : String(node);
  const base64 = obj?.['@_encoding'] === 'base64' || (siblingEncoding !== undefined && text(siblingEncoding) === 'base64');
  return base64 ? Buffer.from(raw, 'base64').toString('utf8') : raw;
}

/** The text of `<tag>` in `node`, decoded by either form of SimpleDB's alternate encoding. */
function encodedText(node: unknown, tag: 'Name' | 'Value'): string {
  return text(child(node, tag), child(node, `Alternate${tag}Encoding`));
}

function child(node: unknown, name: string): unknown {
  return node && typeof node === 'object' ? (node as XmlNode)[name] : undefined;
}

function list(node: unknown, name: string): unknown[] {
  const v = child(node, name);
  return Array.isArray(v) ? v : v === undefined ? [] : [v];
}

function parseAttributes(node: unknown): Attribute[] {
  return list(node, 'Attribute').map((a) => ({ name: encodedText(a, 'Name'), value: encodedText(a, 'Value') }));
}

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function checkAttribute(a: Attribute): number {
  const n = byteLength(a.name);
  const v = byteLength(a.value);
  if (n === 0) throw new SimpleDbLimitError('nameBytes', 'an attribute name cannot be empty');
  if (n > LIMITS.nameBytes) throw new SimpleDbLimitError('nameBytes', `attribute name "${a.name.slice(0, 40)}..." is ${n} bytes; SimpleDB allows ${LIMITS.nameBytes}`);
  if (v > LIMITS.valueBytes) throw new SimpleDbLimitError('valueBytes', `value of attribute "${a.name}" is ${v} bytes; SimpleDB allows ${LIMITS.valueBytes}`);
  return n + v;
}

function checkItem(name: string, attributes: readonly Attribute[], needsAttributes: boolean): number {
  const n = byteLength(name);
  if (n === 0 || n > LIMITS.nameBytes) throw new SimpleDbLimitError('nameBytes', `item name must be 1..${LIMITS.nameBytes} bytes, got ${n}`);
  if (needsAttributes && attributes.length === 0) throw new SimpleDbLimitError('attributesPerItem', `item "${name}" needs at least one attribute`);
  if (attributes.length > LIMITS.attributesPerItem) {
    throw new SimpleDbLimitError('attributesPerItem', `item "${name}" has ${attributes.length} attribute pairs; SimpleDB allows ${LIMITS.attributesPerItem}`);
  }
  return attributes.reduce((sum, a) => sum + checkAttribute(a), n);
}

function checkBatch(items: readonly { name: string; attributes: readonly Attribute[] }[], needsAttributes: boolean): void {
  if (items.length === 0) throw new SimpleDbLimitError('itemsPerBatch', 'a batch needs at least one item');
  if (items.length > LIMITS.itemsPerBatch) throw new SimpleDbLimitError('itemsPerBatch', `a batch holds at most ${LIMITS.itemsPerBatch} items, got ${items.length}`);
  const names = new Set<string>();
  let bytes = 0;
  for (const item of items) {
    if (names.has(item.name)) throw new SimpleDbLimitError('itemsPerBatch', `item "${item.name}" appears twice in one batch`);
    names.add(item.name);
    bytes += checkItem(item.name, item.attributes, needsAttributes);
  }
  if (bytes > LIMITS.batchBytes) throw new SimpleDbLimitError('batchBytes', `a batch holds at most ${LIMITS.batchBytes} bytes of names and values, got ${bytes}`);
}

function putAttributeParams(params: Record<string, string>, prefix: string, attributes: readonly ReplaceableAttribute[]): void {
  attributes.forEach((a, i) => {
    params[`${prefix}Attribute.${i + 1}.Name`] = a.name;
    params[`${prefix}Attribute.${i + 1}.Value`] = a.value;
    if (a.replace) params[`${prefix}Attribute.${i + 1}.Replace`] = 'true';
  });
}

function deleteAttributeParams(params: Record<string, string>, prefix: string, attributes: readonly (Attribute | { name: string })[]): void {
  attributes.forEach((a, i) => {
    params[`${prefix}Attribute.${i + 1}.Name`] = a.name;
    if ('value' in a) params[`${prefix}Attribute.${i + 1}.Value`] = a.value;
  });
}

function expectedParams(params: Record<string, string>, expected: Expected | undefined): void {
  if (!expected) return;
  // The AWS SDK sends the un-numbered form (Expected.Name); SimpleDB accepts both.
  params['Expected.Name'] = expected.name;
  if ('exists' in expected) params['Expected.Exists'] = 'false';
  else params['Expected.Value'] = expected.value;
}

/** SigV2 timestamps are ISO-8601 UTC without milliseconds, as the AWS SDK sends them. */
export function sigV2Timestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The signed form body of one request. Pure, so tests can compare it with what the AWS SDK sends.
 * `host` is the Host header (`name:port` when the port is not the scheme's default).
 */
export function signedRequestParams(
  action: SimpleDbAction,
  params: Record<string, string>,
  creds: AwsCredentials,
  endpoint: URL,
  now: Date,
): Record<string, string> {
  const unsigned: Record<string, string> = { ...params, Action: action, Version: API_VERSION, Timestamp: sigV2Timestamp(now) };
  if (creds.sessionToken) unsigned.SecurityToken = creds.sessionToken;
  return signParams(unsigned, {
    accessKeyId: creds.accessKeyId,
    secretAccessKey: creds.secretAccessKey,
    method: 'POST',
    host: endpoint.host,
    path: endpoint.pathname || '/',
  });
}

export class SimpleDbClient {
  readonly endpoint: URL;
  private readonly credentials: CredentialProvider;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly metrics?: SimpleDbMetricsHook;
  private readonly maxAttempts: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly timeoutMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly now: () => Date;

  constructor(opts: SimpleDbClientOptions) {
    this.endpoint = opts.endpoint;
    this.credentials = opts.credentials;
    this.ownsDispatcher = !opts.dispatcher;
    this.dispatcher = opts.dispatcher ?? new Agent({ keepAliveTimeout: 10_000, connections: 32 });
    this.metrics = opts.metrics;
    this.maxAttempts = opts.maxAttempts ?? 6;
    this.backoffBaseMs = opts.backoffBaseMs ?? 50;
    this.backoffMaxMs = opts.backoffMaxMs ?? 2000;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.sleep = opts.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? (() => new Date());
  }

  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  // --- operations ------------------------------------------------------------------------------

  async createDomain(domain: string): Promise<void> {
    if (!/^[A-Za-z0-9_.-]{3,255}$/.test(domain)) {
      throw new SimpleDbLimitError('domainNameLength', `domain name must be 3..255 of a-z A-Z 0-9 _ - . , got "${domain}"`);
    }
    await this.call('CreateDomain', { DomainName: domain });
  }

  async listDomains(opts: { maxNumberOfDomains?: number; nextToken?: string } = {}): Promise<{ domains: string[]; nextToken: string | null }> {
    const params: Record<string, string> = {};
    if (opts.maxNumberOfDomains !== undefined) params.MaxNumberOfDomains = String(opts.maxNumberOfDomains);
    if (opts.nextToken) params.NextToken = opts.nextToken;
    const result = child(await this.call('ListDomains', params), 'ListDomainsResult');
    const next = text(child(result, 'NextToken'));
    return { domains: list(result, 'DomainName').map(text), nextToken: next === '' ? null : next };
  }

  /** Every domain, following NextToken. */
  async listAllDomains(): Promise<string[]> {
    const all: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.listDomains({ nextToken });
      all.push(...page.domains);
      nextToken = page.nextToken ?? undefined;
    } while (nextToken);
    return all;
  }

  async domainMetadata(domain: string): Promise<DomainMetadata> {
    const r = child(await this.call('DomainMetadata', { DomainName: domain }), 'DomainMetadataResult');
    const n = (name: string) => Number(text(child(r, name)) || 0);
    return {
      itemCount: n('ItemCount'),
      itemNamesSizeBytes: n('ItemNamesSizeBytes'),
      attributeNameCount: n('AttributeNameCount'),
      attributeNamesSizeBytes: n('AttributeNamesSizeBytes'),
      attributeValueCount: n('AttributeValueCount'),
      attributeValuesSizeBytes: n('AttributeValuesSizeBytes'),
      timestamp: n('Timestamp'),
    };
  }

  /** Throws SimpleDbError code ConditionalCheckFailed (409) when `expected` does not hold. */
  async putAttributes(domain: string, itemName: string, attributes: readonly ReplaceableAttribute[], expected?: Expected): Promise<void> {
    checkItem(itemName, attributes, true);
    const params: Record<string, string> = { DomainName: domain, ItemName: itemName };
    putAttributeParams(params, '', attributes);
    expectedParams(params, expected);
    await this.call('PutAttributes', params);
  }

  async batchPutAttributes(domain: string, items: readonly { name: string; attributes: readonly ReplaceableAttribute[] }[]): Promise<void> {
    checkBatch(items, true);
    const params: Record<string, string> = { DomainName: domain };
    items.forEach((item, i) => {
      params[`Item.${i + 1}.ItemName`] = item.name;
      putAttributeParams(params, `Item.${i + 1}.`, item.attributes);
    });
    await this.call('BatchPutAttributes', params);
  }

  /** An absent item answers an empty list. */
  async getAttributes(domain: string, itemName: string, opts: { consistentRead?: boolean; attributeNames?: readonly string[] } = {}): Promise<Attribute[]> {
    const params: Record<string, string> = { DomainName: domain, ItemName: itemName };
    (opts.attributeNames ?? []).forEach((n, i) => (params[`AttributeName.${i + 1}`] = n));
    if (opts.consistentRead) params.ConsistentRead = 'true';
    return parseAttributes(child(await this.call('GetAttributes', params), 'GetAttributesResult'));
  }

  /** Without attributes deletes the whole item. */
  async deleteAttributes(domain: string, itemName: string, attributes: readonly (Attribute | { name: string })[] = [], expected?: Expected): Promise<void> {
    checkItem(itemName, [], false);
    const params: Record<string, string> = { DomainName: domain, ItemName: itemName };
    deleteAttributeParams(params, '', attributes);
    expectedParams(params, expected);
    await this.call('DeleteAttributes', params);
  }

  async batchDeleteAttributes(domain: string, items: readonly { name: string; attributes?: readonly (Attribute | { name: string })[] }[]): Promise<void> {
    checkBatch(
      items.map((i) => ({ name: i.name, attributes: (i.attributes ?? []).map((a) => ({ name: a.name, value: 'value' in a ? a.value : '' })) })),
      false,
    );
    const params: Record<string, string> = { DomainName: domain };
    items.forEach((item, i) => {
      params[`Item.${i + 1}.ItemName`] = item.name;
      deleteAttributeParams(params, `Item.${i + 1}.`, item.attributes ?? []);
    });
    await this.call('BatchDeleteAttributes', params);
  }

  /** One page. Build `expression` with storage/simpledb/select.ts buildSelect, never by hand. */
  async select(expression: string, opts: { nextToken?: string; consistentRead?: boolean } = {}): Promise<SelectPage> {
    const params: Record<string, string> = { SelectExpression: expression };
    if (opts.nextToken) params.NextToken = opts.nextToken;
    if (opts.consistentRead) params.ConsistentRead = 'true';
    const r = child(await this.call('Select', params), 'SelectResult');
    const next = text(child(r, 'NextToken'));
    return {
      items: list(r, 'Item').map((it) => ({ name: encodedText(it, 'Name'), attributes: parseAttributes(it) })),
      nextToken: next === '' ? null : next,
    };
  }

  /** Follows NextToken until the result ends (or `maxItems` are collected). */
  async selectAll(expression: string, opts: { consistentRead?: boolean; maxItems?: number } = {}): Promise<Item[]> {
    const items: Item[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.select(expression, { nextToken, consistentRead: opts.consistentRead });
      items.push(...page.items);
      nextToken = page.nextToken ?? undefined;
    } while (nextToken && (opts.maxItems === undefined || items.length < opts.maxItems));
    return opts.maxItems === undefined ? items : items.slice(0, opts.maxItems);
  }

  /** `select count(*)` answers one item with a Count attribute per page; this sums the pages. */
  async count(expression: string, opts: { consistentRead?: boolean } = {}): Promise<number> {
    let total = 0;
    for (const item of await this.selectAll(expression, opts)) {
      for (const a of item.attributes) if (a.name === 'Count') total += Number(a.value);
    }
    return total;
  }

  // --- transport -------------------------------------------------------------------------------

  private async call(action: SimpleDbAction, params: Record<string, string>): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.attempt(action, params);
      } catch (err) {
        if (!(err instanceof SimpleDbError) || !err.retryable || attempt >= this.maxAttempts) throw err;
        const ceiling = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** (attempt - 1));
        await this.sleep(Math.floor(this.random() * ceiling));
      }
    }
  }

  private async attempt(action: SimpleDbAction, params: Record<string, string>): Promise<unknown> {
    let creds: AwsCredentials;
    try {
      creds = await this.credentials();
    } catch (cause) {
      // The default chain fails when no source has keys, or when the task role's or instance
      // profile's endpoint does not answer a refresh. Before this, the provider's error passed the
      // store's error mapping and a lookup answered 500; as a SimpleDbError it is a 503.
      this.metrics?.onRequest({ action, code: 'ERR_SIMPLEDB_CREDENTIALS', status: 0, boxUsage: 0 });
      throw new SimpleDbError('ERR_SIMPLEDB_CREDENTIALS', `no AWS credentials to sign with: ${(cause as Error).message} (set --aws-access-key-id and --aws-secret-access-key, --vault-addr, or give the task a role)`, action, 0, null, 0, { cause });
    }
    const signed = signedRequestParams(action, params, creds, this.endpoint, this.now());
    // canonicalQuery leaves out Signature (it is what gets signed); the body carries it last.
    const body = `${canonicalQuery(signed)}&Signature=${rfc3986Encode(signed.Signature)}`;
    let status = 0;
    let xml: string;
    try {
      const res = await request(this.endpoint, {
        method: 'POST',
        dispatcher: this.dispatcher,
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
        body,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      status = res.statusCode;
      xml = await res.body.text();
    } catch (cause) {
      this.metrics?.onRequest({ action, code: 'ERR_SIMPLEDB_TRANSPORT', status: 0, boxUsage: 0 });
      throw new SimpleDbError('ERR_SIMPLEDB_TRANSPORT', `no answer from ${this.endpoint.origin}: ${(cause as Error).message}`, action, 0, null, 0, { cause });
    }
    let doc: XmlNode;
    try {
      doc = parser.parse(xml) as XmlNode;
    } catch {
      doc = {};
    }
    if (status >= 200 && status < 300) {
      const root = doc[`${action}Response`];
      if (root === undefined) {
        this.metrics?.onRequest({ action, code: 'ERR_SIMPLEDB_BAD_ANSWER', status, boxUsage: 0 });
        throw new SimpleDbError('ERR_SIMPLEDB_BAD_ANSWER', `answer has no ${action}Response element`, action, status, null, 0);
      }
      const meta = child(root, 'ResponseMetadata');
      this.metrics?.onRequest({ action, code: 'ok', status, boxUsage: Number(text(child(meta, 'BoxUsage')) || 0) });
      return root;
    }
    const response = child(doc, 'Response');
    const error = list(child(response, 'Errors'), 'Error')[0];
    const code = text(child(error, 'Code')) || (status === 503 ? 'ServiceUnavailable' : `HTTP_${status}`);
    const message = text(child(error, 'Message')) || xml.slice(0, 200);
    const boxUsage = Number(text(child(error, 'BoxUsage')) || 0);
    const requestId = text(child(response, 'RequestID')) || text(child(response, 'RequestId')) || null;
    this.metrics?.onRequest({ action, code, status, boxUsage });
    throw new SimpleDbError(code, message, action, status, requestId, boxUsage);
  }
}
