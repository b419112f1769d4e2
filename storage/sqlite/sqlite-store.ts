// The SQLite Store: better-sqlite3 (synchronous) behind the async Store interface. Every statement
// is prepared once with bound parameters; SQL text is built only from constant fragments. Each
// multi-row write runs in one IMMEDIATE transaction, so a report is applied wholly or not at all.
//
// Cost per report is flat in the host's size: a snapshot reads each of its containers by primary
// key and scans only the reporting host's live records (index instance_id, state) for absentees.
import { setImmediate as nextTurn } from 'node:timers/promises';
import type Database from 'better-sqlite3';
import { CONTAINER_ID_PREFIX, TASK_ARN, TASK_ID, taskIdFromArn, type HostIdentity, type HostSnapshot, type SnapshotResult, type LifecycleState, type TransitionBatch } from '../../wire/index.js';
import { goneRecord, nextRecord, normaliseIso, otherLegacyKeys, recordChanged, removalEndsRecord } from '../records.js';
import type {
  AppliedTransitions,
  ContainerFilter,
  ContainerLookup,
  ContainerRecord,
  HostRecord,
  HostStateCount,
  LegacyEvent,
  LegacySnapshot,
  Page,
  PageRequest,
  ForgetHostResult,
  RetiredHosts,
  SeqConflict,
  StateCount,
  Store,
  StoreHealth,
  TransitionRecord,
} from '../store.js';
import { PENDING_EVENT_MS, sameTransition } from '../store.js';
import { HistoryBound } from '../history-bound.js';
import type { Checkpointer } from './checkpointer.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { toStoreError } from './errors.js';
import { LIST_FILTER_COLUMNS, listSql, SQL, updateSql, type ListFilterColumn } from './queries.js';
import {
  CONTAINER_TABLE_COLUMNS,
  fromContainerRow,
  fromHostRow,
  fromTransitionRow,
  READ_INDEX,
  toContainerRow,
  toTransitionParams,
  type ContainerColumn,
  type ContainerRow,
  type StoredContainerRow,
  type StoredHostRow,
  type TransitionRow,
} from './rows.js';

/** How many candidates an ambiguous prefix lists at most. */
export const MAX_CANDIDATES = 20;
const MAX_PAGE = 1000;
/** A snapshot of this many containers or more does not checkpoint inside its own commit (bigCommit). */
export const BIG_SNAPSHOT_CONTAINERS = 100;
const MAX_UPDATE_STATEMENTS = 256;
/** Gone records deleted per transaction by purgeGone (a median 7.8 ms of the event loop each in a 500,000-record store). */
export const PURGE_CHUNK = 50;

interface HostReport {
  host: HostIdentity;
  receivedAt: string;
  lastSeq: number;
  snapshotAt: string | null;
  /** A reconciler snapshot's seq (rows.ts: the containers it confirmed without rewriting them); null otherwise. */
  snapshotSeq: number | null;
  reporter: HostRecord['reporter'];
}

/** A record as stored: the row (what an update is diffed against) and the record it stands for. */
interface Stored {
  row: StoredContainerRow;
  record: ContainerRecord;
}

/** One entry of a (reconciler or legacy) snapshot, normalised. */
interface SnapshotEntry {
  container: LegacySnapshot['containers'][number] | HostSnapshot['containers'][number];
  eventAt: string;
  taskIdRaw: string | null;
  legacyKey: string | null;
  sampledAt: string | null;
}

export class SqliteStore implements Store {
  readonly backend = 'sqlite' as const;
  private readonly stmt;
  private readonly listStatements = new Map<string, Database.Statement>();
  private readonly updateStatements = new Map<string, Database.Statement>();
  private readonly applyTransitionsTx;
  private readonly replaceHostTx;
  private readonly purgeChunkTx;
  private readonly retireHostTx;
  private readonly forgetHostTx;
  private closed = false;

  constructor(
    private readonly db: Database.Database,
    private readonly checkpointer?: Checkpointer,
    private readonly historyBound = new HistoryBound(),
  ) {
    this.stmt = {
      getContainer: db.prepare<[string], StoredContainerRow>(SQL.getContainer).raw(true),
      byPrefix: db.prepare<[string, string], StoredContainerRow>(SQL.byPrefix).raw(true),
      prefixIds: db.prepare<[string, string, number], { container_id: string }>(SQL.prefixIds),
      byTaskId: db.prepare<[string], StoredContainerRow>(SQL.byTaskId).raw(true),
      byTaskArn: db.prepare<[string, string], StoredContainerRow>(SQL.byTaskArn).raw(true),
      byDockerName: db.prepare<[string], StoredContainerRow>(SQL.byDockerName).raw(true),
      byLegacyKey: db.prepare<[string], { container_id: string; instance_id: string }>(SQL.byLegacyKey),
      liveOnHost: db.prepare<[string], { container_id: string }>(SQL.liveOnHost),
      upsertContainer: db.prepare<[ContainerRow]>(SQL.upsertContainer),
      touchContainer: db.prepare<[string, number, string | null, number, string]>(SQL.touchContainer),
      insertTransition: db.prepare<[Omit<TransitionRow, 'id'>]>(SQL.insertTransition),
      insertPendingEvent: db.prepare<[string, string, string, string | null]>(SQL.insertPendingEvent),
      pendingEvents: db.prepare<[string], { event: string; at: string; host: string | null }>(SQL.pendingEvents),
      pendingAdded: db.prepare<[string], { found: number }>(SQL.pendingAdded),
      dropPendingEvents: db.prepare<[string]>(SQL.dropPendingEvents),
      expirePendingEvents: db.prepare<[string]>(SQL.expirePendingEvents),
      history: db.prepare<[string], TransitionRow>(SQL.history),
      latestHistory: db.prepare<[string, number], TransitionRow>(SQL.latestHistory),
      historyAtSeq: db.prepare<[string, number], Pick<TransitionRow, 'container_id' | 'from_state' | 'to_state'>>(SQL.historyAtSeq),
      getHost: db.prepare<[string], { last_seq: number; snapshot_seq: number }>(SQL.getHost),
      silentHosts: db.prepare<[string], { instance_id: string }>(SQL.silentHosts),
      hostLastReport: db.prepare<[string], { last_report_at: string; reporter: string }>(SQL.hostLastReport),
      hostHasRecords: db.prepare<[string], { one: number }>(SQL.hostHasRecords),
      deleteHost: db.prepare<[string]>(SQL.deleteHost),
      upsertHost: db.prepare(SQL.upsertHost),
      listHosts: db.prepare<[], StoredHostRow>(SQL.listHosts).raw(true),
      purgeChunk: db.prepare<[string, number], { container_id: string }>(SQL.purgeChunk),
      purgeHistory: db.prepare<[string]>(SQL.purgeHistory),
      countHistory: db.prepare<[string], number>(SQL.countHistory).pluck(),
      trimHistory: db.prepare<[string, number]>(SQL.trimHistory),
      purgeContainers: db.prepare<[string]>(SQL.purgeContainers),
      countByState: db.prepare<[], StateCount>(SQL.countByState),
      countByHostAndState: db.prepare<[], HostStateCount>(SQL.countByHostAndState),
      dropEmptyCounts: db.prepare(SQL.dropEmptyCounts),
      ping: db.prepare<[], { ok: number }>(SQL.ping),
    };
    this.applyTransitionsTx = db.transaction(this.applyTransitionsInTx.bind(this));
    this.replaceHostTx = db.transaction(this.replaceHostInTx.bind(this));
    this.purgeChunkTx = db.transaction(this.purgeChunkInTx.bind(this));
    this.retireHostTx = db.transaction(this.retireHostInTx.bind(this));
    this.forgetHostTx = db.transaction(this.forgetHostInTx.bind(this));
  }

  // --- writes --------------------------------------------------------------------------------

  async applyTransitions(batch: TransitionBatch, receivedAt: Date): Promise<AppliedTransitions> {
    return this.run('applyTransitions', () => this.applyTransitionsTx.immediate(batch, receivedAt.toISOString()));
  }

  private applyTransitionsInTx(batch: TransitionBatch, receivedAt: string): AppliedTransitions {
    const host = batch.host;
    const hostRow = this.stmt.getHost.get(host.instance_id);
    let lastSeq = hostRow?.last_seq ?? 0;
    const hostSnapshotSeq = hostRow?.snapshot_seq ?? 0;
    let applied = 0;
    let duplicates = 0;
    const conflicting: SeqConflict[] = [];
    // Each container's record is read once and written once per batch, in its final state: a
    // container that starts (null → pending → running) or stops (running → … → gone) within one
    // batch would otherwise move its entries in every state index once per step, and the pages
    // those steps dirty are what a commit writes to the WAL (and a checkpoint copies back).
    const touched = new Map<string, { stored: Stored | undefined; current: ContainerRecord | undefined }>();
    for (const t of [...batch.transitions].sort((a, b) => a.seq - b.seq)) {
      if (t.seq <= lastSeq) {
        // Only here, off the path of new transitions: is it the transition history holds under this seq?
        const row = this.stmt.historyAtSeq.get(host.instance_id, t.seq);
        const stored = row && { container_id: row.container_id, from: row.from_state as LifecycleState | null, to: row.to_state as LifecycleState | null };
        if (stored && !sameTransition(stored, t)) conflicting.push({ seq: t.seq, stored, reported: { container_id: t.container_id, from: t.from, to: t.to } });
        else duplicates++;
        continue;
      }
      lastSeq = t.seq;
      applied++;
      const eventAt = normaliseIso(t.at);
      // The observation's id is the record key; the API rejects batches where t.container_id differs.
      const id = t.container.container_id;
      this.insertHistory({ container_id: id, from: t.from, to: t.to, at: eventAt, host: host.instance_id, seq: t.seq, reason: t.reason });
      let record = touched.get(id);
      if (!record) {
        const stored = this.getStored(id);
        record = { stored, current: stored?.record };
        touched.set(id, record);
      }
      const existing = record.current;
      // A later snapshot already holds this container's newer state: history only.
      if (existing && existing.instance_id === host.instance_id && existing.seq >= t.seq) continue;
      record.current = nextRecord(existing, t.container, { host, state: t.to, seq: t.seq, eventAt, receivedAt });
    }
    for (const { stored, current } of touched.values()) {
      if (current && current !== stored?.record) this.writeRecord(current, stored?.row, hostSnapshotSeq);
    }
    this.writeHost({ host, receivedAt, lastSeq, snapshotAt: null, snapshotSeq: null, reporter: 'reconciler' });
    return { applied, duplicates, conflicts: conflicting.length, acked_seq: lastSeq, conflicting };
  }

  async replaceSnapshot(snapshot: HostSnapshot, receivedAt: Date): Promise<SnapshotResult> {
    const takenAt = normaliseIso(snapshot.taken_at);
    const entries = snapshot.containers.map((container) => ({ container, eventAt: takenAt, taskIdRaw: null, legacyKey: null, sampledAt: null }));
    return this.run('replaceSnapshot', () =>
      this.bigCommit(entries.length, () => this.replaceHostTx.immediate(snapshot.host, snapshot.seq, entries, receivedAt.toISOString(), takenAt, 'reconciler')),
    );
  }

  async replaceLegacySnapshot(snapshot: LegacySnapshot): Promise<SnapshotResult> {
    const receivedAt = normaliseIso(snapshot.received_at);
    const entries = snapshot.containers.map((container) => {
      const sampledAt = normaliseIso(container.sampled_at);
      return { container, eventAt: sampledAt, taskIdRaw: container.task_id_raw, legacyKey: container.legacy_key, sampledAt };
    });
    // Legacy reports carry no sequence numbers: seq 0, so records a reconciler owns (seq > 0) are skipped.
    return this.run('replaceLegacySnapshot', () => this.bigCommit(entries.length, () => this.replaceHostTx.immediate(snapshot.host, 0, entries, receivedAt, receivedAt, 'legacy')));
  }

  private replaceHostInTx(
    host: HostIdentity,
    seq: number,
    entries: SnapshotEntry[],
    receivedAt: string,
    takenAt: string,
    reporter: HostRecord['reporter'],
  ): SnapshotResult {
    const result: SnapshotResult = { upserted: 0, gone: 0, skipped: 0 };
    const present = new Set<string>();
    // Containers a reconciler snapshot merely confirms are not rewritten: the host row's snapshot
    // seq and time stand for their last_seen and seq (rows.ts). Legacy maps carry a sample time per
    // container and no seq, so their rows are still touched.
    const confirms = reporter === 'reconciler';
    const hostSnapshotSeq = this.stmt.getHost.get(host.instance_id)?.snapshot_seq ?? 0;
    for (const { container, eventAt, taskIdRaw, legacyKey, sampledAt } of entries) {
      present.add(container.container_id);
      const stored = this.getStored(container.container_id);
      const existing = stored?.record;
      const sameHost = existing !== undefined && existing.instance_id === host.instance_id;
      if (sameHost && existing.seq > seq) {
        result.skipped++;
        continue;
      }
      const next = nextRecord(existing, container, {
        host,
        state: container.state,
        seq: sameHost ? Math.max(existing.seq, seq) : seq,
        eventAt,
        receivedAt,
        taskIdRaw,
        legacyKey,
        sampledAt,
      });
      if (!existing || recordChanged(existing, next)) {
        this.writeRecord(next, stored?.row, hostSnapshotSeq);
        result.upserted++;
      } else {
        // Unchanged: the host row's new snapshot seq and time will read as this record's (rows.ts),
        // unless it is gone, an older snapshot arrived late, a legacy sample time must be cleared,
        // or the row was written after this snapshot's seq was already the host's (a replay).
        const row = stored!.row;
        const confirmedByHostRow =
          confirms && next.state !== 'gone' && next.seq >= hostSnapshotSeq && row[READ_INDEX.sampled_at] === null && (row[READ_INDEX.written_at_snapshot_seq] as number) < seq;
        if (!confirmedByHostRow) this.stmt.touchContainer.run(next.last_seen, next.seq, next.sampled_at, hostSnapshotSeq, next.container_id);
      }
      if (existing?.state !== next.state) {
        this.insertHistory({ container_id: next.container_id, from: existing?.state ?? null, to: next.state, at: eventAt, host: host.instance_id, seq: null, reason: 'snapshot' });
      }
      // A key new to this container: the agent's events about it came before this map (recordLegacyEvent).
      if (legacyKey !== null && existing?.legacy_key !== legacyKey) {
        for (const e of this.stmt.pendingEvents.all(legacyKey)) {
          this.insertHistory({ container_id: next.container_id, from: null, to: null, at: e.at, host: e.host ?? host.instance_id, seq: null, reason: `legacy.${e.event}` });
        }
        this.stmt.dropPendingEvents.run(legacyKey);
      }
    }
    for (const row of this.stmt.liveOnHost.all(host.instance_id)) {
      if (present.has(row.container_id)) continue;
      const stored = this.getStored(row.container_id);
      if (!stored) continue;
      const before = stored.record;
      // The seq the record carries: an earlier snapshot may have confirmed it (rows.ts).
      if (before.seq > seq) {
        result.skipped++;
        continue;
      }
      this.writeRecord(goneRecord(before, seq, receivedAt), stored.row, hostSnapshotSeq);
      this.insertHistory({ container_id: before.container_id, from: before.state, to: 'gone', at: takenAt, host: host.instance_id, seq: null, reason: 'snapshot' });
      result.gone++;
    }
    this.writeHost({ host, receivedAt, lastSeq: 0, snapshotAt: receivedAt, snapshotSeq: confirms ? seq : null, reporter });
    return result;
  }

  async recordLegacyEvent(event: LegacyEvent, host: string | null): Promise<void> {
    const at = normaliseIso(event.at);
    this.run('recordLegacyEvent', () => {
      const row = this.stmt.byLegacyKey.get(event.event_id);
      if (!row) {
        // The agent posts an `added` event before the map that brings its key: kept until that map
        // (replaceHostInTx), an hour at most (a key no map ever brings: a container never created).
        // The hour ends by the server's clock too: one agent's clock hours ahead would otherwise
        // expire the events of every other host still waiting for their maps.
        this.stmt.expirePendingEvents.run(new Date(Math.min(Date.parse(at), Date.now()) - PENDING_EVENT_MS).toISOString());
        this.stmt.insertPendingEvent.run(event.event_id, event.event, at, host);
        return;
      }
      if (event.event === 'removed') {
        const stored = this.getStored(row.container_id);
        const before = stored?.record;
        if (stored && before && removalEndsRecord(before, event.event_id) && !this.stmt.pendingAdded.get(JSON.stringify(otherLegacyKeys(before)))) {
          this.writeRecord(goneRecord(before, before.seq, new Date().toISOString()), stored.row, stored.row[READ_INDEX.written_at_snapshot_seq] as number);
          this.insertHistory({ container_id: before.container_id, from: before.state, to: 'gone', at, host: host ?? row.instance_id, seq: null, reason: 'legacy.removed' });
          return;
        }
      }
      this.insertHistory({ container_id: row.container_id, from: null, to: null, at, host: host ?? row.instance_id, seq: null, reason: `legacy.${event.event}` });
    });
  }

  /**
   * Deletes in chunks of PURGE_CHUNK records, each its own transaction, with a turn of the event
   * loop between them. In one transaction, a backlog (the first purge after days of downtime, or a
   * shorter --retention) held the event loop until it was all gone: 33 s for 440,000 records of a
   * 500,000-record store here. In that store a chunk of 50 took a median 7.8 ms (p99 46 ms, with
   * the commit's own checkpoint). Chunks cost throughput: each commit writes every index page its
   * records touched, where one transaction wrote each page once for all of them, so the backlog
   * goes at about 2,800 records/s instead of 13,400 (chunks of 25 to 1,000 alike), in the
   * background. A steady purge (--purge-interval's worth of records) is a few chunks.
   */
  async purgeGone(goneBefore: Date): Promise<number> {
    const cutoff = goneBefore.toISOString();
    let purged = 0;
    for (;;) {
      const chunk = this.run('purgeGone', () => this.purgeChunkTx.immediate(cutoff));
      purged += chunk;
      if (chunk < PURGE_CHUNK) return purged;
      await nextTurn();
      // Closed meanwhile (the server stopping): what is left waits for the next start.
      if (this.closed) return purged;
    }
  }

  private purgeChunkInTx(cutoff: string): number {
    const ids = this.stmt.purgeChunk.all(cutoff, PURGE_CHUNK).map((r) => r.container_id);
    let purged = 0;
    if (ids.length > 0) {
      const list = JSON.stringify(ids);
      this.stmt.purgeHistory.run(list);
      purged = this.stmt.purgeContainers.run(list).changes;
    }
    // The last chunk of a run (an empty one when the run was a whole number of chunks) also drops
    // the counts that fell to 0.
    if (ids.length < PURGE_CHUNK) this.stmt.dropEmptyCounts.run();
    return purged;
  }

  async retireSilentHosts(silentSince: Date, at: Date): Promise<RetiredHosts> {
    const since = silentSince.toISOString();
    const atIso = at.toISOString();
    const retired: RetiredHosts = { containers: 0, forgottenHosts: 0 };
    const silent = this.run('retireSilentHosts', () => this.stmt.silentHosts.all(since).map((r) => r.instance_id));
    // One transaction per host, with a turn of the event loop between hosts: after an outage many
    // hosts may be silent at once, and requests are served meanwhile.
    for (const instanceId of silent) {
      const host = this.run('retireSilentHosts', () => this.retireHostTx.immediate(instanceId, since, atIso));
      retired.containers += host.containers;
      if (host.forgotten) retired.forgottenHosts++;
      await nextTurn();
      if (this.closed) break;
    }
    return retired;
  }

  private retireHostInTx(instanceId: string, since: string, at: string): { containers: number; forgotten: boolean } {
    // It may have reported since the list was read (and a legacy agent may have taken it over).
    const host = this.stmt.hostLastReport.get(instanceId);
    if (!host || host.last_report_at >= since || host.reporter !== 'reconciler') return { containers: 0, forgotten: false };
    const containers = this.markHostGoneInTx(instanceId, at, 'host.silent');
    // Its records are all gone and, after the retention, purged: then the host is forgotten.
    if (containers > 0 || this.stmt.hostHasRecords.get(instanceId)) return { containers, forgotten: false };
    this.stmt.deleteHost.run(instanceId);
    return { containers: 0, forgotten: true };
  }

  async forgetHost(instanceId: string, at: Date): Promise<ForgetHostResult> {
    return this.run('forgetHost', () => this.forgetHostTx.immediate(instanceId, at.toISOString()));
  }

  private forgetHostInTx(instanceId: string, at: string): ForgetHostResult {
    const host = this.stmt.getHost.get(instanceId);
    if (!host) return { outcome: 'unknown' };
    if (host.last_seq > 0) return { outcome: 'sequenced', last_seq: host.last_seq };
    const containers = this.markHostGoneInTx(instanceId, at, 'host.forgotten');
    this.stmt.deleteHost.run(instanceId);
    return { outcome: 'forgotten', containers };
  }

  /** Marks the host's live records gone at `at`, each with a history row of `reason`; returns how many. */
  private markHostGoneInTx(instanceId: string, at: string, reason: 'host.silent' | 'host.forgotten'): number {
    let containers = 0;
    for (const row of this.stmt.liveOnHost.all(instanceId)) {
      const stored = this.getStored(row.container_id);
      if (!stored) continue;
      const before = stored.record;
      this.writeRecord(goneRecord(before, before.seq, at), stored.row, stored.row[READ_INDEX.written_at_snapshot_seq] as number);
      this.insertHistory({ container_id: before.container_id, from: before.state, to: 'gone', at, host: instanceId, seq: null, reason });
      containers++;
    }
    return containers;
  }

  // --- reads ---------------------------------------------------------------------------------

  async getContainer(idOrPrefix: string): Promise<ContainerLookup> {
    return this.run('getContainer', (): ContainerLookup => {
      if (!CONTAINER_ID_PREFIX.test(idOrPrefix)) return { kind: 'missing' };
      if (idOrPrefix.length === 64) {
        const row = this.stmt.getContainer.get(idOrPrefix);
        return row ? { kind: 'found', record: fromContainerRow(row) } : { kind: 'missing' };
      }
      const rows = this.stmt.byPrefix.all(idOrPrefix, `${idOrPrefix}g`);
      if (rows.length === 0) return { kind: 'missing' };
      if (rows.length === 1) return { kind: 'found', record: fromContainerRow(rows[0]) };
      // One more than listed, to tell "exactly 20" from "more than 20".
      const ids = this.stmt.prefixIds.all(idOrPrefix, `${idOrPrefix}g`, MAX_CANDIDATES + 1).map((r) => r.container_id);
      return { kind: 'ambiguous', candidates: ids.slice(0, MAX_CANDIDATES), more: ids.length > MAX_CANDIDATES };
    });
  }

  async findByTask(taskIdOrArn: string): Promise<ContainerRecord[]> {
    return this.run('findByTask', () => {
      if (TASK_ID.test(taskIdOrArn)) return this.stmt.byTaskId.all(taskIdOrArn).map(fromContainerRow);
      const id = TASK_ARN.test(taskIdOrArn) ? taskIdFromArn(taskIdOrArn) : undefined;
      if (id === undefined) return [];
      return this.stmt.byTaskArn.all(id, taskIdOrArn).map(fromContainerRow);
    });
  }

  async findByDockerName(dockerName: string): Promise<ContainerRecord[]> {
    return this.run('findByDockerName', () => this.stmt.byDockerName.all(dockerName).map(fromContainerRow));
  }

  async listContainers(filter: ContainerFilter, page: PageRequest): Promise<Page<ContainerRecord>> {
    const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
    const limit = Math.min(MAX_PAGE, Math.max(1, Math.trunc(page.limit) || 1));
    return this.run('listContainers', () => {
      const used = LIST_FILTER_COLUMNS.filter((k) => filter[k] !== undefined);
      const params: Record<string, string | number> = { limit: limit + 1 };
      for (const k of used) params[k] = filter[k] as string;
      if (after !== undefined) params.after = after;
      const rows = this.listStatement(used, after !== undefined).all(params) as StoredContainerRow[];
      const items = rows.slice(0, limit).map(fromContainerRow);
      const next = rows.length > limit ? encodeCursor(items[items.length - 1].container_id) : null;
      return { items, next_cursor: next };
    });
  }

  /** The keyset listing is already one pass over an index: a scan is the same pages. */
  async scanContainers(filter: ContainerFilter, page: PageRequest): Promise<Page<ContainerRecord>> {
    return this.listContainers(filter, page);
  }

  /** One prepared statement per combination of filters, built from constant fragments only. */
  private listStatement(used: readonly ListFilterColumn[], hasCursor: boolean): Database.Statement {
    const key = `${used.join(',')}|${hasCursor}`;
    let stmt = this.listStatements.get(key);
    if (!stmt) {
      stmt = this.db.prepare(listSql(used, hasCursor)).raw(true);
      this.listStatements.set(key, stmt);
    }
    return stmt;
  }

  async history(containerId: string, latest?: number): Promise<TransitionRecord[]> {
    return this.run('history', () => (latest === undefined ? this.stmt.history.all(containerId) : this.stmt.latestHistory.all(containerId, latest)).map(fromTransitionRow));
  }

  async listHosts(): Promise<HostRecord[]> {
    return this.run('listHosts', () => this.stmt.listHosts.all().map(fromHostRow));
  }

  async countByState(): Promise<StateCount[]> {
    return this.run('countByState', () => this.stmt.countByState.all());
  }

  async countByHostAndState(): Promise<HostStateCount[]> {
    return this.run('countByHostAndState', () => this.stmt.countByHostAndState.all());
  }

  async health(): Promise<StoreHealth> {
    if (this.closed) return { ok: false, backend: 'sqlite', detail: 'store is closed' };
    try {
      this.stmt.ping.get();
      return { ok: true, backend: 'sqlite' };
    } catch (err) {
      return { ok: false, backend: 'sqlite', detail: (err as Error).message };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.checkpointer?.stop();
    this.db.close();
  }

  // --- helpers -------------------------------------------------------------------------------

  private run<T>(operation: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw toStoreError(err, operation);
    }
  }

  /**
   * Runs the transaction of a snapshot of `containers` containers. A big one (a host of hundreds of
   * containers) can write more than the 1,000 WAL pages of SQLite's automatic checkpoint in one
   * commit, and that commit then copied all of its own pages back and fsynced before answering: the
   * checkpoint worker cannot copy frames before they are committed. With the worker running, such a
   * commit skips the automatic checkpoint; the worker copies its pages in the background, and the
   * next commit past the threshold checkpoints what is left and restarts the WAL, as any commit does.
   * Small snapshots and transition batches are untouched (docs/architecture.md).
   */
  private bigCommit<T>(containers: number, fn: () => T): T {
    if (this.checkpointer === undefined || containers < BIG_SNAPSHOT_CONTAINERS) return fn();
    // Not prepared statements: SQLite applies this pragma when it compiles it, not when it runs.
    const pages = this.db.pragma('wal_autocheckpoint', { simple: true }) as number;
    this.db.pragma('wal_autocheckpoint = 0');
    try {
      return fn();
    } finally {
      this.db.pragma(`wal_autocheckpoint = ${Math.trunc(pages)}`);
    }
  }

  private getStored(containerId: string): Stored | undefined {
    const row = this.stmt.getContainer.get(containerId);
    return row ? { row, record: fromContainerRow(row) } : undefined;
  }

  /**
   * Writes a record. Given the stored version, only the columns that differ are updated: SQLite
   * rewrites the entries of every index whose columns appear in an UPDATE's SET list, so the full
   * upsert rewrote all ten indexes on every state change where four or fewer were touched.
   */
  /** `writtenAtSnapshotSeq`: the record's host's snapshot seq before this write (rows.ts, fromContainerRow). */
  private writeRecord(record: ContainerRecord, before: StoredContainerRow | undefined, writtenAtSnapshotSeq: number): void {
    const row = toContainerRow(record, writtenAtSnapshotSeq);
    if (!before) {
      this.stmt.upsertContainer.run(row);
      return;
    }
    const changed = CONTAINER_TABLE_COLUMNS.filter((c) => c !== 'container_id' && row[c] !== before[READ_INDEX[c]]);
    if (changed.length === 0) return;
    const stmt = this.updateStatement(changed);
    if (stmt) stmt.run(row);
    else this.stmt.upsertContainer.run(row);
  }

  /** One prepared UPDATE per set of changed columns (built from the constant column list only). */
  private updateStatement(columns: readonly ContainerColumn[]): Database.Statement | undefined {
    const key = columns.join(',');
    let stmt = this.updateStatements.get(key);
    if (!stmt) {
      // Real reports change a handful of column sets; past this many, use the full upsert.
      if (this.updateStatements.size >= MAX_UPDATE_STATEMENTS) return undefined;
      stmt = this.db.prepare(updateSql(columns));
      this.updateStatements.set(key, stmt);
    }
    return stmt;
  }

  private insertHistory(t: TransitionRecord): void {
    this.stmt.insertTransition.run(toTransitionParams(t));
    if (this.historyBound.written(t.container_id)) {
      const excess = this.historyBound.excess(this.stmt.countHistory.get(t.container_id) ?? 0);
      if (excess > 0) this.stmt.trimHistory.run(t.container_id, excess);
    }
  }

  private writeHost(r: HostReport): void {
    this.stmt.upsertHost.run({
      ...r.host,
      received_at: r.receivedAt,
      snapshot_at: r.snapshotAt,
      snapshot_seq: r.snapshotSeq,
      last_seq: r.lastSeq,
      reporter: r.reporter,
    });
  }
}
