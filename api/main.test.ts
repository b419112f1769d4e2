// runServer in-process: listens, logs its URL, purges gone records on its interval, and shuts down
// cleanly when told to.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { loadCommand, loadServerConfig, type ServerConfig } from '../config/index.js';
import { runServer, serverLogger } from './main.js';
import { StoreUnavailableError } from '../storage/store.js';
import { agentEntry, agentMap } from './test-helpers.js';
import { hostIdentity, snapshot, snapshotContainer } from '../storage/store.fixtures.js';
import { startVaultStandin } from '../test/vault-standin.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function logCapture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, stream };
}

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the server logger', () => {
  it("writes an error's cause as an error of its own with its code, and the message once", async () => {
    const { lines, stream } = logCapture();
    const cause = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    serverLogger('info', stream).warn({ err: new StoreUnavailableError('sqlite store: applyTransitions failed: database or disk is full', { cause }) }, 'store unavailable');
    await waitFor('the line', () => lines[0]);
    expect(lines[0]).toMatchObject({
      service: 'ecs-id-mapper-server',
      err: { message: 'sqlite store: applyTransitions failed: database or disk is full', code: 'ERR_STORE_UNAVAILABLE', cause: { message: 'database or disk is full', code: 'SQLITE_FULL' } },
    });
  });
});

describe('runServer', () => {
  it('logs its URL, purges records gone longer than the retention, and resolves after an abort', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-main-'));
    dirs.push(dir);
    const config = { ...loadServerConfig(['--port', '0', '--host', '127.0.0.1', '--store', `sqlite:${join(dir, 'm.db')}`]), retentionMs: 1, purgeIntervalMs: 200, cacheTtlMs: 0 };
    const { lines, stream } = logCapture();
    const abort = new AbortController();
    const running = runServer(config, { signal: abort.signal, logStream: stream });
    const url = await waitFor('the listening line', () => lines.find((l) => typeof l.url === 'string' && String(l.msg).includes(String(l.url)))?.url as string | undefined);

    const old = 'e1'.repeat(32);
    const fresh = 'e2'.repeat(32);
    const send = (containerId: string) =>
      fetch(`${url}/report/map`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(agentMap([agentEntry({ container_id: containerId, task_id: 'f'.repeat(32) })])) });
    expect((await send(old)).status).toBe(200);
    expect((await fetch(`${url}/query/container_id/${old}`)).status).toBe(200);
    // The next map no longer holds `old`: it becomes gone, and the purge removes it.
    expect((await send(fresh)).status).toBe(200);
    await waitFor('the purge', async () => ((await fetch(`${url}/query/container_id/${old}`)).status === 404 ? true : undefined));
    expect((await fetch(`${url}/query/container_id/${fresh}`)).status).toBe(200);

    abort.abort();
    await running;
    expect(lines.find((l) => l.url === url)).toMatchObject({ version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    expect(lines.some((l) => l.msg === 'server stopped')).toBe(true);
    await expect(fetch(`${url}/health`)).rejects.toThrow();
  }, 30_000);

  it('retires a host silent longer than --host-gone-after once it has been up that long: its records become gone and it counts as retired', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-main-'));
    dirs.push(dir);
    const config = { ...loadServerConfig(['--port', '0', '--host', '127.0.0.1', '--store', `sqlite:${join(dir, 'r.db')}`]), hostStaleAfterMs: 200, hostGoneAfterMs: 600, purgeIntervalMs: 100, cacheTtlMs: 0 };
    const { lines, stream } = logCapture();
    const abort = new AbortController();
    const running = runServer(config, { signal: abort.signal, logStream: stream });
    const url = await waitFor('the listening line', () => lines.find((l) => typeof l.url === 'string' && String(l.msg).includes(String(l.url)))?.url as string | undefined);
    const id = 'e3'.repeat(32);
    let seq = 0;
    const report = (containerId: string, instanceId: string) => {
      const host = hostIdentity({ instance_id: instanceId });
      return fetch(`${url}/v2/hosts/${instanceId}/snapshot`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(snapshot(host, ++seq, [snapshotContainer('running', { container_id: containerId })], new Date().toISOString())),
      });
    };
    expect((await report(id, 'i-0123456789abcdef0')).status).toBe(200);

    const record = await waitFor('the host to be retired', async () => {
      // Another host goes on reporting: with no host reporting at all, none is retired.
      expect((await report('e4'.repeat(32), 'i-0fedcba9876543210')).status).toBe(200);
      const body = (await (await fetch(`${url}/v2/lookup/${id}`)).json()) as { containers: Array<{ state: string; gone_at: string | null }> };
      return body.containers[0].state === 'gone' ? body.containers[0] : undefined;
    });

    expect(record.gone_at).not.toBeNull();
    expect((await fetch(`${url}/query/container_id/${id}`)).status).toBe(200);
    const history = (await (await fetch(`${url}/v2/containers/${id}/history`)).json()) as { history: Array<{ reason: string }> };
    expect(history.history.at(-1)?.reason).toBe('host.silent');
    expect(((await (await fetch(`${url}/v2/hosts?retired=true`)).json()) as { hosts: unknown[] }).hosts).toMatchObject([{ instance_id: 'i-0123456789abcdef0', stale: false, retired: true, containers_by_state: { running: 0, gone: 1 } }]);
    expect(await (await fetch(`${url}/metrics`)).text()).toContain('ecs_id_mapper_hosts{freshness="retired"} 1');
    expect(lines.find((l) => l.msg === 'retired hosts silent longer than --host-gone-after')).toMatchObject({ containers: 1, forgotten_hosts: 0 });
    abort.abort();
    await running;
  }, 30_000);

  it("opens the SQLite store with the configured cache and map sizes, and logs them", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-main-'));
    dirs.push(dir);
    const config = loadServerConfig(['--port', '0', '--host', '127.0.0.1', '--store', `sqlite:${join(dir, 's.db')}`, '--sqlite-cache-bytes', '4194304', '--sqlite-mmap-bytes', '0']);
    const { lines, stream } = logCapture();
    const abort = new AbortController();
    const running = runServer(config, { signal: abort.signal, logStream: stream });
    await waitFor('the listening line', () => lines.find((l) => typeof l.url === 'string'));
    abort.abort();
    await running;
    expect(lines.find((l) => l.msg === 'sqlite store open')).toMatchObject({ cache_size_bytes: 4 * 1024 * 1024, mmap_size_bytes: 0 });
  }, 30_000);

  it('revokes the Vault token its AppRole login obtained when it shuts down', async () => {
    const approle = { roleId: 'role-main', secretId: 'secret-main' };
    const vault = await startVaultStandin({ secret: { report_token: 'report-main' }, approle });
    try {
      const config = loadServerConfig([
        '--port', '0', '--host', '127.0.0.1', '--store', 'sqlite::memory:',
        '--vault-addr', vault.url, '--vault-role-id', approle.roleId, '--vault-secret-id', approle.secretId, '--vault-secret-path', 'secret/ecs-id-mapper',
      ]);
      const { lines, stream } = logCapture();
      const abort = new AbortController();
      const running = runServer(config, { signal: abort.signal, logStream: stream });
      await waitFor('the listening line', () => lines.find((l) => typeof l.url === 'string'));
      const token = vault.requests.find((r) => r.path === '/v1/secret/data/ecs-id-mapper')!.token!;
      expect(vault.revoked).toEqual([]);

      abort.abort();
      await running;

      expect(vault.revoked).toEqual([token]);
      expect(vault.tokenTtl(token)).toBeUndefined();
    } finally {
      await vault.close();
    }
  }, 30_000);

  it('keeps idle connections for --keep-alive-timeout: the answer tells the client so, instead of the 5 s default', async () => {
    // The flags as `ecs-id-mapper server` parses them (loadCommand), then runServer as the CLI calls it.
    // Node derives the Keep-Alive header and its idle-socket timer from the same http.Server
    // keepAliveTimeout; waiting for the close would take the timeout plus the 1 s Node 20 adds.
    const loaded = loadCommand('server', ['--port', '0', '--host', '127.0.0.1', '--store', 'sqlite::memory:', '--keep-alive-timeout', '3s'], {});
    if (loaded.kind !== 'run') throw new Error('server config did not load');
    const { lines, stream } = logCapture();
    const abort = new AbortController();
    const running = runServer(loaded.config as ServerConfig, { signal: abort.signal, logStream: stream });
    try {
      const url = new URL(await waitFor('the listening line', () => lines.find((l) => typeof l.url === 'string')?.url as string | undefined));
      const socket = connect(Number(url.port), url.hostname);
      let received = '';
      socket.on('data', (d) => (received += String(d)));
      socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
      const head = await waitFor('the answer', () => (received.includes('\r\n\r\n') ? received.split('\r\n\r\n')[0] : undefined), 5_000);
      socket.destroy();

      expect(head).toMatch(/^HTTP\/1\.1 200 /);
      expect(head).toMatch(/^connection: keep-alive$/im);
      expect(head).toMatch(/^keep-alive: timeout=3$/im);
    } finally {
      abort.abort();
      await running;
    }
  }, 30_000);

  it('fails to start with one readable error when the port is taken', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-main-'));
    dirs.push(dir);
    const first = logCapture();
    const abort = new AbortController();
    const base = ['--host', '127.0.0.1', '--store', `sqlite:${join(dir, 'a.db')}`];
    const running = runServer(loadServerConfig(['--port', '0', ...base]), { signal: abort.signal, logStream: first.stream });
    const url = await waitFor('the listening line', () => first.lines.find((l) => typeof l.url === 'string')?.url as string | undefined);
    const port = new URL(url).port;
    await expect(runServer(loadServerConfig(['--port', port, '--host', '127.0.0.1', '--store', `sqlite:${join(dir, 'b.db')}`]), { logStream: logCapture().stream })).rejects.toThrow(/EADDRINUSE|in use/);
    abort.abort();
    await running;
  }, 30_000);
});
