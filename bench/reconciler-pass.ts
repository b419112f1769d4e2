// CPU per reconcile pass over 250 containers (issue 3's goal: ≤ 5 ms mean), in the process that
// runs it. `node dist/bench/reconciler-pass.js <passes> launcher|node-defaults` measures it in a
// child process with the reconciler launcher's V8 settings set at run time as the launcher sets
// them (cli/v8-flags.ts) or on Node's defaults, and prints the figures as JSON: the daemon's V8
// settings change what a pass costs (a 1 MiB young generation means more scavenges), so the goal
// is held against the settings the daemon ships with.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { applyV8Flags } from '../cli/v8-flags.js';
import { createReconcileLoop } from '../reconciler/loop.js';
import { openOutbox } from '../reconciler/outbox.js';
import { parseAgentTasksBody } from '../reconciler/sources/ecs-agent.js';
import { percentile } from '../tools/fleet-sim/index.js';
import { createFakeHost } from './reconciler-fakes.js';

const silent = pino({ level: 'silent' });

export interface PassCost {
  containers: number;
  passes: number;
  steadyCpuMs: { p50: number; p95: number; mean: number };
  churnCpuMs: { p50: number; p95: number; mean: number };
  /** Baseline: parsing the same body as the daemon does (parseAgentTasksBody), no reconcile. */
  parseOnlyCpuMs: { p50: number; mean: number };
  /** V8 flags set at run time in the measuring process (child processes only). */
  v8Flags?: string[];
}

const stats = (xs: number[]) => ({ p50: percentile(xs, 50), p95: percentile(xs, 95), mean: xs.reduce((a, b) => a + b, 0) / xs.length });

export async function runPassCost(passes: number, tasks = 125, containersPerTask = 2): Promise<PassCost> {
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const now = () => clock;
  const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-bench-pass-'));
  const outbox = openOutbox({ dir, maxBytes: 16 * 1024 * 1024 });
  const host = createFakeHost({ tasks, containersPerTask, now });
  const loop = createReconcileLoop({ agent: host.agent, imds: host.imds, outbox, logger: silent, resyncIntervalMs: 10_000, eventDebounceMs: 250, requestTimeoutMs: 3000, now });
  const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;
  try {
    host.agent.render();
    const first = await loop.runPass();
    outbox.ack(outbox.lastSeq());
    const containers = first.containers;
    // Warm-up (JIT)
    for (let i = 0; i < 20; i++) await loop.runPass();
    const steady: number[] = [];
    const churn: number[] = [];
    const parse: number[] = [];
    for (let i = 0; i < passes; i++) {
      // steady: nothing changed since the last pass
      let c0 = process.cpuUsage();
      await loop.runPass();
      steady.push(cpuMs(process.cpuUsage(c0)));
      c0 = process.cpuUsage();
      parseAgentTasksBody(host.agent.body);
      parse.push(cpuMs(process.cpuUsage(c0)));
      // churn: one task starts or stops, tasks advance a lifecycle step
      clock += 10_000;
      host.model.tick({ target: tasks });
      host.agent.render();
      c0 = process.cpuUsage();
      await loop.runPass();
      churn.push(cpuMs(process.cpuUsage(c0)));
      if (outbox.lastSeq() > outbox.ackedSeq()) outbox.ack(outbox.lastSeq());
    }
    const p = stats(parse);
    return { containers, passes, steadyCpuMs: stats(steady), churnCpuMs: stats(churn), parseOnlyCpuMs: { p50: p.p50, mean: p.mean } };
  } finally {
    await loop.stop();
    outbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export type PassSettings = 'launcher' | 'node-defaults';

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const [passes, settings] = process.argv.slice(2);
  // Before anything allocates much: the launcher sets them before the daemon's modules load.
  if (settings !== 'launcher' && settings !== 'node-defaults') throw new Error(`usage: reconciler-pass.js <passes> launcher|node-defaults (got ${settings})`);
  const v8Flags = settings === 'launcher' ? applyV8Flags('reconciler') : [];
  console.log(JSON.stringify({ ...(await runPassCost(Number(passes))), v8Flags }));
}
