import { describe, expect, it } from 'vitest';
import { Histogram, Registry } from 'prom-client';
import { BoundHistogram } from './bound-histogram.js';

const config = {
  name: 'test_request_duration_seconds',
  help: 'Request duration.',
  labelNames: ['route', 'status_class'] as const,
  buckets: [0.001, 0.01, 0.1, 1],
};
const observations: [string, string, number][] = [
  ['/a', '2xx', 0.0004],
  ['/a', '2xx', 0.001],
  ['/a', '2xx', 0.05],
  ['/a', '4xx', 3],
  ['/b/:id', '2xx', 0.2],
  ['/b/:id', '2xx', 0],
];

describe('BoundHistogram', () => {
  it('writes the same exposition as prom-client’s Histogram for the same observations', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const bound = new BoundHistogram({ ...config, registers: [ours] });
    const reference = new Histogram({ ...config, registers: [theirs] });
    for (const [route, status_class, value] of observations) {
      bound.bind({ route, status_class }).observe(value);
      reference.observe({ route, status_class }, value);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    // Without the exemplar field, which prom-client sets to null or undefined (exemplars are off).
    const json = async (r: Registry) =>
      (await r.getMetricsAsJSON()).map((m) => ({ ...m, values: m.values.map((v) => ({ labels: v.labels, value: v.value, metricName: (v as { metricName?: string }).metricName })) }));
    expect(await json(ours)).toEqual(await json(theirs));
  });

  it('exports a bound label set only once it has been observed', async () => {
    const registry = new Registry();
    const bound = new BoundHistogram({ ...config, registers: [registry] });
    const series = bound.bind({ route: '/a', status_class: '2xx' });
    expect(await registry.metrics()).not.toContain('route="/a"');
    series.observe(0.5);
    expect(await registry.metrics()).toContain('test_request_duration_seconds_count{route="/a",status_class="2xx"} 1');
  });

  it('gives the same series to the same label set', () => {
    const bound = new BoundHistogram({ ...config, registers: [] });
    expect(bound.bind({ route: '/a', status_class: '2xx' })).toBe(bound.bind({ status_class: '2xx', route: '/a' }));
  });

  it('zeroes its series on registry reset, and bound series keep counting', async () => {
    const registry = new Registry();
    const bound = new BoundHistogram({ ...config, registers: [registry] });
    const series = bound.bind({ route: '/a', status_class: '2xx' });
    series.observe(0.5);
    registry.resetMetrics();
    expect(await registry.metrics()).not.toContain('route="/a"');
    series.observe(0.002);
    const text = await registry.metrics();
    expect(text).toContain('test_request_duration_seconds_bucket{le="0.001",route="/a",status_class="2xx"} 0');
    expect(text).toContain('test_request_duration_seconds_bucket{le="0.01",route="/a",status_class="2xx"} 1');
    expect(text).toContain('test_request_duration_seconds_count{route="/a",status_class="2xx"} 1');
  });

  it('rejects buckets that are not ascending', () => {
    expect(() => new BoundHistogram({ ...config, buckets: [0.1, 0.01], registers: [] })).toThrow('buckets must be ascending');
  });
});
