// The Store contract, written once and run against every backend:
//   describeStoreContract('sqlite (memory)', async () => ({ store, cleanup }))
// Each `it` opens a fresh, empty store and asserts stored state through the Store's own reads.
//
// Decisions this suite pins down (both backends must behave the same):
// - Duplicates are detected per host by its watermark: a transition with seq <= the host's last
//   applied seq is a duplicate (counted, no effect). Gaps are fine. Transitions within a batch are
//   applied in seq order. Host records are still refreshed (last_report_at) by a replay.
// - Such a transition is a conflict instead (counted apart and named, still no effect) when history
//   holds another transition under its (host, seq): another container, from or to (sameTransition).
//   Purged history leaves nothing to compare with: a duplicate.
// - A record's seq guards it: a transition or snapshot entry with a lower seq than the record's
//   does not change the record (a transition still enters history once).
// - Snapshots count `upserted` only for records created or changed in anything but last_seen/seq;
//   absent live records become gone; history rows (reason `snapshot`, seq null, at = taken_at) only
//   when a record's state changed. Absent records with a later seq are left alone and counted skipped.
// - Legacy snapshots carry seq 0; recordLegacyEvent with a key no record carries is dropped silently.
// - stopped_at = event time the record became stopped; gone_at = server receive time it became gone.
// - history is ordered by `at`, oldest first. A container keeps its latest `historyLimit` rows, and
//   at most a tenth more between two checks (storage/history-bound.ts); the oldest go first.
//
// With `eventuallyConsistent`, aggregate reads (listContainers, listHosts, countByState) are retried
// for a few seconds until they match; point lookups (getContainer, findByTask, findByDockerName,
// history) must be right at once. The assertions themselves are identical.
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LIFECYCLE_STATES, type HostIdentity, type Transition } from '../wire/index.js';
import { WIRE_LIMITS } from '../wire/ids.js';
import {
  at,
  batch,
  containerId,
  hostIdentity,
  INJECTION_STRINGS,
  instanceId,
  iso,
  legacyContainer,
  legacyEvent,
  legacyKey,
  legacySnapshot,
  snapshot,
  snapshotContainer,
  taskArn,
  taskId,
  transition,
  uuidTaskId,
} from './store.fixtures.js';
import { planArb, runPlan } from './store.model.js';
import { InvalidCursorError, type ContainerFilter, type ContainerRecord, type Store } from './store.js';

export interface ContractOptions {
  /** The backend serves stale reads for non-consistent requests; aggregate reads are polled. */
  eventuallyConsistent?: boolean;
  /** Runs of each property: the replay property and the model-based one (default 25; lower it for slow backends). */
  propertyRuns?: number;
}

/** Opens a fresh, empty store; `historyLimit` as `--history-limit` (the store's default when absent). */
export type OpenStore = (options?: { historyLimit?: number }) => Promise<{ store: Store; cleanup(): Promise<void> }>;

export function describeStoreContract(name: string, open: OpenStore, opts: ContractOptions = {}): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await open());
    });
    afterEach(async () => {
      await cleanup();
    });

    /** Runs an assertion once, or until it passes (5 s) when the backend is eventually consistent. */
    async function eventually(assertion: () => Promise<void>): Promise<void> {
      if (!opts.eventuallyConsistent) return assertion();
      const deadline = Date.now() + 5000;
      for (;;) {
        try {
          return await assertion();
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }

    async function get(id: string): Promise<ContainerRecord> {
      const found = await store.getContainer(id);
      if (found.kind !== 'found') throw new Error(`expected ${id} to be found, got ${found.kind}`);
      return found.record;
    }

    async function listAll(filter: ContainerFilter = {}, limit = 1000): Promise<ContainerRecord[]> {
      const all: ContainerRecord[] = [];
      let cursor: string | undefined;
      for (let i = 0; i < 1000; i++) {
        const page = await store.listContainers(filter, { limit, ...(cursor ? { cursor } : {}) });
        all.push(...page.items);
        if (page.next_cursor === null) return all;
        cursor = page.next_cursor;
      }
      throw new Error('pagination did not end');
    }

    const hostA = hostIdentity({ instance_id: instanceId('a') });
    const hostB = hostIdentity({
      instance_id: instanceId('b'),
      cluster: 'staging',
      instance_ip: '10.0.2.9',
      host_name: 'ip-10-0-2-9.ec2.internal',
      instance_az: 'us-east-1b',
    });
    const c1 = containerId(1);
    const c2 = containerId(2);
    const c3 = containerId(3);

    // --- applyTransitions ----------------------------------------------------------------------

    describe('applyTransitions', () => {
      it('creates a record for a new container with the observation and the host fields of the batch', async () => {
        const t = transition(1, 'running', { container: { container_id: c1, restart_count: 2, started_at: '2026-01-01T00:00:30Z' } });
        const result = await store.applyTransitions(batch(hostA, [t]), at(1));
        expect(result).toEqual({ applied: 1, duplicates: 0, conflicts: 0, acked_seq: 1, conflicting: [] });
        const r = await get(c1);
        expect(r).toEqual({
          container_id: c1,
          docker_name: t.container.docker_name,
          container_name: 'app',
          image: 'nginx:1.27',
          task_arn: t.container.task_arn,
          task_id: taskId(c1),
          task_id_raw: null,
          task_family: 'web',
          task_version: '3',
          cluster: hostA.cluster,
          container_instance_arn: hostA.container_instance_arn,
          instance_id: hostA.instance_id,
          instance_ip: hostA.instance_ip,
          instance_type: hostA.instance_type,
          instance_az: hostA.instance_az,
          region: hostA.region,
          host_name: hostA.host_name,
          ports: [{ container_port: 80, host_port: 32768, protocol: 'tcp' }],
          desired_status: 'RUNNING',
          known_status: 'RUNNING',
          state: 'running',
          restart_count: 2,
          exit_code: null,
          started_at: '2026-01-01T00:00:30.000Z',
          first_seen: iso(1),
          last_seen: iso(1),
          stopped_at: null,
          gone_at: null,
          ecs_agent_version: hostA.ecs_agent_version,
          source: 'agent',
          seq: 1,
          legacy_key: null,
          sampled_at: null,
        } satisfies ContainerRecord);
      });

      it('derives task_id from old task/<uuid> and new task/<cluster>/<32hex> ARNs', async () => {
        const oldId = uuidTaskId('old');
        const newId = taskId('new');
        await store.applyTransitions(
          batch(hostA, [
            transition(1, 'running', { container: { container_id: c1, task_arn: taskArn(oldId, null) } }),
            transition(2, 'running', { container: { container_id: c2, task_arn: taskArn(newId, 'my-cluster_1') } }),
          ]),
          at(1),
        );
        expect((await get(c1)).task_id).toBe(oldId);
        expect((await get(c2)).task_id).toBe(newId);
      });

      it('acknowledges the highest seq and records it on the host', async () => {
        const result = await store.applyTransitions(
          batch(hostA, [transition(1, 'pending', { container: { container_id: c1 } }), transition(2, 'running', { from: 'pending', container: { container_id: c1 } })]),
          at(2),
        );
        expect(result).toEqual({ applied: 2, duplicates: 0, conflicts: 0, acked_seq: 2, conflicting: [] });
        expect((await get(c1)).state).toBe('running');
        await eventually(async () => {
          const hosts = await store.listHosts();
          expect(hosts.map((h) => [h.instance_id, h.last_seq, h.last_report_at, h.reporter])).toEqual([[hostA.instance_id, 2, iso(2), 'reconciler']]);
        });
      });

      it("lists a host's last seq as of the last acknowledged batch when asked for a consistent read (a daemon's new state dir numbers above it)", async () => {
        await store.applyTransitions(batch(hostA, [transition(1, 'pending', { container: { container_id: c1 } })]), at(1));
        await store.applyTransitions(batch(hostA, [transition(2, 'running', { from: 'pending', container: { container_id: c1 } })]), at(2));
        // No `eventually`: a stale read here makes a daemon number its transitions from a seq the
        // server already holds, and the server drops them as replays.
        expect((await store.listHosts({ consistent: true })).map((h) => [h.instance_id, h.last_seq])).toEqual([[hostA.instance_id, 2]]);
      });

      it('changes nothing when a batch is replayed, and counts the duplicates', async () => {
        const b = batch(hostA, [
          transition(1, 'pending', { container: { container_id: c1 } }),
          transition(2, 'running', { from: 'pending', container: { container_id: c1 } }),
          transition(3, 'running', { container: { container_id: c2 } }),
        ]);
        await store.applyTransitions(b, at(3));
        const before = { r1: await get(c1), r2: await get(c2), h1: await store.history(c1), h2: await store.history(c2) };

        const replay = await store.applyTransitions(b, at(10));
        expect(replay).toEqual({ applied: 0, duplicates: 3, conflicts: 0, acked_seq: 3, conflicting: [] });
        const after = { r1: await get(c1), r2: await get(c2), h1: await store.history(c1), h2: await store.history(c2) };
        expect(after).toEqual(before);
      });

      it('takes an empty batch as a heartbeat: the host report time moves, nothing else', async () => {
        await store.applyTransitions(batch(hostA, [transition(4, 'running', { container: { container_id: c1 } })]), at(4));
        const before = { r1: await get(c1), h1: await store.history(c1) };
        expect(await store.applyTransitions(batch(hostA, []), at(9))).toEqual({ applied: 0, duplicates: 0, conflicts: 0, acked_seq: 4, conflicting: [] });
        expect({ r1: await get(c1), h1: await store.history(c1) }).toEqual(before);
        await eventually(async () => {
          const hosts = await store.listHosts();
          expect(hosts.map((h) => [h.instance_id, h.last_report_at, h.last_seq])).toEqual([[hostA.instance_id, iso(9), 4]]);
        });
      });

      it('counts each seq applied once when the same batch arrives several times at once (a retry racing its original)', async () => {
        const b = batch(hostA, [
          transition(1, 'pending', { container: { container_id: c1 } }),
          transition(2, 'running', { from: 'pending', container: { container_id: c1 } }),
          transition(3, 'running', { container: { container_id: c2 } }),
        ]);
        const results = await Promise.all([1, 2, 3, 4].map(() => store.applyTransitions(b, at(3))));
        expect(results.reduce((sum, r) => sum + r.applied, 0)).toBe(3);
        expect(results.reduce((sum, r) => sum + r.duplicates, 0)).toBe(9);
        expect(results.map((r) => r.conflicts)).toEqual([0, 0, 0, 0]);
        expect(results.every((r) => r.acked_seq === 3)).toBe(true);
        expect((await store.history(c1)).map((h) => h.seq)).toEqual([1, 2]);
      });

      it('applies only the new part of a partly replayed batch', async () => {
        await store.applyTransitions(batch(hostA, [transition(1, 'pending', { container: { container_id: c1 } })]), at(1));
        const result = await store.applyTransitions(
          batch(hostA, [transition(1, 'pending', { container: { container_id: c1 } }), transition(2, 'running', { from: 'pending', container: { container_id: c1 } })]),
          at(2),
        );
        expect(result).toEqual({ applied: 1, duplicates: 1, conflicts: 0, acked_seq: 2, conflicting: [] });
        expect((await store.history(c1)).map((h) => h.seq)).toEqual([1, 2]);
      });

      it('never regresses state for an older seq', async () => {
        await store.applyTransitions(batch(hostA, [transition(5, 'stopped', { from: 'running', container: { container_id: c1, exit_code: 137 } })]), at(5));
        const result = await store.applyTransitions(batch(hostA, [transition(3, 'running', { container: { container_id: c1 } })]), at(6));
        expect(result).toEqual({ applied: 0, duplicates: 1, conflicts: 0, acked_seq: 5, conflicting: [] });
        const r = await get(c1);
        expect([r.state, r.seq, r.exit_code, r.last_seen]).toEqual(['stopped', 5, 137, iso(5)]);
        expect((await store.history(c1)).map((h) => h.seq)).toEqual([5]);
      });

      it('accepts gaps in seq', async () => {
        const result = await store.applyTransitions(
          batch(hostA, [
            transition(1, 'pending', { container: { container_id: c1 } }),
            transition(5, 'running', { from: 'pending', container: { container_id: c1 } }),
            transition(9, 'stopped', { from: 'running', container: { container_id: c1 } }),
          ]),
          at(9),
        );
        expect(result).toEqual({ applied: 3, duplicates: 0, conflicts: 0, acked_seq: 9, conflicting: [] });
        expect((await store.history(c1)).map((h) => [h.seq, h.from, h.to])).toEqual([
          [1, null, 'pending'],
          [5, 'pending', 'running'],
          [9, 'running', 'stopped'],
        ]);
        const next = await store.applyTransitions(batch(hostA, [transition(12, 'gone', { from: 'stopped', container: { container_id: c1 } })]), at(12));
        expect(next).toEqual({ applied: 1, duplicates: 0, conflicts: 0, acked_seq: 12, conflicting: [] });
      });

      it('applies a batch in seq order whatever order it arrives in', async () => {
        const result = await store.applyTransitions(
          batch(hostA, [
            transition(2, 'running', { from: 'pending', container: { container_id: c1 } }),
            transition(1, 'pending', { container: { container_id: c1 } }),
          ]),
          at(2),
        );
        expect(result).toEqual({ applied: 2, duplicates: 0, conflicts: 0, acked_seq: 2, conflicting: [] });
        expect((await get(c1)).state).toBe('running');
      });

      it('writes history exactly once per (host, seq), with the reported fields', async () => {
        const t1 = transition(1, 'pending', { container: { container_id: c1 } });
        const t2 = transition(2, 'running', { from: 'pending', reason: 'agent.observed', container: { container_id: c1 } });
        await store.applyTransitions(batch(hostA, [t1]), at(1));
        await store.applyTransitions(batch(hostA, [t1, t2]), at(2));
        await store.applyTransitions(batch(hostA, [t2, t1]), at(3));
        await store.applyTransitions(batch(hostA, [t2, t2]), at(4));
        expect(await store.history(c1)).toEqual([
          { container_id: c1, from: null, to: 'pending', at: iso(1), host: hostA.instance_id, seq: 1, reason: 'agent.observed' },
          { container_id: c1, from: 'pending', to: 'running', at: iso(2), host: hostA.instance_id, seq: 2, reason: 'agent.observed' },
        ]);
      });

      it('counts a seq repeated inside one batch as a duplicate', async () => {
        const t = transition(1, 'running', { container: { container_id: c1 } });
        expect(await store.applyTransitions(batch(hostA, [t, t]), at(1))).toEqual({ applied: 1, duplicates: 1, conflicts: 0, acked_seq: 1, conflicting: [] });
        expect(await store.history(c1)).toHaveLength(1);
      });

      describe('a replayed seq that history holds as another transition (a second numbering of the host)', () => {
        it('counts a retry of the same transitions as duplicates, not conflicts', async () => {
          const b = batch(hostA, [transition(1, 'pending', { container: { container_id: c1 } }), transition(2, 'running', { from: 'pending', container: { container_id: c1 } })]);
          await store.applyTransitions(b, at(2));
          expect(await store.applyTransitions(b, at(3))).toEqual({ applied: 0, duplicates: 2, conflicts: 0, acked_seq: 2, conflicting: [] });
        });

        it('counts a replay observed at another time or for another reason as a duplicate: the same change, seen twice', async () => {
          await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c1 } })]), at(1));
          const again = transition(1, 'running', { at: iso(7), reason: 'docker.start', container: { container_id: c1 } });
          expect(await store.applyTransitions(batch(hostA, [again]), at(8))).toEqual({ applied: 0, duplicates: 1, conflicts: 0, acked_seq: 1, conflicting: [] });
          expect((await store.history(c1)).map((h) => [h.seq, h.at, h.reason])).toEqual([[1, iso(1), 'agent.observed']]);
        });

        it('counts a seq held for another container as a conflict, naming both, and keeps what it holds', async () => {
          await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c1 } })]), at(1));
          const result = await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c2 } })]), at(2));
          expect(result).toEqual({
            applied: 0,
            duplicates: 0,
            conflicts: 1,
            acked_seq: 1,
            conflicting: [{ seq: 1, stored: { container_id: c1, from: null, to: 'running' }, reported: { container_id: c2, from: null, to: 'running' } }],
          });
          expect(await store.getContainer(c2)).toEqual({ kind: 'missing' });
          expect(await store.history(c2)).toEqual([]);
          expect((await store.history(c1)).map((h) => [h.seq, h.to])).toEqual([[1, 'running']]);
        });

        it('counts a seq held for the same container in other states as a conflict', async () => {
          await store.applyTransitions(batch(hostA, [transition(1, 'pending', { container: { container_id: c1 } }), transition(2, 'running', { from: 'pending', container: { container_id: c1 } })]), at(2));
          const result = await store.applyTransitions(batch(hostA, [transition(2, 'stopped', { from: 'running', container: { container_id: c1 } })]), at(3));
          expect([result.duplicates, result.conflicts, result.conflicting]).toEqual([0, 1, [{ seq: 2, stored: { container_id: c1, from: 'pending', to: 'running' }, reported: { container_id: c1, from: 'running', to: 'stopped' } }]]);
          expect((await get(c1)).state).toBe('running');
        });

        it('applies the new seqs of a batch whose older ones conflict, and counts each kind', async () => {
          await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c1 } }), transition(2, 'running', { container: { container_id: c2 } })]), at(2));
          const result = await store.applyTransitions(
            batch(hostA, [
              transition(1, 'running', { container: { container_id: c1 } }),
              transition(2, 'running', { container: { container_id: c3 } }),
              transition(3, 'stopped', { from: 'running', container: { container_id: c3 } }),
            ]),
            at(3),
          );
          expect([result.applied, result.duplicates, result.conflicts, result.acked_seq, result.conflicting.map((c) => c.seq)]).toEqual([1, 1, 1, 3, [2]]);
          expect((await store.history(c3)).map((h) => [h.seq, h.to])).toEqual([[3, 'stopped']]);
        });

        it('counts a seq whose history retention purged as a duplicate: nothing is left to compare with', async () => {
          await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c1 } }), transition(2, 'gone', { from: 'running', container: { container_id: c1 } })]), at(1));
          expect(await store.purgeGone(at(10))).toBe(1);
          expect(await store.history(c1)).toEqual([]);
          const result = await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c2 } })]), at(11));
          expect(result).toEqual({ applied: 0, duplicates: 1, conflicts: 0, acked_seq: 2, conflicting: [] });
        });
      });

      it('keeps sequence numbers per host', async () => {
        await store.applyTransitions(batch(hostA, [transition(7, 'running', { container: { container_id: c1 } })]), at(1));
        const result = await store.applyTransitions(batch(hostB, [transition(1, 'running', { container: { container_id: c2 } })]), at(2));
        expect(result).toEqual({ applied: 1, duplicates: 0, conflicts: 0, acked_seq: 1, conflicting: [] });
        expect((await get(c2)).instance_id).toBe(hostB.instance_id);
        expect((await get(c2)).cluster).toBe('staging');
      });

      it("keeps each host's history apart when two hosts use the same sequence numbers", async () => {
        await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c1 } }), transition(2, 'stopped', { from: 'running', container: { container_id: c1 } })]), at(1));
        await store.applyTransitions(batch(hostB, [transition(1, 'pending', { container: { container_id: c2 } }), transition(2, 'running', { from: 'pending', container: { container_id: c2 } })]), at(2));
        expect((await store.history(c1)).map((h) => [h.host, h.seq, h.to])).toEqual([
          [hostA.instance_id, 1, 'running'],
          [hostA.instance_id, 2, 'stopped'],
        ]);
        expect((await store.history(c2)).map((h) => [h.host, h.seq, h.to])).toEqual([
          [hostB.instance_id, 1, 'pending'],
          [hostB.instance_id, 2, 'running'],
        ]);
      });

      it('keeps first_seen, moves last_seen, and sets stopped_at, exit_code and gone_at as the state moves', async () => {
        await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c1 } })]), at(1));
        await store.applyTransitions(
          batch(hostA, [transition(2, 'stopped', { from: 'running', at: '2026-01-01T00:01:30Z', container: { container_id: c1, exit_code: 1, known_status: 'STOPPED' } })]),
          at(3),
        );
        let r = await get(c1);
        expect([r.state, r.first_seen, r.last_seen, r.stopped_at, r.exit_code, r.known_status, r.gone_at]).toEqual([
          'stopped',
          iso(1),
          iso(3),
          '2026-01-01T00:01:30.000Z',
          1,
          'STOPPED',
          null,
        ]);
        await store.applyTransitions(batch(hostA, [transition(4, 'gone', { from: 'stopped', reason: 'container.vanished', container: { container_id: c1 } })]), at(5));
        r = await get(c1);
        expect([r.state, r.stopped_at, r.exit_code, r.gone_at, r.last_seen]).toEqual(['gone', '2026-01-01T00:01:30.000Z', 1, iso(5), iso(5)]);
      });

      it('records a transition older than a later snapshot in history without regressing the record', async () => {
        await store.replaceSnapshot(snapshot(hostA, 10, [snapshotContainer('stopped', { container_id: c1 })]), at(10));
        const result = await store.applyTransitions(batch(hostA, [transition(7, 'running', { container: { container_id: c1 } })]), at(11));
        expect(result).toEqual({ applied: 1, duplicates: 0, conflicts: 0, acked_seq: 7, conflicting: [] });
        expect((await get(c1)).state).toBe('stopped');
        expect((await store.history(c1)).map((h) => [h.reason, h.seq, h.to])).toEqual([
          ['agent.observed', 7, 'running'],
          ['snapshot', null, 'stopped'],
        ]);
      });

      it('applies the later transitions of a container that a late, older transition created after a newer snapshot', async () => {
        // Two replicas: the snapshot at seq 10 (without c2) commits first; the batch sent before it
        // (seq 7: c2 starts) commits after. The snapshot never confirmed c2, so seq 8 still applies.
        await store.replaceSnapshot(snapshot(hostA, 10, [snapshotContainer('running', { container_id: c1 })]), at(2));
        await store.applyTransitions(batch(hostA, [transition(7, 'running', { container: { container_id: c2 } })]), at(3));
        let r = await get(c2);
        expect([r.state, r.seq, r.last_seen]).toEqual(['running', 7, iso(3)]);
        const result = await store.applyTransitions(batch(hostA, [transition(8, 'stopped', { from: 'running', container: { container_id: c2, exit_code: 0 } })]), at(4));
        expect(result).toEqual({ applied: 1, duplicates: 0, conflicts: 0, acked_seq: 8, conflicting: [] });
        r = await get(c2);
        expect([r.state, r.seq, r.exit_code]).toEqual(['stopped', 8, 0]);
      });

      it('takes a late transition\'s container as confirmed once the snapshot before it is sent again', async () => {
        await store.replaceSnapshot(snapshot(hostA, 10, [snapshotContainer('running', { container_id: c1 })]), at(2));
        await store.applyTransitions(batch(hostA, [transition(7, 'running', { container: { container_id: c2 } })]), at(3));
        await store.replaceSnapshot(snapshot(hostA, 10, [snapshotContainer('running', { container_id: c1 }), snapshotContainer('running', { container_id: c2 })]), at(4));
        let r = await get(c2);
        expect([r.state, r.seq, r.last_seen]).toEqual(['running', 10, iso(4)]);
        // Seq 8 is older than the snapshot that saw c2 running: history only.
        await store.applyTransitions(batch(hostA, [transition(8, 'stopped', { from: 'running', container: { container_id: c2 } })]), at(5));
        r = await get(c2);
        expect([r.state, r.seq]).toEqual(['running', 10]);
      });
    });

    describe('applyTransitions under retries (property)', () => {
      // The reconciler sends its outbox in seq order and may resend any already-sent part (retries,
      // restarts), in any order within a batch. Whatever the deliveries, the stored state must equal
      // applying every transition exactly once in seq order. Each run uses its own host and containers.
      let run = 0;
      const plan = fc.record({
        steps: fc.array(fc.record({ gap: fc.integer({ min: 1, max: 3 }), container: fc.integer({ min: 0, max: 2 }), to: fc.constantFrom(...LIFECYCLE_STATES) }), {
          minLength: 1,
          maxLength: 12,
        }),
        deliveries: fc.array(fc.record({ back: fc.nat({ max: 12 }), ahead: fc.integer({ min: 1, max: 5 }), shuffle: fc.nat() }), { minLength: 1, maxLength: 8 }),
      });

      it('ends in the state of applying each transition once, in seq order', async () => {
        await fc.assert(
          fc.asyncProperty(plan, async ({ steps, deliveries }) => {
            run++;
            const host = hostIdentity({ instance_id: instanceId(`prop-${run}`) });
            const ids = [0, 1, 2].map((k) => containerId(`prop-${run}-${k}`));
            let seq = 0;
            const all: Transition[] = steps.map((s) => {
              seq += s.gap;
              return transition(seq, s.to, { container: { container_id: ids[s.container] } });
            });
            let delivered = 0;
            let applied = 0;
            const send = async (slice: Transition[]) => {
              const result = await store.applyTransitions(batch(host, slice), at(1));
              applied += result.applied;
              expect(result.applied + result.duplicates).toBe(slice.length);
              return result;
            };
            for (const d of deliveries) {
              const start = Math.max(0, delivered - d.back);
              const end = Math.min(all.length, delivered + d.ahead);
              const slice = all.slice(start, end);
              const rotated = slice.map((_, i) => slice[(i + d.shuffle) % slice.length]);
              await send(rotated);
              delivered = end;
            }
            if (delivered < all.length) await send(all.slice(delivered));
            expect(applied).toBe(all.length);
            for (const id of ids) {
              const mine = all.filter((t) => t.container.container_id === id);
              const found = await store.getContainer(id);
              if (mine.length === 0) {
                expect(found).toEqual({ kind: 'missing' });
                continue;
              }
              const last = mine[mine.length - 1];
              expect(found.kind === 'found' && [found.record.state, found.record.seq]).toEqual([last.to, last.seq]);
              expect((await store.history(id)).map((h) => [h.seq, h.to])).toEqual(mine.map((t) => [t.seq, t.to]));
            }
          }),
          { numRuns: opts.propertyRuns ?? 25 },
        );
      });
    });

    describe('a fleet of reconcilers, an original agent, retention and retirement (model-based property)', () => {
      // storage/store.model.ts: generated reports as a reconciler's reporter and an original agent
      // send them, on a controlled clock, against a fresh store and a reference model of the rules;
      // the store's answers must match the model's after every step.
      it('answers as the documented rules say after every step', async () => {
        await fc.assert(
          fc.asyncProperty(planArb, async (plan) => {
            const fresh = await open();
            try {
              await runPlan(fresh.store, plan, { eventually, thorough: fresh.store.backend === 'sqlite' });
            } finally {
              await fresh.cleanup();
            }
          }),
          { numRuns: opts.propertyRuns ?? 25 },
        );
      });
    });

    // --- replaceSnapshot -----------------------------------------------------------------------

    describe('replaceSnapshot', () => {
      it("keeps the host's identity and report times as its record, field for field", async () => {
        await store.replaceSnapshot(snapshot(hostA, 3, [snapshotContainer('running', { container_id: c1 })]), at(1));
        await store.applyTransitions(batch(hostA, [transition(4, 'stopping', { from: 'running', container: { container_id: c1 } })]), at(2));
        await eventually(async () => {
          expect(await store.listHosts()).toEqual([
            { ...hostA, first_seen: iso(1), last_report_at: iso(2), last_snapshot_at: iso(1), last_seq: 4, reporter: 'reconciler' },
          ]);
        });
      });

      it('creates records and writes a snapshot history row for each', async () => {
        const result = await store.replaceSnapshot(
          snapshot(hostA, 0, [snapshotContainer('running', { container_id: c1 }), snapshotContainer('pending', { container_id: c2 })]),
          at(1),
        );
        expect(result).toEqual({ upserted: 2, gone: 0, skipped: 0 });
        const r1 = await get(c1);
        expect([r1.state, r1.seq, r1.first_seen, r1.last_seen, r1.instance_id, r1.cluster, r1.instance_ip]).toEqual([
          'running',
          0,
          iso(1),
          iso(1),
          hostA.instance_id,
          hostA.cluster,
          hostA.instance_ip,
        ]);
        expect(await store.history(c2)).toEqual([{ container_id: c2, from: null, to: 'pending', at: iso(0), host: hostA.instance_id, seq: null, reason: 'snapshot' }]);
        await eventually(async () => {
          const [h] = await store.listHosts();
          expect([h.instance_id, h.last_snapshot_at, h.last_report_at, h.last_seq]).toEqual([hostA.instance_id, iso(1), iso(1), 0]);
        });
      });

      it('updates changed records and leaves unchanged ones out of upserted and history', async () => {
        await store.replaceSnapshot(snapshot(hostA, 1, [snapshotContainer('running', { container_id: c1 }), snapshotContainer('running', { container_id: c2 })]), at(1));
        const result = await store.replaceSnapshot(
          snapshot(hostA, 2, [snapshotContainer('stopped', { container_id: c1, exit_code: 0 }), snapshotContainer('running', { container_id: c2 })]),
          at(2),
        );
        expect(result).toEqual({ upserted: 1, gone: 0, skipped: 0 });
        const r1 = await get(c1);
        expect([r1.state, r1.exit_code, r1.stopped_at, r1.seq]).toEqual(['stopped', 0, iso(2), 2]);
        const r2 = await get(c2);
        expect([r2.state, r2.first_seen, r2.last_seen]).toEqual(['running', iso(1), iso(2)]);
        expect((await store.history(c1)).map((h) => [h.from, h.to, h.reason, h.seq])).toEqual([
          [null, 'running', 'snapshot', null],
          ['running', 'stopped', 'snapshot', null],
        ]);
        expect(await store.history(c2)).toHaveLength(1);
      });

      it('changes nothing but last_seen when the same snapshot is sent again', async () => {
        const s = snapshot(hostA, 3, [snapshotContainer('running', { container_id: c1 })]);
        await store.replaceSnapshot(s, at(3));
        const before = { r: await get(c1), h: await store.history(c1) };
        expect(await store.replaceSnapshot(s, at(4))).toEqual({ upserted: 0, gone: 0, skipped: 0 });
        expect({ r: await get(c1), h: await store.history(c1) }).toEqual({ r: { ...before.r, last_seen: iso(4) }, h: before.h });
      });

      it('marks records of the host that are absent as gone, once', async () => {
        await store.replaceSnapshot(snapshot(hostA, 1, [snapshotContainer('running', { container_id: c1 }), snapshotContainer('running', { container_id: c2 })]), at(1));
        const result = await store.replaceSnapshot(snapshot(hostA, 2, [snapshotContainer('running', { container_id: c1 })]), at(2));
        expect(result).toEqual({ upserted: 0, gone: 1, skipped: 0 });
        const r2 = await get(c2);
        expect([r2.state, r2.gone_at, r2.last_seen]).toEqual(['gone', iso(2), iso(1)]);
        expect((await store.history(c2)).map((h) => [h.from, h.to, h.at, h.reason, h.seq])).toEqual([
          [null, 'running', iso(1), 'snapshot', null],
          ['running', 'gone', iso(2), 'snapshot', null],
        ]);
        expect(await store.replaceSnapshot(snapshot(hostA, 3, [snapshotContainer('running', { container_id: c1 })]), at(3))).toEqual({ upserted: 0, gone: 0, skipped: 0 });
        expect((await get(c2)).gone_at).toBe(iso(2));
        expect(await store.history(c2)).toHaveLength(2);
      });

      it('brings a gone container back when a snapshot shows it again', async () => {
        await store.replaceSnapshot(snapshot(hostA, 1, [snapshotContainer('running', { container_id: c1 })]), at(1));
        await store.replaceSnapshot(snapshot(hostA, 2, []), at(2));
        expect((await get(c1)).state).toBe('gone');
        expect(await store.replaceSnapshot(snapshot(hostA, 3, [snapshotContainer('running', { container_id: c1 })]), at(3))).toEqual({ upserted: 1, gone: 0, skipped: 0 });
        const r = await get(c1);
        expect([r.state, r.gone_at, r.first_seen]).toEqual(['running', null, iso(1)]);
      });

      it('leaves records with a later seq than the snapshot untouched, present or absent', async () => {
        await store.applyTransitions(
          batch(hostA, [transition(5, 'stopped', { container: { container_id: c1 } }), transition(6, 'running', { container: { container_id: c2 } })]),
          at(6),
        );
        const before = { r1: await get(c1), r2: await get(c2), h1: await store.history(c1), h2: await store.history(c2) };
        const result = await store.replaceSnapshot(snapshot(hostA, 4, [snapshotContainer('running', { container_id: c1 })]), at(7));
        expect(result).toEqual({ upserted: 0, gone: 0, skipped: 2 });
        expect({ r1: await get(c1), r2: await get(c2), h1: await store.history(c1), h2: await store.history(c2) }).toEqual(before);
      });

      it('applies to records whose seq is at or below the snapshot seq', async () => {
        await store.applyTransitions(batch(hostA, [transition(5, 'running', { container: { container_id: c1 } })]), at(5));
        const result = await store.replaceSnapshot(snapshot(hostA, 5, [snapshotContainer('stopped', { container_id: c1 })]), at(6));
        expect(result).toEqual({ upserted: 1, gone: 0, skipped: 0 });
        expect((await get(c1)).state).toBe('stopped');
      });

      it("leaves other hosts' records untouched", async () => {
        await store.replaceSnapshot(snapshot(hostB, 1, [snapshotContainer('running', { container_id: c3 })]), at(1));
        const before = { r: await get(c3), h: await store.history(c3) };
        const result = await store.replaceSnapshot(snapshot(hostA, 1, [snapshotContainer('running', { container_id: c1 })]), at(2));
        expect(result).toEqual({ upserted: 1, gone: 0, skipped: 0 });
        await store.replaceSnapshot(snapshot(hostA, 2, []), at(3));
        expect({ r: await get(c3), h: await store.history(c3) }).toEqual(before);
        expect((await get(c1)).state).toBe('gone');
      });
    });

    // --- legacy reports ------------------------------------------------------------------------

    describe('legacy reports', () => {
      it('stores the bare task id of a raw <cluster>/<id>, keeps the raw value and the report key', async () => {
        const id = taskId('legacy-task');
        const lc = legacyContainer('running', { container_id: c1, task_id_raw: `prod/${id}` });
        const result = await store.replaceLegacySnapshot(legacySnapshot(hostA, [lc], iso(1)));
        expect(result).toEqual({ upserted: 1, gone: 0, skipped: 0 });
        const r = await get(c1);
        expect([r.task_id, r.task_id_raw, r.task_arn, r.legacy_key, r.source, r.seq, r.state, r.first_seen]).toEqual([
          id,
          `prod/${id}`,
          null,
          lc.legacy_key,
          'legacy',
          0,
          'running',
          iso(1),
        ]);
        await eventually(async () => {
          expect((await store.listHosts()).map((h) => [h.instance_id, h.reporter, h.last_seq])).toEqual([[hostA.instance_id, 'legacy', 0]]);
        });
      });

      it("keeps the agent's own sample time of the last map as sampled_at, apart from last_seen", async () => {
        // The agent sampled at minute 1.5 (with sub-second precision), the server received at minute 2.
        const sampled = new Date(at(1.5).getTime() + 250).toISOString();
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('running', { container_id: c1, sampled_at: sampled })], iso(2)));
        let r = await get(c1);
        expect([r.sampled_at, r.last_seen]).toEqual([sampled, iso(2)]);
        // An unchanged container in the next map: not an update, but both times move.
        const next = await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('running', { container_id: c1, sampled_at: iso(2.5) })], iso(3)));
        expect(next).toEqual({ upserted: 0, gone: 0, skipped: 0 });
        r = await get(c1);
        expect([r.sampled_at, r.last_seen]).toEqual([iso(2.5), iso(3)]);
        // Marked gone by a later map: the last sample time stays.
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('running', { container_id: c2, sampled_at: iso(3.5) })], iso(4)));
        r = await get(c1);
        expect([r.state, r.sampled_at]).toEqual(['gone', iso(2.5)]);
        // A reconciler taking over the container clears it: its reports carry no agent sample time.
        await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c2 } })]), at(5));
        expect((await get(c2)).sampled_at).toBeNull();
      });

      it('marks containers absent from the next map as gone', async () => {
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('running', { container_id: c1 }), legacyContainer('running', { container_id: c2 })], iso(1)));
        const result = await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('running', { container_id: c1 })], iso(2)));
        expect(result).toEqual({ upserted: 0, gone: 1, skipped: 0 });
        const r2 = await get(c2);
        expect([r2.state, r2.gone_at]).toEqual(['gone', iso(2)]);
      });

      it('does not overwrite records a reconciler reported with a sequence number', async () => {
        await store.applyTransitions(batch(hostA, [transition(3, 'running', { container: { container_id: c1 } })]), at(3));
        const result = await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('stopped', { container_id: c1 })], iso(4)));
        expect(result).toEqual({ upserted: 0, gone: 0, skipped: 1 });
        expect((await get(c1)).state).toBe('running');
      });

      it('keeps following the maps of an original agent that took over a host a reconciler reported from', async () => {
        await store.replaceSnapshot(snapshot(hostA, 100, [snapshotContainer('running', { container_id: c1 })]), at(1));
        await store.replaceSnapshot(snapshot(hostA, 101, []), at(2));
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('running', { container_id: c2 })], iso(3)));
        let r = await get(c2);
        expect([r.state, r.seq, r.last_seen]).toEqual(['running', 0, iso(3)]);
        const next = await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('stopped', { container_id: c2 }), legacyContainer('running', { container_id: c3 })], iso(4)));
        expect(next).toEqual({ upserted: 2, gone: 0, skipped: 0 });
        expect((await get(c2)).state).toBe('stopped');
        expect(await store.replaceLegacySnapshot(legacySnapshot(hostA, [], iso(5)))).toEqual({ upserted: 0, gone: 2, skipped: 0 });
        r = await get(c3);
        expect([r.state, r.seq, r.gone_at]).toEqual(['gone', 0, iso(5)]);
      });

      it('records an event as history of the container its key resolves to', async () => {
        const lc = legacyContainer('running', { container_id: c1 });
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [lc], iso(1)));
        await store.recordLegacyEvent(legacyEvent(lc.legacy_key, 'added', iso(2)), hostA.instance_id);
        await store.recordLegacyEvent(legacyEvent(lc.legacy_key, 'added', iso(3)), null);
        expect((await store.history(c1)).slice(1)).toEqual([
          { container_id: c1, from: null, to: null, at: iso(2), host: hostA.instance_id, seq: null, reason: 'legacy.added' },
          { container_id: c1, from: null, to: null, at: iso(3), host: hostA.instance_id, seq: null, reason: 'legacy.added' },
        ]);
      });

      it("marks a container gone on a `removed` event for its current key, as for the host's last container, whose map is {}", async () => {
        const lc = legacyContainer('stopping', { container_id: c1, desired_status: 'STOPPED', task_id_raw: `prod/${taskId(c1)}` });
        const key = legacyKey(c1, `prod/${taskId(c1)}`, 'STOPPED');
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [{ ...lc, legacy_key: key }], iso(1)));
        const before = Date.now();
        await store.recordLegacyEvent(legacyEvent(key, 'removed', iso(3)), null);
        const r = await get(c1);
        expect(r.state).toBe('gone');
        // Retention runs on the server's clock: gone_at is when the server took the event.
        expect(Date.parse(r.gone_at!)).toBeGreaterThanOrEqual(before - 1000);
        expect(Date.parse(r.gone_at!)).toBeLessThanOrEqual(Date.now() + 1000);
        expect((await store.history(c1)).at(-1)).toEqual({ container_id: c1, from: 'stopping', to: 'gone', at: iso(3), host: hostA.instance_id, seq: null, reason: 'legacy.removed' });
        // Said again (the agent retried the post): nothing more changes.
        await store.recordLegacyEvent(legacyEvent(key, 'removed', iso(3)), null);
        expect((await store.history(c1)).filter((h) => h.to === 'gone')).toHaveLength(1);
      });

      it('keeps a container whose key changed: the `added` event of its new key came before the `removed` of its old one', async () => {
        const raw = `prod/${taskId(c1)}`;
        const running = legacyKey(c1, raw, 'RUNNING');
        const stopping = legacyKey(c1, raw, 'STOPPED');
        const lc = legacyContainer('running', { container_id: c1, desired_status: 'RUNNING', task_id_raw: raw });
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [{ ...lc, legacy_key: running }], iso(1)));
        await store.recordLegacyEvent(legacyEvent(stopping, 'added', iso(2)), null);
        await store.recordLegacyEvent(legacyEvent(running, 'removed', iso(2.5)), null);
        expect((await get(c1)).state).toBe('running');
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [{ ...lc, state: 'stopping', desired_status: 'STOPPED', legacy_key: stopping, sampled_at: iso(3) }], iso(3)));
        expect((await get(c1)).state).toBe('stopping');
        expect((await store.history(c1)).map((h) => [h.reason, h.from, h.to])).toEqual([
          ['snapshot', null, 'running'],
          ['legacy.added', null, null],
          ['legacy.removed', null, null],
          ['snapshot', 'running', 'stopping'],
        ]);
      });

      it('keeps an event whose key no record has yet (the agent posts it before its map) until a map brings the key, once', async () => {
        const lc = legacyContainer('running', { container_id: c1, sampled_at: iso(2) });
        await store.recordLegacyEvent(legacyEvent(lc.legacy_key, 'added', iso(1)), null);
        expect(await store.history(c1)).toEqual([]);
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [lc], iso(2)));
        const expected = [
          { container_id: c1, from: null, to: null, at: iso(1), host: hostA.instance_id, seq: null, reason: 'legacy.added' },
          { container_id: c1, from: null, to: 'running', at: iso(2), host: hostA.instance_id, seq: null, reason: 'snapshot' },
        ];
        expect(await store.history(c1)).toEqual(expected);
        // The next map with the same key finds nothing pending: the event is not written twice.
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [{ ...lc, sampled_at: iso(3) }], iso(3)));
        expect(await store.history(c1)).toEqual(expected);
      });

      it("does not let one agent's clock, hours ahead, expire the events other hosts' maps have yet to bring", async () => {
        // Real times: expiry is an hour of the server's clock, not of the fixtures' year.
        const now = Date.now();
        const when = (ms: number) => new Date(now + ms).toISOString();
        const lc = legacyContainer('running', { container_id: c1, sampled_at: when(60_000) });
        await store.recordLegacyEvent(legacyEvent(lc.legacy_key, 'added', when(0)), hostA.instance_id);
        await store.recordLegacyEvent(legacyEvent('e'.repeat(64), 'added', when(3 * 3_600_000)), hostB.instance_id);
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [lc], when(60_000)));
        expect((await store.history(c1)).map((h) => [h.at, h.reason])).toEqual([
          [when(0), 'legacy.added'],
          [when(60_000), 'snapshot'],
        ]);
      });

      it('keeps a pending event out of every history until its key arrives', async () => {
        const lc = legacyContainer('running', { container_id: c1 });
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [lc], iso(1)));
        await expect(store.recordLegacyEvent(legacyEvent('f'.repeat(64), 'added'), hostA.instance_id)).resolves.toBeUndefined();
        expect(await store.history(c1)).toHaveLength(1);
        expect(await store.history('f'.repeat(64))).toEqual([]);
      });
    });

    // --- lookups -------------------------------------------------------------------------------

    describe('getContainer', () => {
      const shared = 'abcdef012345';
      const p1 = `${shared}0${'1'.repeat(51)}`;
      const p2 = `${shared}f${'2'.repeat(51)}`;

      beforeEach(async () => {
        await store.applyTransitions(
          batch(hostA, [
            transition(1, 'running', { container: { container_id: c1 } }),
            transition(2, 'running', { container: { container_id: p1 } }),
            transition(3, 'gone', { container: { container_id: p2 } }),
          ]),
          at(1),
        );
      });

      it('finds a record by its full id', async () => {
        expect((await get(c1)).container_id).toBe(c1);
      });

      it('finds a record by a unique prefix of 12 or more characters', async () => {
        expect((await get(c1.slice(0, 12))).container_id).toBe(c1);
        expect((await get(c1.slice(0, 40))).container_id).toBe(c1);
        expect((await get(c1.slice(0, 63))).container_id).toBe(c1);
        expect((await get(`${shared}0`)).container_id).toBe(p1);
      });

      it('answers ambiguous with every candidate for a shared prefix, whatever their states', async () => {
        expect(await store.getContainer(shared)).toEqual({ kind: 'ambiguous', candidates: [p1, p2], more: false });
      });

      it('lists the first 20 candidates of a prefix more containers share, and says there are more', async () => {
        const many = Array.from({ length: 25 }, (_, i) => `${shared}1${i.toString(16).padStart(2, '0')}${'3'.repeat(49)}`);
        await store.applyTransitions(batch(hostA, many.map((id, i) => transition(10 + i, 'running', { container: { container_id: id } }))), at(2));
        expect(await store.getContainer(shared)).toEqual({ kind: 'ambiguous', candidates: [p1, ...many.slice(0, 19)], more: true });
      });

      it('answers missing for an unknown id or prefix', async () => {
        expect(await store.getContainer('0'.repeat(64))).toEqual({ kind: 'missing' });
        expect(await store.getContainer('0123456789ab')).toEqual({ kind: 'missing' });
      });

      it('answers missing for a prefix shorter than 12 characters, though records start with it', async () => {
        expect(await store.getContainer(c1.slice(0, 11))).toEqual({ kind: 'missing' });
        expect(await store.getContainer(shared.slice(0, 11))).toEqual({ kind: 'missing' });
      });
    });

    describe('findByTask', () => {
      const newId = taskId('t-new');
      const oldId = uuidTaskId('t-old');

      beforeEach(async () => {
        await store.applyTransitions(
          batch(hostA, [
            transition(1, 'running', { container: { container_id: c2, task_arn: taskArn(newId) } }),
            transition(2, 'running', { container: { container_id: c1, task_arn: taskArn(newId) } }),
            transition(3, 'running', { container: { container_id: c3, task_arn: taskArn(oldId, null) } }),
          ]),
          at(1),
        );
      });

      it('finds a task by its bare id, containers ordered by container_id', async () => {
        expect((await store.findByTask(newId)).map((r) => r.container_id)).toEqual([c1, c2].sort());
        expect((await store.findByTask(oldId)).map((r) => r.container_id)).toEqual([c3]);
      });

      it('finds a task by its ARN, old and new format', async () => {
        expect((await store.findByTask(taskArn(newId))).map((r) => r.container_id)).toEqual([c1, c2].sort());
        expect((await store.findByTask(taskArn(oldId, null))).map((r) => r.container_id)).toEqual([c3]);
      });

      it('finds legacy records whose raw task id was <cluster>/<id> by bare id and by ARN', async () => {
        const legacyId = taskId('t-legacy');
        const c4 = containerId(4);
        await store.replaceLegacySnapshot(legacySnapshot(hostB, [legacyContainer('running', { container_id: c4, task_id_raw: `staging/${legacyId}` })]));
        expect((await store.findByTask(legacyId)).map((r) => r.container_id)).toEqual([c4]);
        expect((await store.findByTask(taskArn(legacyId, 'staging'))).map((r) => r.container_id)).toEqual([c4]);
      });

      it('keeps the ARN’s task id for a container known by its ARN when a legacy report names another task', async () => {
        const legacyId = taskId('t-other');
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('running', { container_id: c1, task_id_raw: `prod/${legacyId}` })]));
        expect((await store.findByTask(taskArn(newId))).map((r) => r.container_id)).toEqual([c1, c2].sort());
        expect(((await store.getContainer(c1)) as { record: { task_id: string } }).record.task_id).toBe(newId);
        expect(await store.findByTask(legacyId)).toEqual([]);
      });

      it('finds nothing for an unknown task', async () => {
        expect(await store.findByTask(taskId('nope'))).toEqual([]);
        expect(await store.findByTask(taskArn(taskId('nope')))).toEqual([]);
      });
    });

    describe('findByDockerName', () => {
      it('finds the containers with that docker name, ordered by container_id', async () => {
        const name = 'ecs-web-3-app-e8bfddf9b488dff36c00';
        await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c2, docker_name: name } })]), at(1));
        await store.applyTransitions(batch(hostB, [transition(1, 'running', { container: { container_id: c1, docker_name: name } })]), at(1));
        await store.applyTransitions(batch(hostA, [transition(2, 'running', { container: { container_id: c3 } })]), at(1));
        expect((await store.findByDockerName(name)).map((r) => r.container_id)).toEqual([c1, c2].sort());
        expect(await store.findByDockerName('ecs-web-3-app-000000000000')).toEqual([]);
      });

      it("keeps and finds the agent's longest names (255-character family and container name)", async () => {
        const name = `ecs-${'f'.repeat(255)}-2147483647-${'n'.repeat(255)}-e8bfddf9b488dff36c00`;
        expect(name.length).toBeLessThanOrEqual(WIRE_LIMITS.observation.docker_name);
        await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c1, docker_name: name } })]), at(1));
        expect((await store.findByDockerName(name)).map((r) => [r.container_id, r.docker_name])).toEqual([[c1, name]]);
      });
    });

    // --- listing -------------------------------------------------------------------------------

    describe('listContainers', () => {
      // 25 containers: hosts A (cluster prod) and B (cluster staging), families web/worker, mixed states.
      const ids = Array.from({ length: 25 }, (_, i) => containerId(`list-${i}`));
      const expected = ids.map((id, i) => ({
        id,
        host: i % 3 === 0 ? hostB : hostA,
        family: i % 2 === 0 ? 'web' : 'worker',
        state: (['running', 'stopped', 'pending'] as const)[i % 3 === 1 ? 1 : i % 5 === 0 ? 2 : 0],
      }));

      beforeEach(async () => {
        for (const host of [hostA, hostB] as HostIdentity[]) {
          const mine = expected.filter((e) => e.host === host);
          await store.applyTransitions(
            batch(host, mine.map((e, i) => transition(i + 1, e.state, { container: { container_id: e.id, task_family: e.family } }))),
            at(1),
          );
        }
      });

      const idsWhere = (pred: (e: (typeof expected)[number]) => boolean) => expected.filter(pred).map((e) => e.id).sort();

      it('visits every record exactly once across pages, in container_id order', async () => {
        await eventually(async () => {
          const seen: string[] = [];
          let cursor: string | undefined;
          let pages = 0;
          do {
            const page = await store.listContainers({}, { limit: 7, ...(cursor ? { cursor } : {}) });
            expect(page.items.length).toBeLessThanOrEqual(7);
            seen.push(...page.items.map((r) => r.container_id));
            cursor = page.next_cursor ?? undefined;
            pages++;
          } while (cursor !== undefined && pages < 10);
          expect(pages).toBe(4);
          expect(seen).toEqual([...ids].sort());
        });
      });

      it('ends with next_cursor null when the last page is exactly full', async () => {
        await eventually(async () => {
          const first = await store.listContainers({}, { limit: 20 });
          expect(first.next_cursor).not.toBeNull();
          const second = await store.listContainers({}, { limit: 5, cursor: first.next_cursor! });
          expect(second.items).toHaveLength(5);
          expect(second.next_cursor).toBeNull();
        });
      });

      it('filters by cluster, instance, state and family, alone and combined', async () => {
        await eventually(async () => {
          expect((await listAll({ cluster: 'staging' })).map((r) => r.container_id)).toEqual(idsWhere((e) => e.host === hostB));
          expect((await listAll({ instance_id: hostA.instance_id })).map((r) => r.container_id)).toEqual(idsWhere((e) => e.host === hostA));
          expect((await listAll({ state: 'stopped' })).map((r) => r.container_id)).toEqual(idsWhere((e) => e.state === 'stopped'));
          expect((await listAll({ task_family: 'worker' })).map((r) => r.container_id)).toEqual(idsWhere((e) => e.family === 'worker'));
          expect((await listAll({ cluster: 'prod', state: 'running', task_family: 'web' })).map((r) => r.container_id)).toEqual(
            idsWhere((e) => e.host === hostA && e.state === 'running' && e.family === 'web'),
          );
          expect(await listAll({ cluster: 'nope' })).toEqual([]);
        });
      });

      it('paginates a filtered listing', async () => {
        await eventually(async () => {
          expect((await listAll({ instance_id: hostA.instance_id }, 3)).map((r) => r.container_id)).toEqual(idsWhere((e) => e.host === hostA));
        });
      });

      it('rejects a cursor it did not issue with InvalidCursorError', async () => {
        for (const cursor of ['not-a-cursor', '%%%', Buffer.from('{"after":"x"}').toString('base64url'), "' OR 1=1 --"]) {
          await expect(store.listContainers({}, { limit: 5, cursor })).rejects.toBeInstanceOf(InvalidCursorError);
        }
      });

      /** Every record of a scan, following its cursors; the pages' sizes alongside. */
      async function scanAll(filter: ContainerFilter, limit: number): Promise<{ ids: string[]; sizes: number[] }> {
        const ids: string[] = [];
        const sizes: number[] = [];
        let cursor: string | undefined;
        do {
          const page = await store.scanContainers(filter, { limit, ...(cursor ? { cursor } : {}) });
          ids.push(...page.items.map((r) => r.container_id));
          sizes.push(page.items.length);
          cursor = page.next_cursor ?? undefined;
        } while (cursor !== undefined && sizes.length < 50);
        return { ids, sizes };
      }

      it('scans every matching record exactly once, in pages of at most the limit', async () => {
        await eventually(async () => {
          const all = await scanAll({}, 4);
          expect([...all.ids].sort()).toEqual([...ids].sort());
          expect(Math.max(...all.sizes)).toBeLessThanOrEqual(4);
          const running = await scanAll({ state: 'running' }, 3);
          expect([...running.ids].sort()).toEqual(idsWhere((e) => e.state === 'running'));
          const some = await scanAll({ cluster: 'prod', task_family: 'web' }, 1000);
          expect([...some.ids].sort()).toEqual(idsWhere((e) => e.host === hostA && e.family === 'web'));
          expect(await scanAll({ cluster: 'nope' }, 10)).toEqual({ ids: [], sizes: [0] });
        });
      });

      it('rejects a scan cursor it did not issue with InvalidCursorError', async () => {
        for (const cursor of ['not-a-cursor', '%%%', Buffer.from('sdbscan1:[99,null,5]').toString('base64url'), "' OR 1=1 --"]) {
          await expect(store.scanContainers({}, { limit: 5, cursor })).rejects.toBeInstanceOf(InvalidCursorError);
        }
      });
    });

    // --- history, hosts, purge, counts, health -------------------------------------------------

    it('returns history oldest first, and nothing for an unknown container', async () => {
      await store.applyTransitions(batch(hostA, [transition(2, 'stopped', { from: 'running', at: iso(20), container: { container_id: c1 } })]), at(21));
      await store.applyTransitions(batch(hostA, [transition(3, 'gone', { from: 'stopped', at: iso(30), container: { container_id: c1 } })]), at(31));
      await store.recordLegacyEvent(legacyEvent('unknown', 'added', iso(25)), hostA.instance_id);
      await store.replaceSnapshot(snapshot(hostA, 1, [], iso(5)), at(32));
      expect((await store.history(c1)).map((h) => h.at)).toEqual([iso(20), iso(30)]);
      expect(await store.history(containerId('never'))).toEqual([]);
    });

    it('orders history by time even when reports arrive late', async () => {
      await store.replaceSnapshot(snapshot(hostA, 9, [snapshotContainer('stopped', { container_id: c1 })], iso(9)), at(9));
      await store.applyTransitions(batch(hostA, [transition(4, 'running', { at: iso(4), container: { container_id: c1 } })]), at(10));
      expect((await store.history(c1)).map((h) => [h.at, h.reason])).toEqual([
        [iso(4), 'agent.observed'],
        [iso(9), 'snapshot'],
      ]);
    });

    it('returns only the latest rows of a history when asked, still oldest first', async () => {
      await store.replaceSnapshot(snapshot(hostA, 9, [snapshotContainer('stopped', { container_id: c1 })], iso(9)), at(9));
      await store.applyTransitions(batch(hostA, [transition(4, 'running', { at: iso(4), container: { container_id: c1 } })]), at(10));
      await store.applyTransitions(batch(hostA, [transition(10, 'gone', { from: 'stopped', at: iso(12), container: { container_id: c1 } })]), at(12));

      expect((await store.history(c1, 2)).map((h) => [h.at, h.reason])).toEqual([
        [iso(9), 'snapshot'],
        [iso(12), 'agent.observed'],
      ]);
      expect((await store.history(c1, 1)).map((h) => h.at)).toEqual([iso(12)]);
      expect(await store.history(c1, 3)).toEqual(await store.history(c1));
      expect(await store.history(c1, 50)).toHaveLength(3);
      expect(await store.history(containerId('never'), 5)).toEqual([]);
    });

    it('lists hosts with their identity, last report time and last seq', async () => {
      await store.applyTransitions(batch(hostB, [transition(4, 'running', { container: { container_id: c2 } })]), at(1));
      await store.applyTransitions(batch(hostA, [transition(2, 'running', { container: { container_id: c1 } })]), at(2));
      await store.applyTransitions(batch(hostA, [transition(3, 'stopped', { container: { container_id: c1 } })]), at(3));
      await store.replaceSnapshot(snapshot(hostB, 4, [snapshotContainer('running', { container_id: c2 })]), at(4));
      await eventually(async () => {
        const hosts = await store.listHosts();
        const byId = new Map(hosts.map((h) => [h.instance_id, h]));
        expect(hosts.map((h) => h.instance_id)).toEqual([hostA.instance_id, hostB.instance_id].sort());
        expect(byId.get(hostA.instance_id)).toEqual({
          ...hostA,
          first_seen: iso(2),
          last_report_at: iso(3),
          last_snapshot_at: null,
          last_seq: 3,
          reporter: 'reconciler',
        });
        expect(byId.get(hostB.instance_id)).toMatchObject({ ...hostB, first_seen: iso(1), last_report_at: iso(4), last_snapshot_at: iso(4), last_seq: 4 });
      });
    });

    it('purges only records gone before the cutoff, with their history', async () => {
      await store.applyTransitions(
        batch(hostA, [
          transition(1, 'running', { container: { container_id: c1 } }),
          transition(2, 'stopped', { container: { container_id: c2 } }),
          transition(3, 'running', { container: { container_id: c3 } }),
        ]),
        at(0),
      );
      await store.applyTransitions(batch(hostA, [transition(4, 'gone', { from: 'running', container: { container_id: c1 } })]), at(10));
      await store.applyTransitions(batch(hostA, [transition(5, 'gone', { from: 'running', container: { container_id: c3 } })]), at(30));
      const c2Before = { r: await get(c2), h: await store.history(c2) };

      expect(await store.purgeGone(at(20))).toBe(1);
      expect(await store.getContainer(c1)).toEqual({ kind: 'missing' });
      expect(await store.history(c1)).toEqual([]);
      expect((await get(c3)).state).toBe('gone');
      expect(await store.history(c3)).toHaveLength(2);
      expect({ r: await get(c2), h: await store.history(c2) }).toEqual(c2Before);
      expect(await store.purgeGone(at(20))).toBe(0);
    });

    describe('history bound', () => {
      /** A container restarting in place: running and stopped by turns, one transition per minute from seq `from`. */
      const restarts = (from: number, count: number, id = c1) =>
        Array.from({ length: count }, (_, i) => from + i).map((seq) =>
          transition(seq, seq % 2 === 1 ? 'running' : 'stopped', { from: seq === 1 ? null : seq % 2 === 1 ? 'stopped' : 'running', container: { container_id: id } }),
        );
      async function withLimit(historyLimit: number, body: (s: Store) => Promise<void>): Promise<void> {
        const bounded = await open({ historyLimit });
        try {
          await body(bounded.store);
        } finally {
          await bounded.cleanup();
        }
      }

      it('keeps a restarting container\'s latest rows and deletes the oldest past the limit', async () => {
        // Limit 10: checked at every row, so exactly 10 are kept.
        await withLimit(10, async (s) => {
          for (const t of restarts(1, 30)) await s.applyTransitions(batch(hostA, [t]), at(t.seq));
          expect((await s.history(c1)).map((h) => h.seq)).toEqual([21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
          expect((await s.getContainer(c1)).kind).toBe('found');
        });
      });

      it('lets a history pass the limit by less than a tenth between checks, and trims batches as single rows', async () => {
        await withLimit(20, async (s) => {
          // Checked every 2 rows: batches of 3 cross a check inside the batch.
          const all = restarts(1, 45);
          for (let i = 0; i < all.length; i += 3) await s.applyTransitions(batch(hostA, all.slice(i, i + 3)), at(i));
          const seqs = (await s.history(c1)).map((h) => h.seq);
          expect(seqs.length).toBeGreaterThanOrEqual(20);
          expect(seqs.length).toBeLessThanOrEqual(21);
          expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => 46 - seqs.length + i));
        });
      });

      it('trims one container without touching another container\'s history', async () => {
        await withLimit(10, async (s) => {
          await s.applyTransitions(batch(hostA, restarts(1, 3, c2)), at(0));
          for (const t of restarts(4, 25)) await s.applyTransitions(batch(hostA, [t]), at(t.seq));
          expect((await s.history(c2)).map((h) => h.seq)).toEqual([1, 2, 3]);
          expect(await s.history(c1)).toHaveLength(10);
        });
      });

      it('acknowledges a replay of a trimmed seq as a duplicate and changes nothing', async () => {
        await withLimit(10, async (s) => {
          for (const t of restarts(1, 30)) await s.applyTransitions(batch(hostA, [t]), at(t.seq));
          const before = await s.history(c1);
          const result = await s.applyTransitions(batch(hostA, restarts(1, 1)), at(31));
          expect([result.applied, result.duplicates, result.conflicts]).toEqual([0, 1, 0]);
          expect(await s.history(c1)).toEqual(before);
        });
      });

      it('keeps every row with limit 0', async () => {
        await withLimit(0, async (s) => {
          for (const t of restarts(1, 30)) await s.applyTransitions(batch(hostA, [t]), at(t.seq));
          expect(await s.history(c1)).toHaveLength(30);
        });
      });
    });

    describe('retireSilentHosts', () => {
      it('marks the live records of hosts silent since the cutoff gone, with history, and leaves the others', async () => {
        await store.applyTransitions(
          batch(hostA, [
            transition(1, 'running', { container: { container_id: c1 } }),
            transition(2, 'stopped', { container: { container_id: c2 } }),
          ]),
          at(0),
        );
        await store.replaceSnapshot(snapshot(hostB, 1, [snapshotContainer('running', { container_id: c3 })]), at(50));
        const c1Before = await get(c1);

        expect(await store.retireSilentHosts(at(30), at(60))).toEqual({ containers: 2, forgottenHosts: 0 });

        // Only the state changes: the mapping, the seq and the last report's time stay.
        expect(await get(c1)).toEqual({ ...c1Before, state: 'gone', gone_at: iso(60) });
        expect(await get(c2)).toMatchObject({ state: 'gone', gone_at: iso(60), stopped_at: expect.any(String) });
        expect((await get(c3)).state).toBe('running');
        expect((await store.history(c1)).at(-1)).toEqual({ container_id: c1, from: 'running', to: 'gone', at: iso(60), host: hostA.instance_id, seq: null, reason: 'host.silent' });
        // Already gone: nothing more to do.
        expect(await store.retireSilentHosts(at(30), at(61))).toEqual({ containers: 0, forgottenHosts: 0 });
        expect((await get(c1)).gone_at).toBe(iso(60));
      });

      it('leaves the hosts of the original agent alone, however long they are silent', async () => {
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('running', { container_id: c1 })], iso(0)));

        expect(await store.retireSilentHosts(at(30), at(60))).toEqual({ containers: 0, forgottenHosts: 0 });

        expect((await get(c1)).state).toBe('running');
        await eventually(async () => expect((await store.listHosts()).map((h) => h.instance_id)).toEqual([hostA.instance_id]));
      });

      it('forgets a silent host once the retention has purged its records, and no other', async () => {
        await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c1 } })]), at(0));
        await store.applyTransitions(batch(hostB, [transition(1, 'running', { container: { container_id: c3 } })]), at(50));
        await store.retireSilentHosts(at(30), at(60));
        expect(await store.purgeGone(at(61))).toBe(1);

        expect(await store.retireSilentHosts(at(30), at(62))).toEqual({ containers: 0, forgottenHosts: 1 });

        await eventually(async () => expect((await store.listHosts()).map((h) => h.instance_id)).toEqual([hostB.instance_id]));
      });

      it('brings a retired host\'s records back with its next report, and applies its later transitions', async () => {
        await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c1 } }), transition(2, 'running', { container: { container_id: c2 } })]), at(0));
        await store.retireSilentHosts(at(30), at(60));

        await store.replaceSnapshot(snapshot(hostA, 2, [snapshotContainer('running', { container_id: c1 })]), at(70));
        await store.applyTransitions(batch(hostA, [transition(3, 'stopped', { from: 'running', container: { container_id: c1 } })]), at(71));

        expect(await get(c1)).toMatchObject({ state: 'stopped', gone_at: null });
        expect((await get(c2)).state).toBe('gone');
        expect(await store.retireSilentHosts(at(30), at(80))).toEqual({ containers: 0, forgottenHosts: 0 });
      });
    });

    describe('forgetHost', () => {
      it("marks an original agent's host's live records gone, with history, and drops the host from the list", async () => {
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('running', { container_id: c1 }), legacyContainer('stopped', { container_id: c2 })], iso(0)));
        await store.applyTransitions(batch(hostB, [transition(1, 'running', { container: { container_id: c3 } })]), at(0));
        const c1Before = await get(c1);

        expect(await store.forgetHost(hostA.instance_id, at(60))).toEqual({ outcome: 'forgotten', containers: 2 });

        // The record still answers lookups: only its state changes, until the retention purges it.
        expect(await get(c1)).toEqual({ ...c1Before, state: 'gone', gone_at: iso(60) });
        expect(await get(c2)).toMatchObject({ state: 'gone', gone_at: iso(60) });
        expect((await store.history(c1)).at(-1)).toEqual({ container_id: c1, from: 'running', to: 'gone', at: iso(60), host: hostA.instance_id, seq: null, reason: 'host.forgotten' });
        expect((await get(c3)).state).toBe('running');
        await eventually(async () => expect((await store.listHosts()).map((h) => h.instance_id)).toEqual([hostB.instance_id]));
        expect(await store.purgeGone(at(61))).toBe(2);
      });

      it('leaves records already gone as they were', async () => {
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('running', { container_id: c1 }), legacyContainer('running', { container_id: c2 })], iso(0)));
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('running', { container_id: c1, sampled_at: iso(10) })], iso(10)));
        const c2Before = { r: await get(c2), h: await store.history(c2) };
        expect(c2Before.r.state).toBe('gone');

        expect(await store.forgetHost(hostA.instance_id, at(60))).toEqual({ outcome: 'forgotten', containers: 1 });

        expect({ r: await get(c2), h: await store.history(c2) }).toEqual(c2Before);
      });

      it('answers unknown for a host it does not list, and for one already forgotten', async () => {
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('running', { container_id: c1 })], iso(0)));

        expect(await store.forgetHost(hostB.instance_id, at(60))).toEqual({ outcome: 'unknown' });
        expect(await store.forgetHost(hostA.instance_id, at(60))).toEqual({ outcome: 'forgotten', containers: 1 });
        expect(await store.forgetHost(hostA.instance_id, at(61))).toEqual({ outcome: 'unknown' });
        expect((await store.history(c1)).filter((h) => h.reason === 'host.forgotten')).toHaveLength(1);
      });

      it('leaves a host that has sent sequence numbers as it was: its last seq is the mark a new daemon numbers from', async () => {
        await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c1 } }), transition(2, 'running', { container: { container_id: c2 } })]), at(0));
        const before = { c1: await get(c1), h: await store.history(c1) };

        expect(await store.forgetHost(hostA.instance_id, at(60))).toEqual({ outcome: 'sequenced', last_seq: 2 });

        expect({ c1: await get(c1), h: await store.history(c1) }).toEqual(before);
        expect((await store.listHosts({ consistent: true })).map((h) => [h.instance_id, h.last_seq])).toEqual([[hostA.instance_id, 2]]);
      });

      it('takes a forgotten host back with its next report, whether from the original agent or a reconciler', async () => {
        await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('running', { container_id: c1 })], iso(0)));
        await store.replaceLegacySnapshot(legacySnapshot(hostB, [legacyContainer('running', { container_id: c3 })], iso(0)));
        await store.forgetHost(hostA.instance_id, at(60));
        await store.forgetHost(hostB.instance_id, at(60));

        await store.replaceLegacySnapshot(legacySnapshot(hostA, [legacyContainer('running', { container_id: c1, sampled_at: iso(70) })], iso(70)));
        // The instance now runs the reconciler (an upgrade): its first snapshot and transitions.
        await store.replaceSnapshot(snapshot(hostB, 1, [snapshotContainer('running', { container_id: c3 })]), at(70));
        await store.applyTransitions(batch(hostB, [transition(2, 'stopped', { from: 'running', container: { container_id: c3 } })]), at(71));

        expect(await get(c1)).toMatchObject({ state: 'running', gone_at: null });
        expect(await get(c3)).toMatchObject({ state: 'stopped', gone_at: null });
        await eventually(async () => expect((await store.listHosts()).map((h) => h.instance_id)).toEqual([hostA.instance_id, hostB.instance_id].sort()));
      });
    });

    it('counts records by state and cluster', async () => {
      await store.applyTransitions(
        batch(hostA, [
          transition(1, 'running', { container: { container_id: c1 } }),
          transition(2, 'running', { container: { container_id: c2 } }),
          transition(3, 'stopped', { container: { container_id: c3 } }),
        ]),
        at(1),
      );
      await store.applyTransitions(batch(hostB, [transition(1, 'running', { container: { container_id: containerId(4) } })]), at(1));
      await eventually(async () => {
        const counts = (await store.countByState()).sort((a, b) => `${a.state}${a.cluster}`.localeCompare(`${b.state}${b.cluster}`));
        expect(counts).toEqual([
          { state: 'running', cluster: 'prod', count: 2 },
          { state: 'running', cluster: 'staging', count: 1 },
          { state: 'stopped', cluster: 'prod', count: 1 },
        ]);
      });
    });

    describe('countByHostAndState', () => {
      const c4 = containerId(4);
      const c5 = containerId(5);
      const counts = async () => (await store.countByHostAndState()).map((c) => [c.instance_id, c.state, c.count]);

      it('is empty for an empty store', async () => {
        expect(await store.countByHostAndState()).toEqual([]);
      });

      it('follows transitions, snapshots, gone and purge, per host, ordered by instance_id then state', async () => {
        const [first, second] = [hostA, hostB].sort((x, y) => (x.instance_id < y.instance_id ? -1 : 1));
        await store.applyTransitions(
          batch(first, [
            transition(1, 'running', { container: { container_id: c1 } }),
            transition(2, 'running', { container: { container_id: c2 } }),
            transition(3, 'pending', { container: { container_id: c3 } }),
          ]),
          at(1),
        );
        await store.replaceSnapshot(snapshot(second, 1, [snapshotContainer('running', { container_id: c4 }), snapshotContainer('stopped', { container_id: c5 })]), at(1));
        await eventually(async () =>
          expect(await counts()).toEqual([
            [first.instance_id, 'pending', 1],
            [first.instance_id, 'running', 2],
            [second.instance_id, 'running', 1],
            [second.instance_id, 'stopped', 1],
          ]),
        );
        // A transition moves one record between states; the other host is unaffected.
        await store.applyTransitions(batch(first, [transition(4, 'stopping', { from: 'running', container: { container_id: c2 } })]), at(2));
        await store.applyTransitions(batch(first, [transition(5, 'running', { from: 'pending', container: { container_id: c3 } })]), at(2));
        await eventually(async () =>
          expect(await counts()).toEqual([
            [first.instance_id, 'running', 2],
            [first.instance_id, 'stopping', 1],
            [second.instance_id, 'running', 1],
            [second.instance_id, 'stopped', 1],
          ]),
        );
        // A snapshot without c1 and c2 marks them gone; gone records are counted too.
        await store.replaceSnapshot(snapshot(first, 6, [snapshotContainer('running', { container_id: c3 })]), at(10));
        await eventually(async () =>
          expect(await counts()).toEqual([
            [first.instance_id, 'gone', 2],
            [first.instance_id, 'running', 1],
            [second.instance_id, 'running', 1],
            [second.instance_id, 'stopped', 1],
          ]),
        );
        // Purging removes them from the counts.
        expect(await store.purgeGone(at(20))).toBe(2);
        await eventually(async () =>
          expect(await counts()).toEqual([
            [first.instance_id, 'running', 1],
            [second.instance_id, 'running', 1],
            [second.instance_id, 'stopped', 1],
          ]),
        );
      });

      it('counts legacy reports under the reporting host and agrees with a full listing', async () => {
        await store.replaceLegacySnapshot(legacySnapshot(hostB, [legacyContainer('running', { container_id: c1 }), legacyContainer('stopped', { container_id: c2 })]));
        await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c3 } })]), at(1));
        await eventually(async () => {
          const fromListing = new Map<string, number>();
          for (const r of await listAll()) fromListing.set(`${r.instance_id} ${r.state}`, (fromListing.get(`${r.instance_id} ${r.state}`) ?? 0) + 1);
          const fromCounts = new Map((await store.countByHostAndState()).map((c) => [`${c.instance_id} ${c.state}`, c.count]));
          expect(fromCounts).toEqual(fromListing);
          expect(fromCounts.get(`${hostB.instance_id} stopped`)).toBe(1);
        });
      });
    });

    it('reports itself healthy, naming its backend', async () => {
      expect(await store.health()).toMatchObject({ ok: true, backend: store.backend });
    });

    // --- hostile input -------------------------------------------------------------------------

    it('finds nothing and does not throw for injection strings in any lookup', async () => {
      await store.applyTransitions(batch(hostA, [transition(1, 'running', { container: { container_id: c1 } })]), at(1));
      await store.replaceLegacySnapshot(legacySnapshot(hostB, [legacyContainer('running', { container_id: c2 })]));
      for (const s of INJECTION_STRINGS) {
        expect(await store.getContainer(s), s).toEqual({ kind: 'missing' });
        expect(await store.findByTask(s), s).toEqual([]);
        expect(await store.findByDockerName(s), s).toEqual([]);
        expect(await store.history(s), s).toEqual([]);
        expect((await store.listContainers({ cluster: s }, { limit: 10 })).items, s).toEqual([]);
        expect((await store.listContainers({ instance_id: s }, { limit: 10 })).items, s).toEqual([]);
        expect((await store.listContainers({ task_family: s }, { limit: 10 })).items, s).toEqual([]);
        expect((await store.scanContainers({ cluster: s, task_family: s }, { limit: 10 })).items, s).toEqual([]);
        await store.recordLegacyEvent(legacyEvent(s, 'removed'), s);
      }
      expect(await store.history(c2)).toHaveLength(1);
      expect((await get(c1)).state).toBe('running');
    });
  });
}
