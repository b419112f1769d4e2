// The fleet simulator: N simulated hosts report into one `ecs-id-mapper server` child process
// through the real v2 routes, on the embedded store or on the local SimpleDB endpoint. It measures
// ingest throughput, per-request latency and the server's RSS over time, then compares the
// server's records and history with the ground truth it kept (0 lost, 0 duplicated).
//
// Phases: (1) every host's first report (all its containers start); (2) churn as fast as the
// server takes it (max throughput); (3) churn paced at half that rate (latency at a sustainable
// load — the figure the ≤ 50 ms goal is about); in soak mode (3) runs for `soakMs`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { openStore } from '../../storage/index.js';
import { staticCredentials } from '../../storage/simpledb/index.js';
import type { Store } from '../../storage/store.js';
import { cpuMs, LOCAL_KEYS, memoryBreakdown, startServerChild, startSimpleDbLocalChild, type ChildHandle } from './children.js';
import { FleetDriver, percentile, type PhaseStats } from './driver.js';
import { GroundTruth, SimHost } from './hosts.js';

export { percentile } from './driver.js';

export interface FleetOptions {
  backend: 'sqlite' | 'simpledb';
  hosts: number;
  containersPerHost: number;
  /** Churn rounds per host in the max-throughput phase. */
  rounds: number;
  /** Containers replaced per host per round (each: 3 stop transitions + 2 start transitions). */
  replacePerRound: number;
  /** Every this many rounds a host also PUTs its full snapshot. */
  snapshotEvery: number;
  /** undici Pool connections = requests in flight. */
  connections: number;
  /** Rounds per host in the paced phase (ignored when soakMs is set). */
  pacedRounds: number;
  /** Soak: run the paced phase this long instead. */
  soakMs?: number;
  /** Requests/s of the paced phase; default half the max phase's rate. */
  pacedRate?: number;
  /** RSS sampling period. */
  rssSampleMs: number;
  log?: (line: string) => void;
}

export interface PhaseSummary {
  requests: number;
  transitions: number;
  snapshots: number;
  retries: number;
  seconds: number;
  transitionsPerSecond: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Snapshot PUTs (a host's whole container list), measured apart from the transition batches above. */
  snapshotP50Ms: number;
  snapshotP99Ms: number;
  /** Server process CPU time per transition in this phase, µs (independent of other load on the machine, mostly). */
  serverCpuUsPerTransition: number;
  /**
   * This process's own event-loop delay over the phase (p99 and max, ms). The simulator measures
   * latency in this process, so a stall here (its GC, building bodies) is counted in every
   * request in flight: read the latency columns beside it.
   */
  simulatorDelayP99Ms: number;
  simulatorDelayMaxMs: number;
}

export interface RssSample {
  atSeconds: number;
  bytes: number;
  /** Anonymous RSS (heap, malloc: SQLite's page cache is part of it). */
  anonBytes: number;
  /** File-backed RSS, of which `storeMappedBytes` is the SQLite store's memory-mapped file (0 on SimpleDB). */
  fileBytes: number;
  storeMappedBytes: number;
}

export interface Verification {
  containersExpected: number;
  transitionsExpected: number;
  /** (host, seq) pairs the server has no history for. */
  lost: number;
  /** (host, seq) pairs in history more than once. */
  duplicated: number;
  /** Records whose state, host or task differs from the truth, or that are missing. */
  wrongRecords: number;
  /** History entries of a (host, seq) whose from or to differs from the transition sent under it. */
  wrongHistory: number;
  /** History entries that came from snapshots (a snapshot that agreed with the truth changes nothing). */
  snapshotHistory: number;
}

export interface FleetResult {
  options: Omit<FleetOptions, 'log'>;
  initial: PhaseSummary;
  max: PhaseSummary;
  paced: PhaseSummary & { targetRate: number };
  rss: RssSample[];
  /** Least-squares RSS slope over the second half of the paced phase, MiB per hour. */
  rssSlopeMiBPerHour: number;
  /** The same fit through anonymous RSS only (no file pages). */
  anonSlopeMiBPerHour: number;
  verification: Verification;
}

function summarize(s: PhaseStats, serverCpuMs: number, delay: { p99Ms: number; maxMs: number }): PhaseSummary {
  const seconds = s.elapsedMs / 1000;
  return {
    requests: s.requests,
    transitions: s.transitions,
    snapshots: s.snapshots,
    retries: s.retries,
    seconds,
    transitionsPerSecond: s.transitions / seconds,
    requestsPerSecond: s.requests / seconds,
    p50Ms: percentile(s.latencies, 50),
    p99Ms: percentile(s.latencies, 99),
    maxMs: s.latencies.reduce((a, b) => Math.max(a, b), 0),
    snapshotP50Ms: percentile(s.snapshotLatencies, 50),
    snapshotP99Ms: percentile(s.snapshotLatencies, 99),
    serverCpuUsPerTransition: s.transitions > 0 ? (serverCpuMs * 1000) / s.transitions : 0,
    simulatorDelayP99Ms: delay.p99Ms,
    simulatorDelayMaxMs: delay.maxMs,
  };
}

/** Least-squares slope of bytes over seconds, in MiB per hour. */
export function rssSlope(samples: ReadonlyArray<{ atSeconds: number; bytes: number }>): number {
  const n = samples.length;
  if (n < 2) return 0;
  const mx = samples.reduce((a, s) => a + s.atSeconds, 0) / n;
  const my = samples.reduce((a, s) => a + s.bytes, 0) / n;
  let num = 0;
  let den = 0;
  for (const s of samples) {
    num += (s.atSeconds - mx) * (s.bytes - my);
    den += (s.atSeconds - mx) ** 2;
  }
  return den === 0 ? 0 : ((num / den) * 3600) / 2 ** 20;
}

/** Compares the store the server wrote with the simulator's ground truth. */
export async function verify(store: Store, truth: GroundTruth): Promise<Verification> {
  const v: Verification = { containersExpected: truth.containers.size, transitionsExpected: truth.transitions, lost: 0, duplicated: 0, wrongRecords: 0, wrongHistory: 0, snapshotHistory: 0 };
  for (const [id, expected] of truth.containers) {
    const found = await store.getContainer(id);
    if (found.kind !== 'found' || found.record.state !== expected.state || found.record.instance_id !== expected.host || found.record.task_arn !== expected.taskArn) v.wrongRecords++;
    const seen = new Map<number, number>();
    for (const h of await store.history(id)) {
      if (h.seq === null) {
        if (h.reason === 'snapshot') v.snapshotHistory++;
        continue;
      }
      if (h.host !== expected.host) continue;
      seen.set(h.seq, (seen.get(h.seq) ?? 0) + 1);
      const step = expected.steps.get(h.seq);
      if (!step || step.from !== h.from || step.to !== h.to) v.wrongHistory++;
    }
    for (const seq of expected.seqs) {
      const count = seen.get(seq) ?? 0;
      if (count === 0) v.lost++;
      else if (count > 1) v.duplicated += count - 1;
    }
  }
  return v;
}

export async function runFleetSim(options: FleetOptions): Promise<FleetResult> {
  const log = options.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-fleet-'));
  const children: ChildHandle[] = [];
  let driver: FleetDriver | undefined;
  let sampler: NodeJS.Timeout | undefined;
  try {
    let storeUrl: string;
    let serverArgs: string[] = [];
    let local: ChildHandle | undefined;
    const dbPath = join(dir, 'fleet.db');
    const prefix = 'fleet';
    if (options.backend === 'sqlite') storeUrl = `sqlite:${dbPath}`;
    else {
      local = await startSimpleDbLocalChild();
      children.push(local);
      storeUrl = `simpledb://us-east-1?prefix=${prefix}&shards=4&endpoint=${encodeURIComponent(local.url)}&create_domains=true`;
      serverArgs = ['--aws-access-key-id', LOCAL_KEYS.accessKeyId, '--aws-secret-access-key', LOCAL_KEYS.secretAccessKey];
    }
    const server = await startServerChild({ store: storeUrl, args: serverArgs });
    children.push(server);
    log(`fleet-sim: server pid ${server.pid} on ${server.url} (${options.backend}); ${options.hosts} hosts × ${options.containersPerHost} containers`);

    const truth = new GroundTruth();
    const hosts = Array.from({ length: options.hosts }, (_, i) => new SimHost(i, options.containersPerHost, truth));
    driver = new FleetDriver(server.url, options.connections);

    const t0 = performance.now();
    const rss: RssSample[] = [];
    let pacedFrom = Number.POSITIVE_INFINITY;
    const sample = () => {
      const m = memoryBreakdown(server.pid, options.backend === 'sqlite' ? dbPath : undefined);
      if (m !== null) rss.push({ atSeconds: (performance.now() - t0) / 1000, bytes: m.rss, anonBytes: m.anon, fileBytes: m.file, storeMappedBytes: m.mapped });
    };
    sample();
    sampler = setInterval(sample, options.rssSampleMs);

    // Server CPU over a phase; for SimpleDB the endpoint child's CPU is counted too (it is the database).
    const cpuNow = () => children.reduce((a, c) => a + (cpuMs(c.pid) ?? 0), 0);
    const measured = async (run: () => Promise<PhaseStats>) => {
      const c0 = cpuNow();
      const delay = monitorEventLoopDelay({ resolution: 10 });
      delay.enable();
      const stats = await run();
      delay.disable();
      // The histogram is in nanoseconds. A phase shorter than its resolution has no samples, and an
      // empty histogram answers a p99 of 511 ns beside a max of 0: nothing was observed, so 0 for both.
      const observed = delay.count > 0;
      return summarize(stats, cpuNow() - c0, { p99Ms: observed ? delay.percentile(99) / 1e6 : 0, maxMs: observed ? delay.max / 1e6 : 0 });
    };
    const initial = await measured(() => driver!.phase(hosts, (h, n) => (n === 0 ? { transitions: h.initial(), snapshot: true } : null)));
    log(`fleet-sim: initial reports ${initial.transitions} transitions in ${initial.seconds.toFixed(1)} s`);

    const churnStep = (rounds: number) => (h: SimHost, n: number) =>
      n < rounds ? { transitions: h.churn(options.replacePerRound), snapshot: (n + 1) % options.snapshotEvery === 0 } : null;
    const max = await measured(() => driver!.phase(hosts, churnStep(options.rounds)));
    log(`fleet-sim: max ${Math.round(max.transitionsPerSecond)} transitions/s, p99 ${max.p99Ms.toFixed(1)} ms`);

    const targetRate = options.pacedRate ?? Math.max(1, max.requestsPerSecond / 2);
    pacedFrom = (performance.now() - t0) / 1000;
    const end = performance.now() + (options.soakMs ?? 0);
    const pacedSummary = options.soakMs
      ? await measured(() => driver!.phase(hosts, churnStep(Number.MAX_SAFE_INTEGER), { rate: targetRate, until: () => performance.now() >= end }))
      : await measured(() => driver!.phase(hosts, churnStep(options.pacedRounds), { rate: targetRate }));
    const paced = { ...pacedSummary, targetRate };
    log(`fleet-sim: paced at ${targetRate.toFixed(0)} req/s: p50 ${paced.p50Ms.toFixed(1)} ms, p99 ${paced.p99Ms.toFixed(1)} ms`);
    clearInterval(sampler);
    sampler = undefined;
    sample();
    await driver.close();
    driver = undefined;

    // A clean stop, then the store the server wrote is read directly (every record and history).
    const code = await server.stop();
    if (code !== 0) throw new Error(`server exited with ${code} on SIGTERM: ${server.stderrTail().trim().split('\n').pop() ?? ''}`);
    const store =
      options.backend === 'sqlite'
        ? await openStore({ backend: 'sqlite', path: dbPath })
        : await openStore(
            { backend: 'simpledb', region: 'us-east-1', prefix, shards: 4, endpoint: new URL(local!.url), createDomains: false },
            { registry: new Registry(), simpledb: { credentials: staticCredentials(LOCAL_KEYS), cacheTtlMs: 0 } },
          );
    let verification: Verification;
    try {
      verification = await verify(store, truth);
    } finally {
      await store.close();
    }
    log(`fleet-sim: verified ${verification.containersExpected} containers: ${verification.lost} lost, ${verification.duplicated} duplicated, ${verification.wrongRecords} wrong records, ${verification.wrongHistory} wrong history entries`);
    const { log: _log, ...rest } = options;
    const lateRss = rss.filter((s) => s.atSeconds >= pacedFrom + ((rss[rss.length - 1]?.atSeconds ?? pacedFrom) - pacedFrom) / 2);
    return {
      options: rest,
      initial,
      max,
      paced,
      rss,
      // Second half of the paced phase: the first minutes are warm-up (page cache, heap sizing).
      rssSlopeMiBPerHour: rssSlope(lateRss),
      anonSlopeMiBPerHour: rssSlope(lateRss.map((x) => ({ atSeconds: x.atSeconds, bytes: x.anonBytes }))),
      verification,
    };
  } finally {
    if (sampler) clearInterval(sampler);
    await driver?.close().catch(() => {});
    for (const c of children.reverse()) await c.stop().catch(() => null);
    rmSync(dir, { recursive: true, force: true });
  }
}
