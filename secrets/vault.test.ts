import { afterEach, describe, expect, it, vi } from 'vitest';
import { Registry } from 'prom-client';
import pino from 'pino';
import { Writable } from 'node:stream';
import type { ServerConfig, VaultConfig } from '../config/index.js';
import { startVaultStandin, type VaultStandin, type VaultStandinOptions } from '../test/vault-standin.js';
import { kvDataPath, VaultError, VaultSecrets, type Scheduler } from './vault.js';
import { loadSecrets } from './index.js';
import { startSelfSignedHttps } from '../test/support/tls.js';

const SECRET = { aws_access_key_id: 'AKIAVAULT1', aws_secret_access_key: 'vault-secret-1', report_token: 'report-1' };
const APPROLE = { roleId: 'role-123', secretId: 'secret-456' };

/** A fake clock whose timers run when advanced; each fired timer's async work is awaited. */
class FakeClock {
  t = Date.parse('2026-03-01T00:00:00Z');
  private timers: Array<{ id: number; at: number; fn: () => void }> = [];
  private nextId = 1;
  settle: () => Promise<void> = async () => {};
  now = () => this.t;
  scheduler: Scheduler = {
    setTimeout: (fn, ms) => {
      const id = this.nextId++;
      this.timers.push({ id, at: this.t + ms, fn });
      return id;
    },
    clearTimeout: (id) => {
      this.timers = this.timers.filter((x) => x.id !== id);
    },
  };
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= target).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = due.at;
      due.fn();
      await this.settle();
    }
    this.t = target;
  }
}

let standin: VaultStandin | undefined;
let secrets: VaultSecrets | undefined;
afterEach(async () => {
  await secrets?.close();
  await standin?.close();
  secrets = undefined;
  standin = undefined;
});

function vaultConfig(extra: Partial<VaultConfig> = {}): VaultConfig {
  return { addr: new URL(standin!.url), secretPath: 'secret/ecs-id-mapper', refreshIntervalMs: 60_000, ...extra };
}

async function setup(opts: VaultStandinOptions, config: Partial<VaultConfig>, registry?: Registry) {
  const clock = new FakeClock();
  standin = await startVaultStandin({ secret: SECRET, now: clock.now, ...opts });
  secrets = await VaultSecrets.start(vaultConfig(config), { now: clock.now, scheduler: clock.scheduler, retryMs: 5000, ...(registry ? { registry } : {}) });
  const s = secrets;
  clock.settle = () => s.idle();
  return { clock, secrets: s, standin };
}

describe('VaultSecrets start', () => {
  it('starts with a token: checks it with renew-self and reads the KV v2 secret with X-Vault-Token', async () => {
    const { secrets, standin } = await setup({ staticToken: { token: 'hvs.static', ttlSeconds: 3600 } }, { token: 'hvs.static' });
    expect(secrets.awsCredentials()).toEqual({ accessKeyId: 'AKIAVAULT1', secretAccessKey: 'vault-secret-1' });
    expect(secrets.reportToken).toBe('report-1');
    expect(standin.requests.map((r) => [r.method, r.path, r.token])).toEqual([
      ['POST', '/v1/auth/token/renew-self', 'hvs.static'],
      ['GET', '/v1/secret/data/ecs-id-mapper', 'hvs.static'],
    ]);
    expect(secrets.status()).toMatchObject({ ok: true, secretVersion: 1, lastError: null });
  });

  it('accepts a token without TTL (root-like, not renewable) and schedules no renewal', async () => {
    const { secrets, standin, clock } = await setup({ staticToken: { token: 'hvs.root', ttlSeconds: 0 } }, { token: 'hvs.root', refreshIntervalMs: 3600_000 });
    expect(secrets.status().tokenExpiresAt).toBeNull();
    await clock.advance(10 * 3600_000);
    expect(standin.requests.filter((r) => r.path.endsWith('renew-self'))).toHaveLength(1);
  });

  for (const kind of [
    { name: 'a non-renewable service token', staticToken: { token: 'hvs.fixed', ttlSeconds: 7200, renewable: false } },
    { name: 'a batch token', staticToken: { token: 'hvb.batch', ttlSeconds: 7200, type: 'batch' as const } },
  ]) {
    it(`knows when ${kind.name} expires (lookup-self), warns at start, and says it failed once it has`, async () => {
      const lines: string[] = [];
      const logger = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
      const clock = new FakeClock();
      standin = await startVaultStandin({ secret: SECRET, now: clock.now, staticToken: kind.staticToken });
      const s = await VaultSecrets.start(vaultConfig({ token: kind.staticToken.token, refreshIntervalMs: 600_000 }), { now: clock.now, scheduler: clock.scheduler, retryMs: 5000, logger });
      secrets = s;
      clock.settle = () => s.idle();
      expect(standin.requests.map((r) => r.path)).toEqual(['/v1/auth/token/renew-self', '/v1/auth/token/lookup-self', '/v1/secret/data/ecs-id-mapper']);
      const expiresAt = new Date(clock.t + 7200_000).toISOString();
      expect(s.status()).toMatchObject({ ok: true, tokenExpiresAt: expiresAt });
      const warning = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.level === 40);
      expect(warning).toMatchObject({ token_expires_at: expiresAt, msg: expect.stringMatching(/^vault token cannot be renewed/) });
      // Nothing tries to renew it; the refreshes read with it until it has expired.
      await clock.advance(7199_000);
      expect(standin.requests.filter((r) => r.path.endsWith('renew-self'))).toHaveLength(1);
      expect(s.status().ok).toBe(true);
      await clock.advance(600_000);
      expect(s.status()).toMatchObject({ ok: false, lastError: expect.stringMatching(/HTTP 403 permission denied$/) });
      expect(s.reportToken).toBe('report-1');
    });
  }

  it("warns once, a lease ahead, when renewals of the operator's token reach its max TTL", async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
    const clock = new FakeClock();
    const start = clock.t;
    standin = await startVaultStandin({ secret: SECRET, now: clock.now, staticToken: { token: 'hvs.renewable', ttlSeconds: 60 }, tokenMaxTtlSeconds: 100 });
    const s = await VaultSecrets.start(vaultConfig({ token: 'hvs.renewable', refreshIntervalMs: 600_000 }), { now: clock.now, scheduler: clock.scheduler, retryMs: 5000, logger });
    secrets = s;
    clock.settle = () => s.idle();
    const warnings = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.level === 40);
    expect(warnings()).toEqual([]);
    // Renewed at 40 s: to 100 s, the cap.
    await clock.advance(40_000);
    const capped = new Date(start + 100_000).toISOString();
    expect(warnings()).toEqual([expect.objectContaining({ token_expires_at: capped, msg: expect.stringMatching(/^vault token has reached its max TTL/) })]);
    expect(s.status()).toMatchObject({ ok: true, tokenExpiresAt: capped });
    // Renewed again at 80 s, capped again: not said twice.
    await clock.advance(45_000);
    expect(standin.requests.filter((r) => r.path.endsWith('renew-self'))).toHaveLength(3);
    expect(warnings()).toHaveLength(1);
  });

  it('starts with AppRole: logs in, then reads with the issued token', async () => {
    const { secrets, standin } = await setup({ approle: APPROLE }, { roleId: APPROLE.roleId, secretId: APPROLE.secretId });
    expect(standin.requests[0]).toMatchObject({ method: 'POST', path: '/v1/auth/approle/login', token: undefined });
    expect(standin.requests[1].path).toBe('/v1/secret/data/ecs-id-mapper');
    expect(standin.requests[1].token).toMatch(/^hvs\./);
    expect(secrets.awsAccessKeyId).toBe('AKIAVAULT1');
  });

  it('follows a standby node\'s 307 to the active node, for the login, token and read requests alike', async () => {
    standin = await startVaultStandin({ secret: SECRET, approle: APPROLE });
    const standby = await startVaultStandin({ standbyOf: standin.url });
    try {
      expect((await fetch(`${standby.url}/v1/sys/health`)).status).toBe(429);
      secrets = await VaultSecrets.start({ addr: new URL(standby.url), roleId: APPROLE.roleId, secretId: APPROLE.secretId, secretPath: 'secret/ecs-id-mapper', refreshIntervalMs: 60_000 });
      expect(secrets.reportToken).toBe('report-1');
      expect(standby.requests.map((r) => r.path)).toEqual(['/v1/sys/health', '/v1/auth/approle/login', '/v1/secret/data/ecs-id-mapper']);
      expect(standin.requests.map((r) => [r.method, r.path])).toEqual([['POST', '/v1/auth/approle/login'], ['GET', '/v1/secret/data/ecs-id-mapper']]);
      expect(standin.requests[1].token).toMatch(/^hvs\./);
      await secrets.close();
      expect(standin.revoked).toEqual([standin.requests[1].token]);
    } finally {
      await secrets?.close();
      secrets = undefined;
      await standby.close();
    }
  });

  it('reads the same secret whether the path names the data segment or not', () => {
    expect(kvDataPath('secret/ecs-id-mapper')).toBe('secret/data/ecs-id-mapper');
    expect(kvDataPath('secret/data/ecs-id-mapper')).toBe('secret/data/ecs-id-mapper');
    expect(kvDataPath('/kv/team/app/')).toBe('kv/data/team/app');
    expect(() => kvDataPath('secret')).toThrow(VaultError);
  });
});

describe('VaultSecrets start failures: one clear error, nothing half-started', () => {
  it('fails clearly when Vault is unreachable', async () => {
    standin = await startVaultStandin({ secret: SECRET, staticToken: { token: 't', ttlSeconds: 60 } });
    standin.setDown(true);
    const err = await VaultSecrets.start(vaultConfig({ token: 't' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VaultError);
    expect((err as VaultError).message).toMatch(new RegExp(`^vault at ${standin.url.replaceAll('.', '\\.')}: token renew-self failed: unreachable \\(`));
    expect((err as VaultError).status).toBeNull();
  });

  it('fails clearly when one AWS key comes without the other, leaving no timer behind', async () => {
    standin = await startVaultStandin({ secret: { aws_access_key_id: 'A' }, staticToken: { token: 't', ttlSeconds: 60 } });
    const live = new Set<number>();
    let next = 0;
    const scheduler: Scheduler = { setTimeout: () => (live.add(++next), next), clearTimeout: (id) => live.delete(id as number) };
    await expect(VaultSecrets.start(vaultConfig({ token: 't' }), { scheduler })).rejects.toThrow(/secret\/data\/ecs-id-mapper lacks aws_secret_access_key$/);
    // Checking the token scheduled its renewal; the failed start cleared it.
    expect(next).toBeGreaterThan(0);
    expect([...live]).toEqual([]);
  });

  it('fails clearly, without quoting it, on a report token no header can carry (a trailing newline from `vault kv put report_token=@file`)', async () => {
    standin = await startVaultStandin({ secret: { ...SECRET, report_token: 's3cret-token\n' }, staticToken: { token: 't', ttlSeconds: 60 } });
    const failure = VaultSecrets.start(vaultConfig({ token: 't' }));
    await expect(failure).rejects.toThrow(/secret\/data\/ecs-id-mapper: report_token ends with a line break \(read from a file with a trailing newline\?\); an HTTP header cannot carry it as it is$/);
    await expect(failure).rejects.not.toThrow(/s3cret/);
  });

  it('fails clearly on a key that is there but empty or not a string, instead of reading it as missing (which opened the report routes)', async () => {
    standin = await startVaultStandin({ secret: { ...SECRET, report_token: '' }, staticToken: { token: 't', ttlSeconds: 0 } });
    await expect(VaultSecrets.start(vaultConfig({ token: 't' }))).rejects.toThrow(/secret\/data\/ecs-id-mapper: report_token is empty$/);
    standin.rotate({ ...SECRET, report_token: 123456 } as unknown as Record<string, string>);
    await expect(VaultSecrets.start(vaultConfig({ token: 't' }))).rejects.toThrow(/secret\/data\/ecs-id-mapper: report_token is a number, not a string$/);
    standin.rotate({ ...SECRET, aws_secret_access_key: null } as unknown as Record<string, string>);
    await expect(VaultSecrets.start(vaultConfig({ token: 't' }))).rejects.toThrow(/secret\/data\/ecs-id-mapper: aws_secret_access_key is null, not a string$/);
    // An empty report_token_previous is how `vault kv patch` ends a rotation: no previous token.
    standin.rotate({ ...SECRET, report_token_previous: '' });
    secrets = await VaultSecrets.start(vaultConfig({ token: 't' }));
    expect([secrets.reportToken, secrets.reportTokenPrevious]).toEqual(['report-1', undefined]);
  });

  it('keeps the last good token when a rotation writes one no header can carry, and says so', async () => {
    const { clock, standin, secrets } = await setup({ staticToken: { token: 't', ttlSeconds: 0 } }, { token: 't', refreshIntervalMs: 30_000 });
    standin.rotate({ ...SECRET, report_token: 'report-2', report_token_previous: 'report-1 ' });
    await clock.advance(30_000);
    expect(secrets.reportToken).toBe('report-1');
    expect(secrets.status()).toMatchObject({ ok: false, lastError: expect.stringMatching(/report_token_previous starts or ends with a space/) });
  });

  it('says Vault is failing from the first failed read, across refreshes, while the token renews fine', async () => {
    const registry = new Registry();
    const { clock, standin, secrets } = await setup({ approle: APPROLE, tokenTtlSeconds: 60 }, { roleId: APPROLE.roleId, secretId: APPROLE.secretId, refreshIntervalMs: 30_000 }, registry);
    standin.rotate(undefined);
    await clock.advance(30_000);
    const since = new Date(clock.t).toISOString();
    // Renewals (every 40 s) work meanwhile; the secret still cannot be read.
    await clock.advance(120_000);
    expect(standin.requests.filter((r) => r.path.endsWith('renew-self')).length).toBeGreaterThan(0);
    expect(secrets.status()).toMatchObject({ ok: false, failingSince: since });
    expect(await registry.metrics()).toMatch(/^ecs_id_mapper_vault_up 0$/m);
    // An unusable version read later does not restart the clock either.
    standin.rotate({ ...SECRET, report_token: 'report-2 ' });
    await clock.advance(60_000);
    expect(secrets.status()).toMatchObject({ ok: false, failingSince: since });
    standin.rotate({ ...SECRET, report_token: 'report-2' });
    await clock.advance(30_000);
    expect(secrets.status()).toMatchObject({ ok: true, failingSince: null, lastError: null });
    expect(await registry.metrics()).toMatch(/^ecs_id_mapper_vault_up 1$/m);
  });

  it('keeps the report token in force when a new secret version has none, instead of opening the report routes', async () => {
    const { clock, standin, secrets } = await setup({ staticToken: { token: 't', ttlSeconds: 0 } }, { token: 't', refreshIntervalMs: 30_000 });
    // `vault kv put` of new AWS keys alone replaces the whole secret.
    standin.rotate({ aws_access_key_id: 'AKIAVAULT2', aws_secret_access_key: 'vault-secret-2' });
    await clock.advance(30_000);
    expect(secrets.reportToken).toBe('report-1');
    expect(secrets.status()).toMatchObject({ ok: false, lastError: expect.stringMatching(/version 2 has no report_token; keeping the one in force/) });
  });

  it('never asks for a timer longer than Node keeps (a token leased 40 days)', async () => {
    const delays: number[] = [];
    const scheduler: Scheduler = { setTimeout: (_fn, ms) => (delays.push(ms), delays.length), clearTimeout: () => {} };
    standin = await startVaultStandin({ secret: SECRET, approle: APPROLE, tokenTtlSeconds: 40 * 86_400, tokenMaxTtlSeconds: 80 * 86_400 });
    secrets = await VaultSecrets.start(vaultConfig({ roleId: APPROLE.roleId, secretId: APPROLE.secretId, refreshIntervalMs: 60_000 }), { scheduler });
    expect(delays.length).toBeGreaterThan(0);
    expect(Math.max(...delays)).toBeLessThanOrEqual(2 ** 31 - 1);
  });

  it('says how to trust a Vault behind a private CA when its certificate is not trusted', async () => {
    const https = await startSelfSignedHttps((_req, res) => res.writeHead(500).end());
    try {
      const failure = VaultSecrets.start({ addr: new URL(https.url), token: 't', secretPath: 'secret/ecs-id-mapper', refreshIntervalMs: 60_000 });
      await expect(failure).rejects.toThrow(/unreachable: the peer's TLS certificate is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\); if it comes from a private CA, start with NODE_EXTRA_CA_CERTS=\/path\/to\/ca\.pem$/);
    } finally {
      await https.close();
    }
  });

  it('says an https:// --vault-addr names a plain HTTP port rather than quoting OpenSSL', async () => {
    standin = await startVaultStandin({ secret: SECRET, staticToken: { token: 'good', ttlSeconds: 60 } });
    const failure = VaultSecrets.start({ addr: new URL(standin.url.replace('http://', 'https://')), token: 'good', secretPath: 'secret/ecs-id-mapper', refreshIntervalMs: 60_000 });
    await expect(failure).rejects.toThrow(/unreachable: the peer does not speak TLS \(EPROTO\): does this https:\/\/ URL name a plain HTTP port\?$/);
  });

  it('fails clearly on a rejected token, a bad AppRole and a missing secret path', async () => {
    standin = await startVaultStandin({ secret: SECRET, approle: APPROLE, staticToken: { token: 'good', ttlSeconds: 60 } });
    await expect(VaultSecrets.start(vaultConfig({ token: 'bad' }))).rejects.toThrow(/token renew-self failed: HTTP 403 permission denied$/);
    await expect(VaultSecrets.start(vaultConfig({ roleId: APPROLE.roleId, secretId: 'wrong' }))).rejects.toThrow(/AppRole login failed: HTTP 400 invalid role or secret ID$/);
    await expect(VaultSecrets.start(vaultConfig({ token: 'good', secretPath: 'secret/other' }))).rejects.toMatchObject({ status: 404, message: expect.stringMatching(/reading secret\/data\/other failed: HTTP 404: no secret there: check --vault-secret-path, and that the mount is KV version 2$/) });
  });

  it('says when the latest version was deleted or destroyed (KV v2 answers 404 with its metadata), not just 404', async () => {
    const clock = new FakeClock();
    standin = await startVaultStandin({ secret: SECRET, staticToken: { token: 't', ttlSeconds: 0 }, now: clock.now });
    standin.deleteLatest('delete');
    const deletedAt = new Date(clock.t).toISOString();
    await expect(VaultSecrets.start(vaultConfig({ token: 't' }))).rejects.toMatchObject({
      status: 404,
      message: expect.stringMatching(new RegExp(`reading secret/data/ecs-id-mapper failed: HTTP 404: its latest version \\(1\\) was deleted at ${deletedAt.replaceAll('.', '\\.')}: undelete it \\(vault kv undelete\\) or write a new version$`)),
    });
    standin.deleteLatest('destroy');
    await expect(VaultSecrets.start(vaultConfig({ token: 't' }))).rejects.toThrow(/HTTP 404: its latest version \(1\) was destroyed: write a new version$/);
  });

  it('bounds a start against a Vault that takes the connection and never answers, and says so', async () => {
    standin = await startVaultStandin({ secret: SECRET, staticToken: { token: 't', ttlSeconds: 0 } });
    standin.setUnresponsive(true);
    const startedAt = Date.now();
    const err = (await VaultSecrets.start(vaultConfig({ token: 't' }), { requestTimeoutMs: 300 }).catch((e: unknown) => e)) as VaultError;
    expect(Date.now() - startedAt).toBeLessThan(2_000);
    expect(err).toBeInstanceOf(VaultError);
    expect(err.status).toBeNull();
    expect(err.message).toMatch(/token renew-self failed: no answer within 0\.3 s \(the connection was made; Vault or a proxy in front of it does not answer\)$/);
  });

  it('fails clearly at start on a sealed Vault (503 "Vault is sealed")', async () => {
    standin = await startVaultStandin({ secret: SECRET, staticToken: { token: 't', ttlSeconds: 0 } });
    standin.setSealed(true);
    await expect(VaultSecrets.start(vaultConfig({ token: 't' }))).rejects.toMatchObject({ status: 503, message: expect.stringMatching(/token renew-self failed: HTTP 503 Vault is sealed$/) });
  });

  it("keeps the AppRole secret_id out of an error's cause (a transport error holds its request)", async () => {
    standin = await startVaultStandin({ secret: SECRET, approle: APPROLE });
    const url = standin.url;
    await standin.close();
    standin = undefined;
    const err = (await VaultSecrets.start({ addr: new URL(url), secretPath: 'secret/ecs-id-mapper', refreshIntervalMs: 60_000, roleId: APPROLE.roleId, secretId: APPROLE.secretId }).catch((e: unknown) => e)) as VaultError;
    expect(err).toBeInstanceOf(VaultError);
    expect(err.message).toMatch(/AppRole login failed: unreachable \(ECONNREFUSED\)$/);
    expect(err.cause).toMatchObject({ code: 'ECONNREFUSED' });
    expect(JSON.stringify(err.cause)).not.toContain(APPROLE.secretId);
    const lines: string[] = [];
    pino(new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) })).error({ err }, 'start failed');
    expect(lines.join('')).toContain('ECONNREFUSED');
    expect(lines.join('')).not.toContain(APPROLE.secretId);
  });

  it('makes the server exit before anything starts: loadSecrets throws the same error', async () => {
    standin = await startVaultStandin({ secret: SECRET, staticToken: { token: 't', ttlSeconds: 60 } });
    standin.setFailing(true);
    const config = { vault: vaultConfig({ token: 't' }), store: { backend: 'sqlite', path: ':memory:' } } as unknown as ServerConfig;
    await expect(loadSecrets(config)).rejects.toThrow(/HTTP 500 1 error occurred/);
  });
});

describe('VaultSecrets while running', () => {
  it('renews an AppRole token at two thirds of its lease, so it never expires', async () => {
    const { clock, standin, secrets } = await setup({ approle: APPROLE, tokenTtlSeconds: 60 }, { roleId: APPROLE.roleId, secretId: APPROLE.secretId, refreshIntervalMs: 3600_000 });
    const token = standin.requests[1].token!;
    await clock.advance(39_000);
    expect(standin.requests.filter((r) => r.path.endsWith('renew-self'))).toHaveLength(0);
    await clock.advance(1_000);
    expect(standin.requests.filter((r) => r.path.endsWith('renew-self')).map((r) => r.token)).toEqual([token]);
    expect(standin.tokenTtl(token)).toBe(60);
    await clock.advance(10 * 60_000);
    expect(standin.tokenTtl(token)).toBeGreaterThan(0);
    expect(standin.requests.filter((r) => r.path.endsWith('renew-self')).length).toBeGreaterThanOrEqual(15);
    expect(secrets.status().tokenExpiresAt).toBe(new Date(clock.t + (standin.tokenTtl(token)! * 1000)).toISOString());
  });

  it("logs in again before an AppRole token's max TTL and revokes the token it replaces", async () => {
    const registry = new Registry();
    const { clock, standin, secrets } = await setup(
      { approle: APPROLE, tokenTtlSeconds: 60, tokenMaxTtlSeconds: 70 },
      { roleId: APPROLE.roleId, secretId: APPROLE.secretId, refreshIntervalMs: 3600_000 },
      registry,
    );
    const first = standin.requests[1].token!;
    // Renewed at 40 s to the cap (30 s left), at 60 s again: 10 s left, under 3 retries (15 s): log in again.
    await clock.advance(60_000);
    const logins = standin.requests.filter((r) => r.path === '/v1/auth/approle/login');
    expect(logins.map((r) => r.token)).toEqual([undefined, undefined]);
    expect(standin.revoked).toEqual([first]);
    expect(standin.tokenTtl(first)).toBeUndefined();
    expect(secrets.status().ok).toBe(true);
    expect(await registry.metrics()).toMatch(/^ecs_id_mapper_vault_operations_total\{operation="revoke",result="ok"\} 1$/m);
    // The new token is the one in use.
    standin.rotate({ ...SECRET, report_token: 'after-max-ttl' });
    await clock.advance(3600_000);
    expect(secrets.reportToken).toBe('after-max-ttl');
    expect(standin.requests.at(-1)!.token).not.toBe(first);
  });

  it('uses a rotated secret after the next refresh, without a restart', async () => {
    const { clock, standin, secrets } = await setup({ staticToken: { token: 't', ttlSeconds: 0 } }, { token: 't', refreshIntervalMs: 30_000 });
    standin.rotate({ aws_access_key_id: 'AKIAVAULT2', aws_secret_access_key: 'vault-secret-2', report_token: 'report-2' });
    expect(secrets.awsAccessKeyId).toBe('AKIAVAULT1');
    await clock.advance(30_000);
    expect(secrets.awsCredentials()).toEqual({ accessKeyId: 'AKIAVAULT2', secretAccessKey: 'vault-secret-2' });
    expect(secrets.reportToken).toBe('report-2');
    expect(secrets.status().secretVersion).toBe(2);
  });

  it('keeps the last good secret when Vault is lost, reports it, and recovers', async () => {
    const registry = new Registry();
    const { clock, standin, secrets } = await setup({ staticToken: { token: 't', ttlSeconds: 0 } }, { token: 't', refreshIntervalMs: 30_000 }, registry);
    standin.setDown(true);
    await clock.advance(30_000);
    expect(secrets.awsCredentials()).toEqual({ accessKeyId: 'AKIAVAULT1', secretAccessKey: 'vault-secret-1' });
    expect(secrets.reportToken).toBe('report-1');
    const status = secrets.status();
    expect(status).toMatchObject({ ok: false, failingSince: new Date(clock.t).toISOString() });
    expect(status.lastError).toMatch(/reading secret\/data\/ecs-id-mapper failed: unreachable/);
    let metrics = await registry.metrics();
    expect(metrics).toMatch(/^ecs_id_mapper_vault_up 0$/m);
    expect(metrics).toMatch(/^ecs_id_mapper_vault_operations_total\{operation="read",result="error"\} 1$/m);

    standin.setDown(false);
    standin.rotate({ ...SECRET, aws_secret_access_key: 'vault-secret-3' });
    await clock.advance(30_000);
    expect(secrets.status()).toMatchObject({ ok: true, failingSince: null, secretVersion: 2 });
    expect(secrets.awsSecretAccessKey).toBe('vault-secret-3');
    metrics = await registry.metrics();
    expect(metrics).toMatch(/^ecs_id_mapper_vault_up 1$/m);
  });

  it('keeps the last good secret while Vault is sealed, says so, and takes the secret again once unsealed', async () => {
    const registry = new Registry();
    const { clock, standin, secrets } = await setup({ staticToken: { token: 't', ttlSeconds: 0 } }, { token: 't', refreshIntervalMs: 30_000 }, registry);
    standin.setSealed(true);
    await clock.advance(30_000);
    expect(secrets.reportToken).toBe('report-1');
    expect(secrets.status()).toMatchObject({ ok: false, lastError: expect.stringMatching(/reading secret\/data\/ecs-id-mapper failed: HTTP 503 Vault is sealed$/) });
    expect(await registry.metrics()).toMatch(/^ecs_id_mapper_vault_up 0$/m);
    standin.setSealed(false);
    standin.rotate({ ...SECRET, report_token: 'report-2' });
    await clock.advance(30_000);
    expect(secrets.reportToken).toBe('report-2');
    expect(secrets.status().ok).toBe(true);
  });

  it('keeps the last good secret when its latest version is deleted, saying so, until a new version is written', async () => {
    const { clock, standin, secrets } = await setup({ staticToken: { token: 't', ttlSeconds: 0 } }, { token: 't', refreshIntervalMs: 30_000 });
    standin.deleteLatest('delete');
    await clock.advance(30_000);
    expect(secrets.awsCredentials()).toEqual({ accessKeyId: 'AKIAVAULT1', secretAccessKey: 'vault-secret-1' });
    expect(secrets.status()).toMatchObject({ ok: false, secretVersion: 1, lastError: expect.stringMatching(/HTTP 404: its latest version \(1\) was deleted at /) });
    standin.rotate({ ...SECRET, report_token: 'report-2' });
    await clock.advance(30_000);
    expect(secrets.status()).toMatchObject({ ok: true, secretVersion: 2 });
    expect(secrets.reportToken).toBe('report-2');
  });

  it("does not log in again at every refresh when the AppRole's policy denies the read: its token still works, and each login left one more live", async () => {
    const { clock, standin, secrets } = await setup({ approle: APPROLE, tokenTtlSeconds: 3600 }, { roleId: APPROLE.roleId, secretId: APPROLE.secretId, refreshIntervalMs: 30_000 });
    standin.setReadDenied(true);
    await clock.advance(5 * 30_000);
    expect(standin.requests.filter((r) => r.path === '/v1/auth/approle/login')).toHaveLength(1);
    expect(secrets.reportToken).toBe('report-1');
    expect(secrets.status()).toMatchObject({ ok: false, lastError: expect.stringMatching(/reading secret\/data\/ecs-id-mapper failed: HTTP 403 1 error occurred: \* permission denied$/) });
    standin.setReadDenied(false);
    await clock.advance(30_000);
    expect(secrets.status().ok).toBe(true);
  });

  it('says in the log when token renewal starts failing, once per outage rather than at every retry', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c)) as Record<string, unknown>), cb()) }));
    const clock = new FakeClock();
    standin = await startVaultStandin({ secret: SECRET, now: clock.now, staticToken: { token: 'hvs.renewable', ttlSeconds: 60 } });
    const s = await VaultSecrets.start(vaultConfig({ token: 'hvs.renewable', refreshIntervalMs: 3600_000 }), { now: clock.now, scheduler: clock.scheduler, retryMs: 5000, logger });
    secrets = s;
    clock.settle = () => s.idle();
    const warnings = () => lines.filter((l) => l.level === 40);
    standin.setDown(true);
    // Renewal due at 40 s, then retried every 5 s.
    await clock.advance(50_000);
    expect(standin.requests.filter((r) => r.path.endsWith('renew-self')).length).toBe(1);
    expect(s.status().ok).toBe(false);
    expect(warnings()).toEqual([
      expect.objectContaining({ msg: 'vault token renewal failed; retrying every 5 s, the last good secret stays in use', err: expect.stringMatching(/token renew-self failed: unreachable/), token_expires_at: new Date(Date.parse('2026-03-01T00:01:00Z')).toISOString() }),
    ]);
    standin.setDown(false);
    await clock.advance(5_000);
    expect(s.status().ok).toBe(true);
    standin.setDown(true);
    await clock.advance(60_000);
    expect(warnings()).toHaveLength(2);
  });

  it('logs in again with AppRole when its token has expired', async () => {
    const { clock, standin, secrets } = await setup({ approle: APPROLE, tokenTtlSeconds: 3600 }, { roleId: APPROLE.roleId, secretId: APPROLE.secretId, refreshIntervalMs: 30_000 });
    standin.expireTokens();
    standin.rotate({ ...SECRET, report_token: 'after-relogin' });
    await clock.advance(30_000);
    // Logins carry no token: not the expired one either.
    expect(standin.requests.filter((r) => r.path === '/v1/auth/approle/login').map((r) => r.token)).toEqual([undefined, undefined]);
    expect(secrets.reportToken).toBe('after-relogin');
    expect(secrets.status().ok).toBe(true);
  });

  it('stops renewing and refreshing once closed', async () => {
    const { clock, standin, secrets } = await setup({ approle: APPROLE, tokenTtlSeconds: 60 }, { roleId: APPROLE.roleId, secretId: APPROLE.secretId, refreshIntervalMs: 30_000 });
    await secrets.close();
    const before = standin.requests.length;
    await clock.advance(3600_000);
    expect(standin.requests).toHaveLength(before);
  });
});

describe('VaultSecrets on close: the token AppRole gave us is revoked, an operator\'s is not', () => {
  function logCapture() {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c)) as Record<string, unknown>), cb()) }));
    return { lines, logger };
  }

  /** What Vault answers a read with `token` (403 once the token is revoked). */
  async function readWith(token: string): Promise<number> {
    return (await fetch(`${standin!.url}/v1/secret/data/ecs-id-mapper`, { headers: { 'x-vault-token': token } })).status;
  }

  it('revokes the token its AppRole login obtained, counted as a revoke, so the token no longer works', async () => {
    const registry = new Registry();
    const { secrets, standin } = await setup({ approle: APPROLE }, { roleId: APPROLE.roleId, secretId: APPROLE.secretId }, registry);
    const token = standin.requests[1].token!;
    expect(await readWith(token)).toBe(200);

    await secrets.close();

    expect(standin.revoked).toEqual([token]);
    expect(standin.requests.at(-1)).toMatchObject({ method: 'POST', path: '/v1/auth/token/revoke-self', token });
    expect(await readWith(token)).toBe(403);
    expect(await registry.metrics()).toMatch(/^ecs_id_mapper_vault_operations_total\{operation="revoke",result="ok"\} 1$/m);
  });

  it('revokes only once when closed twice', async () => {
    const { secrets, standin } = await setup({ approle: APPROLE }, { roleId: APPROLE.roleId, secretId: APPROLE.secretId });
    await Promise.all([secrets.close(), secrets.close()]);
    await secrets.close();
    expect(standin.requests.filter((r) => r.path.endsWith('revoke-self'))).toHaveLength(1);
  });

  it("leaves the operator's token valid: it is not ours to revoke", async () => {
    const registry = new Registry();
    const { secrets, standin } = await setup({ staticToken: { token: 'hvs.operator', ttlSeconds: 3600 } }, { token: 'hvs.operator' }, registry);

    await secrets.close();

    expect(standin.revoked).toEqual([]);
    expect(standin.requests.filter((r) => r.path.endsWith('revoke-self'))).toEqual([]);
    expect(await readWith('hvs.operator')).toBe(200);
    expect(await registry.metrics()).toMatch(/^ecs_id_mapper_vault_operations_total\{operation="revoke",result="ok"\} 0$/m);
  });

  it("leaves the operator's token valid when an AppRole login replaces it near its max TTL, and revokes the AppRole token at close", async () => {
    const { clock, secrets, standin } = await setup(
      { staticToken: { token: 'hvs.operator', ttlSeconds: 60 }, approle: APPROLE, tokenMaxTtlSeconds: 70 },
      { token: 'hvs.operator', roleId: APPROLE.roleId, secretId: APPROLE.secretId, refreshIntervalMs: 3600_000 },
    );
    // Renewed at 40 s to the cap (30 s left), at 60 s again: 10 s left, so AppRole logs in.
    await clock.advance(60_000);
    expect(standin.requests.filter((r) => r.path === '/v1/auth/approle/login')).toHaveLength(1);
    expect(standin.revoked).toEqual([]);
    expect(standin.tokenTtl('hvs.operator')).toBe(10);

    await secrets.close();

    expect(standin.revoked).toHaveLength(1);
    expect(standin.revoked[0]).toMatch(/^hvs\./);
    expect(standin.revoked[0]).not.toBe('hvs.operator');
    expect(standin.tokenTtl('hvs.operator')).toBe(10);
  });

  it('closes without throwing when Vault is down at shutdown, counting the failed revoke and saying the token stays valid', async () => {
    const registry = new Registry();
    const { lines, logger } = logCapture();
    const clock = new FakeClock();
    standin = await startVaultStandin({ secret: SECRET, approle: APPROLE, now: clock.now });
    const s = await VaultSecrets.start(vaultConfig({ roleId: APPROLE.roleId, secretId: APPROLE.secretId }), { now: clock.now, scheduler: clock.scheduler, registry, logger });
    secrets = s;
    const token = standin.requests[1].token!;
    standin.setDown(true);

    await expect(s.close()).resolves.toBeUndefined();

    expect(standin.revoked).toEqual([]);
    expect(await registry.metrics()).toMatch(/^ecs_id_mapper_vault_operations_total\{operation="revoke",result="error"\} 1$/m);
    expect(lines.find((l) => l.level === 40)).toMatchObject({ msg: 'vault: revoking our token at shutdown failed; it stays valid until its TTL ends', err: expect.stringMatching(/^unreachable/) });
    standin.setDown(false);
    expect(await readWith(token)).toBe(200);
  });

  it('gives up revoking after closeRevokeTimeoutMs when Vault does not answer, so shutdown is not held up', async () => {
    const { lines, logger } = logCapture();
    standin = await startVaultStandin({ secret: SECRET, approle: APPROLE });
    const s = await VaultSecrets.start(vaultConfig({ roleId: APPROLE.roleId, secretId: APPROLE.secretId }), { logger, closeRevokeTimeoutMs: 200 });
    secrets = s;
    standin.setUnresponsive(true);

    const startedAt = Date.now();
    await expect(s.close()).resolves.toBeUndefined();
    const tookMs = Date.now() - startedAt;

    // It did ask (the stand-in read the request), then stopped waiting; the 5 s request timeout did not apply.
    expect(standin.requests.at(-1)).toMatchObject({ path: '/v1/auth/token/revoke-self' });
    expect(tookMs).toBeGreaterThanOrEqual(150);
    expect(tookMs).toBeLessThan(2_000);
    expect(lines.find((l) => l.level === 40)).toMatchObject({ msg: 'vault: revoking our token at shutdown failed; it stays valid until its TTL ends' });
  });
  it('does not wait out a renewal that hangs: close gives up on it after closeRevokeTimeoutMs too', async () => {
    const { lines, logger } = logCapture();
    // A 3 s token is renewed at 2 s; the stand-in then stops answering, so that renewal hangs for
    // the whole 5 s request timeout unless close stops waiting for it.
    standin = await startVaultStandin({ secret: SECRET, approle: APPROLE, tokenTtlSeconds: 3 });
    const s = await VaultSecrets.start(vaultConfig({ roleId: APPROLE.roleId, secretId: APPROLE.secretId }), { logger, closeRevokeTimeoutMs: 200 });
    secrets = s;
    standin.setUnresponsive(true);
    await vi.waitFor(() => expect(standin!.requests.at(-1)).toMatchObject({ path: '/v1/auth/token/renew-self' }), { timeout: 4_000, interval: 20 });

    const startedAt = Date.now();
    await expect(s.close()).resolves.toBeUndefined();
    const tookMs = Date.now() - startedAt;

    // 200 ms for the renewal, 200 ms for the revoke it then tried: well short of the 5 s request timeout.
    expect(standin.requests.at(-1)).toMatchObject({ path: '/v1/auth/token/revoke-self' });
    expect(tookMs).toBeGreaterThanOrEqual(350);
    expect(tookMs).toBeLessThan(2_000);
    expect(lines.find((l) => l.level === 40)).toMatchObject({ msg: 'vault: revoking our token at shutdown failed; it stays valid until its TTL ends' });
  });
});

describe('loadSecrets', () => {
  it('without Vault: the configured report token (and previous one) and no AWS keys', async () => {
    const loaded = await loadSecrets({ reportToken: 'cfg', reportTokenPrevious: 'cfg-old', store: { backend: 'sqlite', path: ':memory:' } } as ServerConfig);
    expect(loaded.reportToken).toBe('cfg');
    expect(loaded.previousReportToken).toBe('cfg-old');
    expect(loaded.awsCredentials).toBeUndefined();
  });

  it('with Vault: refuses --report-token-previous when neither --report-token nor the secret gives a token, instead of opening the report routes', async () => {
    standin = await startVaultStandin({ secret: { aws_access_key_id: 'AKIAVAULT1', aws_secret_access_key: 'vault-secret-1' }, staticToken: { token: 't', ttlSeconds: 0 } });
    const config = { reportTokenPrevious: 'cfg-old', vault: vaultConfig({ token: 't' }), store: { backend: 'simpledb' } } as unknown as ServerConfig;
    await expect(loadSecrets(config)).rejects.toThrow(
      `vault at ${new URL(standin.url).origin}: secret/data/ecs-id-mapper holds no report_token and --report-token is not set: --report-token-previous alone would leave reports open to anyone`,
    );
  });

  it("with Vault: a rotation's previous token is the secret's report_token_previous, and ends when the secret drops it", async () => {
    const clock = new FakeClock();
    standin = await startVaultStandin({ secret: { ...SECRET, report_token: 'report-2', report_token_previous: 'report-1' }, staticToken: { token: 't', ttlSeconds: 0 }, now: clock.now });
    const config = { reportToken: 'cfg', reportTokenPrevious: 'cfg-old', vault: vaultConfig({ token: 't', refreshIntervalMs: 1000 }), store: { backend: 'sqlite' } } as unknown as ServerConfig;
    const loaded = await loadSecrets(config, { now: clock.now, scheduler: clock.scheduler });
    secrets = loaded.vault;
    clock.settle = () => loaded.vault!.idle();
    const [current, previous] = [loaded.reportToken, loaded.previousReportToken] as Array<() => string | undefined>;
    expect([current(), previous()]).toEqual(['report-2', 'report-1']);
    // The rotation is over: the secret holds the new token alone. The flag's previous token does
    // not come back in its place; it pairs with the flag's token only.
    standin.rotate({ ...SECRET, report_token: 'report-2' });
    await clock.advance(1000);
    expect([current(), previous()]).toEqual(['report-2', undefined]);
    standin.rotate({ aws_access_key_id: 'AKIAVAULT1', aws_secret_access_key: 'vault-secret-1' });
    await clock.advance(1000);
    expect([current(), previous()]).toEqual(['cfg', 'cfg-old']);
  });

  it('with Vault and SimpleDB: a secret without AWS keys leaves SimpleDB to the AWS default chain, for the life of the process', async () => {
    const clock = new FakeClock();
    const lines: string[] = [];
    const logger = pino(new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
    standin = await startVaultStandin({ secret: { report_token: 'report-1' }, staticToken: { token: 't', ttlSeconds: 0 }, now: clock.now });
    const config = { vault: vaultConfig({ token: 't', refreshIntervalMs: 1000 }), store: { backend: 'simpledb' } } as unknown as ServerConfig;
    const loaded = await loadSecrets(config, { now: clock.now, scheduler: clock.scheduler, logger });
    secrets = loaded.vault;
    clock.settle = () => loaded.vault!.idle();
    expect(loaded.awsCredentials).toBeUndefined();
    expect((loaded.reportToken as () => string)()).toBe('report-1');
    // Keys added later are read, but the credentials chosen at start stay (a restart takes them).
    standin.rotate({ report_token: 'report-1', aws_access_key_id: 'AKIALATE', aws_secret_access_key: 'late' });
    await clock.advance(1000);
    expect(loaded.vault!.status()).toMatchObject({ ok: true, secretVersion: 2 });
    expect(lines.some((l) => l.includes('SimpleDB keeps the AWS default credential chain it started with'))).toBe(true);
  });

  it('with Vault: once AWS keys were read, a version without them is refused and the keys in force stay', async () => {
    const clock = new FakeClock();
    standin = await startVaultStandin({ secret: SECRET, staticToken: { token: 't', ttlSeconds: 0 }, now: clock.now });
    const config = { vault: vaultConfig({ token: 't', refreshIntervalMs: 1000 }), store: { backend: 'simpledb' } } as unknown as ServerConfig;
    const loaded = await loadSecrets(config, { now: clock.now, scheduler: clock.scheduler });
    secrets = loaded.vault;
    clock.settle = () => loaded.vault!.idle();
    standin.rotate({ report_token: 'report-2' });
    await clock.advance(1000);
    expect(loaded.awsCredentials!()).toEqual({ accessKeyId: 'AKIAVAULT1', secretAccessKey: 'vault-secret-1' });
    expect(loaded.vault!.status()).toMatchObject({ ok: false, secretVersion: 1, lastError: expect.stringMatching(/lacks aws_access_key_id and aws_secret_access_key; keeping the keys in force/) });
  });

  it("with Vault: report token and AWS keys follow Vault's current values; health stays ok with a detail while Vault fails", async () => {
    const clock = new FakeClock();
    standin = await startVaultStandin({ secret: SECRET, staticToken: { token: 't', ttlSeconds: 0 }, now: clock.now });
    const config = { reportToken: 'cfg', vault: vaultConfig({ token: 't', refreshIntervalMs: 1000 }), store: { backend: 'simpledb' } } as unknown as ServerConfig;
    const loaded = await loadSecrets(config, { now: clock.now, scheduler: clock.scheduler });
    secrets = loaded.vault;
    clock.settle = () => loaded.vault!.idle();
    const token = loaded.reportToken as () => string | undefined;
    expect(token()).toBe('report-1');
    expect(loaded.awsCredentials!()).toEqual({ accessKeyId: 'AKIAVAULT1', secretAccessKey: 'vault-secret-1' });
    standin.rotate({ aws_access_key_id: 'AKIAVAULT9', aws_secret_access_key: 's9' });
    await clock.advance(1000);
    expect(token()).toBe('cfg');
    expect(loaded.awsCredentials!()).toEqual({ accessKeyId: 'AKIAVAULT9', secretAccessKey: 's9' });
    expect(await loaded.health!()).toEqual({ ok: true, detail: 'vault ok (secret version 2)' });
    standin.setFailing(true);
    await clock.advance(1000);
    const h = await loaded.health!();
    expect(h.ok).toBe(true);
    expect(h.detail).toMatch(/^vault failing since .*HTTP 500.*; serving with the secret read at /);
  });

  it('with Vault: the health detail dates the secret in use by its read, not by the last renewal that worked', async () => {
    const clock = new FakeClock();
    standin = await startVaultStandin({ secret: SECRET, approle: APPROLE, tokenTtlSeconds: 60, now: clock.now });
    const config = { vault: vaultConfig({ roleId: APPROLE.roleId, secretId: APPROLE.secretId, refreshIntervalMs: 30_000 }), store: { backend: 'sqlite' } } as unknown as ServerConfig;
    const loaded = await loadSecrets(config, { now: clock.now, scheduler: clock.scheduler });
    secrets = loaded.vault;
    clock.settle = () => loaded.vault!.idle();
    const readAt = new Date(clock.t).toISOString();
    standin.setReadDenied(true);
    // Reads fail from 30 s; renewals at 40 s and 80 s work.
    await clock.advance(90_000);
    expect(standin.requests.filter((r) => r.path.endsWith('renew-self'))).toHaveLength(2);
    const status = loaded.vault!.status();
    expect(status).toMatchObject({ ok: false, secretReadAt: readAt });
    expect(Date.parse(status.lastSuccessAt!)).toBeGreaterThan(Date.parse(readAt));
    expect((await loaded.health!()).detail).toMatch(new RegExp(`; serving with the secret read at ${readAt.replaceAll('.', '\\.')}$`));
  });
});
