import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../storage/index.js';
import { at, batch, containerId, hostIdentity, instanceId, transition } from '../storage/store.fixtures.js';
import { ContainerInfoExposition, escapeLabel } from './container-info.js';

const infoLines = (text: string) => text.split('\n').filter((l) => l.startsWith('ecs_id_mapper_container_info{'));
const text = async (info: ContainerInfoExposition): Promise<string> => Buffer.concat(await info.exposition()).toString('utf8');

describe('container_info exposition', () => {
  let store: Store;
  let now: Date;

  beforeEach(async () => {
    store = await openStore({ backend: 'sqlite', path: ':memory:' });
    now = at(0);
  });
  afterEach(() => store.close());

  async function report(seq: number, id: string, to: 'running' | 'stopped', container: Record<string, unknown> = {}) {
    await store.applyTransitions(batch(hostIdentity({ instance_id: instanceId('a') }), [transition(seq, to, { container: { container_id: id, ...container } })]), at(0));
  }

  /** A store whose container scans are counted, and fail while `failing` is set. */
  function watched(): { store: Store; reads: () => number; fail: (on: boolean) => void } {
    let reads = 0;
    let failing = false;
    const spy: Store = Object.create(store, {
      scanContainers: {
        value: (...args: Parameters<Store['scanContainers']>) => {
          reads++;
          return failing ? Promise.reject(new Error('store down')) : store.scanContainers(...args);
        },
      },
    });
    return { store: spy, reads: () => reads, fail: (on) => (failing = on) };
  }

  it('has one series per running container with the labels that join cAdvisor series, after its HELP and TYPE', async () => {
    await report(1, containerId(1), 'running');
    await report(2, containerId(2), 'stopped');
    const exposition = await text(new ContainerInfoExposition({ store, now: () => now }));
    const found = await store.getContainer(containerId(1));
    if (found.kind !== 'found') throw new Error('seeded container missing');
    const r = found.record;
    expect(exposition.startsWith('# HELP ecs_id_mapper_container_info Always 1 for each running container;')).toBe(true);
    expect(exposition).toContain('\n# TYPE ecs_id_mapper_container_info gauge\n');
    expect(infoLines(exposition)).toEqual([
      `ecs_id_mapper_container_info{container_id="${r.container_id}",container_name="${r.container_name}",task_id="${r.task_id}",task_family="${r.task_family}",task_revision="${r.task_version}",cluster="${r.cluster}",instance_id="${r.instance_id}"} 1`,
    ]);
    expect(exposition.endsWith('} 1\n')).toBe(true);
  });

  it('escapes backslashes, double quotes and line feeds in label values, and writes null as empty', async () => {
    await report(1, containerId(1), 'running', { container_name: 'we"ird\\name\nx', task_family: null });
    const [line] = infoLines(await text(new ContainerInfoExposition({ store, now: () => now })));
    expect(line).toContain('container_name="we\\"ird\\\\name\\nx"');
    expect(line).toContain('task_family=""');
    expect(escapeLabel('plain-name_1')).toBe('plain-name_1');
  });

  it('has HELP and TYPE but no series when nothing runs', async () => {
    const exposition = await text(new ContainerInfoExposition({ store, now: () => now }));
    expect(exposition.split('\n').filter(Boolean).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['# HELP', '# TYPE']);
  });

  it('reads the store for the first scrape, then answers from that build until it is minRefreshMs old', async () => {
    const w = watched();
    await report(1, containerId(1), 'running');
    const info = new ContainerInfoExposition({ store: w.store, now: () => now, minRefreshMs: 10_000 });
    expect(infoLines(await text(info))).toHaveLength(1);
    const afterFirst = w.reads();
    await report(2, containerId(2), 'running');
    now = at(0.1);
    expect(infoLines(await text(info))).toHaveLength(1);
    expect(w.reads()).toBe(afterFirst);
  });

  it('answers the last build while it rebuilds in the background, and the next scrape has the new one', async () => {
    await report(1, containerId(1), 'running');
    const info = new ContainerInfoExposition({ store, now: () => now, minRefreshMs: 10_000 });
    await text(info);
    await report(2, containerId(2), 'running');
    now = at(1);
    // Stale: this scrape still gets the old build; the rebuild it started finishes within a few turns.
    expect(infoLines(await text(info))).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(infoLines(await text(info))).toHaveLength(2);
  });

  it('drops the series when the store cannot be read, logs it, and has them again once it can', async () => {
    const w = watched();
    const warnings: unknown[] = [];
    await report(1, containerId(1), 'running');
    const info = new ContainerInfoExposition({ store: w.store, now: () => now, minRefreshMs: 0, log: { warn: (obj: unknown) => warnings.push(obj) } });
    expect(infoLines(await text(info))).toHaveLength(1);
    w.fail(true);
    await text(info); // answers the last build, starts a rebuild that fails
    await new Promise((resolve) => setTimeout(resolve, 10));
    const during = await text(info);
    expect(infoLines(during)).toEqual([]);
    expect(during).toContain('# TYPE ecs_id_mapper_container_info gauge');
    expect(warnings.length).toBeGreaterThan(0);
    w.fail(false);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(infoLines(await text(info))).toHaveLength(1);
  });

  it('lets the event loop turn between the pages of a build, so requests are not held up by it', async () => {
    for (let i = 1; i <= 7; i++) await report(i, containerId(i), 'running');
    let turns = 0;
    let building = true;
    const tick = () => {
      turns++;
      if (building) setImmediate(tick);
    };
    setImmediate(tick);
    const turnsAtRead: number[] = [];
    const spy: Store = Object.create(store, {
      scanContainers: {
        value: (...args: Parameters<Store['scanContainers']>) => {
          turnsAtRead.push(turns);
          return store.scanContainers(...args);
        },
      },
    });
    const exposition = await text(new ContainerInfoExposition({ store: spy, now: () => now, pageSize: 2 }));
    building = false;
    expect(infoLines(exposition)).toHaveLength(7);
    expect(turnsAtRead).toHaveLength(4);
    for (let i = 1; i < turnsAtRead.length; i++) expect(turnsAtRead[i]).toBeGreaterThan(turnsAtRead[i - 1]);
  });

  it('stops a build in progress when the server closes, without logging a failure', async () => {
    for (let i = 1; i <= 5; i++) await report(i, containerId(i), 'running');
    const warnings: unknown[] = [];
    const info = new ContainerInfoExposition({ store, now: () => now, pageSize: 1, log: { warn: (obj: unknown) => warnings.push(obj) } });
    const first = info.exposition();
    await info.stop();
    expect(infoLines(Buffer.concat(await first).toString('utf8'))).toEqual([]);
    expect(warnings).toEqual([]);
  });
});
