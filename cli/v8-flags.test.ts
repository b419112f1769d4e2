import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, REPO_ROOT } from '../test/support/built.js';
import { reply, startLoopback, type LoopbackServer } from '../test/support/loopback.js';
import { V8_FLAGS, v8FlagsFor } from './v8-flags.js';

describe('the launcher’s V8 settings', () => {
  it('are set for the reconciler only', () => {
    expect(v8FlagsFor('reconciler', [])).toEqual(V8_FLAGS.reconciler);
    expect(V8_FLAGS.reconciler!.length).toBeGreaterThan(0);
    for (const command of ['server', 'simulate-host', 'simpledb-local', 'lookup', 'demo'] as const) expect(v8FlagsFor(command, [])).toEqual([]);
  });

  it('leave a flag the operator gave on the node command line alone', () => {
    expect(v8FlagsFor('reconciler', ['--semi-space-growth-factor=4'])).not.toContain('--semi-space-growth-factor=1');
    expect(v8FlagsFor('reconciler', ['--semi_space_growth_factor=4'])).not.toContain('--semi-space-growth-factor=1');
  });

  it('keep the young generation at its initial size in a process that allocates a lot', async () => {
    const churn = `const keep = []; for (let i = 0; i < 2e6; i++) { keep.push({ i }); if (keep.length > 5e4) keep.length = 0; }`;
    const newSpace = `console.log(require('node:v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size)`;
    const run = async (pre: string) => Number((await promisify(execFile)(process.execPath, ['-e', `${pre}; ${churn}; ${newSpace}`])).stdout.trim());
    const flags = JSON.stringify(V8_FLAGS.reconciler);
    const withFlags = await run(`for (const f of ${flags}) require('node:v8').setFlagsFromString(f)`);
    const without = await run('');
    expect(withFlags).toBeLessThanOrEqual(2 * 2 ** 20);
    expect(without).toBeGreaterThan(withFlags);
  });

  it('keep a hot function out of TurboFan when set at run time, as the launcher sets them', async () => {
    // %GetOptimizationStatus bits (V8's runtime-test): 16 = optimized, 64 = TurboFan code.
    const probe = (flags: readonly string[]) => `const v8 = require('node:v8');
      for (const f of ${JSON.stringify(flags)}) v8.setFlagsFromString(f);
      v8.setFlagsFromString('--allow-natives-syntax');
      const status = new Function('f', 'return %GetOptimizationStatus(f)');
      function hot(n) { let s = 0; for (let i = 0; i < n; i++) s += i % 7; return s; }
      for (let i = 0; i < 20000; i++) hot(100);
      console.log(status(hot));`;
    const run = async (flags: readonly string[]) => Number((await promisify(execFile)(process.execPath, ['-e', probe(flags)])).stdout.trim());
    expect((await run([])) & 64).toBe(64);
    expect((await run(V8_FLAGS.reconciler!)) & (16 | 64)).toBe(0);
  });

  describe('with the daemon’s HTTP client', () => {
    let server: LoopbackServer | undefined;
    beforeAll(() => ensureBuilt(['reconciler', 'wire', 'cli', 'config']), 300_000);
    afterEach(async () => {
      await server?.close();
      server = undefined;
    });

    // undici parses HTTP with llhttp compiled to WebAssembly: a flag that removed WebAssembly
    // (--jitless, --lite-mode) would make every observation and report fail.
    it('keep WebAssembly, so undici still parses responses after 2,000 requests (well past any tier-up)', async () => {
      server = await startLoopback((req, res) => reply(res, 200, JSON.stringify({ path: req.url }), 'application/json'));
      const flags = JSON.stringify(V8_FLAGS.reconciler);
      const code = `import { setFlagsFromString } from 'node:v8';
        for (const f of ${flags}) setFlagsFromString(f);
        const { request } = await import('./dist/reconciler/undici.js');
        let last;
        for (let i = 0; i < 2000; i++) last = await (await request(${JSON.stringify(new URL('/v1/tasks', server.url).href)} + '?i=' + i)).body.json();
        console.log(JSON.stringify({ wasm: typeof WebAssembly, last }));`;
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', code], { cwd: REPO_ROOT });
      expect(JSON.parse(stdout)).toEqual({ wasm: 'object', last: { path: '/v1/tasks?i=1999' } });
    }, 60_000);
  });
});
