import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  SimpleDbClient,
  SimpleDbError,
  SimpleDbLimitError,
  staticCredentials,
  type SimpleDbAction,
  type SimpleDbRequestEvent,
} from './client.js';

const CREDS = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
const FIXED = new Date('2026-01-02T03:04:05.678Z');

interface Captured {
  params: Record<string, string>;
  host: string | undefined;
  contentType: string | undefined;
}

type Responder = (action: string, params: Record<string, string>) => { status: number; body: string };

const ok = (action: string, result = '', boxUsage = '0.0000219907') =>
  `<?xml version="1.0"?>\n<${action}Response xmlns="http://sdb.amazonaws.com/doc/2009-04-15/">${result}<ResponseMetadata><RequestId>req-1</RequestId><BoxUsage>${boxUsage}</BoxUsage></ResponseMetadata></${action}Response>`;
const errorXml = (code: string, message: string, boxUsage = '0.0000137200') =>
  `<?xml version="1.0"?>\n<Response><Errors><Error><Code>${code}</Code><Message>${message}</Message><BoxUsage>${boxUsage}</BoxUsage></Error></Errors><RequestID>rid-${code}</RequestID></Response>`;

/** A loopback endpoint that records every request and answers with `respond`. */
let server: Server;
let endpoint: URL;
const captured: Captured[] = [];
let respond: Responder = (action) => ({ status: 200, body: ok(action) });

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const params = Object.fromEntries(new URLSearchParams(body));
      captured.push({ params, host: req.headers.host, contentType: req.headers['content-type'] });
      const answer = respond(params.Action, params);
      res.writeHead(answer.status, { 'content-type': 'text/xml' }).end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

afterEach(() => {
  captured.length = 0;
  respond = (action) => ({ status: 200, body: ok(action) });
});

function client(extra: Partial<ConstructorParameters<typeof SimpleDbClient>[0]> = {}): SimpleDbClient {
  return new SimpleDbClient({ endpoint, credentials: staticCredentials(CREDS), now: () => FIXED, sleep: async () => {}, ...extra });
}

// --- the AWS SDK v2 as an independent reference ------------------------------------------------

process.env.AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE = '1';
const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const AWS = require('aws-sdk/lib/core') as any;
require('aws-sdk/clients/simpledb');

/** The form parameters the AWS SDK v2 would POST for `method(params)`, signed at FIXED with CREDS. */
function sdkParams(method: string, params: unknown, creds: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } = CREDS): Record<string, string> {
  const sdb = new AWS.SimpleDB({ endpoint: endpoint.href, region: 'us-east-1', credentials: new AWS.Credentials(creds.accessKeyId, creds.secretAccessKey, creds.sessionToken) });
  const req = sdb[method](params);
  req.build();
  new AWS.Signers.V2(req.httpRequest, 'sdb').addAuthorization(sdb.config.credentials, FIXED);
  return Object.fromEntries(new URLSearchParams(req.httpRequest.body as string));
}

const cases: Array<{ action: SimpleDbAction; sdk: string; sdkParams: unknown; run: (c: SimpleDbClient) => Promise<unknown> }> = [
  { action: 'CreateDomain', sdk: 'createDomain', sdkParams: { DomainName: 'ecs_id_mapper_hosts' }, run: (c) => c.createDomain('ecs_id_mapper_hosts') },
  { action: 'ListDomains', sdk: 'listDomains', sdkParams: { MaxNumberOfDomains: 10, NextToken: 'tok/+=' }, run: (c) => c.listDomains({ maxNumberOfDomains: 10, nextToken: 'tok/+=' }) },
  { action: 'DomainMetadata', sdk: 'domainMetadata', sdkParams: { DomainName: 'd1' }, run: (c) => c.domainMetadata('d1') },
  {
    action: 'PutAttributes',
    sdk: 'putAttributes',
    sdkParams: {
      DomainName: 'd1',
      ItemName: "it's a ~name* with spaces/ü",
      Attributes: [
        { Name: 'state', Value: 'running', Replace: true },
        { Name: 'tag', Value: '!(x)*\'"&=+' },
      ],
      Expected: { Name: 'ver', Value: '00000000000000000007' },
    },
    run: (c) =>
      c.putAttributes(
        'd1',
        "it's a ~name* with spaces/ü",
        [
          { name: 'state', value: 'running', replace: true },
          { name: 'tag', value: '!(x)*\'"&=+' },
        ],
        { name: 'ver', value: '00000000000000000007' },
      ),
  },
  {
    action: 'PutAttributes',
    sdk: 'putAttributes',
    sdkParams: { DomainName: 'd1', ItemName: 'new', Attributes: [{ Name: 'a', Value: '' , Replace: true }], Expected: { Name: 'ver', Exists: false } },
    run: (c) => c.putAttributes('d1', 'new', [{ name: 'a', value: '', replace: true }], { name: 'ver', exists: false }),
  },
  {
    action: 'BatchPutAttributes',
    sdk: 'batchPutAttributes',
    sdkParams: {
      DomainName: 'd1',
      Items: [
        { Name: 'i1', Attributes: [{ Name: 'a', Value: '1', Replace: true }] },
        { Name: 'i2', Attributes: [{ Name: 'a', Value: '2' }, { Name: 'b', Value: 'x y' }] },
      ],
    },
    run: (c) =>
      c.batchPutAttributes('d1', [
        { name: 'i1', attributes: [{ name: 'a', value: '1', replace: true }] },
        { name: 'i2', attributes: [{ name: 'a', value: '2' }, { name: 'b', value: 'x y' }] },
      ]),
  },
  {
    action: 'GetAttributes',
    sdk: 'getAttributes',
    sdkParams: { DomainName: 'd1', ItemName: 'i1', AttributeNames: ['a', 'b'], ConsistentRead: true },
    run: (c) => c.getAttributes('d1', 'i1', { attributeNames: ['a', 'b'], consistentRead: true }),
  },
  {
    action: 'DeleteAttributes',
    sdk: 'deleteAttributes',
    sdkParams: { DomainName: 'd1', ItemName: 'i1', Attributes: [{ Name: 'a', Value: '1' }, { Name: 'b' }], Expected: { Name: 'ver', Value: '3' } },
    run: (c) => c.deleteAttributes('d1', 'i1', [{ name: 'a', value: '1' }, { name: 'b' }], { name: 'ver', value: '3' }),
  },
  {
    action: 'BatchDeleteAttributes',
    sdk: 'batchDeleteAttributes',
    sdkParams: { DomainName: 'd1', Items: [{ Name: 'i1' }, { Name: 'i2', Attributes: [{ Name: 'a', Value: '2' }] }] },
    run: (c) => c.batchDeleteAttributes('d1', [{ name: 'i1' }, { name: 'i2', attributes: [{ name: 'a', value: '2' }] }]),
  },
  {
    action: 'Select',
    sdk: 'select',
    sdkParams: { SelectExpression: "select * from `d1` where `a` = 'it''s' limit 5", NextToken: 'abc==', ConsistentRead: true },
    run: (c) => c.select("select * from `d1` where `a` = 'it''s' limit 5", { nextToken: 'abc==', consistentRead: true }),
  },
];

describe('SimpleDbClient against the AWS SDK v2', () => {
  it.each(cases.map((c, i) => [`${c.action} #${i}`, c] as const))('%s sends the same parameters and signature as the SDK', async (_name, c) => {
    const sdb = client();
    await c.run(sdb);
    await sdb.close();
    expect(captured).toHaveLength(1);
    const mine = captured[0].params;
    const theirs = sdkParams(c.sdk, c.sdkParams);
    expect(mine).toEqual(theirs);
    expect(mine.Signature).toBe(theirs.Signature);
    expect(captured[0].host).toBe(endpoint.host);
    expect(captured[0].contentType).toMatch(/^application\/x-www-form-urlencoded/);
  });

  it('sends the session token as SecurityToken, signed like the SDK does', async () => {
    const session = { ...CREDS, sessionToken: 'FQoGZXIvYXdzE//token+/=' };
    const sdb = client({ credentials: staticCredentials(session) });
    await sdb.createDomain('dom1');
    await sdb.close();
    expect(captured[0].params).toEqual(sdkParams('createDomain', { DomainName: 'dom1' }, session));
    expect(captured[0].params.SecurityToken).toBe(session.sessionToken);
  });
});

describe('SimpleDbClient answers', () => {
  it('parses GetAttributes, keeping spaces, numbers as text and repeated names, decoding both forms of base64', async () => {
    respond = (a) => ({
      status: 200,
      body: ok(a, '<GetAttributesResult><Attribute><Name>seq</Name><Value>007</Value></Attribute><Attribute><Name>x</Name><Value>  two words  </Value></Attribute><Attribute><Name>x</Name><Value>a&amp;b&lt;</Value></Attribute><Attribute><Name>e</Name><Value></Value></Attribute><Attribute><Name>b</Name><Value encoding="base64">AAE=</Value></Attribute><Attribute><Name>AAI=</Name><AlternateNameEncoding>base64</AlternateNameEncoding><Value>cHJvZAFibHVl</Value><AlternateValueEncoding>base64</AlternateValueEncoding></Attribute></GetAttributesResult>'),
    });
    const sdb = client();
    expect(await sdb.getAttributes('d', 'i')).toEqual([
      { name: 'seq', value: '007' },
      { name: 'x', value: '  two words  ' },
      { name: 'x', value: 'a&b<' },
      { name: 'e', value: '' },
      { name: 'b', value: '\u0000\u0001' },
      // The same encoding as AWS's API model writes it: sibling elements.
      { name: '\u0000\u0002', value: 'prod\u0001blue' },
    ]);
    await sdb.close();
  });

  it('parses an absent item as no attributes', async () => {
    respond = (a) => ({ status: 200, body: ok(a, '<GetAttributesResult/>') });
    const sdb = client();
    expect(await sdb.getAttributes('d', 'missing')).toEqual([]);
    await sdb.close();
  });

  it('follows NextToken through every Select page', async () => {
    respond = (a, p) => {
      const page = p.NextToken ? Number(p.NextToken) : 0;
      const next = page < 2 ? `<NextToken>${page + 1}</NextToken>` : '';
      return { status: 200, body: ok(a, `<SelectResult><Item><Name>item${page}</Name><Attribute><Name>n</Name><Value>${page}</Value></Attribute></Item>${next}</SelectResult>`) };
    };
    const sdb = client();
    const items = await sdb.selectAll('select * from `d`', { consistentRead: true });
    expect(items.map((i) => i.name)).toEqual(['item0', 'item1', 'item2']);
    expect(captured.map((c) => c.params.NextToken)).toEqual([undefined, '1', '2']);
    expect(captured.every((c) => c.params.ConsistentRead === 'true')).toBe(true);
    await sdb.close();
  });

  it('lists every domain and reads domain metadata as numbers', async () => {
    respond = (a, p) => {
      if (a === 'DomainMetadata') return { status: 200, body: ok(a, '<DomainMetadataResult><ItemCount>3</ItemCount><ItemNamesSizeBytes>120</ItemNamesSizeBytes><AttributeNameCount>4</AttributeNameCount><AttributeNamesSizeBytes>20</AttributeNamesSizeBytes><AttributeValueCount>9</AttributeValueCount><AttributeValuesSizeBytes>90</AttributeValuesSizeBytes><Timestamp>1767225600</Timestamp></DomainMetadataResult>') };
      return { status: 200, body: ok(a, p.NextToken ? '<ListDomainsResult><DomainName>c</DomainName></ListDomainsResult>' : '<ListDomainsResult><DomainName>a</DomainName><DomainName>b</DomainName><NextToken>t</NextToken></ListDomainsResult>') };
    };
    const sdb = client();
    expect(await sdb.listAllDomains()).toEqual(['a', 'b', 'c']);
    expect(await sdb.domainMetadata('a')).toEqual({ itemCount: 3, itemNamesSizeBytes: 120, attributeNameCount: 4, attributeNamesSizeBytes: 20, attributeValueCount: 9, attributeValuesSizeBytes: 90, timestamp: 1767225600 });
    await sdb.close();
  });
});

describe('SimpleDbClient errors and retries', () => {
  it('raises SimpleDB error answers as SimpleDbError with code, status, RequestID and BoxUsage', async () => {
    respond = () => ({ status: 409, body: errorXml('ConditionalCheckFailed', 'Conditional check failed. Attribute (ver) value exists') });
    const sdb = client();
    const err = await sdb.putAttributes('d', 'i', [{ name: 'a', value: '1' }], { name: 'ver', exists: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SimpleDbError);
    expect(err).toMatchObject({ code: 'ConditionalCheckFailed', status: 409, requestId: 'rid-ConditionalCheckFailed', boxUsage: 0.00001372, action: 'PutAttributes' });
    expect(captured).toHaveLength(1);
    await sdb.close();
  });

  it('retries 503 ServiceUnavailable with full-jitter exponential backoff, then succeeds', async () => {
    let n = 0;
    respond = (a) => (++n <= 3 ? { status: 503, body: errorXml('ServiceUnavailable', 'busy') } : { status: 200, body: ok(a) });
    const sleeps: number[] = [];
    const events: SimpleDbRequestEvent[] = [];
    const sdb = client({ sleep: async (ms) => void sleeps.push(ms), random: () => 0.5, backoffBaseMs: 100, backoffMaxMs: 300, metrics: { onRequest: (e) => events.push(e) } });
    await sdb.createDomain('dom');
    expect(captured).toHaveLength(4);
    // ceilings 100, 200, 300 (capped); full jitter picks random() * ceiling
    expect(sleeps).toEqual([50, 100, 150]);
    expect(events.map((e) => e.code)).toEqual(['ServiceUnavailable', 'ServiceUnavailable', 'ServiceUnavailable', 'ok']);
    expect(events[3]).toMatchObject({ action: 'CreateDomain', boxUsage: 0.0000219907, status: 200 });
    await sdb.close();
  });

  it('retries RequestTimeout and other 5xx, and gives up after maxAttempts with the last error', async () => {
    let n = 0;
    respond = () => (++n % 2 ? { status: 408, body: errorXml('RequestTimeout', 'slow') } : { status: 500, body: errorXml('InternalError', 'oops') });
    const sdb = client({ maxAttempts: 4 });
    const err = await sdb.getAttributes('d', 'i').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'InternalError', status: 500 });
    expect(captured).toHaveLength(4);
    await sdb.close();
  });

  it('does not retry client errors such as NoSuchDomain', async () => {
    respond = () => ({ status: 400, body: errorXml('NoSuchDomain', 'The specified domain does not exist.') });
    const sdb = client();
    await expect(sdb.select('select * from `nope`')).rejects.toMatchObject({ code: 'NoSuchDomain', status: 400 });
    expect(captured).toHaveLength(1);
    await sdb.close();
  });

  it('names a 5xx without an XML body by its status', async () => {
    respond = () => ({ status: 502, body: '<html>bad gateway</html>' });
    const sdb = client({ maxAttempts: 2 });
    await expect(sdb.listDomains()).rejects.toMatchObject({ code: 'HTTP_502', status: 502 });
    expect(captured).toHaveLength(2);
    await sdb.close();
  });

  it('reports a refused connection as ERR_SIMPLEDB_TRANSPORT without retrying', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const sdb = client({ endpoint: new URL(`http://127.0.0.1:${port}/`) });
    await expect(sdb.listDomains()).rejects.toMatchObject({ name: 'SimpleDbError', code: 'ERR_SIMPLEDB_TRANSPORT', status: 0 });
    await sdb.close();
  });
});

describe('SimpleDbClient limits', () => {
  const sdb = () => client();

  it('refuses values over 1024 bytes (counted in UTF-8) before sending', async () => {
    await expect(sdb().putAttributes('d', 'i', [{ name: 'a', value: 'é'.repeat(513) }])).rejects.toMatchObject({ name: 'SimpleDbLimitError', limit: 'valueBytes' });
    await expect(sdb().putAttributes('d', 'i', [{ name: 'a', value: 'x'.repeat(1024) }])).resolves.toBeUndefined();
    expect(captured).toHaveLength(1);
  });

  it('refuses more than 256 attribute pairs per item', async () => {
    const attrs = Array.from({ length: 257 }, (_, i) => ({ name: `a${i}`, value: 'v' }));
    await expect(sdb().putAttributes('d', 'i', attrs)).rejects.toBeInstanceOf(SimpleDbLimitError);
    await expect(sdb().batchPutAttributes('d', [{ name: 'i', attributes: attrs }])).rejects.toMatchObject({ limit: 'attributesPerItem' });
    expect(captured).toHaveLength(0);
  });

  it('refuses batches of more than 25 items, over 1 MB, or with a repeated item', async () => {
    const item = (n: number, size = 1) => ({ name: `i${n}`, attributes: [{ name: 'a', value: 'x'.repeat(size) }] });
    await expect(sdb().batchPutAttributes('d', Array.from({ length: 26 }, (_, i) => item(i)))).rejects.toMatchObject({ limit: 'itemsPerBatch' });
    await expect(sdb().batchDeleteAttributes('d', Array.from({ length: 26 }, (_, i) => ({ name: `i${i}` })))).rejects.toMatchObject({ limit: 'itemsPerBatch' });
    const big = Array.from({ length: 25 }, (_, i) => ({ name: `i${i}`, attributes: Array.from({ length: 50 }, (_, j) => ({ name: `a${j}`, value: 'x'.repeat(1000) })) }));
    await expect(sdb().batchPutAttributes('d', big)).rejects.toMatchObject({ limit: 'batchBytes' });
    await expect(sdb().batchPutAttributes('d', [item(1), item(1)])).rejects.toThrow(/twice/);
    expect(captured).toHaveLength(0);
  });
});
