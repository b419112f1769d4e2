// Open-loop GET load at a fixed rate, for latency figures (bench:api). Each request has a scheduled
// start (i / rate seconds after the first) and its latency is measured from that moment, so a server
// that falls behind cannot hide its queueing (coordinated omission). Requests cycle through `paths`
// over a fixed set of keep-alive connections, one request in flight on each (no pipelining); a
// request whose time has come while every connection is busy waits for the first one free, and
// that wait is part of its latency, as it would be for a client with that many connections.
//
// The client is a few lines over `net` sockets, not an HTTP library, because on a 2-core machine
// the load generator shares the cores with the server it measures:
// - autocannon's `overallRate` stalls its own connections with a sequence of request paths (p99
//   ~80 ms against a bare Fastify route that answers in well under a millisecond);
// - undici took ~130 µs of CPU per request (the bare route: ~30), so at half the bare route's
//   max rate the generator alone kept both cores busy and p99 measured the generator (20-40 ms
//   against the bare route, pinned to its own core or not).
// Requests are pre-encoded; answers are split on their Content-Length (every route under test
// sends one; anything else counts as a failure). The thread's own busy share is reported beside
// the figures (`generatorBusy`), so a saturated generator shows. Runs in a worker thread, so it
// does not share the server's event loop.
import { connect, type Socket } from 'node:net';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { percentile } from '../tools/fleet-sim/index.js';

export interface PacedLoadOptions {
  /** Origin, e.g. http://127.0.0.1:5001 (plain HTTP). */
  origin: string;
  paths: string[];
  /** Requests per second. */
  rate: number;
  seconds: number;
  connections: number;
}

export interface PacedLoadResult {
  requests: number;
  /** Transport errors, answers without a Content-Length, and non-2xx answers. */
  failed: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Share of the measured phase the generator's thread was busy (event-loop utilisation, 0–1). */
  generatorBusy: number;
  /**
   * How late the generator itself released requests (ms after their scheduled start, p99): its own
   * timing error, in every latency above. Waiting for a free connection is not in it.
   */
  releaseLateP99Ms: number;
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

const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;

/** One keep-alive connection with at most one request in flight; answers are passed to `onAnswer`. */
class Connection {
  private buffered: Buffer = Buffer.alloc(0);
  private inFlight: number | undefined;
  broken = false;

  private constructor(
    private readonly socket: Socket,
    private readonly onAnswer: (conn: Connection, request: number, ok: boolean) => void,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    const fail = () => this.fail();
    socket.on('error', fail);
    socket.on('close', fail);
  }

  static open(host: string, port: number, onAnswer: (conn: Connection, request: number, ok: boolean) => void): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new Connection(socket, onAnswer));
      });
      socket.once('error', reject);
    });
  }

  get idle(): boolean {
    return !this.broken && this.inFlight === undefined;
  }

  send(request: number, bytes: Buffer): void {
    this.inFlight = request;
    this.socket.write(bytes);
  }

  close(): void {
    this.broken = true;
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const headerEnd = this.buffered.indexOf(HEADER_END);
    if (headerEnd < 0 || this.inFlight === undefined) return;
    const head = this.buffered.toString('latin1', 0, headerEnd);
    const length = CONTENT_LENGTH.exec(head);
    if (!length) return this.fail();
    const end = headerEnd + HEADER_END.length + Number(length[1]);
    if (this.buffered.length < end) return;
    const status = Number(head.slice(9, 12));
    this.buffered = this.buffered.subarray(end);
    const request = this.inFlight;
    this.inFlight = undefined;
    this.onAnswer(this, request, status >= 200 && status < 300);
  }

  private fail(): void {
    if (this.broken) return;
    this.broken = true;
    this.socket.destroy();
    const request = this.inFlight;
    this.inFlight = undefined;
    if (request !== undefined) this.onAnswer(this, request, false);
  }
}

/**
 * One paced load: `rate` requests per second for `warmupSeconds`, not measured, then for `seconds`;
 * returns the latency in ms of each request of the measured part, and the thread's busy share
 * over that part.
 */
async function paced(options: PacedLoadOptions, warmupSeconds: number, requests: Buffer[]): Promise<{ latencies: Float64Array; releaseLate: Float64Array; failed: number; busy: number }> {
  const url = new URL(options.origin);
  const warmup = Math.floor(options.rate * warmupSeconds);
  const total = warmup + Math.max(1, Math.floor(options.rate * options.seconds));
  const latencies = new Float64Array(total - warmup);
  const releaseLate = new Float64Array(total - warmup);
  let failed = 0;
  let answered = 0;
  let allAnswered: () => void = () => {};
  const done = new Promise<void>((resolve) => (allAnswered = resolve));
  const waiting: number[] = [];
  let nextWaiting = 0;
  const start = performance.now() + 5;
  const scheduled = (i: number) => start + (i * 1000) / options.rate;
  const dispatch = (conn: Connection, i: number) => conn.send(i, requests[i % requests.length]);
  const answer = (i: number, ok: boolean) => {
    if (i >= warmup) {
      latencies[i - warmup] = performance.now() - scheduled(i);
      if (!ok) failed++;
    }
    if (++answered === total) allAnswered();
  };
  let conns: Connection[] = [];
  // With every connection broken, nothing can answer what waits: it has failed.
  const failStranded = () => {
    if (!conns.every((c) => c.broken)) return;
    while (nextWaiting < waiting.length) answer(waiting[nextWaiting++], false);
  };
  const onAnswer = (conn: Connection, i: number, ok: boolean) => {
    answer(i, ok);
    if (conn.idle && nextWaiting < waiting.length) dispatch(conn, waiting[nextWaiting++]);
    if (conn.broken) failStranded();
  };
  conns = await Promise.all(Array.from({ length: options.connections }, () => Connection.open(url.hostname, Number(url.port || 80), onAnswer)));
  let elu0 = performance.eventLoopUtilization();
  napped = 0;
  let measuring = warmup === 0;
  let next = 0;
  while (next < total) {
    const now = performance.now();
    if (!measuring && next >= warmup) {
      measuring = true;
      elu0 = performance.eventLoopUtilization();
      napped = 0;
    }
    // Every request whose time has come goes out now, however late the loop woke up.
    while (next < total && scheduled(next) <= now) {
      if (next >= warmup) releaseLate[next - warmup] = now - scheduled(next);
      const free = conns.find((c) => c.idle);
      if (free && nextWaiting === waiting.length) dispatch(free, next);
      else waiting.push(next);
      next++;
    }
    if (conns.every((c) => c.broken)) {
      failStranded();
      for (; next < total; next++) answer(next, false);
      break;
    }
    await untilDue(scheduled(next));
  }
  await done;
  const elu = performance.eventLoopUtilization(elu0);
  const busy = Math.max(0, elu.active - napped) / (elu.active + elu.idle);
  for (const c of conns) c.close();
  return { latencies, releaseLate, failed, busy };
}

const napCell = new Int32Array(new SharedArrayBuffer(4));
/** Time spent napping (ms): idle, though the event loop counts it as busy. */
let napped = 0;
const immediate = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Returns at `due` (a performance.now() time), having let the thread's I/O run meanwhile. A timer
 * alone cannot pace: Node's timers fire a millisecond late at best, so at 10,000 requests/s they
 * released them in bursts of a dozen, each request charged up to a millisecond it spent in no server
 * (p50 1.2-1.4 ms against either server). Within the last 1.5 ms the thread instead naps 100 µs at a
 * time (a futex wait, no CPU) and runs its I/O between naps, so answers are timed at most that late.
 */
export async function untilDue(due: number): Promise<void> {
  let wait = due - performance.now();
  if (wait > 1.5) {
    await sleep(wait - 1.5);
    wait = due - performance.now();
  }
  while (wait > 0) {
    const t0 = performance.now();
    Atomics.wait(napCell, 0, 0, Math.min(wait, 0.1));
    napped += performance.now() - t0;
    await immediate();
    wait = due - performance.now();
  }
}

async function run(options: PacedLoadOptions): Promise<PacedLoadResult> {
  const host = new URL(options.origin).host;
  const requests = options.paths.map((path) => Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 'latin1'));
  // The first second is a warm-up at the same rate, not measured: both sides' JIT settle (without
  // it the first second's requests queued ~20 ms behind a bare Fastify route). It is one load with
  // the measured part, on the same connections: as a load of its own, ended before the measured
  // one started on new connections, the first 100-200 ms of the measured part queued 10-25 ms
  // behind the bare route in half of the rounds (the generator's new phase, not the server).
  const { latencies, releaseLate, failed, busy } = await paced(options, 1, requests);
  const all = Array.from(latencies);
  return {
    requests: all.length,
    failed,
    p50Ms: percentile(all, 50),
    p99Ms: percentile(all, 99),
    maxMs: all.reduce((m, v) => Math.max(m, v), 0),
    generatorBusy: busy,
    releaseLateP99Ms: percentile(Array.from(releaseLate), 99),
  };
}

if (!isMainThread && parentPort && (workerData as { origin?: unknown } | null)?.origin) {
  const port = parentPort;
  // A failure (nothing listening) is an unhandled rejection, which ends the worker with an 'error'
  // event carrying it: pacedLoad rejects with it.
  void run(workerData as PacedLoadOptions).then((result) => port.postMessage(result));
}
