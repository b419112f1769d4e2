// Open-loop GET load at a fixed rate, for latency figures (bench:api). Each request has a scheduled
// start (i / rate seconds after the first) and its latency is measured from that moment, so a server
// that falls behind cannot hide its queueing (coordinated omission). Requests cycle through `paths`.
//
// Why not autocannon's `overallRate`: with a sequence of request paths it stalls its own connections
// (p99 ~80 ms against a bare Fastify route that answers in well under a millisecond, with the
// server's event loop never delayed more than ~10 ms; one path alone: ~8 ms), which measured the
// load generator, not the server. Runs in a worker thread, so it does not share the server's event loop.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { percentile } from '../tools/fleet-sim/index.js';

export interface PacedLoadOptions {
  /** Origin, e.g. http://127.0.0.1:5001 */
  origin: string;
  paths: string[];
  /** Requests per second. */
  rate: number;
  seconds: number;
  connections: number;
}

export interface PacedLoadResult {
  requests: number;
  /** Transport errors and non-2xx answers. */
  failed: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Runs the load in a worker thread and resolves with its latency figures. */
export function pacedLoad(options: PacedLoadOptions): Promise<PacedLoadResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: options });
    worker.once('message', (result: PacedLoadResult) => resolve(result));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`paced load worker exited with code ${code}`));
    });
  });
}

/** One paced phase: `rate` requests per second for `seconds`; returns each request's latency in ms. */
async function paced(pool: Pool, paths: string[], rate: number, seconds: number): Promise<{ latencies: Float64Array; failed: number }> {
  const total = Math.max(1, Math.floor(rate * seconds));
  const latencies = new Float64Array(total);
  let failed = 0;
  const inFlight: Promise<void>[] = [];
  const start = performance.now() + 5;
  const scheduled = (i: number) => start + (i * 1000) / rate;
  const send = (i: number) =>
    pool
      .request({ method: 'GET', path: paths[i % paths.length] })
      .then(async (res) => {
        await res.body.dump();
        if (res.statusCode < 200 || res.statusCode >= 300) failed++;
      })
      .catch(() => {
        failed++;
      })
      .finally(() => {
        latencies[i] = performance.now() - scheduled(i);
      });
  let next = 0;
  while (next < total) {
    const now = performance.now();
    // Every request whose time has come goes out now, however late the loop woke up.
    while (next < total && scheduled(next) <= now) inFlight.push(send(next++));
    const wait = scheduled(next) - performance.now();
    if (wait > 0) await sleep(Math.max(0, wait - 0.5));
  }
  await Promise.all(inFlight);
  return { latencies, failed };
}

async function run(options: PacedLoadOptions): Promise<PacedLoadResult> {
  const pool = new Pool(options.origin, { connections: options.connections, pipelining: 1 });
  // Warm-up at the same rate, not measured: connections open and both sides' JIT settle (without
  // it the first second's requests queued ~20 ms behind a bare Fastify route).
  await paced(pool, options.paths, options.rate, 1);
  const { latencies, failed } = await paced(pool, options.paths, options.rate, options.seconds);
  await pool.close();
  const all = Array.from(latencies);
  return { requests: all.length, failed, p50Ms: percentile(all, 50), p99Ms: percentile(all, 99), maxMs: all.reduce((m, v) => Math.max(m, v), 0) };
}

if (!isMainThread && parentPort && (workerData as { origin?: unknown } | null)?.origin) {
  const port = parentPort;
  run(workerData as PacedLoadOptions).then((result) => port.postMessage(result));
}
