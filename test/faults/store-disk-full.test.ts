// Fault: the server's SQLite store cannot grow (its disk is full). SQLite's max_page_count makes
// it answer exactly as it does on a full disk (SQLITE_FULL, "database or disk is full") without
// filling a real volume. Proven: reports answer 503 store_unavailable (the reconciler keeps its
// transitions in its outbox and retries), lookups and /health keep answering, the failures are
// counted by store operation, and once the store can grow again every change arrives, no record
// regressed and no transition lost or duplicated, without restarting anything. Recovery bound:
// ≤ 10 s wall after space returns (the reconciler's backoff).
import type Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../../storage/sqlite/index.js';
import { instrumentStore } from '../../storage/metrics.js';
import { containerId, hostIdentity, instanceId, transition } from '../../storage/store.fixtures.js';
import { GroundTruth, RecordWatch, verifyAgainstServer, waitForConvergence } from '../support/ground-truth.js';
import { Api, Cleanups, INSTANCE_ID, churn, sleep, startReconciler, startSim } from '../support/fault-rig.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

const RECOVERY_MS = 10_000;

/** A server on SQLite whose store connection the test holds: max_page_count applies per connection. */
async function serverWithConnection(): Promise<{ api: Api; db: () => Database.Database }> {
  let db: Database.Database | undefined;
  const api = await Api.sqlite(cleanups, {
    openStore: async (config, deps) => {
      if (config.backend !== 'sqlite') throw new Error('a SQLite store is expected');
      const store = openSqliteStore({ path: config.path });
      db = (store as unknown as { db: Database.Database }).db;
      return instrumentStore(store, deps!.registry!, 'sqlite');
    },
  }).start();
  return { api, db: () => db! };
}

async function serverMetric(api: Api, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${api.url}/metrics`)).text();
  return text.split('\n').filter((l) => pattern.test(l)).reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

describe('server store disk full', () => {
  it('refuses reports with 503 while it lasts, keeps answering lookups, and takes everything once it can write again', async () => {
    const { api, db: connection } = await serverWithConnection();
    const sim = await startSim(cleanups);
    const truth = new GroundTruth(INSTANCE_ID);
    truth.observe(sim.state);
    const rec = startReconciler(cleanups, { server: api.url, sim, stateDir: cleanups.tempDir('faults-state-'), truth });
    await churn(sim, truth, 4);
    await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    const watch = new RecordWatch(() => api.url, INSTANCE_ID).start();
    cleanups.add(() => watch.stop());
    const known = (await (await fetch(`${api.url}/v2/containers?limit=1`)).json()) as { items: Array<{ container_id: string }> };
    const db = connection();

    // Full: not one more page.
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
    await churn(sim, truth, 8, 100);
    await sleep(500);

    const refused = await serverMetric(api, /^ecs_id_mapper_reports_received_total\{.*result="error"/);
    expect(refused).toBeGreaterThan(0);
    expect(await serverMetric(api, /^ecs_id_mapper_storage_operation_duration_seconds_count\{.*operation="applyTransitions".*result="error"/)).toBeGreaterThan(0);
    expect(await rec.metric('ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'http_error' })).toBeGreaterThan(0);
    expect(rec.outbox.depth()).toBeGreaterThan(0);
    // A report answered while full says why, as JSON: another host's 300 new containers, more than
    // the free room left in the store's existing pages.
    const other = hostIdentity({ instance_id: instanceId('disk-full-other') });
    const transitions = Array.from({ length: 300 }, (_, i) => transition(i + 1, 'running', { container: { container_id: containerId(`disk-full-${i}`), image: `registry.example/${'x'.repeat(200)}:${i}` } }));
    const direct = await fetch(`${api.url}/v2/hosts/${other.instance_id}/transitions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ host: other, transitions }),
    });
    expect(direct.status).toBe(503);
    expect(await direct.json()).toEqual({ error: 'store_unavailable', message: expect.stringContaining('database or disk is full') });
    // Reads go on.
    expect((await fetch(`${api.url}/v2/lookup/${known.items[0].container_id}`)).status).toBe(200);
    expect((await fetch(`${api.url}/health`)).status).toBe(200);

    // Room again.
    db.pragma('max_page_count = 4294967294');
    truth.observe(sim.state);
    const took = await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    expect(took).toBeLessThan(RECOVERY_MS);
    await watch.finish();
    await verifyAgainstServer(api.url, truth, sim, { watch });
  });
});
