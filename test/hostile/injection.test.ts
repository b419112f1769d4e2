// The injection corpus (test/support/injection-corpus.ts) against every lookup path, on both
// backends. The store is seeded through the real report routes with ordinary records AND with
// records whose cluster, task family and docker name are themselves hostile strings, so a query
// can only pass by matching literally: never a 5xx, every record returned equals the query in
// the field it names, and a hostile value that was stored is found again exactly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import fc from 'fast-check';
import { agentEntry, buildTestApp, type TestApp } from '../../api/test-helpers.js';
import type { ContainerRecord } from '../../storage/store.js';
import { containerId, hostIdentity, instanceId, observation, snapshot, snapshotContainer, taskArn, taskId } from '../../storage/store.fixtures.js';
import { INJECTION_CORPUS, safeEncode, urlVariants } from '../support/injection-corpus.js';
import { BACKENDS, storeFactory, type StoreFactory } from './backends.js';
import { dockerNameFits } from '../../wire/ids.js';

/** Ordinary records: two hosts, a shared task, docker names that differ only where wildcards would hide it. */
const PLAIN = [
  { id: containerId('plain-1'), cluster: 'prod', family: 'web', docker: 'ecs-web-3-app-aa11', task: taskId('plain-task') },
  { id: containerId('plain-2'), cluster: 'prod', family: 'web', docker: 'ecs-web-3-proxy-bb22', task: taskId('plain-task') },
  { id: containerId('plain-3'), cluster: 'prod_1', family: 'web_worker', docker: 'ecs_web_3_app_aa11', task: taskId('plain-task-3') },
];

/** A record from the original agent's map, whose key legacy events refer to. */
const LEGACY_C = containerId('legacy-seed');
const LEGACY_KEY = 'k'.repeat(64);

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Corpus values that fit the report schema's 255-character limit become stored values too; those
 * holding a lone surrogate cannot be stored (not UTF-8) and must be refused instead.
 */
const STORABLE = INJECTION_CORPUS.filter((v) => v.length <= 255 && !LONE_SURROGATE.test(v));
const UNENCODABLE = INJECTION_CORPUS.filter((v) => LONE_SURROGATE.test(v));

/** The bodies a path answers with, as records (legacy text answers are checked by the caller). */
type Check = (res: LightMyRequestResponse, query: string) => void;

function expectNo5xx(res: LightMyRequestResponse, url: string): void {
  if (res.statusCode >= 500) throw new Error(`${url} answered ${res.statusCode}: ${res.body.slice(0, 300)}`);
}

function expectErrorJson(res: LightMyRequestResponse, url: string): void {
  if (res.statusCode >= 400) {
    expect(res.headers['content-type'], url).toMatch(/^application\/json/);
    expect(res.json(), url).toEqual(expect.objectContaining({ error: expect.any(String), message: expect.any(String) }));
  }
}

/** The value as a docker name where the wire takes it as one (wire/ids.ts dockerNameFits; any other is a 400): else none. */
const dockerNameOf = (value: string): string | null => (dockerNameFits(value) ? value : null);

for (const backend of BACKENDS) {
  describe(`injection corpus on ${backend}`, () => {
    let factory: StoreFactory;
    let t: TestApp;
    let all: ContainerRecord[];

    async function get(url: string): Promise<LightMyRequestResponse> {
      const res = await t.app.inject({ method: 'GET', url });
      expectNo5xx(res, url);
      expectErrorJson(res, url);
      return res;
    }

    beforeAll(async () => {
      factory = await storeFactory(backend);
      t = await buildTestApp({}, await factory.open());
      const put = async (instance: string, cluster: string, containers: ReturnType<typeof snapshotContainer>[]) => {
        const host = hostIdentity({ instance_id: instance, cluster });
        const res = await t.app.inject({ method: 'PUT', url: `/v2/hosts/${instance}/snapshot`, payload: snapshot(host, 1, containers) });
        expect(res.statusCode, `seeding cluster ${JSON.stringify(cluster)}: ${res.body}`).toBe(200);
      };
      for (const [i, p] of PLAIN.entries()) {
        await put(instanceId(`plain-${i}`), p.cluster, [
          snapshotContainer('running', { container_id: p.id, docker_name: p.docker, task_family: p.family, task_arn: taskArn(p.task, p.cluster.replace(/[^A-Za-z0-9_-]/g, '')) }),
        ]);
      }
      for (const [i, value] of STORABLE.entries()) {
        await put(instanceId(`hostile-${i}`), value, [
          snapshotContainer('running', { container_id: containerId(`hostile-${i}`), docker_name: dockerNameOf(value), task_family: value, task_arn: taskArn(taskId(`hostile-${i}`)) }),
        ]);
      }
      const legacy = await t.app.inject({ method: 'POST', url: '/report/map', payload: { [LEGACY_KEY]: agentEntry({ container_id: LEGACY_C, task_id: `prod/${taskId('legacy-seed')}`, instance_id: instanceId('legacy-seed') }) } });
      expect(legacy.statusCode, legacy.body).toBe(200);
      all = (await t.store.listContainers({}, { limit: 1000 })).items;
    }, 300_000);

    afterAll(async () => {
      await t?.close();
      await factory?.close();
    });

    it('stored every hostile value exactly as reported', () => {
      expect(all).toHaveLength(PLAIN.length + STORABLE.length + 1);
      for (const [i, value] of STORABLE.entries()) {
        const rec = all.find((r) => r.container_id === containerId(`hostile-${i}`));
        expect(rec?.cluster, JSON.stringify(value)).toBe(value);
        expect(rec?.task_family).toBe(value);
        expect(rec?.docker_name).toBe(dockerNameOf(value));
      }
    });

    it('refuses a report whose text holds a lone surrogate with 400 JSON, storing nothing', async () => {
      for (const [i, value] of UNENCODABLE.entries()) {
        const instance = instanceId(`unencodable-${i}`);
        const id = containerId(`unencodable-${i}`);
        const bodies = [
          snapshot(hostIdentity({ instance_id: instance, cluster: value }), 1, [snapshotContainer('running', { container_id: id })]),
          snapshot(hostIdentity({ instance_id: instance }), 1, [snapshotContainer('running', { container_id: id, docker_name: value })]),
          { ...snapshot(hostIdentity({ instance_id: instance }), 1, [snapshotContainer('running', { container_id: id })]), [value]: 1 },
        ];
        for (const payload of bodies) {
          const res = await t.app.inject({ method: 'PUT', url: `/v2/hosts/${instance}/snapshot`, payload });
          expect(res.statusCode, JSON.stringify(value)).toBe(400);
          expect(res.json()).toMatchObject({ error: 'bad_request', message: expect.stringContaining('lone UTF-16 surrogate') });
        }
        expect((await t.store.getContainer(id)).kind).toBe('missing');
        expect((await t.store.listHosts()).some((h) => h.instance_id === instance)).toBe(false);
      }
    });

    it("legacy events with a hostile event_id attach to no container but the one whose map key they equal", async () => {
      const before = await Promise.all(all.map((r) => t.store.history(r.container_id)));
      for (const value of INJECTION_CORPUS) {
        const res = await t.app.inject({ method: 'POST', url: '/report/event', payload: { event_id: value, event: 'removed', timestamp: 1767225600 } });
        expectNo5xx(res, `event_id ${JSON.stringify(value)}`);
        expectErrorJson(res, `event_id ${JSON.stringify(value)}`);
        expect([200, 400], JSON.stringify(value)).toContain(res.statusCode);
      }
      expect(await Promise.all(all.map((r) => t.store.history(r.container_id)))).toEqual(before);
      // The real key still works, so the hostile ones were not merely ignored wholesale.
      const real = await t.app.inject({ method: 'POST', url: '/report/event', payload: { event_id: LEGACY_KEY, event: 'removed', timestamp: 1767225600 } });
      expect(real.statusCode).toBe(200);
      expect((await t.store.history(LEGACY_C)).map((h) => h.reason)).toContain('legacy.removed');
    });

    it('legacy /query/container_id and /query/task_id paths find nothing for any hostile id, in every URL encoding', async () => {
      const suffixes = ['', '/_all', '/cadvisor', '/urls'];
      for (const value of INJECTION_CORPUS) {
        for (const encoded of urlVariants(value)) {
          for (const suffix of suffixes) {
            const res = await get(`/query/container_id/${encoded}${suffix}`);
            expect([400, 404], `container_id ${JSON.stringify(value)}${suffix}`).toContain(res.statusCode);
          }
          for (const suffix of ['', '/_all', '/cadvisor']) {
            const res = await get(`/query/task_id/${encoded}${suffix}`);
            expect([400, 404], `task_id ${JSON.stringify(value)}${suffix}`).toContain(res.statusCode);
          }
        }
      }
    });

    it('/v2/lookup/:id returns only records that match the id literally', async () => {
      for (const value of INJECTION_CORPUS) {
        for (const encoded of urlVariants(value)) {
          const res = await get(`/v2/lookup/${encoded}`);
          if (res.statusCode !== 200) {
            expect([400, 404], JSON.stringify(value)).toContain(res.statusCode);
            continue;
          }
          // Only a docker name can be an arbitrary string; `query` is the once-decoded value the server saw.
          const body = res.json() as { kind: string; query: string; containers: ContainerRecord[] };
          expect(body.kind).toBe('docker_name');
          expect(body.containers.map((c) => c.container_id)).toEqual(all.filter((r) => r.docker_name === body.query).map((r) => r.container_id));
        }
      }
    });

    it('docker names and task ARNs with wildcard characters match nothing but themselves', async () => {
      const plain = PLAIN[0];
      const wildcardNames = ['ecs_web_3_app_aa11', 'ecs-web-3-app-aa1_', 'ecs-web-3-app-a_11', '_cs-web-3-app-aa11', 'ecs-web-3-app-aa11_', 'ecs.web.3.app.aa11', 'ECS-WEB-3-APP-AA11', 'ecs-web-3-app-aa1.'];
      for (const name of wildcardNames) {
        const res = await get(`/v2/lookup/${encodeURIComponent(name)}`);
        const expected = all.filter((r) => r.docker_name === name);
        if (expected.length === 0) {
          expect(res.statusCode, name).toBe(404);
        } else {
          expect(res.statusCode, name).toBe(200);
          expect((res.json() as { containers: ContainerRecord[] }).containers.map((c) => c.container_id)).toEqual(expected.map((r) => r.container_id).sort());
        }
      }
      const realArn = taskArn(plain.task, 'prod');
      const hit = await get(`/v2/lookup/${encodeURIComponent(realArn)}`);
      expect(hit.statusCode).toBe(200);
      for (const cluster of ['pro_', '_', 'prod_', 'p_od', 'PROD', '_rod', 'prod-']) {
        const arn = taskArn(plain.task, cluster);
        const res = await get(`/v2/lookup/${encodeURIComponent(arn)}`);
        expect(res.statusCode, arn).toBe(404);
      }
      for (const value of INJECTION_CORPUS) {
        const arn = `arn:aws:ecs:us-east-1:123456789012:task/${value}/${plain.task}`;
        const res = await get(`/v2/lookup/${safeEncode(arn)}`);
        expect([400, 404], arn).toContain(res.statusCode);
      }
    });

    it('/v2/containers/:id/history answers 400 or 404 for every hostile id', async () => {
      for (const value of INJECTION_CORPUS) {
        for (const encoded of urlVariants(value)) {
          const res = await get(`/v2/containers/${encoded}/history`);
          expect([400, 404], JSON.stringify(value)).toContain(res.statusCode);
        }
      }
    });

    it('/v2/hosts/:instance_id answers 400 or 404 for every hostile id', async () => {
      for (const value of INJECTION_CORPUS) {
        for (const encoded of urlVariants(value)) {
          const res = await get(`/v2/hosts/${encoded}`);
          expect([400, 404], JSON.stringify(value)).toContain(res.statusCode);
        }
      }
    });

    it('/v2/containers filters return exactly the records whose field equals the value', async () => {
      for (const field of ['cluster', 'task_family', 'instance_id'] as const) {
        for (const value of INJECTION_CORPUS) {
          const url = `/v2/containers?${field}=${safeEncode(value)}&limit=1000`;
          const res = await get(url);
          if (res.statusCode !== 200) {
            // Only values the schema refuses (empty, too long) may be refused.
            expect(res.statusCode, url).toBe(400);
            expect(value.length === 0 || value.length > (field === 'instance_id' ? 64 : 255), url).toBe(true);
            continue;
          }
          const items = (res.json() as { items: ContainerRecord[] }).items;
          const key = field === 'task_family' ? 'task_family' : field;
          for (const item of items) expect(item[key], url).toBe(value);
          // Stored hostile values (cluster and family) must be found again: one literal match each.
          if (field !== 'instance_id' && STORABLE.includes(value) && !/[\uD800-\uDFFF]/.test(value)) {
            expect(items.map((i) => i.container_id), url).toEqual(all.filter((r) => r[key] === value).map((r) => r.container_id));
          }
        }
      }
    });

    it('a hostile value in every filter at once, in state and in the cursor, is a 400 or an empty or literal page', async () => {
      for (const value of INJECTION_CORPUS) {
        const v = safeEncode(value);
        const state = await get(`/v2/containers?state=${v}`);
        expect(state.statusCode, value).toBe(400);
        const cursor = await get(`/v2/containers?cursor=${v}`);
        expect([400], `cursor ${JSON.stringify(value)}`).toContain(cursor.statusCode);
        const limit = await get(`/v2/containers?limit=${v}`);
        expect(limit.statusCode).toBe(400);
        const combined = await get(`/v2/containers?cluster=${v}&task_family=${v}&instance_id=${v}`);
        if (combined.statusCode === 200) expect((combined.json() as { items: unknown[] }).items).toEqual([]);
      }
    });

    it('arbitrary strings as ids and filters match only literally (property)', async () => {
      const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom(...STORABLE, ...PLAIN.map((p) => p.docker)));
      await fc.assert(
        fc.asyncProperty(text, async (value) => {
          const lookup = await get(`/v2/lookup/${safeEncode(value)}`);
          if (lookup.statusCode === 200) {
            const body = lookup.json() as { query: string; containers: ContainerRecord[] };
            for (const c of body.containers) {
              expect([c.docker_name, c.task_id, c.task_arn].includes(body.query) || c.container_id.startsWith(body.query), body.query).toBe(true);
            }
          }
          const list = await get(`/v2/containers?cluster=${safeEncode(value)}&limit=1000`);
          if (list.statusCode === 200) {
            const items = (list.json() as { items: ContainerRecord[] }).items;
            const wanted = new URLSearchParams(`cluster=${safeEncode(value)}`).get('cluster');
            for (const item of items) expect(item.cluster).toBe(wanted);
          }
        }),
        { numRuns: 100 },
      );
    });

    it('a real cursor with hostile text appended or inside it is refused as invalid_cursor', async () => {
      const first = await get('/v2/containers?limit=2');
      const cursor = (first.json() as { next_cursor: string }).next_cursor;
      expect(cursor).toEqual(expect.any(String));
      for (const value of INJECTION_CORPUS.slice(0, 40)) {
        for (const tampered of [cursor + value, value + cursor, cursor.slice(0, -2) + value]) {
          const res = await get(`/v2/containers?limit=2&cursor=${safeEncode(tampered)}`);
          if (res.statusCode === 200) {
            // A tampered cursor that still decodes may only ever continue the ordered listing.
            const items = (res.json() as { items: ContainerRecord[] }).items;
            for (const item of items) expect(all.map((r) => r.container_id)).toContain(item.container_id);
          } else {
            expect(res.statusCode, JSON.stringify(tampered)).toBe(400);
          }
        }
      }
    });
  });
}
