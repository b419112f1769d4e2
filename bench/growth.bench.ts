// Cost growth on the embedded store (issue 7):
// 1. lookup p99 with 1 M records against 1 k records (goal ≤ 1.2×). Both stores are SQLite files
//    seeded through applyTransitions in big batches, then opened again as a restarted server opens
//    them; lookups (full id, 12-hex prefix, task ARN) alternate between the two stores in short
//    slices so machine noise hits both alike. Measured twice: right after opening (cold: most of the
//    big store's pages are read for the first time through the process's memory map), and after
//    every record and task has been looked up once (warm, as in a server that has run a while).
//    The goal is judged warm: the 1 k store is warm after a few lookups whatever is done, so only
//    warm against warm compares store sizes rather than first touches.
// 2. snapshot ingest cost per container for hosts of 10 … 1,000 containers (goal: flat within 20 %),
//    as three curves, one per kind of snapshot the server ingests (SnapshotWorkload).
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openStore } from '../storage/index.js';
import type { LegacySnapshot, Store } from '../storage/store.js';
import { containerId, hostIdentity, instanceId, observation, taskArn, taskId } from '../storage/store.fixtures.js';
import type { SnapshotContainer, Transition } from '../wire/index.js';
import { percentile } from '../tools/fleet-sim/index.js';
import { timeApiLookups } from './growth-api.js';
import { runBenchProgram, writeBenchmarkSection } from './report.js';

export interface GrowthOptions {
  /** Records in the big store (1,000,000 in full mode). */
  bigRecords: number;
  smallRecords: number;
  /** Lookups per kind per store. */
  lookups: number;
  /** Lookups per kind per store through the API (GET /v2/lookup/<id>), after the store-level ones. */
  apiLookups: number;
  /** Host sizes for the snapshot curve. */
  snapshotSizes: number[];
  /** Container-snapshots processed per size (reps = this / size, at least 5). */
  snapshotWork: number;
  /** Records of other hosts in the snapshot curve's store: the fleet each host reports into. */
  snapshotBackground: number;
}

export interface LookupFigures {
  records: number;
  seedSeconds: number;
  /** Warm: after every record and task was looked up once. */
  p50: Record<LookupKind, number>;
  p99: Record<LookupKind, number>;
  /** The first lookups after opening the store. */
  cold: { p50: Record<LookupKind, number>; p99: Record<LookupKind, number> };
  /** Warm, through the API (bench/growth-api.ts): what an operator's lookup costs. */
  api: { p50: Record<LookupKind, number>; p99: Record<LookupKind, number> };
  /** Looking up every record once by id and every task once (the warm-up), seconds. */
  warmSeconds: number;
  /** The store file's size after seeding. */
  fileBytes: number;
}

export type LookupKind = 'full_id' | 'prefix' | 'task';

export interface SnapshotPoint {
  containers: number;
  reps: number;
  /** Median time of one replaceSnapshot, ms. */
  medianMs: number;
  /** medianMs / containers, µs. */
  perContainerUs: number;
}

/**
 * The snapshots the server ingests, each as its own curve:
 * - steady: a reconciler's periodic full sync. It is sent only once the outbox is drained, so the
 *   server already has every change by transitions, and the snapshot confirms what it holds. Every
 *   full sync of every healthy host is this one.
 * - churn: a reconciler snapshot that carries 10 % of the host's containers replaced (new ones
 *   created, absent ones gone): the server missed those transitions (restored from a backup, or a
 *   record lost), and the full sync repairs it.
 * - legacy: the original agent's `POST /report/map`, its whole map every report, 10 % of it
 *   replaced since the last one, every entry with a new sample time (so every row is touched).
 */
export type SnapshotWorkload = 'steady' | 'churn' | 'legacy';
export const SNAPSHOT_WORKLOADS: SnapshotWorkload[] = ['steady', 'churn', 'legacy'];
export const SNAPSHOT_WORKLOAD_LABELS: Record<SnapshotWorkload, string> = {
  steady: 'reconciler full sync, nothing missed',
  churn: 'reconciler full sync carrying 10 % replaced',
  legacy: 'original agent map, 10 % replaced',
};

export interface GrowthResult {
  options: GrowthOptions;
  /** The lookup curve, smallest store first: small is its first point, big its last. */
  lookups: LookupFigures[];
  small: LookupFigures;
  big: LookupFigures;
  snapshots: Record<SnapshotWorkload, SnapshotPoint[]>;
}

const PER_HOST = 1000;

function seedTransition(host: number, c: number): Transition {
  const id = containerId(`g${host}/${c}`);
  return {
    seq: c + 1,
    container_id: id,
    from: null,
    to: 'running',
    at: '2026-01-01T00:00:00.000Z',
    reason: 'agent.observed',
    container: observation({ container_id: id, task_arn: taskArn(taskId(`g${host}/${c >> 1}`)), docker_name: `ecs-web-3-app-${id.slice(0, 20)}` }),
  };
}

async function seed(store: Store, records: number): Promise<number> {
  const t0 = performance.now();
  const receivedAt = new Date();
  for (let h = 0; h * PER_HOST < records; h++) {
    const n = Math.min(PER_HOST, records - h * PER_HOST);
    const host = hostIdentity({ instance_id: instanceId(`g${h}`) });
    const ts = new Array<Transition>(n);
    for (let c = 0; c < n; c++) ts[c] = seedTransition(h, c);
    await store.applyTransitions({ host, transitions: ts }, receivedAt);
  }
  return (performance.now() - t0) / 1000;
}

/** Ids of existing records spread over the whole store (a different sample for each seed). */
function sampleIds(records: number, count: number, seed = 12345): Array<{ id: string; task: string }> {
  const out = [];
  let x = seed;
  for (let i = 0; i < count; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const r = x % records;
    const h = Math.floor(r / PER_HOST);
    const c = r % PER_HOST;
    out.push({ id: containerId(`g${h}/${c}`), task: taskArn(taskId(`g${h}/${c >> 1}`)) });
  }
  return out;
}

async function timeLookups(store: Store, sample: Array<{ id: string; task: string }>, kind: LookupKind, into: number[]): Promise<void> {
  for (const s of sample) {
    const t = performance.now();
    if (kind === 'full_id') {
      const r = await store.getContainer(s.id);
      if (r.kind !== 'found') throw new Error(`seeded record ${s.id} not found`);
    } else if (kind === 'prefix') {
      const r = await store.getContainer(s.id.slice(0, 12));
      if (r.kind !== 'found') throw new Error(`seeded record ${s.id.slice(0, 12)} not found by prefix`);
    } else if ((await store.findByTask(s.task)).length === 0) throw new Error(`seeded task ${s.task} not found`);
    into.push(performance.now() - t);
  }
}

/** Every record looked up once by id and every task once by ARN: what a server that has run a while has touched. */
async function warmUp(store: Store, records: number): Promise<number> {
  const t0 = performance.now();
  for (let r = 0; r < records; r++) {
    const h = Math.floor(r / PER_HOST);
    const c = r % PER_HOST;
    if ((await store.getContainer(containerId(`g${h}/${c}`))).kind !== 'found') throw new Error(`seeded record g${h}/${c} not found`);
    if (c % 2 === 0 && (await store.findByTask(taskArn(taskId(`g${h}/${c >> 1}`)))).length === 0) throw new Error(`seeded task g${h}/${c >> 1} not found`);
  }
  return (performance.now() - t0) / 1000;
}

type Times = Record<LookupKind, number[]>;

const KINDS: LookupKind[] = ['full_id', 'prefix', 'task'];

/** `lookups` per kind per store, in 50 slices, each going round every store and kind. */
async function timeAlternating(stores: Array<{ store: Store; records: number }>, options: GrowthOptions, seed: number): Promise<Times[]> {
  // The p99 of a ~20 µs lookup is the 1 % of samples a scheduler tick, a GC or a page fault
  // landed on: with 10,000 lookups that was 100 samples, and the 1 M ratio moved by ±0.2 × between
  // runs of the same build. 100,000 lookups (full mode) put 1,000 samples in the tail; 50 slices
  // alternate the stores often enough that machine noise hits them all alike.
  const slices = 50;
  const per = Math.max(1, Math.ceil(options.lookups / slices));
  const samples = stores.map((s) => sampleIds(s.records, per * slices, seed));
  const times: Times[] = stores.map(() => ({ full_id: [], prefix: [], task: [] }));
  for (let s = 0; s < slices; s++) {
    for (const k of KINDS) {
      for (let i = 0; i < stores.length; i++) await timeLookups(stores[i].store, samples[i].slice(s * per, (s + 1) * per), k, times[i][k]);
    }
  }
  return times;
}

const figuresOf = (t: Times) => ({
  p50: { full_id: percentile(t.full_id, 50), prefix: percentile(t.prefix, 50), task: percentile(t.task, 50) },
  p99: { full_id: percentile(t.full_id, 99), prefix: percentile(t.prefix, 99), task: percentile(t.task, 99) },
});

/** The store sizes of the lookup curve: the baseline, every power of ten between, the big store. */
export function lookupSizes(options: GrowthOptions): number[] {
  const sizes = [options.smallRecords];
  for (let n = options.smallRecords * 10; n < options.bigRecords; n *= 10) sizes.push(n);
  return [...sizes, options.bigRecords];
}

/** One figure per store size (lookupSizes), smallest first: the curve's first point is the baseline, its last the goal's. */
export async function runLookupGrowth(options: GrowthOptions, dir: string, log: (l: string) => void): Promise<LookupFigures[]> {
  const sizes = lookupSizes(options);
  const paths = sizes.map((n) => join(dir, `lookups-${n}.db`));
  const stores: Array<{ store: Store; records: number }> = [];
  try {
    const seedSeconds: number[] = [];
    for (let i = 0; i < sizes.length; i++) {
      if (sizes[i] >= 100_000) log(`growth: seeding ${sizes[i].toLocaleString('en-US')} records…`);
      const store = await openStore({ backend: 'sqlite', path: paths[i] });
      try {
        seedSeconds.push(await seed(store, sizes[i]));
      } finally {
        await store.close();
      }
    }
    // Opened again, as a restarted server opens its store: nothing read through this process's map yet.
    for (let i = 0; i < sizes.length; i++) stores.push({ store: await openStore({ backend: 'sqlite', path: paths[i] }), records: sizes[i] });
    // Statement caches only: one lookup of each kind.
    for (const { store } of stores) for (const k of KINDS) await timeLookups(store, sampleIds(options.smallRecords, 1, 777), k, []);
    const cold = await timeAlternating(stores, options, 12345);
    log('growth: warming up (every record and task once)…');
    const warmSeconds: number[] = [];
    for (const { store, records } of stores) warmSeconds.push(await warmUp(store, records));
    const warm = await timeAlternating(stores, options, 67890);
    log('growth: lookups through the API…');
    const api = await timeApiLookups(stores.map((s) => s.store), stores.map((s) => sampleIds(s.records, options.apiLookups, 24680)), 200);
    return sizes.map((records, i) => ({
      records,
      seedSeconds: seedSeconds[i],
      ...figuresOf(warm[i]),
      cold: figuresOf(cold[i]),
      api: figuresOf(api[i]),
      warmSeconds: warmSeconds[i],
      fileBytes: statSync(paths[i]).size,
    }));
  } finally {
    for (const { store } of stores) await store.close();
  }
}

export async function runSnapshotCurve(options: GrowthOptions, dir: string): Promise<Record<SnapshotWorkload, SnapshotPoint[]>> {
  // One store holding a fleet's records (options.snapshotBackground, other hosts') and one host of
  // each size per workload: a host reports into a store shared with the rest of the fleet, and every
  // size meets the same index sizes. (A fresh small file per size let a big host's new rows share
  // index pages with each other, which a fleet-sized index does not; that made big hosts look
  // cheaper per container than they are.) The measured snapshots of all sizes and workloads are
  // interleaved round by round, each curve's repetitions spread evenly over all the rounds (a big
  // host has fewer of them), so load from elsewhere on the machine, and the WAL's growth and
  // checkpoints, hit every point alike. (Run back to back, a 1,000-container host's 20 snapshots
  // all came in the first 20 of 2,000 rounds, and most 10-container snapshots ran after every
  // other size had finished.)
  const store = await openStore({ backend: 'sqlite', path: join(dir, 'snapshots.db') });
  try {
    await seed(store, options.snapshotBackground);
    const curves = [];
    for (const workload of SNAPSHOT_WORKLOADS) {
      for (const size of options.snapshotSizes) {
        const host = hostIdentity({ instance_id: instanceId(`snap-${workload}-${size}`) });
        let born = 0;
        const make = (): SnapshotContainer => {
          const id = containerId(`snap-${workload}-${size}/${born++}`);
          return { ...observation({ container_id: id, task_arn: taskArn(taskId(id)) }), state: 'running' };
        };
        const containers = Array.from({ length: size }, make);
        const curve = { workload, size, host, make, containers, seq: 1, reps: Math.max(5, Math.round(options.snapshotWork / size)), done: 0, times: [] as number[] };
        curves.push(curve);
        await sendSnapshot(store, curve);
      }
    }
    const rounds = Math.max(...curves.map((c) => c.reps));
    for (let r = 0; r < rounds; r++) {
      for (const c of curves) {
        // The curve's repetitions due by the end of this round, spread evenly over all the rounds.
        if (c.done >= Math.floor(((r + 1) * c.reps) / rounds)) continue;
        if (c.workload !== 'steady') {
          // 10 % of the containers replaced: they go (absent), new ones appear.
          const replace = Math.max(1, Math.round(c.size / 10));
          for (let k = 0; k < replace; k++) c.containers[(c.done * replace + k) % c.size] = c.make();
        }
        c.done++;
        c.seq++;
        // Timed to the end of the event-loop turn after it: the server handles each snapshot as a
        // request of its own, and whatever the store does between requests is part of what a
        // snapshot costs. (A design that checkpointed the WAL between requests was measured this
        // way: docs/architecture.md.)
        const t = performance.now();
        await sendSnapshot(store, c);
        await new Promise((resolve) => setImmediate(resolve));
        c.times.push(performance.now() - t);
      }
    }
    const result = { steady: [], churn: [], legacy: [] } as Record<SnapshotWorkload, SnapshotPoint[]>;
    for (const c of curves) {
      const medianMs = percentile(c.times, 50);
      result[c.workload].push({ containers: c.size, reps: c.reps, medianMs, perContainerUs: (medianMs * 1000) / c.size });
    }
    return result;
  } finally {
    await store.close();
  }
}

/** The curve's current containers, as its workload sends them: a reconciler snapshot, or the original agent's map. */
async function sendSnapshot(store: Store, c: { workload: SnapshotWorkload; host: ReturnType<typeof hostIdentity>; seq: number; containers: SnapshotContainer[] }): Promise<void> {
  const now = new Date();
  if (c.workload !== 'legacy') {
    await store.replaceSnapshot({ host: c.host, seq: c.seq, taken_at: now.toISOString(), containers: c.containers }, now);
    return;
  }
  // As api/legacy-report.ts turns a map entry into a container: the agent's key (sha256 of docker
  // id, task id and desired status), the task id as the agent derived it from the ARN (the text
  // after its last ':' minus 'task/'), a sample time per entry.
  const sampledAt = now.toISOString();
  const containers: LegacySnapshot['containers'] = c.containers.map((x) => ({
    ...x,
    task_id_raw: x.task_arn === null ? null : x.task_arn.slice(x.task_arn.lastIndexOf(':') + 1).replace(/^task\//, ''),
    legacy_key: createHash('sha256').update(`${x.container_id}${x.task_arn}${x.desired_status}`).digest('hex'),
    sampled_at: sampledAt,
    instance_port: null,
    container_port: null,
  }));
  await store.replaceLegacySnapshot({ host: c.host, received_at: sampledAt, containers });
}

export async function runGrowthBench(options: GrowthOptions, log: (l: string) => void = () => {}): Promise<GrowthResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-bench-growth-'));
  try {
    const lookups = await runLookupGrowth(options, dir, log);
    const snapshots = await runSnapshotCurve(options, dir);
    return { options, lookups, small: lookups[0], big: lookups[lookups.length - 1], snapshots };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function growthOptions(size: 'tiny' | 'quick' | 'full'): GrowthOptions {
  const snapshotSizes = [10, 30, 100, 300, 1000];
  if (size === 'tiny') return { bigRecords: 2000, smallRecords: 100, lookups: 50, apiLookups: 50, snapshotSizes: [10, 30], snapshotWork: 100, snapshotBackground: 1000 };
  if (size === 'quick') return { bigRecords: 100_000, smallRecords: 1000, lookups: 30_000, apiLookups: 3_000, snapshotSizes, snapshotWork: 20_000, snapshotBackground: 20_000 };
  return { bigRecords: 1_000_000, smallRecords: 1000, lookups: 100_000, apiLookups: 20_000, snapshotSizes, snapshotWork: 60_000, snapshotBackground: 100_000 };
}

/** A difference in µs with its sign: "+6 µs", "−2 µs". */
export function signedUs(us: number): string {
  const rounded = Math.round(us);
  return `${rounded < 0 ? '−' : '+'}${Math.abs(rounded)} µs`;
}

/** Two decimals, or three where two would hide which side of the 1.2 × goal a ratio is on (1.204 is not 1.20). */
function ratioText(x: number): string {
  return x.toFixed(2) === '1.20' && x !== 1.2 ? x.toFixed(3) : x.toFixed(2);
}

/** How flat a curve is: spread = largest / smallest per-container cost; growth = largest / the smallest host's. */
export function snapshotCurveShape(points: SnapshotPoint[]): { spread: number; growth: number } {
  const per = points.map((p) => p.perContainerUs);
  return { spread: Math.max(...per) / Math.min(...per), growth: Math.max(...per) / per[0] };
}

/**
 * What the smallest host's snapshot costs beyond its containers at the largest host's rate per
 * container: the part of a snapshot that does not scale with its containers, in µs. (A
 * least-squares line over the points was dominated by the largest host and gave negative fixed costs.)
 */
export function smallHostExcessUs(points: SnapshotPoint[]): number {
  const small = points[0];
  const large = points[points.length - 1];
  return (small.medianMs * 1000) - small.containers * large.perContainerUs;
}

export function growthMarkdown(r: GrowthResult): string {
  const ok = (pass: boolean) => (pass ? 'met' : '**not met**');
  const f = (n: number) => `${(n * 1000).toFixed(0)} µs`;
  const kinds: Array<[LookupKind, string]> = [['full_id', 'full container id'], ['prefix', '12-hex prefix'], ['task', 'task ARN']];
  const quickNote = r.big.records < 1_000_000 ? ` **Quick mode: ${r.big.records.toLocaleString('en-US')} records, not 1 M** (\`npm run bench:growth -- --full\` for 1 M).` : '';
  const lookupRows = kinds
    .map(([k, label]) => {
      const ratio = r.big.p99[k] / r.small.p99[k];
      const coldRatio = r.big.cold.p99[k] / r.small.cold.p99[k];
      return `| ${label} | ${f(r.big.p50[k])} / ${f(r.big.p99[k])} | ${f(r.small.p50[k])} / ${f(r.small.p99[k])} | ${ratioText(ratio)} × | ≤ 1.2 × — ${ok(ratio <= 1.2)} | ${f(r.big.cold.p50[k])} / ${f(r.big.cold.p99[k])} against ${f(r.small.cold.p50[k])} / ${f(r.small.cold.p99[k])}: ${ratioText(coldRatio)} × |`;
    })
    .join('\n');
  const base = r.small;
  const times = (x: LookupFigures['cold'] | LookupFigures) => KINDS.map((k) => `${f(x.p50[k])} / ${f(x.p99[k])}`).join(' | ');
  const ratios = (x: LookupFigures['cold'], b: LookupFigures['cold']) => KINDS.map((k) => (x.p99[k] / b.p99[k]).toFixed(2)).join(' / ');
  const lookupCurve = r.lookups
    .map((p) => `| ${p.records.toLocaleString('en-US')} | ${(p.fileBytes / 2 ** 20).toFixed(1)} MiB | ${times(p)} | ${ratios(p, base)} | ${ratios(p.cold, base.cold)} |`)
    .join('\n');
  const p50Ratios = (x: LookupFigures['api'], b: LookupFigures['api']) => KINDS.map((k) => (x.p50[k] / b.p50[k]).toFixed(2)).join(' / ');
  const apiCurve = r.lookups
    .map((p) => `| ${p.records.toLocaleString('en-US')} | ${times(p.api)} | ${ratios(p.api, base.api)} | ${p50Ratios(p.api, base.api)} |`)
    .join('\n');
  const apiWorst = Math.max(...KINDS.map((k) => r.big.api.p99[k] / r.small.api.p99[k]));
  const extraUs = (x: LookupFigures['api'], b: LookupFigures['api']) => KINDS.map((k) => signedUs((x.p50[k] - b.p50[k]) * 1000)).join(' / ');
  const sizes = r.snapshots.steady.map((p) => p.containers);
  const curveRows = sizes
    .map((n, i) => `| ${n} | ${SNAPSHOT_WORKLOADS.map((w) => `${r.snapshots[w][i].perContainerUs.toFixed(1)} µs (${r.snapshots[w][i].medianMs.toFixed(2)} ms × ${r.snapshots[w][i].reps})`).join(' | ')} |`)
    .join('\n');
  const shapeRows = SNAPSHOT_WORKLOADS.map((w) => {
    const shape = snapshotCurveShape(r.snapshots[w]);
    const pts = r.snapshots[w];
    return `| ${SNAPSHOT_WORKLOAD_LABELS[w]} | ${ratioText(shape.spread)} × — ${ok(shape.spread <= 1.2)} | ${shape.growth.toFixed(2)} × | ${smallHostExcessUs(pts).toFixed(0)} µs (${pts[0].containers} containers at ${pts[pts.length - 1].perContainerUs.toFixed(1)} µs each would be ${(pts[0].containers * pts[pts.length - 1].perContainerUs).toFixed(0)} µs; it took ${(pts[0].medianMs * 1000).toFixed(0)} µs) |`;
  }).join('\n');
  return `### Lookup p99 with many records vs few

Store-level lookups (\`getContainer\`, \`findByTask\`) on SQLite files (WAL) seeded through \`applyTransitions\` in batches of 1,000 (${r.big.records.toLocaleString('en-US')} records seeded in ${r.big.seedSeconds.toFixed(1)} s), then opened again, as a restarted server opens its store. ${r.options.lookups.toLocaleString('en-US')} lookups per kind per store, in 50 slices alternating between the stores, twice: right after opening (the last column), then, after every record and every task had been looked up once (${r.big.warmSeconds.toFixed(1)} s for the big store), on another sample of ids (the goal's columns).${quickNote} The baseline is the ${r.small.records.toLocaleString('en-US')}-record store measured in the same run.

| lookup by | ${r.big.records.toLocaleString('en-US')} records p50 / p99 | ${r.small.records.toLocaleString('en-US')} records p50 / p99 (baseline) | p99 ratio | goal | right after opening: ${r.big.records.toLocaleString('en-US')} against ${r.small.records.toLocaleString('en-US')} records, p50 / p99 |
|---|---|---|---|---|---|
${lookupRows}

The curve: every store size measured in the same slices (warm, except the last column).

| records | store file | by full id p50 / p99 | by 12-hex prefix p50 / p99 | by task ARN p50 / p99 | p99 against ${base.records.toLocaleString('en-US')} records (id / prefix / task) | right after opening (id / prefix / task) |
|---|---|---|---|---|---|---|
${lookupCurve}

Through the API: the same stores, right after the figures above, each behind the server as \`ecs-id-mapper server\` builds it (\`bench/bench-server.ts\`, task cache off, so every request reaches the store), looked up with \`GET /v2/lookup/<id>\` (a task ARN URL-encoded) by one keep-alive undici client in the same process, one request at a time: ${r.options.apiLookups.toLocaleString('en-US')} per kind per store, in 50 slices alternating between the stores, on another sample of ids. Each answer is checked to hold the record looked up. This is what an operator's lookup costs, HTTP, routing, schema checks, the client and JSON included.

| records | by full id p50 / p99 | by 12-hex prefix p50 / p99 | by task ARN p50 / p99 | p99 against ${base.records.toLocaleString('en-US')} records (id / prefix / task) | p50 against ${base.records.toLocaleString('en-US')} records |
|---|---|---|---|---|---|
${apiCurve}

Read through the API, the largest p99 ratio at ${r.big.records.toLocaleString('en-US')} records is ${ratioText(apiWorst)} × (the goal's ≤ 1.2 × would be ${apiWorst <= 1.2 ? 'met' : '**not met**'}). The goal's verdict in the first table stays the store's, where the store's own work is all that is timed. The p50 difference the bigger store makes (id / prefix / task) is ${extraUs(r.big, r.small)} at the store and ${extraUs(r.big.api, r.small.api)} through the API, where a lookup's p50 is ${KINDS.map((k) => f(r.big.api.p50[k])).join(' / ')}.

Why the goal is read after the warm-up: the store is read through a memory map (\`storage/sqlite/sizes.ts\`), and the first read of each 4 KiB page by a process costs it a page fault (the page is in the kernel's cache, but not yet mapped into the process). The ${r.small.records.toLocaleString('en-US')}-record store (a ${(r.small.fileBytes / 2 ** 20).toFixed(1)} MiB file, against ${(r.big.fileBytes / 2 ** 20).toFixed(0)} MiB) has every page mapped after its first few lookups whatever is done; the big one, right after opening, pays a fault on most lookups, which measures the first touch rather than the store's size. A server that has run a while has touched its pages (every report reads and writes leaves all over the file), so warm against warm is the comparison that shows what size costs. What remains there is the B-tree's extra levels and the memory hierarchy: more distinct pages per lookup, each more likely to miss the CPU caches and the TLB. A CPU profile of warm task lookups (perf, 2026-12-05, 1,000 against 100,000 records, p50 16 against 25 µs) puts the whole difference in the code that first touches each B-tree page: \`btreeInitPage\`, which reads only the page's header, took about 2.4 µs more per lookup, and the binary search within the pages (\`sqlite3BtreeIndexMoveto\` and its \`memcmp\`) most of the rest; the statements, their plans and the JavaScript around them cost the same at both sizes.

### Snapshot ingest cost per container vs host size

Three curves, one per kind of snapshot the server ingests, each on SQLite (\`replaceSnapshot\`, \`replaceLegacySnapshot\`): **${SNAPSHOT_WORKLOAD_LABELS.steady}** (every full sync of a healthy host: the reconciler sends it only once its outbox is drained, so the server has every change already and the snapshot confirms it), **${SNAPSHOT_WORKLOAD_LABELS.churn}** (new containers created, absent ones → gone: the full sync repairing transitions the server missed, after a restore from backup), and **${SNAPSHOT_WORKLOAD_LABELS.legacy}** (the original agent's \`POST /report/map\`, every report, each entry with a new sample time). One host of each size and kind in one store that also holds ${r.options.snapshotBackground.toLocaleString('en-US')} records of other hosts (the fleet a host reports into; every size meets the same index sizes); all the curves' snapshots interleaved round by round, each curve's repetitions spread evenly over all the rounds, so load from elsewhere and the WAL's growth and checkpoints hit every point alike; each snapshot timed to the end of the event-loop turn after it (the server handles each snapshot as a request of its own); median of the repetitions.

| containers per host | ${SNAPSHOT_WORKLOADS.map((w) => `${SNAPSHOT_WORKLOAD_LABELS[w]}: per container (median per snapshot × repetitions)`).join(' | ')} |
|---|---|---|---|
${curveRows}

| curve | largest / smallest per-container cost (goal: flat within 20 %, ≤ 1.2 ×) | largest / 10-container cost (growth with host size) | what the smallest host's snapshot costs beyond its containers at the largest host's rate |
|---|---|---|---|
${shapeRows}

No curve grows with host size: each falls from its 10-container point and is level from 100 containers on. The 10-container point is the dear one because of what every snapshot pays once, whatever its size, shared among few containers: the transaction's locks and commit, reading the host row and writing it back with the commit of its page, the absentee scan's statement, the turn of the event loop, and above all the CPU caches the snapshot finds cold. Between two snapshots of one host, the other curves' snapshots run, as other hosts' requests do in a server, and leave the caches holding their own pages and code; a 1,000-container snapshot warms them on its first containers, a 10-container one pays for it on a tenth of its work. Measured 2026-12-05 in the same 20,000-record store: a 10-container host confirming its snapshot back to back, nothing run between, cost 13.5 µs per container, what a 1,000-container host costs run the same way (13.2–13.9 µs); sweeping 128 MiB of memory (no SQLite work) before each of its snapshots raised it to 30 µs. For a host that confirms what the server holds (the first curve) the last column's ${smallHostExcessUs(r.snapshots.steady).toFixed(0)} µs per snapshot is that fixed part: the whole gap, as nothing else in a confirming snapshot depends on the host's size. A snapshot that writes adds a second reason: a big host's changes share index leaves within one commit, a small host's do not, so each change writes more WAL frames (in a 20,000-record store, 14.7 frames per change for 10 containers with one replaced, 8.2 for 1,000 with 100 replaced, measured 2026-12-04 by reading the frames' page numbers from the WAL). Statement journals are kept in memory (\`temp_store = MEMORY\`, storage/sqlite/index.ts): in a file, an upsert's journal spilled to disk past 64 KiB, and the original agent's maps cost about a fifth more per container.`;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  await runBenchProgram('bench:growth', process.argv.slice(2), async ({ full }) => {
    const r = await runGrowthBench(growthOptions(full ? 'full' : 'quick'), (l) => console.error(l));
    // The full run gets its own section, so a later quick `npm run bench` does not replace the 1 M figures.
    if (full) writeBenchmarkSection('growth-full', 'Cost growth at full size (1 M records), run alone', growthMarkdown(r));
    else writeBenchmarkSection('growth', 'Cost growth: lookups at 1 M records, snapshot cost per container', growthMarkdown(r));
    console.log(growthMarkdown(r));
  });
}
