// The original server's lookup routes, kept byte-compatible (see docs/api.md for the deliberate
// differences): text answers, Flask-style JSON, `?redir=true` (any case) redirects.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { ContainerRecord } from '../../storage/store.js';
import { linksFor, type ApiContext } from '../context.js';
import { ExpiringMap } from '../expiring-map.js';
import { notFound } from '../errors.js';
import { FLASK_JSON_TYPE, TEXT_TYPE, flaskJsonify, isXhr, legacyAttributes } from '../legacy-format.js';
import { lookupId, lookupTaskId, type LookupAnswer } from '../lookup.js';
import { LegacyJsonBody, TextBody, errorResponses } from '../schemas.js';

const HEX_ID = '[0-9a-fA-F]{12,64}';
const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const TASK = `[0-9a-fA-F]{32}|${UUID}`;

const ContainerParams = Type.Object({
  container_id: Type.String({ pattern: `^(?:${HEX_ID}|${UUID})$`, description: 'Container id, unique prefix (>= 12 hex) or a task id' }),
});
const TaskParams = Type.Object({
  task_id: Type.String({ pattern: `^(?:${TASK})$`, description: 'Task id: 32 hex or a dashed UUID' }),
});
// As Flask's request.args.get: any value (only "true" redirects), and the first of a repeated key.
const RedirValue = Type.String({ maxLength: 2048 });
const RedirQuery = Type.Object({
  redir: Type.Optional(Type.Union([RedirValue, Type.Array(RedirValue, { maxItems: 64 })], { description: '"true" (any case) answers 302 to the URL; given twice, the first counts' })),
});
const NoQuery = Type.Object({});


export const legacyQueryRoutes: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  // A container's task never changes, so `/query/container_id/<full id>` (the hot path: Grafana
  // links, scripts) may answer from memory. The TTL bounds how long a purged record still answers.
  // Only full ids are cached: a prefix that is unique now may become ambiguous later.
  const taskOfContainer = ctx.taskCacheTtlMs > 0
    ? new ExpiringMap<string, string>({ max: 100_000, ttlMs: ctx.taskCacheTtlMs, nowMs: ctx.nowMs })
    : undefined;

  async function lookup(id: string, mustBe?: 'task'): Promise<LookupAnswer> {
    const answer = mustBe === 'task' ? await lookupTaskId(ctx.store, id, ctx.metrics) : await lookupId(ctx.store, id, 'legacy', ctx.metrics);
    if (mustBe === 'task' && answer.kind !== 'task_id') throw notFound(`no task with id ${answer.query}`);
    if (answer.records.length === 0) {
      throw notFound(answer.kind === 'task_id' ? `no task with id ${answer.query}` : `no container with id ${answer.query}`);
    }
    return answer;
  }
  const resolve = async (id: string, mustBe?: 'task') => (await lookup(id, mustBe)).records;

  const text = (reply: FastifyReply, body: string) => reply.type(TEXT_TYPE).send(body);
  // A Buffer, so Fastify keeps the content type exactly as the original sent it (no charset added).
  const json = (req: FastifyRequest, reply: FastifyReply, value: unknown) =>
    reply.type(FLASK_JSON_TYPE).send(Buffer.from(flaskJsonify(value, { xhr: isXhr(req.headers) }), 'utf8'));

  function cadvisorUrls(records: ContainerRecord[]): string[] {
    const urls = records.map((rec) => linksFor(ctx, rec).find((l) => l.name === 'cadvisor')?.url).filter((u): u is string => !!u);
    if (urls.length === 0) throw notFound('no cAdvisor link for this container (its instance IP is unknown, or the cadvisor link is not configured)');
    return urls;
  }

  function answerCadvisor(reply: FastifyReply, records: ContainerRecord[], redirParam: string | string[] | undefined) {
    const redir = Array.isArray(redirParam) ? redirParam[0] : redirParam;
    const urls = cadvisorUrls(records);
    // Several containers (a task): the redirect goes to the first by container id, as the original did.
    if (redir?.toLowerCase() === 'true') return reply.code(302).header('location', urls[0]).type(TEXT_TYPE).send(`Redirecting to ${urls[0]}`);
    return text(reply, urls.join('\n'));
  }

  const attrs = (records: ContainerRecord[]) => {
    const all = records.map((rec) => legacyAttributes(rec, linksFor(ctx, rec)));
    return all.length === 1 ? all[0] : all;
  };

  // A task id's containers, one id per line (ordered by container id).
  const taskContainerIds = (records: ContainerRecord[]) => records.map((rec) => rec.container_id).join('\n');

  r.get('/query/container_id/:container_id', {
    schema: {
      summary: 'Task id of a container (text); a task id answers its container ids',
      tags: ['legacy'],
      params: ContainerParams,
      querystring: NoQuery,
      response: { 200: TextBody, ...errorResponses(400, 404, 409, 503) },
    },
  }, (req, reply) => {
    // A cache hit answers synchronously: no promise for Fastify to wait on (the hot path).
    const cached = taskOfContainer?.get(req.params.container_id.toLowerCase());
    if (cached !== undefined) {
      ctx.metrics.lookup('container_id', 'hit');
      text(reply, cached);
      return;
    }
    return answerFromStore(req.params.container_id, reply);
  });
  async function answerFromStore(id: string, reply: FastifyReply) {
    const { kind, records } = await lookup(id);
    if (kind === 'task_id') return text(reply, taskContainerIds(records));
    const taskId = records[0].task_id;
    if (!taskId) throw notFound(`container ${records[0].container_id} has no known task`);
    if (kind === 'container_id') taskOfContainer?.set(records[0].container_id, taskId);
    return text(reply, taskId);
  }

  r.get('/query/container_id/:container_id/_all', {
    schema: {
      summary: 'Every attribute of a container (JSON; an array for a task with several containers)',
      tags: ['legacy'],
      params: ContainerParams,
      querystring: NoQuery,
      response: { 200: LegacyJsonBody, ...errorResponses(400, 404, 409, 503) },
    },
  }, async (req, reply) => json(req, reply, attrs(await resolve(req.params.container_id))));

  r.get('/query/container_id/:container_id/cadvisor', {
    schema: {
      summary: 'cAdvisor URL of a container (text), or a 302 to it with ?redir=true',
      tags: ['legacy'],
      params: ContainerParams,
      querystring: RedirQuery,
      response: { 200: TextBody, 302: TextBody, ...errorResponses(400, 404, 409, 503) },
    },
  }, async (req, reply) => answerCadvisor(reply, await resolve(req.params.container_id), req.query.redir));

  r.get('/query/container_id/:container_id/urls', {
    schema: {
      summary: 'Every configured link of a container as {"<name>_url": url}',
      tags: ['legacy'],
      params: ContainerParams,
      querystring: NoQuery,
      response: { 200: LegacyJsonBody, ...errorResponses(400, 404, 409, 503) },
    },
  }, async (req, reply) => {
    const records = await resolve(req.params.container_id);
    const urlsOf = (rec: ContainerRecord) => Object.fromEntries(linksFor(ctx, rec).map((l) => [`${l.name}_url`, l.url]));
    return json(req, reply, records.length === 1 ? urlsOf(records[0]) : records.map(urlsOf));
  });

  r.get('/query/task_id/:task_id', {
    schema: {
      summary: "A task's container ids (text, one per line, ordered by container id)",
      tags: ['legacy'],
      params: TaskParams,
      querystring: NoQuery,
      response: { 200: TextBody, ...errorResponses(400, 404, 503) },
    },
  }, async (req, reply) => text(reply, taskContainerIds(await resolve(req.params.task_id, 'task'))));

  r.get('/query/task_id/:task_id/_all', {
    schema: {
      summary: "Every attribute of a task's containers (JSON object; an array when several)",
      tags: ['legacy'],
      params: TaskParams,
      querystring: NoQuery,
      response: { 200: LegacyJsonBody, ...errorResponses(400, 404, 503) },
    },
  }, async (req, reply) => json(req, reply, attrs(await resolve(req.params.task_id, 'task'))));

  r.get('/query/task_id/:task_id/cadvisor', {
    schema: {
      summary: "cAdvisor URL(s) of a task's containers (text, one per line), or a 302 to the first with ?redir=true",
      tags: ['legacy'],
      params: TaskParams,
      querystring: RedirQuery,
      response: { 200: TextBody, 302: TextBody, ...errorResponses(400, 404, 503) },
    },
  }, async (req, reply) => answerCadvisor(reply, await resolve(req.params.task_id, 'task'), req.query.redir));
};

