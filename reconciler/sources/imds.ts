// Client for the EC2 instance metadata service, IMDSv2 first.
//
// Contract:
// - A session token comes from `PUT /latest/api/token` and is reused until 80% of its TTL has passed.
// - A 401 on a GET means the token is no longer valid: it is dropped, a new one fetched, the GET
//   retried once.
// - IMDSv1 (GETs without a token) is used ONLY when the token PUT times out or is refused (connection
//   refused, 403, 404, 405, as the AWS SDKs): the container hop-limit problem, where the PUT answer
//   never comes back, or an endpoint without the token route.
//   Each fallback calls `onFallback` (a metric). IMDSv2 is tried again after `v2RetryAfterMs`.
// - instance-id is required; the other paths are null when IMDS answers 404. Any other failure makes
//   the whole identity a failed observation (ObservationError, source 'imds').
import type { Dispatcher } from '../undici.js';
import { INSTANCE_ID } from '../../wire/ids.js';
import { errorCode, exchange } from './http.js';
import { ObservationError, type ImdsSource, type InstanceIdentity } from './types.js';

export interface ImdsClientOptions {
  /** e.g. http://169.254.169.254 */
  baseUrl: URL;
  timeoutMs: number;
  /** Requested token lifetime, 1..21600 seconds. */
  tokenTtlSeconds: number;
  /** Clock in milliseconds (Date.now by default); injected by tests to age the token. */
  now?: () => number;
  /** Called once per fallback to IMDSv1. */
  onFallback?: () => void;
  /** After a fallback, IMDSv1 is used for this long before IMDSv2 is tried again. Default 5 min. */
  v2RetryAfterMs?: number;
  dispatcher?: Dispatcher;
}

/** Share of the token TTL after which a new token is fetched. */
const TOKEN_REFRESH_AT = 0.8;
const DEFAULT_V2_RETRY_AFTER_MS = 5 * 60_000;

/**
 * What an optional value must look like (within the server's WIRE_LIMITS.host). A 200 whose body is
 * not one (an error page from something between us and IMDS) fails the identity like a bad
 * instance-id: the loop keeps the first identity it gets, and the server refused an instance_az of
 * a whole HTML page, so the host would never have reported again.
 */
const SHAPES = {
  instance_ip: /^\d{1,3}(?:\.\d{1,3}){3}$/,
  instance_type: /^[a-z0-9][a-z0-9.-]{0,63}$/,
  instance_az: /^[a-z0-9][a-z0-9-]{0,63}$/,
  region: /^[a-z0-9][a-z0-9-]{0,63}$/,
  // A DHCP options set with several domain names gives several names, space-separated.
  host_name: /^(?=.{1,255}$)[A-Za-z0-9._-]+(?: [A-Za-z0-9._-]+)*$/,
} as const satisfies Record<Exclude<keyof InstanceIdentity, 'instance_id'>, RegExp>;

const PATHS = {
  instance_id: 'instance-id',
  instance_ip: 'local-ipv4',
  instance_type: 'instance-type',
  instance_az: 'placement/availability-zone',
  region: 'placement/region',
  host_name: 'hostname',
} as const satisfies Record<keyof InstanceIdentity, string>;

interface Token {
  value: string;
  refreshAt: number;
}

export function createImdsClient(options: ImdsClientOptions): ImdsSource {
  const now = options.now ?? Date.now;
  const v2RetryAfterMs = options.v2RetryAfterMs ?? DEFAULT_V2_RETRY_AFTER_MS;
  let token: Token | undefined;
  /** While set and in the future, GETs go without a token (IMDSv1). */
  let v1Until: number | undefined;
  let pendingToken: Promise<string | null> | undefined;

  async function fetchToken(signal?: AbortSignal): Promise<string | null> {
    const what = 'IMDS PUT /latest/api/token';
    let status: number;
    let body: string;
    try {
      ({ status, body } = await exchange('imds', what, {
        method: 'PUT',
        url: new URL('/latest/api/token', options.baseUrl),
        headers: { 'x-aws-ec2-metadata-token-ttl-seconds': String(options.tokenTtlSeconds) },
        timeoutMs: options.timeoutMs,
        signal,
        dispatcher: options.dispatcher,
        maxBodyBytes: 64 * 1024,
      }));
    } catch (error) {
      const refused = error instanceof ObservationError && (error.code === 'ERR_TIMEOUT' || errorCode(error.cause) === 'ECONNREFUSED');
      if (refused) return fallBack();
      throw error;
    }
    // As the AWS SDKs: 403 (tokens disabled), 404 (no token route: an older endpoint or emulator,
    // a proxy), 405 (PUT not allowed on the way).
    if (status === 403 || status === 404 || status === 405) return fallBack();
    if (status !== 200) throw new ObservationError('imds', 'ERR_HTTP_STATUS', `${what}: HTTP ${status}`, { status });
    const value = body.trim();
    // It goes back in a header: visible ASCII only (IMDS gives base64). Kept, a token no header can
    // carry failed every GET as "unreachable (invalid header)" until 80% of its TTL had passed.
    if (!/^[\x21-\x7e]+$/.test(value)) throw new ObservationError('imds', 'ERR_GARBAGE', `${what}: not a token`, { status });
    token = { value, refreshAt: now() + options.tokenTtlSeconds * 1000 * TOKEN_REFRESH_AT };
    v1Until = undefined;
    return value;
  }

  function fallBack(): null {
    token = undefined;
    v1Until = now() + v2RetryAfterMs;
    options.onFallback?.();
    return null;
  }

  /** The token to send, or null for IMDSv1. Concurrent callers share one PUT. */
  function currentToken(signal?: AbortSignal): Promise<string | null> {
    if (v1Until !== undefined && now() < v1Until) return Promise.resolve(null);
    if (token && now() < token.refreshAt) return Promise.resolve(token.value);
    pendingToken ??= fetchToken(signal).finally(() => {
      pendingToken = undefined;
    });
    return pendingToken;
  }

  async function getOnce(path: string, sessionToken: string | null, signal?: AbortSignal) {
    return exchange('imds', `IMDS GET ${path}`, {
      url: new URL(`/latest/meta-data/${path}`, options.baseUrl),
      headers: sessionToken ? { 'x-aws-ec2-metadata-token': sessionToken } : {},
      timeoutMs: options.timeoutMs,
      signal,
      dispatcher: options.dispatcher,
      maxBodyBytes: 64 * 1024,
    });
  }

  /** One metadata value: trimmed text, or null on 404 / empty body unless `required`. */
  async function get(path: string, signal?: AbortSignal, required = false): Promise<string | null> {
    let sessionToken = await currentToken(signal);
    let answer = await getOnce(path, sessionToken, signal);
    if (answer.status === 401 && sessionToken !== null) {
      if (token?.value === sessionToken) token = undefined;
      sessionToken = await currentToken(signal);
      answer = await getOnce(path, sessionToken, signal);
    }
    if (answer.status === 401) {
      // IMDSv1 refused: the instance requires tokens, so try IMDSv2 again on the next call.
      if (sessionToken === null) v1Until = undefined;
      throw new ObservationError('imds', 'ERR_UNAUTHORIZED', `IMDS GET ${path}: HTTP 401${sessionToken === null ? ' without a token (IMDSv2 required)' : ' with a fresh token'}`, { status: 401 });
    }
    if (answer.status === 404 && !required) return null;
    if (answer.status !== 200) throw new ObservationError('imds', 'ERR_HTTP_STATUS', `IMDS GET ${path}: HTTP ${answer.status}`, { status: answer.status });
    const value = answer.body.trim();
    return value === '' ? null : value;
  }

  return {
    async identity(signal) {
      const instanceId = await get(PATHS.instance_id, signal, true);
      if (instanceId === null) throw new ObservationError('imds', 'ERR_ZERO_VALUE', 'IMDS instance-id: empty');
      if (!INSTANCE_ID.test(instanceId)) throw new ObservationError('imds', 'ERR_GARBAGE', `IMDS instance-id: not an instance id: ${JSON.stringify(instanceId.slice(0, 80))}`);
      const [instance_ip, instance_type, instance_az, region, host_name] = await Promise.all([
        get(PATHS.instance_ip, signal),
        get(PATHS.instance_type, signal),
        get(PATHS.instance_az, signal),
        get(PATHS.region, signal),
        get(PATHS.host_name, signal),
      ]);
      const values = { instance_ip, instance_type, instance_az, region, host_name };
      for (const key of Object.keys(SHAPES) as Array<keyof typeof SHAPES>) {
        const value = values[key];
        if (value !== null && !SHAPES[key].test(value)) {
          throw new ObservationError('imds', 'ERR_GARBAGE', `IMDS ${PATHS[key]}: not what the path holds: ${JSON.stringify(value.slice(0, 80))}`);
        }
      }
      return { instance_id: instanceId, ...values };
    },
  };
}
