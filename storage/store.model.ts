// A model-based property for the Store contract (storage/store.contract.ts runs it on every backend).
//
// It generates what a small fleet can send: 1-3 reconciler hosts whose containers move through the
// legal lifecycle (reconciler/machines/container.machine.ts) with increasing per-host seqs, delivered
// the way the reporter delivers its outbox (a prefix of what is not acknowledged yet, retried when
// the answer is lost, a request that arrives late after its retry, reordered or repeated within a
// batch), full snapshots of the host's containers at its last seq once the outbox is drained (one may
// arrive late, after newer transitions) whose observations may have moved without a transition, an
// acknowledged batch the server lost (an OS crash with synchronous=NORMAL, docs/architecture.md)
// while an earlier copy of it is still on its way, maps of an original agent on a host of its own,
// retention (purgeGone), silent-host retirement and hosts forgotten by hand, on a controlled clock.
//
// Beside it runs a reference model that applies the documented rules (storage/store.ts,
// storage/records.ts, docs/architecture.md) in the simplest way: one record per container, written
// through. After every step the store's answers are compared with it: records (getContainer,
// findByTask), history (each applied transition once, snapshot and host.silent rows), listings with
// filters, hosts (last_seq, report times) and counts, and every write's own result.
//
// Time is realistic where realism decides what may happen: a late request arrives within
// LATE_WINDOW minutes of being sent, a host is retired after SILENT minutes without reports, and
// gone records are purged RETENTION minutes after they went, in that order of size, as in production
// (request timeouts ≪ --host-gone-after ≪ --retention).
import fc from 'fast-check';
import { expect } from 'vitest';
import type { ContainerObservation, HostIdentity, LifecycleState, SnapshotContainer, Transition } from '../wire/index.js';
import { at, containerId, hostIdentity, instanceId, iso, legacyContainer, legacySnapshot, observation, taskArn, taskId } from './store.fixtures.js';
import { sameTransition, type ContainerFilter, type ContainerRecord, type ForgetHostResult, type HostRecord, type LegacySnapshot, type SeqConflict, type Store, type TransitionFacts, type TransitionRecord } from './store.js';

/** Minutes a delayed request may still arrive after it was sent. */
export const LATE_WINDOW = 8;
/** retireSilentHosts: hosts without a report for this many minutes. */
export const SILENT = 15;
/** purgeGone: records gone for longer than this many minutes. */
export const RETENTION = 30;
const SLOTS = 3;
const LEGACY_SLOTS = 3;
/** Containers a slot runs one after the other (a replaced task's container gets a new id). */
const GENERATIONS = 3;

const LIVE: readonly LifecycleState[] = ['pending', 'running', 'stopping', 'stopped'];

/** The lifecycle machine's moves (docs/lifecycle.md), as [to, reason]. */
const MOVES: Record<LifecycleState | 'new', Array<[LifecycleState, string]>> = {
  new: [['running', 'agent.observed'], ['pending', 'agent.observed'], ['stopped', 'agent.observed'], ['stopping', 'agent.observed']],
  pending: [['running', 'docker.started'], ['stopped', 'docker.died'], ['stopping', 'agent.observed'], ['gone', 'container.vanished']],
  running: [['running', 'container.restarted'], ['stopping', 'agent.observed'], ['stopped', 'docker.died'], ['gone', 'container.vanished']],
  stopping: [['stopped', 'agent.observed'], ['gone', 'container.vanished']],
  stopped: [['running', 'container.restarted'], ['gone', 'container.vanished']],
  gone: [],
};

const KNOWN: Record<LifecycleState, string> = { pending: 'PENDING', running: 'RUNNING', stopping: 'RUNNING', stopped: 'STOPPED', gone: 'STOPPED' };

// --- operations ------------------------------------------------------------------------------

export type Op =
  | { kind: 'emit'; host: number; slot: number; move: number; gap: number }
  | { kind: 'deliver'; host: number; size: number; rotate: number; repeat: boolean; fate: 'ok' | 'lost' | 'delayed' | 'phantom' }
  | { kind: 'late'; host: number; pick: number }
  | { kind: 'observe'; host: number; slot: number }
  | { kind: 'snapshot'; host: number; delayed: boolean }
  | { kind: 'legacy'; present: number; stopped: number }
  | { kind: 'idle'; minutes: number }
  | { kind: 'retire' }
  | { kind: 'purge' }
  /** Forget a host by hand: the original agent's (`legacy`), or a reconciler's (refused once it has sent a seq). */
  | { kind: 'forget'; host: number; legacy: boolean };

/** Delivery fates: answered, answer lost, given up on while on its way, acknowledged and then lost by the server. */
export type Fate = Extract<Op, { kind: 'deliver' }>['fate'];

/** What a plan is made of: how often each kind of op comes (fast-check weights), and how deliveries and snapshots fare. */
export interface OpMix {
  weights: Record<Op['kind'], number>;
  /** Picked uniformly: repeat a fate to make it likelier. */
  fates: readonly Fate[];
  delayedSnapshot: fc.Arbitrary<boolean>;
  length: { min: number; max: number };
}

/** The one-store property's mix (store.contract.ts). */
export const SEQUENTIAL_MIX: OpMix = {
  weights: { emit: 8, deliver: 8, late: 3, observe: 1, snapshot: 4, legacy: 1, idle: 2, retire: 1, purge: 1, forget: 1 },
  fates: ['ok', 'ok', 'ok', 'lost', 'delayed', 'phantom'],
  delayedSnapshot: fc.boolean(),
  length: { min: 1, max: 60 },
};

function opArbitrary(mix: OpMix): fc.Arbitrary<Op> {
  const host = fc.nat({ max: 2 });
  const w = mix.weights;
  return fc.oneof(
    { weight: w.emit, arbitrary: fc.record({ kind: fc.constant('emit' as const), host, slot: fc.nat({ max: SLOTS - 1 }), move: fc.nat({ max: 3 }), gap: fc.constantFrom(1, 1, 1, 2) }) },
    {
      weight: w.deliver,
      arbitrary: fc.record({
        kind: fc.constant('deliver' as const),
        host,
        size: fc.integer({ min: 1, max: 4 }),
        rotate: fc.nat({ max: 3 }),
        repeat: fc.boolean(),
        fate: fc.constantFrom(...mix.fates),
      }),
    },
    { weight: w.late, arbitrary: fc.record({ kind: fc.constant('late' as const), host, pick: fc.nat({ max: 3 }) }) },
    { weight: w.observe, arbitrary: fc.record({ kind: fc.constant('observe' as const), host, slot: fc.nat({ max: SLOTS - 1 }) }) },
    { weight: w.snapshot, arbitrary: fc.record({ kind: fc.constant('snapshot' as const), host, delayed: mix.delayedSnapshot }) },
    { weight: w.legacy, arbitrary: fc.record({ kind: fc.constant('legacy' as const), present: fc.nat({ max: 7 }), stopped: fc.nat({ max: 7 }) }) },
    { weight: w.idle, arbitrary: fc.record({ kind: fc.constant('idle' as const), minutes: fc.integer({ min: 3, max: 20 }) }) },
    { weight: w.retire, arbitrary: fc.record({ kind: fc.constant('retire' as const) }) },
    { weight: w.purge, arbitrary: fc.record({ kind: fc.constant('purge' as const) }) },
    { weight: w.forget, arbitrary: fc.record({ kind: fc.constant('forget' as const), host, legacy: fc.boolean() }) },
  );
}

export interface Plan {
  hosts: number;
  legacy: boolean;
  ops: Op[];
}

export function planArbitrary(mix: OpMix): fc.Arbitrary<Plan> {
  return fc.record({
    hosts: fc.integer({ min: 1, max: 3 }),
    legacy: fc.boolean(),
    ops: fc.array(opArbitrary(mix), { minLength: mix.length.min, maxLength: mix.length.max, size: 'max' }),
  });
}

export const planArb: fc.Arbitrary<Plan> = planArbitrary(SEQUENTIAL_MIX);

// --- the reference model ---------------------------------------------------------------------


export type ModelHistory = Pick<TransitionRecord, 'from' | 'to' | 'at' | 'host' | 'seq' | 'reason'>;

interface ModelHost {
  identity: HostIdentity;
  first_seen: string;
  last_report_at: string;
  last_snapshot_at: string | null;
  last_seq: number;
  reporter: HostRecord['reporter'];
}

const FIELDS = [
  'container_id', 'instance_id', 'cluster', 'task_family', 'task_id', 'state', 'seq', 'restart_count', 'exit_code', 'started_at',
  'first_seen', 'last_seen', 'stopped_at', 'gone_at', 'known_status', 'desired_status', 'source',
] as const satisfies ReadonlyArray<keyof ContainerRecord>;

/** The fields of a record the model predicts (the rest are the fixtures' constants). */
export type ModelRecord = Pick<ContainerRecord, (typeof FIELDS)[number]>;

export function project(r: ContainerRecord): ModelRecord {
  return Object.fromEntries(FIELDS.map((f) => [f, r[f]])) as unknown as ModelRecord;
}

/** What the server must hold, by the documented rules, written through. */
export class Model {
  readonly records = new Map<string, ModelRecord & { retired: boolean }>();
  readonly history = new Map<string, ModelHistory[]>();
  readonly hosts = new Map<string, ModelHost>();
  /** Every container id ever reported (purged ones must then be missing). */
  readonly seen = new Set<string>();

  private addHistory(id: string, row: ModelHistory): void {
    const list = this.history.get(id) ?? [];
    list.push(row);
    this.history.set(id, list);
  }

  private next(existing: ModelRecord | undefined, obs: ContainerObservation, host: HostIdentity, state: LifecycleState, seq: number, eventAt: string, receivedAt: string): ModelRecord & { retired: boolean } {
    this.seen.add(obs.container_id);
    // The invariant the seq guard exists for: what a report made gone is only brought back by a
    // later report (a record the server retired, or an original agent's map, carry no such seq).
    if (existing?.state === 'gone' && state !== 'gone' && obs.source !== 'legacy' && !this.records.get(obs.container_id)?.retired) {
      expect(seq, `model: ${obs.container_id} revived from seq ${seq}, gone at ${existing.seq}`).toBeGreaterThan(existing.seq);
    }
    return {
      container_id: obs.container_id,
      instance_id: host.instance_id,
      cluster: host.cluster,
      task_family: obs.task_family ?? existing?.task_family ?? null,
      task_id: taskId(obs.container_id),
      state,
      seq,
      restart_count: Math.max(obs.restart_count, existing?.restart_count ?? 0),
      exit_code: obs.exit_code ?? existing?.exit_code ?? null,
      started_at: obs.started_at ?? existing?.started_at ?? null,
      first_seen: existing?.first_seen ?? receivedAt,
      last_seen: receivedAt,
      stopped_at: state === 'stopped' ? (existing?.stopped_at ?? eventAt) : state === 'gone' ? (existing?.stopped_at ?? null) : null,
      gone_at: state === 'gone' ? (existing?.state === 'gone' && existing.gone_at ? existing.gone_at : receivedAt) : null,
      known_status: obs.known_status,
      desired_status: obs.desired_status,
      source: obs.source,
      retired: false,
    };
  }

  private touchHost(identity: HostIdentity, receivedAt: string, lastSeq: number, snapshot: boolean, reporter: HostRecord['reporter']): void {
    const prev = this.hosts.get(identity.instance_id);
    this.hosts.set(identity.instance_id, {
      identity,
      first_seen: prev?.first_seen ?? receivedAt,
      last_report_at: receivedAt,
      last_snapshot_at: snapshot ? receivedAt : (prev?.last_snapshot_at ?? null),
      last_seq: Math.max(prev?.last_seq ?? 0, lastSeq),
      reporter,
    });
  }

  applyTransitions(identity: HostIdentity, transitions: Transition[], receivedAt: string) {
    let lastSeq = this.hosts.get(identity.instance_id)?.last_seq ?? 0;
    let applied = 0;
    let duplicates = 0;
    const conflicting: SeqConflict[] = [];
    for (const t of [...transitions].sort((a, b) => a.seq - b.seq)) {
      if (t.seq <= lastSeq) {
        const stored = this.historyAtSeq(identity.instance_id, t.seq);
        if (stored && !sameTransition(stored, t)) conflicting.push({ seq: t.seq, stored, reported: { container_id: t.container_id, from: t.from, to: t.to } });
        else duplicates++;
        continue;
      }
      lastSeq = t.seq;
      applied++;
      const id = t.container.container_id;
      this.addHistory(id, { from: t.from, to: t.to, at: t.at, host: identity.instance_id, seq: t.seq, reason: t.reason });
      this.seen.add(id);
      const existing = this.records.get(id);
      if (existing && existing.instance_id === identity.instance_id && existing.seq >= t.seq) continue;
      this.records.set(id, this.next(existing, t.container, identity, t.to, t.seq, t.at, receivedAt));
    }
    this.touchHost(identity, receivedAt, lastSeq, false, 'reconciler');
    return { applied, duplicates, conflicts: conflicting.length, acked_seq: lastSeq, conflicting };
  }

  /** The history row a host wrote under `seq`, if history still holds it. */
  private historyAtSeq(host: string, seq: number): TransitionFacts | undefined {
    for (const [container_id, rows] of this.history) {
      const row = rows.find((r) => r.host === host && r.seq === seq);
      if (row) return { container_id, from: row.from, to: row.to };
    }
    return undefined;
  }

  replaceSnapshot(identity: HostIdentity, seq: number, containers: Array<{ obs: ContainerObservation; state: LifecycleState; eventAt: string }>, takenAt: string, receivedAt: string, reporter: HostRecord['reporter']) {
    const result = { upserted: 0, gone: 0, skipped: 0 };
    const present = new Set<string>();
    for (const { obs, state, eventAt } of containers) {
      const id = obs.container_id;
      present.add(id);
      const existing = this.records.get(id);
      const sameHost = existing !== undefined && existing.instance_id === identity.instance_id;
      if (sameHost && existing.seq > seq) {
        result.skipped++;
        continue;
      }
      const next = this.next(existing, obs, identity, state, sameHost ? Math.max(existing.seq, seq) : seq, eventAt, receivedAt);
      const changed = !existing || FIELDS.some((f) => f !== 'last_seen' && f !== 'seq' && existing[f] !== next[f]);
      if (changed) result.upserted++;
      if (existing?.state !== next.state) this.addHistory(id, { from: existing?.state ?? null, to: next.state, at: eventAt, host: identity.instance_id, seq: null, reason: 'snapshot' });
      this.records.set(id, next);
    }
    for (const r of [...this.records.values()]) {
      if (r.instance_id !== identity.instance_id || !LIVE.includes(r.state) || present.has(r.container_id)) continue;
      if (r.seq > seq) {
        result.skipped++;
        continue;
      }
      this.records.set(r.container_id, { ...r, state: 'gone', gone_at: receivedAt, seq: Math.max(r.seq, seq), retired: false });
      this.addHistory(r.container_id, { from: r.state, to: 'gone', at: takenAt, host: identity.instance_id, seq: null, reason: 'snapshot' });
      result.gone++;
    }
    this.touchHost(identity, receivedAt, 0, true, reporter);
    return result;
  }

  purgeGone(cutoff: string): number {
    let purged = 0;
    for (const r of [...this.records.values()]) {
      if (r.state !== 'gone' || r.gone_at === null || r.gone_at >= cutoff) continue;
      this.records.delete(r.container_id);
      this.history.delete(r.container_id);
      purged++;
    }
    return purged;
  }

  retireSilentHosts(since: string, atIso: string) {
    const retired = { containers: 0, forgottenHosts: 0 };
    for (const h of [...this.hosts.values()]) {
      if (h.reporter !== 'reconciler' || h.last_report_at >= since) continue;
      const id = h.identity.instance_id;
      const containers = this.markHostGone(id, atIso, 'host.silent');
      retired.containers += containers;
      if (containers === 0 && ![...this.records.values()].some((r) => r.instance_id === id)) {
        this.hosts.delete(id);
        retired.forgottenHosts++;
      }
    }
    return retired;
  }

  forgetHost(id: string, atIso: string): ForgetHostResult {
    const h = this.hosts.get(id);
    if (!h) return { outcome: 'unknown' };
    if (h.last_seq > 0) return { outcome: 'sequenced', last_seq: h.last_seq };
    const containers = this.markHostGone(id, atIso, 'host.forgotten');
    this.hosts.delete(id);
    return { outcome: 'forgotten', containers };
  }

  /** The server's own path to gone: the host's live records, each with a history row of `reason`. */
  private markHostGone(id: string, atIso: string, reason: 'host.silent' | 'host.forgotten'): number {
    let containers = 0;
    for (const r of [...this.records.values()]) {
      if (r.instance_id !== id || !LIVE.includes(r.state)) continue;
      this.records.set(r.container_id, { ...r, state: 'gone', gone_at: atIso, retired: true });
      this.addHistory(r.container_id, { from: r.state, to: 'gone', at: atIso, host: id, seq: null, reason });
      containers++;
    }
    return containers;
  }
}

// --- the fleet (what the reconcilers and the original agent send) ----------------------------
// The senders are built here apart from any store, so that other drivers (the SimpleDB replica race,
// storage/simpledb/store.replicas.test.ts) send the same reports and check them the same way.

interface Delayed {
  sentAt: number;
  send: (now: number) => Promise<void>;
}

/** A reconciler host as its reporter sees it. */
export interface ReportingHost {
  identity: HostIdentity;
  seq: number;
  /** What this host acknowledged (the server's acked_seq as it last heard it). */
  acked: number;
  outbox: Transition[];
  /** Per slot: the generation running and its container's state and last observation. */
  slots: Array<{ generation: number; state: LifecycleState | null; obs: ContainerObservation | null }>;
  delayed: Delayed[];
}

export interface Fleet {
  hosts: ReportingHost[];
  /** The host an original agent reports from. */
  legacyHost: HostIdentity;
  legacyIds: string[];
}

export function newFleet(hostCount: number): Fleet {
  return {
    hosts: Array.from({ length: hostCount }, (_, i) => ({
      identity: hostIdentity({
        instance_id: instanceId(`model-${i}`),
        cluster: i === 1 ? 'staging' : 'prod',
        instance_ip: `10.0.${i}.17`,
      }),
      seq: 0,
      acked: 0,
      outbox: [],
      slots: Array.from({ length: SLOTS }, () => ({ generation: 0, state: null, obs: null })),
      delayed: [],
    })),
    legacyHost: hostIdentity({ instance_id: instanceId('model-legacy'), cluster: 'prod', instance_ip: '10.0.9.17' }),
    legacyIds: Array.from({ length: LEGACY_SLOTS }, (_, k) => containerId(`model-legacy-${k}`)),
  };
}

/** The host an op names (ops name hosts modulo the fleet's size). */
export function hostOf(fleet: Fleet, op: { host: number }): ReportingHost {
  return fleet.hosts[op.host % fleet.hosts.length];
}

/** A lifecycle move of one slot's container, queued in the host's outbox with the next seq. */
export function emit(fleet: Fleet, op: Extract<Op, { kind: 'emit' }>, now: number): void {
  const h = hostOf(fleet, op);
  const index = fleet.hosts.indexOf(h);
  const slot = h.slots[op.slot];
  if (slot.state === 'gone') {
    if (slot.generation + 1 >= GENERATIONS) return;
    slot.generation++;
    slot.state = null;
    slot.obs = null;
  }
  const moves = MOVES[slot.state ?? 'new'];
  const [to, reason] = moves[op.move % moves.length];
  const id = containerId(`model-${index}-${op.slot}-${slot.generation}`);
  const prev = slot.obs;
  const restarted = reason === 'container.restarted';
  const obs = observation({
    container_id: id,
    task_arn: taskArn(taskId(id)),
    task_family: op.slot % 2 === 0 ? 'web' : 'worker',
    restart_count: (prev?.restart_count ?? 0) + (restarted ? 1 : 0),
    exit_code: to === 'stopped' ? [0, 1, 137][op.move % 3] : null,
    started_at: to === 'running' && (prev?.started_at == null || restarted) ? iso(now) : (prev?.started_at ?? null),
    desired_status: to === 'stopping' || to === 'gone' ? 'STOPPED' : 'RUNNING',
    known_status: KNOWN[to],
  });
  h.seq += op.gap;
  h.outbox.push({ seq: h.seq, container_id: id, from: slot.state, to, at: iso(now), reason, container: obs });
  slot.state = to;
  slot.obs = obs;
}

/**
 * The agent's view moved without a lifecycle move (ECS wants the task stopped, or no longer does):
 * no transition, but the host's next snapshot carries it.
 */
export function observe(fleet: Fleet, op: Extract<Op, { kind: 'observe' }>): void {
  const slot = hostOf(fleet, op).slots[op.slot];
  if (slot.obs === null || slot.state === 'gone') return;
  slot.obs = { ...slot.obs, desired_status: slot.obs.desired_status === 'STOPPED' ? 'RUNNING' : 'STOPPED' };
}

/**
 * What a delivery sends: a prefix of what is not acknowledged yet (`pending`, in seq order), as the
 * request carries it (`batch`: rotated, maybe with one repeated); null when nothing is pending.
 */
export function outboxBatch(h: ReportingHost, op: Extract<Op, { kind: 'deliver' }>): { pending: Transition[]; batch: Transition[] } | null {
  const pending = h.outbox.filter((t) => t.seq > h.acked).slice(0, op.size);
  if (pending.length === 0) return null;
  const batch = pending.map((_, i) => pending[(i + op.rotate) % pending.length]);
  if (op.repeat) batch.push(pending[op.rotate % pending.length]);
  return { pending, batch };
}

/** The host's full snapshot: every slot's live container as last observed. */
export function snapshotContainers(h: ReportingHost): SnapshotContainer[] {
  return h.slots.filter((s) => s.state !== null && s.state !== 'gone').map((s) => ({ ...s.obs!, state: s.state! }));
}

/** The original agent's map for a legacy op (bit k of present/stopped: container k there/stopped). */
export function legacyMap(fleet: Fleet, op: Extract<Op, { kind: 'legacy' }>, now: number): LegacySnapshot {
  const sampledAt = iso(now - 0.25);
  const containers = fleet.legacyIds
    .filter((_, k) => op.present & (1 << k))
    .map((id, k) => legacyContainer(op.stopped & (1 << k) ? 'stopped' : 'running', { container_id: id, sampled_at: sampledAt }));
  return legacySnapshot(fleet.legacyHost, containers, iso(now));
}

/** The model's side of a reconciler snapshot. */
export function modelSnapshot(model: Model, h: ReportingHost, seq: number, containers: SnapshotContainer[], takenAt: string, receivedAt: string) {
  return model.replaceSnapshot(
    h.identity,
    seq,
    containers.map(({ state, ...obs }) => ({ obs, state, eventAt: takenAt })),
    takenAt,
    receivedAt,
    'reconciler',
  );
}

/** The model's side of an original agent's map. */
export function modelLegacyMap(model: Model, map: LegacySnapshot) {
  return model.replaceSnapshot(
    map.host,
    0,
    map.containers.map((c) => ({ obs: c, state: c.state, eventAt: c.sampled_at })),
    map.received_at,
    map.received_at,
    'legacy',
  );
}

// --- checks ----------------------------------------------------------------------------------

function record(found: Awaited<ReturnType<Store['getContainer']>>): ModelRecord | 'missing' | 'ambiguous' {
  return found.kind === 'found' ? project(found.record) : found.kind;
}

function historyKey(h: ModelHistory): string {
  return JSON.stringify([h.at, h.seq, h.reason, h.from, h.to, h.host]);
}

/** Each container's record (by id, prefix and task) and history are the model's. */
export async function checkContainers(store: Store, model: Model, ids: Iterable<string>): Promise<void> {
  for (const id of new Set(ids)) {
    const want = model.records.get(id);
    const expected = want ? (({ retired: _, ...r }) => r)(want) : 'missing';
    expect(record(await store.getContainer(id)), `record ${id.slice(0, 12)}`).toEqual(expected);
    const history = await store.history(id);
    const ats = history.map((h) => h.at);
    expect(ats, `history of ${id.slice(0, 12)} is ordered by time`).toEqual([...ats].sort());
    const got = history.map(({ container_id, ...h }) => (expect(container_id).toBe(id), h)).sort((a, b) => (historyKey(a) < historyKey(b) ? -1 : 1));
    const model_ = [...(model.history.get(id) ?? [])].sort((a, b) => (historyKey(a) < historyKey(b) ? -1 : 1));
    expect(got, `history of ${id.slice(0, 12)}`).toEqual(model_);
    expect(record(await store.getContainer(id.slice(0, 12))), `record ${id.slice(0, 12)} by prefix`).toEqual(expected);
    expect((await store.findByTask(taskId(id))).map(project), `findByTask ${id.slice(0, 12)}`).toEqual(want ? [expected] : []);
    expect((await store.findByTask(taskArn(taskId(id)))).map(project), `findByTask ARN ${id.slice(0, 12)}`).toEqual(want ? [expected] : []);
  }
}

async function listAll(store: Store, filter: ContainerFilter): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 100; i++) {
    const page = await store.listContainers(filter, { limit: 4, ...(cursor ? { cursor } : {}) });
    out.push(...page.items.map((r) => JSON.stringify(project(r))));
    if (page.next_cursor === null) return out;
    cursor = page.next_cursor;
  }
  throw new Error('pagination did not end');
}

/** Listings with filters, hosts and counts are the model's (polled through `eventually`). */
export async function checkAggregates(store: Store, model: Model, fleet: Fleet, eventually: ModelRunOptions['eventually']): Promise<void> {
  const records = [...model.records.values()].map(({ retired: _, ...r }) => r).sort((a, b) => (a.container_id < b.container_id ? -1 : 1));
  const filters: ContainerFilter[] = [
    {},
    ...fleet.hosts.map((h) => ({ instance_id: h.identity.instance_id })),
    { instance_id: fleet.legacyHost.instance_id },
    ...(['pending', 'running', 'stopping', 'stopped', 'gone'] as const).map((state) => ({ state })),
    { cluster: 'prod' },
    { cluster: 'staging', state: 'running' },
    { task_family: 'worker' },
    { cluster: 'prod', task_family: 'web', state: 'gone' },
  ];
  await eventually(async () => {
    for (const filter of filters) {
      const want = records.filter((r) => Object.entries(filter).every(([k, v]) => r[k as keyof ModelRecord] === v)).map((r) => JSON.stringify(r));
      expect(await listAll(store, filter), `listContainers ${JSON.stringify(filter)}`).toEqual(want);
    }
    const hostsWant = [...model.hosts.values()]
      .map((h) => ({ ...h.identity, first_seen: h.first_seen, last_report_at: h.last_report_at, last_snapshot_at: h.last_snapshot_at, last_seq: h.last_seq, reporter: h.reporter }))
      .sort((a, b) => (a.instance_id < b.instance_id ? -1 : 1));
    expect(await store.listHosts(), 'listHosts').toEqual(hostsWant);
    const counts = new Map<string, number>();
    for (const r of records) counts.set(JSON.stringify([r.instance_id, r.state]), (counts.get(JSON.stringify([r.instance_id, r.state])) ?? 0) + 1);
    const countsWant = [...counts].map(([k, count]) => {
      const [instance_id, state] = JSON.parse(k) as [string, LifecycleState];
      return { instance_id, state, count };
    });
    countsWant.sort((a, b) => (a.instance_id !== b.instance_id ? (a.instance_id < b.instance_id ? -1 : 1) : a.state < b.state ? -1 : 1));
    expect(await store.countByHostAndState(), 'countByHostAndState').toEqual(countsWant);
  });
}

// --- one store, one step at a time -----------------------------------------------------------

export interface ModelRunOptions {
  /** Aggregate reads may lag (SimpleDB, stale reads): they are polled, once a run. */
  eventually: (assertion: () => Promise<void>) => Promise<void>;
  /** Compare every container and every aggregate after every step (cheap backends). */
  thorough: boolean;
}

/** Runs one plan against a fresh store and the model, asserting after every step. */
export async function runPlan(store: Store, plan: Plan, opts: ModelRunOptions): Promise<void> {
  const model = new Model();
  let now = 0;
  const fleet = newFleet(plan.hosts);
  const { hosts } = fleet;

  async function sendBatch(h: ReportingHost, batch: Transition[], now: number) {
    const result = await store.applyTransitions({ host: h.identity, transitions: batch }, at(now));
    expect(result, 'applyTransitions result').toEqual(model.applyTransitions(h.identity, batch, iso(now)));
    return result;
  }

  async function sendSnapshot(h: ReportingHost, seq: number, containers: SnapshotContainer[], takenAt: string, now: number) {
    const result = await store.replaceSnapshot({ host: h.identity, seq, taken_at: takenAt, containers }, at(now));
    expect(result, 'replaceSnapshot result').toEqual(modelSnapshot(model, h, seq, containers, takenAt, iso(now)));
  }

  async function step(op: Op): Promise<string[]> {
    switch (op.kind) {
      case 'emit':
        emit(fleet, op, now);
        return [];
      case 'observe':
        observe(fleet, op);
        return [];
      case 'deliver': {
        const h = hostOf(fleet, op);
        const sent = outboxBatch(h, op);
        if (sent === null) return [];
        const { pending, batch } = sent;
        const ids = pending.map((t) => t.container_id);
        if (op.fate === 'delayed') {
          h.delayed.push({ sentAt: now, send: async (when) => void (await sendBatch(h, batch, when)) });
          return [];
        }
        if (op.fate === 'phantom') {
          // Acknowledged, then lost with the server's last commits: the host moves on. An earlier
          // copy of the request may still be on its way (it timed out, this retry was answered):
          // arriving after the snapshot that follows, it stands for a batch another replica
          // committed after that snapshot though it was sent before it.
          h.acked = pending[pending.length - 1].seq;
          h.delayed.push({ sentAt: now, send: async (when) => void (await sendBatch(h, batch, when)) });
        } else {
          const result = await sendBatch(h, batch, now);
          expect(result.acked_seq).toBeGreaterThanOrEqual(pending[pending.length - 1].seq);
          if (op.fate === 'ok') h.acked = result.acked_seq;
        }
        h.outbox = h.outbox.filter((t) => t.seq > h.acked);
        return ids;
      }
      case 'late': {
        // Any request still on its way, of any host (op.host picks the first host to look at).
        for (const h of hosts) h.delayed = h.delayed.filter((d) => now - d.sentAt <= LATE_WINDOW);
        const h = [...hosts.slice(op.host % hosts.length), ...hosts].find((x) => x.delayed.length > 0);
        if (!h) return [];
        const [d] = h.delayed.splice(op.pick % h.delayed.length, 1);
        await d.send(now);
        return [...model.seen];
      }
      case 'snapshot': {
        const h = hostOf(fleet, op);
        // The reconciler sends its snapshot only with its outbox drained, at its last seq: a full
        // sync that is due sends what is queued first.
        const ids = h.outbox.map((t) => t.container_id);
        if (h.outbox.length > 0) {
          const result = await sendBatch(h, h.outbox, now);
          expect(result.acked_seq).toBeGreaterThanOrEqual(h.seq);
          h.acked = result.acked_seq;
          h.outbox = [];
          now += 0.5;
        }
        const containers = snapshotContainers(h);
        const seq = h.seq;
        const takenAt = iso(now);
        if (op.delayed) {
          h.delayed.push({ sentAt: now, send: (when) => sendSnapshot(h, seq, containers, takenAt, when) });
          return ids;
        }
        await sendSnapshot(h, seq, containers, takenAt, now);
        return [...model.seen];
      }
      case 'legacy': {
        if (!plan.legacy) return [];
        const map = legacyMap(fleet, op, now);
        const result = await store.replaceLegacySnapshot(map);
        expect(result, 'replaceLegacySnapshot result').toEqual(modelLegacyMap(model, map));
        return [...fleet.legacyIds];
      }
      case 'idle':
        now += op.minutes;
        return [];
      case 'retire': {
        const result = await store.retireSilentHosts(at(now - SILENT), at(now));
        expect(result, 'retireSilentHosts result').toEqual(model.retireSilentHosts(iso(now - SILENT), iso(now)));
        return [...model.seen];
      }
      case 'purge': {
        const before = [...model.seen];
        expect(await store.purgeGone(at(now - RETENTION)), 'purgeGone result').toBe(model.purgeGone(iso(now - RETENTION)));
        return before;
      }
      case 'forget': {
        const id = op.legacy ? fleet.legacyHost.instance_id : hostOf(fleet, op).identity.instance_id;
        expect(await store.forgetHost(id, at(now)), 'forgetHost result').toEqual(model.forgetHost(id, iso(now)));
        return [...model.seen];
      }
    }
  }

  for (const [i, op] of plan.ops.entries()) {
    let touched: string[];
    try {
      touched = await step(op);
      await checkContainers(store, model, opts.thorough ? model.seen : touched);
      if (opts.thorough) await checkAggregates(store, model, fleet, opts.eventually);
    } catch (err) {
      (err as Error).message = `after step ${i} ${JSON.stringify(op)} at minute ${now}: ${(err as Error).message}`;
      throw err;
    }
    now += 1;
  }
  await checkContainers(store, model, model.seen);
  await checkAggregates(store, model, fleet, opts.eventually);
}
