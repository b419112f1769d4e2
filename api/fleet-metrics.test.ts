import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../storage/index.js';
import { at, batch, containerId, hostIdentity, instanceId, legacyContainer, legacySnapshot, transition } from '../storage/store.fixtures.js';
import { registerFleetMetrics } from './fleet-metrics.js';

describe('fleet metrics', () => {
  let store: Store;
  let registry: Registry;
  let now: Date;

  beforeEach(async () => {
    store = await openStore({ backend: 'sqlite', path: ':memory:' });
    registry = new Registry();
    now = at(0);
    registerFleetMetrics(registry, { store, hostGoneAfterMs: 0, hostStaleAfterMs: 15 * 60_000, now: () => now, minRefreshMs: 0 });
  });

  afterEach(() => store.close());

  /** A registry whose fleet metrics retire hosts silent for an hour (--host-gone-after 1h). */
  function retiringRegistry(): Registry {
    const r = new Registry();
    registerFleetMetrics(r, { store, hostGoneAfterMs: 60 * 60_000, hostStaleAfterMs: 15 * 60_000, now: () => now, minRefreshMs: 0 });
    return r;
  }

  async function report(host: string, minute: number, containers: Array<{ id: string; to: 'running' | 'stopped' }>) {
    const transitions = containers.map((c, i) => transition(minute * 100 + i + 1, c.to, { container: { container_id: c.id } }));
    await store.applyTransitions(batch(hostIdentity({ instance_id: host }), transitions), at(minute));
  }

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

  it('counts hosts silent past --host-gone-after as retired, not stale, and leaves them out of the report ages', async () => {
    const retiring = retiringRegistry();
    await report(instanceId('terminated'), 0, [{ id: containerId(1), to: 'running' }]);
    await report(instanceId('silent'), 50, [{ id: containerId(2), to: 'running' }]);
    await report(instanceId('reporting'), 89, [{ id: containerId(3), to: 'running' }]);
    now = at(90);
    const text = await retiring.metrics();
    expect(text).toContain('ecs_id_mapper_hosts{freshness="fresh"} 1');
    expect(text).toContain('ecs_id_mapper_hosts{freshness="stale"} 1');
    expect(text).toContain('ecs_id_mapper_hosts{freshness="retired"} 1');
    expect(text).toContain('ecs_id_mapper_host_report_age_seconds{stat="max"} 2400');
  });

  it('never counts a host of the original agent as retired', async () => {
    const retiring = retiringRegistry();
    await store.replaceLegacySnapshot(legacySnapshot(hostIdentity({ instance_id: instanceId('legacy') }), [legacyContainer('running', { container_id: containerId(1) })], at(0).toISOString()));
    await report(instanceId('reporting'), 89, [{ id: containerId(2), to: 'running' }]);
    now = at(90);
    const text = await retiring.metrics();
    expect(text).toContain('ecs_id_mapper_hosts{freshness="stale"} 1');
    expect(text).toContain('ecs_id_mapper_hosts{freshness="retired"} 0');
  });

  it('counts every silent host as stale, none as retired, while no host at all reports (the server hears nobody)', async () => {
    const retiring = retiringRegistry();
    await report(instanceId('a'), 0, [{ id: containerId(1), to: 'running' }]);
    await report(instanceId('b'), 50, [{ id: containerId(2), to: 'running' }]);
    now = at(90);
    const text = await retiring.metrics();
    expect(text).toContain('ecs_id_mapper_hosts{freshness="stale"} 2');
    expect(text).toContain('ecs_id_mapper_hosts{freshness="retired"} 0');
  });

  it('shows zero hosts and no age series before any host reported', async () => {
    const text = await registry.metrics();
    expect(text).toContain('ecs_id_mapper_hosts{freshness="fresh"} 0');
    expect(text).toContain('ecs_id_mapper_hosts{freshness="stale"} 0');
    expect(text).toContain('ecs_id_mapper_hosts{freshness="retired"} 0');
    expect(text).not.toMatch(/^ecs_id_mapper_host_report_age_seconds\{/m);
  });

  it('reads the hosts once per scrape for both series, and reuses them within minRefreshMs', async () => {
    const counting = new Registry();
    let lists = 0;
    const spy: Store = Object.create(store, {
      listHosts: { value: () => { lists++; return store.listHosts(); } },
    });
    registerFleetMetrics(counting, { store: spy, hostGoneAfterMs: 0, hostStaleAfterMs: 60_000, now: () => now, minRefreshMs: 10_000 });
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
    expect(text).not.toMatch(/^ecs_id_mapper_hosts\{/m);
    store = await openStore({ backend: 'sqlite', path: ':memory:' });
  });
});
