// The reconciler daemon as it runs on a host — `node bin/ecs-id-mapper reconciler`, so the same
// modules and the same V8 settings the launcher applies — over a churning 250-container host for
// a SIMULATED hour. This process serves the simulated ECS agent and IMDSv2 (tools/simulate-host)
// and the real server (SQLite) on loopback, so the daemon makes its real HTTP requests and gets
// its reports acknowledged; their memory is not the daemon's.
//
// Time is compressed: the daemon passes every `realPassMs` (--resync-interval) and the simulated
// host's clock advances `passSeconds` per tick, one tick (one lifecycle step; a task starts or
// stops) per pass interval. The full-sync interval is compressed the same way (5 simulated
// minutes). Every simulated minute this process reads the daemon's RSS and its anonymous
// part (/proc/<pid>/status) and scrapes its /metrics as Prometheus would (heap used, passes, transitions).
// Nothing forces a GC: what is sampled is what the daemon holds.
//
// Used by bench/reconciler.bench.ts; `entry: 'node-defaults'` runs the same CLI entry without the
// launcher's V8 settings (bench/reconciler-daemon.ts), the baseline of the same run.
// `memoryLimitBytes` runs the daemon inside a cgroup v1 memory group with that limit, as
// `docker run --memory` does (bench/reconciler-cgroup.ts); if the kernel kills it there, the
// result says so (`exited`) with what was sampled until then.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { buildServer } from '../api/server.js';
import { parseLinks } from '../config/links.js';
import { openStore } from '../storage/index.js';
import { cliPath, cpuMs, memoryBreakdown } from '../tools/fleet-sim/children.js';
import { startSimulatedHost } from '../tools/simulate-host/index.js';
import { createMemoryCgroup, type MemoryCgroup, type MemoryCgroupReport } from './reconciler-cgroup.js';

export interface SoakOptions {
  simulatedHours: number;
  /** Simulated seconds per pass (the daemon's default resync interval is 10 s). */
  passSeconds: number;
  /** Real milliseconds per pass (the daemon's --resync-interval in this run). */
  realPassMs: number;
  tasks: number;
  containersPerTask: number;
  /** `launcher`: `node <nodeFlags> bin/ecs-id-mapper reconciler`; `node-defaults`: the same CLI without the launcher's V8 settings. */
  entry: 'launcher' | 'node-defaults';
  /** Extra node command-line flags (e.g. --single-threaded-gc), as an operator would add them. */
  nodeFlags: string[];
  /** Only with `node-defaults`: V8 flags set at run time as the launcher does (a partial or earlier set of its settings). */
  runtimeV8Flags?: string[];
  /** Extra `reconciler` flags (e.g. `--heap-headroom-bytes 0`), after the benchmark's own. */
  daemonFlags?: string[];
  /** Extra environment of the daemon's process (e.g. MALLOC_ARENA_MAX), as a task definition would set it. */
  env?: Record<string, string>;
  /** Run the daemon in a memory cgroup with this limit (bench/reconciler-cgroup.ts); throws if none can be made. */
  memoryLimitBytes?: number;
}

export interface SoakSample {
  minute: number;
  rssBytes: number;
  anonBytes: number;
  /** ecs_id_mapper_reconciler_nodejs_heap_size_used_bytes as scraped (live objects plus garbage not yet collected). */
  heapUsedBytes: number;
  /** Major (full) collections since the daemon started, as scraped (nodejs_gc_duration_seconds_count{kind="major"}). */
  majorCollections: number;
}

export interface SoakResult {
  passes: number;
  transitions: number;
  samples: SoakSample[];
  /** RSS once the first pass has mapped the host (before churn). */
  rssAfterFirstPass: number;
  /** Daemon process CPU (user + system, all threads) divided by its passes over the churn. */
  cpuMsPerPass: number;
  wallSeconds: number;
  /** What the daemon's process was started with. */
  argv: string[];
  /** At the end, from the daemon's /metrics: V8 heap space sizes (committed) and external memory, bytes. */
  heapAtEnd: { spaces: Record<string, number>; externalBytes: number };
  /** At the end, from the daemon's /metrics: full collections its heap ceiling ran (reconciler/heap-ceiling.ts). */
  heapCollections: number;
  /** Major page faults of the daemon over the churn (pages read back from disk, e.g. reclaimed code pages). */
  majorFaults: number;
  /** Set when the daemon died during the soak (only tolerated with memoryLimitBytes, where an OOM kill is a result). */
  exited?: string;
  /** Only with memoryLimitBytes: what the kernel counted against the limit. */
  cgroup?: MemoryCgroupReport;
}

/** Per-space committed sizes of the nodejs_heap_space_size_total_bytes series. */
function heapSpaces(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^ecs_id_mapper_reconciler_nodejs_heap_space_size_total_bytes\{space="([a-z_]+)"\} (\d+)/gm)) out[m[1]] = Number(m[2]);
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Closes a store while holding the event loop open: the SQLite store's close waits for its
 * checkpoint worker, which is unref'd, so as the last thing a benchmark awaits it would let the
 * process exit (code 13, unsettled top-level await) before the results are written.
 */
export async function closeStore(store: { close(): Promise<void> }): Promise<void> {
  const hold = setInterval(() => {}, 1000);
  try {
    await store.close();
  } finally {
    clearInterval(hold);
  }
}

/** The compiled baseline entry, whether this file runs from dist/bench/ or from the sources (vitest). */
function baselineEntry(): string {
  const compiled = fileURLToPath(new URL('./reconciler-daemon.js', import.meta.url));
  return existsSync(compiled) ? compiled : fileURLToPath(new URL('../dist/bench/reconciler-daemon.js', import.meta.url));
}

/** Major page faults so far (field 12 of /proc/<pid>/stat), or null once the process is gone. */
function majorFaults(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[9]);
  } catch {
    return null;
  }
}

/** The sum of a metric's series (only those whose labels contain `label`, when given). */
function metricSum(text: string, name: string, label?: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue;
    if (label === undefined || line.slice(name.length, line.lastIndexOf(' ')).includes(label)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

export async function runReconcilerSoak(options: SoakOptions): Promise<SoakResult> {
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-bench-soak-'));
  const store = await openStore({ backend: 'sqlite', path: join(dir, 'server.db') });
  const app = await buildServer({ store, registry: new Registry(), logger: false, links: parseLinks([]), cadvisorPort: 8080, hostStaleAfterMs: 15 * 60_000, bodyLimitBytes: 16 * 1024 * 1024, reportRateLimitPerMinute: 1_000_000 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const server = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  const sim = await startSimulatedHost({
    host: '127.0.0.1', agentPort: 0, imdsPort: 0, controlPort: 0, tasks: options.tasks, containersPerTask: options.containersPerTask,
    churnIntervalMs: 0, cleanupAfterMs: 60_000, cluster: 'prod', instanceId: 'i-0be0c0000000000a', seed: 7, now: () => clock,
  });
  const fullSyncMs = Math.max(100, Math.round((300 / options.passSeconds) * options.realPassMs));
  const args = [
    'reconciler', '--server', server, '--ecs-agent-url', sim.agentUrl, '--imds-url', sim.imdsUrl, '--docker-socket', 'none',
    '--state-dir', join(dir, 'state'), '--metrics-host', '127.0.0.1', '--metrics-port', '0', '--log-level', 'info',
    '--resync-interval', `${options.realPassMs}ms`, '--full-sync-interval', `${fullSyncMs}ms`,
    ...(options.daemonFlags ?? []),
  ];
  const entry = options.entry === 'launcher' ? [cliPath()] : [baselineEntry(), ...(options.runtimeV8Flags?.length ? [`--v8-flags=${options.runtimeV8Flags.join(',')}`] : [])];
  const argv = [...options.nodeFlags, ...entry, ...args];
  let child: ChildProcess | undefined;
  let cgroup: MemoryCgroup | undefined;
  const t0 = performance.now();
  try {
    const env = { ...process.env, ...options.env };
    if (options.memoryLimitBytes !== undefined) {
      cgroup = createMemoryCgroup({ limitBytes: options.memoryLimitBytes, scratchDir: dir });
      child = cgroup.spawn(argv, env);
    } else {
      child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env });
    }
    const daemon = child;
    let exited: string | undefined;
    const exit = new Promise<void>((resolve) =>
      daemon.once('exit', (code, signal) => {
        exited = signal ? `killed by ${signal}` : `exited with code ${code}`;
        resolve();
      }),
    );
    let stderr = '';
    daemon.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    // After a failed read: whether the kernel killed the daemon in its memory cgroup. Its sockets
    // can fail before its exit is reported, so this waits for the exit or the group's OOM count.
    const killedInCgroup = async (): Promise<boolean> => {
      if (!cgroup) return false;
      for (let waited = 0; exited === undefined && waited < 10_000; waited += 100) {
        if (cgroup.report().oomKills > 0) break;
        await Promise.race([exit, sleep(100)]);
      }
      exited ??= cgroup.report().oomKills > 0 ? 'OOM-killed' : undefined;
      return exited !== undefined;
    };
    let metricsUrl = '';
    let pid = 0;
    let rssAfterFirstPass = 0;
    let start = { text: '', passes: 0, transitions: 0, heapUsed: 0, majorCollections: 0 };
    let cpu0 = 0;
    let faults0 = 0;
    const scrape = async () => {
      const res = await request(metricsUrl);
      const text = await res.body.text();
      return {
        text,
        passes: metricSum(text, 'ecs_id_mapper_reconciler_passes_total'),
        transitions: metricSum(text, 'ecs_id_mapper_reconciler_transitions_total'),
        heapUsed: metricSum(text, 'ecs_id_mapper_reconciler_nodejs_heap_size_used_bytes'),
        majorCollections: metricSum(text, 'ecs_id_mapper_reconciler_nodejs_gc_duration_seconds_count', 'kind="major"'),
      };
    };
    try {
      metricsUrl = await new Promise<string>((resolve, reject) => {
        let out = '';
        const onData = (c: Buffer) => {
          out += c.toString();
          const m = /"metrics_url":"([^"]+)"/.exec(out);
          if (m) {
            daemon.stdout!.off('data', onData);
            daemon.stdout!.resume(); // keep draining the log
            resolve(m[1]);
          }
        };
        daemon.stdout!.on('data', onData);
        daemon.once('exit', (code) => reject(new Error(`reconciler exited (${code}) before starting: ${stderr.trim()}`)));
      });
      // The first pass maps the whole host.
      for (let waited = 0; (await scrape()).passes < 1; waited += 20) {
        if (waited > 30_000) throw new Error('reconciler made no pass within 30 s');
        await sleep(20);
      }
      await sleep(options.realPassMs);
      pid = daemon.pid!;
      rssAfterFirstPass = memoryBreakdown(pid)?.rss ?? 0;
      start = await scrape();
      cpu0 = cpuMs(pid) ?? 0;
      faults0 = majorFaults(pid) ?? 0;
    } catch (err) {
      // In a memory cgroup, being killed while starting is a result (the row says so), not a failure.
      if (!cgroup || !(await killedInCgroup())) throw err;
      return {
        passes: 0, transitions: 0, samples: [], rssAfterFirstPass, cpuMsPerPass: 0, wallSeconds: (performance.now() - t0) / 1000, argv: argv.map((a) => a.replace(dir, '<tmp>')),
        heapAtEnd: { spaces: {}, externalBytes: 0 }, heapCollections: 0, majorFaults: 0, exited: `${exited} while starting`, cgroup: cgroup.report(),
      };
    }
    // Last readings, kept for the figures if the daemon is killed (memory cgroup rows).
    let cpuLast = cpu0;
    let faultsLast = faults0;

    const ticks = Math.round((options.simulatedHours * 3600) / options.passSeconds);
    const sampleEvery = Math.max(1, Math.round(60 / options.passSeconds));
    const samples: SoakSample[] = [];
    let next = performance.now();
    let last = start;
    for (let t = 1; t <= ticks; t++) {
      next += options.realPassMs;
      await sleep(Math.max(0, next - performance.now()));
      clock += options.passSeconds * 1000;
      sim.tick();
      if (t % sampleEvery === 0 || t === ticks) {
        const memory = memoryBreakdown(pid);
        if (memory === null) {
          if (await killedInCgroup()) break;
          throw new Error(`reconciler exited during the soak: ${stderr.trim()}`);
        }
        cpuLast = cpuMs(pid) ?? cpuLast;
        faultsLast = majorFaults(pid) ?? faultsLast;
        try {
          last = await scrape();
        } catch (err) {
          if (await killedInCgroup()) break;
          throw err;
        }
        samples.push({ minute: (t * options.passSeconds) / 60, rssBytes: memory.rss, anonBytes: memory.anon, heapUsedBytes: last.heapUsed, majorCollections: last.majorCollections });
      }
    }
    const cpu = (cpuMs(pid) ?? cpuLast) - cpu0;
    const faults = (majorFaults(pid) ?? faultsLast) - faults0;
    const passes = last.passes - start.passes;
    return { passes, transitions: last.transitions, samples, rssAfterFirstPass, cpuMsPerPass: cpu / Math.max(1, passes), wallSeconds: (performance.now() - t0) / 1000, argv: argv.map((a) => a.replace(dir, '<tmp>')),
      heapAtEnd: { spaces: heapSpaces(last.text), externalBytes: metricSum(last.text, 'ecs_id_mapper_reconciler_nodejs_external_memory_bytes') },
      heapCollections: metricSum(last.text, 'ecs_id_mapper_reconciler_heap_collections_total'),
      majorFaults: faults,
      ...(exited !== undefined ? { exited } : {}),
      ...(cgroup ? { cgroup: cgroup.report() } : {}),
    };
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    cgroup?.remove();
    await sim.close();
    await app.close();
    await closeStore(store);
    rmSync(dir, { recursive: true, force: true });
  }
}
