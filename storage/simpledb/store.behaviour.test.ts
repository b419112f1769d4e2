// SimpleDB-specific behaviour beyond the shared contract: the read cache, two replicas writing at
// once, metrics, and how opening fails.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Registry } from 'prom-client';
import { StoreUnavailableError } from '../store.js';
import { openStore } from '../index.js';
import { at, batch, containerId, hostIdentity, iso, legacyContainer, legacySnapshot, snapshot, snapshotContainer, transition } from '../store.fixtures.js';
import { nextRecord } from '../records.js';
import { documentAttributes, indexValue, padNumber } from './encoding.js';
import { startSimpleDbLocal, type SimpleDbLocal } from './local/index.js';
import { openSimpleDbStore, SimpleDbClient, SimpleDbError, SimpleDbStore, staticCredentials, type SimpleDbStoreConfig } from './index.js';

const KEY = { accessKeyId: 'AKIDBEHAVIOUR', secretAccessKey: 'behaviour/secret' };
let local: SimpleDbLocal;
let n = 0;
const open: SimpleDbStore[] = [];

beforeAll(async () => {
  local = await startSimpleDbLocal({ ...KEY });
});
afterAll(async () => {
  await local.close();
});
afterEach(async () => {
  local.setFaults({ failureRate: 0, staleReads: false, latencyMs: 0, appliedFailures: 0 });
  await Promise.all(open.splice(0).map((s) => s.close()));
});

function config(prefix: string, extra: Partial<SimpleDbStoreConfig> = {}): SimpleDbStoreConfig {
  return { backend: 'simpledb', region: 'us-east-1', prefix, shards: 2, endpoint: new URL(local.url), createDomains: true, ...extra };
}

async function store(prefix: string, opts: { registry?: Registry; cacheTtlMs?: number; shards?: number } = {}): Promise<SimpleDbStore> {
  const s = await openSimpleDbStore(config(prefix, opts.shards ? { shards: opts.shards } : {}), { credentials: staticCredentials(KEY), cacheTtlMs: opts.cacheTtlMs ?? 5000, maxAttempts: 10, sleep: async () => {}, ...(opts.registry ? { registry: opts.registry } : {}) });
  open.push(s);
  return s;
}

async function counter(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const values = (await metric.get()).values;
  return values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((sum, v) => sum + v.value, 0);
}

const host = hostIdentity();
const c1 = containerId('behaviour-1');

describe('read cache', () => {
  it('answers repeated lookups without a SimpleDB request and counts hits and misses', async () => {
    const registry = new Registry();
    const s = await store(`cache${n++}`, { registry });
    await s.applyTransitions(batch(host, [transition(1, 'running', { container: { container_id: c1 } })]), at(1));
    const before = await counter(registry, 'ecs_id_mapper_simpledb_requests_total');
    for (let i = 0; i < 20; i++) {
      expect((await s.getContainer(c1)).kind).toBe('found');
      expect(await s.findByTask(transition(1, 'running', { container: { container_id: c1 } }).container.task_arn!)).toHaveLength(1);
      expect((await s.history(c1)).length).toBe(1);
    }
    // one miss per lookup kind (container, task, history); every other answer came from the cache
    expect((await counter(registry, 'ecs_id_mapper_simpledb_requests_total')) - before).toBe(1 + 2 + 1);
    expect(await counter(registry, 'ecs_id_mapper_simpledb_cache_hits_total', { lookup: 'container' })).toBe(19);
    expect(await counter(registry, 'ecs_id_mapper_simpledb_cache_misses_total', { lookup: 'container' })).toBe(1);
    expect(await counter(registry, 'ecs_id_mapper_simpledb_cache_hits_total', { lookup: 'task' })).toBe(19);
    expect(s.cache.stats).toEqual({ hits: 57, misses: 3 });
  });

  it('drops cached answers when this process writes, so it reads its own writes', async () => {
    const s = await store(`cache${n++}`);
    await s.applyTransitions(batch(host, [transition(1, 'running', { container: { container_id: c1 } })]), at(1));
    expect((await s.getContainer(c1.slice(0, 16))).kind).toBe('found');
    expect(await s.findByDockerName('renamed')).toEqual([]);
    await s.applyTransitions(batch(host, [transition(2, 'stopped', { container: { container_id: c1, docker_name: 'renamed' } })]), at(2));
    const found = await s.getContainer(c1.slice(0, 16));
    expect(found.kind === 'found' && found.record.state).toBe('stopped');
    expect((await s.findByDockerName('renamed')).map((r) => r.container_id)).toEqual([c1]);
    expect((await s.history(c1)).map((h) => h.seq)).toEqual([1, 2]);
  });

  it("serves another replica's write once the TTL has passed", async () => {
    const prefix = `cache${n++}`;
    let clock = 1000; // lru-cache treats a start time of 0 as "no TTL"
    const client = new SimpleDbClient({ endpoint: new URL(local.url), credentials: staticCredentials(KEY) });
    const reader = new SimpleDbStore({ client, prefix, shards: 2, cacheTtlMs: 5000, nowMs: () => clock });
    await reader.ensureDomains(true);
    open.push(reader);
    const writer = await store(prefix);
    await writer.applyTransitions(batch(host, [transition(1, 'running', { container: { container_id: c1 } })]), at(1));
    const state = async () => {
      const r = await reader.getContainer(c1);
      return r.kind === 'found' ? r.record.state : r.kind;
    };
    expect(await state()).toBe('running');
    await writer.applyTransitions(batch(host, [transition(2, 'stopped', { container: { container_id: c1 } })]), at(2));
    clock = 5999;
    expect(await state()).toBe('running');
    clock = 6001;
    expect(await state()).toBe('stopped');
  });

  it('with TTL 0 sends every lookup to SimpleDB', async () => {
    const registry = new Registry();
    const s = await store(`cache${n++}`, { registry, cacheTtlMs: 0 });
    await s.getContainer(c1);
    await s.getContainer(c1);
    expect(await counter(registry, 'ecs_id_mapper_simpledb_requests_total', { action: 'GetAttributes' })).toBe(2);
    expect(await counter(registry, 'ecs_id_mapper_simpledb_cache_misses_total')).toBe(2);
  });
});

describe('two replicas writing at once', () => {
  it('never regress a record: overlapping replays of one host end at the highest seq, history once per seq', async () => {
    const prefix = `replicas${n++}`;
    const a = await store(prefix);
    const b = await store(prefix);
    const states = ['pending', 'running', 'stopping', 'stopped'] as const;
    const all = Array.from({ length: 12 }, (_, i) => transition(i + 1, states[i % 4], { at: iso(i + 1), container: { container_id: c1, restart_count: i } }));
    await Promise.all([
      a.applyTransitions(batch(host, all), at(20)),
      b.applyTransitions(batch(host, all.slice(0, 6)), at(20)),
      b.applyTransitions(batch(host, all.slice(3, 9)), at(20)),
      a.applyTransitions(batch(host, all.slice(0, 3)), at(20)),
    ]);
    for (const s of [a, b]) {
      const r = await s.getContainer(c1);
      expect(r.kind === 'found' && [r.record.seq, r.record.state, r.record.restart_count]).toEqual([12, 'stopped', 11]);
    }
    expect((await a.history(c1)).map((h) => h.seq)).toEqual(all.map((t) => t.seq));
    expect((await b.listHosts()).map((h) => h.last_seq)).toEqual([12]);
  });

  it('a snapshot and a later transition racing on two replicas keep the later seq', async () => {
    const prefix = `replicas${n++}`;
    const a = await store(prefix);
    const b = await store(prefix);
    for (let round = 0; round < 5; round++) {
      const id = containerId(`race-${round}`);
      await Promise.all([
        a.replaceSnapshot(snapshot(host, 10 * round + 5, [snapshotContainer('running', { container_id: id })]), at(round)),
        b.applyTransitions(batch(host, [transition(10 * round + 9, 'stopped', { container: { container_id: id } })]), at(round)),
      ]);
      const r = await a.getContainer(id);
      expect(r.kind === 'found' && [r.record.state, r.record.seq]).toEqual(['stopped', 10 * round + 9]);
    }
  });

  it('a replica holding a purged container\'s old version cannot write over the container when it comes back', async () => {
    const prefix = `replicas${n++}`;
    const a = await store(prefix, { cacheTtlMs: 0 });
    const b = await store(prefix, { cacheTtlMs: 0 });
    await a.applyTransitions(batch(host, [transition(1, 'running', { container: { container_id: c1 } })]), at(1));
    await b.replaceSnapshot(snapshot(host, 2, []), at(2));
    expect(await b.purgeGone(at(100))).toBe(1);
    await b.replaceSnapshot(snapshot(host, 10, [snapshotContainer('running', { container_id: c1 })]), at(10));
    // A late transition (above the host's last seq, below the record's): history only.
    await a.applyTransitions(batch(host, [transition(5, 'stopped', { from: 'running', container: { container_id: c1, exit_code: 137 } })]), at(11));
    const r = await b.getContainer(c1);
    expect(r.kind === 'found' && [r.record.state, r.record.seq, r.record.first_seen]).toEqual(['running', 10, iso(10)]);
  });

  it('a replica whose last write of a record is out of date writes no history for a change that never happened', async () => {
    const prefix = `replicas${n++}`;
    const a = await store(prefix, { cacheTtlMs: 0 });
    const b = await store(prefix, { cacheTtlMs: 0 });
    await a.applyTransitions(batch(host, [transition(1, 'running', { container: { container_id: c1 } })]), at(1));
    await b.applyTransitions(batch(host, [transition(2, 'stopped', { from: 'running', reason: 'docker.died', container: { container_id: c1 } })]), at(2));
    expect(await b.retireSilentHosts(at(30), at(40))).toEqual({ containers: 1, forgottenHosts: 0 });
    // The host is back; its snapshot reaches a, which last wrote c1 as running.
    await a.replaceSnapshot(snapshot(host, 2, [snapshotContainer('stopped', { container_id: c1 })], iso(50)), at(50));
    expect((await a.history(c1)).map((h) => `${h.from} -> ${h.to} (${h.reason})`)).toEqual([
      'null -> running (agent.observed)',
      'running -> stopped (docker.died)',
      'stopped -> gone (host.silent)',
      'gone -> stopped (snapshot)',
    ]);
  });

  it('two replicas retiring a silent host at once write one history row per record', async () => {
    const prefix = `replicas${n++}`;
    const a = await store(prefix, { cacheTtlMs: 0 });
    const b = await store(prefix, { cacheTtlMs: 0 });
    await a.applyTransitions(batch(host, [transition(1, 'running', { container: { container_id: c1 } })]), at(1));
    // b has read the host's live records and is about to write their history when a's pass runs.
    const client = (b as unknown as { client: SimpleDbClient }).client;
    const putRows = client.batchPutAttributes.bind(client);
    let arrived!: () => void;
    let proceed!: () => void;
    const atRows = new Promise<void>((resolve) => (arrived = resolve));
    const go = new Promise<void>((resolve) => (proceed = resolve));
    client.batchPutAttributes = async (domain, items) => {
      arrived();
      await go;
      return putRows(domain, items);
    };
    // Each replica retires at its own clock's time.
    const second = b.retireSilentHosts(at(30), new Date(at(40).getTime() + 1000));
    await atRows;
    const first = await a.retireSilentHosts(at(30), at(40));
    proceed();
    expect([first.containers, (await second).containers]).toEqual([1, 0]);
    expect((await a.history(c1)).map((h) => `${h.from} -> ${h.to} (${h.reason})`)).toEqual(['null -> running (agent.observed)', 'running -> gone (host.silent)']);
  });

  it('a host that reports to another replica after a retirement pass listed it as silent keeps its records', async () => {
    const prefix = `replicas${n++}`;
    const a = await store(prefix, { cacheTtlMs: 0 });
    const b = await store(prefix, { cacheTtlMs: 0 });
    const c2 = containerId('behaviour-2');
    await a.applyTransitions(batch(host, [transition(1, 'running', { container: { container_id: c1 } }), transition(2, 'running', { container: { container_id: c2 } })]), at(1));
    // b's pass has read the host list (the host silent since minute 1) when the host's heartbeat,
    // a batch without transitions, reaches a: it changes no record, only the host's last report.
    const client = (b as unknown as { client: SimpleDbClient }).client;
    const selectAll = client.selectAll.bind(client);
    client.selectAll = async (expression, opts) => {
      const items = await selectAll(expression, opts);
      if (expression.includes(b.domains.hosts)) await a.applyTransitions(batch(host, []), at(35));
      return items;
    };
    expect(await b.retireSilentHosts(at(30), at(40))).toEqual({ containers: 0, forgottenHosts: 0 });
    for (const id of [c1, c2]) {
      const r = await a.getContainer(id);
      expect(r.kind === 'found' && r.record.state).toBe('running');
    }
  });
});

describe('writes SimpleDB applied but answered with an error', () => {
  // The local endpoint's appliedFailures: the next N writes take effect, then answer 500
  // InternalError; the client retries them, and a conditional retry meets the write it repeats.
  it('a snapshot counts and records its changes as if nothing had failed', async () => {
    const s = await store(`applied${n++}`, { cacheTtlMs: 0 });
    const c2 = containerId('behaviour-2');
    await s.replaceSnapshot(snapshot(host, 1, [snapshotContainer('running', { container_id: c1 }), snapshotContainer('running', { container_id: c2 })]), at(1));
    // c1's write and c2's (gone): both applied, both answered 500.
    local.setFaults({ appliedFailures: 2 });
    expect(await s.replaceSnapshot(snapshot(host, 2, [snapshotContainer('stopped', { container_id: c1 })]), at(2))).toEqual({ upserted: 1, gone: 1, skipped: 0 });
    expect(local.faults().appliedFailures).toBe(0);
    expect((await s.history(c1)).map((h) => `${h.from}->${h.to}`)).toEqual(['null->running', 'running->stopped']);
    expect((await s.history(c2)).map((h) => `${h.from}->${h.to}`)).toEqual(['null->running', 'running->gone']);
  });

  it('a transition batch is applied once, and the host keeps its last seq', async () => {
    const s = await store(`applied${n++}`, { cacheTtlMs: 0 });
    // The history write, the record's and the host's: each applied, answered 500, and sent again.
    local.setFaults({ appliedFailures: 3 });
    expect(await s.applyTransitions(batch(host, [transition(1, 'running', { container: { container_id: c1 } }), transition(2, 'stopped', { from: 'running', container: { container_id: c1 } })]), at(1))).toEqual({
      applied: 2,
      duplicates: 0,
      conflicts: 0,
      acked_seq: 2,
      conflicting: [],
    });
    expect(local.faults().appliedFailures).toBe(0);
    const r = await s.getContainer(c1);
    expect(r.kind === 'found' && [r.record.state, r.record.seq]).toEqual(['stopped', 2]);
    expect((await s.history(c1)).map((h) => h.seq)).toEqual([1, 2]);
    expect((await s.listHosts()).map((h) => h.last_seq)).toEqual([2]);
  });

  it('a snapshot that failed part-way and is sent again records every change once', async () => {
    const s = await store(`partial${n++}`, { cacheTtlMs: 0 });
    const c2 = containerId('behaviour-2');
    await s.replaceSnapshot(snapshot(host, 1, [snapshotContainer('running', { container_id: c1 }), snapshotContainer('running', { container_id: c2 })]), at(1));
    // c1's change goes through; c2's write fails past the retries (a 503 burst): the report is refused.
    const client = (s as unknown as { client: SimpleDbClient }).client;
    const put = client.putAttributes.bind(client);
    let failed = false;
    client.putAttributes = async (domain, item, attributes, expected) => {
      if (item === c2 && !failed) {
        failed = true;
        throw new SimpleDbError('ServiceUnavailable', 'Service AmazonSimpleDB is currently unavailable.', 'PutAttributes', 503, null, 0);
      }
      return put(domain, item, attributes, expected);
    };
    const next = snapshot(host, 2, [snapshotContainer('stopped', { container_id: c1 })]);
    await expect(s.replaceSnapshot(next, at(2))).rejects.toBeInstanceOf(StoreUnavailableError);
    // The daemon sends it again.
    await s.replaceSnapshot(next, at(2));
    expect((await s.history(c1)).map((h) => `${h.from}->${h.to}`)).toEqual(['null->running', 'running->stopped']);
    expect((await s.history(c2)).map((h) => `${h.from}->${h.to}`)).toEqual(['null->running', 'running->gone']);
  });

  it('a purge deletes the record and its history, and counts it', async () => {
    const s = await store(`applied${n++}`, { cacheTtlMs: 0 });
    await s.replaceSnapshot(snapshot(host, 1, [snapshotContainer('running', { container_id: c1 })]), at(1));
    await s.replaceSnapshot(snapshot(host, 2, []), at(2));
    local.setFaults({ appliedFailures: 1 });
    expect(await s.purgeGone(at(100))).toBe(1);
    expect(local.faults().appliedFailures).toBe(0);
    expect((await s.getContainer(c1)).kind).toBe('missing');
    expect(await s.history(c1)).toEqual([]);
  });

  it('a purge that failed part-way leaves no history behind once it runs again', async () => {
    const s = await store(`partial${n++}`, { cacheTtlMs: 0 });
    await s.replaceSnapshot(snapshot(host, 1, [snapshotContainer('running', { container_id: c1 })]), at(1));
    await s.replaceSnapshot(snapshot(host, 2, []), at(2));
    // Deleting the history fails past the retries (a 503 burst): the pass is refused.
    const client = (s as unknown as { client: SimpleDbClient }).client;
    const batchDelete = client.batchDeleteAttributes.bind(client);
    let failed = false;
    client.batchDeleteAttributes = async (domain, items) => {
      if (!failed) {
        failed = true;
        throw new SimpleDbError('ServiceUnavailable', 'Service AmazonSimpleDB is currently unavailable.', 'BatchDeleteAttributes', 503, null, 0);
      }
      return batchDelete(domain, items);
    };
    await expect(s.purgeGone(at(100))).rejects.toBeInstanceOf(StoreUnavailableError);
    // The next purge interval.
    expect(await s.purgeGone(at(100))).toBe(1);
    expect((await s.getContainer(c1)).kind).toBe('missing');
    expect(await s.history(c1)).toEqual([]);
  });
});

describe('the history bound', () => {
  it('applies the report when trimming a history fails, logs it once per try, and trims at the next tenth', async () => {
    const lines: Array<{ level: number; msg: string; container_id?: string }> = [];
    const logger = pino({ level: 'warn' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const s = await openSimpleDbStore(config(`bound${n++}`), { credentials: staticCredentials(KEY), cacheTtlMs: 5000, maxAttempts: 3, sleep: async () => {}, historyLimit: 10, logger });
    open.push(s);
    const client = (s as unknown as { client: SimpleDbClient }).client;
    const selectAll = client.selectAll.bind(client);
    let failTrims = true;
    client.selectAll = async (expression, opts) => {
      if (failTrims && expression.includes('`stamp`')) throw new SimpleDbError('ServiceUnavailable', 'injected', 'Select', 503, null, 0);
      return selectAll(expression, opts);
    };
    const restart = (seq: number) => transition(seq, seq % 2 === 1 ? 'running' : 'stopped', { container: { container_id: c1 } });
    for (let seq = 1; seq <= 12; seq++) expect((await s.applyTransitions(batch(host, [restart(seq)]), at(seq))).applied).toBe(1);
    expect(await s.history(c1)).toHaveLength(12);
    const warnings = lines.filter((l) => /trimming a container's history/.test(l.msg));
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings[0]).toMatchObject({ level: 40, container_id: c1 });
    failTrims = false;
    await s.applyTransitions(batch(host, [restart(13)]), at(13));
    expect((await s.history(c1)).map((h) => h.seq)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  });
});

describe('pending legacy events', () => {
  it('are asked about only for keys new to their container, and forgotten by the purge after an hour', async () => {
    const registry = new Registry();
    const s = await store(`pending${n++}`, { registry, cacheTtlMs: 0 });
    const lc = legacyContainer('running', { container_id: c1 });
    const selects = () => counter(registry, 'ecs_id_mapper_simpledb_requests_total', { action: 'Select' });
    await s.replaceLegacySnapshot(legacySnapshot(host, [lc], iso(1)));
    const before = await selects();
    await s.replaceLegacySnapshot(legacySnapshot(host, [lc], iso(2)));
    // The host's live records: one Select per shard; nothing about pending events.
    expect((await selects()) - before).toBe(2);
    const later = legacyContainer('running', { container_id: containerId('behaviour-late') });
    await s.recordLegacyEvent({ event_id: later.legacy_key, event: 'added', at: new Date(Date.now() - 2 * 3_600_000).toISOString() }, null);
    await s.purgeGone(at(0));
    await s.replaceLegacySnapshot(legacySnapshot(host, [lc, later], iso(3)));
    expect((await s.history(later.container_id)).map((h) => h.reason)).toEqual(['snapshot']);
  });

  it('are written by a map that failed part-way and is sent again', async () => {
    const s = await store(`pending${n++}`, { cacheTtlMs: 0 });
    const lc = legacyContainer('running', { container_id: c1 });
    // The agent posts the added event before the map that brings its key.
    await s.recordLegacyEvent({ event_id: lc.legacy_key, event: 'added', at: iso(1) }, host.instance_id);
    // The map writes the record; then SimpleDB fails past the retries (a 503 burst): the map is refused.
    const client = (s as unknown as { client: SimpleDbClient }).client;
    const batchPut = client.batchPutAttributes.bind(client);
    let failed = false;
    client.batchPutAttributes = async (domain, items) => {
      if (items.some((i) => i.name.startsWith('e:')) && !failed) {
        failed = true;
        throw new SimpleDbError('ServiceUnavailable', 'Service AmazonSimpleDB is currently unavailable.', 'BatchPutAttributes', 503, null, 0);
      }
      return batchPut(domain, items);
    };
    const map = legacySnapshot(host, [lc], iso(2));
    await expect(s.replaceLegacySnapshot(map)).rejects.toBeInstanceOf(StoreUnavailableError);
    // The agent's next map.
    await s.replaceLegacySnapshot(map);
    expect((await s.history(c1)).map((h) => `${h.reason} ${h.from}->${h.to}`).sort()).toEqual(['legacy.added null->null', 'snapshot null->running']);
  });
});

describe('metrics', () => {
  it('counts requests by action and code (ok zero-initialised) and sums BoxUsage', async () => {
    const registry = new Registry();
    const s = await store(`metrics${n++}`, { registry });
    const text = await registry.metrics();
    expect(text).toMatch(/^ecs_id_mapper_simpledb_requests_total\{action="BatchDeleteAttributes",code="ok"\} 0$/m);
    await s.applyTransitions(batch(host, [transition(1, 'running', { container: { container_id: c1 } })]), at(1));
    expect(await counter(registry, 'ecs_id_mapper_simpledb_requests_total', { action: 'PutAttributes', code: 'ok' })).toBe(2);
    expect(await counter(registry, 'ecs_id_mapper_simpledb_box_usage_hours_total')).toBeGreaterThan(0);
  });

  it('counts failed answers under their SimpleDB code', async () => {
    const registry = new Registry();
    const s = await store(`metrics${n++}`, { registry });
    local.setFaults({ failureRate: 1 });
    await expect(s.getContainer(c1)).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(await counter(registry, 'ecs_id_mapper_simpledb_requests_total', { action: 'GetAttributes', code: 'ServiceUnavailable' })).toBe(10);
    expect(await s.health()).toMatchObject({ ok: false, backend: 'simpledb', detail: expect.stringMatching(/ServiceUnavailable/) });
  });
});

describe('counting by host and state', () => {
  it('costs one Select per shard for 50 hosts × 30 containers, as does a scan of the running; the ordered listings cost several times more', async () => {
    const registry = new Registry();
    const s = await store(`count${n++}`, { registry, shards: 3 });
    // Seeded with BatchPutAttributes (60 requests instead of ~1,750 through replaceSnapshot): the
    // document, its version and the two index attributes the count and the listing read.
    const seeder = new SimpleDbClient({ endpoint: new URL(local.url), credentials: staticCredentials(KEY) });
    const hosts = Array.from({ length: 50 }, (_, h) => hostIdentity({ instance_id: `i-${h.toString(16).padStart(17, '0')}` }));
    const items = hosts.flatMap((hostId, h) =>
      Array.from({ length: 30 }, (_, c) => {
        const state = c % 10 === 0 ? 'stopped' : 'running';
        const record = nextRecord(undefined, snapshotContainer(state, { container_id: containerId(`count-${h}-${c}`) }), { host: hostId, state, seq: 1, eventAt: iso(1), receivedAt: iso(1) });
        return {
          shard: s.shardOf(record.container_id),
          item: {
            name: record.container_id,
            attributes: [
              ...documentAttributes(record),
              { name: 'ver', value: padNumber(1), replace: true },
              { name: 'instance_id', value: indexValue(record.instance_id), replace: true },
              { name: 'state', value: indexValue(record.state), replace: true },
              { name: 'cluster', value: indexValue(record.cluster), replace: true },
            ],
          },
        };
      }),
    );
    try {
      for (const shard of s.domains.containers) {
        const mine = items.filter((i) => i.shard === shard).map((i) => i.item);
        for (let i = 0; i < mine.length; i += 25) await seeder.batchPutAttributes(shard, mine.slice(i, i + 25));
      }
    } finally {
      await seeder.close();
    }
    const selects = () => counter(registry, 'ecs_id_mapper_simpledb_requests_total', { action: 'Select' });

    const before = await selects();
    const counts = await s.countByHostAndState();
    expect((await selects()) - before).toBe(3);
    expect(counts).toHaveLength(100);
    expect(counts.filter((c) => c.state === 'running').map((c) => c.count)).toEqual(hosts.map(() => 27));
    expect(counts.filter((c) => c.state === 'stopped').map((c) => c.count)).toEqual(hosts.map(() => 3));
    expect(counts.map((c) => c.instance_id)).toEqual(hosts.flatMap((h) => [h.instance_id, h.instance_id]));

    // The count behind the containers gauge (every /metrics scrape): one page per shard as well,
    // where SimpleDB's default page of 100 items took 16 Selects for these 1,500 records.
    const beforeStates = await selects();
    expect(await s.countByState()).toEqual([
      { state: 'running', cluster: 'prod', count: 1350 },
      { state: 'stopped', cluster: 'prod', count: 150 },
    ]);
    expect((await selects()) - beforeStates).toBe(3);

    // What GET /v2/hosts did before: page through every record, 1000 a page, every shard per page.
    const beforeListing = await selects();
    let cursor: string | undefined;
    let records = 0;
    do {
      const page = await s.listContainers({}, { limit: 1000, ...(cursor ? { cursor } : {}) });
      records += page.items.length;
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    expect(records).toBe(1500);
    const listingSelects = (await selects()) - beforeListing;
    // Measured: 6 Selects (2 pages × 3 shards) carrying ~2,500 full documents, against 3 Selects of two short attributes.
    expect(listingSelects).toBeGreaterThanOrEqual(6);

    // What the container_info refresh reads (api/container-info.ts): every running record, by a
    // scan that reads each shard once, where the ordered listing merged every shard for each page.
    const running = async (read: 'listContainers' | 'scanContainers') => {
      const start = await selects();
      const seen: string[] = [];
      let next: string | undefined;
      do {
        const page = await s[read]({ state: 'running' }, { limit: 1000, ...(next ? { cursor: next } : {}) });
        seen.push(...page.items.map((r) => r.container_id));
        next = page.next_cursor ?? undefined;
      } while (next);
      return { ids: seen.sort(), selects: (await selects()) - start };
    };
    const listed = await running('listContainers');
    const scanned = await running('scanContainers');
    expect(scanned.ids).toHaveLength(1350);
    expect(scanned.ids).toEqual(listed.ids);
    expect(scanned.selects).toBe(3);
    expect(listed.selects).toBeGreaterThanOrEqual(6);
  }, 60_000);

  it('lists 250 hosts with one Select (2,500 items a page; /v2/hosts and every /metrics scrape list them)', async () => {
    const registry = new Registry();
    const s = await store(`hosts${n++}`, { registry, shards: 1 });
    const seeder = new SimpleDbClient({ endpoint: new URL(local.url), credentials: staticCredentials(KEY) });
    const hosts = Array.from({ length: 250 }, (_, h) => ({
      ...hostIdentity({ instance_id: `i-${h.toString(16).padStart(17, '0')}` }),
      first_seen: iso(1),
      last_report_at: iso(2),
      last_snapshot_at: null,
      last_seq: h,
      reporter: 'reconciler' as const,
    }));
    try {
      for (let i = 0; i < hosts.length; i += 25) {
        await seeder.batchPutAttributes(
          s.domains.hosts,
          hosts.slice(i, i + 25).map((h) => ({ name: h.instance_id, attributes: [...documentAttributes(h), { name: 'ver', value: padNumber(1), replace: true }] })),
        );
      }
    } finally {
      await seeder.close();
    }
    const before = await counter(registry, 'ecs_id_mapper_simpledb_requests_total', { action: 'Select' });
    expect(await s.listHosts()).toEqual(hosts);
    // SimpleDB's default page of 100 items took 3.
    expect((await counter(registry, 'ecs_id_mapper_simpledb_requests_total', { action: 'Select' })) - before).toBe(1);
  });
});

describe('retiring silent hosts', () => {
  it('reads a retired host\'s records once: later passes cost the host list only, until the host reports again', async () => {
    const registry = new Registry();
    const s = await store(`retire${n++}`, { registry, cacheTtlMs: 0 });
    await s.applyTransitions(batch(host, [transition(1, 'running', { container: { container_id: c1 } })]), at(0));
    const selects = () => counter(registry, 'ecs_id_mapper_simpledb_requests_total', { action: 'Select' });

    expect(await s.retireSilentHosts(at(30), at(60))).toEqual({ containers: 1, forgottenHosts: 0 });
    const afterFirst = await selects();
    expect(await s.retireSilentHosts(at(30), at(70))).toEqual({ containers: 0, forgottenHosts: 0 });
    expect((await selects()) - afterFirst).toBe(1);

    await s.applyTransitions(batch(host, [transition(2, 'running', { from: 'running', reason: 'container.restarted', container: { container_id: c1 } })]), at(80));
    expect((await s.getContainer(c1)).kind === 'found' && ((await s.getContainer(c1)) as { record: { state: string } }).record.state).toBe('running');
    expect(await s.retireSilentHosts(at(90), at(150))).toEqual({ containers: 1, forgottenHosts: 0 });
  });
});

describe('forgetting a host by hand', () => {
  type Deleting = { deleteAttributes: (...args: unknown[]) => Promise<void> };
  /** Runs `meanwhile` (another replica's write) just before the store's next DeleteAttributes. */
  function beforeNextDelete(s: SimpleDbStore, meanwhile: () => Promise<unknown>): void {
    const client = (s as unknown as { client: Deleting }).client;
    const original = client.deleteAttributes.bind(client);
    client.deleteAttributes = async (...args: unknown[]) => {
      client.deleteAttributes = original;
      await meanwhile();
      return original(...args);
    };
  }
  const legacyHost = hostIdentity({ instance_id: 'i-0fe1c0ffee0000001' });
  const c2 = containerId('behaviour-2');

  it("keeps a host whose reconciler sent its first seq on another replica while it was being forgotten", async () => {
    const prefix = `forget${n++}`;
    const a = await store(prefix, { cacheTtlMs: 0 });
    const b = await store(prefix, { cacheTtlMs: 0 });
    await a.replaceLegacySnapshot(legacySnapshot(legacyHost, [legacyContainer('running', { container_id: c1 })], iso(0)));
    beforeNextDelete(a, () => b.applyTransitions(batch(legacyHost, [transition(1, 'running', { container: { container_id: c2 } })]), at(59)));

    expect(await a.forgetHost(legacyHost.instance_id, at(60))).toEqual({ outcome: 'sequenced', last_seq: 1 });

    expect((await a.listHosts({ consistent: true })).map((h) => [h.instance_id, h.last_seq, h.reporter])).toEqual([[legacyHost.instance_id, 1, 'reconciler']]);
    expect(await a.getContainer(c2)).toMatchObject({ record: { state: 'running' } });
  });

  it('forgets a host an original agent reported to on another replica meanwhile: the operator said it is gone', async () => {
    const prefix = `forget${n++}`;
    const a = await store(prefix, { cacheTtlMs: 0 });
    const b = await store(prefix, { cacheTtlMs: 0 });
    await a.replaceLegacySnapshot(legacySnapshot(legacyHost, [legacyContainer('running', { container_id: c1 })], iso(0)));
    beforeNextDelete(a, () => b.replaceLegacySnapshot(legacySnapshot(legacyHost, [legacyContainer('running', { container_id: c1, sampled_at: iso(59) })], iso(59))));

    expect(await a.forgetHost(legacyHost.instance_id, at(60))).toEqual({ outcome: 'forgotten', containers: 1 });

    expect(await a.listHosts({ consistent: true })).toEqual([]);
    expect(await a.getContainer(c1)).toMatchObject({ record: { state: 'gone' } });
  });
});

describe('opening', () => {
  it('openStore builds an instrumented SimpleDB store from a simpledb:// config', async () => {
    const registry = new Registry();
    const s = await openStore(config(`open${n++}`), { registry, simpledb: { credentials: staticCredentials(KEY), cacheTtlMs: 1000 } });
    try {
      expect(s.backend).toBe('simpledb');
      expect(await s.health()).toEqual({ ok: true, backend: 'simpledb' });
      const text = await registry.metrics();
      expect(text).toMatch(/ecs_id_mapper_storage_operation_duration_seconds_count\{backend="simpledb",operation="health",result="ok"\} 1/);
      expect(text).toMatch(/ecs_id_mapper_simpledb_requests_total\{action="CreateDomain",code="ok"\} 4/);
    } finally {
      await s.close();
    }
  });

  it('names the missing domains when create_domains is off', async () => {
    const err = await openSimpleDbStore(config(`absent${n++}`, { createDomains: false }), { credentials: staticCredentials(KEY) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).message).toMatch(/^SimpleDB domains missing at http:\/\/127\.0\.0\.1:\d+: absent\d+_containers_0, absent\d+_containers_1, absent\d+_transitions, absent\d+_hosts \(create them, or add create_domains=true to --store\)$/);
  });

  it('refuses another shard count once the domains hold records, naming the count they were written with', async () => {
    const prefix = `reshard${n++}`;
    const first = await store(prefix, { shards: 2 });
    await first.replaceSnapshot(snapshot(host, 1, [1, 2, 3, 4, 5, 6].map((i) => snapshotContainer('running', { container_id: containerId(`reshard-${i}`) }))), at(1));
    for (const shards of [1, 3, 8]) {
      const err = await openSimpleDbStore(config(prefix, { shards }), { credentials: staticCredentials(KEY) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as Error).message).toBe(
        `the SimpleDB store "${prefix}" holds records in 2 container shards, but --store says shards=${shards}: ` +
          "a record's shard is its id modulo the shard count, fixed when the store is created, so start with shards=2 (docs/simpledb.md)",
      );
    }
    // Nothing was created by the refused opens: the store still opens with its own count.
    const again = await openSimpleDbStore(config(prefix, { shards: 2, createDomains: false }), { credentials: staticCredentials(KEY) });
    open.push(again);
    expect((await again.listContainers({}, { limit: 10 })).items).toHaveLength(6);
  });

  /** A record's shard under `shards` domains, as the store places it (shardOf). */
  const shardNumber = (id: string, shards: number) => Number.parseInt(id.slice(0, 8), 16) % shards;
  /** `count` container ids from `seed` that `keep` takes. */
  function idsInShards(count: number, seed: string, keep: (id: string) => boolean): string[] {
    const ids: string[] = [];
    for (let i = 0; ids.length < count; i++) {
      const id = containerId(`${seed}-${i}`);
      if (keep(id)) ids.push(id);
    }
    return ids;
  }

  it('refuses fewer shards when the last shards are empty but the others hold records', async () => {
    const prefix = `reshard${n++}`;
    const first = await store(prefix, { shards: 3 });
    // Records in shards 0 and 1 of 3 only: the third domain stays empty.
    const ids = idsInShards(8, 'reshard-low', (id) => shardNumber(id, 3) !== 2);
    await first.replaceSnapshot(snapshot(host, 1, ids.map((id) => snapshotContainer('running', { container_id: id }))), at(1));
    const err = await openSimpleDbStore(config(prefix, { shards: 2 }), { credentials: staticCredentials(KEY) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).message).toBe(
      `the SimpleDB store "${prefix}" holds records in 3 container shards, but --store says shards=2: ` +
        "a record's shard is its id modulo the shard count, fixed when the store is created, so start with shards=3 (docs/simpledb.md)",
    );
  });

  it('takes fewer shards when every record is in its shard under the new count (4 to 2 with the last two empty)', async () => {
    const prefix = `reshard${n++}`;
    const first = await store(prefix, { shards: 4 });
    const ids = idsInShards(6, 'reshard-even', (id) => shardNumber(id, 4) < 2);
    await first.replaceSnapshot(snapshot(host, 1, ids.map((id) => snapshotContainer('running', { container_id: id }))), at(1));
    const s = await store(prefix, { shards: 2 });
    for (const id of ids) expect((await s.getContainer(id)).kind).toBe('found');
  });

  it('takes another shard count while the container domains are still empty', async () => {
    const prefix = `reshard${n++}`;
    await store(prefix, { shards: 2 });
    const s = await store(prefix, { shards: 3 });
    expect((await s.health()).ok).toBe(true);
  });

  it('opens without creating when the domains exist', async () => {
    const prefix = `exists${n++}`;
    await store(prefix);
    const s = await openSimpleDbStore(config(prefix, { createDomains: false }), { credentials: staticCredentials(KEY) });
    open.push(s);
    expect((await s.health()).ok).toBe(true);
  });

  it('fails with one readable line when there are no credentials to sign with, and counts it', async () => {
    const registry = new Registry();
    const none = async () => {
      throw new Error('Could not load credentials from any providers');
    };
    const err = await openSimpleDbStore(config(`nocreds${n++}`, { createDomains: false }), { credentials: none, registry }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).message).toBe(
      'SimpleDB open failed: SimpleDB DomainMetadata: ERR_SIMPLEDB_CREDENTIALS: no AWS credentials to sign with: Could not load credentials from any providers (set --aws-access-key-id and --aws-secret-access-key, --vault-addr, or give the task a role)',
    );
    // Opening first reads the metadata of both container shards, together.
    expect(await counter(registry, 'ecs_id_mapper_simpledb_requests_total', { action: 'DomainMetadata', code: 'ERR_SIMPLEDB_CREDENTIALS' })).toBe(2);
  });

  it('answers lookups 503, not 500, when credentials stop refreshing after start', async () => {
    let failing = false;
    const flaky = async () => {
      if (failing) throw new Error('Failed to load credentials from the ECS task role endpoint');
      return KEY;
    };
    const s = await openSimpleDbStore(config(`refresh${n++}`, { createDomains: true }), { credentials: flaky, cacheTtlMs: 0 });
    open.push(s);
    failing = true;
    const err = await s.getContainer(c1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).message).toMatch(/ERR_SIMPLEDB_CREDENTIALS: no AWS credentials to sign with: Failed to load credentials from the ECS task role endpoint/);
    expect((await s.health()).ok).toBe(false);
  });

  it('fails with one readable line on wrong credentials', async () => {
    const err = await openSimpleDbStore(config(`creds${n++}`), { credentials: staticCredentials({ ...KEY, secretAccessKey: 'wrong' }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).message).toMatch(/^SimpleDB open failed: SimpleDB DomainMetadata: SignatureDoesNotMatch: [^\n]+$/);
  });
});

describe('strings SimpleDB cannot carry', () => {
  it('finds nothing for lookups holding a lone surrogate, without asking SimpleDB', async () => {
    const registry = new Registry();
    const s = await store(`surrogate${n++}`, { registry });
    const before = await counter(registry, 'ecs_id_mapper_simpledb_requests_total');
    const lone = 'ecs-web-\ud800-x';
    expect(await s.findByDockerName(lone)).toEqual([]);
    expect(await s.history(lone)).toEqual([]);
    expect((await s.listContainers({ cluster: lone }, { limit: 5 })).items).toEqual([]);
    await s.recordLegacyEvent({ event_id: lone, event: 'added', at: iso(1) }, '\udc00');
    expect(await counter(registry, 'ecs_id_mapper_simpledb_requests_total')).toBe(before);
  });
});
