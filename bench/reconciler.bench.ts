// Reconciler benchmarks (issue 3):
// 1. CPU per pass over 250 containers (goal ≤ 5 ms), steady and churning, with the baseline of the
//    same run: parsing the agent's /v1/tasks body alone (what any poller pays).
// 2. RSS with 250 containers over hours of simulated churn (goal ≤ 64 MiB, no growth), in a
//    child process (bench/reconciler-soak.ts): as shipped, on Node's defaults, with the launcher's
//    previous settings, and inside a 64 MiB memory cgroup (bench/reconciler-cgroup.ts).
// 3. Container start → queryable on the server, p95, with Docker events (goal ≤ 1 s) and without
//    (goal ≤ the resync interval): loop + real reporter + a real server on loopback; the Docker
//    event is simulated (the fake Docker source emits `start` when the container starts).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
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
import { openStore } from '../storage/index.js';
import { percentile, rssSlope } from '../tools/fleet-sim/index.js';
import { V8_FLAGS } from '../cli/v8-flags.js';
import { createFakeHost } from './reconciler-fakes.js';
import { memoryCgroupUnavailable } from './reconciler-cgroup.js';
import { runPassCost, type PassCost, type PassSettings } from './reconciler-pass.js';
import { closeStore, runReconcilerSoak, type SoakOptions, type SoakResult, type SoakSample } from './reconciler-soak.js';
import { runBenchProgram, writeBenchmarkSection } from './report.js';

const silent = pino({ level: 'silent' });

export interface SoakRun {
  /** How the daemon was started, for the table. */
  label: string;
  /** Runs as shipped: through the launcher, no extra node flags or environment, no memory limit. */
  shipped: boolean;
  /** Ran inside a memory cgroup with this limit (bytes). */
  memoryLimitBytes?: number;
  result: SoakResult;
  /** Simulated hours the row ran. */
  hours: number;
  /**
   * RSS slope past start-up (steadySamples), MiB per simulated hour, through the lowest RSS of
   * each cycle of the heap sawtooth (troughSlope).
   */
  slopeMiBPerHour: number;
}

export interface SoakVariant {
  label: string;
  entry: SoakOptions['entry'];
  nodeFlags: string[];
  runtimeV8Flags?: string[];
  env?: Record<string, string>;
  /** Extra `reconciler` flags, as an operator would add them. */
  daemonFlags?: string[];
  memoryLimitBytes?: number;
  /**
   * Runs GROWTH_SOAK_HOURS instead of one hour: the no-growth verdict rests on this row. Over one
   * hour the trough fit scattered between -0.1 and 1.4 MiB/h in five runs of the same build.
   */
  growthRun?: boolean;
  /** Part of quick mode (`npm run bench` must finish within 5 minutes); the others only with --full. */
  quick: boolean;
}

/**
 * Simulated hours of the growth row (SoakVariant.growthRun). A six-hour trial of the shipped
 * daemon gave 0.03 MiB/h through 100 cycles, its hourly trough medians all within 59.6-60.0 MiB.
 */
export const GROWTH_SOAK_HOURS = { quick: 3, full: 4 };

/** The issue's goal: the original agent ran capped at --memory=64m. */
export const GOAL_RSS_BYTES = 64 * 2 ** 20;

const launcherFlags = (V8_FLAGS.reconciler ?? []).map((f) => `\`${f}\``).join(' ');
/** The daemon flag that turns its heap ceiling off (reconciler/heap-ceiling.ts). */
const NO_HEAP_CEILING = ['--heap-headroom-bytes', '0'];
/** What the launcher set before --no-opt (the row measuring the change). */
const PREVIOUS_LAUNCHER_FLAGS = ['--semi-space-growth-factor=1', '--liftoff-only', '--optimize-for-size'];

/**
 * The rows of the RSS table: the daemon as shipped, the same daemon on Node's defaults (baseline),
 * and the shipped daemon inside a 64 MiB memory cgroup (what `docker run --memory=64m` and the
 * chart's hard limit do). Full mode adds the launcher's previous settings (before/after in one
 * run), the settings one at a time and an allocator setting a task definition could add; quick
 * mode must leave `npm run bench` within 5 minutes.
 */
export const SOAK_VARIANTS: SoakVariant[] = [
  { label: `as shipped: \`bin/ecs-id-mapper reconciler\` (launcher sets ${launcherFlags})`, entry: 'launcher', nodeFlags: [], growthRun: true, quick: true },
  { label: 'as shipped without its heap ceiling (`--heap-headroom-bytes 0`: V8 alone decides when to collect)', entry: 'launcher', nodeFlags: [], daemonFlags: NO_HEAP_CEILING, quick: false },
  { label: 'baseline: the same CLI entry on Node defaults (no launcher V8 settings, no heap ceiling)', entry: 'node-defaults', nodeFlags: [], daemonFlags: NO_HEAP_CEILING, quick: true },
  { label: `before: the launcher's previous settings (${PREVIOUS_LAUNCHER_FLAGS.map((f) => `\`${f}\``).join(' ')}, no heap ceiling)`, entry: 'node-defaults', nodeFlags: [], runtimeV8Flags: PREVIOUS_LAUNCHER_FLAGS, daemonFlags: NO_HEAP_CEILING, quick: false },
  { label: 'as shipped, inside a 64 MiB memory cgroup', entry: 'launcher', nodeFlags: [], memoryLimitBytes: GOAL_RSS_BYTES, quick: true },
  { label: '`--semi-space-growth-factor=1` only (no `--liftoff-only`), inside a 64 MiB memory cgroup', entry: 'node-defaults', nodeFlags: [], runtimeV8Flags: ['--semi-space-growth-factor=1'], memoryLimitBytes: GOAL_RSS_BYTES, quick: false },
  { label: 'launcher settings without `--optimize-for-size`', entry: 'node-defaults', nodeFlags: [], runtimeV8Flags: (V8_FLAGS.reconciler ?? []).filter((f) => f !== '--optimize-for-size'), quick: false },
  { label: 'as shipped + `MALLOC_ARENA_MAX=2` (environment; fewer glibc malloc arenas)', entry: 'launcher', nodeFlags: [], env: { MALLOC_ARENA_MAX: '2' }, quick: false },
];

export async function runSoak(variant: SoakVariant, options: Omit<SoakOptions, 'entry' | 'nodeFlags' | 'runtimeV8Flags' | 'env' | 'daemonFlags' | 'memoryLimitBytes'>): Promise<SoakRun> {
  const result = await runReconcilerSoak({ ...options, entry: variant.entry, nodeFlags: variant.nodeFlags, runtimeV8Flags: variant.runtimeV8Flags, env: variant.env, daemonFlags: variant.daemonFlags, memoryLimitBytes: variant.memoryLimitBytes });
  return {
    label: variant.label,
    shipped: variant.entry === 'launcher' && variant.nodeFlags.length === 0 && !variant.env && !variant.daemonFlags?.length && variant.memoryLimitBytes === undefined,
    ...(variant.memoryLimitBytes !== undefined ? { memoryLimitBytes: variant.memoryLimitBytes } : {}),
    result,
    hours: options.simulatedHours,
    slopeMiBPerHour: troughSlope(steadySamples(result.samples)),
  };
}

/**
 * The samples past start-up: all but the first quarter (one a simulated minute). With a heap cycle
 * every 3-5 simulated minutes, an hour leaves 12 to 19 cycles for the growth fit and the sawtooth's
 * range.
 */
export function steadySamples(samples: readonly SoakSample[]): readonly SoakSample[] {
  return samples.slice(Math.floor(samples.length / 4));
}

/**
 * RSS growth through the troughs of the heap's sawtooth. The daemon's heap saws between its live
 * size and a few MiB more (3 with its heap ceiling, at least 8 without), RSS with it; a
 * straight-line fit through every sample then reads the phase the run ends on as growth or
 * shrinkage of a few MiB per hour. A leak raises the troughs: each cycle runs from a sample whose
 * scrape counts more full collections than the one before to the next such sample, and the fit
 * goes through each cycle's lowest RSS (V8 gives pages back some time after the collection, so the
 * sample right after it is not always the lowest). With fewer than three cycles, every sample is used.
 */
export function troughSlope(samples: readonly SoakSample[]): number {
  const starts: number[] = [];
  for (let i = 1; i < samples.length; i++) if (samples[i].majorCollections > samples[i - 1].majorCollections) starts.push(i);
  const lows = starts.map((from, k) => {
    const cycle = samples.slice(from, starts[k + 1] ?? samples.length);
    return cycle.reduce((low, x) => (x.rssBytes < low.rssBytes ? x : low));
  });
  const used = lows.length >= 3 ? lows : samples;
  return rssSlope(used.map((x) => ({ atSeconds: x.minute * 60, bytes: x.rssBytes })));
}

const execFileP = promisify(execFile);

export { runPassCost, type PassCost };

/** The compiled bench/reconciler-pass.js, whether this file runs from dist/bench/ or from the sources (vitest). */
function passEntry(): string {
  const compiled = fileURLToPath(new URL('./reconciler-pass.js', import.meta.url));
  return existsSync(compiled) ? compiled : fileURLToPath(new URL('../dist/bench/reconciler-pass.js', import.meta.url));
}

/** runPassCost in a child process with the launcher's V8 settings or on Node's defaults (bench/reconciler-pass.ts). */
export async function runPassCostIn(settings: PassSettings, passes: number): Promise<PassCost> {
  const { stdout } = await execFileP(process.execPath, [passEntry(), String(passes), settings], { maxBuffer: 16 * 2 ** 20 });
  return JSON.parse(stdout) as PassCost;
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
    await closeStore(store);
    rmSync(dir, { recursive: true, force: true });
  }
  return { events, resyncIntervalMs, samples, p50Ms: percentile(latencies, 50), p95Ms: percentile(latencies, 95), maxMs: Math.max(...latencies) };
}

export interface ReconcilerBenchResult {
  /** With the launcher's V8 settings, as the daemon runs (the goal's figure). */
  pass: PassCost;
  /** The same passes on Node's defaults (what the settings cost). */
  passNodeDefaults?: PassCost;
  soak: SoakRun[];
  /** Simulated seconds and real milliseconds per pass in the soak. */
  soakPace?: { passSeconds: number; realPassMs: number };
  /** RSS of a bare `node -e` process (no modules): the floor under any Node daemon. */
  bareNodeRssBytes?: number;
  /** What importing each dependency adds to a bare process. */
  modules?: Array<{ module: string; addedBytes: number }>;
  /** Why the memory cgroup rows were left out, if they were (bench/reconciler-cgroup.ts). */
  cgroupUnavailable?: string;
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


export async function runReconcilerBench(quick: boolean, log: (l: string) => void = () => {}): Promise<ReconcilerBenchResult> {
  const pass = await runPassCostIn('launcher', quick ? 100 : 500);
  const passNodeDefaults = await runPassCostIn('node-defaults', quick ? 100 : 500);
  log(`reconciler: pass cost steady mean ${pass.steadyCpuMs.mean.toFixed(2)} ms, churn mean ${pass.churnCpuMs.mean.toFixed(2)} ms (Node defaults ${passNodeDefaults.steadyCpuMs.mean.toFixed(2)} / ${passNodeDefaults.churnCpuMs.mean.toFixed(2)} ms)`);
  // One pass per default resync interval (10 s simulated). Quick: 25 passes per real second, so
  // that its soaks (the growth row's three hours and three one-hour rows) fit the 5-minute budget;
  // full: 2 per second, which leaves the daemon idle most of the time as on a host.
  const soakPace = { passSeconds: 10, realPassMs: quick ? 40 : 500 };
  const growthHours = quick ? GROWTH_SOAK_HOURS.quick : GROWTH_SOAK_HOURS.full;
  const soak: SoakRun[] = [];
  const cgroupUnavailable = memoryCgroupUnavailable() ?? undefined;
  for (const variant of SOAK_VARIANTS.filter((v) => (v.quick || !quick) && (v.memoryLimitBytes === undefined || !cgroupUnavailable))) {
    const run = await runSoak(variant, { simulatedHours: variant.growthRun ? growthHours : 1, ...soakPace, tasks: 125, containersPerTask: 2 });
    soak.push(run);
    log(`reconciler: soak ${variant.label}: peak ${(soakFigures(run).peak / 2 ** 20).toFixed(1)} MiB${run.result.exited ? `, ${run.result.exited}` : ''}`);
  }
  const bareNodeRssBytes = await bareNodeRss();
  const modules = await moduleRss(['undici', '../reconciler/undici.js', 'prom-client', '../reconciler/prom.js', 'pino', '../reconciler/log.js', 'xstate', '../wire/index.js', '../wire/ids.js', '../reconciler/main.js']).catch(() => undefined);
  // The default resync interval (10 s) in both modes: the polling-only bound is about it.
  const resync = 10_000;
  const samples = quick ? 20 : 60;
  const queryable = [await runStartToQueryable(true, resync, samples, quick ? 4000 : 30_000), await runStartToQueryable(false, resync, samples, quick ? 10_000 : 30_000)];
  return { pass, passNodeDefaults, soak, soakPace, bareNodeRssBytes, modules, queryable, ...(cgroupUnavailable ? { cgroupUnavailable } : {}) };
}

const MODULE_NAMES: Record<string, string> = {
  undici: "`undici` (package index)",
  '../reconciler/undici.js': 'the parts the daemon loads (reconciler/undici.ts)',
  'prom-client': "`prom-client` (package index)",
  '../reconciler/prom.js': 'the parts the daemon loads (reconciler/prom.ts)',
  '../reconciler/log.js': 'the logger the daemon uses instead (reconciler/log.ts)',
  '../wire/index.js': 'wire/index.ts (the TypeBox wire schemas; the server imports them, the daemon no longer does)',
  '../wire/ids.js': 'wire/ids.ts (the TypeBox-free ids and states the daemon imports)',
  '../reconciler/main.js': 'the whole daemon (reconciler/main.js)',
};

/** Simulated hours in words: `1 hour`, `3 hours`. */
const hours = (n: number) => `${n} hour${n === 1 ? '' : 's'}`;

/** A row's figures; a daemon killed before its first sample has only its RSS after the first pass (0 if it never got there). */
export function soakFigures(s: SoakRun): { end: number; peak: number; anonEnd: number; anonPeak: number; heapEnd: number; heapLow: number; heapHigh: number; rssLow: number } {
  const xs = s.result.samples;
  const last = xs[xs.length - 1];
  const late = steadySamples(xs);
  return {
    end: last?.rssBytes ?? 0,
    peak: Math.max(s.result.rssAfterFirstPass, ...xs.map((x) => x.rssBytes)),
    anonEnd: last?.anonBytes ?? 0,
    anonPeak: Math.max(0, ...xs.map((x) => x.anonBytes)),
    heapEnd: last?.heapUsedBytes ?? 0,
    heapLow: late.length ? Math.min(...late.map((x) => x.heapUsedBytes)) : 0,
    heapHigh: late.length ? Math.max(...late.map((x) => x.heapUsedBytes)) : 0,
    rssLow: late.length ? Math.min(...late.map((x) => x.rssBytes)) : 0,
  };
}

/** Whether a row's daemon lived through the whole soak: no OOM kill, no exit. */
const survived = (s: SoakRun) => s.result.exited === undefined && (s.result.cgroup?.oomKills ?? 0) === 0;

/** The RSS goal as the issue states it: peak RSS of the daemon as shipped, no memory limit, ≤ 64 MiB and no growth. */
const rssGoalMet = (s: SoakRun) => survived(s) && soakFigures(s).peak <= GOAL_RSS_BYTES && s.slopeMiBPerHour <= 1;

/** The summary's RSS row: the shipped daemon, with the Node-defaults run of the same bench as baseline. */
export function reconcilerRssGoalRow(r: ReconcilerBenchResult): { figure: string; value: string; baseline: string; goal: string; met: boolean } | undefined {
  const shipped = r.soak.find((s) => s.shipped);
  if (!shipped) return undefined;
  const baseline = r.soak.find((s) => !s.shipped && s.label.startsWith('baseline'));
  const capped = r.soak.find((s) => s.memoryLimitBytes !== undefined && s.label.startsWith('as shipped'));
  const x = soakFigures(shipped);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  return {
    figure: `reconciler RSS over ${hours(shipped.hours)} of simulated churn, as shipped (${(V8_FLAGS.reconciler ?? []).join(' ')}; heap ceiling 3 MiB)`,
    value: `${mib(x.end)} (peak ${mib(x.peak)}; anonymous peak ${mib(x.anonPeak)}), slope ${shipped.slopeMiBPerHour.toFixed(2)} MiB/h, ${shipped.result.cpuMsPerPass.toFixed(2)} ms CPU/pass${capped ? `; in a 64 MiB cgroup: ${survived(capped) ? `ran the hour, ${capped.result.majorFaults} major faults` : `OOM-killed (${capped.result.exited ?? 'oom'})`}` : ''}`,
    baseline: baseline ? `Node defaults ${mib(soakFigures(baseline).end)} (peak ${mib(soakFigures(baseline).peak)}), ${baseline.result.cpuMsPerPass.toFixed(2)} ms CPU/pass` : '',
    goal: '≤ 64 MiB RSS, no growth',
    met: rssGoalMet(shipped),
  };
}

export function reconcilerMarkdown(r: ReconcilerBenchResult): string {
  const ok = (pass: boolean) => (pass ? 'met' : '**not met**');
  const ms = (n: number) => `${n.toFixed(2)} ms`;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const p = r.pass;
  const d = r.passNodeDefaults;
  const soakRows = r.soak
    .map((s) => {
      const x = soakFigures(s);
      const cg = s.result.cgroup;
      const goal = s.memoryLimitBytes !== undefined
        ? `runs the hour under the limit — ${ok(survived(s))}${s.result.exited ? ` (${s.result.exited})` : ''}; kernel-counted peak ${mib(cg?.maxUsageBytes ?? 0)} of ${mib(s.memoryLimitBytes)}, limit reached ${cg?.limitHits ?? 0} times, ${cg?.oomKills ?? 0} OOM kills (RSS here is what the limit left resident, not a goal figure)`
        : `≤ 64 MiB — ${ok(survived(s) && x.peak <= GOAL_RSS_BYTES)}; ${s.shipped ? `no growth — ${ok(s.slopeMiBPerHour <= 1)}` : 'slope for comparison (one hour)'}`;
      // A daemon killed before its first sample has no figures of its own: dashes, not zeros.
      const figures = s.result.samples.length === 0
        ? `${s.result.rssAfterFirstPass ? mib(s.result.rssAfterFirstPass) : '—'} | — | — | — | — | — | — | — `
        : `${mib(s.result.rssAfterFirstPass)} | ${mib(x.end)} | ${mib(x.peak)} | ${mib(x.anonEnd)} / ${mib(x.anonPeak)} | ${mib(x.heapEnd)} | ${s.slopeMiBPerHour.toFixed(2)} MiB/h | ${s.result.cpuMsPerPass.toFixed(2)} ms | ${s.result.majorFaults}`;
      return `| ${s.label} | ${figures} | ${hours(s.hours)}: ${s.result.passes} passes, ${s.result.transitions} transitions, ${s.result.heapCollections} collections by the heap ceiling | ${goal} |`;
    })
    .join('\n');
  const shipped = r.soak.find((s) => s.shipped);
  const baseline = r.soak.find((s) => !s.shipped && s.label.startsWith('baseline'));
  const previous = r.soak.find((s) => s.label.startsWith('before:'));
  const uncapped = r.soak.find((s) => s.label.startsWith('as shipped without its heap ceiling'));
  const cappedRows = r.soak.filter((s) => s.memoryLimitBytes !== undefined);
  const quickNote = r.soak.length < SOAK_VARIANTS.length ? ` Quick mode leaves out these rows, which \`npm run bench:reconciler -- --full\` adds: ${SOAK_VARIANTS.filter((v) => !r.soak.some((s) => s.label === v.label)).map((v) => v.label).join('; ')}.` : '';
  const pace = r.soakPace ?? { passSeconds: 10, realPassMs: 100 };
  const q = r.queryable;
  const qRows = q
    .map((x) => `| ${x.events ? 'with Docker events (simulated trigger, 250 ms debounce)' : 'without events (polling only)'} | ${x.samples} | ${ms(x.p50Ms)} | ${ms(x.p95Ms)} | ${ms(x.maxMs)} | ${x.events ? `≤ 1 s — ${ok(x.p95Ms <= 1000)}` : `≤ resync interval (${x.resyncIntervalMs / 1000} s) — ${ok(x.p95Ms <= x.resyncIntervalMs)}`} |`)
    .join('\n');
  return `### CPU per pass over ${p.containers} containers

The reconcile loop (xstate machines, durable outbox with fsync) against an in-process agent serving the simulated host's \`/v1/tasks\` body (125 tasks × 2 containers), parsed by the reconciler's own parser; \`process.cpuUsage()\` around each pass, ${p.passes} passes of each kind after 20 warm-up passes, in a child process (bench/reconciler-pass.ts) with the V8 settings the launcher gives the daemon for the steady and churn rows (${(V8_FLAGS.reconciler ?? []).map((f) => `\`${f}\``).join(' ')}, set at run time as the launcher does)${d ? ', then in another on Node\'s defaults: what those settings cost per pass' : ''}. Baseline (same run): parsing the same body alone, which any poller pays.

| pass | CPU p50 | CPU p95 | mean | goal |
|---|---|---|---|---|
| steady (nothing changed) | ${ms(p.steadyCpuMs.p50)} | ${ms(p.steadyCpuMs.p95)} | ${ms(p.steadyCpuMs.mean)} | ≤ 5 ms (mean) — ${ok(p.steadyCpuMs.mean <= 5)} |
| churn (a task starts or stops; transitions appended and fsync'd) | ${ms(p.churnCpuMs.p50)} | ${ms(p.churnCpuMs.p95)} | ${ms(p.churnCpuMs.mean)} | ≤ 5 ms (mean) — ${ok(p.churnCpuMs.mean <= 5)} |
${d ? `| steady, Node defaults | ${ms(d.steadyCpuMs.p50)} | ${ms(d.steadyCpuMs.p95)} | ${ms(d.steadyCpuMs.mean)} | |
| churn, Node defaults | ${ms(d.churnCpuMs.p50)} | ${ms(d.churnCpuMs.p95)} | ${ms(d.churnCpuMs.mean)} | |
` : ''}| baseline: parsing the agent body only, as the daemon does (launcher settings${d ? `; Node defaults: p50 ${ms(d.parseOnlyCpuMs.p50)}, mean ${ms(d.parseOnlyCpuMs.mean)}` : ''}) | ${ms(p.parseOnlyCpuMs.p50)} | | ${ms(p.parseOnlyCpuMs.mean)} | |

### Reconciler RSS over hours of simulated churn

The daemon as it runs on a host, one process per row (\`bench/reconciler-soak.ts\`): \`node bin/ecs-id-mapper reconciler\`, so the same modules and the V8 settings the launcher applies (cli/v8-flags.ts), with its real undici clients against a simulated ECS agent and IMDSv2 (tools/simulate-host, 125 tasks × 2 containers) and the real server (SQLite) on loopback in the benchmark's process, which acknowledges every report; \`--docker-socket none\`. Time is compressed: the daemon passes every ${pace.realPassMs} ms (\`--resync-interval\`) while the simulated clock advances ${pace.passSeconds} s per pass (the default resync interval), one lifecycle step per pass with a task starting or stopping; full sync every 5 simulated minutes. Every simulated minute the benchmark reads the daemon's RSS and its anonymous part (\`/proc/<pid>/status\`, \`VmRSS\` and \`RssAnon\`) and scrapes its \`/metrics\` as Prometheus would; nothing forces a GC, so the heap column is what the daemon holds, garbage included. CPU per pass is the whole process (every thread, HTTP, reports, scrapes, timers) over its passes, from \`/proc/<pid>/stat\`; with compressed time the fixed per-second costs (event-loop lag sampling every 10 ms) are spread over ${Math.round(1000 / pace.realPassMs)} passes a second instead of one per 10 s. RSS slope: a straight line fitted over the last three quarters of the run (past start-up) through the lowest RSS of each cycle of the heap's sawtooth (a cycle starts at a sample whose scrape counts more major collections than the previous minute's), the troughs a leak would raise; a fit through every sample reads the phase of the sawtooth the run ends on as a few MiB per hour of growth or shrinkage. \`no growth\`: a slope ≤ 1 MiB per hour, judged on the shipped row, which runs ${hours(shipped?.hours ?? 1)}; the other rows run one hour and their slopes are for comparison only. Over one hour the troughs scatter by about half a MiB, so one hour's slope is weak evidence either way: five one-hour runs of one build gave -0.10, 0.35, 0.44, 0.89 and 1.43 MiB/h, while a six-hour run of the same build (100 cycles) gave 0.03 MiB/h, with the median trough of each hour between 59.6 and 60.0 MiB RSS and between 9.1 and 9.4 MiB of heap.

| daemon started as | RSS after the first pass | RSS at the end | RSS peak | anonymous RSS at the end / peak | heap used at the end | RSS slope (troughs) | CPU per pass | major page faults | work | goal |
|---|---|---|---|---|---|---|---|---|---|---|
${soakRows}

${shipped && baseline ? `Goal ≤ 64 MiB RSS as shipped, with no memory limit: ${ok(rssGoalMet(shipped))}. As shipped the daemon ends its ${hours(shipped.hours)} at ${mib(soakFigures(shipped).end)} RSS (peak ${mib(soakFigures(shipped).peak)}); its anonymous memory (heap, malloc, stacks: what a memory limit cannot reclaim) peaks at ${mib(soakFigures(shipped).anonPeak)}, and the rest of the RSS is file-backed, almost all of it pages of the node executable. On Node's defaults in the same run: ${mib(soakFigures(baseline).end)} (peak ${mib(soakFigures(baseline).peak)}, anonymous peak ${mib(soakFigures(baseline).anonPeak)})${previous ? `; with the launcher's previous setting: ${mib(soakFigures(previous).end)} (peak ${mib(soakFigures(previous).peak)}, anonymous peak ${mib(soakFigures(previous).anonPeak)})` : ''}. ` : ''}${r.bareNodeRssBytes ? `A bare \`node -e\` process has an RSS of ${mib(r.bareNodeRssBytes)} on this machine, almost all of it pages of the node executable itself (file-backed: reclaimable under a memory limit, but counted in RSS), so RSS ≤ 64 MiB leaves the daemon about ${mib(GOAL_RSS_BYTES - r.bareNodeRssBytes)} for everything else. ` : ''}

${shipped ? `Why the end figure moves from run to run: past the first quarter of the run the daemon's heap (heap used, as scraped) saws between ${mib(soakFigures(shipped).heapLow)} after a full collection and ${mib(soakFigures(shipped).heapHigh)} before the next, and RSS follows it (${mib(soakFigures(shipped).rssLow)} to ${mib(soakFigures(shipped).peak)}), so the last sample lands anywhere in that range. The sawtooth is the daemon's own heap ceiling (reconciler/heap-ceiling.ts, \`--heap-headroom-bytes\`, default 3 MiB): after a pass, once the heap has grown 3 MiB (or a quarter of the live heap, if more) past what the last full collection left, the daemon runs one (${shipped.result.heapCollections} in this hour). Without it${uncapped ? ` (the row \`--heap-headroom-bytes 0\`: heap ${mib(soakFigures(uncapped).heapLow)} to ${mib(soakFigures(uncapped).heapHigh)}, RSS ${mib(soakFigures(uncapped).rssLow)} to ${mib(soakFigures(uncapped).peak)})` : ''} V8 decides alone, and in the memory-reducing mode that \`--optimize-for-size\` puts it in, its next full collection is due at the live heap plus at least 8 MiB, whatever \`--heap-growing-percent\` says (1 % and 10 % gave the same sawtooth in a trial). A heap limit fixed when node starts (\`--max-old-space-size\`) would lower that too; it is not used: the launcher cannot set it without a second node process, and a hard limit turns a host or an outbox backlog beyond it into a crash loop, where the ceiling only collects more often and follows the live heap up (about 3.5 KiB per container plus about 180 bytes per queued transition), so a full collection runs at most once per 3 MiB allocated. What the collections cost: the CPU-per-pass column${uncapped ? ` (${shipped.result.cpuMsPerPass.toFixed(2)} ms as shipped, ${uncapped.result.cpuMsPerPass.toFixed(2)} ms without the ceiling, same run; the whole process, so the difference is within this VM's noise unless it repeats)` : ''}.

` : ''}${cappedRows.length ? `Under a 64 MiB memory limit (a cgroup v1 memory group, as \`docker run --memory=64m\` and the chart's hard \`Memory\` make; bench/reconciler-cgroup.ts): ${cappedRows.map((c) => `${c.label.split(',')[0]} — ${survived(c) ? `ran the whole hour, ${c.result.majorFaults} major page faults, ${c.result.cpuMsPerPass.toFixed(2)} ms CPU per pass` : `OOM-killed (${c.result.exited ?? 'oom kill'})`}, kernel-counted peak ${mib(c.result.cgroup?.maxUsageBytes ?? 0)}`).join('; ')}. The limit counts the group's anonymous memory and the page cache it brings in (a private copy of the node executable, dropped from the cache first so its pages are charged as in a fresh container, and the outbox's writes); at the limit the kernel reclaims clean file pages ("limit reached" counts those reclaims) and kills only when anonymous memory leaves nothing to reclaim. Major page faults count reclaimed pages read back from disk: the cost of running at the limit. ` : r.cgroupUnavailable ? `The 64 MiB memory cgroup rows were left out: ${r.cgroupUnavailable}. ` : ''}

${r.modules ? `Imported alone into a bare process (Node defaults), each module adds (RSS after GC): ${r.modules.map((m) => `${MODULE_NAMES[m.module] ?? `\`${m.module}\``} ${mib(m.addedBytes)}`).join(', ')}. ` : ''}What the daemon does about it: it loads only the parts of undici and prom-client it uses (reconciler/undici.ts, reconciler/prom.ts: no fetch/WebSocket/mock code, no @opentelemetry/api, and not undici's HTTP/2 client, which would load node:http2, tls and crypto), it writes pino's log lines without loading pino (reconciler/log.ts), it takes ids and lifecycle states from the TypeBox-free wire/ids.ts rather than wire/index.ts, so TypeBox is not loaded, and the launcher sets four V8 flags for the reconciler command only, at run time before the daemon's modules load (cli/v8-flags.ts; nothing on the node command line, the same for every deployment): \`--semi-space-growth-factor=1\` (the young generation stays at 1 MiB), \`--liftoff-only\` (undici's llhttp parser, WebAssembly, stays on V8's baseline compiler: its optimizing tier-up takes about 20 MiB for a moment at start-up, enough to get the daemon OOM-killed under 64 MiB${cappedRows.length > 1 ? ': compare the two memory-cgroup rows' : ' (the cgroup row without it, with --full)'}), \`--optimize-for-size\` (the old generation grows in smaller steps, so less garbage stays committed between full collections) and \`--no-opt\` (no TurboFan: JavaScript runs on the interpreter and the baseline compiler; the optimizing compiler's code pages and compile-time memory were about 5 MiB of the peak${previous ? ' — compare the row of the previous settings' : ' (the row of the previous settings, with --full)'}). What they cost: the CPU-per-pass column of the same run (whole process, all threads). After each pass the daemon also holds its heap under the ceiling described above (reconciler/heap-ceiling.ts; off with \`--heap-headroom-bytes 0\`).${quickNote}

### Container start → queryable on the server

A real server (SQLite, loopback) and the real reporter; ${q[0]?.samples ?? 0} containers started at random moments per row, each polled with \`GET /v2/lookup/<id>\` every 20 ms from its start. Resync interval ${(q[0]?.resyncIntervalMs ?? 0) / 1000} s${(q[0]?.resyncIntervalMs ?? 0) < 10_000 ? ' (quick mode; the default is 10 s)' : ''}. The baseline is the polling-only row.

| mode | samples | p50 | p95 | max | goal |
|---|---|---|---|---|---|
${qRows}`;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  await runBenchProgram('bench:reconciler', process.argv.slice(2), async ({ full }) => {
    const r = await runReconcilerBench(!full, (l) => console.error(l));
    writeBenchmarkSection('reconciler', 'Reconciler: pass cost, RSS, start → queryable', reconcilerMarkdown(r));
    console.log(reconcilerMarkdown(r));
  });
}
