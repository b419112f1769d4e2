// A Prometheus histogram for the per-request duration series, exposed on a prom-client registry
// with the same name, help, type and text format as prom-client's own Histogram.
//
// Why not prom-client's Histogram: every observation (label-bound child or not) rebuilds, validates
// and hashes the label set before counting, which made metrics the largest single cost of a cached
// lookup beyond bare Fastify (docs/benchmarks.md, API section). Here a label set is bound once — a
// route is bound when it first answers — and an observation is a bucket search and two increments.
import type { Metric, Registry } from 'prom-client';

type Labels<L extends string> = Record<L, string>;

/** One label set's counts. `counts[i]` counts observations in bucket i only (the last is +Inf); export accumulates. */
export class HistogramSeries<L extends string> {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Labels<L>,
    private readonly upperBounds: readonly number[],
  ) {
    this.counts = new Float64Array(upperBounds.length + 1);
  }

  observe(value: number): void {
    // Values are request durations: finite and non-negative, so no validation on this path.
    const bounds = this.upperBounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

export interface BoundHistogramConfig<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  /** Upper bounds in ascending order; +Inf is implied. */
  buckets: readonly number[];
  registers: Registry[];
}

interface ExportedValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

export class BoundHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly upperBounds: readonly number[];
  private readonly labelNames: readonly L[];
  private readonly series = new Map<string, HistogramSeries<L>>();

  constructor(config: BoundHistogramConfig<L>) {
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames;
    this.upperBounds = [...config.buckets];
    for (let i = 1; i < this.upperBounds.length; i++) {
      if (!(this.upperBounds[i] > this.upperBounds[i - 1])) throw new Error(`${config.name}: buckets must be ascending`);
    }
    // The registry reads only name, help, type, aggregator, get() and reset(); prom-client's Metric
    // type lists its own four classes, hence the cast.
    for (const registry of config.registers) registry.registerMetric(this as unknown as Metric);
  }

  /** The series of one label set, created on first use and exported from then on (as prom-client does). */
  bind(labels: Labels<L>): HistogramSeries<L> {
    const key = this.labelNames.map((l) => labels[l]).join('\u0000');
    let s = this.series.get(key);
    if (s === undefined) {
      s = new HistogramSeries({ ...labels }, this.upperBounds);
      this.series.set(key, s);
    }
    return s;
  }

  /** Label sets bound but never observed are not exported, as prom-client exports only observed ones. */
  async get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: ExportedValue[] }> {
    const values: ExportedValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.series.values()) {
      if (s.count === 0) continue;
      let cumulative = 0;
      // `le` first, then the series' labels: the order prom-client writes them in.
      this.upperBounds.forEach((le, i) => {
        cumulative += s.counts[i];
        values.push({ labels: { le, ...s.labels }, value: cumulative, metricName: bucket });
      });
      values.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: bucket });
      values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...s.labels }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Zeroes every series (Registry.resetMetrics); bound series stay valid. */
  reset(): void {
    for (const s of this.series.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}
