import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { instrumentStore, STORAGE_DURATION_BUCKETS, STORAGE_DURATION_METRIC, STORE_OPERATIONS } from './metrics.js';
import { openSqliteStore } from './sqlite/index.js';
import { describeStoreContract } from './store.contract.js';
import { at, batch, containerId, hostIdentity, transition } from './store.fixtures.js';
import { StoreUnavailableError } from './store.js';

type Series = { labels: Record<string, string | number>; value: number; metricName?: string };

async function series(registry: Registry): Promise<Series[]> {
  const [metric] = (await registry.getMetricsAsJSON()).filter((m) => m.name === STORAGE_DURATION_METRIC);
  return (metric?.values ?? []) as Series[];
}

async function count(registry: Registry, operation: string, result: string): Promise<number | undefined> {
  return (await series(registry)).find(
    (s) => s.metricName === `${STORAGE_DURATION_METRIC}_count` && s.labels.operation === operation && s.labels.result === result,
  )?.value;
}

// The decorator must be transparent: the whole contract holds through it.
describeStoreContract('sqlite instrumented', async (options) => {
  const inner = openSqliteStore({ path: ':memory:', ...options });
  const store = instrumentStore(inner, new Registry(), 'sqlite');
  return { store, cleanup: () => store.close() };
});

describe('instrumentStore', () => {
  it('starts every operation and result at zero, with the documented buckets', async () => {
    const registry = new Registry();
    instrumentStore(openSqliteStore({ path: ':memory:' }), registry, 'sqlite');
    for (const operation of STORE_OPERATIONS) {
      for (const result of ['ok', 'error']) expect(await count(registry, operation, result), `${operation} ${result}`).toBe(0);
    }
    const buckets = (await series(registry))
      .filter((s) => s.metricName === `${STORAGE_DURATION_METRIC}_bucket` && s.labels.operation === 'getContainer' && s.labels.result === 'ok')
      .map((s) => s.labels.le);
    expect(buckets).toEqual([...STORAGE_DURATION_BUCKETS, '+Inf']);
    expect(await registry.metrics()).toContain(`# HELP ${STORAGE_DURATION_METRIC} `);
  });

  it('times successful operations as ok, labelled with the backend', async () => {
    const registry = new Registry();
    const store = instrumentStore(openSqliteStore({ path: ':memory:' }), registry, 'sqlite');
    await store.applyTransitions(batch(hostIdentity(), [transition(1, 'running', { container: { container_id: containerId(1) } })]), at(1));
    const found = await store.getContainer(containerId(1));
    await store.getContainer(containerId(2));
    expect(found.kind).toBe('found');
    expect(await count(registry, 'applyTransitions', 'ok')).toBe(1);
    expect(await count(registry, 'getContainer', 'ok')).toBe(2);
    expect(await count(registry, 'getContainer', 'error')).toBe(0);
    expect((await series(registry)).every((s) => s.labels.backend === 'sqlite')).toBe(true);
    await store.close();
  });

  it('times failed operations as error and passes the error through unchanged', async () => {
    const registry = new Registry();
    const inner = openSqliteStore({ path: ':memory:' });
    const store = instrumentStore(inner, registry, 'sqlite');
    await inner.close();
    await expect(store.findByTask(containerId(1).slice(0, 32))).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(await count(registry, 'findByTask', 'error')).toBe(1);
    expect(await count(registry, 'findByTask', 'ok')).toBe(0);
  });

  it("counts a refusal of the caller's input (a cursor it did not issue) as ok, not as a backend error", async () => {
    const registry = new Registry();
    const store = instrumentStore(openSqliteStore({ path: ':memory:' }), registry, 'sqlite');
    await expect(store.listContainers({}, { limit: 5, cursor: 'abc' })).rejects.toMatchObject({ code: 'ERR_INVALID_CURSOR' });
    expect(await count(registry, 'listContainers', 'error')).toBe(0);
    expect(await count(registry, 'listContainers', 'ok')).toBe(1);
    await store.close();
  });

  it('counts an unhealthy answer as an error', async () => {
    const registry = new Registry();
    const inner = openSqliteStore({ path: ':memory:' });
    const store = instrumentStore(inner, registry);
    expect(await store.health()).toEqual({ ok: true, backend: 'sqlite' });
    await inner.close();
    expect((await store.health()).ok).toBe(false);
    expect(await count(registry, 'health', 'ok')).toBe(1);
    expect(await count(registry, 'health', 'error')).toBe(1);
  });
});
