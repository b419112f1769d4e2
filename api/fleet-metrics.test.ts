import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../storage/index.js';
import { at, batch, containerId, hostIdentity, instanceId, transition } from '../storage/store.fixtures.js';
import { registerFleetMetrics } from './fleet-metrics.js';

describe('fleet metrics', () => {
  let store: Store;
  let registry: Registry;
  let now: Date;

  beforeEach(async () => {
    store = await openStore({ backend: 'sqlite', path: ':memory:' });
    registry = new Registry();
    now = at(0);
    registerFleetMetrics(registry, { store, hostStaleAfterMs: 15 * 60_000, now: () => now, minRefreshMs: 0 });
  });

  afterEach(() => store.close());

  async function report(host: string, minute: number, containers: Array<{ id: string; to: 'running' | 'stopped' }>) {
    const transitions = containers.map((c, i) => transition(minute * 100 + i + 1, c.to, { container: { container_id: c.id } }));
    await store.applyTransitions(batch(hostIdentity({ instance_id: host }), transitions), at(minute));
  }

  it('exposes one info series per running container, with the task labels that join cAdvisor series', async () => {
    await report(instanceId('a'), 0, [{ id: containerId(1), to: 'running' }, { id: containerId(2), to: 'stopped' }]);
    const text = await registry.metrics();
    const info = text.split('\n').filter((l) => l.startsWith('ecs_id_mapper_container_info{'));
    expect(info).toHaveLength(1);
    const record = await store.getContainer(containerId(1));
    if (record.kind !== 'found') throw new Error('seeded container missing');
    const r = record.record;
    expect(info[0]).toBe(
      `ecs_id_mapper_container_info{container_id="${r.container_id}",container_name="${r.container_name}",task_id="${r.task_id}",task_family="${r.task_family}",task_revision="${r.task_version}",cluster="${r.cluster}",instance_id="${r.instance_id}"} 1`,
    );
  });

  it('counts hosts by freshness and aggregates report ages without a per-host label', async () => {
    await report(instanceId('a'), 0, [{ id: containerId(1), to: 'running' }]);
    await report(instanceId('b'), 10, [{ id: containerId(2), to: 'running' }]);
    await report(instanceId('c'), 25, [{ id: containerId(3), to: 'running' }]);
    now = at(30);
    const text = await registry.metrics();
    expect(text).toContain('ecs_id_mapper_hosts{freshness="fresh"} 1');
    expect(text).toContain('ecs_id_mapper_hosts{freshness="stale"} 2');
    expect(text).toContain('ecs_id_mapper_host_report_age_seconds{stat="min"} 300');
    expect(text).toContain('ecs_id_mapper_host_report_age_seconds{stat="p50"} 1200');
    expect(text).toContain('ecs_id_mapper_host_report_age_seconds{stat="max"} 1800');
    expect(text).not.toMatch(/ecs_id_mapper_host_report_age_seconds\{[^}]*instance_id/);
  });

  it('shows zero hosts and no age series before any host reported', async () => {
    const text = await registry.metrics();
    expect(text).toContain('ecs_id_mapper_hosts{freshness="fresh"} 0');
    expect(text).toContain('ecs_id_mapper_hosts{freshness="stale"} 0');
    expect(text).not.toMatch(/^ecs_id_mapper_host_report_age_seconds\{/m);
  });

  it('reads the store once per scrape for all three series, and reuses it within minRefreshMs', async () => {
    const counting = new Registry();
    let lists = 0;
    const spy: Store = Object.create(store, {
      listHosts: { value: () => { lists++; return store.listHosts(); } },
    });
    registerFleetMetrics(counting, { store: spy, hostStaleAfterMs: 60_000, now: () => now, minRefreshMs: 10_000 });
    await counting.metrics();
    expect(lists).toBe(1);
    now = at(0.1);
    await counting.metrics();
    expect(lists).toBe(1);
    now = at(1);
    await counting.metrics();
    expect(lists).toBe(2);
  });

  it('still answers the scrape when the store is down: the fleet series are absent', async () => {
    await store.close();
    const text = await registry.metrics();
    expect(text).not.toMatch(/^ecs_id_mapper_container_info\{/m);
    expect(text).not.toMatch(/^ecs_id_mapper_hosts\{/m);
    store = await openStore({ backend: 'sqlite', path: ':memory:' });
  });
});
