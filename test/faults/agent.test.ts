// Fault: the ECS agent answers 500, never answers, answers garbage, zero-valued bodies or the
// AvailableCommands page (a wrong path). Each is a failed observation, never "no containers":
// while it lasts the host is degraded, nothing is marked gone (even containers the agent cleaned
// up meanwhile), and the failures are counted. Once the agent answers again the server converges.
// Recovery bound: ≤ 10 s wall (on a loaded 2-core machine) after the fault clears (resync 60 ms, request timeout 400 ms: that
// is dozens of passes; typical recovery is one or two).
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AgentFault } from '../../tools/simulate-host/agent-api.js';
import { GroundTruth, RecordWatch, serverRecords, verifyAgainstServer, waitForConvergence } from '../support/ground-truth.js';
import { Api, Cleanups, INSTANCE_ID, churn, sleep, startReconciler, startSim } from '../support/fault-rig.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

const RECOVERY_MS = 10_000;
const FAULTS: AgentFault[] = ['500', 'timeout', 'garbage', 'zero', 'wrong-path'];

async function goneIds(api: Api): Promise<Set<string>> {
  const records = await serverRecords(api.url, INSTANCE_ID);
  return new Set([...records.values()].filter((r) => r.state === 'gone').map((r) => r.container_id));
}

describe('ECS agent faults', () => {
  it.each(FAULTS)('agent %s: degraded, nothing marked gone, counted, then converges', async (fault) => {
    const api = await Api.sqlite(cleanups).start();
    const sim = await startSim(cleanups);
    const truth = new GroundTruth(INSTANCE_ID);
    truth.observe(sim.state);
    // The timeout fault costs a whole request timeout per pass: keep it short there.
    const rec = startReconciler(cleanups, { server: api.url, sim, stateDir: cleanups.tempDir('faults-state-'), truth, ...(fault === 'timeout' ? { requestTimeoutMs: 600 } : {}) });
    await churn(sim, truth, 6);
    await waitForConvergence(api.url, truth, sim, RECOVERY_MS);

    const watch = new RecordWatch(() => api.url, INSTANCE_ID).start();
    cleanups.add(() => watch.stop());
    const failuresBefore = await rec.metric('ecs_id_mapper_reconciler_observation_failures_total', { source: 'agent' });
    const failedPassesBefore = await rec.metric('ecs_id_mapper_reconciler_passes_total', { result: 'failed' });
    const mark = rec.passes.length;
    sim.setFault({ agent: fault });
    // A pass already in flight may still bring a good listing; from the first failed pass on, none can.
    await vi.waitFor(() => expect(rec.passes.slice(mark).some((p) => !p.agentOk)).toBe(true), { timeout: RECOVERY_MS, interval: 20 });
    const barrier = rec.passes.length;
    const goneBefore = new Set([...truth.emitted.values()].filter((t) => t.to === 'gone').map((t) => t.container_id));
    // The host keeps changing under the fault: tasks stop and are cleaned up (would read as vanished).
    await churn(sim, truth, 6, 120, false);
    await sleep(2000); // past cleanupAfterMs (2.5 s): tasks stopped before or under the fault are no longer listed

    expect(rec.loop.hostState()).toBe('degraded');
    expect(await rec.metric('ecs_id_mapper_reconciler_observation_failures_total', { source: 'agent' })).toBeGreaterThan(failuresBefore);
    expect(await rec.metric('ecs_id_mapper_reconciler_passes_total', { result: 'failed' })).toBeGreaterThan(failedPassesBefore);
    // Nothing the fault hid was marked gone, on the server or in what the loop emitted.
    expect([...(await goneIds(api))].filter((id) => !goneBefore.has(id))).toEqual([]);
    const emittedDuringFault = rec.passes.slice(barrier).flatMap((p) => p.transitions);
    expect(emittedDuringFault).toEqual([]);
    expect(rec.passes.slice(barrier).every((p) => !p.agentOk && p.result === 'failed')).toBe(true);

    const cleared = rec.passes.length;
    sim.setFault({ agent: 'ok' });
    // A pass hanging on the fault (timeout) ends first; from the first good listing on, whatever
    // the host lists is observable again.
    await vi.waitFor(() => expect(rec.passes.slice(cleared).some((p) => p.agentOk)).toBe(true), { timeout: RECOVERY_MS, interval: 20 });
    truth.observe(sim.state);
    await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    expect(rec.loop.hostState()).toBe('steady');
    await watch.finish();
    const v = await verifyAgainstServer(api.url, truth, sim, { watch });
    expect(v.historyEntries).toBeGreaterThan(v.containers);
    // The churn under the fault cleaned some containers up: they are gone now, after recovery.
    expect([...truth.expected(sim.state).values()]).toContain('gone');
  });

  it('agent 500 for longer than the server retires silent hosts after: the daemon keeps its host fresh, no record is marked gone', async () => {
    const api = await Api.sqlite(cleanups).start();
    const sim = await startSim(cleanups);
    const truth = new GroundTruth(INSTANCE_ID);
    truth.observe(sim.state);
    const rec = startReconciler(cleanups, { server: api.url, sim, stateDir: cleanups.tempDir('faults-state-'), truth, fullSyncIntervalMs: 300 });
    await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    sim.setFault({ agent: '500' });
    await vi.waitFor(() => expect(rec.loop.hostState()).toBe('degraded'), { timeout: RECOVERY_MS, interval: 20 });
    const heartbeatsBefore = await rec.metric('ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'success' });
    await sleep(2000);
    // No transition or snapshot can be sent while the listing fails; empty batches still went.
    expect(await rec.metric('ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'success' })).toBeGreaterThan(heartbeatsBefore);
    // As the server's retirement would run with --host-gone-after 1s: the host reported within it.
    const now = new Date();
    expect(await api.store.retireSilentHosts(new Date(now.getTime() - 1000), now)).toEqual({ containers: 0, forgottenHosts: 0 });
    expect(await goneIds(api)).toEqual(new Set([...truth.expected(sim.state)].filter(([, state]) => state === 'gone').map(([id]) => id)));
  });
});

