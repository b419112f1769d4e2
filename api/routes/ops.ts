// /health (the original's text answer when healthy; 503 JSON with the reason otherwise) and /metrics.
import { Readable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Registry } from 'prom-client';
import type { ContainerInfoExposition } from '../container-info.js';
import type { ApiContext } from '../context.js';
import { errorBody } from '../errors.js';
import { TEXT_TYPE } from '../legacy-format.js';
import { TextBody, errorResponses } from '../schemas.js';

/** What the original server answered when healthy. */
export const HEALTHY_BODY = 'All systems go!';

export const opsRoutes: FastifyPluginAsync<ApiContext & { registry: Registry; containerInfo: ContainerInfoExposition }> = async (app, ctx) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.get('/health', {
    schema: {
      summary: `200 "${HEALTHY_BODY}" when the store answers; 503 JSON with the reason otherwise`,
      tags: ['ops'],
      querystring: Type.Object({}),
      response: { 200: TextBody, ...errorResponses(503) },
    },
  }, async (req, reply) => {
    let reason: string | undefined;
    let detail: string | undefined;
    try {
      const h = await ctx.store.health();
      if (!h.ok) reason = `store (${h.backend}) unhealthy${h.detail ? `: ${h.detail}` : ''}`;
    } catch (err) {
      reason = `store check failed: ${(err as Error).message}`;
    }
    if (!reason && ctx.health) {
      try {
        const extra = await ctx.health();
        if (!extra.ok) reason = extra.detail ?? 'unhealthy';
        else detail = extra.detail;
      } catch (err) {
        reason = `health check failed: ${(err as Error).message}`;
      }
    }
    if (reason) {
      const held = ctx.logThrottle.admit(`health ${reason}`);
      if (held !== undefined) req.log.warn(held > 0 ? { reason, repeats_not_logged: held } : { reason }, 'health check failed');
      return reply.code(503).type('application/json; charset=utf-8').send(errorBody('ERR_STORE_UNAVAILABLE', reason));
    }
    // The body stays the original's; a healthy-but-degraded detail (Vault failing while the last
    // good secret is in use) goes in a header so it is visible without failing the health check.
    if (detail) reply.header('x-health-detail', detail.replace(/[^\x20-\x7e]/g, '?'));
    return reply.type(TEXT_TYPE).send(HEALTHY_BODY);
  });

  r.get('/metrics', {
    schema: {
      summary: 'Prometheus metrics (text exposition format)',
      tags: ['ops'],
      querystring: Type.Object({}),
      // Text, streamed as bytes (below).
      response: { 200: { description: 'text/plain', content: { 'text/plain': { schema: Type.Unsafe<Readable>({ type: 'string' }) } } } },
    },
  }, async (_req, reply) => {
    const [families, containerInfo] = await Promise.all([ctx.registry.metrics(), ctx.containerInfo.exposition()]);
    const separated = families === '' || families.endsWith('\n') ? families : `${families}\n`;
    // The registry's families, then container_info's buffers as they are kept between its
    // refreshes (container-info.ts), streamed without joining them: 15 MB at the default fleet size.
    const chunks = [Buffer.from(separated), ...containerInfo];
    return reply
      .type(ctx.registry.contentType)
      .header('content-length', chunks.reduce((n, c) => n + c.length, 0))
      .send(Readable.from(chunks, { objectMode: false }));
  });
};
