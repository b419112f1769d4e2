// Fault: Vault down at start, and down across a token renewal while the server runs.
// - At start: `./bin/ecs-id-mapper server` with an unreachable --vault-addr exits non-zero once
//   with one line on stderr, and never listens (its port refuses connections). No crash loop: one
//   exit, nothing left running.
// - At renewal: the server (secrets/ loadSecrets + buildServer, as api/main.ts wires them, with a
//   0.3 s renewal retry so a 6 s lease fits the test) keeps accepting the reconciler's reports with
//   the last good report token while Vault is down: ecs_id_mapper_vault_up 0, failed renewals
//   counted, /health stays 200 with the detail in `x-health-detail`; when Vault returns, the next
//   renewal succeeds (vault_up 1) and the records and history equal the truth.
//   Recovery bound: vault_up back to 1 ≤ 5 s wall after Vault returns.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createConnection } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadServerConfig } from '../../config/index.js';
import { loadSecrets } from '../../secrets/index.js';
import { startVaultStandin } from '../vault-standin.js';
import { GroundTruth, verifyAgainstServer, waitForConvergence } from '../support/ground-truth.js';
import { Api, Cleanups, INSTANCE_ID, churn, metricValue, sleep, startReconciler, startSim } from '../support/fault-rig.js';
import { REPO_ROOT, ensureBuilt } from '../support/built.js';
import { refusedPort } from '../support/loopback.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());
beforeAll(() => ensureBuilt(), 300_000);

const SECRET = { report_token: 'report-faults-1' };
const RECOVERY_MS = 5_000;

function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('Vault down', () => {
  it('at start: the server process exits non-zero with one line and never listens', async () => {
    const vault = await startVaultStandin({ secret: SECRET, staticToken: { token: 'hvs.faults', ttlSeconds: 3600 } });
    const vaultUrl = vault.url;
    await vault.close(); // nothing answers there now
    const port = await refusedPort();
    const child = spawn(process.execPath, [
      join(REPO_ROOT, 'bin/ecs-id-mapper'), 'server', '--host', '127.0.0.1', '--port', String(port), '--store', 'sqlite::memory:',
      '--vault-addr', vaultUrl, '--vault-token', 'hvs.faults', '--vault-secret-path', 'secret/ecs-id-mapper',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.add(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/vault/i);
    expect(lines[0]).toContain(vaultUrl);
    expect(stdout).not.toMatch(/server listening/);
    expect(await refuses(port)).toBe(true);
  });

  it('at renewal: reports keep flowing with the last good token, the condition shows in metrics and /health, Vault recovers', async () => {
    const vault = await startVaultStandin({ secret: SECRET, staticToken: { token: 'hvs.faults', ttlSeconds: 6 } });
    cleanups.add(() => vault.close());
    const config = loadServerConfig([
      '--host', '127.0.0.1', '--port', '0', '--store', 'sqlite::memory:', '--vault-addr', vault.url, '--vault-token', 'hvs.faults',
      '--vault-secret-path', 'secret/ecs-id-mapper', '--vault-refresh-interval', '1s',
    ]);
    const registry = new Registry();
    const secrets = await loadSecrets(config, { registry, retryMs: 300 });
    cleanups.add(() => secrets.close());
    const api = new Api({ backend: 'sqlite', path: join(cleanups.tempDir('faults-db-'), 'mapper.sqlite') }, { registry, reportToken: secrets.reportToken, ...(secrets.health ? { health: secrets.health } : {}) });
    cleanups.add(() => api.stop());
    await api.start();
    const vaultMetric = (name: string, labels?: Record<string, string>) => metricValue(registry, name, labels);

    const sim = await startSim(cleanups);
    const truth = new GroundTruth(INSTANCE_ID);
    truth.observe(sim.state);
    const rec = startReconciler(cleanups, { server: api.url, sim, stateDir: cleanups.tempDir('faults-state-'), truth, token: SECRET.report_token });
    await churn(sim, truth, 3);
    await waitForConvergence(api.url, truth, sim, 10_000);
    expect(await vaultMetric('ecs_id_mapper_vault_up')).toBe(1);

    // Down before the first scheduled renewal (at 2/3 of the 6 s lease) and across it.
    vault.setDown(true);
    await vi.waitFor(async () => expect(await vaultMetric('ecs_id_mapper_vault_operations_total', { operation: 'renew', result: 'error' })).toBeGreaterThan(0), { timeout: 10_000, interval: 100 });
    expect(await vaultMetric('ecs_id_mapper_vault_up')).toBe(0);
    await churn(sim, truth, 4);
    await waitForConvergence(api.url, truth, sim, 10_000); // reports accepted with the last good token
    expect(await rec.metric('ecs_id_mapper_reconciler_report_attempts_total', { kind: 'transitions', result: 'rejected' })).toBe(0);
    const health = await fetch(`${api.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.text()).toBe('All systems go!');
    expect(health.headers.get('x-health-detail')).toMatch(/^vault failing since /);
    const metricsText = await (await fetch(`${api.url}/metrics`)).text();
    expect(metricsText).toMatch(/^ecs_id_mapper_vault_up 0$/m);

    vault.setDown(false);
    const back = Date.now();
    await vi.waitFor(async () => expect(await vaultMetric('ecs_id_mapper_vault_up')).toBe(1), { timeout: RECOVERY_MS, interval: 50 });
    expect(Date.now() - back).toBeLessThan(RECOVERY_MS);
    expect((await fetch(`${api.url}/health`)).headers.get('x-health-detail')).toMatch(/^vault ok/);
    await sleep(50);
    await verifyAgainstServer(api.url, truth, sim);
  });
});
