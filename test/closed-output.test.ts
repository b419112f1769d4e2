// A daemon whose standard output goes away (its log collector died, `server | head`): it stops as
// on SIGTERM, releasing what it holds, and exits 1 so that a supervisor sees a failure. A short
// command (`lookup | head -1`) still ends quietly with its own exit code.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSimulatedHost } from '../tools/simulate-host/index.js';
import { REPO_ROOT, ensureBuilt } from './support/built.js';

const BIN = join(REPO_ROOT, 'bin', 'ecs-id-mapper');
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
beforeAll(() => ensureBuilt(), 300_000);

describe('a closed standard output', () => {
  it('stops the reconciler as SIGTERM would (its state dir lock released) and exits 1', async () => {
    const sim = await startSimulatedHost({
      host: '127.0.0.1', agentPort: 0, imdsPort: 0, controlPort: 0, tasks: 1, containersPerTask: 1,
      churnIntervalMs: 0, cleanupAfterMs: 60_000, cluster: 'sim', instanceId: 'i-0123456789abcdef0', seed: 5,
    });
    const stateDir = mkdtempSync(join(tmpdir(), 'closed-output-'));
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }), () => sim.close());
    const child = spawn(process.execPath, [
      BIN, 'reconciler', '--server', 'http://127.0.0.1:9', '--ecs-agent-url', sim.agentUrl, '--imds-url', sim.imdsUrl, '--docker-socket', 'none',
      '--state-dir', stateDir, '--metrics-host', '127.0.0.1', '--metrics-port', '0', '--resync-interval', '50ms', '--log-level', 'debug',
    ], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => void child.kill('SIGKILL'));
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) => {
      let out = '';
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('"msg":"reconciler started')) resolve();
      });
    });
    expect(existsSync(join(stateDir, 'daemon.lock'))).toBe(true);
    // The reader goes away; the daemon's next log line (every pass at debug) meets EPIPE.
    child.stdout!.destroy();
    expect(await exited).toBe(1);
    expect(stderr).toContain('ecs-id-mapper: standard output was closed; stopping');
    expect(existsSync(join(stateDir, 'daemon.lock'))).toBe(false);
  }, 30_000);
});
