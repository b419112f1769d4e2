// Report-route authentication: `Authorization: Bearer <token>`, or Basic auth whose password is the
// token (the original Python agent can only carry credentials in its endpoint URL,
// `http://x:TOKEN@server/`). Tokens are compared in constant time over equal-length digests.
// During a token rotation the previous token is accepted too (--report-token-previous), so
// reporters can be moved to the new one without a window in which their reports are refused.
import { createHash, timingSafeEqual } from 'node:crypto';
import { unauthorized } from './errors.js';

/** The current token; a function because Vault may rotate it while the server runs. */
export type ReportTokenSource = string | (() => string | undefined) | undefined;

export function currentToken(source: ReportTokenSource): string | undefined {
  const token = typeof source === 'function' ? source() : source;
  return token === '' ? undefined : token;
}

export const WWW_AUTHENTICATE = 'Bearer realm="ecs-id-mapper", Basic realm="ecs-id-mapper"';

/** The token a request presents, or undefined when it carries no usable Authorization header. */
export function presentedToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const space = header.indexOf(' ');
  if (space <= 0) return undefined;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'bearer') return value || undefined;
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon === -1 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export function tokensMatch(presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}

/**
 * Which accepted token the header carries; throws a 401 ApiError when it carries neither. Both
 * comparisons always run, so the time taken does not say which one matched.
 */
export function checkReportAuth(header: string | undefined, expected: string, previous?: string): 'current' | 'previous' {
  const presented = presentedToken(header);
  if (presented === undefined) throw unauthorized('report routes need Authorization: Bearer <token> (or Basic auth with the token as password)');
  const current = tokensMatch(presented, expected);
  const old = previous !== undefined && tokensMatch(presented, previous);
  if (current) return 'current';
  if (old) return 'previous';
  throw unauthorized('invalid report token');
}
