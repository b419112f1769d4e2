// The pass-cost benchmark measures in a child process with the daemon's own V8 settings (or on
// Node's defaults), so the ≤ 5 ms goal is held against the settings the daemon ships with.
import { beforeAll, describe, expect, it } from 'vitest';
import { V8_FLAGS } from '../cli/v8-flags.js';
import { ensureBuilt } from '../test/support/built.js';
import { runPassCostIn } from './reconciler.bench.js';

describe('pass cost in a child process', () => {
  beforeAll(() => ensureBuilt(['bench', 'reconciler', 'cli', 'config', 'wire', 'tools']), 300_000);

  it('runs 250 containers with the launcher’s V8 flags set, as the daemon does', async () => {
    const cost = await runPassCostIn('launcher', 3);
    expect(cost.containers).toBe(250);
    expect(cost.passes).toBe(3);
    expect(cost.v8Flags).toEqual(V8_FLAGS.reconciler);
    expect(cost.churnCpuMs.mean).toBeGreaterThan(0);
  }, 60_000);

  it('runs on Node’s defaults when asked, with no flag set', async () => {
    const cost = await runPassCostIn('node-defaults', 3);
    expect(cost.v8Flags).toEqual([]);
    expect(cost.steadyCpuMs.mean).toBeGreaterThan(0);
  }, 60_000);
});
