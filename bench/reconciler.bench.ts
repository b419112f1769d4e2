// Reconciler benchmarks (issue 3):
// 1. CPU per pass over 250 containers (goal ≤ 5 ms), steady and churning, with the baseline of the
//    same run: parsing the agent's /v1/tasks body alone (what any poller pays).
// 2. RSS with 250 containers after an hour of simulated churn (goal ≤ 64 MiB, no growth), in a
//    child process (bench/reconciler-soak.ts), with default heap settings and with small-heap flags.
// 3. Container start → queryable on the server, p95, with Docker events (goal ≤ 1 s) and without
//    (goal ≤ the resync interval): loop + real reporter + a real server on loopback; the Docker
//    event is simulated (the fake Docker source emits `start` when the container starts).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import pino from 'pino';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { buildServer } from '../api/server.js';
import { parseLinks } from '../config/links.js';
import { createReconcileLoop } from '../reconciler/loop.js';
import { openOutbox } from '../reconciler/outbox.js';
import { createReporter } from '../reconciler/reporter.js';
import { parseAgentTasks } from '../reconciler/sources/ecs-agent.js';
import { openStore } from '../storage/index.js';
import { percentile, rssSlope } from '../tools/fleet-sim/index.js';
import { createFakeHost } from './reconciler-fakes.js';
import type { SoakResult } from './reconciler-soak.js';
import { writeBenchmarkSection } from './report.js';

const silent = pino({ level: 'silent' });

export interface PassCost {
  containers: number;
  passes: number;
  steadyCpuMs: { p50: number; p95: number; mean: number };
  churnCpuMs: { p50: number; p95: number; mean: number };
  /** Baseline: JSON.parse + parseAgentTasks of the same body, no reconcile. */
  parseOnlyCpuMs: { p50: number; mean: number };
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
      parseAgentTasks(JSON.parse(host.agent.body));
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

export interface SoakRun {
  flags: string[];
  result: SoakResult;
  /** RSS slope over the second half of the simulated hour, MiB per simulated hour. */
  slopeMiBPerHour: number;
}

const execFileP = promisify(execFile);

/** Runs bench/reconciler-soak in a child with the given node flags (compiled: dist/bench/). */
export async function runSoakChild(flags: string[], hours: number, passSeconds: number): Promise<SoakRun> {
  const script = fileURLToPath(new URL('./reconciler-soak.js', import.meta.url));
  const { stdout } = await execFileP(process.execPath, [...flags, script, '--hours', String(hours), '--pass-seconds', String(passSeconds)], { maxBuffer: 16 * 1024 * 1024 });
  const result = JSON.parse(stdout.trim().split('\n').pop()!) as SoakResult;
  const half = result.samples.filter(([min]) => min >= (hours * 60) / 2);
  return { flags, result, slopeMiBPerHour: rssSlope(half.map(([min, rss]) => ({ atSeconds: min * 60, bytes: rss }))) };
}

export interface QueryableResult {
  events: boolean;
  resyncIntervalMs: number;
  samples: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
}

/** Starts `samples` containers at random times over `windowMs` and times each until GET /v2/lookup finds it. */
export async function runStartToQueryable(events: boolean, resyncIntervalMs: number, samples: number, windowMs: number): Promise<QueryableResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-bench-s2q-'));
  const store = await openStore({ backend: 'sqlite', path: join(dir, 's2q.db') });
  const app = await buildServer({ store, registry: new Registry(), logger: false, links: parseLinks([]), cadvisorPort: 8080, hostStaleAfterMs: 15 * 60_000, bodyLimitBytes: 1024 * 1024, reportRateLimitPerMinute: 100_000 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  const outbox = openOutbox({ dir: join(dir, 'outbox'), maxBytes: 16 * 1024 * 1024 });
  const host = createFakeHost({ tasks: 20, containersPerTask: 2, now: Date.now, seed: events ? 11 : 13 });
  host.agent.auto = true;
  const reporterBox: { notify?: () => void } = {};
  const loop = createReconcileLoop({
    agent: host.agent,
    imds: host.imds,
    ...(events ? { docker: host.docker } : {}),
    outbox,
    logger: silent,
    resyncIntervalMs,
    eventDebounceMs: 250,
    requestTimeoutMs: 3000,
    onPass: () => reporterBox.notify?.(),
  });
  const reporter = createReporter({
    server: new URL(url),
    outbox,
    host: () => loop.identity(),
    snapshot: () => loop.snapshot(),
    batchSize: 500,
    timeoutMs: 3000,
    backoffBaseMs: 100,
    backoffMaxMs: 1000,
    fullSyncIntervalMs: 3_600_000,
    logger: silent,
  });
  reporterBox.notify = () => reporter.notify();
  const latencies: number[] = [];
  try {
    loop.start();
    reporter.start();
    // Let the initial population become queryable first.
    await new Promise((r) => setTimeout(r, Math.min(2000, resyncIntervalMs)));
    const one = async (delay: number) => {
      await new Promise((r) => setTimeout(r, delay));
      const task = host.model.startTask({ running: true });
      const id = task.containers[0].docker_id;
      const t0 = performance.now();
      if (events) host.docker.emit({ action: 'start', container_id: id, time_nano: String(BigInt(Date.now()) * 1_000_000n), labels: {} });
      for (;;) {
        const res = await request(`${url}/v2/lookup/${id}`);
        await res.body.dump();
        if (res.statusCode === 200) break;
        if (performance.now() - t0 > 10 * resyncIntervalMs + 10_000) throw new Error(`container ${id} never became queryable`);
        await new Promise((r) => setTimeout(r, 20));
      }
      latencies.push(performance.now() - t0);
    };
    await Promise.all(Array.from({ length: samples }, () => one(Math.random() * windowMs)));
  } finally {
    await loop.stop();
    await reporter.flush(1000).catch(() => false);
    reporter.stop();
    outbox.close();
    await app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return { events, resyncIntervalMs, samples, p50Ms: percentile(latencies, 50), p95Ms: percentile(latencies, 95), maxMs: Math.max(...latencies) };
}

export interface ReconcilerBenchResult {
  pass: PassCost;
  soak: SoakRun[];
  soakHours: number;
  /** RSS of a bare `node -e` process (no modules): the floor under any Node daemon. */
  bareNodeRssBytes?: number;
  /** What importing each dependency adds to a bare process. */
  modules?: Array<{ module: string; addedBytes: number }>;
  queryable: QueryableResult[];
}

/** RSS a module adds when imported into a bare process (after GC), bytes: where the floor comes from. */
export async function moduleRss(specifiers: string[]): Promise<Array<{ module: string; addedBytes: number }>> {
  const out = [];
  for (const spec of specifiers) {
    const target = spec.startsWith('.') ? new URL(spec, import.meta.url).href : spec;
    const code = `gc(); const a = process.memoryUsage().rss; await import(${JSON.stringify(target)}); gc(); console.log(process.memoryUsage().rss - a);`;
    // Resolved from this package, so bare specifiers find node_modules.
    const { stdout } = await execFileP(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], { cwd: fileURLToPath(new URL('../..', import.meta.url)) });
    out.push({ module: spec, addedBytes: Number(stdout.trim()) });
  }
  return out;
}

export async function bareNodeRss(flags: string[] = []): Promise<number> {
  const { stdout } = await execFileP(process.execPath, [...flags, '-e', 'globalThis.gc?.(); console.log(process.memoryUsage().rss)']);
  return Number(stdout.trim());
}

export const SMALL_HEAP_FLAGS = ['--max-semi-space-size=1', '--max-old-space-size=32'];

export async function runReconcilerBench(quick: boolean, log: (l: string) => void = () => {}): Promise<ReconcilerBenchResult> {
  const pass = await runPassCost(quick ? 100 : 500);
  log(`reconciler: pass cost steady p50 ${pass.steadyCpuMs.p50.toFixed(2)} ms, churn p50 ${pass.churnCpuMs.p50.toFixed(2)} ms`);
  const soakHours = 1;
  // Quick: one pass per default resync interval (10 s); full: one per second (events make passes more frequent).
  const passSeconds = quick ? 10 : 1;
  const soak = [await runSoakChild(['--expose-gc'], soakHours, passSeconds), await runSoakChild(['--expose-gc', ...SMALL_HEAP_FLAGS], soakHours, passSeconds)];
  log(`reconciler: soak done`);
  const bareNodeRssBytes = await bareNodeRss(['--expose-gc']);
  const modules = await moduleRss(['undici', 'prom-client', 'pino', 'xstate', '../reconciler/main.js']).catch(() => undefined);
  // The default resync interval (10 s) in both modes: the polling-only bound is about it.
  const resync = 10_000;
  const samples = quick ? 20 : 60;
  const queryable = [await runStartToQueryable(true, resync, samples, quick ? 4000 : 30_000), await runStartToQueryable(false, resync, samples, quick ? 10_000 : 30_000)];
  return { pass, soak, soakHours, bareNodeRssBytes, modules, queryable };
}

export function reconcilerMarkdown(r: ReconcilerBenchResult): string {
  const ok = (pass: boolean) => (pass ? 'met' : '**not met**');
  const ms = (n: number) => `${n.toFixed(2)} ms`;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const p = r.pass;
  const soakRows = r.soak
    .map((s) => {
      const last = s.result.samples[s.result.samples.length - 1];
      const peak = s.result.samples.reduce((a, x) => Math.max(a, x[1]), 0);
      const heapFlags = s.flags.filter((f) => f !== '--expose-gc');
      return `| ${heapFlags.length ? heapFlags.map((f) => `\`${f}\``).join(' ') : 'none (Node defaults)'} | ${mib(s.result.rssBeforeFirstPass)} | ${mib(last[1])} | ${mib(peak)} | ${mib(last[2])} | ${s.slopeMiBPerHour.toFixed(2)} MiB/h | ${(s.result.cpuMicrosPerPass / 1000).toFixed(2)} ms | ${s.result.passes} passes, ${s.result.transitions} transitions | ≤ 64 MiB — ${ok(last[1] <= 64 * 2 ** 20 && peak <= 64 * 2 ** 20)}; no growth — ${ok(s.slopeMiBPerHour <= 1)} |`;
    })
    .join('\n');
  const q = r.queryable;
  const qRows = q
    .map((x) => `| ${x.events ? 'with Docker events (simulated trigger, 250 ms debounce)' : 'without events (polling only)'} | ${x.samples} | ${ms(x.p50Ms)} | ${ms(x.p95Ms)} | ${ms(x.maxMs)} | ${x.events ? `≤ 1 s — ${ok(x.p95Ms <= 1000)}` : `≤ resync interval (${x.resyncIntervalMs / 1000} s) — ${ok(x.p95Ms <= x.resyncIntervalMs)}`} |`)
    .join('\n');
  return `### CPU per pass over ${p.containers} containers

The reconcile loop (xstate machines, durable outbox with fsync) against an in-process agent serving the simulated host's \`/v1/tasks\` body (125 tasks × 2 containers), parsed by the reconciler's own parser; \`process.cpuUsage()\` around each pass, ${p.passes} passes of each kind after 20 warm-up passes. Baseline (same run): parsing the same body alone, which any poller pays.

| pass | CPU p50 | CPU p95 | mean | goal |
|---|---|---|---|---|
| steady (nothing changed) | ${ms(p.steadyCpuMs.p50)} | ${ms(p.steadyCpuMs.p95)} | ${ms(p.steadyCpuMs.mean)} | ≤ 5 ms (mean) — ${ok(p.steadyCpuMs.mean <= 5)} |
| churn (a task starts or stops; transitions appended and fsync'd) | ${ms(p.churnCpuMs.p50)} | ${ms(p.churnCpuMs.p95)} | ${ms(p.churnCpuMs.mean)} | ≤ 5 ms (mean) — ${ok(p.churnCpuMs.mean <= 5)} |
| baseline: JSON.parse + parse of the agent body only | ${ms(p.parseOnlyCpuMs.p50)} | | ${ms(p.parseOnlyCpuMs.mean)} | |

### Reconciler RSS after an hour of simulated churn

A separate process per row (\`bench/reconciler-soak.ts\`): loop, outbox, metrics registry (default process metrics included) and pino as the daemon loads them; 250 containers; a fake clock advances one pass interval per pass (${r.soak[0]?.result.passes ?? 0} passes for ${r.soakHours} simulated hour), every pass a task starts or stops; the outbox is acknowledged after each pass. RSS sampled every simulated minute, then a forced GC (\`--expose-gc\`) so the live heap can be read: the forced GCs also keep RSS lower than it would otherwise be. Slope fitted over the second half. The reporter's HTTP client is not in this process (measured in the fleet and start→queryable runs).

| heap flags | RSS before the first pass (baseline) | RSS at the end | RSS peak | live heap at the end | RSS slope | CPU per pass (incl. churn) | work | goal |
|---|---|---|---|---|---|---|---|---|
${soakRows}

${r.bareNodeRssBytes ? `A bare \`node -e\` process (no modules) has an RSS of ${mib(r.bareNodeRssBytes)} on this machine: the floor under any Node daemon. ` : ''}${r.modules ? `Imported alone into a bare process, each dependency adds (RSS after GC): ${r.modules.map((m) => `${m.module === '../reconciler/main.js' ? 'the whole daemon (reconciler/main.js)' : `\`${m.module}\``} ${mib(m.addedBytes)}`).join(', ')}. So the floor of the daemon as built is above 64 MiB before it tracks a single container: reaching the goal needs fewer or lazily loaded dependencies (e.g. node:http instead of undici for the three loopback clients), not heap flags. ` : ''}What the flags cost: compare the CPU-per-pass column (a smaller young generation means more frequent scavenges). The gap between the baseline column and the end is what an hour of churn added; the live heap column says whether it is held objects or uncollected garbage.

### Container start → queryable on the server

A real server (SQLite, loopback) and the real reporter; ${q[0]?.samples ?? 0} containers started at random moments per row, each polled with \`GET /v2/lookup/<id>\` every 20 ms from its start. Resync interval ${(q[0]?.resyncIntervalMs ?? 0) / 1000} s${(q[0]?.resyncIntervalMs ?? 0) < 10_000 ? ' (quick mode; the default is 10 s)' : ''}. The baseline is the polling-only row.

| mode | samples | p50 | p95 | max | goal |
|---|---|---|---|---|---|
${qRows}`;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const quick = !process.argv.includes('--full');
  try {
    const r = await runReconcilerBench(quick, (l) => console.error(l));
    writeBenchmarkSection('reconciler', 'Reconciler: pass cost, RSS, start → queryable', reconcilerMarkdown(r));
    console.log(reconcilerMarkdown(r));
  } catch (err) {
    console.error(`bench:reconciler: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
