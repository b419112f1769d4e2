// The fleet simulator's checker must be able to fail: each kind of wrong answer is counted.
import { afterEach, describe, expect, it } from 'vitest';
import { openSqliteStore, type SqliteStore } from '../../storage/sqlite/index.js';
import { batch, containerId, hostIdentity, transition } from '../../storage/store.fixtures.js';
import { GroundTruth } from './hosts.js';
import { verify } from './index.js';

let store: SqliteStore | undefined;
afterEach(async () => {
  await store?.close();
  store = undefined;
});

describe('fleet-sim verify', () => {
  const host = hostIdentity();
  const id = containerId('verify');
  const sent = [
    transition(1, 'pending', { container: { container_id: id } }),
    transition(2, 'running', { from: 'pending', container: { container_id: id } }),
  ];

  it('finds nothing wrong when the store holds exactly what was sent', async () => {
    store = openSqliteStore({ path: ':memory:' });
    const truth = new GroundTruth();
    for (const t of sent) truth.record(host.instance_id, t);
    await store.applyTransitions(batch(host, sent), new Date());
    expect(await verify(store, truth)).toMatchObject({ lost: 0, duplicated: 0, wrongRecords: 0, wrongHistory: 0 });
  });

  it('counts a transition stored with another target state, a lost one, and the record left behind', async () => {
    store = openSqliteStore({ path: ':memory:' });
    const truth = new GroundTruth();
    for (const t of [...sent, transition(3, 'stopping', { from: 'running', container: { container_id: id } })]) truth.record(host.instance_id, t);
    // The server stored seq 2 as `stopped` and never got seq 3.
    await store.applyTransitions(batch(host, [sent[0], { ...sent[1], to: 'stopped' }]), new Date());
    expect(await verify(store, truth)).toMatchObject({ lost: 1, duplicated: 0, wrongRecords: 1, wrongHistory: 1 });
  });

  it('counts a record that names another task', async () => {
    store = openSqliteStore({ path: ':memory:' });
    const truth = new GroundTruth();
    for (const t of sent) truth.record(host.instance_id, t);
    const other = 'arn:aws:ecs:us-east-1:123456789012:task/other/0123456789abcdef0123456789abcdef';
    await store.applyTransitions(batch(host, sent.map((t) => ({ ...t, container: { ...t.container, task_arn: other } }))), new Date());
    expect(await verify(store, truth)).toMatchObject({ lost: 0, wrongRecords: 1, wrongHistory: 0 });
  });
});
