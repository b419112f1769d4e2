// The server as `ecs-id-mapper server` builds it with default flags, for benchmarks that measure
// through HTTP: every plugin and hook on, a pino logger at the default level writing to /dev/null
// (Fastify then creates a child logger per request and times every response, as in production).
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import type { Registry } from 'prom-client';
import { parseLinks } from '../config/links.js';
import { defaultWebRoot } from '../api/main.js';
import { buildServer } from '../api/server.js';
import type { Store } from '../storage/store.js';

/** `taskCacheTtlMs` as `--cache-ttl` (default 5 s; 0: every lookup reaches the store). */
export function benchServer(store: Store, registry: Registry, taskCacheTtlMs: number): Promise<FastifyInstance> {
  return buildServer({
    store,
    registry,
    logger: pino({ level: 'info', base: { service: 'ecs-id-mapper-server' } }, pino.destination({ dest: '/dev/null', sync: false })),
    links: parseLinks([]),
    cadvisorPort: 8080,
    hostStaleAfterMs: 15 * 60_000,
    bodyLimitBytes: 1024 * 1024,
    reportRateLimitPerMinute: 600,
    taskCacheTtlMs,
    webRoot: defaultWebRoot(),
  });
}

/** Listens on a free loopback port; returns the base URL. */
export async function listenLoopback(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address !== 'object') throw new Error('no address');
  return `http://127.0.0.1:${address.port}`;
}
