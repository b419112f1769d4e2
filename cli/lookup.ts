// `ecs-id-mapper lookup <id>`: asks a server's GET /v2/lookup/<id> and prints the match. An EC2
// instance id asks GET /v2/hosts/<id> instead: is that host reporting, and what does it run.
//
// Exit codes (the contract scripts rely on):
//   0  found: a table (or the JSON body with --json) on stdout
//   1  no single match: not found (404), or an ambiguous short id (409) whose candidates are listed
//   2  usage or connection error: the server cannot be reached, times out, answers 400 (not an id),
//      5xx, a 404 `no_route` (--server has a wrong path), a redirect (never followed) or something
//      that is not the v2 API;
//      one readable line on stderr
// Answers that are results (found, not found, ambiguous) go to stdout; errors go to stderr.
import { Agent, request, type Dispatcher } from 'undici';
import type { LookupConfig } from '../config/index.js';
import type { ContainerRecord } from '../storage/store.js';
import { tlsFailureHint } from './tls-trust.js';
import { INSTANCE_ID, LIFECYCLE_STATES, type LifecycleState } from '../wire/ids.js';

export interface ContainerLink {
  name: string;
  url: string;
}

/** What GET /v2/hosts/:instance_id answers with 200 (the fields printed). */
export interface HostAnswer {
  instance_id: string;
  cluster: string | null;
  instance_ip: string | null;
  instance_type: string | null;
  instance_az: string | null;
  reporter: string;
  last_report_at: string;
  last_seq: number;
  seconds_since_report: number;
  stale: boolean;
  retired: boolean;
  containers_by_state: Record<LifecycleState, number>;
}

/** What GET /v2/lookup/:id answers with 200. */
export interface LookupAnswer {
  query: string;
  kind: string;
  containers: Array<ContainerRecord & { links: ContainerLink[] }>;
}

export interface LookupIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** Used for the request; a private Agent (closed afterwards) when not given. */
  dispatcher?: Dispatcher;
}

/** Why the lookup could not get an answer; its message is the one line printed on stderr. */
export class LookupRequestError extends Error {
  readonly name = 'LookupRequestError';
  readonly code: 'ERR_LOOKUP_UNREACHABLE' | 'ERR_LOOKUP_TIMEOUT' | 'ERR_LOOKUP_BAD_ANSWER' | 'ERR_LOOKUP_REJECTED';
  constructor(code: LookupRequestError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export const EXIT_FOUND = 0;
export const EXIT_NO_MATCH = 1;
export const EXIT_ERROR = 2;

const PREFIX = 'ecs-id-mapper lookup';

export async function runLookup(config: LookupConfig, io: LookupIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const url = lookupUrl(config.server, config.id);
  const ownAgent = io.dispatcher ? undefined : new Agent({ connect: { timeout: config.timeoutMs } });
  try {
    const { status, body } = await fetchAnswer(url, config, io.dispatcher ?? ownAgent!);
    return printAnswer(config, status, body, io);
  } catch (err) {
    if (!(err instanceof LookupRequestError)) throw err;
    io.stderr.write(`${PREFIX}: ${err.message}\n`);
    return EXIT_ERROR;
  } finally {
    await ownAgent?.destroy();
  }
}

/** The lookup URL under the server base (which may carry a path prefix); the id is always encoded. */
export function lookupUrl(server: URL, id: string): URL {
  const base = new URL(server.href);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  base.search = '';
  base.hash = '';
  return new URL(`${INSTANCE_ID.test(id) ? 'v2/hosts' : 'v2/lookup'}/${encodeURIComponent(id)}`, base);
}

async function fetchAnswer(url: URL, config: LookupConfig, dispatcher: Dispatcher): Promise<{ status: number; body: unknown }> {
  const origin = url.origin;
  let status: number;
  let text: string;
  let location: string | string[] | undefined;
  try {
    const res = await request(url, {
      method: 'GET',
      dispatcher,
      headers: { accept: 'application/json', 'user-agent': 'ecs-id-mapper-lookup' },
      headersTimeout: config.timeoutMs,
      bodyTimeout: config.timeoutMs,
      signal: AbortSignal.timeout(config.timeoutMs),
    });
    status = res.statusCode;
    text = await res.body.text();
    location = status >= 300 && status < 400 ? res.headers.location : undefined;
  } catch (err) {
    throw requestError(err, origin, config.timeoutMs);
  }
  // A load balancer's HTTP listener redirecting to HTTPS, or a proxy adding a slash: its page is no answer.
  if (typeof location === 'string') {
    throw new LookupRequestError('ERR_LOOKUP_BAD_ANSWER', `${origin} answered ${status}, a redirect to ${location}: set --server to the address it redirects to (lookup never follows a redirect)`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    // The server answers every error in JSON; a gateway status with a page is the proxy's or
    // balancer's own: the server is behind it, down or unreachable, not some other kind of server.
    if (status === 502 || status === 503 || status === 504) {
      throw new LookupRequestError('ERR_LOOKUP_BAD_ANSWER', `${origin} answered ${status} with a page of its own, not the server's JSON: a proxy or load balancer in front of the server cannot reach it (is the server running?)`, { cause: err });
    }
    throw new LookupRequestError('ERR_LOOKUP_BAD_ANSWER', `${origin} answered ${status} with a body that is not JSON (is it an ecs-id-mapper server?)`, { cause: err });
  }
  return { status, body };
}

const CONNECT_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'name lookup failed',
  UND_ERR_SOCKET: 'connection closed',
};
const TIMEOUT_ERRORS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

function requestError(err: unknown, origin: string, timeoutMs: number): LookupRequestError {
  const e = err as Error & { code?: string; cause?: Error & { code?: string } };
  // Node wraps some connect failures (AggregateError for multi-address hosts); the code may sit on the cause.
  const code = e.code ?? e.cause?.code ?? (e instanceof AggregateError ? (e.errors[0] as { code?: string })?.code : undefined);
  if (e.name === 'TimeoutError' || (code !== undefined && TIMEOUT_ERRORS.has(code))) {
    return new LookupRequestError('ERR_LOOKUP_TIMEOUT', `no answer from ${origin} within ${formatMs(timeoutMs)}`, { cause: err });
  }
  const hint = tlsFailureHint(err);
  if (hint) return new LookupRequestError('ERR_LOOKUP_UNREACHABLE', `cannot reach ${origin}: ${hint}`, { cause: err });
  const reason = code !== undefined ? (CONNECT_ERRORS[code] ?? code) : e.message;
  return new LookupRequestError('ERR_LOOKUP_UNREACHABLE', `cannot reach ${origin} (${reason})`, { cause: err });
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function messageOf(body: unknown): string | undefined {
  return body !== null && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string'
    ? (body as { message: string }).message
    : undefined;
}

function errorCodeOf(body: unknown): string | undefined {
  return body !== null && typeof body === 'object' && typeof (body as { error?: unknown }).error === 'string'
    ? (body as { error: string }).error
    : undefined;
}

function isLookupAnswer(body: unknown): body is LookupAnswer {
  return body !== null && typeof body === 'object' && Array.isArray((body as LookupAnswer).containers) && typeof (body as LookupAnswer).kind === 'string';
}

function isHostAnswer(body: unknown): body is HostAnswer {
  return body !== null && typeof body === 'object' && typeof (body as HostAnswer).instance_id === 'string' && typeof (body as HostAnswer).containers_by_state === 'object';
}

function printAnswer(config: LookupConfig, status: number, body: unknown, io: LookupIo): number {
  const origin = config.server.origin;
  const host = INSTANCE_ID.test(config.id);
  if (status === 200 && (host ? isHostAnswer(body) : isLookupAnswer(body))) {
    let text: string;
    try {
      text = config.json ? `${JSON.stringify(body, null, 2)}\n` : host ? formatHost(body as HostAnswer) : formatTable(body as LookupAnswer);
    } catch {
      // The right shape outside, not inside (a container that is not an object, counts that are null).
      printError(io, `${origin} answered 200 with an unexpected body (is it an ecs-id-mapper server?)`);
      return EXIT_ERROR;
    }
    io.stdout.write(text);
    return EXIT_FOUND;
  }
  // A 404 without the v2 error code is some other server's "no such route", not an answer about the id.
  if (status === 404 && errorCodeOf(body) === 'not_found') {
    io.stdout.write(config.json ? `${JSON.stringify(body, null, 2)}\n` : host ? `No host ${config.id} has reported.\n` : `No container or task matches "${config.id}".\n`);
    return EXIT_NO_MATCH;
  }
  // The server has no such path: --server names it with a wrong path (or another server's).
  if (status === 404 && errorCodeOf(body) === 'no_route') {
    printError(io, `${config.server.href} has no lookup route (${messageOf(body) ?? '404'}): --server must be the server's base URL`);
    return EXIT_ERROR;
  }
  const candidates = (body as { candidates?: unknown } | null)?.candidates;
  if (status === 409 && Array.isArray(candidates)) {
    if (config.json) io.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    else {
      // more_candidates: the server lists the first candidates only.
      const count = (body as { more_candidates?: unknown }).more_candidates === true ? `more than ${candidates.length} containers; the first ${candidates.length}` : `${candidates.length} containers`;
      io.stdout.write([`"${config.id}" is ambiguous: it matches ${count}:`, ...candidates.map((c) => `  ${String(c)}`)].join('\n') + '\n');
    }
    return EXIT_NO_MATCH;
  }
  if (status === 400) {
    printError(io, `${messageOf(body) ?? `"${config.id}" is not an id the server understands`}`);
    return EXIT_ERROR;
  }
  const message = messageOf(body);
  printError(io, `${origin} answered ${status}${message ? `: ${message}` : status === 200 ? ' with an unexpected body (is it an ecs-id-mapper server?)' : ''}`);
  return EXIT_ERROR;
}

function printError(io: LookupIo, line: string): void {
  io.stderr.write(`${PREFIX}: ${line.replace(/\s*\n\s*/g, ' ')}\n`);
}

/** An exit code means something only once the container has stopped. */
function hasExited(c: ContainerRecord): boolean {
  return (c.state === 'stopped' || c.state === 'gone') && c.exit_code !== null && c.exit_code !== undefined;
}

/** `LABEL  value` lines, labels padded to one width; a missing value prints as `-`. */
function labelledLines(rows: Array<[string, string | null]>): string {
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value === null || value === '' ? '-' : value}`).join('\n');
}

/** One block of `LABEL  value` lines per container, blank line between containers. */
export function formatTable(answer: LookupAnswer): string {
  const blocks = answer.containers.map((c) => {
    const cadvisor = c.links.find((l) => l.name === 'cadvisor');
    const rows: Array<[string, string | null]> = [
      ['container', `${c.container_id.slice(0, 12)}  ${c.container_id}`],
      ['name', c.container_name || c.docker_name],
      ['docker name', c.docker_name],
      ['task', c.task_id],
      ['family:rev', c.task_family ? `${c.task_family}:${c.task_version || '?'}` : null],
      ['state', c.state + (hasExited(c) ? ` (exit ${c.exit_code})` : '')],
      ['instance', [c.instance_id, c.instance_ip].filter(Boolean).join(' / ')],
      ['cluster', c.cluster],
      ['cadvisor', cadvisor?.url ?? null],
      ...c.links.filter((l) => l !== cadvisor).map((l): [string, string] => [l.name, l.url]),
    ];
    return labelledLines(rows);
  });
  const header = `${answer.containers.length} container${answer.containers.length === 1 ? '' : 's'} matched by ${answer.kind.replace(/_/g, ' ')}`;
  return `${header}\n\n${blocks.join('\n\n')}\n`;
}

/** A duration in whole units, largest first: 45 s, 12 m 5 s, 3 h 2 m. */
function formatAge(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} m ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} m`;
}

/** `LABEL  value` lines for one host: whether it reports, and its containers by state. */
export function formatHost(h: HostAnswer): string {
  const freshness = h.retired
    ? 'retired: silent past --host-gone-after, its records were marked gone'
    : h.stale
      ? 'stale: silent past --host-stale-after'
      : 'reporting';
  const rows: Array<[string, string | null]> = [
    ['host', h.instance_id],
    ['cluster', h.cluster],
    ['instance', [h.instance_ip, h.instance_type, h.instance_az].filter(Boolean).join(' / ')],
    ['status', freshness],
    ['last report', `${formatAge(h.seconds_since_report)} ago (${h.last_report_at}, ${h.reporter === 'legacy' ? 'original agent' : `reconciler, seq ${h.last_seq}`})`],
    ['containers', LIFECYCLE_STATES.map((s) => `${h.containers_by_state[s] ?? 0} ${s}`).join(', ')],
  ];
  return `${labelledLines(rows)}\n`;
}
