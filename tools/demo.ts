// `npm run demo` / `ecs-id-mapper demo`: the whole system on one machine, as an operator would run it —
// three real processes of the one executable: a server on an embedded store in a temp dir, a simulated
// ECS host (agent introspection API + IMDSv2 on loopback, with churn), and a reconciler pointed at both.
// Once the server answers lookups for the simulated containers, it prints URLs that work.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import type { DemoConfig } from '../config/index.js';

const BIN = fileURLToPath(new URL('../../bin/ecs-id-mapper', import.meta.url));

interface Child {
  name: string;
  proc: ChildProcess;
  /** Resolves with the first stdout JSON line for which `pick` returns a value. */
  first<T>(pick: (line: Record<string, unknown>) => T | undefined, timeoutMs: number): Promise<T>;
}

function start(name: string, args: string[], out: NodeJS.WritableStream): Child {
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const waiters: Array<(line: Record<string, unknown>) => boolean> = [];
  createInterface({ input: proc.stdout! }).on('line', (text) => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i](line)) waiters.splice(i, 1);
    if (typeof line.level === 'number' && line.level >= 40) out.write(`[${name}] ${String(line.msg)}\n`);
  });
  createInterface({ input: proc.stderr! }).on('line', (text) => {
    // The simulated host logs JSON to stderr; only warnings and worse reach the terminal.
    try {
      const line = JSON.parse(text) as { level?: number; msg?: string };
      if ((line.level ?? 0) >= 40) out.write(`[${name}] ${line.msg}\n`);
    } catch {
      out.write(`[${name}] ${text}\n`);
    }
  });
  return {
    name,
    proc,
    first<T>(pick: (line: Record<string, unknown>) => T | undefined, timeoutMs: number) {
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name} did not start within ${timeoutMs} ms`)), timeoutMs);
        proc.once('exit', (code) => reject(new Error(`${name} exited with code ${code} before it was ready`)));
        waiters.push((line) => {
          const value = pick(line);
          if (value === undefined) return false;
          clearTimeout(timer);
          resolve(value);
          return true;
        });
      });
    },
  };
}

async function stopAll(children: Child[]): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.proc.exitCode !== null || c.proc.signalCode !== null) return resolve();
          const kill = setTimeout(() => c.proc.kill('SIGKILL'), 5000);
          c.proc.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          c.proc.kill('SIGTERM');
        }),
    ),
  );
}

interface ContainerItem {
  container_id: string;
  task_id: string | null;
  task_arn: string | null;
  docker_name: string | null;
  state: string;
}

async function runningContainers(server: string): Promise<ContainerItem[]> {
  const res = await request(`${server}/v2/containers?state=running&limit=100`);
  if (res.statusCode !== 200) {
    await res.body.dump();
    return [];
  }
  return ((await res.body.json()) as { items: ContainerItem[] }).items;
}

export interface DemoOptions {
  out?: NodeJS.WritableStream;
  signal?: AbortSignal;
}

export async function runDemo(config: DemoConfig, options: DemoOptions = {}): Promise<number> {
  const out = options.out ?? process.stdout;
  const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-demo-'));
  const children: Child[] = [];
  try {
    const server = start('server', ['server', '--host', '127.0.0.1', '--port', String(config.port), '--store', `sqlite:${join(dir, 'demo.db')}`, '--host-stale-after', '1m'], out);
    children.push(server);
    const sim = start('simulate-host', [
      'simulate-host', '--agent-port', '0', '--imds-port', '0', '--tasks', String(config.tasks),
      '--churn-interval', `${config.churnIntervalMs}ms`, '--cleanup-after', '60s', '--cluster', 'demo',
    ], out);
    children.push(sim);
    const serverUrl = await server.first((l) => (typeof l.url === 'string' ? l.url : undefined), 30_000);
    const simUrls = await sim.first((l) => (typeof l.agent_url === 'string' ? (l as { agent_url: string; imds_url: string }) : undefined), 30_000);
    const reconciler = start('reconciler', [
      'reconciler', '--server', serverUrl, '--ecs-agent-url', simUrls.agent_url, '--imds-url', simUrls.imds_url,
      '--docker-socket', 'none', '--state-dir', join(dir, 'reconciler'), '--resync-interval', `${config.resyncIntervalMs}ms`,
      '--full-sync-interval', '30s', '--metrics-host', '127.0.0.1', '--metrics-port', '0',
    ], out);
    children.push(reconciler);
    const metricsUrl = await reconciler.first((l) => (typeof l.metrics_url === 'string' ? l.metrics_url : undefined), 30_000);

    // Wait until the reconciler's first report has landed: the server knows running containers.
    let containers: ContainerItem[] = [];
    const deadline = Date.now() + 30_000;
    while (containers.length === 0) {
      if (Date.now() > deadline) throw new Error('the server had no running containers 30 s after the reconciler started');
      await new Promise((r) => setTimeout(r, 200));
      containers = await runningContainers(serverUrl);
    }
    const c = containers[0];
    const short = c.container_id.slice(0, 12);
    out.write(
      [
        '',
        'ECS ID Mapper demo is running: a server, a simulated ECS host and its reconciler.',
        `The server knows ${containers.length} running containers; tasks start and stop every ${config.churnIntervalMs / 1000} s.`,
        '',
        `  lookup page          ${serverUrl}/?q=${short}`,
        `  hosts                ${serverUrl}/?view=hosts`,
        `  task id of container ${serverUrl}/query/container_id/${short}`,
        `  every attribute      ${serverUrl}/query/container_id/${c.container_id}/_all`,
        `  cAdvisor link        ${serverUrl}/query/container_id/${short}/cadvisor`,
        `  containers of task   ${serverUrl}/query/task_id/${c.task_id}`,
        `  v2 lookup by ARN     ${serverUrl}/v2/lookup/${encodeURIComponent(c.task_arn ?? '')}`,
        `  history              ${serverUrl}/v2/containers/${short}/history`,
        `  server metrics       ${serverUrl}/metrics`,
        `  API docs             ${serverUrl}/docs`,
        `  reconciler metrics   ${metricsUrl}`,
        '',
        `  from a terminal:     ./bin/ecs-id-mapper lookup ${short} --server ${serverUrl}`,
        '',
        config.exitAfterMs > 0 ? `Stopping in ${config.exitAfterMs / 1000} s.` : 'Press Ctrl-C to stop.',
        '',
      ].join('\n'),
    );

    await new Promise<void>((resolve) => {
      const done = () => {
        process.off('SIGINT', done);
        process.off('SIGTERM', done);
        clearTimeout(timer);
        resolve();
      };
      const timer = config.exitAfterMs > 0 ? setTimeout(done, config.exitAfterMs) : undefined;
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
      options.signal?.addEventListener('abort', done, { once: true });
      for (const child of children) child.proc.once('exit', (code) => {
        out.write(`[${child.name}] exited with code ${code}\n`);
        done();
      });
    });
    return 0;
  } finally {
    await stopAll(children);
    rmSync(dir, { recursive: true, force: true });
  }
}
