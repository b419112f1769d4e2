// The reconciler end to end: a simulated ECS host (agent v1 + IMDSv2 on loopback, scripted churn),
// the real daemon, and the real server on a SQLite file. After churn, a server outage and kill -9
// of the reconciler, the server's records must equal the simulated truth and every container's
// history must be one consistent chain with each transition exactly once.
import { describe, it, expect, afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { buildServer } from '../api/server.js';
import { parseLinks } from '../config/links.js';
import { loadCommand, type ReconcilerConfig } from '../config/index.js';
import { openStore, type Store } from '../storage/index.js';
import { runReconciler } from '../reconciler/main.js';
import { startSimulatedHost, type SimulatedHost, type SimTask } from '../tools/simulate-host/index.js';
import type { LifecycleState } from '../wire/index.js';

const INSTANCE_ID = 'i-0123456789abcdef0';
const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The real server (buildServer + SQLite file) listening on loopback; restartable on the same port. */
class Api {
  store!: Store;
  app!: FastifyInstance;
  port = 0;
  constructor(private readonly dbPath: string) {}
  async start(): Promise<this> {
    this.store = await openStore({ backend: 'sqlite', path: this.dbPath });
    this.app = await buildServer({
      store: this.store, registry: new Registry(), logger: false, links: parseLinks([]), cadvisorPort: 8080,
      hostStaleAfterMs: 15 * 60_000, bodyLimitBytes: 16 * 1024 * 1024, reportRateLimitPerMinute: 1_000_000,
    });
    await this.app.listen({ host: '127.0.0.1', port: this.port });
    const addr = this.app.server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : this.port;
    return this;
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  async stop(): Promise<void> {
    await this.app.close();
    await this.store.close();
  }
}

/** What the server should hold: every container ever listed, in its current lifecycle state. */
class Truth {
  readonly everSeen = new Map<string, string>(); // container id → task arn
  readonly seenAt = new Map<string, [number, number, string]>();
  observe(tasks: SimTask[]): void {
    for (const t of tasks) for (const c of t.containers) {
      this.everSeen.set(c.docker_id, t.arn);
      const s = this.seenAt.get(c.docker_id);
      this.seenAt.set(c.docker_id, [s?.[0] ?? Date.now(), Date.now(), `${t.known_status}/${t.desired_status}`]);
    }
  }
  expected(tasks: SimTask[]): Map<string, LifecycleState> {
    const now = new Map<string, LifecycleState>();
    for (const t of tasks) {
      const state: LifecycleState =
        t.known_status === 'STOPPED' ? 'stopped' : t.known_status === 'RUNNING' ? (t.desired_status === 'STOPPED' ? 'stopping' : 'running') : 'pending';
      for (const c of t.containers) now.set(c.docker_id, state);
    }
    const out = new Map<string, LifecycleState>();
    for (const id of this.everSeen.keys()) out.set(id, now.get(id) ?? 'gone');
    return out;
  }
}

async function serverStates(store: Store): Promise<Map<string, { state: LifecycleState; task_arn: string | null }>> {
  const page = await store.listContainers({ instance_id: INSTANCE_ID }, { limit: 1000 });
  return new Map(page.items.map((r) => [r.container_id, { state: r.state, task_arn: r.task_arn }]));
}

/** Waits until the server's records equal the truth; returns the last difference on timeout. */
async function converge(api: Api, sim: SimulatedHost, truth: Truth, timeoutMs = 45_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let diff: unknown[] = [];
  while (Date.now() < end) {
    const tasks = sim.state;
    truth.observe(tasks);
    const want = truth.expected(tasks);
    const have = await serverStates(api.store);
    diff = [];
    for (const [id, state] of want) {
      const got = have.get(id);
      if (!got || got.state !== state || got.task_arn !== truth.everSeen.get(id)) diff.push({ id: id.slice(0, 12), want: state, got: got?.state, arn: got?.task_arn === truth.everSeen.get(id), seen: truth.seenAt.get(id) });
    }
    for (const id of have.keys()) if (!want.has(id)) diff.push({ id: id.slice(0, 12), unexpected: have.get(id)!.state });
    if (diff.length === 0) return;
    await sleep(50);
  }
  throw new Error(`server records never matched the simulated truth: ${JSON.stringify(diff.slice(0, 10))}`);
}

/** Every container's history is one chain (from = previous to), each seq at most once, no snapshot repairs. */
async function expectHistoryExactlyOnce(store: Store, truth: Truth): Promise<number> {
  const seqs = new Set<number>();
  let total = 0;
  for (const id of truth.everSeen.keys()) {
    const history = await store.history(id);
    const record = await serverStates(store).then((m) => m.get(id));
    expect(history.length, `history of ${id.slice(0, 12)}`).toBeGreaterThan(0);
    let previous: LifecycleState | null = null;
    for (const h of history) {
      expect(h.reason, `a snapshot had to repair ${id.slice(0, 12)}`).not.toBe('snapshot');
      expect(h.from, `chain of ${id.slice(0, 12)}: ${JSON.stringify(history.map((x) => [x.seq, x.from, x.to, x.reason]))}`).toBe(previous);
      if (h.seq !== null) {
        expect(seqs.has(h.seq), `seq ${h.seq} recorded twice`).toBe(false);
        seqs.add(h.seq);
      }
      previous = h.to;
      total++;
    }
    expect(previous).toBe(record?.state);
  }
  return total;
}

async function startSim(cleanupAfterMs = 300): Promise<SimulatedHost> {
  const sim = await startSimulatedHost({
    host: '127.0.0.1', agentPort: 0, imdsPort: 0, controlPort: 0, tasks: 4, containersPerTask: 2,
    churnIntervalMs: 0, cleanupAfterMs, cluster: 'sim', instanceId: INSTANCE_ID, seed: 11,
  });
  cleanups.push(() => sim.close());
  return sim;
}

function reconcilerArgs(server: string, sim: SimulatedHost, stateDir: string, logLevel = 'warn'): string[] {
  return [
    '--server', server, '--ecs-agent-url', sim.agentUrl, '--imds-url', sim.imdsUrl, '--docker-socket', 'none',
    // Restarted after kill -9 on the same state dir: the killed daemon's lock goes stale in 300 ms.
    '--state-dir', stateDir, '--state-lock-stale-after', '300ms', '--metrics-host', '127.0.0.1', '--metrics-port', '0', '--resync-interval', '40ms',
    '--request-timeout', '1s', '--backoff-base', '20ms', '--backoff-max', '200ms', '--batch-size', '7', '--log-level', logLevel,
  ];
}

async function churn(sim: SimulatedHost, truth: Truth, rounds: number, gapMs = 70): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    sim.tick();
    truth.observe(sim.state);
    await sleep(gapMs);
  }
}

describe('reconciler against a simulated host and the real server', () => {
  it('converges after churn and after a server outage, with every transition in history exactly once', async () => {
    const api = await new Api(join(tempDir('rsim-db-'), 'mapper.sqlite')).start();
    let apiUp = true;
    cleanups.push(() => (apiUp ? api.stop() : undefined));
    // Stopped tasks stay listed for a second (the real agent keeps them for hours): a polling
    // daemon stalled longer than a container's whole life (a loaded CI machine) cannot know it.
    const sim = await startSim(1000);
    const truth = new Truth();
    truth.observe(sim.state);

    const loaded = loadCommand('reconciler', reconcilerArgs(api.url, sim, tempDir('rsim-state-')), {});
    if (loaded.kind !== 'run') throw new Error('reconciler config did not load');
    const abort = new AbortController();
    const done = runReconciler(loaded.config as ReconcilerConfig, { signal: abort.signal, logStream: new PassThrough().resume() });
    cleanups.push(async () => {
      abort.abort();
      await done;
    });
    // Churn only once the daemon is up and has reported: under load its start alone took longer
    // than the first churned containers lived, and they were never seen (CI, 2026-12-05).
    await converge(api, sim, truth);

    await churn(sim, truth, 12);
    await converge(api, sim, truth);

    // The server goes away; the host keeps changing; the outbox holds everything.
    await api.stop();
    apiUp = false;
    await churn(sim, truth, 10);
    await api.start(); // same SQLite file, same port
    apiUp = true;
    await converge(api, sim, truth);
    const entries = await expectHistoryExactlyOnce(api.store, truth);
    expect(entries).toBeGreaterThan(truth.everSeen.size);
    expect([...truth.expected(sim.state).values()]).toContain('gone');
  });

  it('survives kill -9 of the reconciler process mid-report: nothing lost, nothing reported twice', async () => {
    const cli = join(repoRoot, 'bin/ecs-id-mapper');
    const built = join(repoRoot, 'dist/reconciler/main.js');
    if (!existsSync(built)) throw new Error('dist/ is not built: run `npm run build` (npm test does) before this test');
    const api = await new Api(join(tempDir('rsim-db-'), 'mapper.sqlite')).start();
    cleanups.push(() => api.stop());
    // Stopped tasks stay listed long enough that a restarted reconciler still sees them: a
    // container born and cleaned up entirely while no reconciler runs cannot be known (a restart
    // takes 1-3 s on a loaded CI machine).
    const sim = await startSim(5000);
    const truth = new Truth();
    truth.observe(sim.state);
    const stateDir = tempDir('rsim-state-');

    let child: ChildProcess | null = null;
    /** Spawns `ecs-id-mapper reconciler` and resolves once it logged its start line. */
    const spawnReconciler = async () => {
      const p = spawn(process.execPath, [cli, 'reconciler', ...reconcilerArgs(api.url, sim, stateDir, 'info')], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let stderr = '';
      p.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      await new Promise<void>((resolve, reject) => {
        p.stdout!.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('"msg":"reconciler started')) resolve();
        });
        p.once('exit', (code) => reject(new Error(`reconciler exited ${code} before starting: ${stderr}`)));
      });
      return p;
    };
    const kill9 = async (p: ChildProcess) => {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
    };
    cleanups.push(async () => {
      if (child && child.exitCode === null && child.signalCode === null) await kill9(child);
    });

    child = await spawnReconciler();
    await churn(sim, truth, 8);
    for (let round = 0; round < 2; round++) {
      // Kill while reports are in flight: a tick's changes are being appended and sent right now.
      sim.tick();
      truth.observe(sim.state);
      await sleep(45 + round * 10);
      await kill9(child);
      await churn(sim, truth, 3, 40);
      child = await spawnReconciler();
      await churn(sim, truth, 4);
    }
    // Let the stopped tasks be cleaned up, so the end state has gone containers too.
    await churn(sim, truth, 10, 600);
    await converge(api, sim, truth);
    expect([...truth.expected(sim.state).values()]).toContain('gone');
    await expectHistoryExactlyOnce(api.store, truth);

    // A clean stop (SIGTERM) exits 0.
    const exit = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
  });
});
