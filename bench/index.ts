// `npm run bench`: every benchmark of the project, one report. Each bench rewrites its own section
// of docs/benchmarks.md as soon as it finishes (so a failure later keeps what was measured), then a
// summary section lists every goal with its figure and baseline.
//
//   --quick (default)  sizes that finish within 5 minutes on a 2-core machine (each section says so)
//   --full             the issue's sizes: 2,000 × 30 hosts, 1 M records, 10 s resync interval
//   --only a,b         run only these (api, reconciler, simpledb, fleet, growth)
// Flags are parsed by config/bench.ts (`npm run bench -- --help`).
import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { apiBenchMarkdown, runApiBench, type ApiBenchResult } from './api.bench.js';
import { fleetMarkdown, runFleetBench } from './fleet.bench.js';
import { growthMarkdown, growthOptions, runGrowthBench, signedUs, snapshotCurveShape, SNAPSHOT_WORKLOAD_LABELS, SNAPSHOT_WORKLOADS, type GrowthResult } from './growth.bench.js';
import { reconcilerMarkdown, reconcilerRssGoalRow, runReconcilerBench, type ReconcilerBenchResult } from './reconciler.bench.js';
import { BENCHMARKS_MD, machineLine, runBenchProgram, writeBenchmarkSection } from './report.js';
import { runSimpleDbBench, simpleDbBenchMarkdown, type SimpleDbBenchResult } from './simpledb.bench.js';
import type { FleetResult } from '../tools/fleet-sim/index.js';

import type { BenchName } from '../config/bench.js';

export interface GoalRow {
  figure: string;
  value: string;
  baseline: string;
  goal: string;
  met: boolean;
}

export interface AllResults {
  api?: ApiBenchResult;
  reconciler?: ReconcilerBenchResult;
  simpledb?: SimpleDbBenchResult;
  fleet?: FleetResult[];
  growth?: GrowthResult;
}

const f2 = (n: number) => n.toFixed(2);

/** One row per goal of issues 2, 3, 4 and 7, from whatever ran. */
export function goalRows(r: AllResults): GoalRow[] {
  const rows: GoalRow[] = [];
  if (r.api) {
    rows.push({
      figure: 'API lookup max requests/s',
      value: `${Math.round(r.api.lookupRps)} req/s (${f2(r.api.ratio)} ×); ${r.api.lookupCpuUsPerRequest.toFixed(1)} µs server CPU per request`,
      baseline: `bare Fastify ${Math.round(r.api.bareRps)} req/s; ${r.api.bareCpuUsPerRequest.toFixed(1)} µs CPU per request`,
      goal: '≥ 0.8 × bare',
      met: r.api.ratio >= 0.8,
    });
    rows.push({ figure: 'API lookup p99 at half max rate (median of rounds)', value: `${f2(r.api.lookupP99AtHalfMs)} ms (rounds ${r.api.lookupRoundP99sMs.map(f2).join(' / ')}; machine stalls > 5 ms per round ${r.api.lookupRoundStalls.map((x) => x.stalls).join(' / ')})`, baseline: `bare ${f2(r.api.bareP99AtHalfMs)} ms (rounds ${r.api.bareRoundP99sMs.map(f2).join(' / ')}; stalls ${r.api.bareRoundStalls.map((x) => x.stalls).join(' / ')})`, goal: '≤ 5 ms', met: r.api.lookupP99AtHalfMs <= 5 });
  }
  if (r.reconciler) {
    const p = r.reconciler.pass;
    rows.push({ figure: `reconcile pass CPU, ${p.containers} containers (mean, churning)`, value: `${f2(p.churnCpuMs.mean)} ms (p95 ${f2(p.churnCpuMs.p95)}; steady mean ${f2(p.steadyCpuMs.mean)} ms)`, baseline: `agent body parse ${f2(p.parseOnlyCpuMs.p50)} ms`, goal: '≤ 5 ms', met: p.churnCpuMs.mean <= 5 && p.steadyCpuMs.mean <= 5 });
    const rss = reconcilerRssGoalRow(r.reconciler);
    if (rss) rows.push(rss);
    const [withEvents, without] = r.reconciler.queryable;
    if (withEvents && without) {
      rows.push({ figure: 'start → queryable p95 with Docker events', value: `${Math.round(withEvents.p95Ms)} ms`, baseline: `polling only ${Math.round(without.p95Ms)} ms`, goal: '≤ 1 s', met: withEvents.p95Ms <= 1000 });
      rows.push({ figure: 'start → queryable p95 without events', value: `${Math.round(without.p95Ms)} ms`, baseline: `resync interval ${without.resyncIntervalMs} ms`, goal: '≤ resync interval', met: without.p95Ms <= without.resyncIntervalMs });
    }
  }
  if (r.simpledb) {
    const ratio = r.simpledb.perTransitionSingle / r.simpledb.baselinePerChange;
    const share = r.simpledb.lookupsWithoutRequest / r.simpledb.lookups;
    rows.push({ figure: 'SimpleDB requests per transition (50-container host)', value: f2(r.simpledb.perTransitionSingle), baseline: `original design ${f2(r.simpledb.baselinePerChange)}`, goal: '≤ 0.1 × original', met: ratio <= 0.1 });
    rows.push({ figure: 'repeated lookups without a SimpleDB request', value: `${(share * 100).toFixed(1)} %`, baseline: 'no cache: 0 %', goal: '≥ 95 %', met: share >= 0.95 });
  }
  for (const fr of r.fleet ?? []) {
    const v = fr.verification;
    const name = `${fr.options.hosts} × ${fr.options.containersPerHost} fleet on ${fr.options.backend}`;
    rows.push({ figure: `${name}: lost / duplicated / wrong`, value: `${v.lost} / ${v.duplicated} / ${v.wrongRecords + v.wrongHistory}`, baseline: `${v.transitionsExpected} transitions in the ground truth`, goal: '0 lost', met: v.lost === 0 && v.duplicated === 0 && v.wrongRecords === 0 && v.wrongHistory === 0 });
    if (fr.options.backend === 'sqlite') {
      rows.push({ figure: `${name}: ingest p99 (paced at half max)`, value: `${fr.paced.p99Ms.toFixed(1)} ms, max ${Math.round(fr.max.transitionsPerSecond)} transitions/s`, baseline: `p99 at max rate ${fr.max.p99Ms.toFixed(1)} ms`, goal: '≤ 50 ms', met: fr.paced.p99Ms <= 50 });
    }
  }
  if (r.growth) {
    const g = r.growth;
    for (const kind of ['full_id', 'prefix', 'task'] as const) {
      const ratio = g.big.p99[kind] / g.small.p99[kind];
      rows.push({
        figure: `lookup p99 by ${kind.replace('_', ' ')}, ${g.big.records.toLocaleString('en-US')} records (warm)`,
        // The difference beside the ratio: a faster lookup makes the same extra B-tree level a larger share.
        value: `${(g.big.p99[kind] * 1000).toFixed(0)} µs (${ratio.toFixed(2)} ×, ${signedUs((g.big.p99[kind] - g.small.p99[kind]) * 1000)}); right after opening ${(g.big.cold.p99[kind] / g.small.cold.p99[kind]).toFixed(2)} ×; through the API ${(g.big.api.p99[kind] / g.small.api.p99[kind]).toFixed(2)} ×`,
        baseline: `${g.small.records.toLocaleString('en-US')} records ${(g.small.p99[kind] * 1000).toFixed(0)} µs`,
        goal: '≤ 1.2 ×',
        met: ratio <= 1.2,
      });
    }
    for (const w of SNAPSHOT_WORKLOADS) {
      const points = g.snapshots[w];
      const { spread, growth } = snapshotCurveShape(points);
      rows.push({
        figure: `snapshot ingest cost per container, 10 → 1,000 containers: ${SNAPSHOT_WORKLOAD_LABELS[w]}`,
        value: `${points.map((p) => `${p.containers}: ${p.perContainerUs.toFixed(0)} µs`).join(', ')} (max / min ${spread.toFixed(2)} ×, largest / 10-container ${growth.toFixed(2)} ×)`,
        baseline: 'cheapest point of the curve',
        goal: 'flat within 20 % (max / min ≤ 1.2)',
        met: spread <= 1.2,
      });
    }
  }
  return rows;
}

/** Quick mode's own goal (issue 7): every benchmark within 5 minutes on this 2-core machine. */
export const QUICK_MODE_SECONDS = 300;

export function quickModeRow(seconds: number): GoalRow {
  return {
    figure: '`npm run bench`, quick mode: wall time of every benchmark',
    value: `${seconds.toFixed(0)} s (not counting \`npm run build\`, which \`npm run bench\` runs first)`,
    baseline: '—',
    goal: `≤ ${QUICK_MODE_SECONDS} s (5 minutes) on this 2-core machine`,
    met: seconds <= QUICK_MODE_SECONDS,
  };
}

export function summaryMarkdown(rows: GoalRow[], mode: string, seconds: number, failures: string[]): string {
  const met = rows.filter((r) => r.met).length;
  return `\`npm run bench\` (${mode} mode) on ${machineLine()}, took ${seconds.toFixed(0)} s; load average at the end ${loadavg().map((l) => l.toFixed(1)).join(' / ')} (the machine was shared with other work: absolute times are noisy, baselines were measured in the same run). **${met} of ${rows.length} goals met.**${failures.length ? `\n\nBenchmarks that failed in this run: ${failures.join('; ')}.` : ''}

| figure | value | baseline (same run) | goal | |
|---|---|---|---|---|
${rows.map((r) => `| ${r.figure} | ${r.value} | ${r.baseline} | ${r.goal} | ${r.met ? 'met' : '**not met**'} |`).join('\n')}`;
}

export async function runAll(options: { full: boolean; only?: BenchName[]; log?: (l: string) => void }): Promise<{ results: AllResults; failures: string[]; seconds: number }> {
  const log = options.log ?? (() => {});
  const quick = !options.full;
  const want = (b: BenchName) => !options.only || options.only.includes(b);
  const results: AllResults = {};
  const failures: string[] = [];
  const t0 = performance.now();
  const step = async (name: BenchName, fn: () => Promise<void>) => {
    if (!want(name)) return;
    const t = performance.now();
    log(`bench: ${name}…`);
    try {
      await fn();
      log(`bench: ${name} done in ${((performance.now() - t) / 1000).toFixed(0)} s`);
    } catch (err) {
      failures.push(`${name}: ${(err as Error).message}`);
      log(`bench: ${name} FAILED: ${(err as Error).message}`);
    }
  };
  await step('api', async () => {
    results.api = await runApiBench({ quick });
    writeBenchmarkSection('api', 'API lookups vs bare Fastify', apiBenchMarkdown(results.api, quick));
  });
  await step('reconciler', async () => {
    results.reconciler = await runReconcilerBench(quick, log);
    writeBenchmarkSection('reconciler', 'Reconciler: pass cost, RSS, start → queryable', reconcilerMarkdown(results.reconciler));
  });
  await step('simpledb', async () => {
    results.simpledb = await runSimpleDbBench();
    writeBenchmarkSection('simpledb', 'SimpleDB requests per transition and cached lookups', simpleDbBenchMarkdown(results.simpledb));
  });
  await step('fleet', async () => {
    results.fleet = await runFleetBench(quick ? 'quick' : 'full', log);
    writeBenchmarkSection('fleet', 'Fleet ingest', fleetMarkdown(results.fleet, false));
  });
  await step('growth', async () => {
    results.growth = await runGrowthBench(growthOptions(quick ? 'quick' : 'full'), log);
    writeBenchmarkSection('growth', 'Cost growth: lookups at 1 M records, snapshot cost per container', growthMarkdown(results.growth));
  });
  return { results, failures, seconds: (performance.now() - t0) / 1000 };
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  await runBenchProgram('bench', process.argv.slice(2), async ({ full, only }) => {
    const { results, failures, seconds } = await runAll({ full, only, log: (l) => console.error(l) });
    const rows = goalRows(results);
    if (!full && !only) rows.push(quickModeRow(seconds));
    writeBenchmarkSection('summary', 'Summary: every goal', summaryMarkdown(rows, full ? 'full' : 'quick', seconds, failures), BENCHMARKS_MD, { first: true });
    console.log(summaryMarkdown(rows, full ? 'full' : 'quick', seconds, failures));
    if (failures.length > 0) process.exitCode = 1;
  });
}
