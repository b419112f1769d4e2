// The JSON body parser: Fastify's own (secure-json-parse, `__proto__`/`constructor` keys refused,
// with messages that say why: whyNotParsed), plus one rule of ours: no string or key may hold a
// lone UTF-16 surrogate (`"\ud800"` is valid JSON). Such text cannot be encoded as UTF-8: SQLite
// would store it mangled into U+FFFD and the SimpleDB client's URL encoding throws on it (a 500).
// It is refused with a 400 before any route runs.
import type { FastifyInstance, preParsingHookHandler } from 'fastify';
import { isWellFormedText as wellFormed } from '../wire/ids.js';
import { badRequest, unsupportedMediaType } from './errors.js';

/**
 * The path (`host.cluster`, `transitions[0].reason`) of the first ill-formed string, or undefined.
 * Iterative: JSON nested a few thousand levels deep (valid, and under the body limit) overflowed the
 * stack of a recursive walk, and the RangeError came back from Fastify's parser as invalid JSON.
 */
export function illFormedPath(body: unknown): string | undefined {
  const stack: Array<[unknown, string]> = [[body, '']];
  while (stack.length > 0) {
    const [value, path] = stack.pop()!;
    if (typeof value === 'string') {
      if (!wellFormed(value)) return path || '(body)';
    } else if (Array.isArray(value)) {
      // Pushed last first, so they are visited in order.
      for (let i = value.length - 1; i >= 0; i--) stack.push([value[i], `${path}[${i}]`]);
    } else if (value !== null && typeof value === 'object') {
      const entries = Object.entries(value);
      for (const [key] of entries) if (!wellFormed(key)) return `${path}${path ? '.' : ''}(a key)`;
      for (let i = entries.length - 1; i >= 0; i--) stack.push([entries[i][1], path ? `${path}.${entries[i][0]}` : entries[i][0]]);
    }
  }
  return undefined;
}

/** Replaces the application/json parser of `app` (call before routes are registered). */
export function useWellFormedJsonParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    parseJson(req, body as string, (err, value) => {
      if ((err as { code?: string } | null)?.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return done(badRequest(whyNotParsed(body as string)), undefined);
      if (err) return done(err, undefined);
      const bad = illFormedPath(value);
      if (bad) return done(badRequest(`${bad.slice(0, 200)}: text holds a lone UTF-16 surrogate (not encodable as UTF-8)`), undefined);
      done(null, value);
    });
  });
}

/**
 * Fastify's parser answers every refused body with "Body is not valid JSON", including well-formed
 * JSON refused for a `__proto__` or `constructor.prototype` key. The client is told which it was,
 * and where the syntax broke. Runs on refused bodies only.
 */
function whyNotParsed(body: string): string {
  try {
    JSON.parse(body);
  } catch (err) {
    return `body is not valid JSON: ${(err as Error).message.slice(0, 200)}`;
  }
  return 'body holds a "__proto__" or "constructor"."prototype" key, refused as prototype poisoning';
}

/**
 * Refuses a request body sent with a Content-Encoding (gzip, deflate, br, ...): the server reads
 * bodies as sent, and would otherwise parse a compressed body as text (a confusing 400) or take a
 * body mislabelled as compressed at face value. 415, as RFC 9110 (15.5.16) asks for an unsupported
 * content coding. A preParsing hook of the routes that take a body (the report routes), so they
 * still answer 401 first without the token, and lookups pay nothing for it.
 */
export const refuseEncodedBody: preParsingHookHandler = (req, _reply, payload, done) => {
  // Only a request that carries a body is judged.
  const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
  const coding = req.headers['content-encoding']?.trim().toLowerCase();
  if (hasBody && coding && coding !== 'identity') {
    return done(unsupportedMediaType(`Content-Encoding ${JSON.stringify(coding.slice(0, 40))} is not supported: send the body uncompressed`));
  }
  done(null, payload);
};
