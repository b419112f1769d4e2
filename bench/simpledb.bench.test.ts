// The SimpleDB cost benchmark, run small: its counts are exact, so the goals can be asserted.
import { describe, expect, it } from 'vitest';
import { runSimpleDbBench } from './simpledb.bench.js';

describe('SimpleDB cost benchmark', () => {
  it('needs at most a tenth of the original design\'s requests per transition and answers ≥ 95 % of repeated lookups from the cache', async () => {
    const r = await runSimpleDbBench(50, 1000);
    expect(r.baselinePerChange).toBe(50);
    expect(r.perTransitionSingle / r.baselinePerChange).toBeLessThanOrEqual(0.1);
    expect(r.perTransitionBatched).toBeLessThan(r.perTransitionSingle);
    expect(r.lookupsWithoutRequest / r.lookups).toBeGreaterThanOrEqual(0.95);
  });
});
