// Fault: the Docker socket disappears (the engine stops: the socket file is gone, the events
// stream breaks) and comes back on the same path. A loopback Docker stand-in on a unix socket
// serves /containers/json (the simulated host's containers with their ECS labels, in the Docker
// state matching their task) and a held-open /events stream.
// Proven: while the socket is gone, Docker failures are counted, passes stay "ok" (the agent
// answers) and polling alone keeps the server converging with the churn; when the socket returns
// the events stream reconnects by itself. Recovery bound: ≤ 10 s wall (records) and the event
// stream reconnected within the client's capped backoff (asserted ≤ 10 s wall).
// A real engine restart (dockerd harness restart()) reconnecting the events stream is proven in
// reconciler/sources/docker.dockerd.test.ts; the real-engine mapping in test/reconciler-dockerd.test.ts.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ECS_LABELS } from '../../reconciler/sources/types.js';
import type { SimulatedHost, SimTask } from '../../tools/simulate-host/index.js';
import { GroundTruth, RecordWatch, verifyAgainstServer, waitForConvergence } from '../support/ground-truth.js';
import { Api, Cleanups, INSTANCE_ID, churn, sleep, startReconciler, startSim } from '../support/fault-rig.js';
import { reply, startLoopback, type LoopbackServer } from '../support/loopback.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

const RECOVERY_MS = 10_000;

function dockerState(task: SimTask): string {
  return task.known_status === 'STOPPED' ? 'exited' : task.known_status === 'RUNNING' ? 'running' : 'created';
}

/** The simulated host's containers as `GET /containers/json?all=1` lists them. */
function containersJson(sim: SimulatedHost): string {
  return JSON.stringify(
    sim.state.flatMap((t) =>
      t.containers.map((c) => ({
        Id: c.docker_id,
        Names: [`/${c.docker_name}`],
        Image: c.image,
        State: dockerState(t),
        Status: t.known_status === 'STOPPED' ? `Exited (${c.exit_code ?? 0}) 1 second ago` : 'Up 1 second',
        Labels: {
          [ECS_LABELS.taskArn]: t.arn,
          [ECS_LABELS.containerName]: c.name,
          [ECS_LABELS.family]: t.family,
          [ECS_LABELS.version]: t.version,
          [ECS_LABELS.cluster]: 'faults',
        },
      })),
    ),
  );
}

async function startDockerStandin(sim: SimulatedHost, socketPath: string): Promise<LoopbackServer> {
  return startLoopback((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path.endsWith('/containers/json')) return reply(res, 200, containersJson(sim));
    if (path.endsWith('/events')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders(); // held open: no events, polling is what must converge
      return;
    }
    reply(res, 404, '{"message":"page not found"}');
  }, socketPath);
}

describe('Docker socket disappearing and returning', () => {
  it('keeps converging by polling while the socket is gone and reconnects the events stream when it returns', async () => {
    const api = await Api.sqlite(cleanups).start();
    const sim = await startSim(cleanups);
    const truth = new GroundTruth(INSTANCE_ID);
    truth.observe(sim.state);
    const socketPath = join(cleanups.tempDir('faults-docker-'), 'docker.sock');
    let docker: LoopbackServer | null = await startDockerStandin(sim, socketPath);
    cleanups.add(() => docker?.close());
    const rec = startReconciler(cleanups, { server: api.url, sim, stateDir: cleanups.tempDir('faults-state-'), truth, dockerSocket: socketPath });
    await churn(sim, truth, 4);
    await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    await vi.waitFor(() => expect(docker!.requests.some((r) => r.path.startsWith('/events'))).toBe(true), { timeout: RECOVERY_MS });
    expect(rec.passes.at(-1)!.dockerOk).toBe(true);
    const watch = new RecordWatch(() => api.url, INSTANCE_ID).start();
    cleanups.add(() => watch.stop());

    // The engine goes away: socket file removed, event stream cut.
    await docker.close();
    docker = null;
    expect(existsSync(socketPath)).toBe(false);
    const failuresBefore = await rec.metric('ecs_id_mapper_reconciler_observation_failures_total', { source: 'docker' });
    const passesBefore = rec.passes.length;
    await churn(sim, truth, 6, 100);
    await waitForConvergence(api.url, truth, sim, RECOVERY_MS); // polling the agent alone converges
    const during = rec.passes.slice(passesBefore);
    expect(during.length).toBeGreaterThan(0);
    expect(during.some((p) => p.dockerOk === false)).toBe(true);
    expect(during.every((p) => p.result === 'ok')).toBe(true);
    expect(await rec.metric('ecs_id_mapper_reconciler_observation_failures_total', { source: 'docker' })).toBeGreaterThan(failuresBefore);
    expect(rec.loop.hostState()).toBe('steady');

    // The engine returns on the same path.
    docker = await startDockerStandin(sim, socketPath);
    await churn(sim, truth, 3);
    await vi.waitFor(() => expect(docker!.requests.some((r) => r.path.startsWith('/events'))).toBe(true), { timeout: RECOVERY_MS, interval: 50 });
    await vi.waitFor(() => expect(rec.passes.at(-1)!.dockerOk).toBe(true), { timeout: RECOVERY_MS, interval: 50 });
    await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    await sleep(50);
    watch.stop();
    await verifyAgainstServer(api.url, truth, sim, { watch });
    expect(await rec.metric('ecs_id_mapper_reconciler_label_disagreements_total')).toBe(0);
  });
});
