// Delivers the outbox to the server, in order, until every transition is acknowledged.
//
// - `POST {server}/v2/hosts/{instance_id}/transitions` with up to batchSize entries, oldest first,
//   `Authorization: Bearer <token>` when a token is configured. On 2xx the outbox is acknowledged
//   up to the answer's `acked_seq` and compacted.
// - 5xx, 408, 429, timeouts, refused connections and unreadable answers are retried after the
//   reporter machine's capped, fully jittered backoff; so is a redirect, never followed, whose
//   target the log names.
// - Any other 4xx is terminal for that batch (bad token, a body the server will never accept): it
//   is logged at error level with the server's answer, counted as result="rejected", and KEPT in
//   the outbox; the reporter waits `rejectedBackoffMs` (default 10 × backoffMax) and tries again,
//   so delivery resumes by itself once an operator fixes the token or the server. Nothing is
//   dropped silently; /healthz turns 503 if the outbox fills meanwhile.
// - A 413 (the batch is over the server's --body-limit) is the one 4xx a smaller request can fix:
//   the batch is halved and sent again at once, and the smaller size kept from then on, down to a
//   single transition. Only a single transition over the limit is terminal. A snapshot over the
//   limit waits for the next full sync (logged, counted rejected); transitions go on meanwhile.
// - A 400 from the server (its JSON answer; a proxy's page is rejected like any 4xx) for a batch of
//   several transitions may be one line the server will never take (a line edited by hand, a value
//   an older server does not know) holding back the good ones: the batch
//   is halved and sent again at once, down to that single line, which is then kept and retried
//   like any rejection, and logged with its seq and container. Lines before it are delivered; the
//   batch size comes back once the server has taken the refused line. Nothing is dropped.
// - Every fullSyncIntervalMs the whole host snapshot is PUT to `.../snapshot`, only when the
//   outbox is drained, with seq = the last acknowledged seq, so it never races a transition. While
//   the agent's listing fails there is no snapshot to send: an empty batch of transitions goes
//   instead, so the server knows the host is alive and does not retire it.
import { Readable } from 'node:stream';
import { request, type Dispatcher } from './undici.js';
import { createActor, fromPromise, type Actor } from 'xstate';
import type { DaemonLogger } from './log.js';
import type { HostIdentity, SnapshotContainer, Transition, TransitionBatch, TransitionBatchResult, HostSnapshot } from '../wire/index.js';
import { reporterMachine, backoffDelay, type SendOutput } from './machines/reporter.machine.js';
import type { Outbox } from './outbox.js';
import type { ReconcilerMetrics, ReportResult } from './metrics.js';
import { tlsFailureHint } from '../cli/tls-trust.js';
import { RecurringCondition } from './recurring-condition.js';
import { monotonicMs } from './clock.js';
import { fitToWire } from './fit-to-wire.js';

/**
 * A request body already encoded as UTF-8 JSON, in chunks of about ENCODED_CHUNK_BYTES: a full
 * sync's snapshot of thousands of containers, which as one string, and then the Buffer undici makes
 * of it, sat in memory twice over beside the containers themselves (8 MB at 5,000 containers).
 */
class EncodedBody {
  constructor(
    readonly chunks: readonly Buffer[],
    readonly bytes: number,
  ) {}
}

const ENCODED_CHUNK_BYTES = 64 * 1024;

/** The snapshot's JSON (a HostSnapshot), one container at a time. */
export function encodeSnapshot(head: Omit<HostSnapshot, 'containers'>, containers: readonly SnapshotContainer[]): EncodedBody {
  const chunks: Buffer[] = [];
  let bytes = 0;
  const flush = (text: string) => {
    const chunk = Buffer.from(text, 'utf8');
    chunks.push(chunk);
    bytes += chunk.length;
  };
  let pending = `${JSON.stringify(head).slice(0, -1)},"containers":[`;
  for (let i = 0; i < containers.length; i++) {
    pending += (i === 0 ? '' : ',') + JSON.stringify(containers[i]);
    if (pending.length >= ENCODED_CHUNK_BYTES) {
      flush(pending);
      pending = '';
    }
  }
  flush(`${pending}]}`);
  return new EncodedBody(chunks, bytes);
}

export type ReportErrorCode =
  | 'ERR_REPORT_REJECTED'
  | 'ERR_REPORT_HTTP_STATUS'
  | 'ERR_REPORT_TIMEOUT'
  | 'ERR_REPORT_UNREACHABLE'
  | 'ERR_REPORT_BAD_RESPONSE'
  | 'ERR_REPORT_OUTBOX';

export class ReportError extends Error {
  readonly name = 'ReportError';
  /** The `error` code of the server's JSON answer (`not_found`, `no_route`, …), when it sent one. */
  readonly serverError: string | undefined;
  constructor(
    readonly code: ReportErrorCode,
    message: string,
    /** True for a 4xx other than 408/429: retrying soon will not help. */
    readonly terminal: boolean,
    readonly status: number | undefined,
    options?: { cause?: unknown; serverError?: string },
  ) {
    super(message, options);
    this.serverError = options?.serverError;
  }
}

/** The `error` field of an `{error, message}` answer; undefined for any other body. */
function serverErrorOf(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as { error?: unknown } | null;
    return typeof body?.error === 'string' ? body.error : undefined;
  } catch {
    return undefined;
  }
}

const RESULT_OF: Record<ReportErrorCode, ReportResult> = {
  ERR_REPORT_REJECTED: 'rejected',
  ERR_REPORT_HTTP_STATUS: 'http_error',
  ERR_REPORT_TIMEOUT: 'timeout',
  ERR_REPORT_UNREACHABLE: 'unreachable',
  ERR_REPORT_BAD_RESPONSE: 'bad_response',
  // The request succeeded and compaction failed, or (no request) the outbox could not be read back;
  // either is counted by the outbox metric. A failed read never reaches fail(), so it counts no attempt.
  ERR_REPORT_OUTBOX: 'success',
};

export type ReporterLogger = Pick<DaemonLogger, 'info' | 'warn' | 'error' | 'debug'>;

export interface ReporterOptions {
  server: URL;
  token?: string;
  outbox: Outbox;
  /** The host identity, null until IMDS answered (nothing is sent before). */
  host(): HostIdentity | null;
  /** The containers as the loop knows them, or null when a snapshot would be incomplete. */
  snapshot(): SnapshotContainer[] | null;
  batchSize: number;
  timeoutMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Wait after a terminal 4xx. Default 10 × backoffMaxMs. */
  rejectedBackoffMs?: number;
  fullSyncIntervalMs: number;
  logger: ReporterLogger;
  metrics?: ReconcilerMetrics;
  dispatcher?: Dispatcher;
  /** Wall-clock time for the snapshot's taken_at. Default Date.now. */
  now?: () => number;
  /**
   * Monotonic time for intervals: the full sync, how long reports have failed, and the metrics'
   * last report (reconciler/clock.ts). Default: `now` when given (a test's one fake clock), else monotonicMs.
   */
  clock?: () => number;
  random?: () => number;
}

export interface Reporter {
  start(): void;
  /** New outbox entries, or simply "check again" (called after every pass). */
  notify(): void;
  /** The reporter machine's state: idle, sending, backingOff, rejected. */
  state(): string;
  /**
   * Tries to deliver everything queued within `timeoutMs`; resolves true when drained, false at
   * the timeout or as soon as a send fails. Used on SIGTERM; anything left stays in the durable
   * outbox for the next start.
   */
  flush(timeoutMs: number): Promise<boolean>;
  stop(): void;
}

/**
 * Who refused a request: the server answers every error with an `{error, message}` body; anything
 * else came from a proxy or load balancer in front of it (nginx's 413 page for a body over its
 * client_max_body_size, 1 MiB by default), whose limit the server's --body-limit cannot raise.
 */
function refusedBy(err: unknown): 'server' | 'proxy' {
  return err instanceof ReportError && err.serverError === undefined ? 'proxy' : 'server';
}

/**
 * An answer that is not the server's `{error, message}`, for the log: a proxy's or load balancer's
 * HTML page by its title (its markup, line breaks and all, filled the log line), other text as it is.
 */
function notServerAnswer(text: string): string {
  if (!/^\s*</.test(text)) return text.replace(/\s+/g, ' ').trim().slice(0, 200);
  const title = /<title[^>]*>([^<]*)<\/title>/i.exec(text)?.[1].replace(/\s+/g, ' ').trim().slice(0, 100);
  return `a page${title ? ` titled "${title}"` : ''}, not the server's JSON: from a proxy or load balancer in front of it`;
}

const RAISE_PROXY_LIMIT = "raise the proxy's request body limit, e.g. nginx's client_max_body_size";

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

function transportFailure(err: unknown, what: string): ReportError {
  const e = err as { code?: string; name?: string; message?: string };
  const timeout = TIMEOUT_CODES.has(e?.code ?? '') || e?.name === 'TimeoutError' || e?.name === 'AbortError';
  const hint = tlsFailureHint(err);
  return new ReportError(timeout ? 'ERR_REPORT_TIMEOUT' : 'ERR_REPORT_UNREACHABLE', `${what}: ${hint ?? e?.message ?? String(err)}`, false, undefined, { cause: err });
}

export function createReporter(options: ReporterOptions): Reporter {
  const now = options.now ?? Date.now;
  const clock = options.clock ?? options.now ?? monotonicMs;
  const random = options.random ?? Math.random;
  const log = options.logger;
  const base = options.server.href.replace(/\/+$/, '');
  let lastSnapshotAt = Number.NEGATIVE_INFINITY;
  let actor: Actor<typeof reporterMachine> | undefined;
  // Halved on every 413 and not grown back until the daemon restarts: a server's --body-limit changes
  // only with its configuration, and probing upwards would cost a refused request each time.
  let batchSize = options.batchSize;
  // While a 400 is being narrowed down to the line the server refuses: the smaller size to send, up
  // to the last seq of the refused batch (after which the whole batch size is used again).
  let narrowing: { size: number; upTo: number } | undefined;
  /** Reports failing and retried with backoff (the server unreachable, 5xx, timeouts). */
  const failing = new RecurringCondition();
  /**
   * Reports the server (or a proxy) refused, retried after the long backoff: each refusal is logged
   * at error level, and the first success after them says they ended (a token fixed, a proxy that
   * stripped Authorization repaired), as `failing` does for transient failures.
   */
  const refused = new RecurringCondition();
  /**
   * Answers counting conflicts: the server holds some of these seqs for other transitions, and
   * dropped these (storage/store.ts). Logged at error level when a run of them starts and every 10
   * minutes while it lasts; an answer without conflicts ends the run.
   */
  const seqConflicts = new RecurringCondition();

  const headers = (): Record<string, string> => {
    const h: Record<string, string> = { 'content-type': 'application/json' };
    if (options.token) h.authorization = `Bearer ${options.token}`;
    return h;
  };

  async function call<T>(method: 'GET' | 'POST' | 'PUT', path: string, body: unknown, signal: AbortSignal): Promise<T> {
    const what = `${method} ${path}`;
    let res: Dispatcher.ResponseData;
    try {
      const encoded = body instanceof EncodedBody;
      res = await request(base + path, {
        method,
        headers: encoded ? { ...headers(), 'content-length': String(body.bytes) } : headers(),
        body: encoded ? Readable.from(body.chunks) : body === undefined ? undefined : JSON.stringify(body),
        dispatcher: options.dispatcher,
        signal: AbortSignal.any([signal, AbortSignal.timeout(options.timeoutMs)]),
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
      });
    } catch (err) {
      throw transportFailure(err, what);
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw transportFailure(err, what);
    }
    const status = res.statusCode;
    if (status >= 200 && status < 300) {
      try {
        return JSON.parse(text) as T;
      } catch (err) {
        throw new ReportError('ERR_REPORT_BAD_RESPONSE', `${what}: ${status} with a body that is not JSON`, false, status, { cause: err });
      }
    }
    // A load balancer's HTTP listener redirecting to HTTPS, or a proxy adding a slash: its page says
    // nothing, and a report (with its token) is never sent on to wherever it points.
    const location = status >= 300 && status < 400 ? res.headers.location : undefined;
    if (typeof location === 'string') {
      throw new ReportError('ERR_REPORT_HTTP_STATUS', `${what}: HTTP ${status}, a redirect to ${location}: set --server to the address it redirects to (reports never follow a redirect)`, false, status);
    }
    const terminal = status >= 400 && status < 500 && status !== 408 && status !== 429;
    const serverError = serverErrorOf(text);
    const said = serverError === undefined ? notServerAnswer(text) : text.slice(0, 500);
    throw new ReportError(terminal ? 'ERR_REPORT_REJECTED' : 'ERR_REPORT_HTTP_STATUS', `${what}: HTTP ${status}: ${said}`, terminal, status, { serverError });
  }

  function count(kind: 'transitions' | 'snapshot', result: ReportResult): void {
    options.metrics?.reportAttempts.inc({ kind, result });
    if (result === 'success') {
      const held = failing.ended(clock());
      if (held) log.info(held, 'reports are delivered again');
      const wasRefused = refused.ended(clock());
      if (wasRefused) log.info(wasRefused, "the server takes this host's reports again");
    }
  }

  function snapshotDue(): boolean {
    return clock() - lastSnapshotAt >= options.fullSyncIntervalMs;
  }

  function peek(): Transition[] {
    try {
      // Fitted again: a line queued by an earlier version may hold a value the server now refuses.
      return options.outbox.peek(narrowing?.size ?? batchSize).map((t) => ({ ...t, container: fitToWire(t.container) }));
    } catch (err) {
      // Queued entries are read back from the log; a read error is retried with backoff like a send.
      options.metrics?.outboxWriteErrors.inc({ code: 'ERR_OUTBOX_READ' });
      log.error({ err }, 'reading the outbox failed');
      throw new ReportError('ERR_REPORT_OUTBOX', (err as Error).message, false, undefined, { cause: err });
    }
  }

  async function sendTransitions(host: HostIdentity, signal: AbortSignal): Promise<SendOutput> {
    const path = `/v2/hosts/${encodeURIComponent(host.instance_id)}/transitions`;
    let transitions: Transition[];
    let result: TransitionBatchResult;
    for (;;) {
      transitions = peek();
      try {
        result = await call<TransitionBatchResult>('POST', path, { host, transitions } satisfies TransitionBatch, signal);
        break;
      } catch (err) {
        // Only the server's own 400 (an `{error, message}` answer) is about a line; a proxy's page
        // (plain HTTP sent to its HTTPS port, a header it refuses) is about every request alike.
        if (err instanceof ReportError && err.status === 400 && refusedBy(err) === 'server') {
          const first = transitions[0];
          const last = transitions[transitions.length - 1].seq;
          if (transitions.length === 1) {
            narrowing = { size: 1, upTo: first.seq };
            fail('transitions', err, 1, { seq: first.seq, container_id: first.container_id, to: first.to });
          }
          count('transitions', 'rejected');
          narrowing = { size: Math.floor(transitions.length / 2), upTo: last };
          log.warn(
            { status: 400, size: transitions.length, first_seq: first.seq, last_seq: last, batch_size: narrowing.size },
            `the server refused transitions ${first.seq}..${last} (400); sending ${narrowing.size} at a time to find the one it refuses: ${err.message}`,
          );
          continue;
        }
        if (!(err instanceof ReportError && err.status === 413 && transitions.length > 1)) fail('transitions', err, transitions.length);
        count('transitions', 'rejected');
        batchSize = Math.floor(transitions.length / 2);
        log.warn(
          { status: 413, size: transitions.length, batch_size: batchSize },
          refusedBy(err) === 'server'
            ? `the server refused ${transitions.length} transitions as too large; sending at most ${batchSize} per request from now on (the server's --body-limit is below this daemon's --batch-size)`
            : `a proxy in front of the server refused ${transitions.length} transitions as too large (its answer is not the server's); sending at most ${batchSize} per request from now on (${RAISE_PROXY_LIMIT})`,
        );
      }
    }
    const last = transitions[transitions.length - 1].seq;
    if (!result || !Number.isInteger(result.acked_seq)) {
      count('transitions', 'bad_response');
      throw new ReportError('ERR_REPORT_BAD_RESPONSE', `POST ${path}: answer without an integer acked_seq`, false, 200);
    }
    // No server holds a seq above the wire's maximum (wire/index.ts). Taken, such an acked_seq
    // renumbered the queue above it and was written to the meta file: every later seq was one the
    // server refuses (or, past 2^53, one that repeats), and the host's reports stopped for good.
    if (!Number.isSafeInteger(result.acked_seq + options.outbox.depth())) {
      count('transitions', 'bad_response');
      throw new ReportError('ERR_REPORT_BAD_RESPONSE', `POST ${path}: acked_seq ${result.acked_seq} is beyond any sequence number`, false, 200);
    }
    if (result.acked_seq < last) {
      // The server did not take the whole batch: retry after backoff rather than spin.
      count('transitions', 'bad_response');
      throw new ReportError('ERR_REPORT_BAD_RESPONSE', `POST ${path}: acked_seq ${result.acked_seq} < last sent seq ${last}`, false, 200);
    }
    count('transitions', 'success');
    options.metrics?.reportedAt(clock());
    if (narrowing && result.acked_seq >= narrowing.upTo) {
      log.info({ acked_seq: result.acked_seq, batch_size: batchSize }, 'the server took the transitions it had refused; sending whole batches again');
      narrowing = undefined;
    }
    try {
      options.outbox.ack(result.acked_seq);
    } catch (err) {
      // Delivered but not compacted: the next send replays the batch, which the server counts as duplicates.
      options.metrics?.outboxWriteErrors.inc({ code: (err as { code?: string }).code === 'ERR_OUTBOX_NO_SPACE' ? 'ERR_OUTBOX_NO_SPACE' : 'ERR_OUTBOX_WRITE' });
      log.error({ err }, 'outbox compaction after acknowledgement failed');
      throw new ReportError('ERR_REPORT_OUTBOX', (err as Error).message, false, undefined, { cause: err });
    }
    options.metrics?.outboxDepth.set(options.outbox.depth());
    options.metrics?.outboxBytes.set(options.outbox.bytes());
    // A server older than the count answers without it.
    const conflicts = result.conflicts ?? 0;
    if (conflicts > 0) {
      const held = seqConflicts.occurred(clock());
      if (held) {
        log.error(
          { conflicts, first_seq: transitions[0].seq, last_seq: last, ...(held.occurrences > 1 ? held : {}) },
          `the server holds ${conflicts} of transitions ${transitions[0].seq}..${last} under the same seqs for other transitions, and dropped these: ` +
            `a second reconciler reports instance ${host.instance_id}, or this state dir was restored from an old copy. ` +
            "Run one reconciler per instance; the next full sync repairs the server's records, not the lost history (docs/operations.md)",
        );
      }
    } else seqConflicts.ended(clock());
    log.debug({ sent: transitions.length, applied: result.applied, duplicates: result.duplicates, conflicts, acked_seq: result.acked_seq }, 'transitions acknowledged');
    return { remaining: options.outbox.depth() + (options.outbox.depth() === 0 && snapshotDue() ? 1 : 0) };
  }

  /**
   * The host's snapshot, encoded. Taken synchronously together with the seq: the loop appends and
   * updates its state in one tick, so the containers reflect exactly the transitions up to it.
   * The containers themselves are not kept past this call: only their encoding is sent.
   */
  function takeSnapshot(host: HostIdentity): { body: EncodedBody; seq: number; size: number } | null {
    const containers = options.snapshot();
    const seq = options.outbox.lastSeq();
    if (containers === null) return null;
    return { body: encodeSnapshot({ host, seq, taken_at: new Date(now()).toISOString() }, containers), seq, size: containers.length };
  }

  async function sendSnapshot(host: HostIdentity, signal: AbortSignal): Promise<SendOutput> {
    const taken = takeSnapshot(host);
    if (taken === null) return sendHeartbeat(host, signal);
    const { seq, size } = taken;
    const path = `/v2/hosts/${encodeURIComponent(host.instance_id)}/snapshot`;
    try {
      const result = await call<{ upserted?: number; gone?: number; skipped?: number }>('PUT', path, taken.body, signal);
      count('snapshot', 'success');
      options.metrics?.reportedAt(clock());
      lastSnapshotAt = clock();
      log.debug({ containers: size, seq, ...result }, 'snapshot accepted');
    } catch (err) {
      if (!(err instanceof ReportError && err.status === 413)) fail('snapshot', err, size);
      // A snapshot cannot be split, and sending it again will not shrink it: it waits for the next
      // full sync instead of holding the transitions behind the long backoff meanwhile.
      count('snapshot', 'rejected');
      lastSnapshotAt = clock();
      log.error(
        { status: 413, kind: 'snapshot', size, bytes: taken.body.bytes },
        refusedBy(err) === 'server'
          ? `the server refused this host's snapshot of ${size} containers as too large; transitions are still reported, the snapshot is tried again at the next full sync (raise the server's --body-limit)`
          : `a proxy in front of the server refused this host's snapshot of ${size} containers as too large (its answer is not the server's); transitions are still reported, the snapshot is tried again at the next full sync (${RAISE_PROXY_LIMIT})`,
      );
    }
    return { remaining: options.outbox.depth() };
  }

  /**
   * In place of a snapshot the loop cannot vouch for (the agent's listing fails): an empty batch of
   * transitions, which refreshes the host's last report on the server and changes nothing else.
   * The server retires a host silent past its --host-gone-after and marks its records gone; an
   * agent down that long must not do that to containers that still run.
   */
  async function sendHeartbeat(host: HostIdentity, signal: AbortSignal): Promise<SendOutput> {
    const path = `/v2/hosts/${encodeURIComponent(host.instance_id)}/transitions`;
    try {
      await call<TransitionBatchResult>('POST', path, { host, transitions: [] } satisfies TransitionBatch, signal);
    } catch (err) {
      fail('transitions', err, 0);
    }
    count('transitions', 'success');
    options.metrics?.reportedAt(clock());
    lastSnapshotAt = clock();
    log.debug('no snapshot while the agent listing fails: heartbeat accepted');
    return { remaining: options.outbox.depth() };
  }

  /** `line`: the one transition a batch was narrowed down to, named in the log. */
  function fail(kind: 'transitions' | 'snapshot', err: unknown, size: number, line?: { seq: number; container_id: string; to: string }): never {
    const e = err instanceof ReportError ? err : transportFailure(err, kind);
    count(kind, RESULT_OF[e.code]);
    if (e.terminal) refused.occurred(clock());
    if (e.terminal && line) {
      log.error(
        { code: e.code, status: e.status, kind, size, ...line },
        `server rejected transition ${line.seq} (container ${line.container_id}, to ${line.to}); it and the ones after it are kept queued, retried after the long backoff: ${e.message}`,
      );
    } else if (e.terminal) log.error({ code: e.code, status: e.status, kind, size }, `server rejected the ${kind} report; kept queued, retrying after the long backoff: ${e.message}`);
    else {
      // Retried with backoff (up to --backoff-max) for as long as the server is away: logged when
      // that starts and every 10 minutes, not at every attempt (recurring-condition.ts).
      const held = failing.occurred(clock());
      if (held) log.warn({ code: e.code, status: e.status, kind, size, ...(held.occurrences > 1 ? held : {}) }, `report failed, backing off: ${e.message}`);
    }
    throw e;
  }

  /**
   * A new state dir numbers from 1, but the server may hold this host's transitions up to some
   * seq already (the state dir was lost or wiped): it would take everything at or below that as a
   * replay and drop it, and a snapshot below it could not mark gone what it holds. Asked once,
   * before the first report from a new state dir (outbox.rebase()).
   */
  async function takeServerSeq(host: HostIdentity, signal: AbortSignal): Promise<void> {
    const path = `/v2/hosts/${encodeURIComponent(host.instance_id)}`;
    let serverSeq = 0;
    try {
      const view = await call<{ last_seq?: unknown }>('GET', path, undefined, signal);
      if (typeof view.last_seq !== 'number' || !Number.isSafeInteger(view.last_seq) || view.last_seq < 0) {
        throw new ReportError('ERR_REPORT_BAD_RESPONSE', `GET ${path}: answer without an integer last_seq`, false, 200);
      }
      serverSeq = view.last_seq;
    } catch (err) {
      // The server's own 404 for the host (`not_found`): it has no record of it, so nothing to
      // number above. Any other 404 (a wrong path in --server answers `no_route`; a proxy, some
      // other body) says nothing about the host: taken as "unknown", it was stored for good and
      // the server then dropped this host's first transitions as replays.
      if (!(err instanceof ReportError && err.status === 404 && err.serverError === 'not_found')) fail('transitions', err, 0);
    }
    const queued = options.outbox.depth();
    try {
      options.outbox.rebase(serverSeq);
    } catch (err) {
      options.metrics?.outboxWriteErrors.inc({ code: (err as { code?: string }).code === 'ERR_OUTBOX_NO_SPACE' ? 'ERR_OUTBOX_NO_SPACE' : 'ERR_OUTBOX_WRITE' });
      log.error({ err }, "recording the server's sequence number in the outbox failed");
      throw new ReportError('ERR_REPORT_OUTBOX', (err as Error).message, false, undefined, { cause: err });
    }
    if (serverSeq > 0) {
      log.warn(
        { server_seq: serverSeq, renumbered: queued, next_seq: options.outbox.ackedSeq() + 1 },
        `the state dir is new, but the server already holds this host's transitions up to seq ${serverSeq} (was the state dir lost or wiped?): numbering continues above it`,
      );
    }
  }

  async function send(signal: AbortSignal): Promise<SendOutput> {
    const host = options.host();
    if (host === null) return { remaining: 0 };
    if (!options.outbox.serverSeqKnown()) await takeServerSeq(host, signal);
    if (options.outbox.depth() > 0) return sendTransitions(host, signal);
    if (snapshotDue()) return sendSnapshot(host, signal);
    return { remaining: 0 };
  }

  const machine = reporterMachine.provide({
    actors: { sendBatch: fromPromise<SendOutput>(({ signal }) => send(signal)) },
    delays: {
      retryDelay: ({ context }) => backoffDelay(context.attempt, context.backoffBaseMs, context.backoffMaxMs, random),
    },
  });

  const idleAndDrained = () => actor?.getSnapshot().value === 'idle' && options.outbox.depth() === 0;

  return {
    start() {
      if (actor) return;
      actor = createActor(machine, {
        input: {
          backoffBaseMs: options.backoffBaseMs,
          backoffMaxMs: options.backoffMaxMs,
          rejectedBackoffMs: options.rejectedBackoffMs ?? options.backoffMaxMs * 10,
        },
      });
      actor.start();
      actor.send({ type: 'outbox.appended' });
    },
    notify() {
      actor?.send({ type: 'outbox.appended' });
    },
    state() {
      return actor ? String(actor.getSnapshot().value) : 'stopped';
    },
    async flush(timeoutMs) {
      if (!actor) return options.outbox.depth() === 0;
      const a = actor;
      // A server already failing is not waited for: what is queued stays in the durable outbox.
      const givingUp = () => {
        const v = a.getSnapshot().value;
        return v === 'backingOff' || v === 'rejected';
      };
      if (givingUp()) return options.outbox.depth() === 0;
      a.send({ type: 'outbox.appended' });
      if (idleAndDrained()) return true;
      return new Promise<boolean>((resolve) => {
        const finish = (drained: boolean) => {
          clearTimeout(timer);
          sub.unsubscribe();
          resolve(drained);
        };
        const timer = setTimeout(() => finish(options.outbox.depth() === 0), timeoutMs);
        const sub = a.subscribe(() => {
          if (idleAndDrained()) finish(true);
          else if (givingUp()) finish(false);
        });
      });
    },
    stop() {
      actor?.stop();
      actor = undefined;
    },
  };
}
