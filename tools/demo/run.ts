// `npm run demo`: the whole system on loopback in one process. The server (in-memory SQLite), a
// simulated ECS host with churn, and a reconciler on that host reporting to the server. It prints
// lookup URLs that work once the first containers are mapped, then runs until SIGINT/SIGTERM.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runServer } from '../../api/main.js';
import { loadCommand, type DemoConfig, type ReconcilerConfig, type ServerConfig } from '../../config/index.js';
import { runReconciler } from '../../reconciler/main.js';
import { startSimulatedHost } from '../simulate-host/index.js';
import { untilStopped } from '../../cli/until-stopped.js';

export interface DemoOptions {
  /** Stops the demo (tests); SIGINT/SIGTERM always do. */
  signal?: AbortSignal;
  /** Where the URLs are printed (default stdout). */
  out?: NodeJS.WritableStream;
  /** How long to wait for the first mapped containers before giving up. */
  readyTimeoutMs?: number;
}

interface Running {
  done: Promise<void>;
  stop(): Promise<void>;
}

/** Starts a runner whose log announces its URL; resolves with the URL once it appears. */
async function startLogged(
  start: (signal: AbortSignal, logStream: NodeJS.WritableStream) => Promise<void>,
  urlPattern: RegExp,
  what: string,
): Promise<Running & { url: string }> {
  const abort = new AbortController();
  const logStream = new PassThrough();
  let logged = '';
  const announced = new Promise<string>((resolve) => {
    logStream.on('data', (chunk: Buffer) => {
      // Keep only the tail: the demo runs for hours.
      logged = (logged + chunk.toString('utf8')).slice(-64 * 1024);
      const match = urlPattern.exec(logged);
      if (match) resolve(match[1]);
    });
  });
  const done = start(abort.signal, logStream);
  const url = await Promise.race([announced, done.then(() => Promise.reject(new Error(`${what} stopped at start:\n${logged.slice(-2000)}`)))]);
  return {
    url,
    done,
    async stop() {
      abort.abort();
      await done;
    },
  };
}

async function startDemoServer(port: number): Promise<Running & { url: string }> {
  const loaded = loadCommand('server', ['--host', '127.0.0.1', '--port', String(port), '--store', 'sqlite::memory:', '--log-level', 'info'], {});
  if (loaded.kind !== 'run') throw new Error('server config did not load');
  return startLogged((signal, logStream) => runServer(loaded.config as ServerConfig, { signal, logStream }), /"url":"(http:\/\/127\.0\.0\.1:\d+)"/, 'server');
}

async function waitForContainers(serverUrl: string, timeoutMs: number, signal?: AbortSignal): Promise<Array<Record<string, string>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    signal?.throwIfAborted();
    const res = await fetch(`${serverUrl}/v2/containers?state=running&limit=20`).catch(() => undefined);
    if (res?.ok) {
      const body = (await res.json()) as { items: Array<Record<string, string>> };
      if (body.items.length > 0) return body.items;
    }
    if (Date.now() > deadline) throw new Error(`no container was mapped within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `config.port` is tried first; when it is taken the server takes any free port. */
export async function runDemo(config: DemoConfig, options: DemoOptions = {}): Promise<void> {
  const out = options.out ?? process.stdout;
  const stopping: Array<() => Promise<void>> = [];
  // Stops on Ctrl-C/SIGTERM, the caller's signal, or after --exit-after, from the first moment:
  // a Ctrl-C while starting up must not leave the state directory behind, nor wait out the
  // readiness timeout against a server it already stopped.
  const stopDemo = new AbortController();
  const onCallerAbort = () => stopDemo.abort();
  if (options.signal?.aborted) stopDemo.abort();
  else options.signal?.addEventListener('abort', onCallerAbort, { once: true });
  const stopped = untilStopped(stopDemo.signal).then(() => stopDemo.abort());
  const stateDir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-demo-'));
  try {
    let server: Running & { url: string };
    try {
      server = await startDemoServer(config.port);
    } catch {
      server = await startDemoServer(0); // the preferred port is taken
    }
    stopping.push(() => server.stop());

    const host = await startSimulatedHost({
      host: '127.0.0.1', agentPort: 0, imdsPort: 0, controlPort: 0, tasks: config.tasks, containersPerTask: 2, churnIntervalMs: config.churnIntervalMs,
      cleanupAfterMs: 60_000, cluster: 'demo', instanceId: 'i-0de30000000000001', seed: 1,
      // As `simulate-host` by default: a started task is listed before its containers exist, as the real agent does.
      pendingForMs: 1000,
    });
    stopping.unshift(() => host.close());

    const loaded = loadCommand('reconciler', [
      '--server', server.url, '--ecs-agent-url', host.agentUrl, '--imds-url', host.imdsUrl, '--docker-socket', 'none',
      '--state-dir', stateDir, '--metrics-host', '127.0.0.1', '--metrics-port', '0', '--resync-interval', `${config.resyncIntervalMs}ms`, '--full-sync-interval', '1m',
      '--log-level', 'info',
    ], {});
    if (loaded.kind !== 'run') throw new Error('reconciler config did not load');
    const reconciler = await startLogged(
      (signal, logStream) => runReconciler(loaded.config as ReconcilerConfig, { signal, logStream }),
      /"metrics_url":"(http:\/\/127\.0\.0\.1:\d+)\/metrics"/,
      'reconciler',
    );
    stopping.unshift(() => reconciler.stop());

    const [first] = await waitForContainers(server.url, options.readyTimeoutMs ?? 30_000, stopDemo.signal);
    const shortId = first.container_id.slice(0, 12);
    out.write(
      [
        `ECS ID Mapper demo: server, simulated ECS host (${config.tasks} tasks x 2 containers, ${config.churnIntervalMs > 0 ? `churn every ${config.churnIntervalMs / 1000} s` : 'no churn'}) and reconciler.`,
        '',
        `  lookup page         ${server.url}/?q=${shortId}`,
        `  original API        ${server.url}/query/container_id/${shortId}  (and /_all, /cadvisor, /urls)`,
        `  a task's containers ${server.url}/query/task_id/${first.task_id}`,
        `  by container id     ${server.url}/v2/lookup/${shortId}`,
        `  by task id          ${server.url}/v2/lookup/${first.task_id}`,
        `  by task ARN         ${server.url}/v2/lookup/${encodeURIComponent(first.task_arn)}`,
        `  by docker name      ${server.url}/v2/lookup/${encodeURIComponent(first.docker_name)}`,
        `  history             ${server.url}/v2/containers/${shortId}/history`,
        `  all containers      ${server.url}/v2/containers`,
        `  hosts               ${server.url}/v2/hosts`,
        `  this host           ${server.url}/v2/hosts/${first.instance_id}`,
        `  from a terminal     ./bin/ecs-id-mapper lookup ${first.instance_id} --server ${server.url}`,
        `  server metrics      ${server.url}/metrics`,
        `  reconciler metrics  ${reconciler.url}/metrics`,
        `  simulated host      ${host.controlUrl}/state  (POST ${host.controlUrl}/faults {"agent":"500"} to break the agent)`,
        '',
        config.exitAfterMs > 0 ? `Stops by itself in ${config.exitAfterMs / 1000} s (Ctrl-C stops it sooner).` : 'Ctrl-C stops everything.',
        '',
      ].join('\n'),
    );

    const timer = config.exitAfterMs > 0 ? setTimeout(() => stopDemo.abort(), config.exitAfterMs) : undefined;
    await stopped;
    clearTimeout(timer);
  } catch (err) {
    // Stopped while starting: what failed then is the stop itself, not an error to report.
    if (!stopDemo.signal.aborted) throw err;
  } finally {
    options.signal?.removeEventListener('abort', onCallerAbort);
    stopDemo.abort(); // releases the signal listeners when it ended otherwise
    for (const stop of stopping) await stop().catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  }
}
