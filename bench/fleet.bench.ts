// Fleet ingest benchmark (issue 7): the fleet simulator (tools/fleet-sim) against a server child
// process on the embedded store and on the local SimpleDB endpoint. Goal: 0 lost, ingest p99 ≤ 50 ms
// on the embedded store. Soak mode (`--soak 30m`) runs the paced phase that long and reports the
// server's RSS slope.
//
// Run alone: `npm run bench:fleet` (quick), `npm run bench:fleet -- --full`, `npm run bench:soak`
// (30 minutes on the embedded store; another length: `npm run bench:fleet -- --soak 45m`).
// `--backend sqlite|simpledb` runs one backend. Flags: config/bench.ts (`-- --help`).
import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { DEFAULT_CACHE_SIZE_BYTES } from '../storage/sqlite/sizes.js';
import { runFleetSim, type FleetOptions, type FleetResult } from '../tools/fleet-sim/index.js';
import { runBenchProgram, writeBenchmarkSection } from './report.js';

export type FleetSize = 'tiny' | 'quick' | 'full';

export function fleetOptions(backend: 'sqlite' | 'simpledb', size: FleetSize): Omit<FleetOptions, 'log'> {
  const base = { backend, containersPerHost: 30, replacePerRound: 2, snapshotEvery: 3, connections: 8, rssSampleMs: 1000 };
  if (size === 'tiny') return { ...base, hosts: 4, containersPerHost: 5, rounds: 2, pacedRounds: 2, connections: 2, rssSampleMs: 200 };
  if (backend === 'sqlite') {
    return size === 'full' ? { ...base, hosts: 2000, rounds: 5, pacedRounds: 5 } : { ...base, hosts: 200, rounds: 3, pacedRounds: 3 };
  }
  // Each transition costs several HTTP requests to the SimpleDB endpoint (itself a child process
  // on the same two cores), so the SimpleDB fleet is smaller. At 2,000 hosts the run measures the
  // endpoint rather than the server: it answers each Select by scanning every item of the domain
  // (real SimpleDB indexes every attribute). Tried on 2026-12-05 beside other work: the first
  // reports (120,000 transitions) took 430 s, and the check against the ground truth had not
  // finished after 14 minutes, the endpoint holding 1.4 GiB and a whole core.
  return size === 'full' ? { ...base, hosts: 200, rounds: 3, pacedRounds: 3 } : { ...base, hosts: 20, rounds: 2, pacedRounds: 2, connections: 4 };
}

const ok = (pass: boolean) => (pass ? 'met' : '**not met**');
const ms = (n: number) => `${n.toFixed(1)} ms`;
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

function row(label: string, r: FleetResult['initial']): string {
  return `| ${label} | ${int(r.requests)} | ${int(r.transitions)} | ${r.seconds.toFixed(1)} s | ${int(r.transitionsPerSecond)} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${Number.isNaN(r.snapshotP99Ms) ? '–' : `${ms(r.snapshotP50Ms)} / ${ms(r.snapshotP99Ms)}`} | ${int(r.serverCpuUsPerTransition)} µs | ${ms(r.simulatorDelayP99Ms)} / ${ms(r.simulatorDelayMaxMs)} | ${r.retries} |`;
}

/**
 * Where the server's RSS is at the end of a run. The SQLite store keeps a page cache (64 MiB by
 * default) in anonymous memory and maps its file (storage/sqlite/index.ts); both fill as the store is used,
 * so RSS climbs for a while at first without a leak.
 */
function memoryRow(r: FleetResult): string {
  const last = r.rss[r.rss.length - 1];
  if (last === undefined) return '';
  const mapped = r.options.backend === 'sqlite' ? `, of which the store's memory-mapped file ${mib(last.storeMappedBytes)}` : '';
  return `\n| server RSS at the end, by kind | anonymous ${mib(last.anonBytes)} (heap and malloc${r.options.backend === 'sqlite' ? `; SQLite's page cache, up to --sqlite-cache-bytes (${DEFAULT_CACHE_SIZE_BYTES / 2 ** 20} MiB by default), is part of it` : ''}), file-backed ${mib(last.fileBytes)}${mapped} | |`;
}

/** A soak's RSS samples, about 30 of them: seconds → MiB, and for SQLite the anonymous part and the store's mapped file. */
export function soakSamplesLine(r: FleetResult): string {
  const every = Math.max(1, Math.floor(r.rss.length / 30));
  const mb = (b: number) => (b / 2 ** 20).toFixed(0);
  const points = r.rss.filter((_, i) => i % every === 0).map((x) => `${x.atSeconds.toFixed(0)}→${mb(x.bytes)} (${mb(x.anonBytes)} / ${mb(x.storeMappedBytes)})`);
  return `RSS samples (s → MiB (anonymous / store file mapped)): ${points.join(', ')}`;
}

export function fleetMarkdown(results: FleetResult[], soak: boolean): string {
  const parts: string[] = [];
  parts.push(`Simulated hosts report through the real v2 routes (\`POST /v2/hosts/:id/transitions\`, \`PUT /v2/hosts/:id/snapshot\`) to \`ecs-id-mapper server\` running as a child process (its RSS read from /proc). undici Pool, one request in flight per host, strictly increasing seq per host, failed requests retried with the same body. A churn round replaces ${results[0]?.options.replacePerRound ?? 2} containers per host (5 transitions each: running→stopping→stopped→gone, null→pending→running); every ${results[0]?.options.snapshotEvery ?? 3}rd round a host also PUTs its full snapshot. Latencies are per request (transition batches and snapshot PUTs apart); the paced phase runs at half the max request rate and measures from each request's scheduled start (coordinated omission corrected). Server CPU per transition (from /proc/<pid>/stat; for SimpleDB including the endpoint process) is the figure least disturbed by other load on the machine; wall-clock latencies are not. The simulator measures latency in its own process, so its own stalls (GC, building bodies) count in every request in flight; its event-loop delay over each phase is shown beside the latencies. Load average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' / ')} (the machine is shared).`);
  for (const r of results) {
    const o = r.options;
    const v = r.verification;
    const store = o.backend === 'sqlite' ? 'embedded store (SQLite)' : 'local SimpleDB endpoint (child process, 4 shards)';
    const rssStart = r.rss[0]?.bytes ?? 0;
    const rssPeak = r.rss.reduce((a, s) => Math.max(a, s.bytes), 0);
    const rssEnd = r.rss[r.rss.length - 1]?.bytes ?? 0;
    const lostOk = v.lost === 0 && v.duplicated === 0 && v.wrongRecords === 0 && v.wrongHistory === 0;
    parts.push(`### ${o.hosts.toLocaleString('en-US')} hosts × ${o.containersPerHost} containers on the ${store}${r.paced.seconds > 0 && soak ? ` — soak ${(r.paced.seconds / 60).toFixed(0)} min` : ''}

${o.connections} connections. ${v.containersExpected.toLocaleString('en-US')} containers and ${v.transitionsExpected.toLocaleString('en-US')} transitions in the ground truth.

| phase | requests | transitions | time | transitions/s | batch p50 | batch p99 | snapshot PUT p50 / p99 | server CPU per transition | simulator's own event-loop delay p99 / max | retries |
|---|---|---|---|---|---|---|---|---|---|---|
${row('first reports (all containers start) + snapshot', r.initial)}
${row('churn, max rate', r.max)}
${row(`churn, paced at ${r.paced.targetRate.toFixed(0)} req/s`, r.paced)}

| figure | value | goal |
|---|---|---|
| lost / duplicated transitions, wrong records / history entries | ${v.lost} / ${v.duplicated} / ${v.wrongRecords} / ${v.wrongHistory} (snapshot-made history entries: ${v.snapshotHistory}) | 0 lost — ${ok(lostOk)} |
| transition batch p99 at a sustainable rate (paced phase) | ${ms(r.paced.p99Ms)} | ${o.backend === 'sqlite' ? `≤ 50 ms — ${ok(r.paced.p99Ms <= 50)}` : 'none (SimpleDB: reported)'} |
| server RSS start / peak / end | ${mib(rssStart)} / ${mib(rssPeak)} / ${mib(rssEnd)} (${r.rss.length} samples)${soak ? '' : '; whether it keeps growing takes minutes: the soak (`npm run bench:soak`)'} | |${soak ? `\n| server RSS slope over the second half of the paced phase | ${r.rssSlopeMiBPerHour.toFixed(1)} MiB/h (anonymous memory alone: ${r.anonSlopeMiBPerHour.toFixed(1)} MiB/h) | no growth (≤ 5 MiB/h) — ${ok(r.rssSlopeMiBPerHour <= 5)} |` : ''}${memoryRow(r)}`);
  }
  parts.push('Baseline in the same run: the max-rate phase against the paced one (how much of the latency is queueing). Run alone with `npm run bench:fleet` (`-- --full` for 2,000 × 30), soak with `npm run bench:soak` (30 minutes; another length: `npm run bench:fleet -- --soak 45m`).');
  return parts.join('\n\n');
}

export async function runFleetBench(size: FleetSize, log: (l: string) => void = () => {}): Promise<FleetResult[]> {
  const results: FleetResult[] = [];
  for (const backend of ['sqlite', 'simpledb'] as const) results.push(await runFleetSim({ ...fleetOptions(backend, size), log }));
  return results;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  await runBenchProgram('bench:fleet', process.argv.slice(2), async ({ full, soakMs, backend, rate }) => {
    const size: FleetSize = full ? 'full' : 'quick';
    const log = (l: string) => console.error(l);
    if (soakMs !== undefined) {
      const opts = fleetOptions(backend ?? 'sqlite', size);
      // A steady, realistic load by default: every host reports about every 10 s.
      const r = await runFleetSim({ ...opts, soakMs, pacedRate: rate ?? opts.hosts / 10, rssSampleMs: 10_000, log });
      writeBenchmarkSection('soak', 'Fleet soak: server RSS over time', `${fleetMarkdown([r], true)}\n\n${soakSamplesLine(r)}`);
      return;
    }
    const results = backend ? [await runFleetSim({ ...fleetOptions(backend, size), log })] : await runFleetBench(size, log);
    // Full-size runs get their own section, so a later quick \`npm run bench\` keeps them.
    if (full) writeBenchmarkSection('fleet-full', 'Fleet ingest at full size, run alone', fleetMarkdown(results, false));
    else writeBenchmarkSection('fleet', 'Fleet ingest', fleetMarkdown(results, false));
  });
}
