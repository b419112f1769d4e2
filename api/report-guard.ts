// What every report route (legacy and v2) shares: the token check before the body is read, the
// refusal of compressed bodies (json-body.ts), the per-host rate limit (keyed by the reporting
// instance id, so one broken daemon cannot starve the rest), and the report kind that
// `reports_received_total` counts the answer under.
import type { FastifyRequest, onRequestHookHandler } from 'fastify';
import { checkReportAuth, currentToken, WWW_AUTHENTICATE } from './auth.js';
import type { ApiContext } from './context.js';
import type { ReportKind } from './metrics.js';
import { refuseEncodedBody } from './json-body.js';

/** The instance id a report comes from: URL, v2 body, or the legacy map's first entry; else the peer address. */
export function reportRateLimitKey(req: FastifyRequest): string {
  const params = req.params as { instance_id?: unknown } | undefined;
  if (typeof params?.instance_id === 'string') return `host:${params.instance_id}`;
  const body = req.body as Record<string, unknown> | undefined;
  if (body && typeof body === 'object') {
    const host = (body as { host?: { instance_id?: unknown } }).host;
    if (host && typeof host.instance_id === 'string') return `host:${host.instance_id}`;
    const first = Object.values(body)[0] as { instance_id?: unknown } | undefined;
    if (first && typeof first === 'object' && typeof first.instance_id === 'string' && first.instance_id) return `host:${first.instance_id}`;
  }
  return `ip:${req.ip}`;
}

/** Reporters remembered as using the previous token, at most: a rotation's stragglers, not every address seen. */
const MAX_REMEMBERED_REPORTERS = 10_000;

/**
 * Counts a report signed with the previous token, and names its reporter in the log the first time,
 * so the operator finishing a rotation knows which daemons or agents still have the old token. The
 * v2 routes name their host in the URL; the legacy ones only in the body, not read yet: their peer
 * address stands in.
 */
function previousTokenUsed(ctx: ApiContext, kind: ReportKind, req: FastifyRequest): void {
  ctx.metrics.previousTokenReport(kind);
  const instanceId = (req.params as { instance_id?: unknown } | undefined)?.instance_id;
  const reporter = typeof instanceId === 'string' ? `host:${instanceId}` : `ip:${req.ip}`;
  if (ctx.previousTokenReporters.has(reporter) || ctx.previousTokenReporters.size >= MAX_REMEMBERED_REPORTERS) return;
  ctx.previousTokenReporters.add(reporter);
  req.log.warn(
    typeof instanceId === 'string' ? { instance_id: instanceId, kind } : { address: req.ip, kind },
    'report signed with the previous report token: move this reporter to the new token before removing the previous one (logged once per reporter)',
  );
}

/** The report token check, before the body is read; `kind` counts a report signed with the previous token. */
function authenticate(ctx: ApiContext, kind: ReportKind | undefined): onRequestHookHandler {
  return (req, reply, done) => {
    const expected = currentToken(ctx.reportToken);
    if (expected === undefined) return done();
    try {
      if (checkReportAuth(req.headers.authorization, expected, currentToken(ctx.previousReportToken)) === 'previous' && kind !== undefined) previousTokenUsed(ctx, kind, req);
      done();
    } catch (err) {
      reply.header('www-authenticate', WWW_AUTHENTICATE);
      done(err as Error);
    }
  };
}

const rateLimitFor = (ctx: ApiContext) => ({ max: ctx.reportRateLimitPerMinute, timeWindow: 60_000, keyGenerator: reportRateLimitKey });

export function reportRouteOptions(ctx: ApiContext, kind: ReportKind) {
  return {
    onRequest: authenticate(ctx, kind),
    preParsing: refuseEncodedBody,
    config: { reportKind: kind, rateLimit: rateLimitFor(ctx) },
  };
}

/**
 * An operator's write to the map (DELETE /v2/hosts/<id>): guarded by the report token, as reports
 * are (whoever may report a host's containers may say it is gone), and by the same per-host limit,
 * but not counted as a report.
 */
export function operatorRouteOptions(ctx: ApiContext) {
  return { onRequest: authenticate(ctx, undefined), config: { rateLimit: rateLimitFor(ctx) } };
}
