// The local SimpleDB endpoint exercised by an independent client: the AWS SDK for JavaScript v2
// (devDependency), plus raw signed requests for forms the SDK never sends.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type SimpleDB from 'aws-sdk/clients/simpledb.js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { signParams } from '../sigv2.js';
import { startSimpleDbLocal, type SimpleDbLocal, type SimpleDbLocalOptions } from './server.js';

const KEY = { accessKeyId: 'AKIDLOCALTEST', secretAccessKey: 'local/secret+key' };
type AwsModule = typeof import('aws-sdk');
let AWS: AwsModule;

beforeAll(async () => {
  // Must be set before aws-sdk loads, or it prints its end-of-support notice.
  process.env.AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE = '1';
  AWS = ((await import('aws-sdk')) as unknown as { default: AwsModule }).default;
});

function client(local: SimpleDbLocal, credentials = KEY): SimpleDB {
  return new AWS.SimpleDB({ endpoint: local.url, region: 'us-east-1', credentials, maxRetries: 0 });
}

interface AwsError {
  code: string;
  statusCode: number;
  message: string;
}

async function failure(promise: Promise<unknown>): Promise<AwsError> {
  try {
    await promise;
  } catch (err) {
    return err as AwsError;
  }
  throw new Error('expected the request to fail');
}

/** A request signed with our own SigV2 code, for forms the SDK does not produce. */
async function raw(local: SimpleDbLocal, params: Record<string, string>, opts: { method?: 'GET' | 'POST'; secret?: string } = {}) {
  const method = opts.method ?? 'POST';
  const url = new URL(local.url);
  const signed = signParams(
    { Version: '2009-04-15', Timestamp: new Date().toISOString(), ...params },
    { accessKeyId: KEY.accessKeyId, secretAccessKey: opts.secret ?? KEY.secretAccessKey, method, host: url.host, path: '/' },
  );
  const query = new URLSearchParams(signed).toString();
  const res =
    method === 'POST'
      ? await fetch(`${local.url}/`, { method, body: query, headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' } })
      : await fetch(`${local.url}/?${query}`);
  return { status: res.status, body: await res.text() };
}

function tag(xml: string, name: string): string[] {
  return [...xml.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))].map((m) => m[1]);
}

describe('simpledb-local over the AWS SDK v2', () => {
  let local: SimpleDbLocal;
  let sdb: SimpleDB;

  beforeEach(async () => {
    local = await startSimpleDbLocal({ ...KEY });
    sdb = client(local);
    await sdb.createDomain({ DomainName: 'books' }).promise();
  });
  afterEach(async () => {
    await local.close();
  });

  describe('domains', () => {
    it('creates, lists with MaxNumberOfDomains and NextToken, and deletes domains', async () => {
      for (const name of ['alpha', 'beta', 'gamma']) await sdb.createDomain({ DomainName: name }).promise();
      await sdb.createDomain({ DomainName: 'alpha' }).promise(); // idempotent
      const first = await sdb.listDomains({ MaxNumberOfDomains: 2 }).promise();
      expect(first.DomainNames).toEqual(['alpha', 'beta']);
      expect(first.NextToken).toBeTruthy();
      const second = await sdb.listDomains({ MaxNumberOfDomains: 2, NextToken: first.NextToken }).promise();
      expect(second.DomainNames).toEqual(['books', 'gamma']);
      expect(second.NextToken).toBeUndefined();
      await sdb.deleteDomain({ DomainName: 'beta' }).promise();
      await sdb.deleteDomain({ DomainName: 'never-existed' }).promise();
      expect((await sdb.listDomains({}).promise()).DomainNames).toEqual(['alpha', 'books', 'gamma']);
    });

    it('rejects invalid domain names, MaxNumberOfDomains out of range and a bad NextToken', async () => {
      expect(await failure(sdb.createDomain({ DomainName: 'ab' }).promise())).toMatchObject({ code: 'InvalidParameterValue', statusCode: 400 });
      expect(await failure(sdb.createDomain({ DomainName: 'bad/name' }).promise())).toMatchObject({ code: 'InvalidParameterValue' });
      expect(await failure(sdb.listDomains({ MaxNumberOfDomains: 101 }).promise())).toMatchObject({ code: 'InvalidParameterValue', statusCode: 400 });
      expect(await failure(sdb.listDomains({ NextToken: 'garbage' }).promise())).toMatchObject({ code: 'InvalidNextToken', statusCode: 400 });
    });

    it('reports DomainMetadata counts and sizes', async () => {
      await sdb.putAttributes({ DomainName: 'books', ItemName: 'b1', Attributes: [{ Name: 'title', Value: 'Dune' }, { Name: 'tag', Value: 'sf' }, { Name: 'tag', Value: 'classic' }] }).promise();
      await sdb.putAttributes({ DomainName: 'books', ItemName: 'b22', Attributes: [{ Name: 'title', Value: 'Emma' }] }).promise();
      const meta = await sdb.domainMetadata({ DomainName: 'books' }).promise();
      expect(meta).toMatchObject({
        ItemCount: 2,
        ItemNamesSizeBytes: 5,
        AttributeNameCount: 2,
        AttributeNamesSizeBytes: 8,
        AttributeValueCount: 4,
        AttributeValuesSizeBytes: 4 + 2 + 7 + 4,
      });
      expect(Math.abs(meta.Timestamp! - Date.now() / 1000)).toBeLessThan(60);
    });

    it('answers NoSuchDomain (400) for every item operation on a missing domain', async () => {
      const calls = [
        sdb.domainMetadata({ DomainName: 'nope' }).promise(),
        sdb.putAttributes({ DomainName: 'nope', ItemName: 'i', Attributes: [{ Name: 'a', Value: '1' }] }).promise(),
        sdb.getAttributes({ DomainName: 'nope', ItemName: 'i' }).promise(),
        sdb.deleteAttributes({ DomainName: 'nope', ItemName: 'i' }).promise(),
        sdb.batchPutAttributes({ DomainName: 'nope', Items: [{ Name: 'i', Attributes: [{ Name: 'a', Value: '1' }] }] }).promise(),
        sdb.batchDeleteAttributes({ DomainName: 'nope', Items: [{ Name: 'i' }] }).promise(),
        sdb.select({ SelectExpression: 'select * from nope' }).promise(),
      ];
      for (const call of calls) expect(await failure(call)).toMatchObject({ code: 'NoSuchDomain', statusCode: 400 });
    });
  });

  describe('items', () => {
    it('adds values to a multi-valued attribute, replaces them with Replace, and filters by AttributeName', async () => {
      await sdb.putAttributes({ DomainName: 'books', ItemName: 'i', Attributes: [{ Name: 'a', Value: '1' }, { Name: 'b', Value: '2' }, { Name: 'b', Value: '3' }] }).promise();
      await sdb.putAttributes({ DomainName: 'books', ItemName: 'i', Attributes: [{ Name: 'a', Value: '1' }, { Name: 'a', Value: '9' }] }).promise();
      let got = await sdb.getAttributes({ DomainName: 'books', ItemName: 'i', ConsistentRead: true }).promise();
      expect(got.Attributes).toEqual([
        { Name: 'a', Value: '1' },
        { Name: 'a', Value: '9' },
        { Name: 'b', Value: '2' },
        { Name: 'b', Value: '3' },
      ]);
      await sdb.putAttributes({ DomainName: 'books', ItemName: 'i', Attributes: [{ Name: 'b', Value: '4', Replace: true }] }).promise();
      got = await sdb.getAttributes({ DomainName: 'books', ItemName: 'i', AttributeNames: ['b'] }).promise();
      expect(got.Attributes).toEqual([{ Name: 'b', Value: '4' }]);
    });

    it('returns no attributes for a missing item', async () => {
      const got = await sdb.getAttributes({ DomainName: 'books', ItemName: 'missing' }).promise();
      expect(got.Attributes).toBeUndefined();
    });

    it('keeps XML-special characters intact and base64-encodes characters XML cannot carry', async () => {
      await sdb.putAttributes({ DomainName: 'books', ItemName: 'x&<y>', Attributes: [{ Name: 'q"\'', Value: '<&> é 😀' }, { Name: 'ctl', Value: 'a\u0001b' }] }).promise();
      const got = await sdb.getAttributes({ DomainName: 'books', ItemName: 'x&<y>' }).promise();
      expect(got.Attributes).toEqual([
        { Name: 'q"\'', Value: '<&> é 😀' },
        { Name: 'ctl', Value: Buffer.from('a\u0001b').toString('base64'), AlternateValueEncoding: 'base64' },
      ]);
    });

    it('deletes one value, all values of a name, or the whole item', async () => {
      await sdb.putAttributes({ DomainName: 'books', ItemName: 'i', Attributes: [{ Name: 'a', Value: '1' }, { Name: 'a', Value: '2' }, { Name: 'b', Value: '3' }, { Name: 'c', Value: '4' }] }).promise();
      await sdb.deleteAttributes({ DomainName: 'books', ItemName: 'i', Attributes: [{ Name: 'a', Value: '1' }, { Name: 'b' }] }).promise();
      expect((await sdb.getAttributes({ DomainName: 'books', ItemName: 'i' }).promise()).Attributes).toEqual([
        { Name: 'a', Value: '2' },
        { Name: 'c', Value: '4' },
      ]);
      await sdb.deleteAttributes({ DomainName: 'books', ItemName: 'i' }).promise();
      expect((await sdb.getAttributes({ DomainName: 'books', ItemName: 'i' }).promise()).Attributes).toBeUndefined();
      await sdb.deleteAttributes({ DomainName: 'books', ItemName: 'i' }).promise(); // idempotent
      expect((await sdb.domainMetadata({ DomainName: 'books' }).promise()).ItemCount).toBe(0);
    });

    it('enforces value and name sizes (1024 bytes) and 256 pairs per item', async () => {
      expect(await failure(sdb.putAttributes({ DomainName: 'books', ItemName: 'i', Attributes: [{ Name: 'a', Value: 'é'.repeat(513) }] }).promise())).toMatchObject({
        code: 'InvalidParameterValue',
        statusCode: 400,
      });
      expect(await failure(sdb.putAttributes({ DomainName: 'books', ItemName: 'i', Attributes: [{ Name: 'n'.repeat(1025), Value: '1' }] }).promise())).toMatchObject({
        code: 'InvalidParameterValue',
      });
      await sdb.putAttributes({ DomainName: 'books', ItemName: 'i', Attributes: [{ Name: 'a', Value: 'x'.repeat(1024) }] }).promise();
      const many = (from: number, n: number) => Array.from({ length: n }, (_, k) => ({ Name: 'm', Value: String(from + k) }));
      expect(await failure(sdb.putAttributes({ DomainName: 'books', ItemName: 'j', Attributes: many(0, 257) }).promise())).toMatchObject({
        code: 'NumberSubmittedAttributesExceeded',
        statusCode: 409,
      });
      await sdb.putAttributes({ DomainName: 'books', ItemName: 'j', Attributes: many(0, 200) }).promise();
      expect(await failure(sdb.putAttributes({ DomainName: 'books', ItemName: 'j', Attributes: many(200, 57) }).promise())).toMatchObject({
        code: 'NumberItemAttributesExceeded',
        statusCode: 409,
      });
      await sdb.putAttributes({ DomainName: 'books', ItemName: 'j', Attributes: many(200, 56) }).promise();
    });

    it('rejects a put without attributes and an empty attribute name with MissingParameter', async () => {
      expect(await failure(raw(local, { Action: 'PutAttributes', DomainName: 'books', ItemName: 'i' }).then(throwOnError))).toMatchObject({
        code: 'MissingParameter',
      });
      expect(await failure(sdb.putAttributes({ DomainName: 'books', ItemName: 'i', Attributes: [{ Name: '', Value: '1' }] }).promise())).toMatchObject({
        code: 'MissingParameter',
      });
    });
  });

  describe('conditional writes', () => {
    beforeEach(async () => {
      await sdb.putAttributes({ DomainName: 'books', ItemName: 'c', Attributes: [{ Name: 'version', Value: '1' }] }).promise();
    });

    it('puts when Expected.Value matches and fails with ConditionalCheckFailed (409) when it does not', async () => {
      await sdb.putAttributes({ DomainName: 'books', ItemName: 'c', Attributes: [{ Name: 'version', Value: '2', Replace: true }], Expected: { Name: 'version', Value: '1' } }).promise();
      const err = await failure(
        sdb.putAttributes({ DomainName: 'books', ItemName: 'c', Attributes: [{ Name: 'version', Value: '3', Replace: true }], Expected: { Name: 'version', Value: '1' } }).promise(),
      );
      expect(err).toMatchObject({ code: 'ConditionalCheckFailed', statusCode: 409 });
      expect((await sdb.getAttributes({ DomainName: 'books', ItemName: 'c', ConsistentRead: true }).promise()).Attributes).toEqual([{ Name: 'version', Value: '2' }]);
    });

    it('puts with Expected.Exists=false only while the attribute is absent', async () => {
      await sdb.putAttributes({ DomainName: 'books', ItemName: 'new', Attributes: [{ Name: 'v', Value: '1' }], Expected: { Name: 'v', Exists: false } }).promise();
      expect(
        await failure(sdb.putAttributes({ DomainName: 'books', ItemName: 'new', Attributes: [{ Name: 'v', Value: '2' }], Expected: { Name: 'v', Exists: false } }).promise()),
      ).toMatchObject({ code: 'ConditionalCheckFailed', statusCode: 409 });
    });

    it('answers AttributeDoesNotExist (404) when the expected attribute is missing', async () => {
      expect(
        await failure(sdb.putAttributes({ DomainName: 'books', ItemName: 'c', Attributes: [{ Name: 'x', Value: '1' }], Expected: { Name: 'missing', Value: '1' } }).promise()),
      ).toMatchObject({ code: 'AttributeDoesNotExist', statusCode: 404 });
    });

    it('rejects contradictory or incomplete conditions', async () => {
      expect(
        await failure(sdb.putAttributes({ DomainName: 'books', ItemName: 'c', Attributes: [{ Name: 'x', Value: '1' }], Expected: { Name: 'version', Value: '1', Exists: false } }).promise()),
      ).toMatchObject({ code: 'ExistsAndExpectedValue', statusCode: 400 });
      expect(
        await failure(sdb.putAttributes({ DomainName: 'books', ItemName: 'c', Attributes: [{ Name: 'x', Value: '1' }], Expected: { Name: 'version', Exists: true } }).promise()),
      ).toMatchObject({ code: 'IncompleteExpectedExpression', statusCode: 400 });
    });

    it('accepts the Developer Guide form Expected.1.Name / Expected.1.Value', async () => {
      const ok = await raw(local, {
        Action: 'PutAttributes', DomainName: 'books', ItemName: 'c',
        'Attribute.1.Name': 'version', 'Attribute.1.Value': '2', 'Attribute.1.Replace': 'true',
        'Expected.1.Name': 'version', 'Expected.1.Value': '1',
      });
      expect(ok.status).toBe(200);
      expect(ok.body).toContain('<PutAttributesResponse xmlns="http://sdb.amazonaws.com/doc/2009-04-15/">');
      const stale = await raw(local, {
        Action: 'PutAttributes', DomainName: 'books', ItemName: 'c',
        'Attribute.1.Name': 'version', 'Attribute.1.Value': '3', 'Attribute.1.Replace': 'true',
        'Expected.1.Name': 'version', 'Expected.1.Value': '1',
      });
      expect(stale.status).toBe(409);
      expect(tag(stale.body, 'Code')).toEqual(['ConditionalCheckFailed']);
      expect(stale.body).toMatch(/^<\?xml version="1.0"\?>\n<Response><Errors><Error><Code>ConditionalCheckFailed<\/Code><Message>[^<]+<\/Message><BoxUsage>[0-9.]+<\/BoxUsage><\/Error><\/Errors><RequestID>[0-9a-f-]{36}<\/RequestID><\/Response>$/);
    });

    it('deletes conditionally', async () => {
      expect(await failure(sdb.deleteAttributes({ DomainName: 'books', ItemName: 'c', Expected: { Name: 'version', Value: '0' } }).promise())).toMatchObject({
        code: 'ConditionalCheckFailed',
        statusCode: 409,
      });
      await sdb.deleteAttributes({ DomainName: 'books', ItemName: 'c', Expected: { Name: 'version', Value: '1' } }).promise();
      expect((await sdb.getAttributes({ DomainName: 'books', ItemName: 'c', ConsistentRead: true }).promise()).Attributes).toBeUndefined();
    });

    it('refuses a condition on a multi-valued attribute (MultiValuedAttribute, 409)', async () => {
      await sdb.putAttributes({ DomainName: 'books', ItemName: 'c', Attributes: [{ Name: 'version', Value: '7' }] }).promise();
      expect(
        await failure(sdb.putAttributes({ DomainName: 'books', ItemName: 'c', Attributes: [{ Name: 'x', Value: '1' }], Expected: { Name: 'version', Value: '1' } }).promise()),
      ).toMatchObject({ code: 'MultiValuedAttribute', statusCode: 409 });
    });
  });

  describe('batches', () => {
    const items = (n: number, prefix = 'i') => Array.from({ length: n }, (_, k) => ({ Name: `${prefix}${String(k).padStart(2, '0')}`, Attributes: [{ Name: 'n', Value: String(k).padStart(2, '0') }] }));

    it('puts up to 25 items at once and rejects 26 with NumberSubmittedItemsExceeded (409)', async () => {
      await sdb.batchPutAttributes({ DomainName: 'books', Items: items(25) }).promise();
      expect((await sdb.domainMetadata({ DomainName: 'books' }).promise()).ItemCount).toBe(25);
      expect(await failure(sdb.batchPutAttributes({ DomainName: 'books', Items: items(26, 'j') }).promise())).toMatchObject({
        code: 'NumberSubmittedItemsExceeded',
        statusCode: 409,
      });
      expect((await sdb.domainMetadata({ DomainName: 'books' }).promise()).ItemCount).toBe(25);
    });

    it('rejects a repeated item name with DuplicateItemName and writes nothing', async () => {
      const err = await failure(sdb.batchPutAttributes({ DomainName: 'books', Items: [...items(2), { Name: 'i00', Attributes: [{ Name: 'n', Value: 'x' }] }] }).promise());
      expect(err).toMatchObject({ code: 'DuplicateItemName', statusCode: 400 });
      expect((await sdb.domainMetadata({ DomainName: 'books' }).promise()).ItemCount).toBe(0);
    });

    it('honours Replace per attribute in a batch put', async () => {
      await sdb.batchPutAttributes({ DomainName: 'books', Items: items(2) }).promise();
      await sdb.batchPutAttributes({ DomainName: 'books', Items: [{ Name: 'i00', Attributes: [{ Name: 'n', Value: 'zz', Replace: true }] }, { Name: 'i01', Attributes: [{ Name: 'n', Value: 'zz' }] }] }).promise();
      expect((await sdb.getAttributes({ DomainName: 'books', ItemName: 'i00' }).promise()).Attributes).toEqual([{ Name: 'n', Value: 'zz' }]);
      expect((await sdb.getAttributes({ DomainName: 'books', ItemName: 'i01' }).promise()).Attributes).toEqual([{ Name: 'n', Value: '01' }, { Name: 'n', Value: 'zz' }]);
    });

    it('deletes whole items and single attributes in a batch', async () => {
      await sdb.batchPutAttributes({ DomainName: 'books', Items: items(3).map((i) => ({ ...i, Attributes: [...i.Attributes, { Name: 'keep', Value: 'y' }] })) }).promise();
      await sdb.batchDeleteAttributes({ DomainName: 'books', Items: [{ Name: 'i00' }, { Name: 'i01', Attributes: [{ Name: 'n' }] }, { Name: 'absent' }] }).promise();
      expect((await sdb.getAttributes({ DomainName: 'books', ItemName: 'i00' }).promise()).Attributes).toBeUndefined();
      expect((await sdb.getAttributes({ DomainName: 'books', ItemName: 'i01' }).promise()).Attributes).toEqual([{ Name: 'keep', Value: 'y' }]);
      expect((await sdb.getAttributes({ DomainName: 'books', ItemName: 'i02' }).promise()).Attributes).toHaveLength(2);
      expect(await failure(sdb.batchDeleteAttributes({ DomainName: 'books', Items: items(26) }).promise())).toMatchObject({ code: 'NumberSubmittedItemsExceeded' });
    });
  });

  describe('select', () => {
    beforeEach(async () => {
      await sdb.batchPutAttributes({
        DomainName: 'books',
        Items: [
          { Name: 'b1', Attributes: [{ Name: 'title', Value: "Rendezvous's Rama" }, { Name: 'year', Value: '1973' }, { Name: 'tag', Value: 'sf' }, { Name: 'tag', Value: 'classic' }, { Name: 'odd-name', Value: 'x' }] },
          { Name: 'b2', Attributes: [{ Name: 'title', Value: 'Snow "Crash"' }, { Name: 'year', Value: '1992' }, { Name: 'tag', Value: 'sf' }] },
          { Name: 'b3', Attributes: [{ Name: 'title', Value: 'Emma' }, { Name: 'year', Value: '1815' }, { Name: 'tag', Value: 'classic' }] },
          { Name: 'b4', Attributes: [{ Name: 'title', Value: 'Untitled' }] },
        ],
      }).promise();
    });

    async function names(expression: string, extra: Partial<SimpleDB.SelectRequest> = {}): Promise<string[]> {
      const res = await sdb.select({ SelectExpression: expression, ConsistentRead: true, ...extra }).promise();
      return (res.Items ?? []).map((i) => i.Name);
    }

    it('applies the quoting rules for names and values', async () => {
      expect(await names("select * from `books` where title = 'Rendezvous''s Rama'")).toEqual(['b1']);
      expect(await names('select * from books where title = "Snow ""Crash"""')).toEqual(['b2']);
      expect(await names("select * from books where `odd-name` = 'x'")).toEqual(['b1']);
    });

    it('supports the comparison operators', async () => {
      expect(await names("select * from books where year > '1900'")).toEqual(['b1', 'b2']);
      expect(await names("select * from books where year <= '1973'")).toEqual(['b1', 'b3']);
      expect(await names("select * from books where year != '1973'")).toEqual(['b2', 'b3']);
      expect(await names("select * from books where title like 'Sn%'")).toEqual(['b2']);
      expect(await names("select * from books where title not like '%a'")).toEqual(['b2', 'b4']);
      expect(await names("select * from books where year between '1800' and '1973'")).toEqual(['b1', 'b3']);
      expect(await names("select * from books where year in ('1992', '1815')")).toEqual(['b2', 'b3']);
      expect(await names('select * from books where year is null')).toEqual(['b4']);
      expect(await names('select * from books where year is not null')).toEqual(['b1', 'b2', 'b3']);
    });

    it('matches multi-valued attributes with any value, every() with all, and intersection across values', async () => {
      expect(await names("select * from books where tag = 'classic'")).toEqual(['b1', 'b3']);
      expect(await names("select * from books where every(tag) = 'classic'")).toEqual(['b3']);
      expect(await names("select * from books where tag = 'sf' intersection tag = 'classic'")).toEqual(['b1']);
      expect(await names("select * from books where tag = 'sf' and not year < '1980'")).toEqual(['b2']);
    });

    it('returns selected attributes, item names only, or a count', async () => {
      const res = await sdb.select({ SelectExpression: "select title from books where itemName() = 'b3'" }).promise();
      expect(res.Items).toEqual([{ Name: 'b3', Attributes: [{ Name: 'title', Value: 'Emma' }] }]);
      const count = await sdb.select({ SelectExpression: "select count(*) from books where tag = 'sf'" }).promise();
      expect(count.Items).toEqual([{ Name: 'Domain', Attributes: [{ Name: 'Count', Value: '2' }] }]);
      expect(await names('select itemName() from books')).toEqual(['b1', 'b2', 'b3', 'b4']);
    });

    it('sorts, limits and continues with NextToken', async () => {
      const first = await sdb.select({ SelectExpression: "select * from books where year > '0' order by year desc limit 2" }).promise();
      expect(first.Items!.map((i) => i.Name)).toEqual(['b2', 'b1']);
      expect(first.NextToken).toBeTruthy();
      const second = await sdb.select({ SelectExpression: "select * from books where year > '0' order by year desc limit 2", NextToken: first.NextToken }).promise();
      expect(second.Items!.map((i) => i.Name)).toEqual(['b3']);
      expect(second.NextToken).toBeUndefined();
      expect(await failure(sdb.select({ SelectExpression: "select * from books where year > '1' limit 2", NextToken: first.NextToken }).promise())).toMatchObject({
        code: 'InvalidNextToken',
        statusCode: 400,
      });
    });

    it('rejects bad expressions with the documented codes', async () => {
      expect(await failure(sdb.select({ SelectExpression: "select * from books where year = 1973" }).promise())).toMatchObject({ code: 'InvalidQueryExpression', statusCode: 400 });
      expect(await failure(sdb.select({ SelectExpression: 'select * from books order by year' }).promise())).toMatchObject({ code: 'InvalidSortExpression', statusCode: 400 });
      expect(await failure(sdb.select({ SelectExpression: 'select * from books limit 5000' }).promise())).toMatchObject({ code: 'InvalidParameterValue', statusCode: 400 });
      expect(await failure(raw(local, { Action: 'Select' }).then(throwOnError))).toMatchObject({ code: 'MissingParameter', statusCode: 400 });
    });
  });

  describe('authentication and the request envelope', () => {
    it('answers 403 SignatureDoesNotMatch for a wrong secret and InvalidClientTokenId for an unknown key', async () => {
      const wrongSecret = client(local, { ...KEY, secretAccessKey: 'not-the-secret' });
      expect(await failure(wrongSecret.listDomains({}).promise())).toMatchObject({ code: 'SignatureDoesNotMatch', statusCode: 403 });
      const wrongKey = client(local, { ...KEY, accessKeyId: 'AKIDUNKNOWN' });
      expect(await failure(wrongKey.listDomains({}).promise())).toMatchObject({ code: 'InvalidClientTokenId', statusCode: 403 });
    });

    it('signs over the Host header with its port', async () => {
      const url = new URL(local.url);
      const signed = signParams(
        { Action: 'ListDomains', Version: '2009-04-15', Timestamp: new Date().toISOString() },
        { ...KEY, method: 'POST', host: url.hostname, path: '/' }, // port left out: must not verify
      );
      const res = await fetch(`${local.url}/`, { method: 'POST', body: new URLSearchParams(signed).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(res.status).toBe(403);
      expect(tag(await res.text(), 'Code')).toEqual(['SignatureDoesNotMatch']);
    });

    it('accepts signed GET requests with the parameters in the query string', async () => {
      const res = await raw(local, { Action: 'ListDomains' }, { method: 'GET' });
      expect(res.status).toBe(200);
      expect(tag(res.body, 'DomainName')).toEqual(['books']);
      expect(res.body).toMatch(/<ResponseMetadata><RequestId>[0-9a-f-]{36}<\/RequestId><BoxUsage>0\.\d{10}<\/BoxUsage><\/ResponseMetadata>/);
    });

    it('requires Version, a Timestamp within 15 minutes, and a known Action', async () => {
      const old = new Date(Date.now() - 20 * 60_000).toISOString();
      expect(await failure(raw(local, { Action: 'ListDomains', Timestamp: old }).then(throwOnError))).toMatchObject({ code: 'RequestExpired', statusCode: 400 });
      expect(await failure(raw(local, { Action: 'ListDomains', Version: '2007-11-07' }).then(throwOnError))).toMatchObject({ code: 'NoSuchVersion', statusCode: 400 });
      expect(await failure(raw(local, { Action: 'DropEverything' }).then(throwOnError))).toMatchObject({ code: 'InvalidAction', statusCode: 400 });
      expect(await failure(raw(local, {}).then(throwOnError))).toMatchObject({ code: 'MissingAction', statusCode: 400 });
      const unsigned = await fetch(`${local.url}/`, { method: 'POST', body: 'Action=ListDomains&Version=2009-04-15', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(unsigned.status).toBe(403);
      expect(tag(await unsigned.text(), 'Code')).toEqual(['AuthMissingFailure']);
    });
  });

  describe('fault switches', () => {
    it('answers 503 ServiceUnavailable at the configured rate without applying the write', async () => {
      local.setFaults({ failureRate: 1 });
      expect(await failure(sdb.putAttributes({ DomainName: 'books', ItemName: 'i', Attributes: [{ Name: 'a', Value: '1' }] }).promise())).toMatchObject({
        code: 'ServiceUnavailable',
        statusCode: 503,
      });
      local.setFaults({ failureRate: 0 });
      expect((await sdb.domainMetadata({ DomainName: 'books' }).promise()).ItemCount).toBe(0);
    });

    it('is switched at runtime through POST /__admin/faults and validates the JSON', async () => {
      const set = await fetch(`${local.url}/__admin/faults`, { method: 'POST', body: JSON.stringify({ failureRate: 1 }) });
      expect(set.status).toBe(200);
      expect(await set.json()).toMatchObject({ failureRate: 1, latencyMs: 0, staleReads: false });
      expect(await failure(sdb.listDomains({}).promise())).toMatchObject({ code: 'ServiceUnavailable', statusCode: 503 });
      const bad = await fetch(`${local.url}/__admin/faults`, { method: 'POST', body: JSON.stringify({ failureRate: 3 }) });
      expect(bad.status).toBe(400);
      expect(await bad.json()).toMatchObject({ error: 'bad_request', message: 'failureRate must be a number from 0 to 1' });
      const unknown = await fetch(`${local.url}/__admin/faults`, { method: 'POST', body: JSON.stringify({ chaos: true }) });
      expect(unknown.status).toBe(400);
      await fetch(`${local.url}/__admin/faults`, { method: 'POST', body: JSON.stringify({ failureRate: 0 }) });
      expect(await (await fetch(`${local.url}/__admin/faults`)).json()).toMatchObject({ failureRate: 0 });
      expect((await sdb.listDomains({}).promise()).DomainNames).toEqual(['books']);
    });

    it('applies the next N writes and answers them 500 InternalError, then writes normally', async () => {
      local.setFaults({ appliedFailures: 1 });
      expect(await failure(sdb.putAttributes({ DomainName: 'books', ItemName: 'i', Attributes: [{ Name: 'a', Value: '1' }] }).promise())).toMatchObject({
        code: 'InternalError',
        statusCode: 500,
      });
      expect(local.faults().appliedFailures).toBe(0);
      expect((await sdb.getAttributes({ DomainName: 'books', ItemName: 'i', ConsistentRead: true }).promise()).Attributes).toEqual([{ Name: 'a', Value: '1' }]);
      await sdb.putAttributes({ DomainName: 'books', ItemName: 'i', Attributes: [{ Name: 'a', Value: '2', Replace: true }] }).promise();
      const bad = await fetch(`${local.url}/__admin/faults`, { method: 'POST', body: JSON.stringify({ appliedFailures: 0.5 }) });
      expect(await bad.json()).toMatchObject({ error: 'bad_request', message: 'appliedFailures must be a whole number of requests ≥ 0' });
    });

    it('answers Select with 408 RequestTimeout at the configured rate', async () => {
      local.setFaults({ timeoutRate: 1 });
      expect(await failure(sdb.select({ SelectExpression: 'select * from books' }).promise())).toMatchObject({ code: 'RequestTimeout', statusCode: 408 });
      await sdb.listDomains({}).promise();
    });

    it('adds latency to every answer', async () => {
      local.setFaults({ latencyMs: 150 });
      const started = performance.now();
      await sdb.listDomains({}).promise();
      expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    });

    it('refuses a latency longer than a Node timer can wait, which would run at once', async () => {
      const bad = await fetch(`${local.url}/__admin/faults`, { method: 'POST', body: JSON.stringify({ latencyMs: 1e12 }) });
      expect(bad.status).toBe(400);
      expect(await bad.json()).toEqual({ error: 'bad_request', message: 'latencyMs must be a number of milliseconds from 0 to 2147483647' });
      expect(local.faults().latencyMs).toBe(0);
    });

    it('drops all data on POST /__admin/reset', async () => {
      const res = await fetch(`${local.url}/__admin/reset`, { method: 'POST' });
      expect(res.status).toBe(200);
      expect((await sdb.listDomains({}).promise()).DomainNames).toBeUndefined();
    });
  });
});

describe('simpledb-local stale reads', () => {
  let local: SimpleDbLocal;
  let sdb: SimpleDB;
  let clock = Date.now();

  beforeEach(async () => {
    clock = Date.now();
    local = await startSimpleDbLocal({ ...KEY, now: () => clock, faults: { staleReads: true, staleWindowMs: 1000 } });
    sdb = client(local);
    await sdb.createDomain({ DomainName: 'dom' }).promise();
    await sdb.putAttributes({ DomainName: 'dom', ItemName: 'i', Attributes: [{ Name: 'v', Value: '1' }] }).promise();
    clock += 5000;
    await sdb.putAttributes({ DomainName: 'dom', ItemName: 'i', Attributes: [{ Name: 'v', Value: '2', Replace: true }] }).promise();
  });
  afterEach(async () => {
    await local.close();
  });

  it('shows the previous version to eventually consistent reads and the latest to consistent ones', async () => {
    expect((await sdb.getAttributes({ DomainName: 'dom', ItemName: 'i' }).promise()).Attributes).toEqual([{ Name: 'v', Value: '1' }]);
    expect((await sdb.getAttributes({ DomainName: 'dom', ItemName: 'i', ConsistentRead: true }).promise()).Attributes).toEqual([{ Name: 'v', Value: '2' }]);
    expect((await sdb.select({ SelectExpression: "select * from dom where v = '2'" }).promise()).Items).toBeUndefined();
    expect((await sdb.select({ SelectExpression: "select * from dom where v = '2'", ConsistentRead: true }).promise()).Items).toHaveLength(1);
  });

  it('converges once the stale window has passed', async () => {
    clock += 1001;
    expect((await sdb.getAttributes({ DomainName: 'dom', ItemName: 'i' }).promise()).Attributes).toEqual([{ Name: 'v', Value: '2' }]);
  });

  it('hides new items and keeps showing deleted ones inside the window', async () => {
    await sdb.putAttributes({ DomainName: 'dom', ItemName: 'fresh', Attributes: [{ Name: 'v', Value: '3' }] }).promise();
    clock += 5000;
    await sdb.deleteAttributes({ DomainName: 'dom', ItemName: 'i' }).promise();
    clock += 10;
    await sdb.putAttributes({ DomainName: 'dom', ItemName: 'newer', Attributes: [{ Name: 'v', Value: '4' }] }).promise();
    const stale = await sdb.select({ SelectExpression: 'select itemName() from dom' }).promise();
    expect(stale.Items!.map((i) => i.Name).sort()).toEqual(['fresh', 'i']);
    const fresh = await sdb.select({ SelectExpression: 'select itemName() from dom', ConsistentRead: true }).promise();
    expect(fresh.Items!.map((i) => i.Name)).toEqual(['fresh', 'newer']);
  });

  it('evaluates conditional writes against the latest version, not the stale one', async () => {
    await sdb.putAttributes({ DomainName: 'dom', ItemName: 'i', Attributes: [{ Name: 'v', Value: '3', Replace: true }], Expected: { Name: 'v', Value: '2' } }).promise();
  });
});

describe('simpledb-local --data file', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'simpledb-local-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('saves changes and loads them on the next start', async () => {
    const file = join(dir, 'data.json');
    const opts: SimpleDbLocalOptions = { ...KEY, dataFile: file };
    const first = await startSimpleDbLocal(opts);
    const sdb1 = client(first);
    await sdb1.createDomain({ DomainName: 'kept' }).promise();
    await sdb1.putAttributes({ DomainName: 'kept', ItemName: 'i', Attributes: [{ Name: 'a', Value: '1' }, { Name: 'a', Value: '2' }] }).promise();
    await first.close();
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ version: 1, domains: { kept: { items: { i: { a: ['1', '2'] } } } } });

    const second = await startSimpleDbLocal(opts);
    try {
      const got = await client(second).getAttributes({ DomainName: 'kept', ItemName: 'i', ConsistentRead: true }).promise();
      expect(got.Attributes).toEqual([{ Name: 'a', Value: '1' }, { Name: 'a', Value: '2' }]);
    } finally {
      await second.close();
    }
  });

  it('refuses to start on a corrupt data file with a clear error', async () => {
    const file = join(dir, 'corrupt.json');
    writeFileSync(file, '{not json');
    await expect(startSimpleDbLocal({ ...KEY, dataFile: file })).rejects.toMatchObject({ name: 'DataFileError', code: 'SIMPLEDB_LOCAL_DATA_FILE' });
  });

  it('refuses to start on JSON that is not a data file, naming what is wrong', async () => {
    const file = join(dir, 'shape.json');
    writeFileSync(file, JSON.stringify({ version: 1, domains: { d: { created_at_ms: 1, items: { i: { a: 'not a list' } } } } }));
    await expect(startSimpleDbLocal({ ...KEY, dataFile: file })).rejects.toMatchObject({
      name: 'DataFileError',
      message: `cannot load data file ${file}: not a simpledb-local data file: item "i" of domain "d" is not {"<attribute>":["<value>",...]}`,
    });
    writeFileSync(file, JSON.stringify({ version: 1, domains: { d: null } }));
    await expect(startSimpleDbLocal({ ...KEY, dataFile: file })).rejects.toMatchObject({
      message: `cannot load data file ${file}: not a simpledb-local data file: domain "d" is not {"created_at_ms":..,"items":{...}}`,
    });
  });

  it('refuses to start when the data file cannot be written, instead of losing every change', async () => {
    const file = join(dir, 'missing-dir', 'data.json');
    await expect(startSimpleDbLocal({ ...KEY, dataFile: file })).rejects.toMatchObject({ name: 'DataFileError', message: expect.stringMatching(/^cannot write data file .*missing-dir\/data\.json: ENOENT/) });
  });
});

/** Turns a raw error answer into the same shape the SDK rejects with. */
async function throwOnError(res: { status: number; body: string }): Promise<string> {
  if (res.status === 200) return res.body;
  throw { code: tag(res.body, 'Code')[0], statusCode: res.status, message: tag(res.body, 'Message')[0] } satisfies AwsError;
}
