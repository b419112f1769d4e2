import * as PromClient from 'prom-client';
import { describe, expect, it } from 'vitest';
import { collectProcessMetrics, Counter, Registry } from './prom.js';

const PREFIX = 'ecs_id_mapper_reconciler_';

describe('prom-client, loaded part by part', () => {
  it('registers the same process series as prom-client’s collectDefaultMetrics, with the same help and type', async () => {
    const ours = new Registry();
    collectProcessMetrics(ours, PREFIX);
    const theirs = new PromClient.Registry();
    PromClient.collectDefaultMetrics({ register: theirs, prefix: PREFIX });
    const shape = async (r: PromClient.Registry) => (await r.getMetricsAsJSON()).map((m) => ({ name: m.name, help: m.help, type: m.type }));
    expect(await shape(ours)).toEqual(await shape(theirs));
  });

  it('counts CPU seconds that grow with work and add up (user + system = total)', async () => {
    const registry = new Registry();
    collectProcessMetrics(registry, PREFIX);
    const read = async (name: string) => (await registry.getSingleMetric(`${PREFIX}${name}`)!.get()).values[0].value;
    await registry.metrics();
    const before = await read('process_cpu_seconds_total');
    const end = process.cpuUsage().user + 30_000;
    while (process.cpuUsage().user < end); // 30 ms of user CPU
    await registry.metrics();
    const [user, system, total] = [await read('process_cpu_user_seconds_total'), await read('process_cpu_system_seconds_total'), await read('process_cpu_seconds_total')];
    expect(total - before).toBeGreaterThanOrEqual(0.03);
    expect(user + system).toBeCloseTo(total, 6);
  });

  it('is the same Counter class prom-client exports, so registries mix', () => {
    expect(Counter).toBe(PromClient.Counter);
    expect(Registry).toBe(PromClient.Registry);
  });
});
