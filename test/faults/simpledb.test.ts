// Fault: the server on the SimpleDB backend (the project's local SimpleDB endpoint) while that
// endpoint answers 503 ServiceUnavailable in bursts, answers slowly, and serves stale
// (eventually consistent) reads. The reconciler reports through all of it.
// Proven: SimpleDB failures are counted on the server (simpledb_requests_total by code); a 503
// that reaches the reconciler is retried (report_attempts_total{result="http_error"}), never lost;
// no served record regressed while reads were consistent; after the faults clear the records and
// history equal the truth with every transition once. Recovery bound: ≤ 15 s wall after the last
// fault clears (SimpleDB requests are many per batch; the client retries up to 6 times).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { staticCredentials } from '../../storage/simpledb/index.js';
import { startSimpleDbLocal } from '../../storage/simpledb/local/index.js';
import { GroundTruth, RecordWatch, verifyAgainstServer, waitForConvergence } from '../support/ground-truth.js';
import { Api, Cleanups, INSTANCE_ID, churn, metricValue, sleep, startReconciler, startSim } from '../support/fault-rig.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

const KEY = { accessKeyId: 'AKIDFAULTS', secretAccessKey: 'faults/secret' };
const RECOVERY_MS = 15_000;

describe('SimpleDB 503 bursts, slow answers and stale reads', () => {
  it('loses nothing and converges once SimpleDB behaves', async () => {
    const local = await startSimpleDbLocal({ ...KEY });
    cleanups.add(() => local.close());
    const api = new Api(
      { backend: 'simpledb', region: 'us-east-1', prefix: 'faults', shards: 2, endpoint: new URL(local.url), createDomains: true },
      { storeDeps: { simpledb: { credentials: staticCredentials(KEY), cacheTtlMs: 500 } } },
    );
    cleanups.add(() => api.stop());
    await api.start();
    const sim = await startSim(cleanups);
    const truth = new GroundTruth(INSTANCE_ID);
    truth.observe(sim.state);
    const rec = startReconciler(cleanups, {
      server: api.url, sim, stateDir: cleanups.tempDir('faults-state-'), truth, resyncIntervalMs: 100, requestTimeoutMs: 1000, backoffMaxMs: 300,
    });
    await churn(sim, truth, 3, 100);
    await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    const watch = new RecordWatch(() => api.url, INSTANCE_ID, 100).start();
    cleanups.add(() => watch.stop());

    // A burst: every SimpleDB request fails for a while (the store's own retries give up).
    local.setFaults({ failureRate: 1 });
    await churn(sim, truth, 3, 150);
    await vi.waitFor(async () => {
      expect(await rec.metric('ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'http_error' })).toBeGreaterThan(0);
    }, { timeout: RECOVERY_MS, interval: 200 });
    expect(await metricValue(api.registry, 'ecs_id_mapper_simpledb_requests_total', { code: 'ServiceUnavailable' })).toBeGreaterThan(0);
    expect(rec.outbox.depth()).toBeGreaterThan(0); // nothing acknowledged while the store fails

    // Intermittent failures and slow answers: the store's retries mostly absorb them.
    local.setFaults({ failureRate: 0.3, latencyMs: 30 });
    await churn(sim, truth, 4, 150);
    await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    await watch.finish();

    // Stale reads: the server must not misjudge what it already holds (duplicates, last seq).
    local.setFaults({ failureRate: 0, latencyMs: 0, staleReads: true, staleWindowMs: 1000 });
    await churn(sim, truth, 4, 150);
    await sleep(300);

    local.setFaults({ staleReads: false });
    const took = await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    expect(took).toBeLessThan(RECOVERY_MS);
    await verifyAgainstServer(api.url, truth, sim, { watch, withinMs: RECOVERY_MS });
  }, 90_000);
});
