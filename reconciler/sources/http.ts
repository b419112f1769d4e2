// One HTTP exchange for the observation clients (ECS agent, IMDS, Docker): a bounded time, a
// bounded body, and every transport failure turned into an ObservationError with a stable code.
import { request, type Dispatcher } from '../undici.js';
import { ObservationError } from './types.js';

type Source = ObservationError['source'];

export interface HttpExchange {
  method?: Dispatcher.HttpMethod;
  url: URL;
  headers?: Record<string, string>;
  /** Whole exchange (connect, headers and body) must finish within this many milliseconds. */
  timeoutMs: number;
  /**
   * The caller's cancellation; when it fires, its reason is rethrown as is (not an ObservationError).
   * A deadline (AbortSignal.timeout, as the reconcile loop passes) is a timeout: ERR_TIMEOUT.
   */
  signal?: AbortSignal;
  dispatcher?: Dispatcher;
  /** Larger bodies are a failed observation (ERR_GARBAGE). */
  maxBodyBytes?: number;
  /**
   * Takes a 2xx answer's body chunk by chunk as it arrives instead of it being collected (the
   * answer's `body` is then ''), so a big body is never held whole. What it throws ends the
   * exchange; an ObservationError is rethrown as is.
   */
  onBodyChunk?: (chunk: Buffer) => void;
}

export interface HttpAnswer {
  status: number;
  body: string;
}

const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;

const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOENT', // unix socket path gone
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** The errno / undici code of a transport error, looking through `cause`s. */
export function errorCode(error: unknown): string | undefined {
  let e: unknown = error;
  // undici wraps socket errors; the errno code may sit one or two causes deep.
  for (let depth = 0; depth < 3 && e && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Maps a transport error (not an HTTP status) to an ObservationError. */
export function transportError(source: Source, what: string, error: unknown): ObservationError {
  if (error instanceof ObservationError) return error;
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  if (code && TIMEOUT_CODES.has(code)) return new ObservationError(source, 'ERR_TIMEOUT', `${what}: timed out (${code})`, { cause: error });
  if (code && UNREACHABLE_CODES.has(code)) return new ObservationError(source, 'ERR_UNREACHABLE', `${what}: unreachable (${code})`, { cause: error });
  return new ObservationError(source, 'ERR_UNREACHABLE', `${what}: ${message}`, { cause: error });
}

/**
 * What to throw when the caller's signal fired. Its deadline passing is this exchange timing out,
 * with the stable code and the request's name: rethrown as is, a pass's deadline was logged as
 * "ECS agent observation failed: The operation was aborted due to timeout" with `code: 23`.
 */
function callerAborted(source: Source, what: string, signal: AbortSignal): unknown {
  const reason: unknown = signal.reason;
  if (reason instanceof DOMException && reason.name === 'TimeoutError') return new ObservationError(source, 'ERR_TIMEOUT', `${what}: no answer before the deadline`, { cause: reason });
  return reason;
}

/**
 * Performs one request and reads the whole body as UTF-8. Never throws for an HTTP status.
 * The deadline and the caller's signal are joined by hand rather than with AbortSignal.any, whose
 * dependants a long-lived caller signal retains on Node 20 (the reconciler makes a request every pass).
 */
export async function exchange(source: Source, what: string, req: HttpExchange): Promise<HttpAnswer> {
  if (req.signal?.aborted) throw callerAborted(source, what, req.signal);
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error(`${what}: no answer within ${req.timeoutMs} ms`));
  }, req.timeoutMs);
  const onAbort = () => controller.abort(req.signal?.reason);
  req.signal?.addEventListener('abort', onAbort, { once: true });
  const limit = req.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  try {
    const res = await request(req.url, {
      method: req.method ?? 'GET',
      headers: req.headers,
      signal: controller.signal,
      dispatcher: req.dispatcher,
      headersTimeout: req.timeoutMs,
      bodyTimeout: req.timeoutMs,
    });
    const chunks: Buffer[] = [];
    const sink = res.statusCode >= 200 && res.statusCode <= 299 ? req.onBodyChunk : undefined;
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > limit) {
        res.body.destroy();
        throw new ObservationError(source, 'ERR_GARBAGE', `${what}: body larger than ${limit} bytes`, { status: res.statusCode });
      }
      if (sink) sink(chunk as Buffer);
      else chunks.push(chunk as Buffer);
    }
    return { status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') };
  } catch (error) {
    if (req.signal?.aborted) throw callerAborted(source, what, req.signal);
    if (timedOut) throw new ObservationError(source, 'ERR_TIMEOUT', `${what}: no answer within ${req.timeoutMs} ms`, { cause: error });
    throw transportError(source, what, error);
  } finally {
    clearTimeout(timer);
    req.signal?.removeEventListener('abort', onAbort);
  }
}
