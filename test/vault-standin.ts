// A loopback stand-in for HashiCorp Vault, faithful to Vault's documented HTTP API for exactly the
// endpoints ecs-id-mapper uses (no Vault server can be installed here):
//   POST /v1/auth/approle/login        {role_id, secret_id} → {auth: {client_token, lease_duration, renewable, ...}}
//   POST /v1/auth/token/renew-self     X-Vault-Token, {increment?} → {auth: {...}}
//   GET  /v1/auth/token/lookup-self    X-Vault-Token → {data: {ttl, expire_time, renewable, type, ...}}
//   POST /v1/auth/token/revoke-self    X-Vault-Token → 204
//   GET  /v1/<mount>/data/<path>       X-Vault-Token → {data: {data: {...}, metadata: {version, ...}}} (KV v2)
//   GET  /v1/sys/health                → {initialized, sealed, standby, ...}
// Errors are Vault's `{"errors":[...]}` bodies: 400 bad login / not renewable, 403 permission denied
// (missing, unknown or expired token, or a policy without read on the secret), 404 `{"errors":[]}`
// for a secret path with no data, 503 `Vault is sealed`, 500 when told to fail. A KV v2 version
// that was deleted or destroyed answers 404 with the full envelope, `data.data` null and
// `data.metadata` set, and no `errors` (vault-plugin-secrets-kv path_data.go, pathDataRead: "If the
// version has been deleted return metadata with a 404"; the KV v2 API page,
// developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2#read-secret-version, documents only the 200).
// Switches: down (connections reset), unresponsive (requests never answered), fail (500), sealed,
// deny reads of the secret, rotate, delete or destroy the latest version, expire tokens.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface VaultStandinOptions {
  /**
   * A token accepted from the start (like one given with --vault-token); ttlSeconds 0 = never
   * expires, not renewable. `renewable` (default: ttlSeconds > 0) false makes a token with a TTL
   * that renew-self refuses; a batch token is never renewable.
   */
  staticToken?: { token: string; ttlSeconds: number; renewable?: boolean; type?: 'service' | 'batch' };
  approle?: { roleId: string; secretId: string };
  /** TTL of tokens issued by AppRole login (seconds). */
  tokenTtlSeconds?: number;
  /** Longest TTL a renewal may reach (seconds). */
  tokenMaxTtlSeconds?: number;
  /** KV v2 mount and path of the one secret, e.g. secret + ecs-id-mapper. */
  mount?: string;
  path?: string;
  secret?: Record<string, string>;
  /** Milliseconds clock for token expiry (a fake clock in tests). */
  now?: () => number;
  /**
   * A standby node of the active one at this URL that does not forward requests (forwarding off or
   * failing): every request answers 307 with `Location` at the active node and no body, and
   * sys/health 429 with `standby: true` (developer.hashicorp.com/vault/docs/concepts/ha, "Client
   * redirection"; developer.hashicorp.com/vault/api-docs/system/health).
   */
  standbyOf?: string;
}

export interface VaultRequestLog {
  method: string;
  path: string;
  token: string | undefined;
}

export interface VaultStandin {
  url: string;
  requests: VaultRequestLog[];
  /** Down: every connection is reset before an answer, as if Vault were unreachable. */
  setDown(down: boolean): void;
  /** Unresponsive: requests are read (and logged) but never answered, as from a Vault that hangs. */
  setUnresponsive(unresponsive: boolean): void;
  /** Every request answers 500 with an errors body. */
  setFailing(failing: boolean): void;
  /**
   * Sealed: every request answers 503 `{"errors":["Vault is sealed"]}`, and sys/health 503 with
   * `sealed: true` (developer.hashicorp.com/vault/api-docs/system/health: 503 = unsealed is false).
   */
  setSealed(sealed: boolean): void;
  /** Denied: tokens stay valid, but reading the secret answers 403 (a policy without read on it). */
  setReadDenied(denied: boolean): void;
  /**
   * `vault kv delete` (soft delete, `deletion_time` set) or `vault kv destroy` (`destroyed: true`)
   * of the latest version: reads answer 404 with its metadata until the next rotate().
   */
  deleteLatest(how: 'delete' | 'destroy'): void;
  /** Writes a new version of the secret (undefined deletes it: reads answer 404). */
  rotate(secret: Record<string, string> | undefined): void;
  /** Every issued and static token expires now. */
  expireTokens(): void;
  /** Seconds left on a token (undefined when unknown, expired or revoked). */
  tokenTtl(token: string): number | undefined;
  /** Tokens revoked with revoke-self, in order. */
  revoked: string[];
  close(): Promise<void>;
}

interface TokenInfo {
  /** ms; Infinity for a non-expiring token. */
  expiresAt: number;
  ttlSeconds: number;
  renewable: boolean;
  type: 'service' | 'batch';
  issuedAt: number;
  policies: string[];
}

export async function startVaultStandin(opts: VaultStandinOptions = {}): Promise<VaultStandin> {
  const now = opts.now ?? Date.now;
  const mount = opts.mount ?? 'secret';
  const secretPath = opts.path ?? 'ecs-id-mapper';
  const ttl = opts.tokenTtlSeconds ?? 3600;
  const maxTtl = opts.tokenMaxTtlSeconds ?? 86_400;
  const tokens = new Map<string, TokenInfo>();
  if (opts.staticToken) {
    const t = opts.staticToken;
    tokens.set(t.token, {
      expiresAt: t.ttlSeconds === 0 ? Infinity : now() + t.ttlSeconds * 1000,
      ttlSeconds: t.ttlSeconds,
      renewable: t.type !== 'batch' && (t.renewable ?? t.ttlSeconds > 0),
      type: t.type ?? 'service',
      issuedAt: now(),
      policies: t.ttlSeconds === 0 ? ['root'] : ['default', 'ecs-id-mapper'],
    });
  }
  let secret = opts.secret;
  let version = secret ? 1 : 0;
  let createdTime = new Date(now()).toISOString();
  let down = false;
  let unresponsive = false;
  let failing = false;
  let sealed = false;
  let readDenied = false;
  let deletion: { time: string; destroyed: boolean } | undefined;
  const requests: VaultRequestLog[] = [];
  const revoked: string[] = [];
  const sockets = new Set<Socket>();

  const envelope = (extra: Record<string, unknown>) => ({
    request_id: randomUUID(),
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data: null,
    wrap_info: null,
    warnings: null,
    auth: null,
    mount_type: '',
    ...extra,
  });

  const authBlock = (token: string, info: TokenInfo, meta: Record<string, string>) => ({
    client_token: token,
    accessor: randomUUID().replaceAll('-', '').slice(0, 24),
    policies: info.policies,
    token_policies: info.policies,
    metadata: meta,
    lease_duration: Number.isFinite(info.expiresAt) ? Math.max(0, Math.round((info.expiresAt - now()) / 1000)) : 0,
    renewable: info.renewable,
    entity_id: randomUUID(),
    token_type: info.type,
    orphan: true,
    mfa_requirement: null,
    num_uses: 0,
  });

  const liveToken = (token: string | undefined): TokenInfo | undefined => {
    if (!token) return undefined;
    const info = tokens.get(token);
    if (!info || info.expiresAt <= now()) return undefined;
    return info;
  };

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(status === 204 ? undefined : JSON.stringify(body));
  };

  const readBody = (req: IncomingMessage) =>
    new Promise<string>((resolve, reject) => {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (text += c));
      req.on('end', () => resolve(text));
      req.on('error', reject);
    });

  const server = createServer(async (req, res) => {
    if (down) {
      req.socket.destroy();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://vault');
    const token = req.headers['x-vault-token'] as string | undefined;
    requests.push({ method: req.method ?? '', path: url.pathname, token });
    const text = await readBody(req);
    if (unresponsive) return;
    if (failing) return send(res, 500, { errors: ['1 error occurred:\n\t* internal error (stand-in told to fail)\n\n'] });
    if (sealed && url.pathname !== '/v1/sys/health') return send(res, 503, { errors: ['Vault is sealed'] });
    if (opts.standbyOf && url.pathname !== '/v1/sys/health') {
      res.writeHead(307, { location: new URL(req.url ?? '/', opts.standbyOf).href, 'cache-control': 'no-store' }).end();
      return;
    }
    let json: Record<string, unknown> = {};
    if (text) {
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch {
        return send(res, 400, { errors: ['failed to parse JSON input: invalid character'] });
      }
    }

    if (req.method === 'GET' && url.pathname === '/v1/sys/health') {
      return send(res, sealed ? 503 : opts.standbyOf ? 429 : 200, {
        initialized: true,
        sealed,
        standby: opts.standbyOf !== undefined,
        performance_standby: false,
        replication_performance_mode: 'disabled',
        replication_dr_mode: 'disabled',
        server_time_utc: Math.floor(now() / 1000),
        version: '1.17.0+standin',
        cluster_name: 'vault-cluster-standin',
        cluster_id: '00000000-0000-0000-0000-000000000000',
      });
    }

    if ((req.method === 'POST' || req.method === 'PUT') && url.pathname === '/v1/auth/approle/login') {
      const roleId = json.role_id;
      const secretId = json.secret_id;
      if (typeof roleId !== 'string' || roleId === '') return send(res, 400, { errors: ['missing role_id'] });
      if (!opts.approle || roleId !== opts.approle.roleId) return send(res, 400, { errors: ['invalid role or secret ID'] });
      if (typeof secretId !== 'string' || secretId !== opts.approle.secretId) return send(res, 400, { errors: ['invalid role or secret ID'] });
      const issued = `hvs.${randomUUID().replaceAll('-', '')}`;
      const info: TokenInfo = { expiresAt: now() + ttl * 1000, ttlSeconds: ttl, renewable: true, type: 'service', issuedAt: now(), policies: ['default', 'ecs-id-mapper'] };
      tokens.set(issued, info);
      return send(res, 200, envelope({ auth: authBlock(issued, info, { role_name: 'ecs-id-mapper' }) }));
    }

    if ((req.method === 'POST' || req.method === 'PUT') && url.pathname === '/v1/auth/token/renew-self') {
      const info = liveToken(token);
      if (!info) return send(res, 403, { errors: ['permission denied'] });
      if (info.type === 'batch') return send(res, 400, { errors: ['batch tokens cannot be renewed'] });
      if (!info.renewable) return send(res, 400, { errors: ['lease is not renewable'] });
      const increment = typeof json.increment === 'number' ? json.increment : typeof json.increment === 'string' ? Number.parseInt(json.increment, 10) : info.ttlSeconds;
      const cap = info.issuedAt + maxTtl * 1000;
      info.expiresAt = Math.min(cap, now() + increment * 1000);
      // Vault's CalculateTTL warning (its durations in Go's format; seconds here).
      const granted = Math.max(0, Math.round((info.expiresAt - now()) / 1000));
      const warnings = info.expiresAt === cap ? [`TTL of "${increment}s" exceeded the effective max_ttl of "${granted}s"; TTL value is capped accordingly`] : null;
      return send(res, 200, envelope({ warnings, auth: authBlock(token!, info, {}) }));
    }

    if (req.method === 'GET' && url.pathname === '/v1/auth/token/lookup-self') {
      const info = liveToken(token);
      if (!info) return send(res, 403, { errors: ['permission denied'] });
      const finite = Number.isFinite(info.expiresAt);
      return send(
        res,
        200,
        envelope({
          data: {
            accessor: '',
            creation_time: Math.floor(info.issuedAt / 1000),
            creation_ttl: info.ttlSeconds,
            display_name: 'token',
            entity_id: '',
            expire_time: finite ? new Date(info.expiresAt).toISOString() : null,
            explicit_max_ttl: 0,
            id: info.type === 'batch' ? '' : token,
            issue_time: new Date(info.issuedAt).toISOString(),
            meta: null,
            num_uses: 0,
            orphan: true,
            path: 'auth/token/create',
            policies: info.policies,
            renewable: info.renewable,
            ttl: finite ? Math.max(0, Math.round((info.expiresAt - now()) / 1000)) : 0,
            type: info.type,
          },
        }),
      );
    }

    if ((req.method === 'POST' || req.method === 'PUT') && url.pathname === '/v1/auth/token/revoke-self') {
      if (!liveToken(token)) return send(res, 403, { errors: ['permission denied'] });
      tokens.delete(token!);
      revoked.push(token!);
      return send(res, 204, null);
    }

    const dataPrefix = `/v1/${mount}/data/`;
    if (req.method === 'GET' && url.pathname.startsWith(dataPrefix)) {
      if (!liveToken(token)) return send(res, 403, { errors: ['permission denied'] });
      if (readDenied) return send(res, 403, { errors: ['1 error occurred:\n\t* permission denied\n\n'] });
      if (url.pathname.slice(dataPrefix.length) !== secretPath || !secret) return send(res, 404, { errors: [] });
      const metadata = { created_time: createdTime, custom_metadata: null, deletion_time: deletion?.time ?? '', destroyed: deletion?.destroyed ?? false, version };
      if (deletion) return send(res, 404, envelope({ data: { data: null, metadata }, mount_type: 'kv' }));
      return send(res, 200, envelope({ data: { data: { ...secret }, metadata }, mount_type: 'kv' }));
    }

    // Vault answers unknown paths under a valid token 404, and anything without one 403.
    if (!liveToken(token)) return send(res, 403, { errors: ['permission denied'] });
    return send(res, 404, { errors: [`no handler for route "${url.pathname.slice(4)}". route entry not found.`] });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    revoked,
    setDown(value) {
      down = value;
      if (value) for (const s of sockets) s.destroy();
    },
    setUnresponsive(value) {
      unresponsive = value;
    },
    setFailing(value) {
      failing = value;
    },
    setSealed(value) {
      sealed = value;
    },
    setReadDenied(value) {
      readDenied = value;
    },
    deleteLatest(how) {
      // Destroying keeps a deletion_time only if the version had been deleted first.
      deletion = how === 'destroy' ? { time: deletion?.time ?? '', destroyed: true } : { time: new Date(now()).toISOString(), destroyed: deletion?.destroyed ?? false };
    },
    rotate(next) {
      deletion = undefined;
      secret = next;
      version++;
      createdTime = new Date(now()).toISOString();
    },
    expireTokens() {
      for (const info of tokens.values()) info.expiresAt = now();
    },
    tokenTtl(t) {
      const info = liveToken(t);
      if (!info) return undefined;
      return Number.isFinite(info.expiresAt) ? Math.round((info.expiresAt - now()) / 1000) : Infinity;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
