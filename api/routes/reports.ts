// Report ingestion: the original agent's `POST /report/map` and `/report/event`, and the
// reconciler's v2 routes. All need the report token when one is configured (report-guard.ts).
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  HostSnapshotSchema,
  INSTANCE_ID,
  SnapshotResultSchema,
  TransitionBatchResultSchema,
  TransitionBatchSchema,
} from '../../wire/index.js';
import type { SeqConflict } from '../../storage/store.js';
import type { ApiContext } from '../context.js';
import { badRequest, conflict, notFound } from '../errors.js';
import { TEXT_TYPE } from '../legacy-format.js';
import { legacyEpochMs, legacySnapshotsFromMap } from '../legacy-report.js';
import { operatorRouteOptions, reportRouteOptions } from '../report-guard.js';
import { LegacyEventSchema, LegacyMapSchema, TextBody, errorResponses } from '../schemas.js';

const HostParams = Type.Object({ instance_id: Type.String({ pattern: INSTANCE_ID.source, description: 'EC2 instance id of the reporting host' }) });
const NoQuery = Type.Object({});
const reportErrors = errorResponses(400, 401, 413, 415, 429, 503);
const ForgottenHostSchema = Type.Object({
  instance_id: Type.String(),
  containers_gone: Type.Integer({ minimum: 0, description: 'its live containers, now gone' }),
});

/**
 * Conflicts are acknowledged like duplicates (refused, the daemon would send them again forever: its
 * seqs cannot change), so they are made loud here: counted, and logged with the first of them, at
 * most once a minute per host (a second daemon conflicts at every report).
 */
function reportSeqConflicts(req: FastifyRequest, ctx: ApiContext, instance_id: string, conflicting: readonly SeqConflict[]): void {
  ctx.metrics.seqConflicts(conflicting.length);
  const held = ctx.logThrottle.admit(`seq conflict ${instance_id}`);
  if (held === undefined) return;
  const [first] = conflicting;
  req.log.warn(
    {
      instance_id,
      conflicts: conflicting.length,
      seq: first.seq,
      stored: first.stored,
      reported: first.reported,
      ...(held > 0 ? { repeats_not_logged: held } : {}),
    },
    `host ${instance_id} reported ${conflicting.length} transition(s) under seqs it already sent for other transitions ` +
      `(seq ${first.seq}: held for container ${first.stored.container_id} ${first.stored.from ?? 'new'} → ${first.stored.to}, reported for container ${first.reported.container_id} ${first.reported.from ?? 'new'} → ${first.reported.to}); ` +
      'acknowledged, not applied: two reconcilers report this instance, or its state dir was restored from an old copy (docs/operations.md)',
  );
}

/** A v2 report names its host twice (URL and body); they must agree. */
function assertSameHost(urlInstanceId: string, bodyInstanceId: string): void {
  if (bodyInstanceId !== urlInstanceId) {
    throw badRequest(`body host.instance_id "${bodyInstanceId}" differs from the URL's "${urlInstanceId}"`);
  }
}

export const reportRoutes: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.post('/report/map', {
    ...reportRouteOptions(ctx, 'legacy_map'),
    schema: {
      summary: "The original agent's whole container map of one host (its snapshot); answers `true`",
      tags: ['legacy'],
      security: [{ reportToken: [] }],
      querystring: NoQuery,
      body: LegacyMapSchema,
      response: { 200: TextBody, ...reportErrors },
    },
  }, async (req, reply) => {
    const { snapshots, skipped } = legacySnapshotsFromMap(req.body, ctx.now());
    // An empty map names no host, so there is nothing to replace: acknowledged, no effect (docs/api.md).
    for (const snapshot of snapshots) {
      const result = await ctx.store.replaceLegacySnapshot(snapshot);
      req.log.debug({ instance_id: snapshot.host.instance_id, ...result, skipped }, 'legacy map applied');
    }
    return reply.type(TEXT_TYPE).send('true');
  });

  r.post('/report/event', {
    ...reportRouteOptions(ctx, 'legacy_event'),
    schema: {
      summary: "The original agent's container added/removed event; answers `true`",
      tags: ['legacy'],
      security: [{ reportToken: [] }],
      querystring: NoQuery,
      body: LegacyEventSchema,
      response: { 200: TextBody, ...reportErrors },
    },
  }, async (req, reply) => {
    const ms = legacyEpochMs(req.body.timestamp, 'timestamp');
    await ctx.store.recordLegacyEvent({ event_id: req.body.event_id, event: req.body.event, at: new Date(ms).toISOString() }, null);
    return reply.type(TEXT_TYPE).send('true');
  });

  r.post('/v2/hosts/:instance_id/transitions', {
    ...reportRouteOptions(ctx, 'transitions'),
    schema: {
      summary: "A host's sequence-numbered transitions; idempotent (replays are acknowledged without effect)",
      tags: ['v2 reports'],
      security: [{ reportToken: [] }],
      params: HostParams,
      querystring: NoQuery,
      body: TransitionBatchSchema,
      response: { 200: TransitionBatchResultSchema, ...reportErrors },
    },
  }, async (req) => {
    assertSameHost(req.params.instance_id, req.body.host.instance_id);
    const seqs = new Set<number>();
    for (const t of req.body.transitions) {
      if (t.container.container_id !== t.container_id) throw badRequest(`transition seq ${t.seq}: container.container_id differs from container_id`);
      // The store would count the second as a replay of the first and drop it.
      if (seqs.has(t.seq)) throw badRequest(`seq ${t.seq} appears twice in the batch`);
      seqs.add(t.seq);
    }
    const { conflicting, ...answer } = await ctx.store.applyTransitions(req.body, ctx.now());
    if (conflicting.length > 0) reportSeqConflicts(req, ctx, req.params.instance_id, conflicting);
    return answer;
  });

  r.put('/v2/hosts/:instance_id/snapshot', {
    ...reportRouteOptions(ctx, 'snapshot'),
    schema: {
      summary: "A host's full current state; containers of this host absent from it become gone",
      tags: ['v2 reports'],
      security: [{ reportToken: [] }],
      params: HostParams,
      querystring: NoQuery,
      body: HostSnapshotSchema,
      response: { 200: SnapshotResultSchema, ...reportErrors },
    },
  }, async (req) => {
    assertSameHost(req.params.instance_id, req.body.host.instance_id);
    const ids = new Set<string>();
    for (const c of req.body.containers) {
      if (ids.has(c.container_id)) throw badRequest(`container ${c.container_id} appears twice in the snapshot`);
      ids.add(c.container_id);
    }
    return ctx.store.replaceSnapshot(req.body, ctx.now());
  });

  r.delete('/v2/hosts/:instance_id', {
    ...operatorRouteOptions(ctx),
    schema: {
      summary: "Forget an original agent's host that is gone for good: its live containers become gone, and it leaves /v2/hosts",
      description:
        'For a terminated instance that ran the original agent, whose silence cannot retire it (it reports only on changes). ' +
        'Its records answer lookups until --retention purges them; a later report from the host brings it back. ' +
        "A reconciler's host (one that has sent sequence numbers) answers 409: it is retired when silent longer than --host-gone-after.",
      tags: ['v2 reports'],
      security: [{ reportToken: [] }],
      params: HostParams,
      querystring: NoQuery,
      response: { 200: ForgottenHostSchema, ...errorResponses(400, 401, 404, 409, 429, 503) },
    },
  }, async (req) => {
    const { instance_id } = req.params;
    const result = await ctx.store.forgetHost(instance_id, ctx.now());
    if (result.outcome === 'unknown') throw notFound(`no host ${instance_id} is listed`);
    if (result.outcome === 'sequenced') {
      throw conflict(`host ${instance_id} has sent sequence numbers (last seq ${result.last_seq}): a reconciler's host is retired when silent longer than --host-gone-after, not forgotten by hand`);
    }
    req.log.info({ instance_id, containers_gone: result.containers, remoteAddress: req.ip }, 'host forgotten by hand: its live containers are gone');
    return { instance_id, containers_gone: result.containers };
  });
};
