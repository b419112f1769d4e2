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
//    as a curve: each host re-sends its snapshot with 10 % of its containers replaced, as a
//    reconciler's periodic full sync does on a churning host.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openStore } from '../storage/index.js';
import type { Store } from '../storage/store.js';
import { containerId, hostIdentity, instanceId, observation, taskArn, taskId } from '../storage/store.fixtures.js';
import type { SnapshotContainer, Transition } from '../wire/index.js';
import { percentile } from '../tools/fleet-sim/index.js';
import { runBenchProgram, writeBenchmarkSection } from './report.js';

export interface GrowthOptions {
  /** Records in the big store (1,000,000 in full mode). */
  bigRecords: number;
  smallRecords: number;
  /** Lookups per kind per store. */
  lookups: number;
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

export interface GrowthResult {
  options: GrowthOptions;
  /** The lookup curve, smallest store first: small is its first point, big its last. */
  lookups: LookupFigures[];
  small: LookupFigures;
  big: LookupFigures;
  snapshots: SnapshotPoint[];
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
    return sizes.map((records, i) => ({
      records,
      seedSeconds: seedSeconds[i],
      ...figuresOf(warm[i]),
      cold: figuresOf(cold[i]),
      warmSeconds: warmSeconds[i],
      fileBytes: statSync(paths[i]).size,
    }));
  } finally {
    for (const { store } of stores) await store.close();
  }
}

export async function runSnapshotCurve(options: GrowthOptions, dir: string): Promise<SnapshotPoint[]> {
  // One store holding a fleet's records (options.snapshotBackground, other hosts') and one host of
  // each size: a host reports into a store shared with the rest of the fleet, and every size meets
  // the same index sizes. (A fresh small file per size let a big host's new rows share index pages
  // with each other, which a fleet-sized index does not; that made big hosts look cheaper per
  // container than they are.) The measured snapshots of all sizes are interleaved round by round,
  // each size's repetitions spread evenly over all the rounds (a big host has fewer of them), so
  // load from elsewhere on the machine, and the WAL's growth and checkpoints, hit every point of
  // the curve alike. (Run back to back, a 1,000-container host's 20 snapshots all came in the first
  // 20 of 2,000 rounds, and most 10-container snapshots ran after every other size had finished.)
  const store = await openStore({ backend: 'sqlite', path: join(dir, 'snapshots.db') });
  try {
    await seed(store, options.snapshotBackground);
    const curves = [];
    for (const size of options.snapshotSizes) {
      const host = hostIdentity({ instance_id: instanceId(`snap-${size}`) });
      let born = 0;
      const make = (): SnapshotContainer => {
        const id = containerId(`snap-${size}/${born++}`);
        return { ...observation({ container_id: id, task_arn: taskArn(taskId(id)) }), state: 'running' };
      };
      const containers = Array.from({ length: size }, make);
      const curve = { size, host, make, containers, seq: 1, reps: Math.max(5, Math.round(options.snapshotWork / size)), done: 0, times: [] as number[] };
      curves.push(curve);
      await store.replaceSnapshot({ host, seq: 1, taken_at: new Date().toISOString(), containers }, new Date());
    }
    const rounds = Math.max(...curves.map((c) => c.reps));
    for (let r = 0; r < rounds; r++) {
      for (const c of curves) {
        // The curve's repetitions due by the end of this round, spread evenly over all the rounds.
        if (c.done >= Math.floor(((r + 1) * c.reps) / rounds)) continue;
        // 10 % of the containers replaced: they go (absent), new ones appear.
        const replace = Math.max(1, Math.round(c.size / 10));
        for (let k = 0; k < replace; k++) c.containers[(c.done * replace + k) % c.size] = c.make();
        c.done++;
        const snap = { host: c.host, seq: ++c.seq, taken_at: new Date().toISOString(), containers: c.containers };
        // Timed to the end of the event-loop turn after it: the server handles each snapshot as a
        // request of its own, and whatever the store does between requests is part of what a
        // snapshot costs. (A design that checkpointed the WAL between requests was measured this
        // way: docs/architecture.md.)
        const t = performance.now();
        await store.replaceSnapshot(snap, new Date());
        await new Promise((resolve) => setImmediate(resolve));
        c.times.push(performance.now() - t);
      }
    }
    return curves.map((c) => {
      const medianMs = percentile(c.times, 50);
      return { containers: c.size, reps: c.reps, medianMs, perContainerUs: (medianMs * 1000) / c.size };
    });
  } finally {
    await store.close();
  }
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
  if (size === 'tiny') return { bigRecords: 2000, smallRecords: 100, lookups: 50, snapshotSizes: [10, 30], snapshotWork: 100, snapshotBackground: 1000 };
  if (size === 'quick') return { bigRecords: 100_000, smallRecords: 1000, lookups: 30_000, snapshotSizes, snapshotWork: 20_000, snapshotBackground: 20_000 };
  return { bigRecords: 1_000_000, smallRecords: 1000, lookups: 100_000, snapshotSizes, snapshotWork: 60_000, snapshotBackground: 100_000 };
}

/** Two decimals, or three where two would hide which side of the 1.2 × goal a ratio is on (1.204 is not 1.20). */
function ratioText(x: number): string {
  return x.toFixed(2) === '1.20' && x !== 1.2 ? x.toFixed(3) : x.toFixed(2);
}

/** Least-squares time = fixed + marginal × containers over the curve's points. */
export function linearFit(points: SnapshotPoint[]): { fixedMs: number; marginalUs: number } {
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.containers, 0) / n;
  const my = points.reduce((a, p) => a + p.medianMs, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.containers - mx) * (p.medianMs - my);
    den += (p.containers - mx) ** 2;
  }
  const slope = den === 0 ? 0 : num / den;
  return { fixedMs: my - slope * mx, marginalUs: slope * 1000 };
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
  const per = r.snapshots.map((p) => p.perContainerUs);
  const spread = Math.max(...per) / Math.min(...per);
  const growth = Math.max(...per) / per[0];
  const fit = linearFit(r.snapshots);
  const curve = r.snapshots.map((p) => `| ${p.containers} | ${p.reps} | ${p.medianMs.toFixed(2)} ms | ${p.perContainerUs.toFixed(1)} µs |`).join('\n');
  return `### Lookup p99 with many records vs few

Store-level lookups (\`getContainer\`, \`findByTask\`) on SQLite files (WAL) seeded through \`applyTransitions\` in batches of 1,000 (${r.big.records.toLocaleString('en-US')} records seeded in ${r.big.seedSeconds.toFixed(1)} s), then opened again, as a restarted server opens its store. ${r.options.lookups.toLocaleString('en-US')} lookups per kind per store, in 50 slices alternating between the stores, twice: right after opening (the last column), then, after every record and every task had been looked up once (${r.big.warmSeconds.toFixed(1)} s for the big store), on another sample of ids (the goal's columns).${quickNote} The baseline is the ${r.small.records.toLocaleString('en-US')}-record store measured in the same run.

| lookup by | ${r.big.records.toLocaleString('en-US')} records p50 / p99 | ${r.small.records.toLocaleString('en-US')} records p50 / p99 (baseline) | p99 ratio | goal | right after opening: ${r.big.records.toLocaleString('en-US')} against ${r.small.records.toLocaleString('en-US')} records, p50 / p99 |
|---|---|---|---|---|---|
${lookupRows}

The curve: every store size measured in the same slices (warm, except the last column).

| records | store file | by full id p50 / p99 | by 12-hex prefix p50 / p99 | by task ARN p50 / p99 | p99 against ${base.records.toLocaleString('en-US')} records (id / prefix / task) | right after opening (id / prefix / task) |
|---|---|---|---|---|---|---|
${lookupCurve}

Why the goal is read after the warm-up: the store is read through a memory map (\`storage/sqlite/sizes.ts\`), and the first read of each 4 KiB page by a process costs it a page fault (the page is in the kernel's cache, but not yet mapped into the process). The ${r.small.records.toLocaleString('en-US')}-record store (a ${(r.small.fileBytes / 2 ** 20).toFixed(1)} MiB file, against ${(r.big.fileBytes / 2 ** 20).toFixed(0)} MiB) has every page mapped after its first few lookups whatever is done; the big one, right after opening, pays a fault on most lookups, which measures the first touch rather than the store's size. A server that has run a while has touched its pages (every report reads and writes leaves all over the file), so warm against warm is the comparison that shows what size costs. What remains there is the B-tree's extra levels and the memory hierarchy: more distinct pages per lookup, each more likely to miss the CPU caches and the TLB.

### Snapshot ingest cost per container vs host size

\`replaceSnapshot\` on SQLite, one host of each size in one store that also holds ${r.options.snapshotBackground.toLocaleString('en-US')} records of other hosts (the fleet a host reports into; every size meets the same index sizes), the sizes' snapshots interleaved round by round, each size's repetitions spread evenly over all the rounds, so load from elsewhere and the WAL's growth and checkpoints hit every point alike; 10 % of the host's containers replaced each time (new ones created, absent ones → gone), the rest unchanged; each snapshot timed to the end of the event-loop turn after it (the server handles each snapshot as a request of its own); median of the repetitions.

| containers per host | repetitions | median per snapshot | per container |
|---|---|---|---|
${curve}

Largest / smallest per-container cost over the curve: ${ratioText(spread)} × (goal: flat within 20 %, i.e. ≤ 1.2 × — ${ok(spread <= 1.2)}). Growth with host size — the largest per-container cost against the smallest host's: ${growth.toFixed(2)} × (${growth <= 1.2 ? 'no growth beyond 20 %' : '**grows**'}). Least-squares fit of time = fixed + marginal × containers: fixed ${fit.fixedMs.toFixed(2)} ms per snapshot, marginal ${fit.marginalUs.toFixed(1)} µs per container. Small hosts cost more per container for two reasons: a snapshot has fixed costs (one transaction and its commit, the host row, the absentee scan's statement, SQLite's truncation of its page cache at the end of most commits: \`storage/sqlite/sizes.ts\`) shared among few containers, and a big host's changes share index leaves within one commit, so each change writes fewer WAL frames (16 against 28 in a 20,000-record store: docs/architecture.md). Both make the cost per container fall with host size; it could only rise if some per-container work grew with it.`;
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
