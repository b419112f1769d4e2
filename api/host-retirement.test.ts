import { afterEach, describe, expect, it } from 'vitest';
import { openSqliteStore, type SqliteStore } from '../storage/sqlite/index.js';
import { at, batch, containerId, hostIdentity, instanceId, transition } from '../storage/store.fixtures.js';
import { retireSilentHosts, type HostRetirementOptions } from './host-retirement.js';

const HOUR = 3_600_000;
const stores: SqliteStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

/** `silent` hosts whose one container reported at minute 0, and `reporting` hosts that reported at minute 120. */
async function fleet(silent: number, reporting: number): Promise<SqliteStore> {
  const store = openSqliteStore({ path: ':memory:' });
  stores.push(store);
  for (let i = 0; i < silent + reporting; i++) {
    const host = hostIdentity({ instance_id: instanceId(`h${i}`) });
    await store.applyTransitions(batch(host, [transition(1, 'running', { container: { container_id: containerId(`h${i}`) } })]), at(i < silent ? 0 : 120));
  }
  return store;
}

const logs: Array<{ level: string; msg: string; fields: unknown }> = [];
const log = { info: (fields: unknown, msg: string) => logs.push({ level: 'info', msg, fields }), warn: (fields: unknown, msg: string) => logs.push({ level: 'warn', msg, fields }) } as unknown as HostRetirementOptions['log'];
const state = async (store: SqliteStore, i: number) => {
  const found = await store.getContainer(containerId(`h${i}`));
  return found.kind === 'found' ? found.record.state : found.kind;
};

describe('retiring silent hosts', () => {
  it('marks the records of hosts silent longer than --host-gone-after gone, and leaves the reporting ones', async () => {
    const store = await fleet(1, 3);
    const outcome = await retireSilentHosts({ store, goneAfterMs: HOUR, staleAfterMs: 15 * 60_000, upForMs: 12 * HOUR, log }, at(121).getTime());
    expect(outcome).toEqual({ kind: 'retired', containers: 1, forgottenHosts: 0 });
    expect([await state(store, 0), await state(store, 1)]).toEqual(['gone', 'running']);
    expect(logs.at(-1)).toMatchObject({ level: 'info', msg: 'retired hosts silent longer than --host-gone-after', fields: { containers: 1, forgotten_hosts: 0 } });
  });

  it('retires none until the server has been up for --host-gone-after: hosts cannot report to a server that is down', async () => {
    const store = await fleet(1, 3);
    const outcome = await retireSilentHosts({ store, goneAfterMs: HOUR, staleAfterMs: 15 * 60_000, upForMs: 21 * 60_000, log }, at(121).getTime());
    expect(outcome).toEqual({ kind: 'warming_up' });
    expect(await state(store, 0)).toBe('running');
  });

  it('retires none right after start when the wall clock steps past --host-gone-after: the step is not up-time', async () => {
    // Up 5 s; the wall clock then reads minute 121, so the host silent since minute 0 looks silent for 2 h.
    const store = await fleet(1, 3);
    const outcome = await retireSilentHosts({ store, goneAfterMs: HOUR, staleAfterMs: 15 * 60_000, upForMs: 5_000, log }, at(121).getTime());
    expect(outcome).toEqual({ kind: 'warming_up' });
    expect(await state(store, 0)).toBe('running');
  });

  it('retires most of a fleet that scaled down, as long as one host still reports', async () => {
    const store = await fleet(8, 2);
    const outcome = await retireSilentHosts({ store, goneAfterMs: HOUR, staleAfterMs: 15 * 60_000, upForMs: 12 * HOUR, log }, at(121).getTime());
    expect(outcome).toEqual({ kind: 'retired', containers: 8, forgottenHosts: 0 });
    expect([await state(store, 7), await state(store, 8)]).toEqual(['gone', 'running']);
  });

  it('retires none while no host at all has reported within --host-stale-after, and says why', async () => {
    const store = await fleet(3, 2);
    // Minute 150: the last reports (minute 120) are 30 minutes old, past the 15-minute stale window.
    const outcome = await retireSilentHosts({ store, goneAfterMs: HOUR, staleAfterMs: 15 * 60_000, upForMs: 12 * HOUR, log }, at(150).getTime());
    expect(outcome).toEqual({ kind: 'held', silent: 3, hosts: 5 });
    expect(await state(store, 0)).toBe('running');
    expect(logs.at(-1)).toMatchObject({ level: 'warn', msg: 'no host has reported within --host-stale-after: not retiring any (a network or server problem, not scale-in)', fields: { silent: 3, hosts: 5 } });
  });

  it('retires a lone silent host beside one replacement, and none when --host-gone-after is 0', async () => {
    const store = await fleet(1, 1);
    expect(await retireSilentHosts({ store, goneAfterMs: 0, staleAfterMs: 15 * 60_000, upForMs: 12 * HOUR, log }, at(121).getTime())).toEqual({ kind: 'disabled' });
    expect(await state(store, 0)).toBe('running');
    expect(await retireSilentHosts({ store, goneAfterMs: HOUR, staleAfterMs: 15 * 60_000, upForMs: 12 * HOUR, log }, at(121).getTime())).toMatchObject({ kind: 'retired', containers: 1 });
  });
});
