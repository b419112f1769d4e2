// How many containers one reconciler can track inside the 64 MiB memory limit the chart gives it:
// `npm run bench:capacity`. Not part of `npm run bench` (it would not fit quick mode's 5 minutes).
//
// The daemon as shipped (bin/ecs-id-mapper reconciler, launcher V8 settings) in a cgroup v1 memory
// group of 64 MiB (bench/reconciler-cgroup.ts, as `docker run --memory=64m`), against the
// simulated host (tools/simulate-host) listing ever more containers, six simulated minutes each
// (36 passes, one task starting or stopping per pass, and a full sync). A 250-container host, the size the RSS goal
// is held at, is the baseline of the same run. The limit leaves the node executable's own pages
// (about 40 MiB of RSS) what anonymous memory does not take: once the daemon's heap and buffers
// crowd out the code it runs, every pass reads code back from disk (major faults) and its CPU per
// pass jumps by orders of magnitude; further on, the kernel kills it. The table says where.
import { pathToFileURL } from 'node:url';
import { GOAL_RSS_BYTES } from './reconciler.bench.js';
import { runReconcilerSoak, type SoakResult } from './reconciler-soak.js';
import { runBenchProgram, writeBenchmarkSection } from './report.js';

export interface CapacityPoint {
  containers: number;
  result?: SoakResult;
  /** The run failed (the daemon died while being measured). */
  error?: string;
}

export const CAPACITY_CONTAINERS = [250, 2000, 4000, 5000, 6000];
const CONTAINERS_PER_TASK = 2;
/** Long enough for a full sync (every 5 simulated minutes), whose snapshot of every container is the pass's biggest allocation. */
const SIMULATED_MINUTES = 6;
const EXPECTED_PASSES = (SIMULATED_MINUTES * 60) / 10;
/** A pass that costs this many times the baseline's CPU, or this many major faults per pass, is thrashing. */
const THRASH_CPU_RATIO = 10;
const THRASH_FAULTS_PER_PASS = 50;

export async function runCapacityBench(log: (line: string) => void = () => {}): Promise<CapacityPoint[]> {
  const points: CapacityPoint[] = [];
  for (const containers of CAPACITY_CONTAINERS) {
    log(`capacity: ${containers} containers in a 64 MiB memory cgroup`);
    try {
      const result = await runReconcilerSoak({
        simulatedHours: SIMULATED_MINUTES / 60, passSeconds: 10, realPassMs: 2000, tasks: containers / CONTAINERS_PER_TASK, containersPerTask: CONTAINERS_PER_TASK,
        entry: 'launcher', nodeFlags: [], memoryLimitBytes: GOAL_RSS_BYTES,
      });
      points.push({ containers, result });
    } catch (err) {
      points.push({ containers, error: (err as Error).message });
    }
  }
  return points;
}

type Verdict = 'runs' | 'thrashes' | 'killed';

export function verdict(point: CapacityPoint, baselineCpuMs: number): Verdict {
  const r = point.result;
  if (!r || r.exited || r.cgroup?.oomKills) return 'killed';
  const faultsPerPass = r.passes > 0 ? r.majorFaults / r.passes : Infinity;
  return r.cpuMsPerPass > THRASH_CPU_RATIO * baselineCpuMs || faultsPerPass > THRASH_FAULTS_PER_PASS ? 'thrashes' : 'runs';
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

export function capacityMarkdown(points: readonly CapacityPoint[]): string {
  const baseline = points.find((p) => p.containers === CAPACITY_CONTAINERS[0])?.result;
  const baseCpu = baseline?.cpuMsPerPass ?? 0;
  const rows = points.map((p) => {
    const r = p.result;
    const v = verdict(p, baseCpu);
    if (!r) return `| ${p.containers.toLocaleString('en-US')} | | | | | | ${v}: ${p.error} |`;
    const anonPeak = Math.max(0, ...r.samples.map((s) => s.anonBytes));
    return `| ${p.containers.toLocaleString('en-US')}${p.containers === CAPACITY_CONTAINERS[0] ? ' (baseline)' : ''} | ${r.passes} | ${r.cpuMsPerPass.toFixed(1)} ms (${baseCpu > 0 ? (r.cpuMsPerPass / baseCpu).toFixed(1) : '–'} ×) | ${r.majorFaults} | ${mib(anonPeak)} | ${r.cgroup?.limitHits ?? 0} | ${v}${r.exited ? ` (${r.exited})` : ''} |`;
  });
  const fits = points.filter((p) => verdict(p, baseCpu) === 'runs').map((p) => p.containers);
  const largest = fits.length ? Math.max(...fits) : 0;
  return `The reconciler as shipped inside a 64 MiB memory cgroup (what the chart's hard limit and \`docker run --memory=64m\` do), against a simulated host listing that many containers (${CONTAINERS_PER_TASK} per task), ${SIMULATED_MINUTES} simulated minutes each (a pass every 10 simulated seconds, one task starting or stopping per pass, a full sync of every container after 5 minutes). The simulated host has no Docker engine (\`--docker-socket none\`): with Docker, its listing of each container (about 0.9 KiB) is alive during every pass too (docs/operations.md). Anonymous memory (heap, buffers) cannot be reclaimed; what the limit leaves is shared by the node executable's pages, and once they no longer fit, every pass reads code back from disk (major faults) and costs many times its CPU: "thrashes" here means ${THRASH_CPU_RATIO} × the baseline's CPU per pass or more than ${THRASH_FAULTS_PER_PASS} major faults per pass. No goal is set for this table; docs/operations.md tells operators what to do with it.

| containers listed | passes (${EXPECTED_PASSES} expected) | CPU per pass (× baseline) | major faults | anonymous memory, peak sample | times the limit was reached | outcome |
|---|---|---|---|---|---|---|
${rows.join('\n')}

Largest host that runs within the limit in this run: **${largest.toLocaleString('en-US')} containers**.`;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  await runBenchProgram('bench:capacity', process.argv.slice(2), async () => {
    const points = await runCapacityBench((l) => console.error(l));
    const md = capacityMarkdown(points);
    writeBenchmarkSection('capacity', 'Reconciler capacity inside a 64 MiB memory limit', md);
    console.log(md);
  });
}
