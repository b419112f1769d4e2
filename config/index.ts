// The config module: every command's flags, their env vars and defaults, and the typed config each
// command receives. Nothing outside config/ reads process.argv or process.env.
import { closest, ConfigError, ENV_PREFIX, envName, nameEnvSource, parseFlags, renderHelp, CENTURY_MS, TIMER_MAX_MS, type FlagSpec, type ParsedFlags, type ParseResult } from './flags.js';
import { parseStoreUrl, type StoreConfig } from './store-url.js';
import { parseLinks, type LinkTemplate } from './links.js';
import { isIP } from 'node:net';
import { INSTANCE_ID } from '../wire/ids.js';
import { DEFAULT_CACHE_SIZE_BYTES, DEFAULT_MMAP_SIZE_BYTES, SQLITE_MAX_MMAP_BYTES } from '../storage/sqlite/sizes.js';
import { DEFAULT_HISTORY_LIMIT } from '../storage/history-bound.js';
import { badSecretPath, kvDataPathOf } from '../secrets/kv-path.js';
import { extraCaCertsProblem } from '../cli/tls-trust.js';

export { ConfigError, parseDuration, envName } from './flags.js';
export type { StoreConfig } from './store-url.js';
export type { LinkTemplate } from './links.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

const logLevelFlag: FlagSpec = { name: 'log-level', kind: 'string', default: 'info', help: `Log level: ${LOG_LEVELS.join(', ')}.` };

function logLevel(f: ParsedFlags): LogLevel {
  const v = f['log-level'] as string;
  if (!LOG_LEVELS.includes(v as LogLevel)) throw new ConfigError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got "${v}"`);
  return v as LogLevel;
}

function httpUrl(flag: string, value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`--${flag}: not a URL: "${value}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`--${flag}: expected an http(s) URL, got "${value}"`);
  // Paths are appended to a base URL: a query or fragment would swallow them, and credentials
  // would be sent nowhere useful and logged with the URL at start (never echoed here).
  if (url.username !== '' || url.password !== '') {
    throw new ConfigError(`--${flag}: a base URL takes no user name or password (${url.protocol}//${url.host}${url.pathname}); ${flag === 'server' ? 'a report token goes in --report-token' : 'remove them'}`);
  }
  if (url.search !== '' || url.hash !== '') throw new ConfigError(`--${flag}: a base URL takes no query string or fragment, got "${value}"`);
  return url;
}

function optionalString(f: ParsedFlags, name: string): string | undefined {
  const v = f[name] as string | undefined;
  return v === undefined || v === '' ? undefined : v;
}

/**
 * Why a report token cannot work, or undefined. A token travels in an Authorization header, which
 * cannot carry control characters and carries non-ASCII unreliably, and whose value clients and
 * proxies trim: a token with a trailing newline (read from a file) or space would never match what
 * arrives. Never quotes the token.
 */
export function reportTokenProblem(token: string): string | undefined {
  if (/[\x00-\x1f\x7f]/.test(token)) return /[\r\n]$/.test(token) ? 'ends with a line break (read from a file with a trailing newline?)' : 'holds a control character';
  if (/[^\x20-\x7e]/.test(token)) return 'holds a character outside printable ASCII';
  if (token !== token.trim()) return 'starts or ends with a space';
  return undefined;
}

/** A report token flag's value, refused (ConfigError) when it could never be sent in a header. */
function reportTokenFlag(f: ParsedFlags, name: string): string | undefined {
  // Only the command line gives an empty value (an empty env var reads as unset). Taken as "no
  // token", `--report-token=$UNSET` would open the report routes, over a token in the environment.
  if (f[name] === '') throw new ConfigError(`--${name}: empty; leave the flag out to accept reports without a token`);
  const token = optionalString(f, name);
  const problem = token === undefined ? undefined : reportTokenProblem(token);
  if (problem) throw new ConfigError(`--${name}: the token ${problem}; an HTTP header cannot carry it as it is`);
  return token;
}

// ---------------------------------------------------------------------------------------------
// Vault (shared by server and reconciler)

export interface VaultConfig {
  addr: URL;
  token?: string;
  roleId?: string;
  secretId?: string;
  /** KV v2 path, e.g. `secret/data/ecs-id-mapper` or `secret/ecs-id-mapper` (mount/path). */
  secretPath: string;
  /** How often the secret is re-read so rotated values are used without a restart. */
  refreshIntervalMs: number;
}

const vaultFlags: FlagSpec[] = [
  { name: 'vault-addr', kind: 'string', help: 'Vault address (https://vault:8200). When set, AWS keys and the report token come from Vault.' },
  { name: 'vault-token', kind: 'string', secret: true, help: 'Vault token (or use AppRole).' },
  { name: 'vault-role-id', kind: 'string', help: 'AppRole role_id.' },
  { name: 'vault-secret-id', kind: 'string', secret: true, help: 'AppRole secret_id.' },
  { name: 'vault-secret-path', kind: 'string', default: 'secret/data/ecs-id-mapper', help: 'KV v2 path holding aws_access_key_id, aws_secret_access_key and optionally report_token (and report_token_previous while rotating it).' },
  { name: 'vault-refresh-interval', kind: 'duration', max: TIMER_MAX_MS, default: '5m', min: 1000, help: 'How often the secret is re-read.' },
];

function vaultConfig(f: ParsedFlags): VaultConfig | undefined {
  const addr = optionalString(f, 'vault-addr');
  const token = optionalString(f, 'vault-token');
  const roleId = optionalString(f, 'vault-role-id');
  const secretId = optionalString(f, 'vault-secret-id');
  if (!addr) {
    // Vault credentials without its address: a deployment meant to take its secrets (the report
    // token among them) from Vault, with the address lost on the way (an empty template value).
    // Ignored, the server would start with open report routes.
    const given = (['vault-token', 'vault-role-id', 'vault-secret-id'] as const).filter((n) => optionalString(f, n));
    if (given.length > 0) throw new ConfigError(`--${given[0]} is set but --vault-addr is not: secrets would not be read from Vault`);
    return undefined;
  }
  if (!token && !(roleId && secretId)) throw new ConfigError('--vault-addr needs --vault-token or both --vault-role-id and --vault-secret-id');
  // Beside --vault-token, half an AppRole cannot log in when the token runs out, yet would count as
  // one: the warning that a non-renewable token expires was left out for it.
  if (roleId && !secretId) throw new ConfigError('--vault-role-id is set without --vault-secret-id: an AppRole login needs both');
  if (secretId && !roleId) throw new ConfigError('--vault-secret-id is set without --vault-role-id: an AppRole login needs both');
  const secretPath = f['vault-secret-path'] as string;
  if (kvDataPathOf(secretPath) === undefined) throw new ConfigError(badSecretPath(secretPath));
  return {
    addr: httpUrl('vault-addr', addr),
    token,
    roleId,
    secretId,
    secretPath,
    refreshIntervalMs: f['vault-refresh-interval'] as number,
  };
}

// ---------------------------------------------------------------------------------------------
// server

export interface ServerConfig {
  port: number;
  host: string;
  store: StoreConfig;
  reportToken?: string;
  /** Also accepted on report routes while reporters move to a new token. */
  reportTokenPrevious?: string;
  cadvisorPort: number;
  links: LinkTemplate[];
  retentionMs: number;
  purgeIntervalMs: number;
  /** Rows of history kept per container; 0 keeps all. */
  historyLimit: number;
  hostStaleAfterMs: number;
  /** 0: never. A host silent this long is retired (Store.retireSilentHosts). */
  hostGoneAfterMs: number;
  cacheTtlMs: number;
  reportRateLimitPerMinute: number;
  /** Proxies (addresses, CIDRs) whose X-Forwarded-For names the client; empty: none. */
  trustProxy: string[];
  bodyLimitBytes: number;
  /** How long an idle keep-alive connection stays open (longer than a load balancer's idle timeout). */
  keepAliveTimeoutMs: number;
  logLevel: LogLevel;
  vault?: VaultConfig;
  /** AWS credentials for SimpleDB when not from Vault; undefined means the default provider chain. */
  awsAccessKeyId?: string;
  awsSecretAccessKey?: string;
  /** SQLite store only; undefined: the store's defaults (8 MiB cache, 2 GiB - 64 KiB mapped). */
  sqliteCacheBytes?: number;
  sqliteMmapBytes?: number;
}

/** The server's store, and the file backup and restore work on, unless --store says otherwise. */
const DEFAULT_STORE = 'sqlite:./data/ecs-id-mapper.db';

const serverFlags: FlagSpec[] = [
  { name: 'port', kind: 'integer', default: '5001', min: 0, max: 65535, help: 'TCP port to listen on (the original server used 5001).' },
  { name: 'host', kind: 'string', default: '0.0.0.0', help: 'Address to listen on.' },
  { name: 'store', kind: 'string', default: DEFAULT_STORE, help: 'sqlite:PATH, sqlite::memory: or simpledb://REGION?prefix=..&shards=..&endpoint=..&create_domains=true' },
  { name: 'report-token', kind: 'string', secret: true, help: 'Token required on report routes (Bearer, or Basic with the token as password). Unset: reports are open.' },
  { name: 'report-token-previous', kind: 'string', secret: true, help: 'Token rotation: the old token, still accepted besides --report-token until every reconciler and agent sends the new one (ecs_id_mapper_reports_previous_token_total stops growing). Needs --report-token.' },
  { name: 'cadvisor-port', kind: 'integer', default: '8080', min: 1, max: 65535, help: 'Port cAdvisor listens on, on every container instance.' },
  // In the env var, a comma starts the next link only before NAME=, so a template may hold commas.
  { name: 'link', kind: 'list', envSeparator: /,(?=\s*[a-z][a-z0-9_-]*=)/, help: 'Extra link NAME=TEMPLATE, an http:// or https:// URL; placeholders {container_id} {container_id_short} {task_id} {instance_ip} {instance_id} {cluster} {cadvisor_port}.' },
  { name: 'retention', kind: 'duration', max: CENTURY_MS, default: '168h', min: 1000, help: 'How long records stay after a container is gone.' },
  { name: 'purge-interval', kind: 'duration', max: TIMER_MAX_MS, default: '10m', min: 1000, help: 'How often gone records older than the retention are deleted.' },
  { name: 'history-limit', kind: 'integer', default: String(DEFAULT_HISTORY_LIMIT), min: 0, max: 1_000_000, help: 'History entries kept per container: past this (checked every tenth of it), the oldest are deleted, so a container restarting in place for months does not grow its history without bound. 0 keeps every entry.' },
  { name: 'host-stale-after', kind: 'duration', max: CENTURY_MS, default: '15m', min: 1000, help: 'A host that has not reported for this long is stale (3 x the reconciler full-sync interval).' },
  { name: 'host-gone-after', kind: 'duration', max: CENTURY_MS, default: '1h', min: 0, help: 'A reconciler host silent this long is retired: a terminated instance sends no last report, so its live records are marked gone (then purged after --retention) and it leaves the stale count. Its next report, if any, brings them back. Original agents\' hosts are never retired. 0 never retires.' },
  { name: 'cache-ttl', kind: 'duration', default: '5s', min: 0, help: 'TTL of the read caches: SimpleDB lookups, and the text answer of /query/container_id/<full id> on any store (a purged record may answer that long). 0 disables both.' },
  { name: 'report-rate-limit', kind: 'integer', default: '600', min: 1, help: 'Report requests allowed per host per minute.' },
  { name: 'trust-proxy', kind: 'list', help: 'Addresses or CIDRs of the load balancers in front of the server (comma-separated or repeated): their X-Forwarded-For names the client, for the per-client rate limit of the original agent\'s events and in logs. Unset: the peer address.' },
  { name: 'body-limit', kind: 'integer', default: String(1024 * 1024), min: 1024, help: 'Largest request body in bytes (413 above).' },
  { name: 'keep-alive-timeout', kind: 'duration', max: TIMER_MAX_MS, default: '5s', min: 1000, help: 'How long an idle keep-alive connection stays open. Behind a load balancer, make it longer than the balancer\'s idle timeout (an ALB\'s is 60 s: use 65s), or the balancer may send a request on a connection the server is closing and answer 502.' },
  { name: 'sqlite-cache-bytes', kind: 'integer', min: 1024 * 1024, help: `SQLite store only: its page cache in bytes, anonymous memory the server keeps once filled (default ${DEFAULT_CACHE_SIZE_BYTES}, ${DEFAULT_CACHE_SIZE_BYTES / 2 ** 20} MiB; SQLite's own default is 2 MiB).` },
  { name: 'sqlite-mmap-bytes', kind: 'integer', min: 0, max: SQLITE_MAX_MMAP_BYTES, help: `SQLite store only: how much of the store file is read through a memory map; its pages count in RSS but are file-backed, so the kernel can reclaim them. 0 reads with read() calls instead (default ${DEFAULT_MMAP_SIZE_BYTES}, SQLite's maximum).` },
  { name: 'aws-access-key-id', kind: 'string', help: 'AWS access key for SimpleDB (default: the AWS default credential chain, or Vault).' },
  { name: 'aws-secret-access-key', kind: 'string', secret: true, help: 'AWS secret key for SimpleDB.' },
  ...vaultFlags,
  logLevelFlag,
];

/** A listen address; an empty one (`--host=$UNSET`) would listen on every interface without a word. */
/** A DNS name (RFC 1123 labels), not all digits: 999.1.1.1 is a mistyped address, not a name. */
const HOST_NAME = /^(?![\d.]+$)(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/** An IP address or a host name; anything else failed only when the server tried to listen (exit 1, getaddrinfo's words). */
function listenAddress(value: string, flag: string): string {
  if (value.trim() === '') throw new ConfigError(`--${flag}: empty; give an address (0.0.0.0 listens on every interface)`);
  if (isIP(value) === 0 && !HOST_NAME.test(value)) {
    throw new ConfigError(`--${flag}: "${value.slice(0, 60)}" is not an IP address or host name (0.0.0.0 listens on every IPv4 interface, :: on every interface)`);
  }
  return value;
}

/** `--trust-proxy` values: each an IP address or CIDR (addresses, comma-separated or repeated). */
function trustProxy(values: string[]): string[] {
  const out: string[] = [];
  for (const value of values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '')) {
    const [address, prefix, ...rest] = value.split('/');
    const family = isIP(address);
    const bits = family === 4 ? 32 : 128;
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits);
    if (family === 0 || !prefixOk || rest.length > 0) throw new ConfigError(`--trust-proxy: "${value.slice(0, 60)}" is not an IP address or CIDR (10.0.0.0/16, fd00::/8)`);
    out.push(value);
  }
  return out;
}

function hostGoneAfter(f: ParsedFlags): number {
  const gone = f['host-gone-after'] as number;
  const stale = f['host-stale-after'] as number;
  if (gone !== 0 && gone <= stale) throw new ConfigError(`--host-gone-after (${gone / 1000} s) must be longer than --host-stale-after (${stale / 1000} s), or 0 to never retire hosts`);
  return gone;
}

function reportTokenPrevious(f: ParsedFlags): string | undefined {
  const previous = reportTokenFlag(f, 'report-token-previous');
  // With Vault the current token may come from the secret, read later (secrets/index.ts).
  if (previous !== undefined && optionalString(f, 'report-token') === undefined && optionalString(f, 'vault-addr') === undefined) {
    throw new ConfigError('--report-token-previous needs --report-token (the new token): alone it would leave reports open to anyone');
  }
  return previous;
}

function buildServer(f: ParsedFlags): ServerConfig {
  const store = parseStoreUrl(f.store as string);
  for (const name of ['sqlite-cache-bytes', 'sqlite-mmap-bytes']) {
    if (f[name] !== undefined && store.backend !== 'sqlite') throw new ConfigError(`--${name} applies to a sqlite: store only (--store is ${store.backend})`);
  }
  // One key alone was ignored: SimpleDB then signed with the AWS default chain or Vault's keys.
  const awsKeys = (['aws-access-key-id', 'aws-secret-access-key'] as const).filter((n) => optionalString(f, n) !== undefined);
  if (awsKeys.length === 1) {
    const other = awsKeys[0] === 'aws-access-key-id' ? 'aws-secret-access-key' : 'aws-access-key-id';
    throw new ConfigError(`--${awsKeys[0]} is set without --${other}: SimpleDB signs with both or neither`);
  }
  // Ignored with SQLite: most likely a fleet deployment whose simpledb:// --store was lost on the way,
  // which would then run on a store of its own in each replica.
  if (awsKeys.length > 0 && store.backend !== 'simpledb') throw new ConfigError(`--${awsKeys[0]} applies to a simpledb:// store only (--store is ${store.backend})`);
  return {
    port: f.port as number,
    host: listenAddress(f.host as string, 'host'),
    store,
    reportToken: reportTokenFlag(f, 'report-token'),
    reportTokenPrevious: reportTokenPrevious(f),
    cadvisorPort: f['cadvisor-port'] as number,
    links: parseLinks(f.link as string[]),
    retentionMs: f.retention as number,
    purgeIntervalMs: f['purge-interval'] as number,
    historyLimit: f['history-limit'] as number,
    hostStaleAfterMs: f['host-stale-after'] as number,
    hostGoneAfterMs: hostGoneAfter(f),
    cacheTtlMs: f['cache-ttl'] as number,
    reportRateLimitPerMinute: f['report-rate-limit'] as number,
    trustProxy: trustProxy(f['trust-proxy'] as string[]),
    bodyLimitBytes: f['body-limit'] as number,
    keepAliveTimeoutMs: f['keep-alive-timeout'] as number,
    logLevel: logLevel(f),
    vault: vaultConfig(f),
    awsAccessKeyId: optionalString(f, 'aws-access-key-id'),
    awsSecretAccessKey: optionalString(f, 'aws-secret-access-key'),
    sqliteCacheBytes: f['sqlite-cache-bytes'] as number | undefined,
    sqliteMmapBytes: f['sqlite-mmap-bytes'] as number | undefined,
  };
}

// ---------------------------------------------------------------------------------------------
// reconciler

export interface ReconcilerConfig {
  server: URL;
  reportToken?: string;
  ecsAgentUrl: URL;
  imdsUrl: URL;
  /** Path of the Docker engine's unix socket, or undefined when disabled with `none`. */
  dockerSocket?: string;
  stateDir: string;
  /** A state dir lock unchanged this long is its killed holder's (reconciler/state-lock.ts). */
  stateLockStaleAfterMs: number;
  resyncIntervalMs: number;
  fullSyncIntervalMs: number;
  eventDebounceMs: number;
  requestTimeoutMs: number;
  imdsTokenTtlSeconds: number;
  outboxMaxBytes: number;
  heapHeadroomBytes: number;
  batchSize: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  metricsPort: number;
  metricsHost: string;
  logLevel: LogLevel;
}

const reconcilerFlags: FlagSpec[] = [
  { name: 'server', kind: 'string', required: true, help: 'Base URL of the ecs-id-mapper server, e.g. http://mapper.internal:5001' },
  { name: 'report-token', kind: 'string', secret: true, help: 'Token sent as a Bearer token on report requests.' },
  { name: 'ecs-agent-url', kind: 'string', default: 'http://127.0.0.1:51678', help: 'ECS agent introspection endpoint.' },
  { name: 'imds-url', kind: 'string', default: 'http://169.254.169.254', help: 'EC2 instance metadata endpoint.' },
  { name: 'docker-socket', kind: 'string', default: '/var/run/docker.sock', help: 'Docker engine unix socket for events and labels; "none" disables.' },
  { name: 'state-dir', kind: 'string', default: '/var/lib/ecs-id-mapper', help: 'Directory for the durable outbox (created). One daemon at a time: a second one waits for the first one\'s lock (daemon.lock).' },
  { name: 'state-lock-stale-after', kind: 'duration', max: TIMER_MAX_MS, default: '15s', min: 100, help: 'Take over a --state-dir lock whose heartbeat stopped this long ago (its daemon was killed); the holder beats every fifth of this, at most every 2 s. A restart after a crash waits this long.' },
  { name: 'resync-interval', kind: 'duration', max: TIMER_MAX_MS, default: '10s', min: 10, help: 'Full observation period; Docker events only shorten the wait.' },
  { name: 'full-sync-interval', kind: 'duration', max: TIMER_MAX_MS, default: '5m', min: 100, help: 'How often the whole host snapshot goes to the server.' },
  { name: 'event-debounce', kind: 'duration', max: TIMER_MAX_MS, default: '250ms', min: 0, help: 'Docker events within this window trigger one pass.' },
  { name: 'request-timeout', kind: 'duration', max: TIMER_MAX_MS, default: '3s', min: 10, help: 'Timeout for ECS agent, IMDS and server requests.' },
  { name: 'imds-token-ttl', kind: 'integer', default: '21600', min: 1, max: 21600, help: 'IMDSv2 token TTL in seconds (refreshed before expiry).' },
  { name: 'outbox-max-bytes', kind: 'integer', default: String(16 * 1024 * 1024), min: 4096, help: 'Outbox size bound; when full it coalesces to the latest state per container (again only after another half of the bound, so it may hold up to 1.5 × this).' },
  { name: 'heap-headroom-bytes', kind: 'integer', default: String(3 * 1024 * 1024), min: 0, help: 'After a pass, run a full garbage collection once the heap has grown this much (or a quarter of the live heap, if more) past what the last one left; a soft memory ceiling. 0 leaves collections to V8 (its heap then saws about 8 MiB above the live heap).' },
  { name: 'batch-size', kind: 'integer', default: '500', min: 1, max: 5000, help: 'Transitions per report request, at most (about 700 bytes each; halved automatically while the server answers 413).' },
  { name: 'backoff-base', kind: 'duration', max: TIMER_MAX_MS, default: '500ms', min: 1, help: 'First retry delay for failed reports (exponential, full jitter).' },
  { name: 'backoff-max', kind: 'duration', max: TIMER_MAX_MS, default: '60s', min: 1, help: 'Largest retry delay for failed reports.' },
  { name: 'metrics-port', kind: 'integer', default: '9471', min: 0, max: 65535, help: 'Port for /metrics and /healthz.' },
  { name: 'metrics-host', kind: 'string', default: '0.0.0.0', help: 'Address for /metrics and /healthz.' },
  logLevelFlag,
];

/**
 * `--docker-socket`: the socket path, or undefined for "none". Only the command line gives an
 * empty value (`--docker-socket=$UNSET`); it used to turn Docker off without a word.
 */
function dockerSocket(f: ParsedFlags): string | undefined {
  const socket = f['docker-socket'] as string;
  if (socket.trim() === '') throw new ConfigError('--docker-socket: empty; give "none" to do without Docker');
  return socket === 'none' ? undefined : socket;
}

function buildReconciler(f: ParsedFlags): ReconcilerConfig {
  const docker = dockerSocket(f);
  if ((f['state-dir'] as string).trim() === '') throw new ConfigError('--state-dir: empty; give the directory for the outbox (a host volume)');
  if ((f['backoff-base'] as number) > (f['backoff-max'] as number)) {
    throw new ConfigError(`--backoff-base (${f['backoff-base']} ms) is longer than --backoff-max (${f['backoff-max']} ms): the first retry would wait longer than any later one`);
  }
  return {
    server: httpUrl('server', f.server as string),
    reportToken: reportTokenFlag(f, 'report-token'),
    ecsAgentUrl: httpUrl('ecs-agent-url', f['ecs-agent-url'] as string),
    imdsUrl: httpUrl('imds-url', f['imds-url'] as string),
    dockerSocket: docker,
    stateDir: f['state-dir'] as string,
    stateLockStaleAfterMs: f['state-lock-stale-after'] as number,
    resyncIntervalMs: f['resync-interval'] as number,
    fullSyncIntervalMs: f['full-sync-interval'] as number,
    eventDebounceMs: f['event-debounce'] as number,
    requestTimeoutMs: f['request-timeout'] as number,
    imdsTokenTtlSeconds: f['imds-token-ttl'] as number,
    outboxMaxBytes: f['outbox-max-bytes'] as number,
    heapHeadroomBytes: f['heap-headroom-bytes'] as number,
    batchSize: f['batch-size'] as number,
    backoffBaseMs: f['backoff-base'] as number,
    backoffMaxMs: f['backoff-max'] as number,
    metricsPort: f['metrics-port'] as number,
    metricsHost: listenAddress(f['metrics-host'] as string, 'metrics-host'),
    logLevel: logLevel(f),
  };
}

// ---------------------------------------------------------------------------------------------
// simulate-host (dev/test tool)

export interface SimulateHostConfig {
  /** Address every port listens on (loopback). */
  host: string;
  /** 0 = any free port, for each of the three. */
  agentPort: number;
  imdsPort: number;
  controlPort: number;
  /** Tasks RUNNING at start; the churn keeps the population around this number. */
  tasks: number;
  containersPerTask: number;
  /** Period of the churn timer; 0 = no timer (call tick()). */
  churnIntervalMs: number;
  /** How long a STOPPED task stays listed (the agent's ~3 h, shortened). */
  cleanupAfterMs: number;
  /** How long a started task is listed before its containers exist (0 = created at once). */
  pendingForMs: number;
  cluster: string;
  instanceId: string;
  seed: number;
  /** Derive tasks from this Docker engine instead of the scripted churn. */
  dockerSocket?: string;
  logLevel: LogLevel;
}

const simulateHostFlags: FlagSpec[] = [
  { name: 'host', kind: 'string', default: '127.0.0.1', help: 'Loopback address to serve on.' },
  { name: 'agent-port', kind: 'integer', default: '51678', min: 0, max: 65535, help: 'Port of the simulated ECS agent introspection API (0 = any free port).' },
  { name: 'imds-port', kind: 'integer', default: '1338', min: 0, max: 65535, help: 'Port of the simulated IMDSv2 (0 = any free port).' },
  { name: 'control-port', kind: 'integer', default: '0', min: 0, max: 65535, help: 'Port of the fault-switch control API (0 = any free port).' },
  { name: 'tasks', kind: 'integer', default: '3', min: 0, max: 10_000, help: 'Tasks running at start (each holds a host port of the ephemeral range).' },
  { name: 'containers-per-task', kind: 'integer', default: '2', min: 1, max: 10, help: 'Containers per task.' },
  { name: 'churn-interval', kind: 'duration', max: TIMER_MAX_MS, default: '5s', min: 0, help: 'How often a task starts or stops (0 disables churn).' },
  { name: 'cleanup-after', kind: 'duration', max: TIMER_MAX_MS, default: '30s', min: 0, help: 'How long a stopped task stays listed (the agent\'s ~3 h, shortened).' },
  { name: 'pending-for', kind: 'duration', max: TIMER_MAX_MS, default: '1s', min: 0, help: 'How long a started task is listed before its containers exist: first with "Containers": [], then with DockerId "" (0 = created at once; the tick that runs the task creates them anyway).' },
  { name: 'cluster', kind: 'string', default: 'demo', help: 'Cluster name reported by the simulated agent.' },
  { name: 'instance-id', kind: 'string', default: 'i-0123456789abcdef0', help: 'Instance id served by the simulated IMDS.' },
  { name: 'seed', kind: 'integer', default: '1', help: 'Random seed for churn.' },
  { name: 'docker-socket', kind: 'string', default: 'none', help: 'Derive tasks from a real Docker engine\'s ECS-labelled containers ("none" = scripted tasks).' },
  logLevelFlag,
];

/** ECS's rule for cluster names; the reconciler refuses an agent that reports another (an empty one is a zero-valued body). */
function simulatedCluster(value: string): string {
  if (!/^[A-Za-z0-9_-]{1,255}$/.test(value)) throw new ConfigError(`--cluster: an ECS cluster name is 1 to 255 letters, digits, _ or -, got "${value.slice(0, 60)}"`);
  return value;
}

function simulatedInstanceId(value: string): string {
  if (!INSTANCE_ID.test(value)) throw new ConfigError(`--instance-id: expected an EC2 instance id (i- and 8 to 32 hex digits), got "${value.slice(0, 60)}"`);
  return value;
}

/**
 * The simulated host's address: loopback only. Its control API switches faults on without any
 * authentication, and its IMDS hands out an instance identity; neither belongs on a network.
 */
function loopbackAddress(value: string, flag: string): string {
  const address = listenAddress(value, flag);
  const loopback = address === 'localhost' || address === '::1' || (isIP(address) === 4 && address.startsWith('127.'));
  if (!loopback) throw new ConfigError(`--${flag}: "${address}" is not a loopback address (127.0.0.1, ::1 or localhost): the control API has no authentication`);
  return address;
}

function buildSimulateHost(f: ParsedFlags): SimulateHostConfig {
  return {
    host: loopbackAddress(f.host as string, 'host'),
    agentPort: f['agent-port'] as number,
    imdsPort: f['imds-port'] as number,
    controlPort: f['control-port'] as number,
    tasks: f.tasks as number,
    containersPerTask: f['containers-per-task'] as number,
    churnIntervalMs: f['churn-interval'] as number,
    cleanupAfterMs: f['cleanup-after'] as number,
    pendingForMs: f['pending-for'] as number,
    cluster: simulatedCluster(f.cluster as string),
    instanceId: simulatedInstanceId(f['instance-id'] as string),
    seed: f.seed as number,
    dockerSocket: dockerSocket(f),
    logLevel: logLevel(f),
  };
}

// ---------------------------------------------------------------------------------------------
// simpledb-local (dev/test tool)

export interface SimpleDbLocalConfig {
  host: string;
  port: number;
  dataFile?: string;
  accessKeyId: string;
  secretAccessKey: string;
  failureRate: number;
  latencyMs: number;
  staleReads: boolean;
  logLevel: LogLevel;
}

const simpleDbLocalFlags: FlagSpec[] = [
  { name: 'host', kind: 'string', default: '127.0.0.1', help: 'Address to listen on.' },
  { name: 'port', kind: 'integer', default: '8443', min: 0, max: 65535, help: 'Port to listen on (0 = any free port).' },
  { name: 'data', kind: 'string', help: 'File to load at start and save to on change (default: memory only).' },
  { name: 'access-key-id', kind: 'string', help: 'Access key accepted in signatures (default: AWS_ACCESS_KEY_ID).' },
  { name: 'secret-access-key', kind: 'string', secret: true, help: 'Secret key used to verify signatures (default: AWS_SECRET_ACCESS_KEY).' },
  { name: 'failure-rate', kind: 'string', default: '0', help: 'Fault switch: share of requests answered 503 ServiceUnavailable (0..1).' },
  { name: 'latency', kind: 'duration', max: TIMER_MAX_MS, default: '0', min: 0, help: 'Fault switch: latency added to every answer.' },
  { name: 'stale-reads', kind: 'boolean', default: 'false', help: 'Fault switch: non-consistent reads see the state before the latest write.' },
  logLevelFlag,
];

function buildSimpleDbLocal(f: ParsedFlags, env: Record<string, string | undefined>): SimpleDbLocalConfig {
  const accessKeyId = optionalString(f, 'access-key-id') ?? env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = optionalString(f, 'secret-access-key') ?? env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new ConfigError('simpledb-local needs --access-key-id and --secret-access-key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)');
  }
  // Decimal only: Number() reads "" and " " as 0 and "0x1" as 1 (every request failing).
  const rateText = f['failure-rate'] as string;
  const rate = /^\d+(\.\d+)?$/.test(rateText) ? Number(rateText) : NaN;
  if (!Number.isFinite(rate) || rate < 0 || rate > 1) throw new ConfigError(`--failure-rate: expected a number from 0 to 1, got ${JSON.stringify(rateText)}`);
  return {
    host: listenAddress(f.host as string, 'host'),
    port: f.port as number,
    dataFile: optionalString(f, 'data'),
    accessKeyId,
    secretAccessKey,
    failureRate: rate,
    latencyMs: f.latency as number,
    staleReads: f['stale-reads'] as boolean,
    logLevel: logLevel(f),
  };
}

// ---------------------------------------------------------------------------------------------
// lookup

export interface LookupConfig {
  id: string;
  server: URL;
  json: boolean;
  timeoutMs: number;
}

const lookupFlags: FlagSpec[] = [
  { name: 'server', kind: 'string', default: 'http://127.0.0.1:5001', help: 'Base URL of the ecs-id-mapper server.' },
  { name: 'json', kind: 'boolean', default: 'false', help: 'Print the match as JSON instead of a table.' },
  { name: 'timeout', kind: 'duration', max: TIMER_MAX_MS, default: '5s', min: 1, help: 'Request timeout.' },
];

function buildLookup(f: ParsedFlags, _env: Record<string, string | undefined>, positionals: string[]): LookupConfig {
  if (positionals.length !== 1) throw new ConfigError(positionals.length === 0 ? 'lookup needs one id (container id, prefix, task id, task ARN, docker name or EC2 instance id)' : 'lookup takes exactly one id');
  if (positionals[0].trim() === '') throw new ConfigError('lookup needs one id, got an empty one (an unset shell variable?)');
  return { id: positionals[0], server: httpUrl('server', f.server as string), json: f.json as boolean, timeoutMs: f.timeout as number };
}

// ---------------------------------------------------------------------------------------------
// backup

export interface BackupConfig {
  /** The SQLite store's file. */
  storePath: string;
  /** The backup file to write; it must not exist. */
  destination: string;
}

const backupFlags: FlagSpec[] = [
  { name: 'store', kind: 'string', default: DEFAULT_STORE, help: 'The server\'s --store: sqlite:PATH (SimpleDB keeps its own copies; a memory store has no file).' },
];

function buildBackup(f: ParsedFlags, _env: Record<string, string | undefined>, positionals: string[]): BackupConfig {
  if (positionals.length !== 1) throw new ConfigError(positionals.length === 0 ? 'backup needs the file to write (ecs-id-mapper backup [--store sqlite:PATH] FILE)' : 'backup takes exactly one file');
  return { storePath: sqliteStoreFile(f, 'backup'), destination: fileArgument(positionals[0], 'backup', 'the file to write', 'standard output') };
}

// ---------------------------------------------------------------------------------------------
// restore

export interface RestoreConfig {
  /** The SQLite store's file; what is there is renamed aside, never deleted. */
  storePath: string;
  /** The backup file to put in its place. */
  backup: string;
}

function buildRestore(f: ParsedFlags, _env: Record<string, string | undefined>, positionals: string[]): RestoreConfig {
  if (positionals.length !== 1) throw new ConfigError(positionals.length === 0 ? 'restore needs the backup file (ecs-id-mapper restore [--store sqlite:PATH] BACKUP)' : 'restore takes exactly one backup file');
  return { storePath: sqliteStoreFile(f, 'restore'), backup: fileArgument(positionals[0], 'restore', 'the backup file', 'standard input') };
}

/** A file name argument: not empty (an unset shell variable) and not `-`, which reads as a stream here. */
function fileArgument(value: string, command: 'backup' | 'restore', what: string, stream: string): string {
  if (value.trim() === '') throw new ConfigError(`${command} needs ${what}, got an empty name (an unset shell variable?)`);
  if (value === '-') throw new ConfigError(`${command} works on a file, not ${stream}: name one (use ./- for a file called -)`);
  return value;
}

/** The file of an embedded `--store`, for the commands that handle the file itself. */
function sqliteStoreFile(f: ParsedFlags, command: 'backup' | 'restore'): string {
  const store = parseStoreUrl(f.store as string);
  if (store.backend !== 'sqlite') throw new ConfigError(`--store: ${command} works on the embedded SQLite store; SimpleDB keeps its own copies`);
  if (store.path === ':memory:') throw new ConfigError(`--store: a memory store has no file to ${command === 'backup' ? 'back up' : 'restore'}`);
  return store.path;
}

// ---------------------------------------------------------------------------------------------
// demo (npm run demo)

export interface DemoConfig {
  port: number;
  tasks: number;
  churnIntervalMs: number;
  resyncIntervalMs: number;
  /** 0 = run until Ctrl-C; otherwise stop everything after this long once the lookups work. */
  exitAfterMs: number;
}

const demoFlags: FlagSpec[] = [
  { name: 'port', kind: 'integer', default: '5001', min: 0, max: 65535, help: 'Port of the demo server (taken: any free port).' },
  { name: 'tasks', kind: 'integer', default: '4', min: 1, max: 200, help: 'Tasks on the simulated host.' },
  { name: 'churn-interval', kind: 'duration', max: TIMER_MAX_MS, default: '5s', min: 0, help: 'How often a simulated task starts or stops.' },
  { name: 'resync-interval', kind: 'duration', max: TIMER_MAX_MS, default: '1s', min: 10, help: 'The reconciler\'s full-observation period.' },
  { name: 'exit-after', kind: 'duration', max: TIMER_MAX_MS, default: '0', min: 0, help: 'Stop after this long once lookups work (0 = run until Ctrl-C).' },
];

function buildDemo(f: ParsedFlags): DemoConfig {
  return {
    port: f.port as number,
    tasks: f.tasks as number,
    churnIntervalMs: f['churn-interval'] as number,
    resyncIntervalMs: f['resync-interval'] as number,
    exitAfterMs: f['exit-after'] as number,
  };
}

// ---------------------------------------------------------------------------------------------

export interface CommandSpec<C> {
  name: string;
  summary: string;
  usage: string;
  flags: FlagSpec[];
  build(flags: ParsedFlags, env: Record<string, string | undefined>, positionals: string[]): C;
}

function noPositionals<C>(name: string, build: (f: ParsedFlags, env: Record<string, string | undefined>) => C) {
  return (f: ParsedFlags, env: Record<string, string | undefined>, positionals: string[]): C => {
    if (positionals.length > 0) throw new ConfigError(`${name} takes no arguments, got "${positionals[0]}" (see --help)`);
    return build(f, env);
  };
}

export const commands = {
  server: {
    name: 'server',
    summary: 'Serve the ECS task <-> container map: the original REST API, the v2 API, /metrics and the lookup page.',
    usage: '[flags]',
    flags: serverFlags,
    build: noPositionals('server', buildServer),
  } satisfies CommandSpec<ServerConfig>,
  reconciler: {
    name: 'reconciler',
    summary: 'Run on an ECS container instance: observe the ECS agent, IMDS and Docker, and report every container transition to the server.',
    usage: '--server URL [flags]',
    flags: reconcilerFlags,
    build: noPositionals('reconciler', buildReconciler),
  } satisfies CommandSpec<ReconcilerConfig>,
  'simulate-host': {
    name: 'simulate-host',
    summary: 'Development tool: serve a simulated ECS agent introspection API and IMDSv2 on loopback, with scripted churn and fault switches.',
    usage: '[flags]',
    flags: simulateHostFlags,
    build: noPositionals('simulate-host', buildSimulateHost),
  } satisfies CommandSpec<SimulateHostConfig>,
  'simpledb-local': {
    name: 'simpledb-local',
    summary: 'Development tool: a SimpleDB-compatible (2009-04-15 Query API) endpoint on loopback, with fault switches.',
    usage: '--port N [--data FILE] [flags]',
    flags: simpleDbLocalFlags,
    build: noPositionals('simpledb-local', buildSimpleDbLocal),
  } satisfies CommandSpec<SimpleDbLocalConfig>,
  lookup: {
    name: 'lookup',
    summary: 'Look up any id (container id or prefix, task id, task ARN, docker name), or a host by its EC2 instance id. Exit 0 found, 1 not found, 2 usage or connection error.',
    usage: '<id> [--server URL] [--json]',
    flags: lookupFlags,
    build: buildLookup,
  } satisfies CommandSpec<LookupConfig>,
  backup: {
    name: 'backup',
    summary: 'Copy the SQLite store to a new file while the server runs (one consistent commit, checked before it is named).',
    usage: '[--store sqlite:PATH] FILE',
    flags: backupFlags,
    build: buildBackup,
  } satisfies CommandSpec<BackupConfig>,
  restore: {
    name: 'restore',
    summary: 'Put a backup in place of the SQLite store while the server is stopped; the store it replaces is renamed aside, with its WAL.',
    usage: '[--store sqlite:PATH] BACKUP',
    flags: backupFlags,
    build: buildRestore,
  } satisfies CommandSpec<RestoreConfig>,
  demo: {
    name: 'demo',
    summary: 'Start a server (embedded store), a simulated ECS host and a reconciler for it, then print lookup URLs that work.',
    usage: '[flags]',
    flags: demoFlags,
    build: noPositionals('demo', buildDemo),
  } satisfies CommandSpec<DemoConfig>,
} as const;

export type CommandName = keyof typeof commands;

export type LoadedCommand =
  | { kind: 'help'; text: string }
  | { kind: 'run'; command: CommandName; config: unknown; /** One line each, for stderr (unknownSettings, an unusable NODE_EXTRA_CA_CERTS). */ warnings: string[] };

/** Parses one command's argv and env. Throws ConfigError with a one-line message. */
export function loadCommand(name: string, argv: string[], env: Record<string, string | undefined>): LoadedCommand {
  if (!(name in commands)) throw new ConfigError(`unknown command "${name}" (commands: ${Object.keys(commands).join(', ')})`);
  const spec = commands[name as CommandName] as CommandSpec<unknown>;
  // Help first: a bad value (in a flag or in the environment) must not hide the help that explains it.
  if (argv.includes('--help') || argv.includes('-h')) return { kind: 'help', text: renderHelp(spec.name, spec.summary, spec.usage, spec.flags) };
  const parsed = parseFlags(spec.flags, argv, env);
  const config = build(spec, parsed, env);
  const extraCa = env.NODE_EXTRA_CA_CERTS ? extraCaCertsProblem(env.NODE_EXTRA_CA_CERTS) : undefined;
  return { kind: 'run', command: name as CommandName, config, warnings: [...unknownSettings(env), ...(extraCa ? [extraCa] : [])] };
}

function build<C>(spec: CommandSpec<C>, parsed: ParseResult, env: Record<string, string | undefined>): C {
  try {
    return spec.build(parsed.flags, env, parsed.positionals);
  } catch (err) {
    throw err instanceof ConfigError ? nameEnvSource(err, parsed.fromEnv) : err;
  }
}

/**
 * ECS_ID_MAPPER_* variables that are no command's setting: a misspelt one reads as "not set", so
 * `ECS_ID_MAPPER_RETENTON=1d` kept the 7-day default without a word. They are warned about, not
 * refused, because one environment often serves several commands and versions. Each warning names
 * the closest setting when one is a few edits away.
 */
export function unknownSettings(env: Record<string, string | undefined>): string[] {
  const known = new Set(Object.values(commands).flatMap((c) => (c.flags as FlagSpec[]).map((f) => envName(f.name))));
  const settings = [...known].map((name) => name.slice(ENV_PREFIX.length));
  return Object.keys(env)
    .filter((key) => key.startsWith(ENV_PREFIX) && !known.has(key))
    .sort()
    .map((key) => {
      const near = closest(key.slice(ENV_PREFIX.length), settings);
      return `${key} is not a setting of any command; it is ignored${near ? ` (did you mean ${ENV_PREFIX}${near}?)` : ''}`;
    });
}

export function loadServerConfig(argv: string[], env: Record<string, string | undefined> = {}): ServerConfig {
  return build(commands.server, parseFlags(serverFlags, argv, env), env);
}

export function loadReconcilerConfig(argv: string[], env: Record<string, string | undefined> = {}): ReconcilerConfig {
  return build(commands.reconciler, parseFlags(reconcilerFlags, argv, env), env);
}

export function topLevelHelp(): string {
  const lines = ['Usage: ecs-id-mapper <command> [flags]', '', 'Commands:'];
  for (const c of Object.values(commands)) lines.push(`  ${c.name.padEnd(15)} ${c.summary}`);
  lines.push('', 'Run `ecs-id-mapper <command> --help` for the flags of one command, `ecs-id-mapper --version` for the version.');
  return lines.join('\n');
}
