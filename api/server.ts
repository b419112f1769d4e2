// buildServer(deps): the whole HTTP API as a Fastify instance that never listens (api/main.ts
// listens; tests use inject()). Everything it needs is passed in: store, metrics registry, logger,
// clock, settings.
import type { ServerOptions as HttpServerOptions } from 'node:http';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions, type onResponseHookHandler } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { registerAjvFormats } from '@fastify/type-provider-typebox';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Logger, LoggerOptions } from 'pino';
import type { Registry } from 'prom-client';
import type { LinkTemplate } from '../config/index.js';
import type { Store } from '../storage/store.js';
import { currentToken, type ReportTokenSource } from './auth.js';
import type { ApiContext, ExtraHealthCheck } from './context.js';
import { clientErrorHandler, createHttpServer } from './client-errors.js';
import { errorBody, errorHandler, rateLimited } from './errors.js';
import { MAX_PATH_ID_LENGTH } from './schemas.js';
import { LogThrottle, throttledWarnings } from './log-throttle.js';
import { useWellFormedJsonParser } from './json-body.js';
import { validatorCompiler } from './validator.js';
import { lazyRequestLoggerFactory } from './request-logger.js';
import { createApiMetrics, reportResultForStatus, type ApiMetrics, type ReportKind } from './metrics.js';
import { ContainerInfoExposition } from './container-info.js';
import { registerFleetMetrics } from './fleet-metrics.js';
import { legacyQueryRoutes } from './routes/legacy-query.js';
import { opsRoutes } from './routes/ops.js';
import { reportRoutes } from './routes/reports.js';
import { v2ReadRoutes } from './routes/v2-read.js';
import { webRoutes } from './routes/web.js';
import { RouteMethods } from './route-methods.js';
import { packageVersion } from '../cli/package-version.js';

export interface ServerDeps {
  store: Store;
  registry: Registry;
  /** A pino logger, pino options, or false for none. */
  logger: Logger | LoggerOptions | false;
  links: LinkTemplate[];
  cadvisorPort: number;
  /** The report token, or a function returning the current one (Vault may rotate it). Unset: reports are open. */
  reportToken?: ReportTokenSource;
  /** The previous token, still accepted while reporters move to the new one (--report-token-previous). */
  previousReportToken?: ReportTokenSource;
  hostStaleAfterMs: number;
  /** Hosts silent longer than this are shown and counted as retired (--host-gone-after); 0 or unset: never. */
  hostGoneAfterMs?: number;
  bodyLimitBytes: number;
  reportRateLimitPerMinute: number;
  /** Proxies (addresses, CIDRs) whose X-Forwarded-For names the client (`--trust-proxy`); unset or empty: the peer. */
  trustProxy?: string[];
  /**
   * How long `/query/container_id/<full id>` may answer a container's task id from memory
   * (default 5 s, as `--cache-ttl`; 0 disables). Mappings never change; the TTL bounds answers for purged records.
   */
  taskCacheTtlMs?: number;
  now?: () => Date;
  /** Folder of the lookup web page served at `/` (api/web/); absent → `/` answers 404 JSON. */
  webRoot?: string;
  health?: ExtraHealthCheck;
  /** Slow-client limits in ms (defaults: whole request 15 s, idle socket 30 s, keep-alive 5 s). */
  requestTimeoutMs?: number;
  connectionTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
}

/** Epoch ms from an injected clock; Date.now (no Date allocated) when none is injected. */
function injectedNowMs(now: (() => Date) | undefined): () => number {
  return now ? () => now().getTime() : Date.now;
}

const requestFields = (req: FastifyRequest, reply: FastifyReply) => ({
  method: req.method,
  url: req.url.slice(0, 300),
  statusCode: reply.statusCode,
  responseTime: reply.elapsedTime,
});

/**
 * The onResponse hook of one route (or, with route `unmatched`, of the not-found handler): the
 * request duration by route template, method and status class, the report counter of a report
 * route, and the request's log line. The template, method and report kind are constants of the
 * route, so they are bound here, when the route is registered; a hook shared by all routes would
 * read them per request from `req.routeOptions`, which Fastify builds afresh on every read. Callback
 * style, not async: it runs on every request, lookups included.
 */
function responseObserver(metrics: ApiMetrics, route: string, methods: string | string[] | undefined, reportKind: ReportKind | undefined, logThrottle: LogThrottle): onResponseHookHandler {
  // A route of one method (nearly all) is bound now; several methods, or any (not found), on first use of each.
  const bound = typeof methods === 'string' ? metrics.routeDurations(route, methods) : undefined;
  return function observeResponse(req, reply, done) {
    const status = reply.statusCode;
    (bound ?? metrics.routeDurations(route, req.method)).observe(status, reply.elapsedTime / 1000);
    if (reportKind !== undefined) metrics.report(reportKind, reportResultForStatus(status));
    if (reportKind !== undefined && status >= 400 && status < 500) logRejectedReport(req, reply, logThrottle);
    else if (req.log.level === 'debug' || req.log.level === 'trace') req.log.debug(requestFields(req, reply), 'request completed');
    done();
  };
}

/**
 * A rejected report, at info: at most once a minute for each status and reporter, so a daemon
 * retrying with a wrong token, or over its rate limit, writes one line a minute rather than one per
 * attempt. The reporter is the instance id of a v2 route once the request is authenticated, else
 * the client's address: before authentication the URL is anyone's to choose, and a client making
 * up a new instance id per request would get a line for each.
 */
function logRejectedReport(req: FastifyRequest, reply: FastifyReply, logThrottle: LogThrottle): void {
  const instanceId = (req.params as { instance_id?: unknown } | undefined)?.instance_id;
  const reporter = reply.statusCode !== 401 && typeof instanceId === 'string' ? instanceId : req.ip;
  const held = logThrottle.admit(`rejected ${reply.statusCode} ${reporter}`);
  if (held === undefined) return;
  const fields = { ...requestFields(req, reply), remoteAddress: req.ip };
  req.log.info(held > 0 ? { ...fields, repeats_not_logged: held } : fields, 'report rejected');
}

function isLogger(value: ServerDeps['logger']): value is Logger {
  return typeof value === 'object' && value !== null && typeof (value as Logger).child === 'function';
}

export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  const requestTimeout = deps.requestTimeoutMs ?? 15_000;
  const logThrottle = new LogThrottle(injectedNowMs(deps.now));
  const options: FastifyServerOptions & { http: HttpServerOptions } = {
    bodyLimit: deps.bodyLimitBytes,
    // request.ip is then the client a trusted load balancer names (the rate limit of events keys on it).
    ...(deps.trustProxy && deps.trustProxy.length > 0 ? { trustProxy: deps.trustProxy.join(',') } : {}),
    requestTimeout,
    // Node enforces requestTimeout/headersTimeout only when it sweeps connections, every
    // connectionsCheckingInterval (default 30 s), and headersTimeout defaults to 60 s: a client
    // sending headers byte by byte inside the idle timeout held its socket for up to a minute.
    http: { connectionsCheckingInterval: Math.min(1_000, requestTimeout), headersTimeout: requestTimeout },
    connectionTimeout: deps.connectionTimeoutMs ?? 30_000,
    keepAliveTimeout: deps.keepAliveTimeoutMs ?? 5_000,
    // Task ARNs (URL-encoded in /v2/lookup/:id) are longer than find-my-way's default of 100.
    routerOptions: { maxParamLength: MAX_PATH_ID_LENGTH },
    // Fastify logs two info lines per request; at fleet scale that drowns the log. Requests are
    // logged at debug instead, rejected reports at info (onResponse below).
    logController: new LogController({ disableRequestLogging: true }),
    // Malformed percent-encoding in the path (FST_ERR_BAD_URL) is answered before routing; without
    // this it would bypass errorHandler and answer Fastify's own `{error:"Bad Request", code, ...}`.
    frameworkErrors: (err, req, reply) => errorHandler(err, req, reply, logThrottle),
    // Malformed HTTP, oversized headers, the request timeout and a missing Host header get our JSON
    // body too (client-errors.ts).
    clientErrorHandler,
    serverFactory: (handler) => createHttpServer(handler, options as Parameters<typeof createHttpServer>[1]),
  };
  const logging = isLogger(deps.logger) ? { loggerInstance: deps.logger } : { logger: deps.logger as FastifyServerOptions['logger'] };
  // Request loggers are built when a request first logs (request-logger.ts); without a logger
  // Fastify shares its null logger, which needs no factory.
  if (deps.logger !== false) options.childLoggerFactory = lazyRequestLoggerFactory;
  const app = Fastify({ ...options, ...logging } as FastifyServerOptions) as unknown as FastifyInstance;

  const scrapeLog = throttledWarnings(app.log, logThrottle);
  const metrics = createApiMetrics(deps.registry, deps.store, scrapeLog);
  registerFleetMetrics(deps.registry, { store: deps.store, hostStaleAfterMs: deps.hostStaleAfterMs, hostGoneAfterMs: deps.hostGoneAfterMs ?? 0, now: deps.now ?? (() => new Date()), log: scrapeLog });
  const containerInfo = new ContainerInfoExposition({ store: deps.store, now: deps.now ?? (() => new Date()), log: scrapeLog });
  app.addHook('onClose', () => containerInfo.stop());
  const ctx: ApiContext = {
    store: deps.store,
    metrics,
    links: deps.links,
    cadvisorPort: deps.cadvisorPort,
    reportToken: deps.reportToken,
    previousReportToken: deps.previousReportToken,
    previousTokenReporters: new Set(),
    hostStaleAfterMs: deps.hostStaleAfterMs,
    hostGoneAfterMs: deps.hostGoneAfterMs ?? 0,
    reportRateLimitPerMinute: deps.reportRateLimitPerMinute,
    taskCacheTtlMs: deps.taskCacheTtlMs ?? 5_000,
    now: deps.now ?? (() => new Date()),
    nowMs: injectedNowMs(deps.now),
    health: deps.health,
    logThrottle,
  };
  if (currentToken(deps.reportToken) === undefined) {
    app.log.warn('no report token configured: report routes accept unauthenticated reports (set --report-token)');
  } else if (currentToken(deps.previousReportToken) !== undefined) {
    app.log.info('report token rotation: the previous token is accepted too until it is removed (ecs_id_mapper_reports_previous_token_total counts its use)');
  }

  useWellFormedJsonParser(app);
  // TypeBox validates: bodies exactly as sent (Ajv's coercion turned a JSON null into "" or 0 and
  // stripped unknown fields), while params and query strings are converted to their declared types.
  registerAjvFormats();
  app.setValidatorCompiler(validatorCompiler);
  app.setErrorHandler((err, req, reply) => errorHandler(err, req, reply, logThrottle));

  // Every route registered from here on (plugins' routes and the automatic HEAD routes included)
  // gets its own response observer; see responseObserver. Its method and path are kept for 405s.
  const routeMethods = new RouteMethods();
  app.addHook('onRoute', (route) => {
    routeMethods.add(route.method, route.url);
    const own = route.onResponse === undefined ? [] : Array.isArray(route.onResponse) ? route.onResponse : [route.onResponse];
    route.onResponse = [...own, responseObserver(metrics, route.url, route.method, route.config?.reportKind, logThrottle)];
  });
  // The not-found handler takes its hooks from the context it is set in: set in a plugin of its
  // own, it alone carries the `unmatched` observer.
  await app.register(async (notFound) => {
    notFound.addHook('onResponse', responseObserver(metrics, 'unmatched', undefined, undefined, logThrottle));
    notFound.setNotFoundHandler((req, reply) => {
      if (routeMethods.answerWrongMethod(req.method, req.url, reply)) return;
      void reply.code(404).type('application/json; charset=utf-8').send(errorBody('ERR_NO_ROUTE', `route ${req.method} ${req.url.split('?')[0].slice(0, 200)} not found`));
    });
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'ECS ID Mapper',
        version: packageVersion(),
        description: 'A live map between Amazon ECS tasks and Docker containers: the original REST routes, the v2 JSON API, reports and metrics.',
      },
      components: {
        securitySchemes: {
          reportToken: { type: 'http', scheme: 'bearer', description: 'The --report-token (Basic auth with the token as password also works).' },
        },
      },
    },
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    // No framing by other sites (clickjacking), and no type sniffing. Not the lookup page's full
    // policy: the bundled Swagger UI uses inline styles, and its own policy (staticCSP) adds
    // upgrade-insecure-requests, which breaks the UI on plain HTTP.
    uiHooks: {
      onRequest: (_req, reply, done) => {
        void reply.header('content-security-policy', "frame-ancestors 'none'").header('x-frame-options', 'DENY').header('x-content-type-options', 'nosniff');
        done();
      },
    },
  });

  await app.register(legacyQueryRoutes, ctx);
  // The per-host rate limit is for reports only, so the plugin lives in the report routes' context:
  // it decorates every request of the context it is registered in (a flag of its own, set on each
  // request object), and lookups, the hot path, have no use for it.
  await app.register(async (reports) => {
    await reports.register(rateLimit, {
      global: false,
      // After the body is parsed, so a legacy map's instance_id can key the limit, but before it is
      // validated, so a broken daemon repeating an invalid report is limited too (keys are read defensively).
      hook: 'preValidation',
      errorResponseBuilder: (_req, context) => rateLimited(`report rate limit of ${context.max} per minute exceeded for this host; retry in ${context.after}`),
    });
    await reports.register(reportRoutes, ctx);
  });
  await app.register(v2ReadRoutes, ctx);
  await app.register(opsRoutes, { ...ctx, registry: deps.registry, containerInfo });
  await app.register(webRoutes, { webRoot: deps.webRoot, routeMethods });
  return app;
}
