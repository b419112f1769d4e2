// One reconciler (loop + durable outbox + metrics, as the daemon wires them) over a churning
// 250-container host for a SIMULATED hour: the clock advances one pass interval per pass and the
// passes run back to back. RSS and heap are sampled every simulated minute. Run as its own process
// (bench/reconciler.bench.ts starts it with and without heap flags) so its RSS is its own.
// The outbox is acknowledged after every pass, as a reachable server would.
//
// Usage: node dist/bench/reconciler-soak.js [--hours 1] [--pass-seconds 2] [--tasks 125]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { createReconcileLoop } from '../reconciler/loop.js';
import { createReconcilerMetrics } from '../reconciler/metrics.js';
import { openOutbox } from '../reconciler/outbox.js';
import { createFakeHost } from './reconciler-fakes.js';

export interface SoakOptions {
  simulatedHours: number;
  passSeconds: number;
  tasks: number;
  containersPerTask: number;
}

export interface SoakResult {
  passes: number;
  transitions: number;
  containersAtEnd: number;
  /** [simulated minute, rss bytes, heapUsed bytes] (heap after a forced GC when run with --expose-gc: live objects only) */
  samples: Array<[number, number, number]>;
  /** RSS with every module loaded and the loop built, before the first pass: the floor. */
  rssBeforeFirstPass: number;
  cpuMicrosPerPass: number;
  wallSeconds: number;
  execArgv: string[];
}

export async function runReconcilerSoak(options: SoakOptions): Promise<SoakResult> {
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const now = () => clock;
  const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-bench-soak-'));
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'ecs_id_mapper_process_' });
  const metrics = createReconcilerMetrics(registry, now);
  const outbox = openOutbox({ dir, maxBytes: 16 * 1024 * 1024 });
  const host = createFakeHost({ tasks: options.tasks, containersPerTask: options.containersPerTask, now });
  host.agent.auto = true;
  const loop = createReconcileLoop({
    agent: host.agent,
    imds: host.imds,
    outbox,
    logger: pino({ level: 'silent' }),
    metrics,
    resyncIntervalMs: options.passSeconds * 1000,
    eventDebounceMs: 250,
    requestTimeoutMs: 3000,
    now,
  });
  const samples: Array<[number, number, number]> = [];
  const passes = Math.round((options.simulatedHours * 3600) / options.passSeconds);
  const sampleEvery = Math.max(1, Math.round(60 / options.passSeconds));
  let transitions = 0;
  let cpu = 0;
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const rssBeforeFirstPass = process.memoryUsage().rss;
  const t0 = performance.now();
  try {
    for (let p = 0; p < passes; p++) {
      host.model.tick({ target: options.tasks });
      const c0 = process.cpuUsage();
      const r = await loop.runPass();
      const c = process.cpuUsage(c0);
      cpu += c.user + c.system;
      transitions += r.transitions.length;
      if (outbox.lastSeq() > outbox.ackedSeq()) outbox.ack(outbox.lastSeq());
      clock += options.passSeconds * 1000;
      if (p % sampleEvery === 0 || p === passes - 1) {
        // RSS as the process stands, then the live heap (garbage collected first when allowed).
        const rss = process.memoryUsage().rss;
        gc?.();
        samples.push([((p + 1) * options.passSeconds) / 60, rss, process.memoryUsage().heapUsed]);
      }
    }
    return {
      passes,
      transitions,
      containersAtEnd: Object.values(loop.containersByState()).reduce((a, b) => a + b, 0),
      samples,
      rssBeforeFirstPass,
      cpuMicrosPerPass: cpu / passes,
      wallSeconds: (performance.now() - t0) / 1000,
      execArgv: process.execArgv,
    };
  } finally {
    await loop.stop();
    outbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(`--${name}`);
    return i === -1 ? dflt : Number(process.argv[i + 1]);
  };
  const result = await runReconcilerSoak({ simulatedHours: arg('hours', 1), passSeconds: arg('pass-seconds', 2), tasks: arg('tasks', 125), containersPerTask: 2 });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
