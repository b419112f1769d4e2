import { Type } from 'typebox';
import { describe, expect, it } from 'vitest';
import { needsConversion, validatorCompiler } from './validator.js';

const compile = (schema: Parameters<typeof validatorCompiler>[0]['schema'], httpPart: string) =>
  validatorCompiler({ schema, httpPart, method: 'GET', url: '/x' }) as (input: unknown) => true | { value?: unknown; error?: unknown };
const failed = (result: true | { error?: unknown }) => result !== true && result.error !== undefined;

describe('route validator compiler', () => {
  it('knows a schema of strings only needs no conversion', () => {
    expect(needsConversion(Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{12,64}$' }), q: Type.Optional(Type.String()) }))).toBe(false);
    expect(needsConversion(Type.Object({}))).toBe(false);
  });

  it('knows a number, integer, boolean or union with one anywhere needs conversion', () => {
    expect(needsConversion(Type.Object({ limit: Type.Optional(Type.Integer()) }))).toBe(true);
    expect(needsConversion(Type.Object({ stale: Type.Boolean() }))).toBe(true);
    expect(needsConversion(Type.Object({ x: Type.Union([Type.String(), Type.Number()]) }))).toBe(true);
  });

  it('converts query strings to their declared types', () => {
    const check = compile(Type.Object({ limit: Type.Integer({ minimum: 1 }) }), 'querystring');
    expect(check({ limit: '25' })).toEqual({ value: { limit: 25 } });
    expect(failed(check({ limit: 'many' }))).toBe(true);
  });

  it('passes string params through unchanged (true: Fastify keeps the input) and rejects what does not match', () => {
    const check = compile(Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{12}$' }) }), 'params');
    expect(check({ id: '0123456789ab' })).toBe(true);
    expect(failed(check({ id: '" or "1"="1' }))).toBe(true);
    // A repeated query key arrives as an array: it is not a string, so it fails instead of being coerced.
    expect(failed(compile(Type.Object({ redir: Type.Optional(Type.String()) }), 'querystring')({ redir: ['a', 'b'] }))).toBe(true);
  });

  it('checks bodies exactly as sent: no coercion of null or numbers', () => {
    const check = compile(Type.Object({ name: Type.String(), n: Type.Integer() }), 'body');
    expect(failed(check({ name: null, n: 1 }))).toBe(true);
    expect(failed(check({ name: 'a', n: '1' }))).toBe(true);
    expect(check({ name: 'a', n: 1 })).toBe(true);
  });

  it('names unknown keys and the known ones in one message, at any depth', () => {
    const check = compile(Type.Object({ cluster: Type.Optional(Type.String()), limit: Type.Optional(Type.Integer()) }, { additionalProperties: false }), 'querystring');
    const result = check({ clustr: 'prod', foo: '1' });
    expect(result !== true && result.error).toEqual([
      expect.objectContaining({ instancePath: '', message: 'has unknown keys "clustr", "foo" (known: cluster, limit)' }),
    ]);
    const body = compile(Type.Object({ host: Type.Object({ id: Type.String() }, { additionalProperties: false }) }), 'body');
    const nested = body({ host: { id: 'a', extra: 1 } });
    expect(nested !== true && nested.error).toEqual([
      expect.objectContaining({ instancePath: '/host', message: 'has unknown key "extra" (known: id)' }),
    ]);
    const list = compile(Type.Object({ items: Type.Array(Type.Object({ id: Type.String() }, { additionalProperties: false })) }), 'body');
    const inArray = list({ items: [{ id: 'a' }, { id: 'b', extra: 1 }] });
    expect(inArray !== true && inArray.error).toEqual([
      expect.objectContaining({ instancePath: '/items/1', message: 'has unknown key "extra" (known: id)' }),
    ]);
    const none = compile(Type.Object({}, { additionalProperties: false }), 'querystring')({ x: '1' });
    expect(none !== true && none.error).toEqual([expect.objectContaining({ message: 'has unknown key "x" (it takes none)' })]);
  });

  it('names every unknown key, up to ten, however many TypeBox listed (it stops at 8 errors)', () => {
    const check = compile(Type.Object({ cluster: Type.Optional(Type.String()) }, { additionalProperties: false }), 'querystring');
    const eight = check(Object.fromEntries('abcdefgh'.split('').map((k) => [k, '1'])));
    expect(eight !== true && eight.error).toEqual([
      expect.objectContaining({ instancePath: '', message: 'has unknown keys "a", "b", "c", "d", "e", "f", "g", "h" (known: cluster)' }),
    ]);
    const twelve = check(Object.fromEntries('abcdefghijkl'.split('').map((k) => [k, '1'])));
    expect(twelve !== true && twelve.error).toEqual([
      expect.objectContaining({ message: 'has unknown keys "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", and 2 more (known: cluster)' }),
    ]);
    // A key with a slash is named as sent, not as its JSON pointer.
    const slash = compile(Type.Object({ host: Type.Object({}, { additionalProperties: false }) }), 'body')({ host: { 'a/b~c': 1 } });
    expect(slash !== true && slash.error).toEqual([expect.objectContaining({ instancePath: '/host', message: 'has unknown key "a/b~c" (it takes none)' })]);
  });

  it('names the values an enum or a union of literals takes', () => {
    const check = compile(Type.Object({ state: Type.Optional(Type.Enum(['running', 'stopped'])), event: Type.Optional(Type.Union([Type.Literal('added'), Type.Literal('removed')])) }), 'body');
    const result = check({ state: 'weird', event: 'x' });
    expect(result !== true && result.error).toEqual([
      expect.objectContaining({ instancePath: '/state', message: 'must be one of "running", "stopped"' }),
      expect.objectContaining({ instancePath: '/event', message: 'must be one of "added", "removed"' }),
    ]);
  });

  it('leaves a union with a branch other than a literal as TypeBox reports it', () => {
    const check = compile(Type.Object({ at: Type.Union([Type.Literal('now'), Type.Integer()]) }), 'body');
    const result = check({ at: 'later' });
    expect(result !== true && (result.error as { keyword: string }[]).map((e) => e.keyword)).toEqual(['const', 'type', 'anyOf']);
  });

  it('says a query key given more than once must be given once, once per key, beside the other keys\' errors', () => {
    const check = compile(Type.Object({ state: Type.Optional(Type.Union([Type.Literal('running'), Type.Literal('gone')])), limit: Type.Optional(Type.Integer()), cluster: Type.Optional(Type.String()) }), 'querystring');
    const result = check({ state: ['running', 'gone'], limit: 'x', cluster: ['a', 'b', 'c'] });
    expect(result !== true && (result.error as { instancePath: string; message: string }[]).map((e) => [e.instancePath, e.message])).toEqual([
      ['/state', 'must be given once (it was given 2 times)'],
      ['/limit', 'must be integer'],
      ['/cluster', 'must be given once (it was given 3 times)'],
    ]);
  });

  it('leaves an array in a body to the schema\'s own messages (a body key cannot be repeated)', () => {
    const check = compile(Type.Object({ state: Type.String() }), 'body');
    const result = check({ state: ['running', 'gone'] });
    expect(result !== true && (result.error as { message: string }[]).map((e) => e.message)).toEqual(['must be string']);
  });
});
