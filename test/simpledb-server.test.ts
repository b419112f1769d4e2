// The server started with a simpledb:// store (the local SimpleDB-compatible endpoint) and its AWS
// keys and report token from Vault (the loopback stand-in): every route answers, report auth follows
// a rotated token without a restart, and an unusable Vault stops the server before it listens.
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runServer } from '../api/main.js';
import { agentEntry, agentKey, agentMap } from '../api/test-helpers.js';
import { loadServerConfig } from '../config/index.js';
import { startSimpleDbLocal, type SimpleDbLocal } from '../storage/simpledb/local/index.js';
import { batch, containerId, hostIdentity, snapshot, snapshotContainer, taskArn, taskId, transition } from '../storage/store.fixtures.js';
import { startVaultStandin, type VaultStandin } from './vault-standin.js';

const KEY = { accessKeyId: 'AKIDSERVERTEST', secretAccessKey: 'server/test+secret' };
const SECRET = { aws_access_key_id: KEY.accessKeyId, aws_secret_access_key: KEY.secretAccessKey, report_token: 'report-1' };

let local: SimpleDbLocal;
let vault: VaultStandin;
let base: string;
let stop: AbortController;
let running: Promise<void>;

function argv(vaultAddr = vault.url): string[] {
  return [
    '--host', '127.0.0.1',
    '--port', '0',
    '--store', `simpledb://us-east-1?prefix=srv&shards=2&create_domains=true&endpoint=${encodeURIComponent(local.url)}`,
    '--vault-addr', vaultAddr,
    '--vault-token', 'hvs.server',
    '--vault-secret-path', 'secret/ecs-id-mapper',
    '--vault-refresh-interval', '1s',
    '--purge-interval', '1h',
  ];
}

beforeAll(async () => {
  local = await startSimpleDbLocal({ ...KEY });
  vault = await startVaultStandin({ secret: SECRET, staticToken: { token: 'hvs.server', ttlSeconds: 3600 } });
  const logs = new PassThrough();
  const listening = new Promise<string>((resolve) => {
    let buffered = '';
    logs.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const m = /server listening on (http:\/\/[^"\s]+)/.exec(buffered);
      if (m) resolve(m[1]);
    });
  });
  stop = new AbortController();
  running = runServer(loadServerConfig(argv()), { signal: stop.signal, logStream: logs });
  base = await Promise.race([listening, running.then(() => Promise.reject(new Error('server stopped before listening')))]);
});

afterAll(async () => {
  stop?.abort();
  await running?.catch(() => {});
  await vault?.close();
  await local?.close();
});

const host = hostIdentity();
const c1 = containerId('server-1');
const c2 = containerId('server-2');
const legacyC = containerId('server-legacy');
const tid = taskId(c1);

async function call(method: string, path: string, body?: unknown, token: string | null = 'report-1') {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), redirect: 'manual' });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

describe('server over SimpleDB with secrets from Vault', () => {
  it('accepts v2 and legacy reports with the report token from Vault, and refuses others', async () => {
    expect((await call('POST', `/v2/hosts/${host.instance_id}/transitions`, batch(host, [transition(1, 'running', { container: { container_id: c1 } })]), null)).status).toBe(401);
    const t = await call('POST', `/v2/hosts/${host.instance_id}/transitions`, batch(host, [transition(1, 'running', { container: { container_id: c1 } })]));
    expect(t.status).toBe(200);
    expect(t.json()).toEqual({ applied: 1, duplicates: 0, conflicts: 0, acked_seq: 1 });
    const s = await call('PUT', `/v2/hosts/${host.instance_id}/snapshot`, snapshot(host, 1, [snapshotContainer('running', { container_id: c1 }), snapshotContainer('pending', { container_id: c2 })]));
    expect(s.status).toBe(200);
    expect(s.json()).toEqual({ upserted: 1, gone: 0, skipped: 0 });
    const entry = agentEntry({ container_id: legacyC, task_id: `prod/${taskId('legacy')}`, instance_id: 'i-0fedcba9876543210' });
    const map = await call('POST', '/report/map', agentMap([entry]));
    expect([map.status, map.text]).toEqual([200, 'true']);
    const ev = await call('POST', '/report/event', { event_id: agentKey(entry), event: 'added', timestamp: 1767226000.5 });
    expect(ev.status).toBe(200);
  });

  it('answers every read route from the SimpleDB store', async () => {
    expect((await call('GET', `/query/container_id/${c1}`)).text).toContain(tid);
    const lookup = await call('GET', `/v2/lookup/${c1.slice(0, 12)}`);
    expect(lookup.status).toBe(200);
    expect(lookup.json()).toMatchObject({ kind: 'container_prefix', containers: [expect.objectContaining({ container_id: c1, state: 'running' })] });
    const byArn = await call('GET', `/v2/lookup/${encodeURIComponent(taskArn(tid))}`);
    expect(byArn.json()).toMatchObject({ kind: 'task_arn', containers: [expect.objectContaining({ container_id: c1 })] });
    expect((await call('GET', `/v2/lookup/${'0'.repeat(64)}`)).status).toBe(404);
    const list = await call('GET', '/v2/containers?limit=2');
    expect(list.status).toBe(200);
    expect((list.json().items as unknown[]).length).toBe(2);
    expect(list.json().next_cursor).not.toBeNull();
    const history = await call('GET', `/v2/containers/${c1}/history`);
    expect(history.json()).toMatchObject({ container_id: c1, history: [expect.objectContaining({ seq: 1, to: 'running' })] });
    await vi.waitFor(async () => {
      const hosts = await call('GET', '/v2/hosts');
      expect((hosts.json().hosts as Array<{ instance_id: string }>).map((h) => h.instance_id).sort()).toEqual(['i-0fedcba9876543210', host.instance_id].sort());
    }, { timeout: 5000, interval: 100 });
    for (const path of [
      `/query/container_id/${c1}`,
      `/query/container_id/${c1}/_all`,
      `/query/container_id/${c1}/urls`,
      `/query/container_id/${c1}/cadvisor`,
      `/query/task_id/${tid}`,
      `/query/task_id/${tid}/_all`,
      `/query/task_id/${tid}/cadvisor`,
    ]) {
      const res = await call('GET', path);
      expect(res.status, path).toBe(200);
      expect(res.text.length, path).toBeGreaterThan(0);
    }
    expect((await call('GET', '/health')).status).toBe(200);
    const metrics = await call('GET', '/metrics');
    expect(metrics.text).toMatch(/^ecs_id_mapper_simpledb_requests_total\{action="PutAttributes",code="ok"\} [1-9]/m);
    expect(metrics.text).toMatch(/^ecs_id_mapper_vault_up 1$/m);
    expect(metrics.text).toMatch(/ecs_id_mapper_storage_operation_duration_seconds_count\{backend="simpledb",operation="getContainer",result="ok"\} [1-9]/);
  });

  it("answers GET /v2/hosts/<id> with the host's last seq as of its last acknowledged batch, though SimpleDB's other reads lag", async () => {
    // What a daemon on a new state dir asks before numbering its transitions: a stale last_seq made
    // the server drop the first of them as replays.
    const other = hostIdentity({ instance_id: 'i-0aaaabbbbccccdddd' });
    local.setFaults({ staleReads: true, staleWindowMs: 5000 });
    try {
      for (const seq of [1, 2, 3]) {
        const r = await call('POST', `/v2/hosts/${other.instance_id}/transitions`, batch(other, [transition(seq, 'running', { container: { container_id: containerId(`stale-${seq}`) } })]));
        expect(r.json()).toMatchObject({ acked_seq: seq });
      }
      const one = await call('GET', `/v2/hosts/${other.instance_id}`);
      expect([one.status, one.json().last_seq]).toEqual([200, 3]);
    } finally {
      local.setFaults({ staleReads: false });
    }
  });

  it('requires a rotated report token without a restart', async () => {
    vault.rotate({ ...SECRET, report_token: 'report-2' });
    await vi.waitFor(async () => {
      expect((await call('GET', '/v2/hosts', undefined, null)).status).toBe(200);
      expect((await call('POST', `/v2/hosts/${host.instance_id}/transitions`, batch(host, [transition(2, 'stopped', { container: { container_id: c1 } })]), 'report-2')).status).toBe(200);
    }, { timeout: 5000, interval: 200 });
    expect((await call('POST', `/v2/hosts/${host.instance_id}/transitions`, batch(host, [transition(3, 'gone', { container: { container_id: c1 } })]), 'report-1')).status).toBe(401);
  });

  it('keeps serving with the last good secret when Vault goes away', async () => {
    vault.setDown(true);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await call('GET', '/health')).status).toBe(200);
    expect((await call('POST', `/v2/hosts/${host.instance_id}/transitions`, batch(host, [transition(4, 'gone', { container: { container_id: c2 } })]), 'report-2')).status).toBe(200);
    expect((await call('GET', '/metrics')).text).toMatch(/^ecs_id_mapper_vault_up 0$/m);
    vault.setDown(false);
  });

  it("accepts the previous token beside the new one while the secret holds report_token_previous, and refuses it once the secret drops it, without a restart (docs/operations.md, Rotate secrets)", async () => {
    // A replayed batch: auth is checked first, and an accepted one changes nothing.
    const post = async (token: string) => (await call('POST', `/v2/hosts/${host.instance_id}/transitions`, batch(host, [transition(1, 'running', { container: { container_id: c1 } })]), token)).status;
    vault.rotate({ ...SECRET, report_token: 'report-3', report_token_previous: 'report-2' });
    await vi.waitFor(async () => expect(await post('report-3')).toBe(200), { timeout: 5000, interval: 200 });
    expect(await post('report-2')).toBe(200);
    expect(await post('report-1')).toBe(401);
    // `vault kv patch ... report_token_previous=` ends the rotation.
    vault.rotate({ ...SECRET, report_token: 'report-3', report_token_previous: '' });
    await vi.waitFor(async () => expect(await post('report-2')).toBe(401), { timeout: 5000, interval: 200 });
    expect(await post('report-3')).toBe(200);
  });
});

describe('server start with an unusable Vault', () => {
  it('fails with one clear error and never listens', async () => {
    const down = await startVaultStandin({ secret: SECRET, staticToken: { token: 'hvs.server', ttlSeconds: 3600 } });
    const url = down.url;
    await down.close();
    const config = loadServerConfig(argv(url));
    const logs = new PassThrough();
    let output = '';
    logs.on('data', (c: Buffer) => (output += c.toString('utf8')));
    await expect(runServer(config, { logStream: logs })).rejects.toThrow(new RegExp(`^vault at ${url.replaceAll('.', '\\.')}: token renew-self failed: unreachable \\(ECONNREFUSED\\)$`));
    expect(output).not.toMatch(/server listening/);
  });
});
