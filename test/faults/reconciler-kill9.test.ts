// Fault: the reconciler process (`./bin/ecs-id-mapper reconciler`) killed with SIGKILL and
// restarted on the same --state-dir.
// - Mid-append: the host churns hard (12 tasks, a tick every 30 ms) so the outbox is being
//   appended to at every pass, and the process is killed at several offsets; once, the torn
//   half-line a kill in the middle of write(2) leaves is added to outbox.jsonl before the restart.
// - Mid-report: a proxy holds one POST .../transitions and the process is killed while it is in
//   flight: once after the server applied the batch (the acknowledgement never arrives), once
//   before the server saw it.
// Proven: after restarts the server's records equal the truth, each (host, seq) is in history
// once, every container's history is one chain with no snapshot repair, seqs are never reused
// (the restarted daemon starts above the server's last seq), and the restarted daemon's metrics
// show the redelivery. Recovery bound: ≤ 15 s wall after the last restart (process start included).
// test/reconciler-sim.test.ts already kills the daemon at timed points of a gentler churn; these
// runs aim at the append and the in-flight report deliberately.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SimulatedHost } from '../../tools/simulate-host/index.js';
import { GroundTruth, verifyAgainstServer, waitForConvergence } from '../support/ground-truth.js';
import { Api, Cleanups, INSTANCE_ID, churn, sampleOf, sleep, startSim } from '../support/fault-rig.js';
import { REPO_ROOT, ensureBuilt } from '../support/built.js';
import { startReportProxy } from '../support/report-proxy.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());
beforeAll(() => ensureBuilt(), 300_000);

const RECOVERY_MS = 15_000;
const BIN = join(REPO_ROOT, 'bin/ecs-id-mapper');

interface Daemon {
  child: ChildProcess;
  metricsUrl: string;
  startLog: { last_seq: number; outbox_depth: number };
}

function args(server: string, sim: SimulatedHost, stateDir: string): string[] {
  return [
    '--server', server, '--ecs-agent-url', sim.agentUrl, '--imds-url', sim.imdsUrl, '--docker-socket', 'none',
    // Restarted after kill -9 on the same state dir: the killed daemon's lock goes stale in 300 ms.
    '--state-dir', stateDir, '--state-lock-stale-after', '300ms', '--metrics-host', '127.0.0.1', '--metrics-port', '0', '--resync-interval', '40ms',
    '--request-timeout', '1s', '--backoff-base', '20ms', '--backoff-max', '200ms', '--batch-size', '7', '--log-level', 'info',
  ];
}

async function spawnDaemon(server: string, sim: SimulatedHost, stateDir: string): Promise<Daemon> {
  const child = spawn(process.execPath, [BIN, 'reconciler', ...args(server, sim, stateDir)], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.add(() => kill9(child));
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`reconciler did not start within 20 s: ${err}`)), 20_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      for (const line of out.split('\n')) {
        if (!line.includes('"msg":"reconciler started')) continue;
        clearTimeout(timer);
        const log = JSON.parse(line) as { metrics_url: string; last_seq: number; outbox_depth: number };
        resolve({ child, metricsUrl: log.metrics_url, startLog: log });
        return;
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`reconciler exited ${code} before starting: ${err}`));
    });
  });
}

/**
 * Waits for the daemon's first completed pass (its metrics say so). Until then it cannot have
 * listed anything, so what the host shows is not yet "seen" by it.
 */
async function firstPass(daemon: Daemon): Promise<void> {
  const end = Date.now() + 20_000;
  while (Date.now() < end) {
    const text = await (await fetch(daemon.metricsUrl)).text();
    if ((sampleOf(text, 'ecs_id_mapper_reconciler_passes_total{result="ok"}') ?? 0) >= 1) return;
    await sleep(20);
  }
  throw new Error('the reconciler completed no pass within 20 s');
}

async function kill9(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

async function hostLastSeq(api: Api): Promise<number> {
  const body = (await (await fetch(`${api.url}/v2/hosts`)).json()) as { hosts: Array<{ instance_id: string; last_seq: number }> };
  return body.hosts.find((h) => h.instance_id === INSTANCE_ID)?.last_seq ?? 0;
}

/** Forwards to the server; `holdNext` keeps the next transitions POST from ever being answered. */
async function startHoldingProxy(api: Api) {
  const proxy = await startReportProxy(cleanups, () => api.url);
  return {
    url: proxy.url,
    holdNext(forward: boolean): Promise<number[]> {
      return new Promise((held) =>
        proxy.interceptNext(async (batch) => {
          if (forward) await batch.forward();
          held(batch.seqs); // never answered: the daemon is killed while waiting
        }),
      );
    },
  };
}

describe('reconciler killed with kill -9', () => {
  it('mid-append, at several offsets and with a torn last line: no loss, no duplicates', async () => {
    const api = await Api.sqlite(cleanups).start();
    const sim = await startSim(cleanups, { tasks: 12, containersPerTask: 3, cleanupAfterMs: 5000 });
    const truth = new GroundTruth(INSTANCE_ID);
    truth.observe(sim.state);
    const stateDir = cleanups.tempDir('faults-state-');
    let daemon = await spawnDaemon(api.url, sim, stateDir);
    await firstPass(daemon);
    await churn(sim, truth, 5, 30);
    const outboxLog = join(stateDir, 'outbox.jsonl');
    for (const [round, offsetMs] of [7, 19, 33, 52].entries()) {
      sim.tick();
      truth.observe(sim.state);
      await sleep(offsetMs);
      await kill9(daemon.child);
      if (round === 1) {
        expect(existsSync(outboxLog)).toBe(true);
        appendFileSync(outboxLog, '{"seq":999999,"container_id":"'); // what a kill inside write(2) leaves
      }
      const serverSeq = await hostLastSeq(api);
      await churn(sim, truth, 2, 30, false); // unseen while down: known only if still listed after
      daemon = await spawnDaemon(api.url, sim, stateDir);
      await firstPass(daemon); // kills aim at a working daemon, not at its start-up
      // The killed daemon's lock was left behind, and taken over once its heartbeat had stopped.
      expect(sampleOf(await (await fetch(daemon.metricsUrl)).text(), 'ecs_id_mapper_reconciler_state_dir_lock_takeovers_total')).toBe(1);
      truth.observe(sim.state);
      // Seqs are never reused: the restarted daemon continues above what the server holds.
      expect(daemon.startLog.last_seq).toBeGreaterThanOrEqual(serverSeq);
      await churn(sim, truth, 4, 30);
    }
    await churn(sim, truth, 6, 1000); // stopped tasks get cleaned up: the end state has gone containers
    expect(daemon.child.exitCode, 'the restarted daemon is still running').toBeNull();
    const took = await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    expect(took).toBeLessThan(RECOVERY_MS);
    await verifyAgainstServer(api.url, truth, sim, { withinMs: RECOVERY_MS });
    expect([...truth.expected(sim.state).values()]).toContain('gone');
    const metrics = await (await fetch(daemon.metricsUrl)).text();
    expect(sampleOf(metrics, 'ecs_id_mapper_reconciler_outbox_depth')).toBe(0);
  }, 120_000);

  it.each([
    ['after the server applied the batch', true],
    ['before the server saw the batch', false],
  ])('mid-report, %s: the batch is delivered once after the restart', async (_label, forward) => {
    const api = await Api.sqlite(cleanups).start();
    const proxy = await startHoldingProxy(api);
    const sim = await startSim(cleanups, { tasks: 6, cleanupAfterMs: 5000 });
    const truth = new GroundTruth(INSTANCE_ID);
    truth.observe(sim.state);
    const stateDir = cleanups.tempDir('faults-state-');
    let daemon = await spawnDaemon(proxy.url, sim, stateDir);
    await firstPass(daemon);
    await churn(sim, truth, 3);
    await waitForConvergence(api.url, truth, sim, RECOVERY_MS);

    const holding = proxy.holdNext(forward);
    await churn(sim, truth, 2);
    const seqs = await holding;
    await kill9(daemon.child); // the report is in flight
    expect(await hostLastSeq(api)).toBe(forward ? Math.max(...seqs) : Math.min(...seqs) - 1);
    daemon = await spawnDaemon(proxy.url, sim, stateDir);
    // Unacknowledged, so still queued on disk: the restarted daemon redelivers it.
    expect(daemon.startLog.outbox_depth).toBeGreaterThanOrEqual(seqs.length);
    await firstPass(daemon);
    truth.observe(sim.state);
    await churn(sim, truth, 3);
    const took = await waitForConvergence(api.url, truth, sim, RECOVERY_MS);
    expect(took).toBeLessThan(RECOVERY_MS);
    await verifyAgainstServer(api.url, truth, sim, { withinMs: RECOVERY_MS });
    expect(await hostLastSeq(api)).toBeGreaterThanOrEqual(Math.max(...seqs));
    const metrics = await (await fetch(daemon.metricsUrl)).text();
    expect(sampleOf(metrics, 'ecs_id_mapper_reconciler_report_attempts_total{kind="transitions",result="success"}')).toBeGreaterThan(0);
  }, 60_000);
});
