// Secrets from HashiCorp Vault (node-vault): logs in with a token or AppRole, renews the token before
// it expires, reads a KV v2 secret holding aws_access_key_id, aws_secret_access_key and optionally
// report_token, and re-reads it every refreshIntervalMs so rotated values are used without a restart.
//
// Contract:
// - start() succeeds only with a valid token and a complete secret; otherwise it throws one
//   VaultError whose message names Vault's address and what failed (the server exits non-zero).
// - Once started, a Vault outage never takes values away: the last good secret stays current,
//   status() and the metrics say Vault is failing, and the next successful read takes over.
// - The getters always return the latest good values; callers read them per request.
// - close() revokes the token an AppRole login gave this process (never an operator's token: it is
//   not ours to end), best effort and bounded, so a stopped server leaves no live token behind.
import NodeVault from 'node-vault';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { reportTokenProblem, type VaultConfig } from '../config/index.js';
import { tlsFailureHint } from '../cli/tls-trust.js';
import { TIMER_MAX_MS } from '../config/flags.js';
import { badSecretPath, kvDataPathOf } from './kv-path.js';

export interface Scheduler {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realScheduler: Scheduler = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface VaultSecretsDeps {
  logger?: Logger;
  registry?: Registry;
  /** Milliseconds clock (fake in tests). */
  now?: () => number;
  scheduler?: Scheduler;
  /** Per-request timeout (default 5 s). */
  requestTimeoutMs?: number;
  /** Delay before retrying a failed renewal or login (default 10 s). */
  retryMs?: number;
  /**
   * How long close() waits for Vault to revoke our token (default 2 s, at most requestTimeoutMs):
   * revoking is best effort, and a Vault that hangs must not hold the server's shutdown.
   */
  closeRevokeTimeoutMs?: number;
  /**
   * Refuse a secret version without report_token once one was read (default true): nothing else
   * would require a token then. loadSecrets turns it off when --report-token is there to fall back to.
   */
  keepReportToken?: boolean;
}

export interface VaultStatus {
  /** The last Vault call succeeded. */
  ok: boolean;
  /** The last successful Vault call of any kind (a renewal too). */
  lastSuccessAt: string | null;
  /** When the secret in use was read: what a failing Vault leaves the server serving with. */
  secretReadAt: string | null;
  failingSince: string | null;
  lastError: string | null;
  secretVersion: number | null;
  /** When the token expires unless renewed; null for a token without expiry. */
  tokenExpiresAt: string | null;
}

export type VaultOperation = 'login' | 'renew' | 'lookup' | 'revoke' | 'read';
const OPERATIONS: readonly VaultOperation[] = ['login', 'renew', 'lookup', 'revoke', 'read'];

export class VaultError extends Error {
  readonly name = 'VaultError';
  readonly code = 'ERR_VAULT';
  constructor(
    message: string,
    readonly operation: VaultOperation,
    /** HTTP status of Vault's answer; null when Vault could not be reached. */
    readonly status: number | null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface SecretValues {
  awsAccessKeyId?: string;
  awsSecretAccessKey?: string;
  reportToken?: string;
  reportTokenPrevious?: string;
  version: number | null;
}

/** A node-vault client configured only by its arguments. */
function vaultClient(addr: URL, token: string, timeoutMs: number): NodeVault.client {
  const client = NodeVault({ apiVersion: 'v1', endpoint: addr.href.replace(/\/$/, ''), token, requestOptions: { timeout: timeoutMs } });
  // node-vault falls back to VAULT_TOKEN / VAULT_PREFIX / VAULT_NAMESPACE from the environment;
  // configuration comes only from config/, so those fallbacks are cleared.
  client.token = token;
  (client as unknown as { pathPrefix: string }).pathPrefix = '';
  (client as unknown as { namespace?: string }).namespace = undefined;
  return client;
}

/** `secret/ecs-id-mapper` or `secret/data/ecs-id-mapper` → the KV v2 data path `secret/data/ecs-id-mapper`. */
export function kvDataPath(secretPath: string): string {
  const path = kvDataPathOf(secretPath);
  if (path === undefined) throw new VaultError(badSecretPath(secretPath), 'read', null);
  return path;
}

/**
 * Vault's first error message and status, or the transport failure. `timeoutMs` is the request's
 * timeout, named when it ran out: Vault (or a proxy before it) took the connection and did not answer,
 * which is not the same trouble as a refused connection.
 */
function describe(err: unknown, timeoutMs: number): { status: number | null; message: string } {
  const e = err as { response?: { statusCode?: number; body?: { errors?: unknown[] } }; message?: string; code?: string };
  const status = typeof e.response?.statusCode === 'number' ? e.response.statusCode : null;
  if (status !== null) {
    const first = e.response?.body?.errors?.[0];
    // Vault's messages may span lines ("1 error occurred:\n\t* ..."); errors here are one line.
    const text = typeof first === 'string' ? first.replace(/\s+/g, ' ').trim() : '';
    return { status, message: `HTTP ${status}${text ? ` ${text}` : ''}` };
  }
  // axios (node-vault's transport) ends a request past its timeout with ECONNABORTED "timeout of N ms exceeded".
  if (e.code === 'ECONNABORTED' && typeof e.message === 'string' && e.message.startsWith('timeout')) {
    return { status: null, message: `no answer within ${timeoutMs / 1000} s (the connection was made; Vault or a proxy in front of it does not answer)` };
  }
  const hint = tlsFailureHint(err);
  return { status: null, message: hint ? `unreachable: ${hint}` : `unreachable (${e.code ?? e.message ?? String(err)})` };
}

/**
 * Why a KV v2 read answered 404. Vault says nothing in `errors` either way; a version that was
 * deleted (`vault kv delete`) or destroyed comes with its metadata (vault-plugin-secrets-kv,
 * pathDataRead), while a path without any secret, or a KV v1 mount (which has no data/ paths), does not.
 */
function kvNotFound(err: unknown): string {
  const metadata = (err as { response?: { body?: { data?: { metadata?: { version?: unknown; deletion_time?: unknown; destroyed?: unknown } } } } }).response?.body?.data?.metadata;
  const version = typeof metadata?.version === 'number' ? ` (${metadata.version})` : '';
  if (metadata?.destroyed === true) return `its latest version${version} was destroyed: write a new version`;
  if (typeof metadata?.deletion_time === 'string' && metadata.deletion_time !== '') {
    return `its latest version${version} was deleted at ${metadata.deletion_time}: undelete it (vault kv undelete) or write a new version`;
  }
  return 'no secret there: check --vault-secret-path, and that the mount is KV version 2';
}

/**
 * The cause a VaultError carries: the failure's message and code only. node-vault's transport
 * errors are axios errors, which hold the request they failed, body included: an AppRole login's
 * secret_id would reach any log that serialises the error with its cause.
 */
function safeCause(err: unknown): Error {
  const e = err as { message?: unknown; code?: unknown };
  const cause = new Error(typeof e.message === 'string' ? e.message : String(err));
  if (typeof e.code === 'string') Object.assign(cause, { code: e.code });
  return cause;
}

interface Lease {
  seconds: number;
  renewable: boolean;
}

/**
 * Vault's warning on a renewal it capped at the token's max TTL ("TTL of "1h0m0s" exceeded the
 * effective max_ttl of "20m0s"; TTL value is capped accordingly"): renewals no longer extend it.
 */
function cappedAtMaxTtl(body: unknown): boolean {
  const warnings = (body as { warnings?: unknown } | undefined)?.warnings;
  return Array.isArray(warnings) && warnings.some((w) => typeof w === 'string' && w.includes('exceeded the effective max_ttl'));
}

function leaseOf(body: unknown): Lease {
  const auth = (body as { auth?: { lease_duration?: unknown; renewable?: unknown } } | undefined)?.auth;
  return { seconds: typeof auth?.lease_duration === 'number' ? auth.lease_duration : 0, renewable: auth?.renewable === true };
}

export class VaultSecrets {
  private readonly client: NodeVault.client;
  /**
   * AppRole logins go through a client of their own, which has no token: node-vault sends the
   * client's token with every request, and a login after the token expired sent the dead token
   * along (Vault Agent clears its token before it logs in, for the same reason).
   */
  private readonly loginClient: NodeVault.client;
  private readonly now: () => number;
  private readonly scheduler: Scheduler;
  private readonly retryMs: number;
  private readonly keepReportToken: boolean;
  private readonly requestTimeoutMs: number;
  private readonly closeRevokeTimeoutMs: number;
  private readonly dataPath: string;
  private readonly logger?: Logger;
  private values: SecretValues = { version: null };
  private tokenExpiresAt: number | null = null;
  /** The operator's token was seen capped at its max TTL (warned once). */
  private maxTtlWarned = false;
  /** Renewal has failed since the token was last leased (warned once per streak, not every retry). */
  private renewFailing = false;
  private renewTimer: unknown;
  private refreshTimer: unknown;
  private pending: Promise<void> = Promise.resolve();
  private closed = false;
  private closing?: Promise<void>;
  /**
   * The token the last AppRole login issued, which is then the token in use; undefined while the
   * operator's token (--vault-token) is in use. Only this one is ever revoked.
   */
  private issuedToken: string | undefined;
  private lastSuccessAt: number | null = null;
  private secretReadAt: number | null = null;
  /**
   * Since when reading the secret, and keeping a token, have been failing. Apart, so that a renewal
   * that works does not hide a secret that cannot be read (and the alert on vault_up never fired),
   * and a read that reaches Vault but brings an unusable version still counts as failing.
   */
  private readFailingSince: number | null = null;
  private tokenFailingSince: number | null = null;
  private lastError: string | null = null;
  private readonly metrics?: { up: Gauge; lastSuccess: Gauge; operations: Counter<'operation' | 'result'> };

  private constructor(
    private readonly config: VaultConfig,
    deps: VaultSecretsDeps,
  ) {
    this.now = deps.now ?? Date.now;
    this.scheduler = deps.scheduler ?? realScheduler;
    this.retryMs = deps.retryMs ?? 10_000;
    this.keepReportToken = deps.keepReportToken ?? true;
    this.requestTimeoutMs = deps.requestTimeoutMs ?? 5000;
    this.closeRevokeTimeoutMs = Math.min(deps.closeRevokeTimeoutMs ?? 2000, this.requestTimeoutMs);
    this.logger = deps.logger;
    this.dataPath = kvDataPath(config.secretPath);
    this.client = vaultClient(config.addr, config.token ?? '', this.requestTimeoutMs);
    this.loginClient = vaultClient(config.addr, '', this.requestTimeoutMs);
    if (deps.registry) {
      const operations = new Counter({
        name: 'ecs_id_mapper_vault_operations_total',
        help: 'Vault calls by operation (login, renew, lookup, revoke, read) and result (ok, error).',
        labelNames: ['operation', 'result'] as const,
        registers: [deps.registry],
      });
      for (const operation of OPERATIONS) for (const result of ['ok', 'error']) operations.inc({ operation, result }, 0);
      this.metrics = {
        operations,
        up: new Gauge({ name: 'ecs_id_mapper_vault_up', help: '1 while the secret is read and the token kept, 0 from the first failure of either until it works again (the last good secret stays in use).', registers: [deps.registry] }),
        lastSuccess: new Gauge({
          name: 'ecs_id_mapper_vault_last_success_timestamp_seconds',
          help: 'Unix time of the last successful Vault call.',
          registers: [deps.registry],
        }),
      };
    }
  }

  /** Logs in, reads the secret and schedules renewal and refresh. Throws VaultError on any failure. */
  static async start(config: VaultConfig, deps: VaultSecretsDeps = {}): Promise<VaultSecrets> {
    const secrets = new VaultSecrets(config, deps);
    try {
      await secrets.authenticate();
      await secrets.readSecret();
    } catch (err) {
      // Logging in scheduled the token's renewal: a start that fails leaves nothing running.
      await secrets.close();
      throw err;
    }
    secrets.scheduleRefresh();
    deps.logger?.info({ vault: config.addr.origin, path: secrets.dataPath, version: secrets.values.version, auth: config.token ? 'token' : 'approle' }, 'vault secret loaded');
    return secrets;
  }

  get awsAccessKeyId(): string | undefined {
    return this.values.awsAccessKeyId;
  }

  get awsSecretAccessKey(): string | undefined {
    return this.values.awsSecretAccessKey;
  }

  /** The current AWS keys (for the SimpleDB client's credential provider). */
  awsCredentials(): { accessKeyId: string; secretAccessKey: string } {
    if (!this.values.awsAccessKeyId || !this.values.awsSecretAccessKey) throw new VaultError(`the Vault secret at ${this.dataPath} holds no AWS keys`, 'read', null);
    return { accessKeyId: this.values.awsAccessKeyId, secretAccessKey: this.values.awsSecretAccessKey };
  }

  get reportToken(): string | undefined {
    return this.values.reportToken;
  }

  /** report_token_previous: still accepted while reporters move to report_token. */
  get reportTokenPrevious(): string | undefined {
    return this.values.reportTokenPrevious;
  }

  status(): VaultStatus {
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    return {
      ok: this.failingSince === null,
      lastSuccessAt: iso(this.lastSuccessAt),
      secretReadAt: iso(this.secretReadAt),
      failingSince: iso(this.failingSince),
      lastError: this.lastError,
      secretVersion: this.values.version,
      tokenExpiresAt: iso(this.tokenExpiresAt),
    };
  }

  /** Resolves when the renewal or refresh a timer started has finished (tests). */
  idle(): Promise<void> {
    return this.pending;
  }

  /**
   * Stops renewal and refresh, then revokes the token an AppRole login issued to this process
   * (waiting at most closeRevokeTimeoutMs; a failure is logged and counted, never thrown). An
   * operator's token is left valid. Calling it again waits for the first call.
   */
  close(): Promise<void> {
    return (this.closing ??= this.shutDown());
  }

  private async shutDown(): Promise<void> {
    this.closed = true;
    this.scheduler.clearTimeout(this.renewTimer);
    this.scheduler.clearTimeout(this.refreshTimer);
    // A renewal in flight may still log in again: the token to revoke is the one it leaves. Its
    // requests may each take requestTimeoutMs, so the wait is bounded like the revoke itself; a
    // login that ends after that leaves its token to run out its TTL.
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([this.pending.catch(() => {}), new Promise<void>((resolve) => (bound = setTimeout(resolve, this.closeRevokeTimeoutMs)))]);
    clearTimeout(bound);
    const token = this.issuedToken;
    this.issuedToken = undefined;
    const expired = this.tokenExpiresAt !== null && this.tokenExpiresAt <= this.now();
    if (token !== undefined && !expired) await this.revoke(token, 'at shutdown', this.closeRevokeTimeoutMs);
  }

  // --- token -----------------------------------------------------------------------------------

  /** A given token is checked (and its TTL learnt) with renew-self; otherwise AppRole login. */
  private async authenticate(): Promise<void> {
    if (this.config.token) {
      try {
        const body = await this.call('renew', () => this.client.tokenRenewSelf());
        this.tokenLeased(leaseOf(body));
        this.warnIfCapped(body);
      } catch (err) {
        // Vault answers 400 to a valid token it will not renew: one without a TTL (root), a batch
        // token, or a service token created non-renewable. Only lookup-self says which.
        if (err instanceof VaultError && err.status === 400) {
          await this.lookUpUnrenewableToken();
          return;
        }
        throw err;
      }
      return;
    }
    await this.login();
  }

  /**
   * A token renew-self refused: its remaining TTL from lookup-self (which Vault's default policy
   * allows). One that expires is used until then, with a warning now: nothing can extend it, and
   * after it the last secret read stays in use while vault_up says 0.
   */
  private async lookUpUnrenewableToken(): Promise<void> {
    let ttl: unknown;
    try {
      const body = await this.call('lookup', () => this.client.tokenLookupSelf());
      ttl = (body as { data?: { ttl?: unknown } } | undefined)?.data?.ttl;
    } catch (err) {
      // Renew-self just accepted the token as valid: reading the secret decides whether it works.
      this.succeeded('token');
      this.logger?.warn({ vault: this.config.addr.origin, err: err instanceof Error ? err.message : String(err) }, 'vault token is not renewable and its expiry is unknown (lookup-self failed)');
      this.tokenLeased({ seconds: 0, renewable: false });
      return;
    }
    const seconds = typeof ttl === 'number' && Number.isFinite(ttl) && ttl > 0 ? ttl : 0;
    this.tokenLeased({ seconds, renewable: false });
    if (seconds > 0 && !this.config.roleId) {
      this.logger?.warn(
        { vault: this.config.addr.origin, token_expires_at: new Date(this.tokenExpiresAt!).toISOString() },
        'vault token cannot be renewed and expires at the time shown; after that the secret is no longer refreshed (vault_up 0): give a renewable token or an AppRole',
      );
    }
  }

  private async login(): Promise<void> {
    if (!this.config.roleId || !this.config.secretId) throw new VaultError(`vault at ${this.config.addr.origin}: the token expired and no AppRole is configured to log in again`, 'login', null);
    const body = await this.call('login', async () => {
      try {
        return await this.loginClient.approleLogin({ role_id: this.config.roleId, secret_id: this.config.secretId });
      } finally {
        // node-vault keeps the token a login issued on the client that logged in.
        this.loginClient.token = '';
      }
    });
    const token = (body as { auth?: { client_token?: unknown } }).auth?.client_token;
    if (typeof token !== 'string' || token === '') throw new VaultError(`vault at ${this.config.addr.origin}: AppRole login answered without auth.client_token`, 'login', 200);
    this.client.token = token;
    this.issuedToken = token;
    this.tokenLeased(leaseOf(body));
  }

  /**
   * An operator's renewable token still has a max TTL, past which no renewal extends it: said once,
   * as soon as a renewal is capped (a lease before it ends), not when reads start failing. An
   * AppRole logs in again instead (renew).
   */
  private warnIfCapped(body: unknown): void {
    if (this.config.roleId || this.maxTtlWarned || !cappedAtMaxTtl(body) || this.tokenExpiresAt === null) return;
    this.maxTtlWarned = true;
    this.logger?.warn(
      { vault: this.config.addr.origin, token_expires_at: new Date(this.tokenExpiresAt).toISOString() },
      'vault token has reached its max TTL: renewals no longer extend it and it expires at the time shown; after that the secret is no longer refreshed (vault_up 0): give a new token or an AppRole before then',
    );
  }

  /** Schedules renewal at two thirds of the lease, so a missed attempt still leaves time to retry. */
  private tokenLeased(lease: Lease): void {
    this.renewFailing = false;
    this.scheduler.clearTimeout(this.renewTimer);
    if (lease.seconds <= 0) {
      this.tokenExpiresAt = null;
      return;
    }
    this.tokenExpiresAt = this.now() + lease.seconds * 1000;
    if (lease.renewable || this.config.roleId) {
      this.schedule('renew', Math.floor((lease.seconds * 1000 * 2) / 3));
    }
  }

  private async renew(): Promise<void> {
    try {
      const body = await this.call('renew', () => this.client.tokenRenewSelf());
      const lease = leaseOf(body);
      // Renewal stops extending at the token's max TTL: log in again before that runs out, and
      // revoke the old token rather than leave it valid until then.
      if (this.config.roleId && lease.seconds * 1000 < this.retryMs * 3) {
        const replaced = this.issuedToken;
        await this.login();
        if (replaced !== undefined) await this.revoke(replaced, 'after replacing it', this.requestTimeoutMs);
      } else {
        this.tokenLeased(lease);
        this.warnIfCapped(body);
      }
    } catch (err) {
      if (err instanceof VaultError && (err.status === 403 || err.status === 400) && this.config.roleId) {
        try {
          await this.login();
          return;
        } catch {
          // fall through to retry
        }
      }
      // Said once, when renewal starts failing: the refresh's warning comes only once a read fails,
      // which with a working read is when the token has run out.
      if (!this.renewFailing && !this.closed) {
        this.renewFailing = true;
        const expires = this.tokenExpiresAt === null ? null : new Date(this.tokenExpiresAt).toISOString();
        this.logger?.warn({ vault: this.config.addr.origin, err: this.lastError, token_expires_at: expires }, `vault token renewal failed; retrying every ${this.retryMs / 1000} s, the last good secret stays in use`);
      }
      this.schedule('renew', this.retryMs);
    }
  }

  /**
   * Revoke-self for a token AppRole login issued to us (callers never pass an operator's token).
   * Best effort: a failure is counted (revoke, error), logged and otherwise ignored; the token still runs out.
   */
  private async revoke(token: string, when: 'after replacing it' | 'at shutdown', timeoutMs: number): Promise<void> {
    try {
      await this.client.request({ path: '/auth/token/revoke-self', method: 'POST', headers: { 'X-Vault-Token': token }, timeout: timeoutMs });
      this.metrics?.operations.inc({ operation: 'revoke', result: 'ok' });
    } catch (err) {
      this.metrics?.operations.inc({ operation: 'revoke', result: 'error' });
      this.logger?.warn({ vault: this.config.addr.origin, err: describe(err, timeoutMs).message }, `vault: revoking our token ${when} failed; it stays valid until its TTL ends`);
    }
  }

  // --- secret ----------------------------------------------------------------------------------

  private async readSecret(): Promise<void> {
    const body = await this.call('read', () => this.client.read(this.dataPath));
    const data = (body as { data?: { data?: unknown; metadata?: { version?: unknown } } }).data;
    const kv = data?.data;
    if (!kv || typeof kv !== 'object') throw this.failed('read', new VaultError(`vault at ${this.config.addr.origin}: ${this.dataPath} is not a KV v2 secret (no data.data)`, 'read', 200));
    // A key that is not a string (a number written through the API), or a report_token that is
    // empty (`report_token="$UNSET"`), is refused rather than read as missing: a missing
    // report_token leaves the report routes open. An empty report_token_previous ends a rotation
    // (`vault kv patch` cannot remove a key), and empty AWS keys are logged as the default chain.
    const pick = (key: string): string | undefined => {
      const v = (kv as Record<string, unknown>)[key];
      if (v === undefined || (v === '' && key !== 'report_token')) return undefined;
      if (typeof v === 'string' && v !== '') return v;
      const problem = v === '' ? 'is empty' : `is ${v === null ? 'null' : `a ${typeof v}`}, not a string`;
      throw this.failed('read', new VaultError(`vault at ${this.config.addr.origin}: ${this.dataPath}: ${key} ${problem}`, 'read', 200));
    };
    const next: SecretValues = {
      awsAccessKeyId: pick('aws_access_key_id'),
      awsSecretAccessKey: pick('aws_secret_access_key'),
      reportToken: pick('report_token'),
      reportTokenPrevious: pick('report_token_previous'),
      version: typeof data?.metadata?.version === 'number' ? data.metadata.version : null,
    };
    for (const key of ['report_token', 'report_token_previous'] as const) {
      const value = pick(key);
      const problem = value === undefined ? undefined : reportTokenProblem(value);
      if (problem) throw this.failed('read', new VaultError(`vault at ${this.config.addr.origin}: ${this.dataPath}: ${key} ${problem}; an HTTP header cannot carry it as it is`, 'read', 200));
    }
    // A version without the report token would open the report routes to anyone, silently (a
    // `vault kv put` that rotates the AWS keys replaces the whole secret). Kept as a failed read:
    // the token in force stays, vault_up says 0, and the log says why. Restart to drop the token.
    if (this.keepReportToken && this.values.reportToken !== undefined && next.reportToken === undefined) {
      throw this.failed('read', new VaultError(`vault at ${this.config.addr.origin}: ${this.dataPath} version ${next.version ?? '?'} has no report_token; keeping the one in force (without it, reports would need no token: restart the server to drop it)`, 'read', 200));
    }
    // AWS keys are optional but a pair; once read, a version without them is refused like a missing
    // report token (the SimpleDB client was given Vault's keys and would be left with none).
    const missing = ['aws_access_key_id', 'aws_secret_access_key'].filter((k) => pick(k) === undefined);
    const keysInUse = this.values.awsAccessKeyId !== undefined;
    if (missing.length === 1 || (missing.length === 2 && keysInUse)) {
      const why = missing.length === 2 && keysInUse ? '; keeping the keys in force (the SimpleDB client uses them: restart to move to the AWS default credential chain)' : '';
      throw this.failed('read', new VaultError(`vault at ${this.config.addr.origin}: ${this.dataPath} lacks ${missing.join(' and ')}${why}`, 'read', 200));
    }
    if (this.values.version !== null && !keysInUse && next.awsAccessKeyId !== undefined) {
      this.logger?.warn({ path: this.dataPath, version: next.version }, 'vault secret now holds AWS keys; SimpleDB keeps the AWS default credential chain it started with until the server restarts');
    }
    if (this.values.version !== null && next.version !== this.values.version) {
      this.logger?.info({ path: this.dataPath, from: this.values.version, to: next.version }, 'vault secret rotated');
    }
    this.values = next;
    this.secretReadAt = this.now();
    this.succeeded('read');
  }

  private async refresh(): Promise<void> {
    try {
      await this.readSecret();
    } catch (err) {
      // A 403 means a dead token or a policy without read on the secret. Only the first is mended by
      // logging in again: lookup-self (default policy) tells them apart. Logging in on a policy's 403
      // left one more live token behind at every refresh.
      if (err instanceof VaultError && err.status === 403 && this.config.roleId && !(await this.tokenAlive())) {
        try {
          await this.login();
          await this.readSecret();
        } catch {
          // kept: the last good secret
        }
      }
      if (this.failingSince !== null) this.logger?.warn({ err: this.lastError, since: new Date(this.failingSince).toISOString() }, 'vault unavailable; keeping the last good secret');
    } finally {
      this.scheduleRefresh();
    }
  }

  /** lookup-self: false when Vault refuses the token (403), true when it accepts it or cannot say. */
  private async tokenAlive(): Promise<boolean> {
    try {
      await this.call('lookup', () => this.client.tokenLookupSelf());
      return true;
    } catch (err) {
      return !(err instanceof VaultError && err.status === 403);
    }
  }

  private scheduleRefresh(): void {
    this.schedule('refresh', this.config.refreshIntervalMs);
  }

  // --- plumbing --------------------------------------------------------------------------------

  private schedule(what: 'renew' | 'refresh', wanted: number): void {
    if (this.closed) return;
    // Node runs a timer of more than 2^31 - 1 ms after 1 ms: a token leased 40 days was renewed
    // hundreds of times a second. Earlier is harmless: renewal and refresh are idempotent.
    const ms = Math.min(wanted, TIMER_MAX_MS);
    const run = () => {
      if (this.closed) return;
      this.pending = this.pending.then(() => (what === 'renew' ? this.renew() : this.refresh())).catch(() => {});
    };
    if (what === 'renew') {
      this.scheduler.clearTimeout(this.renewTimer);
      this.renewTimer = this.scheduler.setTimeout(run, ms);
    } else {
      this.scheduler.clearTimeout(this.refreshTimer);
      this.refreshTimer = this.scheduler.setTimeout(run, ms);
    }
  }

  /** The earlier of the two failures, or null when neither is failing. */
  private get failingSince(): number | null {
    const since = [this.readFailingSince, this.tokenFailingSince].filter((t): t is number => t !== null);
    return since.length === 0 ? null : Math.min(...since);
  }

  /** A login or renewal worked, or (`read`) a usable secret version was read: that part is healthy again. */
  private succeeded(part: 'read' | 'token'): void {
    if (part === 'read') this.readFailingSince = null;
    else this.tokenFailingSince = null;
    if (this.failingSince === null) {
      this.lastError = null;
      this.metrics?.up.set(1);
    }
  }

  private async call<T>(operation: VaultOperation, fn: () => Promise<T>): Promise<T> {
    try {
      const value = await fn();
      this.metrics?.operations.inc({ operation, result: 'ok' });
      this.lastSuccessAt = this.now();
      this.metrics?.lastSuccess.set(this.lastSuccessAt / 1000);
      // A read is healthy only once its content is usable (readSecret).
      if (operation !== 'read') this.succeeded('token');
      return value;
    } catch (err) {
      const described = describe(err, this.requestTimeoutMs);
      const { status } = described;
      const message = operation === 'read' && status === 404 ? `${described.message}: ${kvNotFound(err)}` : described.message;
      const what = { read: `reading ${this.dataPath}`, login: 'AppRole login', renew: 'token renew-self', lookup: 'token lookup-self', revoke: 'token revoke-self' }[operation];
      throw this.failed(operation, new VaultError(`vault at ${this.config.addr.origin}: ${what} failed: ${message}`, operation, status, { cause: safeCause(err) }));
    }
  }

  private failed(operation: VaultOperation, err: VaultError): VaultError {
    this.metrics?.operations.inc({ operation, result: 'error' });
    this.metrics?.up.set(0);
    if (operation === 'read') this.readFailingSince ??= this.now();
    else this.tokenFailingSince ??= this.now();
    this.lastError = err.message;
    return err;
  }
}
