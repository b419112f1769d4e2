// The SimpleDB Store, for fleets running several stateless API replicas.
//
// Layout: `<prefix>_containers_<n>` holds container records (item name = container id), sharded by
// the id's first 32 bits (Docker ids are SHA-256 output, so this is a uniform hash, and every
// ≥12-character prefix lands in exactly one shard); `<prefix>_transitions` holds history, and
// `<prefix>_hosts` one item per instance. Values are encoded by ./encoding.ts.
//
// Concurrency: every record and host item carries `ver`; each write is a PutAttributes with
// `Expected ver = <the version read>` (or "ver does not exist" for a new item). When another replica
// wrote first (ConditionalCheckFailed) the item is re-read consistently and the decision is made
// again from the fresh record, so the record's seq guard (storage/records.ts, the same rules as
// SQLite) holds across replicas: replays and concurrent writers never regress a record. History
// items have deterministic names (host + seq for transitions, the retired version for retirements,
// a content hash otherwise), so a replayed write lands on the same item instead of adding a row.
//
// Consistency: point lookups and the reads behind every write are ConsistentRead; listings, host
// lists and counts are eventually consistent. A read cache (./cache.ts) answers repeated lookups and
// is invalidated by this process's writes, so another replica's write may show up to its TTL late.
//
// No transactions: every history row is written before the record change it describes, under a
// name fixed by its content (snapshots) or by host and seq (transitions), so a report that fails
// part-way and is sent again writes the same rows again, and none is missing (docs/simpledb.md).
import { createHash, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import {
  CONTAINER_ID,
  CONTAINER_ID_PREFIX,
  isWellFormedText,
  LIFECYCLE_STATES,
  TASK_ARN,
  TASK_ID,
  taskIdFromArn,
  type HostIdentity,
  type HostSnapshot,
  type LifecycleState,
  type SnapshotResult,
  type Transition,
  type TransitionBatch,
} from '../../wire/index.js';
import { HistoryBound } from '../history-bound.js';
import { goneRecord, nextRecord, normaliseIso, otherLegacyKeys, recordChanged, removalEndsRecord } from '../records.js';
import {
  InvalidCursorError,
  PENDING_EVENT_MS,
  sameTransition,
  StoreUnavailableError,
  type AppliedTransitions,
  type ContainerFilter,
  type ContainerLookup,
  type ContainerRecord,
  type HostRecord,
  type HostStateCount,
  type LegacyEvent,
  type LegacySnapshot,
  type Page,
  type PageRequest,
  type ForgetHostResult,
  type RetiredHosts,
  type SeqConflict,
  type StateCount,
  type Store,
  type StoreHealth,
  type TransitionRecord,
} from '../store.js';
import { ReadCache } from './cache.js';
import { SimpleDbError, SimpleDbLimitError, type Attribute, type Item, type ReplaceableAttribute, type SimpleDbClient } from './client.js';
import { attributeValue, documentAttributes, indexValue, padNumber, readDocument } from './encoding.js';
import type { SimpleDbStoreMetrics } from './metrics.js';
import { buildSelect, ITEM_NAME, MAX_PREDICATE_VALUES, MAX_SELECT_LIMIT, prefixUpperBound, type Predicate } from './select.js';

/** How many candidates an ambiguous prefix lists at most (as SQLite). */
export const MAX_CANDIDATES = 20;
const MAX_PAGE = 1000;
const LIVE_STATES: readonly LifecycleState[] = ['pending', 'running', 'stopping', 'stopped'];
/** How far opening looks for container domains (checkShardCount): --store takes at most 100 shards (config/store-url.ts). */
const MAX_SHARDS_PROBED = 100;
/** Records per container domain checked against the shard count at open (checkShardCount); each misplaced one is found with odds of at least 1/2. */
const SHARD_CHECK_SAMPLE = 20;
/** Conditional-write attempts before a hot item is reported as unavailable. */
const MAX_WRITE_ATTEMPTS = 8;

export interface SimpleDbStoreOptions {
  client: SimpleDbClient;
  prefix: string;
  shards: number;
  /** Cache TTL; 0 disables the cache. */
  cacheTtlMs: number;
  metrics?: SimpleDbStoreMetrics;
  logger?: Logger;
  /** Requests in flight per store operation (default 8). */
  concurrency?: number;
  /** Monotonic ms clock for the cache (tests). */
  nowMs?: () => number;
  /** Rows of history kept per container (default DEFAULT_HISTORY_LIMIT; 0 keeps all): storage/history-bound.ts. */
  historyLimit?: number;
}

export interface SimpleDbDomains {
  containers: string[];
  transitions: string;
  hosts: string;
}

export function domainNames(prefix: string, shards: number): SimpleDbDomains {
  return {
    containers: Array.from({ length: shards }, (_, n) => `${prefix}_containers_${n}`),
    transitions: `${prefix}_transitions`,
    hosts: `${prefix}_hosts`,
  };
}

interface Versioned<T> {
  record: T;
  ver: string;
}

/** What a write decision returns: the new record, or null to leave the item as it is. */
type Decide = (existing: ContainerRecord | undefined) => ContainerRecord | null;

interface HistoryRow {
  itemName: string;
  record: TransitionRecord;
}

// --- cursors ---------------------------------------------------------------------------------

const CURSOR_PREFIX = 'sdb1:';

export function encodeCursor(lastContainerId: string): string {
  return Buffer.from(CURSOR_PREFIX + lastContainerId, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): string {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(cursor)) throw new InvalidCursorError(cursor);
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const id = text.slice(CURSOR_PREFIX.length);
  if (!text.startsWith(CURSOR_PREFIX) || !CONTAINER_ID.test(id) || encodeCursor(id) !== cursor) throw new InvalidCursorError(cursor);
  return id;
}

/** Where a scan of the container shards continues: a shard, SimpleDB's NextToken within it, and the select's limit. */
interface ScanPosition {
  shard: number;
  token: string | null;
  limit: number;
}

const SCAN_CURSOR_PREFIX = 'sdbscan1:';

function encodeScanCursor(at: ScanPosition): string {
  return Buffer.from(SCAN_CURSOR_PREFIX + JSON.stringify([at.shard, at.token, at.limit]), 'utf8').toString('base64url');
}

/** A scan cursor this store produced for `shards` shards; anything else is an InvalidCursorError. */
function decodeScanCursor(cursor: string, shards: number): ScanPosition {
  // NextTokens are opaque and can run to a few hundred characters.
  if (!/^[A-Za-z0-9_-]{1,8192}$/.test(cursor)) throw new InvalidCursorError(cursor);
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  let parsed: unknown;
  try {
    parsed = text.startsWith(SCAN_CURSOR_PREFIX) ? JSON.parse(text.slice(SCAN_CURSOR_PREFIX.length)) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || parsed.length !== 3) throw new InvalidCursorError(cursor);
  const [shard, token, limit] = parsed as unknown[];
  const valid =
    Number.isInteger(shard) && (shard as number) >= 0 && (shard as number) < shards &&
    (token === null || (typeof token === 'string' && token.length > 0)) &&
    Number.isInteger(limit) && (limit as number) >= 1 && (limit as number) <= MAX_SELECT_LIMIT;
  if (!valid) throw new InvalidCursorError(cursor);
  return { shard: shard as number, token: token as string | null, limit: limit as number };
}

// --- helpers ---------------------------------------------------------------------------------

/** The equality predicates of a listing filter, on the index attributes. */
function filterPredicates(filter: ContainerFilter): Predicate[] {
  const where: Predicate[] = [];
  for (const key of ['cluster', 'instance_id', 'state', 'task_family'] as const) {
    const v = filter[key];
    if (v !== undefined) where.push({ attr: key, op: '=', value: indexValue(v) });
  }
  return where;
}

/** How often a retired host is checked for records left, so that it can be forgotten (retireSilentHosts). */
const FORGET_CHECK_MS = 60 * 60_000;

/**
 * A history row without a host sequence number (a snapshot's or the server's own), named by its
 * content: writing the same row twice, as a retried report does, leaves one item.
 */
function unsequencedHistoryRow(record: TransitionRecord): HistoryRow {
  return { itemName: `x:${createHash('sha256').update(JSON.stringify(record)).digest('hex')}`, record };
}

/**
 * The row of a record's retirement (retireSilentHosts), named by the record version it retires
 * rather than by its content: its time is the retiring replica's clock, so two replicas' passes
 * racing on one record, or a pass repeated after a failure, would each leave a row of their own.
 * Every pass that retires this version writes the same item; its time is the last writer's.
 */
function retirementHistoryRow(record: TransitionRecord, retiredVer: string): HistoryRow {
  const { at: _, ...change } = record;
  return { itemName: `x:${createHash('sha256').update(JSON.stringify([change, retiredVer])).digest('hex')}`, record };
}

/**
 * The history row of an original agent's event, named by its content and key: the same event written
 * on arrival (recordLegacyEvent) or from pending (attachPendingEvents) lands on one item.
 */
function legacyEventRow(record: TransitionRecord, eventId: string): HistoryRow {
  return { itemName: `e:${createHash('sha256').update(JSON.stringify([record, eventId])).digest('hex')}`, record };
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** The history item of a host's transition: named by (host, seq), so a replayed write lands on it again. */
function transitionItemName(instanceId: string, seq: number): string {
  return `s:${instanceId}:${padNumber(seq)}`;
}

/** A history item's place in its container's history: `at`, then the order this process wrote it in. */
function historyOrderKey(item: { attributes: Attribute[] }): string {
  return `${attributeValue(item.attributes, 'at') ?? ''}|${attributeValue(item.attributes, 'stamp') ?? ''}`;
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * A lone UTF-16 surrogate cannot be sent to SimpleDB (it has no UTF-8 form), so no stored value
 * can hold one: a lookup for such a string finds nothing without asking.
 */
function storable(...values: Array<string | null | undefined>): boolean {
  return values.every((v) => v === null || v === undefined || isWellFormedText(v));
}

function decodeIndex(value: string | undefined): string | null {
  return value === undefined || value === '-' ? null : value.slice(1);
}

function isConditionalFailure(err: unknown): boolean {
  return err instanceof SimpleDbError && (err.code === 'ConditionalCheckFailed' || err.code === 'AttributeDoesNotExist');
}

function byContainerId(a: ContainerRecord, b: ContainerRecord): number {
  return a.container_id < b.container_id ? -1 : a.container_id > b.container_id ? 1 : 0;
}

/**
 * A new item version: random, so never one an item had before. A counter restarted at 1 when a
 * purged container came back, and another replica still holding the old item's version 1 then
 * wrote over the new item. Random also lets a writer recognise its own write when SimpleDB applied
 * it but answered an error (updateContainer).
 */
function newVer(): string {
  return randomBytes(8).toString('hex');
}

function expectedVer(ver: string | undefined) {
  return ver === undefined ? ({ name: 'ver', exists: false } as const) : { name: 'ver', value: ver };
}

// --- the store -------------------------------------------------------------------------------

export class SimpleDbStore implements Store {
  readonly backend = 'simpledb' as const;
  readonly domains: SimpleDbDomains;
  readonly cache: ReadCache;
  private readonly client: SimpleDbClient;
  private readonly concurrency: number;
  private readonly logger?: Logger;
  /**
   * The last version of each record this process wrote. A write starts from it instead of a read:
   * the conditional put catches any newer version (then the item is re-read), and a decision to
   * leave the item alone is only ever taken on a fresh read. Saves one request per record write.
   */
  private readonly written = new LRUCache<string, Versioned<ContainerRecord>>({ max: 10_000 });
  /** Orders history rows with equal `at` by when this process wrote them. */
  private stampCounter = 0;
  /**
   * Retiring silent hosts, remembered by this process to spare Selects on every purge interval
   * until the retention has purged a retired host's records: the last report time of each host
   * this process retired (its live records need no new Select until it reports again), and when a
   * retired host was last checked for records left: again once this process purged some of them,
   * or after FORGET_CHECK_MS (another replica may have purged them).
   */
  private readonly retiredAtReport = new Map<string, string>();
  private readonly forgetCheckedAt = new Map<string, number>();
  private readonly historyBound: HistoryBound;
  private closed = false;

  constructor(private readonly opts: SimpleDbStoreOptions) {
    this.client = opts.client;
    this.domains = domainNames(opts.prefix, opts.shards);
    this.concurrency = opts.concurrency ?? 8;
    this.logger = opts.logger;
    this.cache = new ReadCache({ ttlMs: opts.cacheTtlMs, metrics: opts.metrics, ...(opts.nowMs ? { nowMs: opts.nowMs } : {}) });
    this.historyBound = new HistoryBound(opts.historyLimit);
  }

  /** Checks the shard count against the domains there, then creates missing domains (CreateDomain is idempotent) or checks they all exist. */
  async ensureDomains(create: boolean): Promise<void> {
    const all = [...this.domains.containers, this.domains.transitions, this.domains.hosts];
    await this.run('open', async () => {
      await this.checkShardCount();
      if (create) {
        await mapLimit(all, this.concurrency, (d) => this.client.createDomain(d));
        return;
      }
      const existing = new Set(await this.client.listAllDomains());
      const missing = all.filter((d) => !existing.has(d));
      if (missing.length > 0) {
        throw new StoreUnavailableError(`SimpleDB domains missing at ${this.client.endpoint.origin}: ${missing.join(', ')} (create them, or add create_domains=true to --store)`);
      }
    });
  }

  /**
   * A record lives in the shard its id maps to (shardOf), so the shard count is fixed once records
   * exist: with another count, lookups and writes go to other domains, existing records are not
   * found and are written a second time. A store whose container domains hold records under another
   * count is refused at open; domains created empty (an interrupted first start) are not counted.
   */
  private async checkShardCount(): Promise<void> {
    const itemsIn = async (domain: string): Promise<number | undefined> => {
      try {
        return (await this.client.domainMetadata(domain)).itemCount;
      } catch (err) {
        if (err instanceof SimpleDbError && err.code === 'NoSuchDomain') return undefined;
        throw err;
      }
    };
    const shards = this.opts.shards;
    const configured = await mapLimit(this.domains.containers, this.concurrency, itemsIn);
    let found = configured.filter((items) => items !== undefined).length;
    let beyondHeld = false;
    // Domains past the configured count: a store created with more shards.
    for (let n = shards; n < MAX_SHARDS_PROBED; n++) {
      const items = await itemsIn(`${this.opts.prefix}_containers_${n}`);
      if (items === undefined) break;
      found = n + 1;
      beyondHeld ||= items > 0;
    }
    const configuredHeld = configured.some((items) => (items ?? 0) > 0);
    const missingWhileHeld = configured.includes(undefined) && configuredHeld;
    // Domains past the configured count that hold nothing (a store with more shards whose last ones
    // are still empty): the records in the others were placed by that larger count, and most are in
    // the wrong domain for this one. A few of each are looked at: all in place means they are.
    const misplaced = !beyondHeld && !missingWhileHeld && found > shards && configuredHeld && (await this.someRecordMisplaced());
    if (beyondHeld || missingWhileHeld || misplaced) {
      throw new StoreUnavailableError(
        `the SimpleDB store "${this.opts.prefix}" holds records in ${found} container shard${found === 1 ? '' : 's'}, but --store says shards=${shards}: ` +
          `a record's shard is its id modulo the shard count, fixed when the store is created, so start with shards=${found} (docs/simpledb.md)`,
      );
    }
  }

  /** Whether a few records of each container domain include one this shard count would look for elsewhere. */
  private async someRecordMisplaced(): Promise<boolean> {
    const samples = await mapLimit(this.domains.containers, this.concurrency, (domain) =>
      this.client.selectAll(buildSelect({ output: 'itemName()', domain, limit: SHARD_CHECK_SAMPLE }), { consistentRead: true, maxItems: SHARD_CHECK_SAMPLE }),
    );
    return samples.some((items, i) => items.some((item) => this.shardOf(item.name) !== this.domains.containers[i]));
  }

  shardOf(containerIdOrPrefix: string): string {
    return this.domains.containers[Number.parseInt(containerIdOrPrefix.slice(0, 8), 16) % this.opts.shards];
  }

  // --- writes --------------------------------------------------------------------------------

  async applyTransitions(batch: TransitionBatch, receivedAt: Date): Promise<AppliedTransitions> {
    return this.run('applyTransitions', async () => {
      const host = batch.host;
      const receivedIso = receivedAt.toISOString();
      const hostItem = await this.readHost(host.instance_id);
      let lastSeq = hostItem?.record.last_seq ?? 0;
      const replays: Transition[] = [];
      const accepted = [];
      for (const t of [...batch.transitions].sort((a, b) => a.seq - b.seq)) {
        if (t.seq <= lastSeq) {
          replays.push(t);
          continue;
        }
        lastSeq = t.seq;
        accepted.push(t);
      }
      // History first: its item names are fixed by (host, seq), so a crash before the host's
      // last_seq moves replays onto the same items.
      await this.putHistory(
        accepted.map((t) => ({
          itemName: transitionItemName(host.instance_id, t.seq),
          record: { container_id: t.container_id, from: t.from, to: t.to, at: normaliseIso(t.at), host: host.instance_id, seq: t.seq, reason: t.reason },
        })),
        receivedAt,
      );
      // After the history it wrote, as on SQLite: a seq repeated within the batch meets its first copy.
      const conflicting = await this.seqConflicts(host.instance_id, replays);
      const byContainer = new Map<string, typeof accepted>();
      for (const t of accepted) {
        const list = byContainer.get(t.container.container_id) ?? [];
        list.push(t);
        byContainer.set(t.container.container_id, list);
      }
      await mapLimit([...byContainer], this.concurrency, ([id, transitions]) =>
        this.updateContainer(id, (existing) => {
          let record = existing;
          for (const t of transitions) {
            // A later snapshot already holds this container's newer state: history only.
            if (record && record.instance_id === host.instance_id && record.seq >= t.seq) continue;
            record = nextRecord(record, t.container, { host, state: t.to, seq: t.seq, eventAt: normaliseIso(t.at), receivedAt: receivedIso });
          }
          return record === existing ? null : (record ?? null);
        }),
      );
      const claimedBefore = await this.writeHost(host, { receivedAt: receivedIso, lastSeq, snapshotAt: null, reporter: 'reconciler' }, hostItem);
      // Another request (a retry reaching another replica) may have moved the host past some of
      // these seqs since it was read: it applied them (idempotently, the same items), so they count
      // as its, and every seq is counted applied by one request only, as on SQLite.
      const applied = accepted.filter((t) => t.seq > claimedBefore).length;
      return {
        applied,
        duplicates: replays.length - conflicting.length + accepted.length - applied,
        conflicts: conflicting.length,
        acked_seq: Math.max(lastSeq, claimedBefore),
        conflicting,
      };
    });
  }

  /**
   * The replayed transitions (seq at or below the host's last_seq) that history holds as a
   * different transition under their seq (sameTransition). Only replays are looked up, 20 item
   * names to a select; a seq whose history is purged has no item and stays a duplicate.
   */
  private async seqConflicts(instanceId: string, replays: readonly Transition[]): Promise<SeqConflict[]> {
    if (replays.length === 0) return [];
    const names = [...new Set(replays.map((t) => transitionItemName(instanceId, t.seq)))];
    const items = await mapLimit(chunk(names, MAX_PREDICATE_VALUES), this.concurrency, (part) =>
      this.client.selectAll(buildSelect({ output: '*', domain: this.domains.transitions, where: [{ attr: ITEM_NAME, op: 'in', values: part }] }), { consistentRead: true }),
    );
    const stored = new Map(items.flat().map((i) => [i.name, readDocument<TransitionRecord>(i.attributes)]));
    const conflicting: SeqConflict[] = [];
    for (const t of replays) {
      const row = stored.get(transitionItemName(instanceId, t.seq));
      if (row && !sameTransition(row, t)) {
        conflicting.push({ seq: t.seq, stored: { container_id: row.container_id, from: row.from, to: row.to }, reported: { container_id: t.container_id, from: t.from, to: t.to } });
      }
    }
    return conflicting;
  }

  async replaceSnapshot(snapshot: HostSnapshot, receivedAt: Date): Promise<SnapshotResult> {
    const takenAt = normaliseIso(snapshot.taken_at);
    const entries = snapshot.containers.map((container) => ({ container, eventAt: takenAt, taskIdRaw: null, legacyKey: null, sampledAt: null }));
    return this.run('replaceSnapshot', () => this.replaceHost(snapshot.host, snapshot.seq, entries, receivedAt.toISOString(), takenAt, 'reconciler'));
  }

  async replaceLegacySnapshot(snapshot: LegacySnapshot): Promise<SnapshotResult> {
    const receivedAt = normaliseIso(snapshot.received_at);
    const entries = snapshot.containers.map((container) => {
      const sampledAt = normaliseIso(container.sampled_at);
      return { container, eventAt: sampledAt, taskIdRaw: container.task_id_raw, legacyKey: container.legacy_key, sampledAt };
    });
    // Legacy reports carry no sequence numbers: seq 0, so records a reconciler owns (seq > 0) are skipped.
    return this.run('replaceLegacySnapshot', () => this.replaceHost(snapshot.host, 0, entries, receivedAt, receivedAt, 'legacy'));
  }

  private async replaceHost(
    host: HostIdentity,
    seq: number,
    entries: Array<{ container: HostSnapshot['containers'][number] | LegacySnapshot['containers'][number]; eventAt: string; taskIdRaw: string | null; legacyKey: string | null; sampledAt: string | null }>,
    receivedAt: string,
    takenAt: string,
    reporter: HostRecord['reporter'],
  ): Promise<SnapshotResult> {
    const result: SnapshotResult = { upserted: 0, gone: 0, skipped: 0 };
    const writtenAt = new Date(receivedAt);
    /** Legacy keys new to their container (key → container id): events about them may be pending. */
    const newKeys = new Map<string, string>();
    // This host's live records in one select per shard: the snapshot's entries mostly are these,
    // and the absent ones are what becomes gone.
    const live = new Map(
      (await this.selectContainers([{ attr: 'instance_id', op: '=', value: indexValue(host.instance_id) }, { attr: 'state', op: 'in', values: LIVE_STATES.map(indexValue) }], true)).map((v) => [
        v.record.container_id,
        v,
      ]),
    );
    // Events about keys new to their container are written before the records that bring the keys,
    // as history always is: a map that fails after its records and is sent again finds no key new,
    // and its events waited until they expired. Asked again after the records (newKeys), for events
    // that arrived meanwhile. A reconciler's live record skips the map entry, and its events wait.
    const keysBefore = new Map<string, string>();
    for (const { container, legacyKey } of entries) {
      const existing = live.get(container.container_id)?.record;
      if (legacyKey !== null && existing?.legacy_key !== legacyKey && !(existing && existing.seq > seq)) keysBefore.set(legacyKey, container.container_id);
    }
    if (keysBefore.size > 0) await this.attachPendingEvents(keysBefore, host.instance_id);
    const present = new Set<string>();
    await mapLimit(entries, this.concurrency, async ({ container, eventAt, taskIdRaw, legacyKey, sampledAt }) => {
      present.add(container.container_id);
      let skipped = false;
      const { before, after } = await this.updateContainer(
        container.container_id,
        (existing) => {
          const sameHost = existing !== undefined && existing.instance_id === host.instance_id;
          skipped = sameHost && existing.seq > seq;
          if (skipped) return null;
          return nextRecord(existing, container, { host, state: container.state, seq: sameHost ? Math.max(existing.seq, seq) : seq, eventAt, receivedAt, taskIdRaw, legacyKey, sampledAt });
        },
        live.get(container.container_id),
        (b, next) =>
          b?.record.state === next.state
            ? null
            : unsequencedHistoryRow({ container_id: next.container_id, from: b?.record.state ?? null, to: next.state, at: eventAt, host: host.instance_id, seq: null, reason: 'snapshot' }),
        writtenAt,
      );
      if (skipped || !after) {
        result.skipped++;
        return;
      }
      if (!before || recordChanged(before, after)) result.upserted++;
      if (legacyKey !== null && before?.legacy_key !== legacyKey) newKeys.set(legacyKey, after.container_id);
    });
    const absent = [...live.values()].filter((v) => !present.has(v.record.container_id));
    await mapLimit(absent, this.concurrency, async (item) => {
      let outcome = 'none' as 'gone' | 'skipped' | 'none';
      const { before } = await this.updateContainer(
        item.record.container_id,
        (existing) => {
          outcome = 'none';
          if (!existing || existing.instance_id !== host.instance_id || !LIVE_STATES.includes(existing.state)) return null;
          if (existing.seq > seq) {
            outcome = 'skipped';
            return null;
          }
          outcome = 'gone';
          return goneRecord(existing, seq, receivedAt);
        },
        item,
        (b) => (b ? unsequencedHistoryRow({ container_id: b.record.container_id, from: b.record.state, to: 'gone', at: takenAt, host: host.instance_id, seq: null, reason: 'snapshot' }) : null),
        writtenAt,
      );
      if (outcome === 'skipped') result.skipped++;
      if (outcome === 'gone' && before) result.gone++;
    });
    if (newKeys.size > 0) await this.attachPendingEvents(newKeys, host.instance_id);
    await this.writeHost(host, { receivedAt, lastSeq: 0, snapshotAt: receivedAt, reporter });
    return result;
  }

  /**
   * Writes the pending events (recordLegacyEvent) of keys a legacy map just brought into their
   * containers' history, named as recordLegacyEvent names them (a repeat lands on the same item),
   * then deletes them. Only keys new to their container are asked about: in a map that changes
   * nothing, no request.
   */
  private async attachPendingEvents(keys: Map<string, string>, instanceId: string): Promise<void> {
    const found = (
      await mapLimit(chunk([...keys.keys()], MAX_PREDICATE_VALUES), this.concurrency, (part) =>
        this.client.selectAll(buildSelect({ output: '*', domain: this.domains.transitions, where: [{ attr: 'pending_key', op: 'in', values: part.map(indexValue) }] }), { consistentRead: true }),
      )
    ).flat();
    if (found.length === 0) return;
    const rows: HistoryRow[] = [];
    for (const item of found) {
      const key = decodeIndex(attributeValue(item.attributes, 'pending_key'));
      const containerId = key === null ? undefined : keys.get(key);
      const at = attributeValue(item.attributes, 'pending_at');
      const event = attributeValue(item.attributes, 'event');
      if (!key || !containerId || !at || !event) continue;
      const record: TransitionRecord = { container_id: containerId, from: null, to: null, at, host: attributeValue(item.attributes, 'host') || instanceId, seq: null, reason: `legacy.${event}` };
      rows.push(legacyEventRow(record, key));
    }
    await this.putHistory(rows, new Date());
    for (const part of chunk(found, 25)) await this.client.batchDeleteAttributes(this.domains.transitions, part.map((i) => ({ name: i.name })));
  }

  async recordLegacyEvent(event: LegacyEvent, host: string | null): Promise<void> {
    const at = normaliseIso(event.at);
    if (!storable(event.event_id, host)) return;
    await this.run('recordLegacyEvent', async () => {
      // Events whose key matches no stored record are dropped: history rows belong to a container,
      // and the next report map brings the container anyway.
      const matches = await this.selectContainers([{ attr: 'legacy_key', op: '=', value: indexValue(event.event_id) }], true);
      if (matches.length === 0) {
        // The agent posts an `added` event before the map that brings its key: kept until that map
        // (replaceHost), an hour at most (purgeGone).
        const name = `p:${createHash('sha256').update(JSON.stringify([event.event_id, event.event, at])).digest('hex')}`;
        await this.client.putAttributes(this.domains.transitions, name, [
          { name: 'pending_key', value: indexValue(event.event_id), replace: true },
          { name: 'pending_at', value: at, replace: true },
          { name: 'event', value: event.event, replace: true },
          { name: 'host', value: host ?? '', replace: true },
        ]);
        return;
      }
      // The record seen last, as SQLite's byLegacyKey picks it.
      const target = [...matches].sort((a, b) => (a.record.last_seen < b.record.last_seen ? 1 : a.record.last_seen > b.record.last_seen ? -1 : 0))[0];
      const row = target.record;
      if (event.event === 'removed') {
        if (removalEndsRecord(target.record, event.event_id) && !(await this.pendingAdded(otherLegacyKeys(target.record)))) {
          const goneAt = new Date();
          const { before, after } = await this.updateContainer(
            row.container_id,
            (existing) => (existing && removalEndsRecord(existing, event.event_id) ? goneRecord(existing, existing.seq, goneAt.toISOString()) : null),
            target,
            (b) => (b ? legacyEventRow({ container_id: row.container_id, from: b.record.state, to: 'gone', at, host: host ?? row.instance_id, seq: null, reason: 'legacy.removed' }, event.event_id) : null),
            goneAt,
          );
          if (before && after) return;
        }
      }
      const record: TransitionRecord = { container_id: row.container_id, from: null, to: null, at, host: host ?? row.instance_id, seq: null, reason: `legacy.${event.event}` };
      await this.putHistory([legacyEventRow(record, event.event_id)], new Date());
    });
  }

  /** Whether an original agent's `added` event waits (recordLegacyEvent) for any of `keys`. */
  private async pendingAdded(keys: string[]): Promise<boolean> {
    const found = await this.client.selectAll(
      buildSelect({ output: 'itemName()', domain: this.domains.transitions, where: [{ attr: 'pending_key', op: 'in', values: keys.map(indexValue) }, { attr: 'event', op: '=', value: 'added' }], limit: 1 }),
      { consistentRead: true, maxItems: 1 },
    );
    return found.length > 0;
  }

  async purgeGone(goneBefore: Date): Promise<number> {
    const cutoff = indexValue(goneBefore.toISOString());
    return this.run('purgeGone', async () => {
      const gone = await this.selectContainers(
        [
          { attr: 'state', op: '=', value: indexValue('gone') },
          { attr: 'gone_at', op: '>', value: indexValue('') },
          { attr: 'gone_at', op: '<', value: cutoff },
        ],
        true,
      );
      const purged = await mapLimit(gone, this.concurrency, async ({ record, ver }) => {
        // History first: a pass that fails after deleting the record (a 503 burst) left its history
        // for good, as no later pass finds the record; the other way round, the record stays and
        // the next pass deletes the rest. A container that comes back in between keeps its record
        // and the history written since, without the rows past the retention.
        const historyItems = await this.client.selectAll(
          buildSelect({ output: 'itemName()', domain: this.domains.transitions, where: [{ attr: 'container_id', op: '=', value: indexValue(record.container_id) }] }),
          { consistentRead: true },
        );
        for (const part of chunk(historyItems, 25)) {
          await this.client.batchDeleteAttributes(this.domains.transitions, part.map((i) => ({ name: i.name })));
        }
        this.cache.historyWritten(record.container_id);
        try {
          // Conditional: a container that came back since the select keeps its record.
          await this.client.deleteAttributes(this.shardOf(record.container_id), record.container_id, [], { name: 'ver', value: ver });
        } catch (err) {
          if (!isConditionalFailure(err)) throw err;
          // Came back (another version), or already deleted: by this delete, applied and answered
          // an error before the client's retry, or by another replica's purge.
          if ((await this.readContainer(record.container_id)) !== undefined) return 0;
        }
        this.cache.recordWritten(record, undefined);
        this.written.delete(record.container_id);
        // Its host may have no records left: the next retirement pass checks (retireSilentHosts).
        this.forgetCheckedAt.delete(record.instance_id);
        return 1;
      });
      await this.expirePendingEvents();
      return purged.reduce<number>((a, b) => a + b, 0);
    });
  }

  /** Deletes pending events (recordLegacyEvent) no map brought within PENDING_EVENT_MS. */
  private async expirePendingEvents(): Promise<void> {
    const cutoff = new Date(Date.now() - PENDING_EVENT_MS).toISOString();
    const old = await this.client.selectAll(buildSelect({ output: 'itemName()', domain: this.domains.transitions, where: [{ attr: 'pending_at', op: '<', value: cutoff }] }), { consistentRead: true });
    for (const part of chunk(old, 25)) await this.client.batchDeleteAttributes(this.domains.transitions, part.map((i) => ({ name: i.name })));
  }

  async retireSilentHosts(silentSince: Date, at: Date): Promise<RetiredHosts> {
    const since = silentSince.toISOString();
    return this.run('retireSilentHosts', async () => {
      const retired: RetiredHosts = { containers: 0, forgottenHosts: 0 };
      const items = await this.client.selectAll(buildSelect({ output: '*', domain: this.domains.hosts, limit: MAX_SELECT_LIMIT }), { consistentRead: true });
      const nowMs = Date.now();
      for (const item of items) {
        const host = readDocument<HostRecord>(item.attributes);
        const ver = attributeValue(item.attributes, 'ver');
        if (!host || ver === undefined || host.reporter !== 'reconciler') continue;
        if (host.last_report_at >= since) {
          this.retiredAtReport.delete(host.instance_id);
          this.forgetCheckedAt.delete(host.instance_id);
          continue;
        }
        if (this.retiredAtReport.get(host.instance_id) === host.last_report_at) {
          if (nowMs - (this.forgetCheckedAt.get(host.instance_id) ?? 0) < FORGET_CHECK_MS) continue;
          this.forgetCheckedAt.set(host.instance_id, nowMs);
          if (await this.forgetIfEmpty(host.instance_id, ver)) retired.forgottenHosts++;
          continue;
        }
        // It may have reported since the list was read, to any replica (a pass over many silent
        // hosts takes a while): a heartbeat or a batch leaves the records it does not name as they
        // were, old last_seen and all, and the host is not silent. SQLite re-checks in its transaction.
        const current = await this.readHost(host.instance_id);
        if (!current || current.record.last_report_at >= since || current.record.reporter !== 'reconciler') continue;
        // A record a report wrote since the host list was read is left alone.
        const { live, gone } = await this.markHostGone(host.instance_id, at, 'host.silent', (existing) => existing.last_seen < since);
        retired.containers += gone.length;
        this.retiredAtReport.set(host.instance_id, host.last_report_at);
        this.forgetCheckedAt.set(host.instance_id, nowMs);
        // Records it just marked gone wait for the retention; a host found without live records may have none left.
        if (live.length === 0 && (await this.forgetIfEmpty(host.instance_id, ver))) retired.forgottenHosts++;
      }
      return retired;
    });
  }

  async forgetHost(instanceId: string, at: Date): Promise<ForgetHostResult> {
    return this.run('forgetHost', async () => {
      let host = await this.readHost(instanceId);
      // A container marked gone again, after a map brought it back meanwhile, counts once.
      const goneIds = new Set<string>();
      for (;;) {
        if (host === undefined) return { outcome: 'unknown' };
        if (host.record.last_seq > 0) return { outcome: 'sequenced', last_seq: host.record.last_seq };
        for (const id of (await this.markHostGone(instanceId, at, 'host.forgotten')).gone) goneIds.add(id);
        try {
          // Conditional: a reconciler's first report meanwhile (a seq) keeps the host, as above.
          await this.client.deleteAttributes(this.domains.hosts, instanceId, [], { name: 'ver', value: host.ver });
          return { outcome: 'forgotten', containers: goneIds.size };
        } catch (err) {
          if (!isConditionalFailure(err)) throw err;
          // It reported meanwhile, or the delete applied before an error and the client's retry.
          host = await this.readHost(instanceId);
          if (host === undefined) return { outcome: 'forgotten', containers: goneIds.size };
        }
      }
    });
  }

  /**
   * The server's own path to gone: marks the host's live records gone at `at` (conditional writes;
   * `still(existing)` may leave a record out), each with a history row named by the version it
   * retires, so a retried or racing pass leaves one row. Returns the live records it found and the
   * ids it marked.
   */
  private async markHostGone(
    instanceId: string,
    at: Date,
    reason: 'host.silent' | 'host.forgotten',
    still: (existing: ContainerRecord) => boolean = () => true,
  ): Promise<{ live: Versioned<ContainerRecord>[]; gone: string[] }> {
    const atIso = at.toISOString();
    const live = await this.selectContainers(
      [{ attr: 'instance_id', op: '=', value: indexValue(instanceId) }, { attr: 'state', op: 'in', values: LIVE_STATES.map(indexValue) }],
      true,
    );
    const gone: string[] = [];
    await mapLimit(live, this.concurrency, async (v) => {
      const { before, after } = await this.updateContainer(
        v.record.container_id,
        (existing) => (existing && existing.instance_id === instanceId && LIVE_STATES.includes(existing.state) && still(existing) ? goneRecord(existing, existing.seq, atIso) : null),
        v,
        (b) => (b ? retirementHistoryRow({ container_id: b.record.container_id, from: b.record.state, to: 'gone', at: atIso, host: instanceId, seq: null, reason }, b.ver) : null),
        at,
      );
      if (before && after) gone.push(v.record.container_id);
    });
    return { live, gone };
  }

  /** Deletes a silent host's item once the retention has purged all its records; says whether it did. */
  private async forgetIfEmpty(instanceId: string, ver: string): Promise<boolean> {
    const held = await mapLimit(this.domains.containers, this.concurrency, (domain) =>
      this.client.selectAll(buildSelect({ output: 'itemName()', domain, where: [{ attr: 'instance_id', op: '=', value: indexValue(instanceId) }], limit: 1 }), {
        consistentRead: true,
        maxItems: 1,
      }),
    );
    if (held.some((found) => found.length > 0)) return false;
    try {
      // Conditional: a host that reported since the list was read is kept.
      await this.client.deleteAttributes(this.domains.hosts, instanceId, [], { name: 'ver', value: ver });
    } catch (err) {
      if (!isConditionalFailure(err)) throw err;
      // Gone already (this delete applied before an error, or another replica): forgotten all the same.
      if ((await this.readHost(instanceId)) !== undefined) return false;
    }
    this.retiredAtReport.delete(instanceId);
    this.forgetCheckedAt.delete(instanceId);
    return true;
  }

  // --- reads ---------------------------------------------------------------------------------

  async getContainer(idOrPrefix: string): Promise<ContainerLookup> {
    if (!CONTAINER_ID_PREFIX.test(idOrPrefix)) return { kind: 'missing' };
    return this.run('getContainer', () =>
      this.cache.container(idOrPrefix, async (): Promise<ContainerLookup> => {
        if (idOrPrefix.length === 64) {
          const found = await this.readContainer(idOrPrefix);
          return found ? { kind: 'found', record: found.record } : { kind: 'missing' };
        }
        const upper = prefixUpperBound(idOrPrefix);
        const where: Predicate[] = [{ attr: ITEM_NAME, op: '>=', value: idOrPrefix }];
        if (upper !== undefined) where.push({ attr: ITEM_NAME, op: '<', value: upper });
        const items = await this.client.selectAll(
          // One more than listed, to tell "exactly 20" from "more than 20".
          buildSelect({ output: '*', domain: this.shardOf(idOrPrefix), where, orderBy: { attr: ITEM_NAME }, limit: MAX_CANDIDATES + 1 }),
          { consistentRead: true, maxItems: MAX_CANDIDATES + 1 },
        );
        const records = items.map((i) => this.decodeContainer(i)).filter((v): v is Versioned<ContainerRecord> => v !== undefined);
        if (records.length === 0) return { kind: 'missing' };
        if (records.length > 1) {
          const ids = records.map((r) => r.record.container_id).sort();
          return { kind: 'ambiguous', candidates: ids.slice(0, MAX_CANDIDATES), more: ids.length > MAX_CANDIDATES };
        }
        return { kind: 'found', record: records[0].record };
      }),
    );
  }

  async findByTask(taskIdOrArn: string): Promise<ContainerRecord[]> {
    let id: string | undefined;
    if (TASK_ID.test(taskIdOrArn)) id = taskIdOrArn;
    else if (TASK_ARN.test(taskIdOrArn)) id = taskIdFromArn(taskIdOrArn);
    if (id === undefined) return [];
    const taskId = id;
    const records = await this.run('findByTask', () =>
      this.cache.task(taskId, async () => (await this.selectContainers([{ attr: 'task_id', op: '=', value: indexValue(taskId) }], true)).map((v) => v.record).sort(byContainerId)),
    );
    // Legacy records know the bare id but no ARN; a record with another ARN is another task.
    return taskId === taskIdOrArn ? records : records.filter((r) => r.task_arn === null || r.task_arn === taskIdOrArn);
  }

  async findByDockerName(dockerName: string): Promise<ContainerRecord[]> {
    if (!storable(dockerName)) return [];
    return this.run('findByDockerName', () =>
      this.cache.dockerName(dockerName, async () =>
        (await this.selectContainers([{ attr: 'docker_name', op: '=', value: indexValue(dockerName) }], true)).map((v) => v.record).sort(byContainerId),
      ),
    );
  }

  async listContainers(filter: ContainerFilter, page: PageRequest): Promise<Page<ContainerRecord>> {
    const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
    const limit = Math.min(MAX_PAGE, Math.max(1, Math.trunc(page.limit) || 1));
    if (!storable(filter.cluster, filter.instance_id, filter.state, filter.task_family)) return { items: [], next_cursor: null };
    return this.run('listContainers', async () => {
      const where = [...filterPredicates(filter), { attr: ITEM_NAME, op: '>', value: after ?? '' } satisfies Predicate];
      // A k-way merge: each shard returns its next limit+1 ids in order; the page is the smallest.
      const perShard = await mapLimit(this.domains.containers, this.concurrency, (domain) =>
        this.client.selectAll(buildSelect({ output: '*', domain, where, orderBy: { attr: ITEM_NAME }, limit: Math.min(2500, limit + 1) }), { maxItems: limit + 1 }),
      );
      const rows = perShard
        .flat()
        .map((i) => this.decodeContainer(i)?.record)
        .filter((r): r is ContainerRecord => r !== undefined)
        .sort(byContainerId)
        .slice(0, limit + 1);
      const items = rows.slice(0, limit);
      return { items, next_cursor: rows.length > limit ? encodeCursor(items[items.length - 1].container_id) : null };
    });
  }

  async scanContainers(filter: ContainerFilter, page: PageRequest): Promise<Page<ContainerRecord>> {
    const shards = this.domains.containers.length;
    // The limit is part of the select, and a NextToken only continues the select that made it.
    const start = page.cursor === undefined ? { shard: 0, token: null, limit: Math.min(MAX_SELECT_LIMIT, Math.max(1, Math.trunc(page.limit) || 1)) } : decodeScanCursor(page.cursor, shards);
    if (!storable(filter.cluster, filter.instance_id, filter.state, filter.task_family)) return { items: [], next_cursor: null };
    return this.run('scanContainers', async () => {
      const where = filterPredicates(filter);
      let at: ScanPosition = start;
      for (;;) {
        const result = await this.client.select(buildSelect({ output: '*', domain: this.domains.containers[at.shard], where, limit: at.limit }), at.token === null ? {} : { nextToken: at.token });
        const items = result.items.map((i) => this.decodeContainer(i)?.record).filter((r): r is ContainerRecord => r !== undefined);
        const next: ScanPosition | null =
          result.nextToken !== null ? { ...at, token: result.nextToken } : at.shard + 1 < shards ? { shard: at.shard + 1, token: null, limit: at.limit } : null;
        // An empty shard is passed over within the same call rather than answered as an empty page.
        if (items.length > 0 || next === null) return { items, next_cursor: next === null ? null : encodeScanCursor(next) };
        at = next;
      }
    });
  }

  async history(containerId: string, latest?: number): Promise<TransitionRecord[]> {
    if (!storable(containerId)) return [];
    // Read whole and cut here: SimpleDB sorts only on an attribute a predicate names, and the rows'
    // order is (at, stamp) together. The cache keeps the whole history for the next request.
    const all = await this.wholeHistory(containerId);
    return latest === undefined || all.length <= latest ? all : all.slice(-latest);
  }

  private wholeHistory(containerId: string): Promise<TransitionRecord[]> {
    return this.run('history', () =>
      this.cache.history(containerId, async () => {
        const items = await this.client.selectAll(
          buildSelect({ output: '*', domain: this.domains.transitions, where: [{ attr: 'container_id', op: '=', value: indexValue(containerId) }] }),
          { consistentRead: true },
        );
        return items
          .map((i) => ({ record: readDocument<TransitionRecord>(i.attributes), key: historyOrderKey(i) }))
          .filter((r): r is { record: TransitionRecord; key: string } => r.record !== undefined)
          .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
          .map((r) => r.record);
      }),
    );
  }

  async listHosts(options: { consistent?: boolean } = {}): Promise<HostRecord[]> {
    return this.run('listHosts', async () => {
      // 2,500 items a page (SimpleDB still cuts a page at 1 MB): at the default 100, 2,000 hosts
      // were 20 Selects on every /v2/hosts and /metrics scrape.
      const items = await this.client.selectAll(buildSelect({ output: '*', domain: this.domains.hosts, limit: MAX_SELECT_LIMIT }), { consistentRead: options.consistent === true });
      return items
        .map((i) => readDocument<HostRecord>(i.attributes))
        .filter((h): h is HostRecord => h !== undefined)
        .sort((a, b) => (a.instance_id < b.instance_id ? -1 : a.instance_id > b.instance_id ? 1 : 0));
    });
  }

  async countByState(): Promise<StateCount[]> {
    return this.run('countByState', async () => {
      // The same projection scan as countByHostAndState, 2,500 items a page: every /metrics scrape
      // runs it. At SimpleDB's default page of 100 items, 60k records took 600 Selects, not 24.
      const perShard = await mapLimit(this.domains.containers, this.concurrency, (domain) =>
        this.client.selectAll(buildSelect({ output: ['state', 'cluster'], domain, limit: MAX_SELECT_LIMIT })),
      );
      const counts = new Map<string, StateCount>();
      for (const item of perShard.flat()) {
        const state = decodeIndex(attributeValue(item.attributes, 'state')) as LifecycleState | null;
        if (state === null || !LIFECYCLE_STATES.includes(state)) continue;
        const cluster = decodeIndex(attributeValue(item.attributes, 'cluster'));
        const key = JSON.stringify([state, cluster]);
        const entry = counts.get(key) ?? { state, cluster, count: 0 };
        entry.count++;
        counts.set(key, entry);
      }
      return [...counts.values()].sort((a, b) => (a.state !== b.state ? (a.state < b.state ? -1 : 1) : (a.cluster ?? '') < (b.cluster ?? '') ? -1 : (a.cluster ?? '') > (b.cluster ?? '') ? 1 : 0));
    });
  }

  /**
   * One projection scan: `select instance_id, state` (two short index attributes, no document) over
   * every shard, 2500 items a page (SimpleDB's maximum), counted here. Cost: per shard
   * ceil(items / 2500) Select requests, at least one: 50 hosts × 30 containers on 3 shards is 3
   * requests (measured in store.behaviour.test.ts); 2,000 × 30 = 60k records on 4 shards is 24. The
   * alternatives were worse: `count(*)` per host × state is hosts × 5 × shards requests (750 and
   * 40,000), and per-host counter items would add a conditional write to every state change and
   * drift after a crash between the record write and the counter write.
   */
  async countByHostAndState(): Promise<HostStateCount[]> {
    return this.run('countByHostAndState', async () => {
      const perShard = await mapLimit(this.domains.containers, this.concurrency, (domain) =>
        this.client.selectAll(buildSelect({ output: ['instance_id', 'state'], domain, limit: MAX_SELECT_LIMIT })),
      );
      const counts = new Map<string, HostStateCount>();
      for (const item of perShard.flat()) {
        const state = decodeIndex(attributeValue(item.attributes, 'state')) as LifecycleState | null;
        const instanceId = decodeIndex(attributeValue(item.attributes, 'instance_id'));
        if (state === null || instanceId === null || !LIFECYCLE_STATES.includes(state)) continue;
        const key = JSON.stringify([instanceId, state]);
        const entry = counts.get(key) ?? { instance_id: instanceId, state, count: 0 };
        entry.count++;
        counts.set(key, entry);
      }
      const order = (a: HostStateCount, b: HostStateCount) =>
        a.instance_id !== b.instance_id ? (a.instance_id < b.instance_id ? -1 : 1) : a.state < b.state ? -1 : a.state > b.state ? 1 : 0;
      return [...counts.values()].sort(order);
    });
  }

  async health(): Promise<StoreHealth> {
    if (this.closed) return { ok: false, backend: 'simpledb', detail: 'store is closed' };
    try {
      await this.client.domainMetadata(this.domains.hosts);
      return { ok: true, backend: 'simpledb' };
    } catch (err) {
      return { ok: false, backend: 'simpledb', detail: (err as Error).message };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cache.clear();
    await this.client.close();
  }

  // --- items ---------------------------------------------------------------------------------

  private decodeContainer(item: Item): Versioned<ContainerRecord> | undefined {
    const record = readDocument<ContainerRecord>(item.attributes);
    const ver = attributeValue(item.attributes, 'ver');
    if (!record || ver === undefined) return undefined;
    // Documents written before sampled_at existed lack it.
    record.sampled_at ??= null;
    return { record, ver };
  }

  private async readContainer(id: string): Promise<Versioned<ContainerRecord> | undefined> {
    const attrs = await this.client.getAttributes(this.shardOf(id), id, { consistentRead: true });
    return this.decodeContainer({ name: id, attributes: attrs });
  }

  private async selectContainers(where: Predicate[], consistentRead: boolean): Promise<Versioned<ContainerRecord>[]> {
    const perShard = await mapLimit(this.domains.containers, this.concurrency, (domain) => this.client.selectAll(buildSelect({ output: '*', domain, where }), { consistentRead }));
    return perShard
      .flat()
      .map((i) => this.decodeContainer(i))
      .filter((v): v is Versioned<ContainerRecord> => v !== undefined);
  }

  private containerAttributes(r: ContainerRecord, ver: string): ReplaceableAttribute[] {
    const index = (name: string, value: string | null): ReplaceableAttribute => ({ name, value: indexValue(value), replace: true });
    return [
      ...documentAttributes(r),
      { name: 'ver', value: ver, replace: true },
      index('instance_id', r.instance_id),
      index('state', r.state),
      index('cluster', r.cluster),
      index('task_family', r.task_family),
      index('task_id', r.task_id),
      index('docker_name', r.docker_name),
      index('legacy_key', r.legacy_key),
      index('gone_at', r.gone_at),
    ];
  }

  /**
   * Read (unless `initial` is given), decide, conditionally write; on a conflict re-read and decide
   * again. Returns the record before and after (after undefined when the decision left it alone).
   */
  /**
   * `history`: the history row of a change (or null), written just before the record is: a write
   * that fails after it, or a crash, leaves a row that the report's retry writes again under the
   * same name, never a changed record without its row (the retry would find nothing to change).
   * So a change with a row is only decided on a read: the version this process last wrote may be
   * one another replica has since changed, and its row would describe a change that never happened
   * (the conditional put that catches the newer version comes after the row).
   */
  private async updateContainer(
    id: string,
    decide: Decide,
    initial?: Versioned<ContainerRecord>,
    history?: (before: Versioned<ContainerRecord> | undefined, next: ContainerRecord) => HistoryRow | null,
    historyAt?: Date,
  ): Promise<{ before?: ContainerRecord; after?: ContainerRecord }> {
    const remembered = initial ? undefined : this.written.get(id);
    let fresh = remembered === undefined;
    let current = initial ?? remembered ?? (await this.readContainer(id));
    for (let attempt = 1; ; attempt++) {
      const next = decide(current ? structuredClone(current.record) : undefined);
      if (next === null) {
        if (fresh) return { before: current?.record };
        fresh = true;
        current = await this.readContainer(id);
        continue;
      }
      const row = history?.(current, next);
      if (row && !fresh) {
        fresh = true;
        current = await this.readContainer(id);
        continue;
      }
      if (row) await this.putHistory([row], historyAt ?? new Date());
      const ver = newVer();
      const written = () => {
        this.written.set(id, { record: structuredClone(next), ver });
        this.cache.recordWritten(current?.record, next);
        return { before: current?.record, after: next };
      };
      try {
        await this.client.putAttributes(this.shardOf(id), id, this.containerAttributes(next, ver), expectedVer(current?.ver));
        return written();
      } catch (err) {
        if (!isConditionalFailure(err) || attempt >= MAX_WRITE_ATTEMPTS) throw err;
        this.written.delete(id);
        const reread = await this.readContainer(id);
        // SimpleDB applied this very write, answered an error, and the client's retry met it.
        if (reread?.ver === ver) return written();
        this.logger?.debug({ container_id: id, attempt }, 'simpledb: concurrent write, re-reading');
        fresh = true;
        current = reread;
      }
    }
  }

  private async putHistory(rows: HistoryRow[], writtenAt: Date): Promise<void> {
    if (rows.length === 0) return;
    const items = rows.map((row) => ({
      name: row.itemName,
      attributes: [
        ...documentAttributes(row.record),
        { name: 'container_id', value: indexValue(row.record.container_id), replace: true },
        { name: 'at', value: row.record.at, replace: true },
        { name: 'stamp', value: `${padNumber(writtenAt.getTime())}:${padNumber(this.stampCounter++)}`, replace: true },
      ],
    }));
    await mapLimit(chunk(items, 25), this.concurrency, (part) => this.client.batchPutAttributes(this.domains.transitions, part));
    const perContainer = new Map<string, number>();
    for (const row of rows) perContainer.set(row.record.container_id, (perContainer.get(row.record.container_id) ?? 0) + 1);
    for (const [id, n] of perContainer) {
      this.cache.historyWritten(id);
      if (this.historyBound.written(id, n)) await this.trimHistory(id);
    }
  }

  /**
   * Deletes the container's oldest history items beyond the bound (storage/history-bound.ts). Two
   * replicas trimming at once delete the same oldest items (a delete of a deleted item is a no-op).
   * Housekeeping: a failure is logged, not thrown, and the container's next rows try again.
   */
  private async trimHistory(containerId: string): Promise<void> {
    try {
      const items = await this.client.selectAll(
        buildSelect({ output: ['at', 'stamp'], domain: this.domains.transitions, where: [{ attr: 'container_id', op: '=', value: indexValue(containerId) }] }),
        { consistentRead: true },
      );
      const excess = this.historyBound.excess(items.length);
      if (excess === 0) return;
      const oldest = items
        .map((i) => ({ name: i.name, key: historyOrderKey(i) }))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
        .slice(0, excess);
      for (const part of chunk(oldest, 25)) await this.client.batchDeleteAttributes(this.domains.transitions, part.map((i) => ({ name: i.name })));
      this.cache.historyWritten(containerId);
    } catch (err) {
      this.logger?.warn({ err, container_id: containerId }, 'simpledb: trimming a container\'s history to --history-limit failed; its next rows try again');
    }
  }

  private async readHost(instanceId: string): Promise<Versioned<HostRecord> | undefined> {
    const attrs: Attribute[] = await this.client.getAttributes(this.domains.hosts, instanceId, { consistentRead: true });
    const record = readDocument<HostRecord>(attrs);
    const ver = attributeValue(attrs, 'ver');
    return record && ver !== undefined ? { record, ver } : undefined;
  }

  /**
   * Merges a report into the host item: last_seq only grows, first_seen stays, snapshot time kept.
   * Returns the last_seq the item held when this write took effect (conditional on its version).
   */
  private async writeHost(
    host: HostIdentity,
    report: { receivedAt: string; lastSeq: number; snapshotAt: string | null; reporter: HostRecord['reporter'] },
    initial?: Versioned<HostRecord>,
  ): Promise<number> {
    let current = initial ?? (await this.readHost(host.instance_id));
    for (let attempt = 1; ; attempt++) {
      const prev = current?.record;
      const prevSeq = prev?.last_seq ?? 0;
      const next: HostRecord = {
        ...host,
        first_seen: prev?.first_seen ?? report.receivedAt,
        last_report_at: report.receivedAt,
        last_snapshot_at: report.snapshotAt ?? prev?.last_snapshot_at ?? null,
        last_seq: Math.max(prev?.last_seq ?? 0, report.lastSeq),
        reporter: report.reporter,
      };
      const ver = newVer();
      try {
        await this.client.putAttributes(this.domains.hosts, host.instance_id, [...documentAttributes(next), { name: 'ver', value: ver, replace: true }], expectedVer(current?.ver));
        return prevSeq;
      } catch (err) {
        if (!isConditionalFailure(err) || attempt >= MAX_WRITE_ATTEMPTS) throw err;
        current = await this.readHost(host.instance_id);
        // Applied, answered an error, and met by the client's retry (updateContainer).
        if (current?.ver === ver) return prevSeq;
      }
    }
  }

  /** SimpleDB failures become StoreUnavailableError (the API answers 503); others pass through. */
  private async run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof SimpleDbError || err instanceof SimpleDbLimitError) {
        throw new StoreUnavailableError(`SimpleDB ${operation} failed: ${err.message}`, { cause: err });
      }
      throw err;
    }
  }
}
