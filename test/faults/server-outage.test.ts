// Fault: the server is down for ten minutes of SIMULATED time while the host churns.
//
// Simulated time: one clock (`simNow`) drives the simulated host (task cleanup after a simulated
// 3 min), IMDS token expiry, the reconcile loop's timestamps, the reporter's snapshot schedule and
// the daemon's seconds-since gauges. Passes are run explicitly, one per simulated resync interval
// (10 s, the daemon's default): 60 passes = 10 minutes. Only the reporter's retry backoff runs on
// real timers, scaled down (20–200 ms real for the daemon's 1–30 s) so the test takes seconds.
// Proven: the outbox holds everything (depth visible in metrics, seconds since the last report
// reads ≥ 600 s), and once the server is back every transition arrives exactly once.
// Recovery bound: the server's records equal the truth ≤ 10 s wall after it comes back.
// The second case shrinks --outbox-max-bytes to a few transitions so the outage outlasts it:
// intermediate states are coalesced away (counted), the last state of every container stays
// queued, and after the server returns its records equal the truth, none served going backwards,
// no seq applied twice.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GroundTruth, RecordWatch, serverHistory, verifyAgainstServer, waitForConvergence } from '../support/ground-truth.js';
import { LIFECYCLE_STATES } from '../../wire/ids.js';
import { Api, Cleanups, INSTANCE_ID, sleep, startReconciler, startSim } from '../support/fault-rig.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

const RESYNC_MS = 10_000; // simulated
const OUTAGE_MS = 10 * 60_000; // simulated
const RECOVERY_MS = 10_000; // wall

/**
 * A server, a simulated host of 6 tasks and a reconciler run pass by pass on one simulated clock,
 * six passes in and converged, with a watch sampling the server's records. `step` advances the
 * clock one resync interval and runs a pass.
 */
async function converged(options: { outboxMaxBytes?: number }) {
  let simNow = Date.parse('2026-01-01T00:00:00Z');
  const now = () => simNow;
  const api = await Api.sqlite(cleanups).start();
  const sim = await startSim(cleanups, { tasks: 6, cleanupAfterMs: 3 * 60_000, now });
  const truth = new GroundTruth(INSTANCE_ID);
  truth.observe(sim.state);
  const rec = startReconciler(cleanups, {
    server: api.url, sim, stateDir: cleanups.tempDir('faults-state-'), truth, now, autoStart: false, fullSyncIntervalMs: 5 * 60_000, ...options,
  });
  const step = async () => {
    simNow += RESYNC_MS;
    sim.tick();
    truth.observe(sim.state);
    const r = await rec.pass();
    expect(r.result).toBe('ok');
  };
  for (let i = 0; i < 6; i++) await step();
  await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
  const watch = new RecordWatch(() => api.url, INSTANCE_ID).start();
  cleanups.add(() => watch.stop());
  return { api, sim, truth, rec, step, watch, clock: now };
}

describe('server down for ten simulated minutes', () => {
  it('keeps every transition in the outbox and delivers each exactly once when the server returns', async () => {
    const { api, sim, truth, rec, step, watch, clock } = await converged({});

    await api.stop();
    const outageStart = clock();
    const ackedBefore = rec.outbox.ackedSeq();
    while (clock() - outageStart < OUTAGE_MS) {
      await step();
      await sleep(5); // lets the reporter try (and fail) between passes
    }

    // The condition is visible in the daemon's metrics, in simulated seconds.
    expect(await rec.metric('ecs_id_mapper_reconciler_seconds_since_last_report')).toBeGreaterThanOrEqual(OUTAGE_MS / 1000);
    expect(await rec.metric('ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'unreachable' })).toBeGreaterThan(0);
    const queued = rec.outbox.lastSeq() - ackedBefore;
    expect(queued).toBeGreaterThan(20); // 60 simulated resyncs of churn
    expect(rec.outbox.depth()).toBe(queued);
    expect(await rec.metric('ecs_id_mapper_reconciler_outbox_depth')).toBe(queued);
    // Retrying: between attempts it backs off (an attempt may be in flight at this very moment).
    await vi.waitFor(() => expect(rec.reporter.state()).toBe('backingOff'), { timeout: 2_000, interval: 2 });
    // Tasks stopped early in the outage were cleaned up (3 simulated minutes) before it ended.
    expect([...truth.expected(sim.state).values()].filter((s) => s === 'gone').length).toBeGreaterThan(0);

    await api.start(); // same SQLite file, same port
    const took = await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    expect(took).toBeLessThan(RECOVERY_MS);
    await sleep(100);
    expect(rec.outbox.depth()).toBe(0);
    expect(await rec.metric('ecs_id_mapper_reconciler_outbox_depth')).toBe(0);
    await watch.finish();
    const v = await verifyAgainstServer(api.url, truth, sim, { watch });
    expect(v.historyEntries).toBe(truth.emitted.size);
  });

  // The outbox bound is a few transitions here, so the outage outlasts it: coalescing drops
  // intermediate states, and the containers that came and went soon outnumber what the bound
  // holds (each one's final state must still arrive, so the outbox grows past it).
  it('when the outage outlasts the outbox bound: coalesces, keeps every final state, and converges when the server returns', async () => {
    const outboxMaxBytes = 6 * 1024; // about eight transitions
    const { api, sim, truth, rec, step, watch, clock } = await converged({ outboxMaxBytes });

    await api.stop();
    await sleep(50); // an answer in flight when the server stopped is acknowledged by now
    const outageStart = clock();
    const before = { depth: rec.outbox.depth(), lastSeq: rec.outbox.lastSeq(), coalesced: await rec.metric('ecs_id_mapper_reconciler_outbox_coalesced_total') };
    let largest = 0;
    while (clock() - outageStart < OUTAGE_MS) {
      await step();
      largest = Math.max(largest, rec.outbox.bytes());
      await sleep(5);
    }

    const coalesced = (await rec.metric('ecs_id_mapper_reconciler_outbox_coalesced_total')) - before.coalesced;
    expect(coalesced).toBeGreaterThan(0);
    // Nothing was acknowledged meanwhile: every transition emitted in the outage is still queued or was coalesced away.
    expect(rec.outbox.depth() + coalesced).toBe(before.depth + rec.outbox.lastSeq() - before.lastSeq);
    // The last queued entry of each container is the last state emitted for it: coalescing keeps it.
    const lastEmitted = new Map<string, string>();
    for (const [seq, t] of [...truth.emitted].sort((a, b) => a[0] - b[0])) if (seq > before.lastSeq) lastEmitted.set(t.container_id, t.to);
    const lastQueued = new Map(rec.outbox.peek(100_000).map((t) => [t.container_id, t.to] as const));
    for (const [id, to] of lastEmitted) expect(lastQueued.get(id), id.slice(0, 12)).toBe(to);
    expect(largest).toBeGreaterThan(outboxMaxBytes); // the outage did outlast the bound

    await api.start();
    const took = await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    expect(took).toBeLessThan(RECOVERY_MS);
    await sleep(100);
    expect(rec.outbox.depth()).toBe(0);
    await watch.finish();

    // No record went backwards while it was served, and no sequence number was applied twice.
    const rank = (s: string) => LIFECYCLE_STATES.indexOf(s as (typeof LIFECYCLE_STATES)[number]);
    for (const [id, served] of watch.samples) {
      for (let i = 1; i < served.length; i++) expect(rank(served[i]), `${id.slice(0, 12)} served ${served.join(' → ')}`).toBeGreaterThan(rank(served[i - 1]));
    }
    const seqs: number[] = [];
    for (const id of truth.everSeen.keys()) for (const h of await serverHistory(api.url, id)) if (h.seq !== null) seqs.push(h.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
  });
});
