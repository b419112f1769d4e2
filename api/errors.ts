// Every error the API answers with is created here, with a stable code, and mapped to an HTTP status
// and the `{error, message}` JSON body in one handler (`errorHandler`). Callers branch on `code`.
//
// Contract: bad input is always a 4xx with a JSON body, never a 500. Anything unrecognised is a 500
// `{error:"internal"}`, logged with its stack; its message never reaches the client.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorBody } from '../wire/index.js';
import type { LogThrottle } from './log-throttle.js';

export const API_ERRORS = {
  ERR_BAD_REQUEST: { status: 400, error: 'bad_request' },
  ERR_INVALID_CURSOR: { status: 400, error: 'invalid_cursor' },
  ERR_UNAUTHORIZED: { status: 401, error: 'unauthorized' },
  ERR_FORBIDDEN: { status: 403, error: 'forbidden' },
  ERR_REQUEST_TIMEOUT: { status: 408, error: 'request_timeout' },
  ERR_NOT_FOUND: { status: 404, error: 'not_found' },
  /** No route or page at this path: a client with a wrong base URL must not read it as an unknown id. */
  ERR_NO_ROUTE: { status: 404, error: 'no_route' },
  ERR_METHOD_NOT_ALLOWED: { status: 405, error: 'method_not_allowed' },
  ERR_AMBIGUOUS: { status: 409, error: 'ambiguous' },
  /** The request is well formed, but what it names is not in a state that allows it. */
  ERR_CONFLICT: { status: 409, error: 'conflict' },
  ERR_PAYLOAD_TOO_LARGE: { status: 413, error: 'payload_too_large' },
  ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, error: 'unsupported_media_type' },
  ERR_RATE_LIMITED: { status: 429, error: 'rate_limited' },
  ERR_HEADERS_TOO_LARGE: { status: 431, error: 'headers_too_large' },
  ERR_INTERNAL: { status: 500, error: 'internal' },
  ERR_STORE_UNAVAILABLE: { status: 503, error: 'store_unavailable' },
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

export class ApiError extends Error {
  readonly name = 'ApiError';
  readonly statusCode: number;
  /** snake_case code sent to clients as `error`. */
  readonly error: string;
  /** 409: more containers share the prefix than `candidates` lists. */
  readonly moreCandidates: boolean;
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly candidates?: string[],
    options?: { cause?: unknown; moreCandidates?: boolean },
  ) {
    super(message, options);
    this.moreCandidates = options?.moreCandidates ?? false;
    this.statusCode = API_ERRORS[code].status;
    this.error = API_ERRORS[code].error;
  }
}

export const badRequest = (message: string) => new ApiError('ERR_BAD_REQUEST', message);
export const notFound = (message: string) => new ApiError('ERR_NOT_FOUND', message);
export const noRoute = (message: string) => new ApiError('ERR_NO_ROUTE', message);
/** 409 for a container id prefix several containers share: the first candidates by id, and whether more share it. */
export const ambiguous = (prefix: string, candidates: string[], more: boolean) =>
  new ApiError(
    'ERR_AMBIGUOUS',
    `container id prefix "${prefix}" matches ${more ? `more than ${candidates.length} containers (the first ${candidates.length} are listed)` : `${candidates.length} containers`}`,
    candidates,
    { moreCandidates: more },
  );
export const unauthorized = (message: string) => new ApiError('ERR_UNAUTHORIZED', message);
export const conflict = (message: string) => new ApiError('ERR_CONFLICT', message);
export const rateLimited = (message: string) => new ApiError('ERR_RATE_LIMITED', message);
export const unsupportedMediaType = (message: string) => new ApiError('ERR_UNSUPPORTED_MEDIA_TYPE', message);

export function errorBody(code: ApiErrorCode, message: string, candidates?: string[], moreCandidates = false): ErrorBody {
  if (!candidates) return { error: API_ERRORS[code].error, message };
  return moreCandidates ? { error: API_ERRORS[code].error, message, candidates, more_candidates: true } : { error: API_ERRORS[code].error, message, candidates };
}

/** Fastify's own error codes for bad input, by the code we answer with. */
const FASTIFY_CODES: Record<string, ApiErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'ERR_PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'ERR_BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'ERR_BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'ERR_BAD_REQUEST',
  FST_ERR_CTP_EMPTY_TYPE: 'ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_TYPE: 'ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_VALIDATION: 'ERR_BAD_REQUEST',
  FST_ERR_BAD_URL: 'ERR_BAD_REQUEST',
  FST_ERR_ASYNC_CONSTRAINT: 'ERR_BAD_REQUEST',
};

/**
 * Fastify's message for a body of an unknown media type is only "Unsupported Media Type", which
 * does not say what to send: a report posted with curl's default (form-encoded) got no hint.
 * Every route that takes a body takes JSON.
 */
const UNSUPPORTED_MEDIA_TYPE_MESSAGE = 'Content-Type not supported: send the body as JSON, with Content-Type: application/json';

/** Maps any thrown value to the status and body we answer with. */
export function toErrorResponse(err: unknown): { status: number; body: ErrorBody; internal: boolean } {
  if (err instanceof ApiError) {
    return { status: err.statusCode, body: errorBody(err.code, err.message, err.candidates, err.moreCandidates), internal: false };
  }
  const e = err as Partial<FastifyError> & { code?: string; validation?: unknown };
  if (e && typeof e === 'object') {
    if (e.code === 'ERR_STORE_UNAVAILABLE') return { status: 503, body: errorBody('ERR_STORE_UNAVAILABLE', String(e.message)), internal: false };
    if (e.code === 'ERR_INVALID_CURSOR') return { status: 400, body: errorBody('ERR_INVALID_CURSOR', String(e.message)), internal: false };
    // storage/records.ts normaliseIso: a time the schema's date-time format let through.
    if (e.code === 'ERR_INVALID_TIME') return { status: 400, body: errorBody('ERR_BAD_REQUEST', String(e.message)), internal: false };
    if (e.validation) return { status: 400, body: errorBody('ERR_BAD_REQUEST', String(e.message)), internal: false };
    const mapped = e.code ? FASTIFY_CODES[e.code] : undefined;
    if (mapped === 'ERR_UNSUPPORTED_MEDIA_TYPE') return { status: 415, body: errorBody(mapped, UNSUPPORTED_MEDIA_TYPE_MESSAGE), internal: false };
    if (mapped) return { status: API_ERRORS[mapped].status, body: errorBody(mapped, String(e.message)), internal: false };
    // Other client errors raised by Fastify or a plugin (e.g. a malformed JSON body: a SyntaxError with statusCode 400).
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      const code = (Object.keys(API_ERRORS) as ApiErrorCode[]).find((k) => API_ERRORS[k].status === e.statusCode) ?? 'ERR_BAD_REQUEST';
      return { status: e.statusCode, body: errorBody(code, String(e.message ?? 'bad request')), internal: false };
    }
  }
  return { status: 500, body: errorBody('ERR_INTERNAL', 'internal server error'), internal: true };
}

/**
 * Answers `err`. A 500 is logged with its stack and a 503 (the store unavailable) as a warning, each
 * at most once a minute per message through `throttle` (log-throttle.ts); the line then carries
 * `repeats_not_logged`, the occurrences held back since the last one.
 */
export function errorHandler(this: unknown, err: unknown, request: FastifyRequest, reply: FastifyReply, throttle: LogThrottle): void {
  const { status, body, internal } = toErrorResponse(err);
  if (internal || status >= 500) {
    // A 500's body hides its message: the key is the error's own, so two bugs are two lines.
    const held = throttle.admit(internal ? `500 ${String((err as Error | undefined)?.message).slice(0, 300)}` : `${status} ${body.message}`);
    if (held !== undefined) {
      const fields = held > 0 ? { err, repeats_not_logged: held } : { err };
      if (internal) request.log.error(fields, 'unhandled error');
      else request.log.warn(fields, 'store unavailable');
    }
  }
  void reply.code(status).type('application/json; charset=utf-8').send(body);
}
