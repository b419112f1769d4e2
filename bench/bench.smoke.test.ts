// Every benchmark function run with minuscule sizes: each produces the figures and the markdown
// rows its section promises. No timing is asserted (benchmarks are separate programs); the fleet
// run's correctness figures are exact, so they are.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryBreakdown } from '../tools/fleet-sim/children.js';
import { runFleetSim, rssSlope } from '../tools/fleet-sim/index.js';
import { apiBenchMarkdown, type ApiBenchResult } from './api.bench.js';
import { fleetMarkdown, fleetOptions, soakSamplesLine } from './fleet.bench.js';
import { growthMarkdown, growthOptions, runGrowthBench } from './growth.bench.js';
import { timeApiLookups } from './growth-api.js';
import { openStore } from '../storage/index.js';
import { containerId, taskArn, taskId } from '../storage/store.fixtures.js';
import { goalRows, quickModeRow, summaryMarkdown } from './index.js';
import { reconcilerMarkdown, runPassCost, runSoak, runStartToQueryable, SOAK_VARIANTS, troughSlope } from './reconciler.bench.js';
import { writeBenchmarkSection } from './report.js';

const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-bench-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fleet simulator', () => {
  it('reports a tiny fleet through a server child process and finds every transition exactly once', async () => {
    const r = await runFleetSim(fleetOptions('sqlite', 'tiny'));
    expect(r.verification).toMatchObject({ lost: 0, duplicated: 0, wrongRecords: 0, wrongHistory: 0, snapshotHistory: 0 });
    // 4 hosts × 5 containers start (2 transitions each), then 2 + 2 rounds replacing 2 containers (5 each)
    expect(r.verification.transitionsExpected).toBe(4 * 5 * 2 + 4 * 4 * 2 * 5);
    expect(r.initial.transitions + r.max.transitions + r.paced.transitions).toBe(r.verification.transitionsExpected);
    expect(r.rss.length).toBeGreaterThan(0);
    // The server's RSS is split by kind, and on SQLite the store's mapped file is found in it.
    const last = r.rss[r.rss.length - 1];
    expect(last.anonBytes + last.fileBytes).toBe(last.bytes);
    expect(last.storeMappedBytes).toBeGreaterThan(0);
    expect(last.storeMappedBytes).toBeLessThanOrEqual(last.fileBytes);
    const md = fleetMarkdown([r], false);
    expect(md).toMatch(/\| server RSS at the end, by kind \| anonymous \d+ MiB .*of which the store's memory-mapped file \d+ MiB/);
    expect(soakSamplesLine(r)).toMatch(/^RSS samples \(s → MiB \(anonymous \/ store file mapped\)\): 0→\d+ \(\d+ \/ \d+\)/);
    expect(md).toContain('| lost / duplicated transitions, wrong records / history entries | 0 / 0 / 0 / 0');
    expect(md).toContain('churn, max rate');
    // The simulator's own stalls are reported beside the latencies they inflate.
    // A phase shorter than the delay monitor's 10 ms resolution observes nothing (0 / 0).
    const phases = [r.initial, r.max, r.paced];
    for (const phase of phases) {
      expect(phase.simulatorDelayMaxMs).toBeGreaterThanOrEqual(phase.simulatorDelayP99Ms);
      expect(phase.simulatorDelayP99Ms).toBeGreaterThanOrEqual(0);
    }
    expect(Math.max(...phases.map((p) => p.simulatorDelayP99Ms))).toBeGreaterThan(0);
    expect(md).toContain("simulator's own event-loop delay p99 / max");
  }, 120_000);

  it('reads no memory of a process that is gone', () => {
    expect(memoryBreakdown(2 ** 22 + 1)).toBeNull();
  });

  it('fits the RSS slope in MiB per hour', () => {
    expect(rssSlope([{ atSeconds: 0, bytes: 0 }, { atSeconds: 3600, bytes: 2 ** 20 }])).toBeCloseTo(1);
    expect(rssSlope([{ atSeconds: 0, bytes: 5 }])).toBe(0);
  });
});

describe('reconciler soak growth', () => {
  const MiB = 2 ** 20;
  // A heap that saws from 9 MiB to 9 + `amplitude` with a full collection every 6 minutes, RSS 52 MiB higher...
  const sawtooth = (minutes: number, troughRiseMiBPerHour: number, amplitude = 7) =>
    Array.from({ length: minutes }, (_, i) => {
      const minute = 30 + i;
      const heap = (9 + ((i % 6) * amplitude) / 5 + (troughRiseMiBPerHour * minute) / 60) * MiB;
      return { minute, rssBytes: heap + 52 * MiB, anonBytes: heap + 10 * MiB, heapUsedBytes: heap, majorCollections: 3 + Math.floor(i / 6) };
    });

  it('reads no growth from a sawtooth whose troughs stay level, whatever phase the hour ends on', () => {
    for (const minutes of [28, 30, 32]) expect(Math.abs(troughSlope(sawtooth(minutes, 0)))).toBeLessThan(0.01);
    // ...which a fit through every sample would read as growth or shrinkage.
    const all = (xs: ReturnType<typeof sawtooth>) => rssSlope(xs.map((x) => ({ atSeconds: x.minute * 60, bytes: x.rssBytes })));
    expect(Math.abs(all(sawtooth(28, 0)))).toBeGreaterThan(1);
  });

  it('reads a leak from troughs that rise', () => {
    expect(troughSlope(sawtooth(30, 4))).toBeCloseTo(4, 1);
  });

  it("finds the cycles of the heap ceiling's shallow sawtooth from the collections scraped, not from the size of the drop", () => {
    // 9 → 11.4 MiB: each collection frees a fifth of the heap.
    expect(Math.abs(troughSlope(sawtooth(28, 0, 2.4)))).toBeLessThan(0.01);
    expect(troughSlope(sawtooth(30, 4, 2.4))).toBeCloseTo(4, 1);
  });
});

describe('cost growth', () => {
  it('measures lookups on both stores and one snapshot point per host size', async () => {
    const r = await runGrowthBench(growthOptions('tiny'));
    expect(r.big.records).toBe(2000);
    expect(r.small.records).toBe(100);
    expect(r.lookups.map((p) => p.records)).toEqual([100, 1000, 2000]);
    for (const w of ['steady', 'churn', 'legacy'] as const) expect(r.snapshots[w].map((p) => p.containers)).toEqual([10, 30]);
    const md = growthMarkdown(r);
    expect(md).toContain('| full container id |');
    expect(md).toContain('| 30 |');
    expect(md).toContain('Quick mode: 2,000 records, not 1 M');
    expect(md).toContain('right after opening');
    expect(md).toContain('| 1,000 | ');
    expect(r.big.cold.p99.full_id).toBeGreaterThan(0);
    expect(r.big.fileBytes).toBeGreaterThan(r.small.fileBytes);
    const row = goalRows({ growth: r }).find((x) => x.figure === 'lookup p99 by full id, 2,000 records (warm)');
    const differenceUs = Math.round((r.big.p99.full_id - r.small.p99.full_id) * 1000);
    expect(row?.value).toContain(`${differenceUs < 0 ? '−' : '+'}${Math.abs(differenceUs)} µs)`);
    // Through the API too, every size of the curve, and the ratio beside the store's.
    for (const p of r.lookups) for (const k of ['full_id', 'prefix', 'task'] as const) expect(p.api.p99[k]).toBeGreaterThanOrEqual(p.api.p50[k]);
    expect(r.big.api.p50.task).toBeGreaterThan(0);
    expect(md).toContain('GET /v2/lookup/<id>');
    expect(row?.value).toContain(`through the API ${(r.big.api.p99.full_id / r.small.api.p99.full_id).toFixed(2)} ×`);
  }, 60_000);

  it('fails the API lookups when an answer does not hold the record looked up', async () => {
    const store = await openStore({ backend: 'sqlite', path: ':memory:' });
    try {
      const missing = { id: containerId('never-seeded'), task: taskArn(taskId('never-seeded')) };
      await expect(timeApiLookups([store], [[missing]], 1)).rejects.toThrow(/GET \/v2\/lookup\/[0-9a-f]{64} answered 404/);
    } finally {
      await store.close();
    }
  });
});

describe('reconciler benchmarks', () => {
  it('times passes over 250 containers, soaks briefly and measures start → queryable with and without events', async () => {
    const pass = await runPassCost(3);
    expect(pass.containers).toBe(250);
    const soak = await runSoak(SOAK_VARIANTS[0], { simulatedHours: 0.05, passSeconds: 10, realPassMs: 100, tasks: 10, containersPerTask: 2 });
    expect(soak.shipped).toBe(true);
    expect(soak.hours).toBe(0.05);
    expect(soak.result.samples.length).toBe(3);
    expect(soak.result.passes).toBeGreaterThan(5);
    expect(soak.result.transitions).toBeGreaterThan(0);
    expect(soak.result.samples[0].rssBytes).toBeGreaterThan(0);
    expect(soak.result.samples[0].anonBytes).toBeGreaterThan(0);
    expect(soak.result.samples[0].anonBytes).toBeLessThan(soak.result.samples[0].rssBytes);
    const withEvents = await runStartToQueryable(true, 2000, 2, 100);
    const without = await runStartToQueryable(false, 500, 2, 100);
    expect(withEvents.samples).toBe(2);
    const md = reconcilerMarkdown({ pass, soak: [soak], queryable: [withEvents, without] });
    expect(md).toContain('| steady (nothing changed) |');
    expect(md).toContain('| 0.05 hours: ');
    expect(md).toContain('| with Docker events');
    expect(md).toContain('| without events (polling only)');
    const rows = goalRows({ reconciler: { pass, soak: [soak], queryable: [withEvents, without] } });
    expect(rows.map((r) => r.figure)).toContain('start → queryable p95 with Docker events');
    expect(summaryMarkdown(rows, 'quick', 1, [])).toMatch(/goals met/);
    expect([quickModeRow(300).met, quickModeRow(301).met]).toEqual([true, false]);
  }, 120_000);
});

describe('API benchmark report', () => {
  it("shows each latency round's p99 with the stalls the machine had in it, and the generator's busy share and lateness", () => {
    const stall = (stalls: number, maxMs: number) => ({ stalls, maxMs, totalMs: stalls * maxMs });
    const r: ApiBenchResult = {
      records: 10_000, paths: 500, bareRps: 30_000, lookupRps: 24_000, uncachedLookupRps: 12_000, ratio: 0.8, roundRatios: [0.8, 0.8],
      bareCpuUsPerRequest: 30, lookupCpuUsPerRequest: 37.5, uncachedCpuUsPerRequest: 80,
      bareP99AtHalfMs: 4, lookupP99AtHalfMs: 4.5, lookupP50AtHalfMs: 1.2, bareP50AtHalfMs: 0.9, releaseLateP99sMs: [0.4, 1.25, 0.6, 0.5], bareRoundP99sMs: [4, 9], lookupRoundP99sMs: [4.5, 12],
      bareRoundStalls: [stall(0, 0), stall(2, 8.25)], lookupRoundStalls: [stall(1, 6), stall(3, 11)], generatorBusy: [0.21, 0.34, 0.25, 0.3],
      loadAtStart: 1, loadAtEnd: 1,
    };
    const md = apiBenchMarkdown(r, true);
    expect(md).toContain('lookup: 4.50 ms [1 stalls, max 6.0 ms], 12.00 ms [3 stalls, max 11.0 ms]');
    expect(md).toContain('bare: 4.00 ms [0 stalls], 9.00 ms [2 stalls, max 8.3 ms]');
    expect(md).toContain('busy 21 %–34 % of each round and released its requests a p99 of 0.40–1.25 ms after their scheduled start');
    expect(md).toContain('| 4.50 ms (p50 1.20 ms; worst round 12.00 ms) | 4.00 ms (p50 0.90 ms; worst round 9.00 ms) |');
    expect(md).toContain('≤ 5 ms — met');
    expect(md).toContain('≥ 0.80 × — met');
    expect(md).toContain('| server CPU per request at max rate (all rounds) | 37.5 µs | 30.0 µs | bare / lookup: 0.80 × |');
  });
});

describe('report writer', () => {
  it('puts a section marked first before the others and replaces sections in place', () => {
    const file = pathToFileURL(join(dir, 'benchmarks.md'));
    writeBenchmarkSection('a', 'A', 'one', file);
    writeBenchmarkSection('summary', 'S', 'sum', file, { first: true });
    writeBenchmarkSection('a', 'A', 'two', file);
    const text = readFileSync(file, 'utf8');
    expect(text.indexOf('<!-- bench:summary -->')).toBeLessThan(text.indexOf('<!-- bench:a -->'));
    expect(text).toContain('two');
    expect(text).not.toContain('one\n');
  });
});
