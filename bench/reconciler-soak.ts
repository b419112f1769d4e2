// The reconciler daemon as it runs on a host — `node bin/ecs-id-mapper reconciler`, so the same
// modules and the same V8 settings the launcher applies — over a churning 250-container host for
// a SIMULATED hour. This process serves the simulated ECS agent and IMDSv2 (tools/simulate-host)
// and the real server (SQLite) on loopback, so the daemon makes its real HTTP requests and gets
// its reports acknowledged; their memory is not the daemon's.
//
// Time is compressed: the daemon passes every `realPassMs` (--resync-interval) and the simulated
// host's clock advances `passSeconds` per tick, one tick (one lifecycle step; a task starts or
// stops) per pass interval. The full-sync interval is compressed the same way (5 simulated
// minutes). Every simulated minute this process reads the daemon's RSS (/proc/<pid>/status,
// smaps_rollup) and scrapes its /metrics as Prometheus would (heap used, passes, transitions).
// Nothing forces a GC: what is sampled is what the daemon holds.
//
// Used by bench/reconciler.bench.ts; `entry: 'node-defaults'` runs the same CLI entry without the
// launcher's V8 settings (bench/reconciler-daemon.ts), the baseline of the same run.
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
import { cliPath, cpuMs, rssBytes } from '../tools/fleet-sim/children.js';
import { startSimulatedHost } from '../tools/simulate-host/index.js';

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
}

export interface SoakSample {
  minute: number;
  rssBytes: number;
  anonBytes: number;
  /** ecs_id_mapper_process_nodejs_heap_size_used_bytes as scraped (live objects plus garbage not yet collected). */
  heapUsedBytes: number;
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
}

/** Per-space committed sizes of the nodejs_heap_space_size_total_bytes series. */
function heapSpaces(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^ecs_id_mapper_process_nodejs_heap_space_size_total_bytes\{space="([a-z_]+)"\} (\d+)/gm)) out[m[1]] = Number(m[2]);
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The compiled baseline entry, whether this file runs from dist/bench/ or from the sources (vitest). */
function baselineEntry(): string {
  const compiled = fileURLToPath(new URL('./reconciler-daemon.js', import.meta.url));
  return existsSync(compiled) ? compiled : fileURLToPath(new URL('../dist/bench/reconciler-daemon.js', import.meta.url));
}

function anonBytes(pid: number): number {
  try {
    const m = /^Anonymous:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Sum of every series of `name` in a Prometheus text exposition. */
function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
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
  ];
  const argv = [...options.nodeFlags, options.entry === 'launcher' ? cliPath() : baselineEntry(), ...args];
  let child: ChildProcess | undefined;
  const t0 = performance.now();
  try {
    child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const daemon = child;
    let stderr = '';
    daemon.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const metricsUrl = await new Promise<string>((resolve, reject) => {
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
    const scrape = async () => {
      const res = await request(metricsUrl);
      const text = await res.body.text();
      return {
        text,
        passes: metricSum(text, 'ecs_id_mapper_reconciler_passes_total'),
        transitions: metricSum(text, 'ecs_id_mapper_reconciler_transitions_total'),
        heapUsed: metricSum(text, 'ecs_id_mapper_process_nodejs_heap_size_used_bytes'),
      };
    };
    // The first pass maps the whole host.
    for (let waited = 0; (await scrape()).passes < 1; waited += 20) {
      if (waited > 30_000) throw new Error('reconciler made no pass within 30 s');
      await sleep(20);
    }
    await sleep(options.realPassMs);
    const pid = daemon.pid!;
    const rssAfterFirstPass = rssBytes(pid) ?? 0;
    const start = await scrape();
    const cpu0 = cpuMs(pid) ?? 0;

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
        const rss = rssBytes(pid);
        if (rss === null) throw new Error(`reconciler exited during the soak: ${stderr.trim()}`);
        last = await scrape();
        samples.push({ minute: (t * options.passSeconds) / 60, rssBytes: rss, anonBytes: anonBytes(pid), heapUsedBytes: last.heapUsed });
      }
    }
    const cpu = (cpuMs(pid) ?? 0) - cpu0;
    const passes = last.passes - start.passes;
    return { passes, transitions: last.transitions, samples, rssAfterFirstPass, cpuMsPerPass: cpu / Math.max(1, passes), wallSeconds: (performance.now() - t0) / 1000, argv: argv.map((a) => a.replace(dir, '<tmp>')),
      heapAtEnd: { spaces: heapSpaces(last.text), externalBytes: metricSum(last.text, 'ecs_id_mapper_process_nodejs_external_memory_bytes') },
    };
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    await sim.close();
    await app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
