// What every route plugin receives: the store, metrics and settings, all passed in.
import type { LinkTemplate } from '../config/index.js';
import type { ContainerRecord, Store } from '../storage/store.js';
import type { ReportTokenSource } from './auth.js';
import { renderLinks, type Link } from './links.js';
import type { LogThrottle } from './log-throttle.js';
import type { ApiMetrics, ReportKind } from './metrics.js';

export type ExtraHealthCheck = () => Promise<{ ok: boolean; detail?: string }>;

export interface ApiContext {
  store: Store;
  metrics: ApiMetrics;
  links: LinkTemplate[];
  cadvisorPort: number;
  reportToken: ReportTokenSource;
  /** During a rotation, the old token, still accepted (only while reportToken is set). */
  previousReportToken: ReportTokenSource;
  /** Reporters (host:<instance id> or ip:<address>) already logged as using the previous token. */
  previousTokenReporters: Set<string>;
  hostStaleAfterMs: number;
  /** 0: hosts are never retired. */
  hostGoneAfterMs: number;
  reportRateLimitPerMinute: number;
  /** TTL of the in-memory container → task id cache of the legacy text lookup; 0 disables it. */
  taskCacheTtlMs: number;
  now: () => Date;
  /** The same clock in epoch ms: Date.now unless a clock is injected (no Date per call on the lookup's hot path). */
  nowMs: () => number;
  /** An extra readiness check (e.g. Vault secrets loaded); not ok → /health answers 503. */
  health?: ExtraHealthCheck;
  /** Log lines a request can repeat at fleet rate go through it (log-throttle.ts). */
  logThrottle: LogThrottle;
}

export function linksFor(ctx: ApiContext, record: ContainerRecord): Link[] {
  return renderLinks(record, ctx.links, ctx.cadvisorPort);
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on report routes: which `reports_received_total{kind}` a request counts under. */
    reportKind?: ReportKind;
  }
}
