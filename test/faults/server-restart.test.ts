// Fault: the server restarts in the middle of a transitions batch (same SQLite file, same port).
// A loopback proxy between the reconciler and the server cuts one POST .../transitions:
//   - after the server applied it: the answer is lost, the server restarts, the reconciler retries
//     the whole batch, which the restarted server recognises (per-host seq) and does not apply again;
//   - before the server saw it: the server restarts, the retried batch is applied once.
// Proven: the retry is counted in the daemon's report_attempts_total (not success), no entry of
// the batch is in history twice, the records equal the truth. Recovery bound: ≤ 10 s wall after
// the server is back.
import { afterEach, describe, expect, it } from 'vitest';
import { GroundTruth, RecordWatch, verifyAgainstServer, waitForConvergence } from '../support/ground-truth.js';
import { Api, Cleanups, INSTANCE_ID, churn, sleep, startReconciler, startSim } from '../support/fault-rig.js';
import { startReportProxy } from '../support/report-proxy.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

const RECOVERY_MS = 10_000;

type Cut = 'after-apply' | 'before-apply';

/** Forwards everything to the server; `cutNext` drops the next transitions batch as described. */
async function startProxy(api: Api) {
  let restarting: Promise<unknown> = Promise.resolve();
  const proxy = await startReportProxy(cleanups, () => api.url, () => restarting);
  return {
    url: proxy.url,
    cutNext(mode: Cut): Promise<{ seqs: number[] }> {
      return new Promise((cutDone) =>
        proxy.interceptNext(async (batch) => {
          if (mode === 'after-apply') expect(await batch.forward()).toBe(200);
          batch.dropConnection(); // the answer never arrives
          restarting = api.stop().then(() => api.start());
          await restarting;
          cutDone({ seqs: batch.seqs });
        }),
      );
    },
  };
}

describe('server restarted mid-batch', () => {
  it.each<Cut>(['after-apply', 'before-apply'])('batch cut %s: retried, applied once, nothing duplicated in history', async (mode) => {
    const api = await Api.sqlite(cleanups).start();
    const proxy = await startProxy(api);
    const sim = await startSim(cleanups, { tasks: 6 });
    const truth = new GroundTruth(INSTANCE_ID);
    truth.observe(sim.state);
    const rec = startReconciler(cleanups, { server: proxy.url, sim, stateDir: cleanups.tempDir('faults-state-'), truth, batchSize: 5 });
    await churn(sim, truth, 4);
    await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    const watch = new RecordWatch(() => api.url, INSTANCE_ID).start();
    cleanups.add(() => watch.stop());

    const failedBefore = await rec.metric('ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'unreachable' });
    const cutting = proxy.cutNext(mode);
    await churn(sim, truth, 4);
    const { seqs } = await cutting;
    expect(seqs.length).toBeGreaterThan(0);
    await churn(sim, truth, 3);

    const took = await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    expect(took).toBeLessThan(RECOVERY_MS);
    expect(await rec.metric('ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'unreachable' })).toBeGreaterThan(failedBefore);
    await sleep(100);
    watch.stop();
    await verifyAgainstServer(api.url, truth, sim, { watch });
    // The cut batch's entries are each in history exactly once (verify checks every seq; be explicit).
    const host = (await (await fetch(`${api.url}/v2/hosts`)).json()) as { hosts: Array<{ instance_id: string; last_seq: number }> };
    expect(host.hosts.find((h) => h.instance_id === INSTANCE_ID)!.last_seq).toBeGreaterThanOrEqual(Math.max(...seqs));
  });
});
