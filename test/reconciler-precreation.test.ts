// The reconciler against a simulated host that lists a started task as the ECS agent does before
// Docker created its containers: first with "Containers": [], then each container with DockerId ""
// (simulate-host --pending-for). Nothing can be mapped without a Docker id, so the reconciler must
// report nothing for them and stay healthy, then map them once their ids appear. The reconciler is
// wired from its real modules (test/support/fault-rig.ts) and reports to the real server.
import { afterEach, describe, expect, it } from 'vitest';
import { GroundTruth, serverRecords, verifyAgainstServer, waitForConvergence } from './support/ground-truth.js';
import { Api, Cleanups, INSTANCE_ID, startReconciler, startSim } from './support/fault-rig.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

const CONVERGE_MS = 10_000;

describe('reconciler and a task whose containers Docker has not created yet', () => {
  it('reports nothing while the agent lists no containers or no Docker ids, and maps them once the ids appear', async () => {
    const api = await Api.sqlite(cleanups).start();
    // The simulated host's clock is the test's: it moves the task through the pre-creation shapes.
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const sim = await startSim(cleanups, { tasks: 2, pendingForMs: 1000, cleanupAfterMs: 60_000, now: () => clock });
    const truth = new GroundTruth(INSTANCE_ID);
    truth.observe(sim.state);
    const rec = startReconciler(cleanups, { server: api.url, sim, stateDir: cleanups.tempDir('precreation-state-'), truth, autoStart: false });
    await rec.pass();
    await waitForConvergence(api.url, truth, sim, CONVERGE_MS);
    const before = await serverRecords(api.url, INSTANCE_ID);
    expect(before.size).toBe(4);

    // The truth is not told about the new task until its ids are listed: it must not expect them earlier.
    const started = sim.startTask({ containers: 2 });
    const futureIds = started.containers.map((c) => c.docker_id);
    const listedShapes: unknown[] = [];
    for (const step of ['Containers: []', 'DockerId ""']) {
      const body = (await (await fetch(`${sim.agentUrl}/v1/tasks?taskarn=${encodeURIComponent(started.arn)}`)).json()) as { Containers: Array<{ DockerId: string }> };
      listedShapes.push(body.Containers.map((c) => c.DockerId));
      const pass = await rec.pass();
      expect(pass, step).toMatchObject({ result: 'ok', agentOk: true, transitions: [], containers: 4 });
      expect(rec.loop.snapshot()!.map((c) => c.container_id), step).not.toEqual(expect.arrayContaining([futureIds[0]]));
      clock += 500;
    }
    expect(listedShapes).toEqual([[], ['', '']]);
    expect(rec.loop.hostState()).toBe('steady');
    expect(await rec.metric('ecs_id_mapper_reconciler_observation_failures_total', { source: 'agent' })).toBe(0);
    expect(await rec.metric('ecs_id_mapper_reconciler_passes_total', { result: 'failed' })).toBe(0);
    expect(rec.outbox.depth()).toBe(0);
    expect(await serverRecords(api.url, INSTANCE_ID)).toEqual(before);

    // Created: the ids are listed, the task still PENDING; the next pass maps both containers.
    const created = await rec.pass();
    expect(created.transitions.map((t) => [t.container_id, t.from, t.to, t.container.task_arn])).toEqual(
      expect.arrayContaining(futureIds.map((id) => [id, null, 'pending', started.arn])),
    );
    expect(created.transitions).toHaveLength(2);
    truth.observe(sim.state);
    await waitForConvergence(api.url, truth, sim, CONVERGE_MS);

    // Then RUNNING, as any other task: each transition on the server once, in one chain.
    sim.tick({ churn: false });
    await rec.pass();
    await waitForConvergence(api.url, truth, sim, CONVERGE_MS);
    const records = await serverRecords(api.url, INSTANCE_ID);
    expect(futureIds.map((id) => records.get(id))).toEqual(futureIds.map((id) => ({ container_id: id, state: 'running', task_arn: started.arn })));
    await verifyAgainstServer(api.url, truth, sim);
  });
});
