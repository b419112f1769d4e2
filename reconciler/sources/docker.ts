// Client for the Docker engine over its unix socket: the container list (with labels and exit
// codes) and the container event stream.
//
// Contract: listContainers() is one observation (failures are ObservationError, source 'docker').
// watchEvents() never gives up: when the stream ends or the socket disappears it reconnects with
// capped exponential backoff and jitter (started over once a stream stayed up), and only returns
// once `signal` aborts. Events are a hint
// that something changed; the reconciler's periodic full observation stays the source of truth.
import { statSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { Agent, request } from '../undici.js';
import { errorCode, exchange, transportError } from './http.js';
import { ECS_LABELS, ObservationError, type DockerContainer, type DockerContainerState, type DockerEvent, type DockerSource } from './types.js';

export interface DockerClientOptions {
  socketPath: string;
  /** For list/inspect requests and for the events stream's response headers. */
  timeoutMs: number;
  /** Reconnect delays of the events stream. Default 250 ms doubling up to 30 s. */
  backoff?: { baseMs: number; maxMs: number };
  /** Waits `ms` or rejects when `signal` aborts (injected by tests). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** [0, 1) source for the jitter (injected by tests). */
  random?: () => number;
}

export interface DockerClient extends DockerSource {
  /** Closes the connection pool to the socket. */
  close(): Promise<void>;
}

const STATES: readonly DockerContainerState[] = ['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead'];
const EVENT_ACTIONS = ['start', 'die', 'destroy'] as const;
const EVENT_FILTERS = JSON.stringify({ type: ['container'], event: EVENT_ACTIONS });
/** Event attributes Docker adds next to the container's labels. */
const NON_LABEL_ATTRIBUTES = new Set(['image', 'name', 'exitCode', 'execDuration', 'signal']);
const DEFAULT_BACKOFF = { baseMs: 250, maxMs: 30_000 };
/** Longest event line kept (an event carries its container's labels, a few KiB at most for ECS's). */
export const MAX_EVENT_LINE_CHARS = 1024 * 1024;

/** "Exited (137) 5 seconds ago" → 137 */
const EXITED_STATUS = /^Exited \((-?\d+)\)/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringRecord(v: unknown): Record<string, string> | undefined {
  if (v === null || v === undefined) return {};
  if (!isObject(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, value] of Object.entries(v)) {
    if (typeof value !== 'string') return undefined;
    out[k] = value;
  }
  return out;
}

const KEPT_LABELS: ReadonlySet<string> = new Set(Object.values(ECS_LABELS));

/**
 * The labels the daemon reads (ECS_LABELS). The rest are checked, then left out: a task
 * definition's docker labels (a proxy's routing rules, a monitoring agent's settings) can run to
 * kilobytes per container, and the daemon keeps each container's last listing for as long as the
 * container exists.
 */
function ecsLabels(labels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k in labels) if (KEPT_LABELS.has(k)) out[k] = labels[k];
  return out;
}

function garbage(what: string, message: string): ObservationError {
  return new ObservationError('docker', 'ERR_GARBAGE', `${what}: ${message}`);
}

/** Parses one `GET /containers/json` entry; exit_code only from Status (see listContainers). */
export function parseContainerSummary(entry: unknown, where = 'Docker /containers/json'): DockerContainer {
  if (!isObject(entry)) throw garbage(where, 'entry is not an object');
  const { Id, Names, Image, State, Status, Labels } = entry;
  if (typeof Id !== 'string' || Id === '') throw garbage(where, 'Id missing');
  if (!Array.isArray(Names) || !Names.every((n) => typeof n === 'string')) throw garbage(where, `${Id}: Names is not a list of strings`);
  if (typeof State !== 'string' || !STATES.includes(State as DockerContainerState)) throw garbage(where, `${Id}: unknown State ${JSON.stringify(State)}`);
  const labels = stringRecord(Labels);
  if (!labels) throw garbage(where, `${Id}: Labels is not a string map`);
  // A container that others link to (bridge-mode `links`) is also listed under `/<other>/<alias>`,
  // in no set order: its own name is the one without a second slash.
  const names = (Names as string[]).map((n) => (n.startsWith('/') ? n.slice(1) : n));
  const name = names.find((n) => !n.includes('/')) ?? names[0] ?? '';
  const exited = typeof Status === 'string' ? EXITED_STATUS.exec(Status) : null;
  return {
    id: Id,
    name,
    image: typeof Image === 'string' ? Image : '',
    state: State as DockerContainerState,
    labels: ecsLabels(labels),
    exit_code: exited ? Number(exited[1]) : null,
  };
}

/**
 * Parses one line of the events stream; undefined for events this client does not report.
 * `timeNano` exceeds 2^53, so it is read from the raw text rather than from the parsed number.
 */
export function parseEventLine(line: string): DockerEvent | undefined {
  let message: unknown;
  try {
    message = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!isObject(message) || message.Type !== 'container') return undefined;
  const action = message.Action;
  if (typeof action !== 'string' || !(EVENT_ACTIONS as readonly string[]).includes(action)) return undefined;
  const actor = message.Actor;
  if (!isObject(actor) || typeof actor.ID !== 'string' || actor.ID === '') return undefined;
  const attributes = stringRecord(actor.Attributes) ?? {};
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(attributes)) if (!NON_LABEL_ATTRIBUTES.has(k)) labels[k] = v;
  const timeNano = /"timeNano"\s*:\s*(\d+)/.exec(line)?.[1] ?? (typeof message.time === 'number' ? `${message.time}000000000` : '0');
  const event: DockerEvent = { action: action as DockerEvent['action'], container_id: actor.ID, time_nano: timeNano, labels };
  if (action === 'die' && attributes.exitCode !== undefined && /^-?\d+$/.test(attributes.exitCode)) event.exit_code = Number(attributes.exitCode);
  return event;
}

/**
 * A connection refused on a path that is no socket at all says so: a directory (what a bind mount
 * creates when its host path is missing, e.g. `-v /var/run/docker.sock:…` before Docker ran) or a
 * file. As "unreachable (ECONNREFUSED)" it read like an engine that is down.
 */
function notASocket(error: ObservationError, what: string, socketPath: string): ObservationError {
  if (error.code !== 'ERR_UNREACHABLE' || errorCode(error.cause) !== 'ECONNREFUSED') return error;
  let kind: string;
  try {
    const stat = statSync(socketPath);
    if (stat.isSocket()) return error;
    kind = stat.isDirectory() ? 'a directory' : stat.isFile() ? 'a regular file' : 'not a socket';
  } catch {
    return error;
  }
  return new ObservationError('docker', 'ERR_UNREACHABLE', `${what}: ${socketPath} is ${kind}, not the Docker engine's socket (check --docker-socket and the mount)`, { cause: error.cause });
}

/** Docker's `since` takes `<seconds>.<nanoseconds>`; timeNano is both run together. */
function sinceParam(timeNano: string): string {
  return `${timeNano.slice(0, -9)}.${timeNano.slice(-9)}`;
}

export function createDockerClient(options: DockerClientOptions): DockerClient {
  const dispatcher = new Agent({ connect: { socketPath: options.socketPath } });
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const sleep = options.sleep ?? ((ms: number, signal: AbortSignal) => delay(ms, undefined, { signal }));
  const random = options.random ?? Math.random;
  // The host part is ignored on a unix socket; Docker only needs a syntactically valid one.
  const url = (path: string) => new URL(path, 'http://docker');

  async function getJson(path: string, signal?: AbortSignal): Promise<{ status: number; json: unknown }> {
    const what = `Docker GET ${path}`;
    let answer: Awaited<ReturnType<typeof exchange>>;
    try {
      answer = await exchange('docker', what, { url: url(path), timeoutMs: options.timeoutMs, signal, dispatcher });
    } catch (error) {
      throw error instanceof ObservationError ? notASocket(error, what, options.socketPath) : error;
    }
    if (answer.status === 404) return { status: 404, json: undefined };
    if (answer.status !== 200) throw new ObservationError('docker', 'ERR_HTTP_STATUS', `${what}: HTTP ${answer.status}`, { status: answer.status });
    try {
      return { status: 200, json: JSON.parse(answer.body) };
    } catch (error) {
      throw new ObservationError('docker', 'ERR_GARBAGE', `${what}: body is not JSON`, { cause: error });
    }
  }

  /** Exit code from inspect, for exited containers whose Status text did not carry one. */
  /** Exit codes of dead containers, by id, from the last listing (listContainers). */
  let deadExitCodes = new Map<string, number>();

  async function inspectExitCode(id: string, signal?: AbortSignal): Promise<number | null> {
    const { status, json } = await getJson(`/containers/${encodeURIComponent(id)}/json`, signal);
    if (status === 404) return null; // removed meanwhile
    const state = isObject(json) ? json.State : undefined;
    return isObject(state) && typeof state.ExitCode === 'number' ? state.ExitCode : null;
  }

  function backoffMs(attempt: number): number {
    const ceiling = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(attempt, 30));
    // Equal jitter: never a zero wait (no hot loop), never in lock-step with other hosts.
    return Math.round(ceiling / 2 + random() * (ceiling / 2));
  }

  /**
   * One connection to the stream; never resolves, rejects when it ends or fails. After a reconnect,
   * `since` (the last event seen) makes Docker replay what happened while the link was down, so a
   * gap costs at most a duplicate event, which the reconciler tolerates (events are only hints).
   */
  async function follow(handlers: Parameters<DockerSource['watchEvents']>[0], signal: AbortSignal, since: { nano?: string }, onOpen: () => void): Promise<never> {
    let path = `/events?filters=${encodeURIComponent(EVENT_FILTERS)}`;
    if (since.nano) path += `&since=${sinceParam(since.nano)}`;
    const res = await request(url(path), { dispatcher, signal, headersTimeout: options.timeoutMs, bodyTimeout: 0 });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new ObservationError('docker', 'ERR_HTTP_STATUS', `Docker GET /events: HTTP ${res.statusCode}`, { status: res.statusCode });
    }
    onOpen();
    handlers.onConnected?.();
    const decoder = new TextDecoder();
    // The start of a line whose end has not arrived yet. Only each new chunk is searched for line
    // ends, and a line longer than MAX_EVENT_LINE_CHARS is dropped up to its end: kept whole and
    // searched again at every chunk, a stream without line ends (no engine of ours sends one) took
    // the heap up without bound and the CPU with it, quadratically.
    let buffered = '';
    let discarding = false;
    for await (const chunk of res.body) {
      const text = decoder.decode(chunk as Buffer, { stream: true });
      let from = 0;
      let newline: number;
      while ((newline = text.indexOf('\n', from)) >= 0) {
        const wasDiscarding = discarding;
        const line = (buffered + text.slice(from, newline)).trim();
        buffered = '';
        discarding = false;
        from = newline + 1;
        if (wasDiscarding || line === '') continue;
        const event = parseEventLine(line);
        if (event) {
          if (/^\d{10,}$/.test(event.time_nano)) since.nano = event.time_nano;
          handlers.onEvent(event);
        }
      }
      if (discarding) continue;
      buffered += text.slice(from);
      if (buffered.length > MAX_EVENT_LINE_CHARS) {
        // Events are hints: the periodic full observation still sees what this one was about.
        buffered = '';
        discarding = true;
      }
    }
    throw new ObservationError('docker', 'ERR_UNREACHABLE', 'Docker GET /events: stream ended');
  }

  return {
    async listContainers(signal) {
      const { status, json } = await getJson('/containers/json?all=1', signal);
      if (status === 404) throw new ObservationError('docker', 'ERR_HTTP_STATUS', 'Docker GET /containers/json: HTTP 404', { status });
      if (!Array.isArray(json)) throw garbage('Docker /containers/json', 'expected an array');
      const containers = json.map((entry) => parseContainerSummary(entry));
      const dead = new Map<string, number>();
      for (const c of containers) {
        if ((c.state === 'exited' || c.state === 'dead') && c.exit_code === null) {
          const known = c.state === 'dead' ? deadExitCodes.get(c.id) : undefined;
          c.exit_code = known ?? (await inspectExitCode(c.id, signal));
        }
        if (c.state === 'dead' && c.exit_code !== null) dead.set(c.id, c.exit_code);
      }
      // A dead container (Docker failed to remove it) never runs again, so its exit code is asked
      // for once, not at every pass: they pile up on a long-lived host, and each was one more
      // request, in sequence, within the pass's timeout. Only those still listed are kept.
      deadExitCodes = dead;
      return containers;
    },

    async watchEvents(handlers, signal) {
      let attempt = 0;
      const since: { nano?: string } = {};
      while (!signal.aborted) {
        let openedAt: number | null = null;
        try {
          await follow(handlers, signal, since, () => {
            openedAt = performance.now();
          });
        } catch (error) {
          if (signal.aborted) return;
          // The backoff starts over only after a stream that stayed up (as long as the longest
          // wait): one that ends as soon as it opens (an engine restarting, a proxy in front of the
          // socket) was reconnected every base wait, each time replaying the last event, which
          // started a full pass and logged a line about four times a second.
          if (openedAt !== null && performance.now() - openedAt >= backoff.maxMs) attempt = 0;
          handlers.onDisconnected?.(notASocket(transportError('docker', 'Docker GET /events', error), 'Docker GET /events', options.socketPath));
          try {
            await sleep(backoffMs(attempt++), signal);
          } catch {
            return;
          }
        }
      }
    },

    close: () => dispatcher.close(),
  };
}
