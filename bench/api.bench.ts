// API lookup benchmark: `GET /query/container_id/<id>` on the real server (SQLite store with 10k
// records, every plugin and hook on) against a bare Fastify route answering a constant string,
// both on loopback and measured in the same run. Then latency at half of each one's max rate
// (a fixed `overallRate`, so coordinated omission is corrected). autocannon runs in a worker thread
// so the load generator does not share the server's event loop.
//
// Goals (issue 2): lookup ≥ 0.8 × bare requests/s; lookup p99 ≤ 5 ms at half its max rate.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { parseLinks } from '../config/links.js';
import { buildServer } from '../api/server.js';
import { openStore } from '../storage/index.js';
import type { Store } from '../storage/store.js';
import { containerId, hostIdentity, instanceId, snapshot, snapshotContainer, taskArn, taskId } from '../storage/store.fixtures.js';
import { writeBenchmarkSection } from './report.js';

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export interface ApiBenchOptions {
  /** Shorter runs (the whole of `npm run bench` must finish within 5 minutes in quick mode). */
  quick: boolean;
  /** Records in the store (default 10,000). */
  records?: number;
}

export interface ApiBenchResult {
  records: number;
  bareRps: number;
  lookupRps: number;
  /** The same lookup with the in-memory task cache off: the store answers every request. */
  uncachedLookupRps: number;
  ratio: number;
  bareP99AtHalfMs: number;
  lookupP99AtHalfMs: number;
  lookupP50AtHalfMs: number;
}

const HOSTS = 100;

async function seed(store: Store, records: number): Promise<string[]> {
  const perHost = Math.ceil(records / HOSTS);
  const ids: string[] = [];
  for (let h = 0; h < HOSTS && ids.length < records; h++) {
    const host = hostIdentity({ instance_id: instanceId(h), instance_ip: `10.0.${h >> 8}.${h & 255}` });
    const containers = [];
    for (let c = 0; c < perHost && ids.length < records; c++) {
      const id = containerId(`${h}/${c}`);
      ids.push(id);
      containers.push(snapshotContainer('running', { container_id: id, task_arn: taskArn(taskId(`${h}/${c >> 1}`)), docker_name: `ecs-web-3-app-${id.slice(0, 20)}` }));
    }
    await store.replaceSnapshot(snapshot(host, 1, containers), new Date());
  }
  return ids;
}

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address !== 'object') throw new Error('no address');
  return `http://127.0.0.1:${address.port}`;
}

async function load(url: string, paths: string[], seconds: number, overallRate?: number): Promise<AutocannonResult> {
  const result = await autocannon({
    url,
    connections: 10,
    pipelining: 1,
    duration: seconds,
    workers: 1,
    requests: paths.map((path) => ({ method: 'GET', path })),
    ...(overallRate ? { overallRate: Math.max(1, Math.floor(overallRate)) } : {}),
  });
  if (result.errors > 0 || result.timeouts > 0 || result.non2xx > 0) {
    throw new Error(`benchmark requests failed: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx`);
  }
  return result;
}

export async function runApiBench(options: ApiBenchOptions): Promise<ApiBenchResult> {
  const records = options.records ?? 10_000;
  // Many short interleaved slices rather than one long run each: on a shared machine, load from
  // elsewhere then hits both sides alike.
  const seconds = options.quick ? 2 : 5;
  const rounds = options.quick ? 3 : 6;
  const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-bench-api-'));
  // As `ecs-id-mapper server` runs it: the store instrumented on the app's registry.
  const registry = new Registry();
  const store = await openStore({ backend: 'sqlite', path: join(dir, 'bench.db') }, { registry });
  // The server as `ecs-id-mapper server` builds it with default flags; only the task cache differs.
  const server = (serverRegistry: Registry, taskCacheTtlMs: number) =>
    buildServer({
      store,
      registry: serverRegistry,
      logger: false,
      links: parseLinks([]),
      cadvisorPort: 8080,
      hostStaleAfterMs: 15 * 60_000,
      bodyLimitBytes: 1024 * 1024,
      reportRateLimitPerMinute: 600,
      taskCacheTtlMs,
    });
  // As `--cache-ttl` defaults: the text lookup of a full id answers from memory for 5 s.
  const mapper = await server(registry, 5_000);
  const uncached = await server(new Registry(), 0);
  const bare = Fastify({ logger: false });
  bare.get('/bare', async (_req, reply) => reply.type('text/plain; charset=utf-8').send('0123456789abcdef0123456789abcdef'));
  try {
    const ids = await seed(store, records);
    const lookupPaths = ids.filter((_, i) => i % Math.max(1, Math.floor(ids.length / 500)) === 0).map((id) => `/query/container_id/${id}`);
    const mapperUrl = await listen(mapper);
    const bareUrl = await listen(bare);
    const uncachedUrl = await listen(uncached);

    // Warm-up: JIT, SQLite page cache, connection setup.
    await load(mapperUrl, lookupPaths, 2);
    await load(bareUrl, ['/bare'], 2);
    await load(uncachedUrl, lookupPaths, 2);

    // Interleaved rounds so drift on a shared machine hits both alike.
    let bareTotal = 0;
    let lookupTotal = 0;
    let uncachedTotal = 0;
    for (let r = 0; r < rounds; r++) {
      bareTotal += (await load(bareUrl, ['/bare'], seconds)).requests.average;
      lookupTotal += (await load(mapperUrl, lookupPaths, seconds)).requests.average;
      uncachedTotal += (await load(uncachedUrl, lookupPaths, seconds)).requests.average;
    }
    const bareRps = bareTotal / rounds;
    const lookupRps = lookupTotal / rounds;

    const bareHalf = await load(bareUrl, ['/bare'], seconds, bareRps / 2);
    const lookupHalf = await load(mapperUrl, lookupPaths, seconds, lookupRps / 2);
    return {
      records,
      bareRps,
      lookupRps,
      uncachedLookupRps: uncachedTotal / rounds,
      ratio: lookupRps / bareRps,
      bareP99AtHalfMs: bareHalf.latency.p99,
      lookupP99AtHalfMs: lookupHalf.latency.p99,
      lookupP50AtHalfMs: lookupHalf.latency.p50,
    };
  } finally {
    await mapper.close();
    await uncached.close();
    await bare.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function apiBenchMarkdown(r: ApiBenchResult, quick: boolean): string {
  const ok = (pass: boolean) => (pass ? 'met' : '**not met**');
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  return `Lookup \`GET /query/container_id/<64-hex id>\` (text answer) on the full server — SQLite store with ${fmt(r.records)} records on disk (WAL), metrics hook, rate-limit plugin, OpenAPI registered — against a bare Fastify route answering a constant 32-byte string. autocannon (10 connections, worker thread) on loopback, ${quick ? 'quick mode: 3 interleaved slices of 2 s' : '6 interleaved slices of 5 s'} per side for the max rate, one slice each at half rate.

| figure | lookup | bare Fastify (baseline) | result | goal |
|---|---|---|---|---|
| max requests/s | ${fmt(r.lookupRps)} | ${fmt(r.bareRps)} | ${r.ratio.toFixed(2)} × bare | ≥ 0.80 × — ${ok(r.ratio >= 0.8)} |
| max requests/s, task cache off (SQLite on every request) | ${fmt(r.uncachedLookupRps)} | ${fmt(r.bareRps)} | ${(r.uncachedLookupRps / r.bareRps).toFixed(2)} × bare | (informative) |
| p99 latency at half of max rate | ${r.lookupP99AtHalfMs.toFixed(2)} ms (p50 ${r.lookupP50AtHalfMs.toFixed(2)} ms) | ${r.bareP99AtHalfMs.toFixed(2)} ms | | ≤ 5 ms — ${ok(r.lookupP99AtHalfMs <= 5)} |

The text lookup of a full container id answers from an in-memory cache of container → task id
(a container never changes task; entries live \`--cache-ttl\`, 5 s by default, so purged records stop
answering); the third row shows the same route with the cache off, every request reaching SQLite.

Run alone with \`npm run bench:api\` (\`-- --quick\` for the short version).`;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const quick = process.argv.includes('--quick');
  runApiBench({ quick })
    .then((result) => {
      console.log(JSON.stringify(result));
      writeBenchmarkSection('api', 'API lookups vs bare Fastify', apiBenchMarkdown(result, quick));
    })
    .catch((err: Error) => {
      console.error(`bench:api: ${err.message}`);
      process.exitCode = 1;
    });
}
