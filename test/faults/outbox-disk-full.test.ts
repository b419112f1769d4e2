// Fault: the outbox's disk is full (ENOSPC on every write, through the outbox's injectable fs).
// Proven: no crash (passes keep running and are counted), the condition is visible in
// ecs_id_mapper_reconciler_outbox_write_errors_total{code="ERR_OUTBOX_NO_SPACE"}, machines do
// not advance past what is on disk (so nothing is emitted without being durable), compaction
// failures after an acknowledgement only cause resends the server absorbs, and after space
// returns every change arrives. Recovery bound: ≤ 10 s wall after space returns.
import * as nodeFs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { OutboxFs } from '../../reconciler/outbox.js';
import { GroundTruth, RecordWatch, verifyAgainstServer, waitForConvergence } from '../support/ground-truth.js';
import { Api, Cleanups, INSTANCE_ID, churn, sleep, startReconciler, startSim } from '../support/fault-rig.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

const RECOVERY_MS = 10_000;

/** node:fs, except that writes fail with ENOSPC while `full` is set. */
function fullableFs(): OutboxFs & { full: boolean; refused: number } {
  const real = nodeFs as unknown as OutboxFs;
  const fs = {
    ...real,
    full: false,
    refused: 0,
    writeSync(fd: number, data: Uint8Array): number {
      if (fs.full) {
        fs.refused++;
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
      }
      return real.writeSync(fd, data);
    },
  };
  return fs;
}

describe('outbox disk full', () => {
  it('keeps running, counts ENOSPC, and delivers everything once space returns', async () => {
    const api = await Api.sqlite(cleanups).start();
    const sim = await startSim(cleanups);
    const truth = new GroundTruth(INSTANCE_ID);
    truth.observe(sim.state);
    const fs = fullableFs();
    const rec = startReconciler(cleanups, { server: api.url, sim, stateDir: cleanups.tempDir('faults-state-'), truth, outboxFs: fs });
    await churn(sim, truth, 5);
    await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    const watch = new RecordWatch(() => api.url, INSTANCE_ID).start();
    cleanups.add(() => watch.stop());

    fs.full = true;
    const passesBefore = rec.passes.length;
    const lastSeqBefore = rec.outbox.lastSeq();
    // Not observable: a container born and cleaned up entirely while nothing can be made durable
    // is lost to everyone (the daemon never emitted it); what is still listed afterwards must arrive.
    await churn(sim, truth, 6, 100, false);
    await sleep(300);

    expect(fs.refused).toBeGreaterThan(0);
    expect(await rec.metric('ecs_id_mapper_reconciler_outbox_write_errors_total', { code: 'ERR_OUTBOX_NO_SPACE' })).toBeGreaterThan(0);
    // Still reconciling: passes keep coming, each failed append reported on its pass and retried.
    expect(rec.passes.length).toBeGreaterThan(passesBefore + 3);
    const failedAppends = rec.passes.slice(passesBefore).filter((p) => p.outboxError !== null);
    expect(failedAppends.length).toBeGreaterThan(0);
    expect(failedAppends.every((p) => p.outboxError!.code === 'ERR_OUTBOX_NO_SPACE' && p.transitions.length === 0)).toBe(true);
    // Nothing became a seq while the disk was full, so the server cannot have the changes yet.
    expect(rec.outbox.lastSeq()).toBe(lastSeqBefore);

    fs.full = false;
    truth.observe(sim.state);
    const took = await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    expect(took).toBeLessThan(RECOVERY_MS);
    await watch.finish();
    await verifyAgainstServer(api.url, truth, sim, { watch });
  });

  it('a compaction that fails after the server acknowledged only causes a resend the server ignores', async () => {
    const api = await Api.sqlite(cleanups).start();
    const sim = await startSim(cleanups);
    const truth = new GroundTruth(INSTANCE_ID);
    truth.observe(sim.state);
    const fs = fullableFs();
    const rec = startReconciler(cleanups, { server: api.url, sim, stateDir: cleanups.tempDir('faults-state-'), truth, outboxFs: fs, autoStart: false });
    // The append succeeds; the disk fills before the acknowledgement's compaction.
    sim.tick();
    truth.observe(sim.state);
    const r = await rec.pass();
    expect(r.transitions.length).toBeGreaterThan(0);
    fs.full = true;
    rec.reporter.notify();
    await sleep(400);
    expect(rec.outbox.depth()).toBeGreaterThan(0); // delivered but not compacted
    expect(await rec.metric('ecs_id_mapper_reconciler_outbox_write_errors_total', { code: 'ERR_OUTBOX_NO_SPACE' })).toBeGreaterThan(0);
    fs.full = false;
    rec.reporter.notify();
    const took = await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    expect(took).toBeLessThan(RECOVERY_MS);
    await sleep(300);
    expect(rec.outbox.depth()).toBe(0);
    await verifyAgainstServer(api.url, truth, sim);
  });
});
