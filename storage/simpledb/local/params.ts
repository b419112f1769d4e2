// Reading the Query API's flattened parameters: `Attribute.N.Name`, `Item.N.Attribute.M.Value`,
// `AttributeName.N`, `Expected.Name` / `Expected.N.Name`. Indices may start at 0 or 1 and need not
// be contiguous (AWS SDKs send 1-based, the Developer Guide shows 0-based); order is by index.
import { SdbError, invalidParameter, missingParameter } from './errors.js';

export type Params = Record<string, string>;

export const MAX_NAME_BYTES = 1024;
export const MAX_VALUE_BYTES = 1024;

export function required(params: Params, name: string): string {
  const v = params[name];
  if (v === undefined || v === '') throw missingParameter(name);
  return v;
}

export function optionalBoolean(params: Params, name: string): boolean | undefined {
  const v = params[name];
  if (v === undefined) return undefined;
  const lower = v.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  throw invalidParameter(name, v, 'It must be true or false.');
}

export function checkLength(param: string, value: string, maxBytes: number): void {
  if (Buffer.byteLength(value, 'utf8') > maxBytes) {
    throw invalidParameter(param, value.length > 40 ? `${value.slice(0, 40)}…` : value, `It must be at most ${maxBytes} bytes long.`);
  }
}

/** Groups `<prefix>.<N>.<rest>` parameters by N, ascending. Returns [N, {rest: value}] pairs. */
export function indexed(params: Params, prefix: string): Array<[number, Params]> {
  const groups = new Map<number, Params>();
  const head = `${prefix}.`;
  for (const [key, value] of Object.entries(params)) {
    if (!key.startsWith(head)) continue;
    const rest = key.slice(head.length);
    const dot = rest.indexOf('.');
    const indexText = dot < 0 ? rest : rest.slice(0, dot);
    if (!/^\d{1,6}$/.test(indexText)) throw invalidParameter(key, value, `Expected ${prefix}.N with a whole number N.`);
    const index = Number(indexText);
    let group = groups.get(index);
    if (!group) groups.set(index, (group = {}));
    group[dot < 0 ? '' : rest.slice(dot + 1)] = value;
  }
  return [...groups].sort((a, b) => a[0] - b[0]);
}

export interface PutAttribute {
  name: string;
  value: string;
  replace: boolean;
}

export interface DeleteAttribute {
  name: string;
  value?: string;
}

export interface Expected {
  name: string;
  value?: string;
  exists?: boolean;
}

function attributeName(param: string, name: string | undefined): string {
  if (name === undefined || name === '') throw missingParameter(`${param}.Name`);
  checkLength(`${param}.Name`, name, MAX_NAME_BYTES);
  return name;
}

export function putAttributes(params: Params, prefix = 'Attribute'): PutAttribute[] {
  return indexed(params, prefix).map(([n, g]) => {
    const p = `${prefix}.${n}`;
    const name = attributeName(p, g.Name);
    const value = g.Value;
    if (value === undefined) throw missingParameter(`${p}.Value`);
    checkLength(`${p}.Value`, value, MAX_VALUE_BYTES);
    const replace = optionalBoolean({ [`${p}.Replace`]: g.Replace } as Params, `${p}.Replace`) ?? false;
    return { name, value, replace };
  });
}

export function deleteAttributes(params: Params, prefix = 'Attribute'): DeleteAttribute[] {
  return indexed(params, prefix).map(([n, g]) => {
    const p = `${prefix}.${n}`;
    const name = attributeName(p, g.Name);
    if (g.Value !== undefined) checkLength(`${p}.Value`, g.Value, MAX_VALUE_BYTES);
    return g.Value === undefined ? { name } : { name, value: g.Value };
  });
}

/**
 * The update condition, in either form: `Expected.Name/Value/Exists` (the API model's
 * structure, what AWS SDKs send) or `Expected.N.Name/...` (the Developer Guide's examples).
 * Only one condition is supported per request, as in SimpleDB.
 */
export function expected(params: Params): Expected | undefined {
  const groups: Array<[string, Params]> = [];
  const direct: Params = {};
  for (const key of ['Name', 'Value', 'Exists']) {
    if (params[`Expected.${key}`] !== undefined) direct[key] = params[`Expected.${key}`];
  }
  if (Object.keys(direct).length > 0) groups.push(['Expected', direct]);
  for (const [n, g] of indexed(Object.fromEntries(Object.entries(params).filter(([k]) => /^Expected\.\d/.test(k))), 'Expected')) {
    groups.push([`Expected.${n}`, g]);
  }
  if (groups.length === 0) return undefined;
  if (groups.length > 1) throw new SdbError('MultipleExpectedNames', 'Only one expected condition may be given per request.');
  const [p, g] = groups[0];
  if (g.Name === undefined || g.Name === '') throw missingParameter(`${p}.Name`);
  const exists = optionalBoolean({ [`${p}.Exists`]: g.Exists } as Params, `${p}.Exists`);
  if (exists === false && g.Value !== undefined) {
    throw new SdbError('ExistsAndExpectedValue', `${p}.Exists=false and ${p}.Value cannot be specified together`);
  }
  if (exists !== false && g.Value === undefined) {
    throw new SdbError('IncompleteExpectedExpression', `If ${p}.Exists=true or unspecified, then ${p}.Value has to be specified`);
  }
  return { name: g.Name, value: g.Value, exists };
}
