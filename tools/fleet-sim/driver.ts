// Drives simulated hosts against a server through the real v2 report routes with undici (one Pool,
// bounded connections). A host never has two requests in flight, so its seqs arrive in order; a
// failed request is retried with the same body (as the reconciler's outbox does) until accepted,
// so nothing is dropped. Latency is measured per request; in paced mode from the request's
// scheduled start, so a slow server cannot hide its queueing (coordinated omission).
import { Pool } from 'undici';
import type { HostSnapshot, Transition } from '../../wire/index.js';
import type { SimHost } from './hosts.js';

export interface PhaseStats {
  requests: number;
  transitions: number;
  snapshots: number;
  retries: number;
  elapsedMs: number;
  /** Per-request latencies in ms: transition batches. */
  latencies: number[];
  /** Per-request latencies in ms: snapshot PUTs. */
  snapshotLatencies: number[];
}

export class ReportRejectedError extends Error {
  readonly name = 'ReportRejectedError';
  readonly code = 'ERR_REPORT_REJECTED';
  constructor(
    readonly status: number,
    body: string,
  ) {
    super(`server rejected a report with HTTP ${status}: ${body.slice(0, 200)}`);
  }
}

const RETRYABLE = new Set([429, 500, 502, 503, 504]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class FleetDriver {
  private readonly pool: Pool;
  retries = 0;

  constructor(
    url: string,
    readonly connections: number,
  ) {
    this.pool = new Pool(url, { connections, pipelining: 1, headersTimeout: 30_000, bodyTimeout: 30_000 });
  }

  /** Sends one request until the server accepts it; returns the latency of the accepted attempt's whole retry chain. */
  async send(method: 'POST' | 'PUT', path: string, body: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.pool.request({ method, path, body, headers: { 'content-type': 'application/json' } });
        const text = await res.body.text();
        if (res.statusCode >= 200 && res.statusCode < 300) return;
        if (!RETRYABLE.has(res.statusCode)) throw new ReportRejectedError(res.statusCode, text);
      } catch (err) {
        if (err instanceof ReportRejectedError) throw err;
        // connection reset, timeout: retry like the reconciler
      }
      this.retries++;
      await sleep(Math.min(2000, 20 * 2 ** attempt) * (0.5 + Math.random() / 2));
    }
  }

  transitions(host: SimHost, ts: Transition[]): Promise<void> {
    return this.send('POST', `/v2/hosts/${host.identity.instance_id}/transitions`, JSON.stringify({ host: host.identity, transitions: ts }));
  }

  snapshot(host: SimHost, snap: HostSnapshot): Promise<void> {
    return this.send('PUT', `/v2/hosts/${host.identity.instance_id}/snapshot`, JSON.stringify(snap));
  }

  /**
   * Runs `steps(host)` for every host round-robin with `connections` workers. A step returns the
   * host's next transitions (or null when the host is done). `rate` (requests/s over the fleet)
   * paces the steps; `until` stops early (soak).
   */
  async phase(
    hosts: SimHost[],
    step: (host: SimHost, n: number) => { transitions: Transition[]; snapshot?: boolean } | null,
    options: { rate?: number; until?: () => boolean } = {},
  ): Promise<PhaseStats> {
    const stats: PhaseStats = { requests: 0, transitions: 0, snapshots: 0, retries: 0, elapsedMs: 0, latencies: [], snapshotLatencies: [] };
    const retriesBefore = this.retries;
    const items = hosts.map((host) => ({ host, n: 0, busy: false, done: false }));
    let cursor = 0;
    let remaining = items.length;
    let ticket = 0;
    const t0 = performance.now();
    const pick = () => {
      for (let k = 0; k < items.length; k++) {
        const it = items[cursor++ % items.length];
        if (!it.busy && !it.done) return it;
      }
      return undefined;
    };
    const worker = async () => {
      while (remaining > 0 && !(options.until?.() ?? false)) {
        // Round-robin over hosts not already in flight: one request per host at a time.
        const item = pick();
        if (!item) {
          await sleep(1);
          continue;
        }
        const next = step(item.host, item.n++);
        if (next === null) {
          item.done = true;
          remaining--;
          continue;
        }
        item.busy = true;
        try {
          let start = performance.now();
          if (options.rate) {
            const due = t0 + (ticket++ * 1000) / options.rate;
            if (due > start) await sleep(due - start);
            start = due;
          }
          await this.transitions(item.host, next.transitions);
          stats.latencies.push(performance.now() - start);
          stats.requests++;
          stats.transitions += next.transitions.length;
          if (next.snapshot) {
            const s = performance.now();
            await this.snapshot(item.host, item.host.snapshot());
            stats.snapshotLatencies.push(performance.now() - s);
            stats.requests++;
            stats.snapshots++;
          }
        } finally {
          item.busy = false;
        }
      }
    };
    await Promise.all(Array.from({ length: this.connections }, worker));
    stats.elapsedMs = performance.now() - t0;
    stats.retries = this.retries - retriesBefore;
    return stats;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
