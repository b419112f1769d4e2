// Test support for the Prometheus side of the project: finding Debian's `prometheus`/`promtool`,
// reading metric names out of PromQL and out of /metrics text, and running a real Prometheus server
// on loopback with a generated config.
//
// Contract for system tools (house rule): when a tool is missing, tests skip locally and FAIL when
// CI=true. `systemTool()` returns the path or undefined; `missingToolMessage()` is the failure text.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export const isCI = process.env.CI === 'true';

/** Absolute path of an executable on PATH (or in /usr/bin, /usr/sbin), or undefined. */
export function systemTool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function missingToolMessage(name: string, debianPackage: string): string {
  return `${name} is not installed (Debian package "${debianPackage}"); CI=true requires it (.ci/run installs it)`;
}

// ---------------------------------------------------------------------------------------------
// metric names

const OUR_METRIC = /\becs_id_mapper_[a-z0-9_]+/g;
const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'] as const;

/**
 * The project's metric names an expression refers to: every identifier matching
 * `ecs_id_mapper_[a-z0-9_]+`, as written (suffixes such as `_bucket` are resolved against a live
 * exposition by `isExposed`, since only the exposition knows whether a name is a histogram).
 * Label values (`job="ecs-id-mapper-server"`) use hyphens and are not matched; string literals
 * are removed first so that a label value spelled with underscores is not mistaken for a metric.
 */
export function metricNamesInPromQL(expr: string): Set<string> {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  return new Set(withoutStrings.match(OUR_METRIC) ?? []);
}

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped' | 'info' | 'stateset' | 'gaugehistogram' | 'unknown';

/** Metric families of a Prometheus text exposition: name → type, from its `# TYPE` lines. */
export function exposedFamilies(exposition: string): Map<string, MetricType> {
  const families = new Map<string, MetricType>();
  for (const line of exposition.split('\n')) {
    const m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)\s*$/.exec(line);
    if (m) families.set(m[1], m[2] as MetricType);
  }
  return families;
}

/** True when `name` is a family of the exposition, or a `_bucket/_sum/_count` series of one of its histograms/summaries. */
export function isExposed(name: string, families: Map<string, MetricType>): boolean {
  if (families.has(name)) return true;
  for (const suffix of HISTOGRAM_SUFFIXES) {
    if (!name.endsWith(suffix)) continue;
    const type = families.get(name.slice(0, -suffix.length));
    if (type === 'histogram' || (type === 'summary' && suffix !== '_bucket')) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// a real Prometheus on loopback

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface ScrapeJob {
  job: string;
  /** host:port targets on loopback. */
  targets: string[];
  metricsPath?: string;
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface RunningPrometheus {
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:40123 */
  url: string;
  /** Instant query through /api/v1/query; throws on a non-success answer. */
  query(expr: string): Promise<PromSample[]>;
  /** Polls `query` until `accept` returns true for its result, or throws after `timeoutMs`. */
  waitFor(expr: string, accept: (samples: PromSample[]) => boolean, timeoutMs: number): Promise<PromSample[]>;
  /** Prometheus' own log (stderr), for failure messages. */
  log(): string;
  /** Stops the process (SIGTERM, then SIGKILL) and removes the temp dir. */
  stop(): Promise<void>;
}

export function prometheusConfig(jobs: ScrapeJob[], scrapeInterval = '1s'): string {
  // JSON is valid YAML; no templating of user strings into YAML syntax.
  return JSON.stringify({
    global: { scrape_interval: scrapeInterval, scrape_timeout: scrapeInterval, evaluation_interval: scrapeInterval },
    scrape_configs: jobs.map((j) => ({
      job_name: j.job,
      metrics_path: j.metricsPath ?? '/metrics',
      static_configs: [{ targets: j.targets }],
    })),
  }, null, 2);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function startPrometheus(binary: string, jobs: ScrapeJob[]): Promise<RunningPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-prom-'));
  const configPath = join(dir, 'prometheus.yml');
  writeFileSync(configPath, prometheusConfig(jobs));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let stderr = '';
  const child: ChildProcess = spawn(binary, [
    `--config.file=${configPath}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-20_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killed = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
      if (!killed) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const query = async (expr: string): Promise<PromSample[]> => {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: PromSample[] } };
    if (body.status !== 'success' || !body.data) throw new Error(`query ${expr} failed: ${res.status} ${body.error ?? ''}`);
    if (body.data.resultType !== 'vector') throw new Error(`query ${expr}: expected a vector, got ${body.data.resultType}`);
    return body.data.result;
  };

  const waitFor = async (expr: string, accept: (s: PromSample[]) => boolean, timeoutMs: number): Promise<PromSample[]> => {
    const deadline = Date.now() + timeoutMs;
    let last: PromSample[] = [];
    let lastError: unknown;
    while (Date.now() < deadline) {
      try {
        last = await query(expr);
        if (accept(last)) return last;
      } catch (err) {
        lastError = err;
      }
      await sleep(250);
    }
    throw new Error(`Prometheus never answered ${expr} as expected within ${timeoutMs} ms; last result ${JSON.stringify(last)}` +
      `${lastError ? `; last error ${(lastError as Error).message}` : ''}; prometheus log:\n${stderr}`);
  };

  // Ready when /-/ready answers 200 (the TSDB is open and the scrape manager runs).
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`prometheus exited with ${child.exitCode} at start:\n${stderr}`);
    }
    try {
      const res = await fetch(`${url}/-/ready`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus did not become ready within 30 s:\n${stderr}`);
    }
    await sleep(100);
  }
  return { url, query, waitFor, log: () => stderr, stop };
}
