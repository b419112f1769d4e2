// Walks AWS's API model for SimpleDB (test/fixtures/simpledb, from aws-sdk v2) and checks the
// local endpoint against it: the parameter names it accepts are exactly those the Query protocol
// serialises from each operation's input shape, a request filling EVERY input member succeeds,
// and the answer carries EVERY output member.
import type SimpleDB from 'aws-sdk/clients/simpledb.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readJsonFixture } from '../../../test/fixtures.js';
import { signParams } from '../sigv2.js';
import { ACCEPTED_PARAMETERS } from './operations.js';
import { startSimpleDbLocal, type SimpleDbLocal } from './server.js';

interface Shape {
  type?: 'structure' | 'list' | 'boolean' | 'integer' | 'long' | 'string';
  shape?: string;
  members?: Record<string, Shape>;
  member?: Shape;
  required?: string[];
  locationName?: string;
  flattened?: boolean;
  resultWrapper?: string;
}

interface Model {
  metadata: { apiVersion: string; protocol: string; signatureVersion: string; xmlNamespace: string };
  operations: Record<string, { input?: Shape; output?: Shape }>;
  shapes: Record<string, Shape>;
}

const model = readJsonFixture<Model>('simpledb/sdb-2009-04-15.min.json');

function resolve(shape: Shape): Shape {
  return shape.shape ? { ...model.shapes[shape.shape], ...shape, shape: undefined } : shape;
}

/** Query-protocol parameter names of a shape, with list indices as `N` (the SDK's query serializer rules). */
function parameterNames(shape: Shape, prefix: string): string[] {
  const s = resolve(shape);
  if (s.type === 'structure') {
    return Object.entries(s.members ?? {}).flatMap(([name, member]) => {
      const m = resolve(member);
      const wire = m.type === 'list' && m.flattened ? resolve(m.member!).locationName ?? name : m.locationName ?? name;
      return parameterNames(m, prefix ? `${prefix}.${wire}` : wire);
    });
  }
  if (s.type === 'list') return parameterNames(s.member!, `${prefix}.N`);
  return [prefix];
}

/** Developer Guide form of the update condition, accepted beside the model's `Expected.*`. */
const DOCUMENTED_EXTRAS: Record<string, string[]> = {
  PutAttributes: ['Expected.N.Name', 'Expected.N.Value', 'Expected.N.Exists'],
  DeleteAttributes: ['Expected.N.Name', 'Expected.N.Value', 'Expected.N.Exists'],
};

// A control character forces the base64 Alternate*Encoding members into the answers.
const CTRL = '\u0001';

describe('simpledb-local against the SimpleDB API model', () => {
  it('is the 2009-04-15 query protocol with SigV2', () => {
    expect(model.metadata).toMatchObject({ apiVersion: '2009-04-15', protocol: 'query', signatureVersion: 'v2', xmlNamespace: 'http://sdb.amazonaws.com/doc/2009-04-15/' });
  });

  it('accepts exactly the parameters each operation serialises from its input shape', () => {
    expect(Object.keys(ACCEPTED_PARAMETERS).sort()).toEqual(Object.keys(model.operations).sort());
    for (const [name, op] of Object.entries(model.operations)) {
      const fromModel = op.input ? parameterNames(op.input, '') : [];
      expect([...ACCEPTED_PARAMETERS[name]].sort(), name).toEqual([...fromModel, ...(DOCUMENTED_EXTRAS[name] ?? [])].sort());
    }
  });

  describe('live requests through the AWS SDK v2', () => {
    const key = { accessKeyId: 'AKIDMODEL', secretAccessKey: 'model-secret' };
    let local: SimpleDbLocal;
    let sdb: SimpleDB;

    beforeAll(async () => {
      process.env.AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE = '1';
      const AWS = ((await import('aws-sdk')) as unknown as { default: typeof import('aws-sdk') }).default;
      local = await startSimpleDbLocal({ ...key });
      sdb = new AWS.SimpleDB({ endpoint: local.url, region: 'us-east-1', credentials: key, maxRetries: 0 });
      await sdb.createDomain({ DomainName: 'model_a' }).promise();
      await sdb.createDomain({ DomainName: 'model_b' }).promise();
      await sdb.putAttributes({ DomainName: 'model_a', ItemName: 'seed', Attributes: [{ Name: 'v', Value: '1' }] }).promise();
      await sdb.putAttributes({ DomainName: 'model_a', ItemName: `odd${CTRL}item`, Attributes: [{ Name: `odd${CTRL}name`, Value: `odd${CTRL}value` }] }).promise();
    });
    afterAll(async () => {
      await local?.close();
    });

    /** Every member of the input shape filled in; `overrides` gives meaningful values by path. */
    function fill(shape: Shape, path: string, overrides: Record<string, unknown>): unknown {
      if (path in overrides) return overrides[path];
      const s = resolve(shape);
      switch (s.type) {
        case 'structure':
          return Object.fromEntries(Object.entries(s.members ?? {}).map(([name, m]) => [name, fill(m, path ? `${path}.${name}` : name, overrides)]));
        case 'list':
          return [0, 1].map((i) => fill(s.member!, `${path}[${i}]`, overrides));
        case 'boolean':
          return true;
        case 'integer':
        case 'long':
          return 1;
        default:
          return `${path.replace(/[^A-Za-z0-9]/g, '_')}`;
      }
    }

    function outputMembers(shape: Shape | undefined, value: unknown, path: string, missing: string[]): void {
      if (!shape) return;
      const s = resolve(shape);
      if (value === undefined) {
        missing.push(path);
        return;
      }
      if (s.type === 'structure') {
        for (const [name, m] of Object.entries(s.members ?? {})) outputMembers(m, (value as Record<string, unknown>)[name], `${path}.${name}`, missing);
      } else if (s.type === 'list') {
        const list = value as unknown[];
        if (list.length === 0) missing.push(`${path}[]`);
        // A member is present when at least one element carries it (encodings appear only where needed).
        const itemShape = resolve(s.member!);
        if (itemShape.type === 'structure') {
          for (const [name, m] of Object.entries(itemShape.members ?? {})) {
            const carriers = list.map((e) => (e as Record<string, unknown>)[name]).filter((v) => v !== undefined);
            if (carriers.length === 0) missing.push(`${path}[].${name}`);
            else outputMembers(m, carriers[0], `${path}[].${name}`, missing);
          }
        }
      }
    }

    const call = (op: string, params: unknown) => (sdb as unknown as Record<string, (p: unknown) => { promise(): Promise<unknown> }>)[op.charAt(0).toLowerCase() + op.slice(1)](params).promise();

    // Values that make a fully-populated request meaningful; everything else is generated.
    const cases: Record<string, () => Promise<Record<string, unknown>>> = {
      CreateDomain: async () => ({ DomainName: 'model_created' }),
      DeleteDomain: async () => ({ DomainName: 'model_created' }),
      ListDomains: async () => {
        const first = (await call('ListDomains', { MaxNumberOfDomains: 1 })) as { NextToken: string };
        return { MaxNumberOfDomains: 1, NextToken: first.NextToken };
      },
      DomainMetadata: async () => ({ DomainName: 'model_a' }),
      PutAttributes: async () => ({
        DomainName: 'model_a',
        ItemName: 'seed',
        'Attributes[0]': { Name: 'v', Value: '2', Replace: true },
        'Attributes[1]': { Name: 'w', Value: '3', Replace: false },
        Expected: { Name: 'v', Value: '1', Exists: true },
      }),
      BatchPutAttributes: async () => ({
        DomainName: 'model_a',
        'Items[0].Name': 'batch0',
        'Items[1].Name': 'batch1',
      }),
      GetAttributes: async () => ({ DomainName: 'model_a', ItemName: `odd${CTRL}item`, AttributeNames: [`odd${CTRL}name`, 'absent'] }),
      DeleteAttributes: async () => ({
        DomainName: 'model_a',
        ItemName: 'batch0',
        'Attributes[0]': { Name: 'Items_0__Attributes_0__Name', Value: 'Items_0__Attributes_0__Value' },
        'Attributes[1]': { Name: 'Items_0__Attributes_1__Name', Value: 'Items_0__Attributes_1__Value' },
        Expected: { Name: 'Items_0__Attributes_0__Name', Value: 'Items_0__Attributes_0__Value', Exists: true },
      }),
      BatchDeleteAttributes: async () => ({
        DomainName: 'model_a',
        'Items[0].Name': 'batch1',
        'Items[1].Name': 'seed',
        'Items[0].Attributes[0]': { Name: 'Items_1__Attributes_0__Name', Value: 'Items_1__Attributes_0__Value' },
        'Items[0].Attributes[1]': { Name: 'Items_1__Attributes_1__Name' },
        'Items[1].Attributes[0]': { Name: 'w', Value: '3' },
        'Items[1].Attributes[1]': { Name: 'nothing' },
      }),
      Select: async () => {
        const expression = 'select * from model_a where itemName() is not null order by itemName() desc limit 1';
        const first = (await call('Select', { SelectExpression: expression, ConsistentRead: true })) as { NextToken: string };
        return { SelectExpression: expression, NextToken: first.NextToken };
      },
    };

    // Order matters: later operations read what earlier ones wrote.
    const order = ['CreateDomain', 'ListDomains', 'DomainMetadata', 'PutAttributes', 'BatchPutAttributes', 'GetAttributes', 'DeleteAttributes', 'BatchDeleteAttributes', 'Select', 'DeleteDomain'];

    it('covers every operation of the model', () => {
      expect([...order].sort()).toEqual(Object.keys(model.operations).sort());
    });

    for (const name of order) {
      it(`${name}: accepts every input member and answers every output member`, async () => {
        const op = model.operations[name];
        const input = fill(op.input!, '', await cases[name]());
        const output = (await call(name, input)) as Record<string, unknown>;
        expect(output.ResponseMetadata).toMatchObject({ RequestId: expect.any(String), BoxUsage: expect.stringMatching(/^0\.\d+$/) });
        const missing: string[] = [];
        outputMembers(op.output, output, name, missing);
        // Select's last page has no NextToken, but the page before it carried one.
        expect(missing.filter((m) => !(name === 'Select' && m === 'Select.NextToken')), JSON.stringify(output)).toEqual([]);
      });
    }

    it('left the data the fully-populated writes describe', async () => {
      const seed = (await sdb.getAttributes({ DomainName: 'model_a', ItemName: 'seed', ConsistentRead: true }).promise()).Attributes;
      expect(seed).toEqual([{ Name: 'v', Value: '2' }]); // Replace=true, then BatchDelete removed w=3
      const batch0 = (await sdb.getAttributes({ DomainName: 'model_a', ItemName: 'batch0', ConsistentRead: true }).promise()).Attributes;
      expect(batch0).toBeUndefined(); // both pairs deleted → item gone
      const batch1 = (await sdb.getAttributes({ DomainName: 'model_a', ItemName: 'batch1', ConsistentRead: true }).promise()).Attributes;
      expect(batch1).toBeUndefined();
      expect((await sdb.listDomains({}).promise()).DomainNames).toEqual(['model_a', 'model_b']);
    });

    it('rejects a parameter the operation does not know', async () => {
      const host = new URL(local.url).host;
      const signed = signParams(
        {
          Action: 'PutAttributes', Version: '2009-04-15', Timestamp: new Date().toISOString(),
          DomainName: 'model_a', ItemName: 'x', 'Attribute.1.Name': 'a', 'Attribute.1.Value': '1', 'Attribute.1.Replac': 'true',
        },
        { ...key, method: 'POST', host, path: '/' },
      );
      const res = await fetch(`${local.url}/`, { method: 'POST', body: new URLSearchParams(signed).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(res.status).toBe(400);
      const body = await res.text();
      expect(body).toContain('<Code>InvalidParameterValue</Code>');
      expect(body).toContain('Attribute.1.Replac');
    });
  });
});
