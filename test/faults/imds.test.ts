// Fault: instance metadata (IMDS) answering 401 or nothing, at start and later, and the IMDSv2
// token PUT timing out (the container hop-limit problem).
// - At start: nothing can be reported without the instance id. The daemon keeps observing the
//   agent and queues transitions in the outbox, counts the IMDS failures, stays `identifying`, and
//   reports everything once IMDS answers. Recovery bound: ≤ 10 s wall after IMDS answers.
// - Token PUT timing out: IMDSv1 is used, counted in imds_v1_fallbacks_total; reports flow.
// - Later (identity already known): IMDS is not needed again; reporting is unaffected.
import { afterEach, describe, expect, it } from 'vitest';
import type { ImdsFault } from '../../tools/simulate-host/imds-api.js';
import { GroundTruth, verifyAgainstServer, waitForConvergence, serverRecords } from '../support/ground-truth.js';
import { Api, Cleanups, INSTANCE_ID, churn, sleep, startReconciler, startSim } from '../support/fault-rig.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

const RECOVERY_MS = 10_000;

async function setup() {
  const api = await Api.sqlite(cleanups).start();
  const sim = await startSim(cleanups);
  const truth = new GroundTruth(INSTANCE_ID);
  truth.observe(sim.state);
  return { api, sim, truth };
}

describe('IMDS faults', () => {
  it.each<ImdsFault>(['401', 'timeout'])('IMDS %s at start: transitions wait in the outbox, failures counted, all reported once IMDS answers', async (fault) => {
    const { api, sim, truth } = await setup();
    sim.setFault({ imds: fault });
    const rec = startReconciler(cleanups, { server: api.url, sim, stateDir: cleanups.tempDir('faults-state-'), truth, requestTimeoutMs: 500 });
    await churn(sim, truth, 5, 100);
    await sleep(800);

    expect(await rec.metric('ecs_id_mapper_reconciler_observation_failures_total', { source: 'imds' })).toBeGreaterThan(0);
    expect(rec.loop.hostState()).toBe('identifying');
    expect(rec.loop.identity()).toBeNull();
    expect(rec.outbox.depth()).toBeGreaterThan(0); // observed and durable, not yet reportable
    expect((await serverRecords(api.url, INSTANCE_ID)).size).toBe(0);
    // A token PUT that times out is a fallback to IMDSv1 (which fails too here).
    if (fault === 'timeout') expect(await rec.metric('ecs_id_mapper_reconciler_imds_v1_fallbacks_total')).toBeGreaterThanOrEqual(1);

    sim.setFault({ imds: 'ok' });
    const took = await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    expect(took).toBeLessThan(RECOVERY_MS);
    expect(rec.loop.identity()?.instance_id).toBe(INSTANCE_ID);
    await verifyAgainstServer(api.url, truth, sim);
  });

  it('token PUT timing out: falls back to IMDSv1, counts it, and reports', async () => {
    const { api, sim, truth } = await setup();
    sim.setFault({ imds: 'token-timeout' });
    const rec = startReconciler(cleanups, { server: api.url, sim, stateDir: cleanups.tempDir('faults-state-'), truth });
    await churn(sim, truth, 5);
    const took = await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    expect(took).toBeLessThan(RECOVERY_MS);
    expect(await rec.metric('ecs_id_mapper_reconciler_imds_v1_fallbacks_total')).toBe(1);
    expect(rec.loop.identity()).toMatchObject({ instance_id: INSTANCE_ID, region: 'us-east-1' });
    await verifyAgainstServer(api.url, truth, sim);
  });

  it.each<ImdsFault>(['401', 'timeout'])('IMDS %s later: the known identity keeps reports flowing', async (fault) => {
    const { api, sim, truth } = await setup();
    const rec = startReconciler(cleanups, { server: api.url, sim, stateDir: cleanups.tempDir('faults-state-'), truth });
    await churn(sim, truth, 3);
    await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    const failures = await rec.metric('ecs_id_mapper_reconciler_observation_failures_total', { source: 'imds' });
    sim.setFault({ imds: fault });
    await churn(sim, truth, 6);
    await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    expect(rec.loop.hostState()).toBe('steady');
    expect(await rec.metric('ecs_id_mapper_reconciler_observation_failures_total', { source: 'imds' })).toBe(failures);
    await verifyAgainstServer(api.url, truth, sim);
  });
});
