// The capacity table's verdicts, from made-up soak results (the benchmark itself runs for minutes).
import { describe, expect, it } from 'vitest';
import { capacityMarkdown, verdict, type CapacityPoint } from './capacity.bench.js';
import type { SoakResult } from './reconciler-soak.js';

function point(containers: number, cpuMsPerPass: number, majorFaults: number, extra: Partial<SoakResult> = {}): CapacityPoint {
  const result = {
    passes: 18, transitions: 18, samples: [{ minute: 1, rssBytes: 50 << 20, anonBytes: 20 << 20, heapUsedBytes: 10 << 20, majorCollections: 1 }],
    rssAfterFirstPass: 50 << 20, cpuMsPerPass, wallSeconds: 40, argv: [], heapAtEnd: { spaces: {}, externalBytes: 0 }, heapCollections: 0, majorFaults,
    cgroup: { limitBytes: 64 << 20, maxUsageBytes: 64 << 20, limitHits: 10, oomKills: 0 }, ...extra,
  } as SoakResult;
  return { containers, result };
}

describe('reconciler capacity benchmark', () => {
  it('tells a host that runs from one that thrashes or is killed, against the 250-container baseline', () => {
    expect(verdict(point(4000, 80, 6), 10)).toBe('runs');
    expect(verdict(point(5000, 2500, 0), 10)).toBe('thrashes');
    expect(verdict(point(5000, 60, 18 * 51), 10)).toBe('thrashes');
    expect(verdict(point(8000, 60, 0, { exited: 'OOM-killed' }), 10)).toBe('killed');
    expect(verdict({ containers: 8000, error: 'read ECONNRESET' }, 10)).toBe('killed');
  });

  it('names the largest host that runs within the limit, and says how each point ended', () => {
    const md = capacityMarkdown([point(250, 10, 0), point(2000, 40, 0), point(4000, 80, 6), point(5000, 2500, 9000), { containers: 6000, error: 'read ECONNRESET' }]);
    expect(md).toContain('Largest host that runs within the limit in this run: **4,000 containers**');
    expect(md).toMatch(/\| 250 \(baseline\) \| 18 \| 10\.0 ms \(1\.0 ×\) \|.*\| runs \|/);
    expect(md).toMatch(/\| 5,000 \|.*\| thrashes \|/);
    expect(md).toContain('| 6,000 | | | | | | killed: read ECONNRESET |');
  });
});
