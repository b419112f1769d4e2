// The ten SimpleDB actions of API 2009-04-15 this endpoint serves. Each takes the request's
// parameters and returns the inner XML of `<{Action}Result>` (if the action has one), the
// BoxUsage to report, and whether stored data changed. Limits are the documented ones
// (Developer Guide, "Limits"); conditional writes read the latest state.
import { Database, pairCount, type Attributes, type Domain } from './database.js';
import { SdbError, invalidParameter, missingParameter, noSuchDomain } from './errors.js';
import {
  MAX_NAME_BYTES,
  checkLength,
  deleteAttributes,
  expected,
  indexed,
  optionalBoolean,
  putAttributes,
  required,
  type Expected,
  type Params,
  type PutAttribute,
  type DeleteAttribute,
} from './params.js';
import { executeSelect } from './select/execute.js';
import { parseSelect } from './select/parser.js';
import { attributeXml, encodedElement } from './xml.js';

export const LIMITS = {
  domains: 250,
  pairsPerItem: 256,
  attributesPerPut: 256,
  itemsPerBatch: 25,
  maxDomainsPerList: 100,
} as const;

/** Machine hours billed per action, in the range SimpleDB reports (Developer Guide examples). */
const BOX_USAGE = {
  domain: 0.0055590278,
  light: 0.0000071759,
  get: 0.0000093202,
  put: 0.0000219907,
  perAttribute: 0.0000000181,
  selectBase: 0.0000137200,
  perItemScanned: 0.0000000092,
} as const;

/**
 * Parameters each action accepts besides the common ones, with list indices written as `N`.
 * These are exactly the members of the 2009-04-15 API model serialised by the Query protocol
 * (checked by model.test.ts), plus the Developer Guide's `Expected.N.*` form of the condition.
 */
export const ACCEPTED_PARAMETERS: Record<string, readonly string[]> = {
  CreateDomain: ['DomainName'],
  DeleteDomain: ['DomainName'],
  ListDomains: ['MaxNumberOfDomains', 'NextToken'],
  DomainMetadata: ['DomainName'],
  PutAttributes: [
    'DomainName', 'ItemName', 'Attribute.N.Name', 'Attribute.N.Value', 'Attribute.N.Replace',
    'Expected.Name', 'Expected.Value', 'Expected.Exists', 'Expected.N.Name', 'Expected.N.Value', 'Expected.N.Exists',
  ],
  BatchPutAttributes: ['DomainName', 'Item.N.ItemName', 'Item.N.Attribute.N.Name', 'Item.N.Attribute.N.Value', 'Item.N.Attribute.N.Replace'],
  GetAttributes: ['DomainName', 'ItemName', 'AttributeName.N', 'ConsistentRead'],
  DeleteAttributes: [
    'DomainName', 'ItemName', 'Attribute.N.Name', 'Attribute.N.Value',
    'Expected.Name', 'Expected.Value', 'Expected.Exists', 'Expected.N.Name', 'Expected.N.Value', 'Expected.N.Exists',
  ],
  BatchDeleteAttributes: ['DomainName', 'Item.N.ItemName', 'Item.N.Attribute.N.Name', 'Item.N.Attribute.N.Value'],
  Select: ['SelectExpression', 'NextToken', 'ConsistentRead'],
};

/** Parameters of the request envelope, valid with every action. */
export const COMMON_PARAMETERS = [
  'Action', 'Version', 'AWSAccessKeyId', 'Signature', 'SignatureVersion', 'SignatureMethod', 'Timestamp', 'Expires', 'SecurityToken',
] as const;

/**
 * Rejects parameters the action does not know, so a misspelt member (`Attribute.1.Replac`) fails
 * loudly instead of being ignored.
 */
export function checkParameterNames(action: string, params: Params): void {
  const accepted = new Set<string>([...COMMON_PARAMETERS, ...(ACCEPTED_PARAMETERS[action] ?? [])]);
  for (const key of Object.keys(params)) {
    const pattern = key.replace(/\.\d+(?=\.|$)/g, '.N');
    if (!accepted.has(pattern)) {
      throw new SdbError('InvalidParameterValue', `The parameter ${key} is not recognized by ${action}.`);
    }
  }
}

export interface OperationResult {
  result?: string;
  boxUsage: number;
  mutated: boolean;
}

export interface OperationContext {
  db: Database;
  now: () => number;
}

export type Operation = (ctx: OperationContext, params: Params) => OperationResult;

const DOMAIN_NAME = /^[a-zA-Z0-9_.-]{3,255}$/;

function existingDomain(ctx: OperationContext, params: Params): Domain {
  const domain = ctx.db.domain(required(params, 'DomainName'));
  if (!domain) throw noSuchDomain();
  return domain;
}

function itemName(params: Params, param = 'ItemName'): string {
  const name = required(params, param);
  checkLength(param, name, MAX_NAME_BYTES);
  return name;
}

/** Checks an update condition against the latest version of the item. */
function checkExpected(current: Attributes | undefined, exp: Expected | undefined): void {
  if (!exp) return;
  const values = current?.get(exp.name);
  if (exp.exists === false) {
    if (values && values.size > 0) throw new SdbError('ConditionalCheckFailed', `Conditional check failed. Attribute (${exp.name}) value exists.`);
    return;
  }
  if (!values || values.size === 0) throw new SdbError('AttributeDoesNotExist', `Attribute (${exp.name}) does not exist`);
  if (values.size > 1) throw new SdbError('MultiValuedAttribute', `Attribute (${exp.name}) is multi-valued. Conditional check can only be performed on a single-valued attribute`);
  const [actual] = values;
  if (actual !== exp.value) {
    throw new SdbError('ConditionalCheckFailed', `Conditional check failed. Attribute (${exp.name}) value is (${actual}) but was expected (${exp.value})`);
  }
}

/** Replace=true drops the attribute's old values first; values are a set, so repeats collapse. */
function applyPut(item: Attributes, attributes: PutAttribute[]): Attributes {
  for (const a of attributes) if (a.replace) item.delete(a.name);
  for (const a of attributes) {
    let values = item.get(a.name);
    if (!values) item.set(a.name, (values = new Set()));
    values.add(a.value);
  }
  return item;
}

function applyDelete(item: Attributes, attributes: DeleteAttribute[]): Attributes {
  for (const a of attributes) {
    if (a.value === undefined) {
      item.delete(a.name);
      continue;
    }
    const values = item.get(a.name);
    values?.delete(a.value);
    if (values && values.size === 0) item.delete(a.name);
  }
  return item;
}

function checkPairs(itemNameText: string, item: Attributes): void {
  const n = pairCount(item);
  if (n > LIMITS.pairsPerItem) {
    throw new SdbError('NumberItemAttributesExceeded', `Too many attributes in item (${itemNameText}): ${n} name-value pairs; the maximum is ${LIMITS.pairsPerItem}.`);
  }
}

function rejectExpected(params: Params, action: string): void {
  if (Object.keys(params).some((k) => k.startsWith('Expected.'))) {
    throw new SdbError('InvalidParameterCombination', `${action} does not support Expected conditions.`);
  }
}

function encodeListToken(lastDomain: string): string {
  return Buffer.from(JSON.stringify({ v: 1, after: lastDomain }), 'utf8').toString('base64');
}

function decodeListToken(token: string): string {
  try {
    const body = JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as { v?: number; after?: unknown };
    if (body && body.v === 1 && typeof body.after === 'string') return body.after;
  } catch {
    // fall through
  }
  throw new SdbError('InvalidNextToken', 'The specified next token is not valid.');
}

export const operations: Record<string, Operation> = {
  CreateDomain(ctx, params) {
    const name = required(params, 'DomainName');
    if (!DOMAIN_NAME.test(name)) {
      throw invalidParameter('DomainName', name, "It must be 3-255 characters long and contain only a-z, A-Z, 0-9, '_', '-' and '.'.");
    }
    if (!ctx.db.domain(name) && ctx.db.domains.size >= LIMITS.domains) {
      throw new SdbError('NumberDomainsExceeded', `The domain limit was exceeded (${LIMITS.domains} domains).`);
    }
    ctx.db.createDomain(name);
    return { boxUsage: BOX_USAGE.domain, mutated: true };
  },

  DeleteDomain(ctx, params) {
    ctx.db.deleteDomain(required(params, 'DomainName'));
    return { boxUsage: BOX_USAGE.domain, mutated: true };
  },

  ListDomains(ctx, params) {
    let max: number = LIMITS.maxDomainsPerList;
    if (params.MaxNumberOfDomains !== undefined) {
      max = Number(params.MaxNumberOfDomains);
      if (!/^\d+$/.test(params.MaxNumberOfDomains) || max < 1 || max > LIMITS.maxDomainsPerList) {
        throw invalidParameter('MaxNumberOfDomains', params.MaxNumberOfDomains, `MaxNumberOfDomains must be between 1 and ${LIMITS.maxDomainsPerList}.`);
      }
    }
    const after = params.NextToken ? decodeListToken(params.NextToken) : undefined;
    const names = [...ctx.db.domains.keys()].sort().filter((n) => after === undefined || n > after);
    const page = names.slice(0, max);
    let result = page.map((n) => `<DomainName>${n}</DomainName>`).join('');
    if (names.length > page.length) result += `<NextToken>${encodeListToken(page[page.length - 1])}</NextToken>`;
    return { result, boxUsage: BOX_USAGE.light, mutated: false };
  },

  DomainMetadata(ctx, params) {
    const domain = existingDomain(ctx, params);
    let itemNamesBytes = 0;
    let valueCount = 0;
    let valuesBytes = 0;
    const attributeNames = new Set<string>();
    for (const [name, attrs] of domain.items) {
      itemNamesBytes += Buffer.byteLength(name);
      for (const [attr, values] of attrs) {
        attributeNames.add(attr);
        valueCount += values.size;
        for (const v of values) valuesBytes += Buffer.byteLength(v);
      }
    }
    let namesBytes = 0;
    for (const n of attributeNames) namesBytes += Buffer.byteLength(n);
    const result =
      `<ItemCount>${domain.items.size}</ItemCount><ItemNamesSizeBytes>${itemNamesBytes}</ItemNamesSizeBytes>` +
      `<AttributeNameCount>${attributeNames.size}</AttributeNameCount><AttributeNamesSizeBytes>${namesBytes}</AttributeNamesSizeBytes>` +
      `<AttributeValueCount>${valueCount}</AttributeValueCount><AttributeValuesSizeBytes>${valuesBytes}</AttributeValuesSizeBytes>` +
      `<Timestamp>${Math.floor(ctx.now() / 1000)}</Timestamp>`;
    return { result, boxUsage: BOX_USAGE.light, mutated: false };
  },

  PutAttributes(ctx, params) {
    const domain = existingDomain(ctx, params);
    const name = itemName(params);
    const attributes = putAttributes(params);
    if (attributes.length === 0) throw missingParameter('Attribute.1.Name');
    if (attributes.length > LIMITS.attributesPerPut) {
      throw new SdbError('NumberSubmittedAttributesExceeded', `Too many attributes in one call (${attributes.length}; the maximum is ${LIMITS.attributesPerPut}).`);
    }
    const condition = expected(params);
    checkExpected(domain.items.get(name), condition);
    const next = applyPut(ctx.db.itemForUpdate(domain, name), attributes);
    checkPairs(name, next);
    ctx.db.writeItem(domain, name, next);
    return { boxUsage: BOX_USAGE.put + attributes.length * BOX_USAGE.perAttribute, mutated: true };
  },

  BatchPutAttributes(ctx, params) {
    const domain = existingDomain(ctx, params);
    rejectExpected(params, 'BatchPutAttributes');
    const groups = indexed(params, 'Item');
    if (groups.length === 0) throw missingParameter('Item.1.ItemName');
    if (groups.length > LIMITS.itemsPerBatch) {
      throw new SdbError('NumberSubmittedItemsExceeded', `Too many items in one call (${groups.length}; the maximum is ${LIMITS.itemsPerBatch}).`);
    }
    const seen = new Set<string>();
    const writes: Array<[string, Attributes]> = [];
    let attributeCount = 0;
    for (const [n, group] of groups) {
      const name = itemName(group, 'ItemName');
      if (seen.has(name)) throw new SdbError('DuplicateItemName', `Item (${name}) was specified more than once.`);
      seen.add(name);
      const attributes = putAttributes(group, 'Attribute');
      if (attributes.length === 0) throw missingParameter(`Item.${n}.Attribute.1.Name`);
      if (attributes.length > LIMITS.attributesPerPut) {
        throw new SdbError('NumberSubmittedAttributesExceeded', `Too many attributes for item (${name}) (${attributes.length}; the maximum is ${LIMITS.attributesPerPut}).`);
      }
      attributeCount += attributes.length;
      const next = applyPut(ctx.db.itemForUpdate(domain, name), attributes);
      checkPairs(name, next);
      writes.push([name, next]);
    }
    // All items were validated before any is written: the batch applies entirely or not at all.
    for (const [name, next] of writes) ctx.db.writeItem(domain, name, next);
    return { boxUsage: BOX_USAGE.put * groups.length + attributeCount * BOX_USAGE.perAttribute, mutated: true };
  },

  GetAttributes(ctx, params) {
    const domain = existingDomain(ctx, params);
    const name = itemName(params);
    const consistent = optionalBoolean(params, 'ConsistentRead') ?? false;
    const wanted = indexed(params, 'AttributeName').map(([, g]) => g['']);
    const filter = wanted.length > 0 ? new Set(wanted) : undefined;
    const item = ctx.db.readItem(domain, name, { consistent });
    let result = '';
    for (const [attr, values] of item ?? []) {
      if (filter && !filter.has(attr)) continue;
      for (const v of values) result += attributeXml(attr, v);
    }
    return { result, boxUsage: BOX_USAGE.get, mutated: false };
  },

  DeleteAttributes(ctx, params) {
    const domain = existingDomain(ctx, params);
    const name = itemName(params);
    const attributes = deleteAttributes(params);
    const condition = expected(params);
    const current = domain.items.get(name);
    checkExpected(current, condition);
    if (!current) return { boxUsage: BOX_USAGE.put, mutated: false };
    const next = attributes.length === 0 ? undefined : applyDelete(ctx.db.itemForUpdate(domain, name), attributes);
    ctx.db.writeItem(domain, name, next);
    return { boxUsage: BOX_USAGE.put + attributes.length * BOX_USAGE.perAttribute, mutated: true };
  },

  BatchDeleteAttributes(ctx, params) {
    const domain = existingDomain(ctx, params);
    rejectExpected(params, 'BatchDeleteAttributes');
    const groups = indexed(params, 'Item');
    if (groups.length === 0) throw missingParameter('Item.1.ItemName');
    if (groups.length > LIMITS.itemsPerBatch) {
      throw new SdbError('NumberSubmittedItemsExceeded', `Too many items in one call (${groups.length}; the maximum is ${LIMITS.itemsPerBatch}).`);
    }
    const deletes = groups.map(([, group]) => ({ name: itemName(group, 'ItemName'), attributes: deleteAttributes(group, 'Attribute') }));
    let mutated = false;
    for (const d of deletes) {
      if (!domain.items.has(d.name)) continue;
      const next = d.attributes.length === 0 ? undefined : applyDelete(ctx.db.itemForUpdate(domain, d.name), d.attributes);
      ctx.db.writeItem(domain, d.name, next);
      mutated = true;
    }
    return { boxUsage: BOX_USAGE.put * groups.length, mutated };
  },

  Select(ctx, params) {
    const expression = required(params, 'SelectExpression');
    const consistent = optionalBoolean(params, 'ConsistentRead') ?? false;
    const query = parseSelect(expression);
    const domain = ctx.db.domain(query.domain);
    if (!domain) throw noSuchDomain();
    const page = executeSelect(query, ctx.db.readItems(domain, { consistent }), params.NextToken || undefined);
    let result = '';
    for (const item of page.items) {
      result += `<Item>${encodedElement('Name', item.name)}${item.attributes.map((a) => attributeXml(a.name, a.value)).join('')}</Item>`;
    }
    if (page.nextToken) result += `<NextToken>${page.nextToken}</NextToken>`;
    return { result, boxUsage: BOX_USAGE.selectBase + domain.items.size * BOX_USAGE.perItemScanned, mutated: false };
  },
};
