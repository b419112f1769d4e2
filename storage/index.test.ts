import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, STORAGE_DURATION_METRIC, StoreUnavailableError, type Store } from './index.js';
import { at, batch, containerId, hostIdentity, transition } from './store.fixtures.js';

const opened: Store[] = [];
const temps: string[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  for (const d of temps.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('openStore', () => {
  it('opens an in-memory SQLite store that works', async () => {
    const store = await openStore({ backend: 'sqlite', path: ':memory:' });
    opened.push(store);
    expect(store.backend).toBe('sqlite');
    await store.applyTransitions(batch(hostIdentity(), [transition(1, 'running', { container: { container_id: containerId(1) } })]), at(1));
    expect((await store.getContainer(containerId(1))).kind).toBe('found');
  });

  it('instruments the store when a registry is passed', async () => {
    const registry = new Registry();
    const store = await openStore({ backend: 'sqlite', path: ':memory:' }, { registry });
    opened.push(store);
    await store.health();
    const text = await registry.metrics();
    expect(text).toContain(`${STORAGE_DURATION_METRIC}_count{backend="sqlite",operation="health",result="ok"} 1`);
  });

  it('passes the SQLite cache and map sizes to the store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-open-'));
    temps.push(dir);
    const store = await openStore({ backend: 'sqlite', path: join(dir, 's.db') }, { sqlite: { cacheSizeBytes: 4 * 1024 * 1024, mmapSizeBytes: 1024 * 1024 } });
    opened.push(store);
    const db = (store as unknown as { db: { pragma(p: string, o: { simple: true }): unknown } }).db;
    expect(db.pragma('cache_size', { simple: true })).toBe(-4 * 1024);
    expect(db.pragma('mmap_size', { simple: true })).toBe(1024 * 1024);
  });

  it('rejects with StoreUnavailableError for a path that cannot be created', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-open-'));
    temps.push(dir);
    writeFileSync(join(dir, 'file'), '');
    await expect(openStore({ backend: 'sqlite', path: join(dir, 'file', 'x.db') })).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});
