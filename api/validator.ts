// The route validator compiler: TypeBox schemas compiled once per route part.
//
// Bodies are checked exactly as sent (no coercion: Ajv's turned a JSON null into "" or 0). Params,
// query strings and headers arrive as strings (arrays of strings for a repeated query key) and are
// converted to their declared types first, as @fastify/type-provider-typebox does, but only when the
// schema declares a non-string value somewhere: converting a string against a string schema changes
// nothing, and TypeBox's interpreted Value.Convert was the largest single cost of the lookup hot path
// (docs/benchmarks.md, API section).
import type { FastifySchemaCompiler } from 'fastify';
import { Compile } from 'typebox/compile';
import { Value } from 'typebox/value';
import type { TSchema } from 'typebox';

/** True when converting string inputs against `schema` could change them (a non-string type anywhere). */
export function needsConversion(schema: unknown): boolean {
  if (Array.isArray(schema)) return schema.some(needsConversion);
  if (typeof schema !== 'object' || schema === null) return false;
  const type = (schema as { type?: unknown }).type;
  const types = Array.isArray(type) ? type : type === undefined ? [] : [type];
  if (types.some((t) => t !== 'string' && t !== 'object')) return true;
  return Object.values(schema).some((v) => typeof v === 'object' && v !== null && needsConversion(v));
}

/**
 * Fastify's contract for a validator's answer: `true` keeps the input as the request part, `{ value }`
 * replaces it, `{ error }` rejects it. Unconverted input passes as `true`: no result object per request
 * part, and Fastify skips the write-back (the lookup route validates params and query on every request).
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = Compile(schema);
  const errors = (input: unknown) => readableErrors(schema, check.Errors(input) as unknown as ValidationError[], input, httpPart === 'querystring') as never;
  if (httpPart === 'body' || !needsConversion(schema)) {
    return (input: unknown) => (check.Check(input) ? true : { error: errors(input) });
  }
  return (input: unknown) => {
    // Convert may change the object it is given: the strings as sent are kept aside first.
    const sent = typeof input === 'object' && input !== null ? { ...input } : input;
    const value = keepLooseStrings(schema, sent, Value.Convert(schema, input));
    return check.Check(value) ? { value } : { error: errors(value) };
  };
};

/** What a string must look like to be read as its key's declared type (decimal only, no "1.9" for an integer). */
const STRICT: Record<string, RegExp> = {
  integer: /^-?\d{1,16}$/,
  number: /^-?\d{1,16}(\.\d{1,16})?$/,
  boolean: /^(true|false)$/,
};

/**
 * TypeBox's conversion is lenient: "1.9" and "0x10" become the integers 1 and 16, "1" and "TRUE"
 * the boolean true. For each top-level key declared integer, number or boolean, a string that is
 * not that type written plainly is put back as it came, so the check refuses it with a 400 ("must
 * be integer") instead of reading another value than the one sent.
 */
function keepLooseStrings(schema: unknown, input: unknown, converted: unknown): unknown {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties;
  if (!properties || typeof input !== 'object' || input === null || typeof converted !== 'object' || converted === null) return converted;
  let out = converted as Record<string, unknown>;
  for (const [key, raw] of Object.entries(input as Record<string, unknown>)) {
    const type = properties[key]?.type;
    const strict = typeof type === 'string' ? STRICT[type] : undefined;
    if (strict && typeof raw === 'string' && !strict.test(raw)) {
      if (out === converted) out = { ...out };
      out[key] = raw;
    }
  }
  return out;
}

interface ValidationError {
  keyword: string;
  schemaPath: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

/**
 * TypeBox's messages, made to say what the input should have been. Fastify joins them into the
 * 400's message.
 * - An unknown key is reported as "/<key> schema is false", then, if the error list (at most 8
 *   errors) has room left, once more as "must not have additional properties" without names. Each
 *   object with unknown keys gets one message instead, naming them all (read from `input`, as the
 *   list may hold only the first few) and the known ones.
 * - A value outside an enum "must be equal to one of the allowed values", and one outside a union
 *   of literals gets "must be equal to constant" per literal, then "must match a schema in anyOf".
 *   Both become "must be one of" the values.
 * - A query key given more than once (`?state=running&state=gone`) arrives as an array, which a
 *   single-valued key's schema refuses with messages about the values; it becomes "must be given
 *   once.
 * `input` is the request part as checked; `isQuery` says it is a query string.
 */
export function readableErrors(schema: unknown, errors: ValidationError[], input?: unknown, isQuery = false): ValidationError[] {
  const query = isQuery ? input : undefined;
  const unions = literalUnions(errors);
  const literalsOf = (e: ValidationError, unionPath: string) => unions.get(`${e.instancePath} ${unionPath}`) ?? undefined;
  const repeated = new Set<string>();
  const unknownKeysAt = new Set<string>();
  // The objects whose unknown keys TypeBox reported one by one: their summary error, when there
  // was room for it, names none, and the message below names them all.
  const withUnknownKeys = new Set(errors.filter(isUnknownKey).map((e) => parentPath(e.instancePath)));
  return errors
    .filter((e) => !(e.keyword === 'additionalProperties' && withUnknownKeys.has(e.instancePath)))
    .filter((e) => {
      if (!isUnknownKey(e)) return true;
      const parent = parentPath(e.instancePath);
      if (unknownKeysAt.has(parent)) return false;
      unknownKeysAt.add(parent);
      return true;
    })
    .filter((e) => {
      const times = timesGiven(query, e.instancePath);
      if (times === undefined) return true;
      // One message per repeated key, whatever its values broke.
      if (repeated.has(e.instancePath)) return false;
      repeated.add(e.instancePath);
      return true;
    })
    .filter((e) => repeated.has(e.instancePath) || !(BRANCH.test(e.schemaPath) && literalsOf(e, e.schemaPath.replace(BRANCH, ''))))
    .map((e) => {
      if (repeated.has(e.instancePath)) return { ...e, keyword: 'repeated', message: `must be given once (it was given ${timesGiven(query, e.instancePath)} times)` };
      if (e.keyword === 'enum' && Array.isArray(e.params.allowedValues)) return { ...e, message: oneOf(e.params.allowedValues) };
      const literals = e.keyword === 'anyOf' ? literalsOf(e, e.schemaPath) : undefined;
      if (literals) return { ...e, message: oneOf(literals) };
      if (!isUnknownKey(e)) return e;
      const parent = parentPath(e.instancePath);
      const known = knownKeys(schema, parent);
      const value = valueAt(input, parent);
      const unknown = known && value ? Object.keys(value).filter((k) => !known.includes(k)) : [unescapePointer(e.instancePath.slice(parent.length + 1))];
      const shown = unknown.slice(0, MAX_UNKNOWN_NAMED).map((k) => JSON.stringify(k.slice(0, 64)));
      if (unknown.length > MAX_UNKNOWN_NAMED) shown.push(`and ${unknown.length - MAX_UNKNOWN_NAMED} more`);
      const hint = known === undefined ? '' : known.length ? ` (known: ${known.join(', ')})` : ' (it takes none)';
      return { ...e, keyword: 'additionalProperties', instancePath: parent, message: `has unknown key${unknown.length > 1 ? 's' : ''} ${shown.join(', ')}${hint}` };
    });
}

/** Unknown keys named in one message at most; the rest are counted. */
const MAX_UNKNOWN_NAMED = 10;

/** TypeBox's error for one key an object with `additionalProperties: false` does not take. */
const isUnknownKey = (e: ValidationError) => e.keyword === 'boolean' && e.schemaPath.endsWith('/additionalProperties');

const parentPath = (instancePath: string) => instancePath.slice(0, instancePath.lastIndexOf('/'));

const unescapePointer = (segment: string) => segment.replace(/~1/g, '/').replace(/~0/g, '~');

/** The object at a JSON pointer in `input`; undefined when there is none. */
function valueAt(input: unknown, instancePath: string): Record<string, unknown> | undefined {
  let at = input;
  for (const segment of instancePath.split('/').slice(1)) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Record<string, unknown>)[unescapePointer(segment)];
  }
  return typeof at === 'object' && at !== null && !Array.isArray(at) ? (at as Record<string, unknown>) : undefined;
}

/** How often a top-level query key at `instancePath` (`/state`) was given, when more than once. */
function timesGiven(query: unknown, instancePath: string): number | undefined {
  if (query === null || typeof query !== 'object' || !/^\/[^/]+$/.test(instancePath)) return undefined;
  const value = (query as Record<string, unknown>)[instancePath.slice(1)];
  return Array.isArray(value) ? value.length : undefined;
}

/** A branch of a union (anyOf) in a schema path. */
const BRANCH = /\/anyOf\/\d+$/;

/**
 * The failed unions, keyed by instance path and the union's schema path: the literals they take
 * where every branch that failed is a literal, null where some branch is something else.
 */
function literalUnions(errors: ValidationError[]): Map<string, unknown[] | null> {
  const unions = new Map<string, unknown[] | null>();
  for (const e of errors) {
    if (!BRANCH.test(e.schemaPath)) continue;
    const key = `${e.instancePath} ${e.schemaPath.replace(BRANCH, '')}`;
    const literals = unions.get(key);
    unions.set(key, e.keyword === 'const' && literals !== null ? [...(literals ?? []), e.params.allowedValue] : null);
  }
  return unions;
}

const oneOf = (values: unknown[]) => `must be one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;

type SchemaNode = { properties?: Record<string, unknown>; items?: unknown } | undefined;

/** The keys the object schema at `instancePath` takes; undefined where the path leads through something other than properties and array items (a union). */
function knownKeys(schema: unknown, instancePath: string): string[] | undefined {
  let at = schema as SchemaNode;
  for (const key of instancePath.split('/').slice(1)) {
    at = (/^\d+$/.test(key) && at?.items !== undefined ? at.items : at?.properties?.[key]) as SchemaNode;
  }
  return at?.properties === undefined ? undefined : Object.keys(at.properties);
}
