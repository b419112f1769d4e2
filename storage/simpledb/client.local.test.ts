// The client against the local SimpleDB-compatible endpoint: every operation end to end, the
// answers parsed, the documented error codes surfaced as SimpleDbError.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimpleDbLocal, type SimpleDbLocal } from './local/index.js';
import { SimpleDbClient, SimpleDbError, staticCredentials } from './client.js';
import { buildSelect, ITEM_NAME } from './select.js';

const KEY = { accessKeyId: 'AKIDCLIENTLOCAL', secretAccessKey: 'client/local+secret' };
let local: SimpleDbLocal;
let sdb: SimpleDbClient;

beforeAll(async () => {
  local = await startSimpleDbLocal({ ...KEY });
  sdb = new SimpleDbClient({ endpoint: new URL(local.url), credentials: staticCredentials(KEY) });
  await sdb.createDomain('cl_items');
});
afterAll(async () => {
  await sdb.close();
  await local.close();
});

describe('SimpleDbClient against the local endpoint', () => {
  it('lists domains page by page and reads domain metadata', async () => {
    for (const d of ['cl_a', 'cl_b', 'cl_c']) await sdb.createDomain(d);
    const first = await sdb.listDomains({ maxNumberOfDomains: 2 });
    expect(first.domains).toHaveLength(2);
    expect(first.nextToken).not.toBeNull();
    expect(await sdb.listAllDomains()).toEqual(expect.arrayContaining(['cl_a', 'cl_b', 'cl_c', 'cl_items']));
    await sdb.putAttributes('cl_a', 'i1', [{ name: 'x', value: 'abc' }]);
    expect(await sdb.domainMetadata('cl_a')).toMatchObject({ itemCount: 1, attributeNameCount: 1, attributeValueCount: 1, attributeValuesSizeBytes: 3 });
  });

  it('round-trips values with XML specials, spaces and non-ASCII exactly', async () => {
    const value = '  <a href="x">&amp; \'quoted\' ünï 🚀  ';
    await sdb.putAttributes('cl_items', 'odd', [{ name: 'v', value, replace: true }]);
    expect(await sdb.getAttributes('cl_items', 'odd', { consistentRead: true })).toEqual([{ name: 'v', value }]);
    const [item] = await sdb.selectAll(buildSelect({ output: '*', domain: 'cl_items', where: [{ attr: 'v', op: '=', value }] }), { consistentRead: true });
    expect(item).toEqual({ name: 'odd', attributes: [{ name: 'v', value }] });
  });

  it('round-trips names and values XML cannot carry (control characters), base64-encoded on the way back', async () => {
    const value = 'prod\u0001blue';
    await sdb.putAttributes('cl_items', 'ctl\u0002', [{ name: 'v\u0003', value, replace: true }]);
    expect(await sdb.getAttributes('cl_items', 'ctl\u0002', { consistentRead: true })).toEqual([{ name: 'v\u0003', value }]);
    const [item] = await sdb.selectAll(buildSelect({ output: '*', domain: 'cl_items', where: [{ attr: 'v\u0003', op: '=', value }] }), { consistentRead: true });
    expect(item).toEqual({ name: 'ctl\u0002', attributes: [{ name: 'v\u0003', value }] });
  });

  it('applies conditional puts and deletes, and reports ConditionalCheckFailed', async () => {
    await sdb.putAttributes('cl_items', 'c', [{ name: 'ver', value: '1', replace: true }], { name: 'ver', exists: false });
    const err = await sdb.putAttributes('cl_items', 'c', [{ name: 'ver', value: '2', replace: true }], { name: 'ver', exists: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SimpleDbError);
    expect(err).toMatchObject({ code: 'ConditionalCheckFailed', status: 409 });
    await sdb.putAttributes('cl_items', 'c', [{ name: 'ver', value: '2', replace: true }], { name: 'ver', value: '1' });
    await expect(sdb.deleteAttributes('cl_items', 'c', [], { name: 'ver', value: '1' })).rejects.toMatchObject({ code: 'ConditionalCheckFailed' });
    await sdb.deleteAttributes('cl_items', 'c', [], { name: 'ver', value: '2' });
    expect(await sdb.getAttributes('cl_items', 'c', { consistentRead: true })).toEqual([]);
  });

  it('writes and deletes in batches, attribute by attribute or whole items', async () => {
    await sdb.createDomain('cl_batch');
    await sdb.batchPutAttributes(
      'cl_batch',
      Array.from({ length: 25 }, (_, i) => ({ name: `b${String(i).padStart(2, '0')}`, attributes: [{ name: 'n', value: String(i).padStart(3, '0') }, { name: 'tag', value: i % 2 ? 'odd' : 'even' }] })),
    );
    expect(await sdb.count(buildSelect({ output: 'count(*)', domain: 'cl_batch' }), { consistentRead: true })).toBe(25);
    await sdb.batchDeleteAttributes('cl_batch', [{ name: 'b00' }, { name: 'b01', attributes: [{ name: 'tag', value: 'odd' }] }]);
    expect(await sdb.getAttributes('cl_batch', 'b01', { consistentRead: true })).toEqual([{ name: 'n', value: '001' }]);
    expect(await sdb.count(buildSelect({ output: 'count(*)', domain: 'cl_batch', where: [{ attr: 'tag', op: '=', value: 'odd' }] }), { consistentRead: true })).toBe(11);
  });

  it('follows NextToken past a page limit, in item name order', async () => {
    const expr = buildSelect({ output: 'itemName()', domain: 'cl_batch', where: [{ attr: ITEM_NAME, op: '>', value: '' }], orderBy: { attr: ITEM_NAME }, limit: 7 });
    const page = await sdb.select(expr, { consistentRead: true });
    expect(page.items).toHaveLength(7);
    expect(page.nextToken).not.toBeNull();
    const all = await sdb.selectAll(expr, { consistentRead: true });
    expect(all.map((i) => i.name)).toEqual(Array.from({ length: 24 }, (_, i) => `b${String(i + 1).padStart(2, '0')}`));
  });

  it('surfaces NoSuchDomain, InvalidQueryExpression and a bad signature as coded errors', async () => {
    await expect(sdb.getAttributes('cl_missing', 'x')).rejects.toMatchObject({ code: 'NoSuchDomain', status: 400 });
    await expect(sdb.select('select * from')).rejects.toMatchObject({ code: 'InvalidQueryExpression', status: 400 });
    const wrong = new SimpleDbClient({ endpoint: new URL(local.url), credentials: staticCredentials({ ...KEY, secretAccessKey: 'nope' }) });
    await expect(wrong.listDomains()).rejects.toMatchObject({ code: 'SignatureDoesNotMatch', status: 403 });
    await wrong.close();
  });
});
