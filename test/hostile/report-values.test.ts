// Report values at the edge of what the schemas allow, on both backends: every string field at its
// maximum length in 4-byte characters (the worst case for SimpleDB's 1024-byte attribute values) is
// stored and read back exactly; one character more is a 400, never a 5xx. A short fuzz of mutated
// report bodies runs on the SimpleDB store too (the SQLite one is fuzzed in fuzz-routes.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { agentEntry, agentMap, buildTestApp, type TestApp } from '../../api/test-helpers.js';
import type { ContainerRecord } from '../../storage/store.js';
import { containerId, hostIdentity, instanceId, snapshot, snapshotContainer, taskArn, taskId } from '../../storage/store.fixtures.js';
import { INJECTION_CORPUS } from '../support/injection-corpus.js';
import { BACKENDS, storeFactory, type StoreFactory } from './backends.js';

/** `n` characters of 4 UTF-8 bytes each. */
const wide = (n: number) => '😀'.repeat(n);

/** v2 host and container string fields with their wire maxima (wire/index.ts). */
const HOST_MAX = { cluster: 255, container_instance_arn: 1024, instance_ip: 64, instance_type: 64, instance_az: 64, region: 64, host_name: 255, ecs_agent_version: 255 } as const;
const CONTAINER_MAX = { container_name: 255, image: 1024, task_family: 255, task_version: 32, desired_status: 32, known_status: 32 } as const;
/** A docker_name is any text up to 255 characters, or a name of Docker's own shape up to 640 (wire/ids.ts dockerNameFits). */
const DOCKER_NAME_ANY_MAX = 255;
const DOCKER_NAME_MAX = 640;
/** Legacy map entry fields with their maxima (api/schemas.ts). */
const LEGACY_MAX = { container_name: 1024, container_port: 1024, task_name: 255, task_version: 1024, instance_port: 1024, instance_ip: 1024, instance_type: 1024, instance_az: 1024, host_name: 1024, cluster_name: 255, ecs_agent_version: 1024 } as const;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

for (const backend of BACKENDS) {
  describe(`report values at the limits on ${backend}`, () => {
    let factory: StoreFactory;
    let t: TestApp;

    beforeAll(async () => {
      factory = await storeFactory(backend);
      t = await buildTestApp({}, await factory.open());
    });
    afterAll(async () => {
      await t?.close();
      await factory?.close();
    });

    it('stores a v2 snapshot with every string at its maximum in 4-byte characters and reads it back exactly', async () => {
      const id = instanceId(`max-${backend}`);
      const host = hostIdentity({ instance_id: id, ...Object.fromEntries(Object.entries(HOST_MAX).map(([k, n]) => [k, wide(n)])) });
      const dockerName = `ecs-${'f'.repeat(DOCKER_NAME_MAX - 4)}`;
      const container = snapshotContainer('running', { container_id: containerId(`max-${backend}`), ...Object.fromEntries(Object.entries(CONTAINER_MAX).map(([k, n]) => [k, wide(n)])), docker_name: dockerName });
      const res = await t.app.inject({ method: 'PUT', url: `/v2/hosts/${id}/snapshot`, payload: snapshot(host, 1, [container]) });
      expect(res.statusCode, res.body).toBe(200);
      const found = await t.app.inject({ url: `/v2/containers?cluster=${encodeURIComponent(wide(255))}` });
      const items = (found.json() as { items: ContainerRecord[] }).items;
      expect(items.map((i) => i.container_id)).toEqual([container.container_id]);
      expect(items[0]).toMatchObject({ image: wide(1024), docker_name: dockerName, task_family: wide(255), host_name: wide(255), container_instance_arn: wide(1024) });
      const byName = await t.app.inject({ url: `/v2/lookup/${dockerName}` });
      expect((byName.json() as { containers: ContainerRecord[] }).containers.map((c) => c.container_id)).toEqual([container.container_id]);
      // Any other text, as earlier reconcilers sent it, up to 255 characters (4-byte ones: 1020 bytes).
      const other = snapshotContainer('running', { container_id: containerId(`max-any-${backend}`), docker_name: wide(DOCKER_NAME_ANY_MAX) });
      const id2 = instanceId(`max-any-${backend}`);
      expect((await t.app.inject({ method: 'PUT', url: `/v2/hosts/${id2}/snapshot`, payload: snapshot(hostIdentity({ instance_id: id2 }), 1, [other]) })).statusCode).toBe(200);
      const stored = await t.store.getContainer(other.container_id);
      expect(stored.kind === 'found' && stored.record.docker_name).toBe(wide(DOCKER_NAME_ANY_MAX));
    });

    it('refuses one character over any v2 maximum with 400 JSON', async () => {
      const id = instanceId(`over-${backend}`);
      for (const [field, n] of Object.entries(HOST_MAX)) {
        const host = hostIdentity({ instance_id: id, [field]: wide(n + 1) });
        const res = await t.app.inject({ method: 'PUT', url: `/v2/hosts/${id}/snapshot`, payload: snapshot(host, 1, []) });
        expect(res.statusCode, field).toBe(400);
      }
      for (const [field, n] of Object.entries(CONTAINER_MAX)) {
        const c = snapshotContainer('running', { container_id: containerId(`over-${backend}`), [field]: wide(n + 1) });
        const res = await t.app.inject({ method: 'PUT', url: `/v2/hosts/${id}/snapshot`, payload: snapshot(hostIdentity({ instance_id: id }), 1, [c]) });
        expect(res.statusCode, field).toBe(400);
        expect(res.json()).toMatchObject({ error: 'bad_request' });
      }
      // One character over each docker_name rule: 641 in Docker's shape, 256 of anything else.
      for (const name of [`ecs-${'f'.repeat(DOCKER_NAME_MAX - 3)}`, wide(DOCKER_NAME_ANY_MAX + 1), `web/${'d'.repeat(DOCKER_NAME_ANY_MAX - 3)}`]) {
        const c = snapshotContainer('running', { container_id: containerId(`over-${backend}`), docker_name: name });
        const res = await t.app.inject({ method: 'PUT', url: `/v2/hosts/${id}/snapshot`, payload: snapshot(hostIdentity({ instance_id: id }), 1, [c]) });
        expect(res.statusCode, name.slice(0, 20)).toBe(400);
        expect(res.json()).toMatchObject({ error: 'bad_request' });
      }
      expect((await t.store.listHosts()).some((h) => h.instance_id === id)).toBe(false);
    });

    it("stores the original agent's map with every field at its maximum in 4-byte characters (and a 128-character key)", async () => {
      const id = instanceId(`legacy-max-${backend}`);
      const cid = containerId(`legacy-max-${backend}`);
      const entry = agentEntry({ container_id: cid, task_id: `${'c'.repeat(400)}/${taskId(cid)}`, instance_id: id, ...Object.fromEntries(Object.entries(LEGACY_MAX).map(([k, n]) => [k, wide(n)])) });
      const res = await t.app.inject({ method: 'POST', url: '/report/map', payload: { [wide(128)]: entry } });
      expect(res.statusCode, res.body).toBe(200);
      const rec = await t.store.getContainer(cid);
      expect(rec.kind).toBe('found');
      if (rec.kind === 'found') expect(rec.record).toMatchObject({ cluster: wide(255), task_family: wide(255), host_name: wide(1024), legacy_key: wide(128) });
    });

    it("refuses a legacy cluster or task name longer than ECS allows (255) with 400, not a store error", async () => {
      for (const field of ['cluster_name', 'task_name']) {
        const cid = containerId(`legacy-over-${backend}-${field}`);
        const entry = agentEntry({ container_id: cid, task_id: `prod/${taskId(cid)}`, instance_id: instanceId(`legacy-over-${backend}`), [field]: 'x'.repeat(256) });
        const res = await t.app.inject({ method: 'POST', url: '/report/map', payload: agentMap([entry]) });
        expect(res.statusCode, field).toBe(400);
        expect((await t.store.getContainer(cid)).kind).toBe('missing');
      }
    });

    if (backend === 'simpledb') {
      it('never answers 5xx to a v2 snapshot or legacy map whose string fields hold arbitrary text (property)', async () => {
        const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 255 }), fc.constantFrom(...INJECTION_CORPUS.filter((v) => v.length <= 255)), fc.nat({ max: 255 }).map(wide));
        let n = 0;
        await fc.assert(
          fc.asyncProperty(fc.constantFrom(...Object.keys(HOST_MAX), ...Object.keys(CONTAINER_MAX)), text, fc.constantFrom(...Object.keys(LEGACY_MAX)), async (field, value, legacyField) => {
            const i = n++;
            const id = instanceId(`prop-${i}`);
            const cid = containerId(`prop-${i}`);
            const host = hostIdentity({ instance_id: id, ...(field in HOST_MAX ? { [field]: value } : {}) });
            const c = snapshotContainer('running', { container_id: cid, task_arn: taskArn(taskId(cid)), ...(field in CONTAINER_MAX ? { [field]: value } : {}) });
            const v2 = await t.app.inject({ method: 'PUT', url: `/v2/hosts/${id}/snapshot`, payload: snapshot(host, 1, [c]) });
            expect(v2.statusCode, `${field}=${JSON.stringify(value).slice(0, 80)} ${v2.body}`).toBeLessThan(500);
            const legacyId = containerId(`prop-legacy-${i}`);
            const legacy = await t.app.inject({ method: 'POST', url: '/report/map', payload: agentMap([agentEntry({ container_id: legacyId, task_id: `prod/${taskId(legacyId)}`, instance_id: id, [legacyField]: value })]) });
            expect(legacy.statusCode, `${legacyField}=${JSON.stringify(value).slice(0, 80)} ${legacy.body}`).toBeLessThan(500);
            // Text that is not UTF-8 (a lone surrogate) or too long (in code points) is refused; anything else is stored exactly.
            const encodable = !LONE_SURROGATE.test(value);
            expect(v2.statusCode).toBe(encodable && (CONTAINER_MAX[field as keyof typeof CONTAINER_MAX] ?? HOST_MAX[field as keyof typeof HOST_MAX]) >= [...value].length ? 200 : 400);
            if (v2.statusCode === 200 && field in CONTAINER_MAX) {
              const rec = await t.store.getContainer(cid);
              expect(rec.kind === 'found' && rec.record[field as keyof ContainerRecord]).toBe(value);
            }
          }),
          { numRuns: 60 },
        );
      });
    }
  });
}
