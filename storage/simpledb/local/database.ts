// The in-memory data model of the local endpoint: domain → item → attribute name → set of values.
// Stale reads (a fault switch) are modelled per item: each write remembers the item as it was just
// before, for `staleWindowMs`; an eventually consistent read inside that window sees the old
// version, a consistent read always sees the latest.

export type Attributes = Map<string, Set<string>>;

export interface Domain {
  createdAtMs: number;
  items: Map<string, Attributes>;
  /** Item state before its most recent write (undefined = the item did not exist), until `untilMs`. */
  previous: Map<string, { attributes: Attributes | undefined; untilMs: number }>;
}

export interface ReadOptions {
  consistent: boolean;
}

/** Serialised form for `--data FILE` (version 1). */
export interface DatabaseFile {
  version: 1;
  domains: Record<string, { created_at_ms: number; items: Record<string, Record<string, string[]>> }>;
}

export interface DatabaseOptions {
  now: () => number;
  /** When true, eventually consistent reads see items as they were before their latest write. */
  staleReads: () => boolean;
  staleWindowMs: () => number;
}

function cloneAttributes(a: Attributes): Attributes {
  return new Map([...a].map(([k, v]) => [k, new Set(v)]));
}

export function pairCount(a: Attributes | undefined): number {
  if (!a) return 0;
  let n = 0;
  for (const values of a.values()) n += values.size;
  return n;
}

export class Database {
  readonly domains = new Map<string, Domain>();

  constructor(private readonly opts: DatabaseOptions) {}

  createDomain(name: string): void {
    if (!this.domains.has(name)) this.domains.set(name, { createdAtMs: this.opts.now(), items: new Map(), previous: new Map() });
  }

  deleteDomain(name: string): void {
    this.domains.delete(name);
  }

  domain(name: string): Domain | undefined {
    return this.domains.get(name);
  }

  /** The item as a read sees it (a copy is not made; callers must not mutate). */
  readItem(domain: Domain, itemName: string, read: ReadOptions): Attributes | undefined {
    if (!read.consistent && this.opts.staleReads()) {
      const prev = domain.previous.get(itemName);
      if (prev && prev.untilMs > this.opts.now()) return prev.attributes;
    }
    return domain.items.get(itemName);
  }

  /** Every item a read sees, in no particular order. */
  *readItems(domain: Domain, read: ReadOptions): Iterable<{ name: string; attributes: Attributes }> {
    const stale = !read.consistent && this.opts.staleReads();
    const now = this.opts.now();
    for (const [name, attributes] of domain.items) {
      const prev = stale ? domain.previous.get(name) : undefined;
      if (prev && prev.untilMs > now) {
        if (prev.attributes) yield { name, attributes: prev.attributes };
      } else {
        yield { name, attributes };
      }
    }
    if (stale) {
      // Items deleted within the window are still visible to stale readers.
      for (const [name, prev] of domain.previous) {
        if (!domain.items.has(name) && prev.attributes && prev.untilMs > now) yield { name, attributes: prev.attributes };
      }
    }
  }

  /** Replaces an item (undefined or empty = delete), remembering the version before for stale reads. */
  writeItem(domain: Domain, itemName: string, next: Attributes | undefined): void {
    const before = domain.items.get(itemName);
    const now = this.opts.now();
    for (const [name, prev] of domain.previous) if (prev.untilMs <= now) domain.previous.delete(name);
    // Only writes made while the switch is on are remembered: turning it on affects later writes.
    if (this.opts.staleReads()) {
      domain.previous.set(itemName, { attributes: before ? cloneAttributes(before) : undefined, untilMs: now + this.opts.staleWindowMs() });
    }
    if (!next || next.size === 0) domain.items.delete(itemName);
    else domain.items.set(itemName, next);
  }

  /** A copy of the latest version of an item, for a write to modify. */
  itemForUpdate(domain: Domain, itemName: string): Attributes {
    const current = domain.items.get(itemName);
    return current ? cloneAttributes(current) : new Map();
  }

  clear(): void {
    this.domains.clear();
  }

  toFile(): DatabaseFile {
    const file: DatabaseFile = { version: 1, domains: {} };
    for (const [name, d] of this.domains) {
      const items: Record<string, Record<string, string[]>> = {};
      for (const [itemName, attrs] of d.items) {
        items[itemName] = Object.fromEntries([...attrs].map(([k, v]) => [k, [...v]]));
      }
      file.domains[name] = { created_at_ms: d.createdAtMs, items };
    }
    return file;
  }

  loadFile(file: DatabaseFile): void {
    if (!file || file.version !== 1 || typeof file.domains !== 'object' || file.domains === null) {
      throw new Error('not a simpledb-local data file (expected {"version":1,"domains":{...}})');
    }
    const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
    this.domains.clear();
    for (const [name, d] of Object.entries(file.domains)) {
      if (!isObject(d) || (d.items !== undefined && !isObject(d.items))) throw new Error(`not a simpledb-local data file: domain "${name}" is not {"created_at_ms":..,"items":{...}}`);
      const items = new Map<string, Attributes>();
      for (const [itemName, attrs] of Object.entries(d.items ?? {})) {
        if (!isObject(attrs) || !Object.values(attrs).every((v) => Array.isArray(v) && v.every((x) => typeof x === 'string'))) {
          throw new Error(`not a simpledb-local data file: item "${itemName}" of domain "${name}" is not {"<attribute>":["<value>",...]}`);
        }
        items.set(itemName, new Map(Object.entries(attrs as Record<string, string[]>).map(([k, v]) => [k, new Set(v)])));
      }
      this.domains.set(name, { createdAtMs: Number(d.created_at_ms) || this.opts.now(), items, previous: new Map() });
    }
  }
}
