import { describe, it, expect, afterEach, vi } from 'vitest';
import { mkdtempSync, rmSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { loadCommand, ConfigError, type ReconcilerConfig } from '../config/index.js';
import { startSimulatedHost, type SimulatedHost } from '../tools/simulate-host/index.js';
import { runReconciler, health, type HealthState } from './main.js';
import { StateLockError } from './state-lock.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function until(cond: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Daemon {
  base: string;
  sim: SimulatedHost;
  stateDir: string;
  log: () => string;
  stop: () => Promise<void>;
  /** Settles when runReconciler does. */
  done: Promise<void>;
}

async function startDaemon(extra: string[] = [], shared?: { stateDir: string }): Promise<Daemon> {
  const sim = await startSimulatedHost({
    host: '127.0.0.1', agentPort: 0, imdsPort: 0, controlPort: 0, tasks: 2, containersPerTask: 2,
    churnIntervalMs: 0, cleanupAfterMs: 60_000, cluster: 'sim', instanceId: 'i-0123456789abcdef0', seed: 3,
  });
  const root = mkdtempSync(join(tmpdir(), 'reconciler-main-'));
  const stateDir = shared?.stateDir ?? join(root, 'nested', 'state'); // created by the daemon
  cleanups.push(() => rmSync(root, { recursive: true, force: true }), () => sim.close());
  const loaded = loadCommand('reconciler', [
    '--server', 'http://127.0.0.1:9', '--ecs-agent-url', sim.agentUrl, '--imds-url', sim.imdsUrl, '--docker-socket', 'none',
    // A short lock limit, so that a test of two daemons on one state dir takes about a second.
    '--state-dir', stateDir, '--state-lock-stale-after', '400ms', '--metrics-host', '127.0.0.1', '--metrics-port', '0', '--resync-interval', '50ms', '--request-timeout', '1s',
    ...extra,
  ], {});
  if (loaded.kind !== 'run') throw new Error('config did not load');
  const abort = new AbortController();
  const logStream = new PassThrough();
  let logged = '';
  const started = new Promise<string>((resolve) => {
    logStream.on('data', (c: Buffer) => {
      logged += c.toString();
      const m = /"metrics_url":"(http:\/\/127\.0\.0\.1:\d+)\/metrics"/.exec(logged);
      if (m) resolve(m[1]);
    });
  });
  const done = runReconciler(loaded.config as ReconcilerConfig, { signal: abort.signal, logStream });
  done.catch(() => undefined);
  const base = await Promise.race([started, done.then(() => Promise.reject(new Error('the daemon stopped before serving metrics')))]);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    abort.abort();
    await done;
  };
  // A test that expects the daemon to fail has asserted the failure already.
  cleanups.push(() => stop().catch(() => undefined));
  return { base, sim, stateDir, log: () => logged, stop, done };
}

describe('reconciler daemon', () => {
  it('serves /metrics with the reconciler series and /healthz 200 once the agent answered', async () => {
    const d = await startDaemon();
    expect(existsSync(d.stateDir)).toBe(true);
    await until(async () => (await fetch(`${d.base}/healthz`)).status === 200);
    const body = await (await fetch(`${d.base}/healthz`)).json();
    expect(body).toMatchObject({ status: 'ok', host_state: 'steady', problems: [] });
    const metrics = await (await fetch(`${d.base}/metrics`)).text();
    for (const name of [
      'ecs_id_mapper_reconciler_pass_duration_seconds_bucket',
      'ecs_id_mapper_reconciler_passes_total{result="ok"}',
      'ecs_id_mapper_reconciler_transitions_total{from="none",to="running"} 4',
      'ecs_id_mapper_reconciler_transitions_total{from="stopping",to="gone"} 0',
      'ecs_id_mapper_reconciler_observation_failures_total{source="imds"} 0',
      'ecs_id_mapper_reconciler_imds_v1_fallbacks_total 0',
      'ecs_id_mapper_reconciler_outbox_depth',
      'ecs_id_mapper_reconciler_outbox_bytes',
      'ecs_id_mapper_reconciler_outbox_coalesced_total 0',
      'ecs_id_mapper_reconciler_report_attempts_total{kind="transitions",result="unreachable"}',
      'ecs_id_mapper_reconciler_seconds_since_last_observation',
      'ecs_id_mapper_reconciler_seconds_since_last_report -1',
      'ecs_id_mapper_reconciler_containers{state="running"} 4',
      'ecs_id_mapper_reconciler_label_disagreements_total 0',
    ]) expect(metrics, name).toContain(name);
    expect(metrics).not.toMatch(/container_id=/);
  });

  it('collects garbage itself after a pass once its heap has grown past the headroom, and counts it', async () => {
    const d = await startDaemon(['--heap-headroom-bytes', String(1024 * 1024)]);
    const collections = async () => Number(/^ecs_id_mapper_reconciler_heap_collections_total (\d+)$/m.exec(await (await fetch(`${d.base}/metrics`)).text())?.[1]);
    await until(async () => (await fetch(`${d.base}/healthz`)).status === 200);
    const before = await collections();
    // 64 MiB more heap in use (kept reachable, so no collection V8 starts by itself can shrink it
    // before a pass looks): above any ceiling a live heap of this test process could have set.
    let held: number[][] | undefined = Array.from({ length: 80 }, () => new Array<number>(100_000).fill(1.5));
    await until(async () => (await collections()) > before);
    expect(held).toHaveLength(80);
    held = undefined;
  });

  it('turns /healthz 503 with a JSON reason when the agent keeps failing, and 200 again when it recovers', async () => {
    const d = await startDaemon();
    await until(async () => (await fetch(`${d.base}/healthz`)).status === 200);
    d.sim.setFault({ agent: '500' });
    await until(async () => (await fetch(`${d.base}/healthz`)).status === 503);
    const body = (await (await fetch(`${d.base}/healthz`)).json()) as Record<string, unknown>;
    expect(body.error).toBe('unhealthy');
    expect(body.message).toMatch(/last successful observation/);
    expect(body.host_state).toBe('degraded');
    d.sim.setFault({ agent: 'ok' });
    await until(async () => (await fetch(`${d.base}/healthz`)).status === 200);
  });

  it('turns /healthz 503 when the agent keeps failing after the wall clock was set back (an NTP step)', async () => {
    // Date.now is what an NTP step moves; the daemon's clocks are taken from it at start.
    const wall = Date.now.bind(Date);
    let offset = 0;
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => wall() + offset);
    cleanups.push(() => spy.mockRestore());
    const d = await startDaemon();
    await until(async () => (await fetch(`${d.base}/healthz`)).status === 200);
    offset = -3_600_000;
    d.sim.setFault({ agent: '500' });
    await until(async () => (await fetch(`${d.base}/healthz`)).status === 503);
    const metrics = await (await fetch(`${d.base}/metrics`)).text();
    const since = Number(/^ecs_id_mapper_reconciler_seconds_since_last_observation (\S+)$/m.exec(metrics)?.[1]);
    expect(since).toBeGreaterThanOrEqual(0);
  });

  it('answers unknown paths with 404 JSON and other methods with 405 JSON', async () => {
    const d = await startDaemon();
    const nf = await fetch(`${d.base}/nope`);
    expect(nf.status).toBe(404);
    expect(await nf.json()).toMatchObject({ error: 'not_found' });
    const post = await fetch(`${d.base}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(await post.json()).toMatchObject({ error: 'method_not_allowed' });
  });

  it('stops cleanly on abort, keeping undelivered transitions in the outbox', async () => {
    const d = await startDaemon();
    await until(() => d.log().includes('"msg":"reconciler started'));
    await until(async () => (await fetch(`${d.base}/healthz`)).status === 200);
    await d.stop();
    expect(d.log()).toContain('outbox not drained; kept for the next start');
    expect(d.log()).toContain('reconciler stopped');
    expect(existsSync(join(d.stateDir, 'outbox.jsonl'))).toBe(true);
  });

  it('says at start what it found damaged in the state dir, and counts it', async () => {
    const first = await startDaemon();
    await until(() => first.log().includes('"msg":"reconciler started'));
    await until(async () => (await fetch(`${first.base}/healthz`)).status === 200);
    await first.stop();
    const log = join(first.stateDir, 'outbox.jsonl');
    const lines = readFileSync(log, 'utf8').split('\n');
    expect(lines.length).toBeGreaterThan(2);
    lines[0] = `#${lines[0].slice(1)}`;
    writeFileSync(log, lines.join('\n'));
    writeFileSync(join(first.stateDir, 'outbox.meta.json'), '{"last_seq":');
    const second = await startDaemon([], { stateDir: first.stateDir });
    await until(() => second.log().includes('"msg":"reconciler started'));
    const warnings = second.log().split('\n').filter((l) => l.includes('"level":40')).map((l) => JSON.parse(l) as { msg: string; lines?: number; state_dir: string });
    expect(warnings.find((w) => w.msg.startsWith('1 line(s) of the outbox log were not transitions'))).toMatchObject({ lines: 1, state_dir: first.stateDir });
    expect(warnings.some((w) => w.msg.startsWith('outbox.meta.json was unreadable and was rebuilt'))).toBe(true);
    const metrics = await (await fetch(`${second.base}/metrics`)).text();
    expect(metrics).toContain('ecs_id_mapper_reconciler_outbox_repairs_total{kind="corrupt_line"} 1');
    expect(metrics).toContain('ecs_id_mapper_reconciler_outbox_repairs_total{kind="meta_rebuilt"} 1');
    expect(metrics).toContain('ecs_id_mapper_reconciler_outbox_repairs_total{kind="torn_tail"} 0');
  });

  it('waits, answering /healthz 503, while another daemon holds its state dir, and starts once that one stops', async () => {
    const first = await startDaemon();
    await until(async () => (await fetch(`${first.base}/healthz`)).status === 200);
    const second = await startDaemon([], { stateDir: first.stateDir });
    await until(() => second.log().includes('is locked by'));
    // Well past the stale limit (400 ms here): the first daemon's heartbeat keeps its lock.
    await new Promise((r) => setTimeout(r, 1000));
    expect(second.log()).not.toContain('reconciler started');
    const waiting = await fetch(`${second.base}/healthz`);
    expect(waiting.status).toBe(503);
    expect(await waiting.json()).toMatchObject({ error: 'unhealthy', message: expect.stringMatching(/^waiting for the lock on the state dir .* held by pid \d+/) });
    expect(await (await fetch(`${second.base}/metrics`)).text()).toMatch(/^ecs_id_mapper_reconciler_state_dir_lock_waiting 1$/m);

    await first.stop();
    await until(() => second.log().includes('"msg":"reconciler started'));
    await until(async () => (await fetch(`${second.base}/healthz`)).status === 200);
    const metrics = await (await fetch(`${second.base}/metrics`)).text();
    expect(metrics).toMatch(/^ecs_id_mapper_reconciler_state_dir_lock_waiting 0$/m);
    // Released cleanly, not taken over.
    expect(metrics).toMatch(/^ecs_id_mapper_reconciler_state_dir_lock_takeovers_total 0$/m);
  });

  it('stops at once when told to while it waits for the lock, leaving the holder\'s lock alone', async () => {
    const first = await startDaemon();
    const second = await startDaemon([], { stateDir: first.stateDir });
    await until(() => second.log().includes('is locked by'));
    const lock = readFileSync(join(first.stateDir, 'daemon.lock'), 'utf8');
    await second.stop();
    expect(second.log()).toContain('stopped while waiting for the state dir lock');
    expect(second.log()).not.toContain('reconciler started');
    expect(readFileSync(join(first.stateDir, 'daemon.lock'), 'utf8')).toBe(lock);
    await until(async () => (await fetch(`${first.base}/healthz`)).status === 200);
  });

  it('stops without writing, and fails with one line, when another daemon took its lock over', async () => {
    const d = await startDaemon();
    await until(async () => (await fetch(`${d.base}/healthz`)).status === 200);
    // What a waiter does when this daemon's heartbeat seemed to stop (frozen past the limit).
    rmSync(join(d.stateDir, 'daemon.lock'));
    writeFileSync(join(d.stateDir, 'daemon.lock'), '{"pid":1}\n');
    const outbox = readFileSync(join(d.stateDir, 'outbox.jsonl'));
    const error = (await d.done.catch((e: unknown) => e)) as StateLockError;
    expect(error).toBeInstanceOf(StateLockError);
    expect(error.code).toBe('ERR_STATE_LOCK_LOST');
    expect(error.message).toMatch(/was taken over by another daemon/);
    expect(d.log()).not.toContain('outbox flushed');
    expect(readFileSync(join(d.stateDir, 'outbox.jsonl'))).toEqual(outbox);
    // The other daemon's lock is left alone.
    expect(readFileSync(join(d.stateDir, 'daemon.lock'), 'utf8')).toBe('{"pid":1}\n');
  });

  it('fails to start with one readable line when the metrics port is taken', async () => {
    const d = await startDaemon();
    const port = new URL(d.base).port;
    await expect(startDaemon(['--metrics-port', port])).rejects.toThrow();
  }, 10_000);
});

describe('health', () => {
  const state = (over: Partial<{ last: number | null; full: boolean; hostState: string }>): HealthState => ({
    loop: { hostState: () => over.hostState ?? 'steady' },
    outbox: { overCapacity: () => over.full ?? false, depth: () => 3 },
    metrics: { lastObservationMs: () => (over.last === undefined ? 9_000 : over.last), lastReportMs: () => null },
    reporter: { state: () => 'idle' },
    staleAfterMs: 5_000,
    now: () => 10_000,
  });
  it('is 200 with a recent observation and room in the outbox', () => {
    expect(health(state({})).status).toBe(200);
  });
  it('is 503 before any observation, when the last one is stale, or when the outbox is full', () => {
    expect(health(state({ last: null })).body.message).toBe('no successful observation yet');
    expect(health(state({ last: 1_000 })).status).toBe(503);
    const full = health(state({ full: true }));
    expect(full.status).toBe(503);
    expect(full.body.message).toBe('outbox full');
  });
  it('is 503 while the agent answers but instance metadata does not (nothing can be reported)', () => {
    const unidentified = health(state({ hostState: 'identifying' }));
    expect(unidentified.status).toBe(503);
    expect(unidentified.body.message).toBe('the host is not identified: instance metadata (IMDS) does not answer, so nothing is reported');
    expect(health(state({ hostState: 'degraded' })).status).toBe(200);
  });
});

describe('reconciler config', () => {
  it('rejects a missing or malformed --server with one readable line', () => {
    expect(() => loadCommand('reconciler', [], {})).toThrow(ConfigError);
    expect(() => loadCommand('reconciler', ['--server', 'not a url'], {})).toThrow(/--server: not a URL/);
    expect(() => loadCommand('reconciler', ['--server', 'ftp://x'], {})).toThrow(/--server: expected an http\(s\) URL/);
    // Paths are appended to it: a query would swallow them; credentials would only be logged.
    expect(() => loadCommand('reconciler', ['--server', 'http://127.0.0.1:5001/x?y'], {})).toThrow('--server: a base URL takes no query string or fragment, got "http://127.0.0.1:5001/x?y"');
    const withPassword = (() => {
      try {
        loadCommand('reconciler', ['--server', 'http://u:s3cret@127.0.0.1:5001/'], {});
      } catch (err) {
        return (err as Error).message;
      }
    })();
    expect(withPassword).toBe('--server: a base URL takes no user name or password (http://127.0.0.1:5001/); a report token goes in --report-token');
    expect(() => loadCommand('reconciler', ['--server', 'http://x', '--imds-url', 'http://169.254.169.254/#frag'], {})).toThrow(/--imds-url: a base URL takes no query string or fragment/);
    expect(() => loadCommand('reconciler', ['--server', 'http://x', '--backoff-base', '10s', '--backoff-max', '1s'], {})).toThrow(
      '--backoff-base (10000 ms) is longer than --backoff-max (1000 ms): the first retry would wait longer than any later one',
    );
  });
});
