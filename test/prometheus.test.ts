// The real consumer reads us: Debian's Prometheus, started on loopback with a generated config,
// scrapes a running server, the reconciler's metrics and a cAdvisor-shaped exporter; then its HTTP
// API must answer `up` == 1 for every target, our series with the values we put in, and the join
// operators use to put ECS task names on cAdvisor series (container_info, see docs/deploy.md); and
// every query of the Grafana dashboard, with its default variables, must answer with data.
//
// The reconciler is the real daemon (runReconciler) on a simulated host (tools/simulate-host: ECS
// agent + IMDSv2 on loopback), reporting to the server; two more hosts are reported through the v2
// transitions route directly, so the server holds three clusters.
//
// Missing prometheus: skipped locally, FAILS when CI=true (house rule).
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCI, missingToolMessage, startPrometheus, systemTool, type PromSample, type RunningPrometheus } from './support/prometheus.js';
import { startReconcilerOnSimulatedHost, startServer, type RunningServer } from './support/live-server.js';
import { containerId, hostIdentity, instanceId, taskArn, taskId, transition } from '../storage/store.fixtures.js';
import type { Transition } from '../wire/index.js';

const prometheusPath = systemTool('prometheus');

interface RunningContainer {
  container_id: string;
  docker_name: string | null;
  task_family: string | null;
  task_id: string | null;
  cluster: string | null;
}

/** A loopback HTTP server answering GET /metrics with `body()`. */
async function exporter(body: () => Promise<string> | string): Promise<{ target: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    Promise.resolve(body()).then(
      (text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(text),
      (err: Error) => res.writeHead(500).end(err.message),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    target: `127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function runningContainers(baseUrl: string): Promise<RunningContainer[]> {
  const res = await fetch(`${baseUrl}/v2/containers?state=running&limit=500`);
  if (res.status !== 200) throw new Error(`GET /v2/containers answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { items: RunningContainer[] }).items;
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, context: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`condition not met within ${timeoutMs} ms:\n${context()}`);
}

/**
 * Two hosts in two clusters, five containers: four running and one that ran and stopped. Sent
 * through POST /v2/hosts/:instance_id/transitions exactly as a reconciler sends them.
 */
async function reportFleet(baseUrl: string): Promise<void> {
  const at = (seq: number) => new Date(Date.now() - (60 - seq) * 1000).toISOString();
  const hosts = [
    { host: hostIdentity({ instance_id: instanceId('prom-a'), cluster: 'prod' }), tasks: [['web', '3', 2], ['api', '12', 1]] as const },
    { host: hostIdentity({ instance_id: instanceId('prom-b'), cluster: 'batch' }), tasks: [['etl', '1', 2]] as const },
  ];
  for (const { host, tasks } of hosts) {
    const transitions: Transition[] = [];
    let seq = 0;
    for (const [family, revision, count] of tasks) {
      const id = taskId(`${host.instance_id}-${family}`);
      for (let i = 0; i < count; i++) {
        const container = {
          container_id: containerId(`${host.instance_id}-${family}-${i}`),
          container_name: `c${i}`,
          docker_name: `ecs-${family}-${revision}-c${i}-${id.slice(0, 12)}`,
          task_arn: taskArn(id, host.cluster),
          task_family: family,
          task_version: revision,
        };
        seq += 1;
        transitions.push(transition(seq, 'running', { at: at(seq), container }));
        if (family === 'etl' && i === 1) {
          seq += 1;
          transitions.push(transition(seq, 'stopped', { from: 'running', at: at(seq), container: { ...container, exit_code: 0 } }));
        }
      }
    }
    const res = await fetch(`${baseUrl}/v2/hosts/${host.instance_id}/transitions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ host, transitions }),
    });
    if (res.status !== 200) throw new Error(`reporting the fleet answered ${res.status}: ${await res.text()}`);
  }
}

/** cAdvisor's naming on a Docker host: `id="/docker/<full id>"`, `name="<docker name>"`. */
function cadvisorExposition(containers: Array<{ id: string; name: string; bytes: number }>): string {
  const lines = ['# HELP container_memory_usage_bytes Current memory usage in bytes.', '# TYPE container_memory_usage_bytes gauge'];
  for (const c of containers) lines.push(`container_memory_usage_bytes{id="/docker/${c.id}",image="x",name="${c.name}"} ${c.bytes}`);
  return lines.join('\n') + '\n';
}

describe.skipIf(!prometheusPath && !isCI)('a real Prometheus scrapes the server, the reconciler and cAdvisor', () => {
  let server: RunningServer | undefined;
  let prometheus: RunningPrometheus | undefined;
  const closers: Array<() => Promise<void>> = [];
  let running: RunningContainer[] = [];
  const stranger = 'f'.repeat(64);

  beforeAll(async () => {
    if (!prometheusPath) throw new Error(missingToolMessage('prometheus', 'prometheus'));
    server = await startServer();

    // A second source of data besides the daemon: two more hosts in two more clusters.
    await reportFleet(server.url);
    const daemon = await startReconcilerOnSimulatedHost(server.url);
    closers.push(daemon.stop);
    // The daemon's first passes report the simulated host's 6 running containers.
    await waitUntil(async () => (await runningContainers(server!.url)).filter((c) => c.cluster === 'sim').length === 6, 30_000, () => daemon.log());

    running = await runningContainers(server.url);
    expect(running.length).toBeGreaterThan(1);

    const cadvisor = await exporter(() => cadvisorExposition([
      ...running.map((c, i) => ({ id: c.container_id, name: c.docker_name ?? c.container_id, bytes: 1_000_000 * (i + 1) })),
      // A container the map does not know (an agent's own pause container, say): must drop out of the join.
      { id: stranger, name: 'stranger', bytes: 42 },
    ]));
    closers.push(cadvisor.close);

    const serverTarget = new URL(server.url).host;
    prometheus = await startPrometheus(prometheusPath, [
      { job: 'ecs-id-mapper-server', targets: [serverTarget] },
      { job: 'ecs-id-mapper-reconciler', targets: [daemon.metricsTarget] },
      { job: 'cadvisor', targets: [cadvisor.target] },
    ]);
  }, 120_000);

  afterAll(async () => {
    await prometheus?.stop();
    for (const close of closers.reverse()) await close();
    await server?.stop();
  });

  it('reports up == 1 for the server, the reconciler and cAdvisor', async () => {
    const up = await prometheus!.waitFor('up', (s) => s.length === 3 && s.every((x) => x.value[1] === '1'), 30_000);
    expect(up.map((s) => s.metric.job).sort()).toEqual(['cadvisor', 'ecs-id-mapper-reconciler', 'ecs-id-mapper-server']);
  });

  it('reads the server\'s container counts per cluster as the store holds them', async () => {
    const byCluster = new Map<string, number>();
    for (const c of running) byCluster.set(c.cluster ?? '', (byCluster.get(c.cluster ?? '') ?? 0) + 1);
    const samples = await prometheus!.waitFor('ecs_id_mapper_containers{state="running"}', (s) => s.length >= byCluster.size, 30_000);
    const seen = new Map(samples.map((s) => [s.metric.cluster, Number(s.value[1])]));
    expect(seen).toEqual(byCluster);
  });

  it('reads the reconciler daemon\'s passes and the 6 running containers it tracks', async () => {
    const passes = await prometheus!.waitFor('sum(ecs_id_mapper_reconciler_passes_total{result="ok"})', (s) => s.length === 1 && Number(s[0].value[1]) > 0, 30_000);
    expect(Number(passes[0].value[1])).toBeGreaterThan(0);
    const tracked = await prometheus!.waitFor('ecs_id_mapper_reconciler_containers{state="running"}', (s) => s.length === 1 && s[0].value[1] === '6', 30_000);
    expect(tracked[0].metric.job).toBe('ecs-id-mapper-reconciler');
  });

  it('joins cAdvisor series to ECS tasks through ecs_id_mapper_container_info', async () => {
    const families = await (await fetch(`${server!.url}/metrics`)).text();
    expect(families).toContain('# TYPE ecs_id_mapper_container_info gauge');
    const join = [
      'label_replace(container_memory_usage_bytes{job="cadvisor"}, "container_id", "$1", "id", "/docker/([0-9a-f]{64})")',
      '* on (container_id) group_left (task_family, task_id, cluster)',
      'max by (container_id, task_family, task_id, cluster) (ecs_id_mapper_container_info)',
    ].join(' ');
    const samples: PromSample[] = await prometheus!.waitFor(join, (s) => s.length === running.length, 30_000);
    const got = samples.map((s) => ({ container_id: s.metric.container_id, task_family: s.metric.task_family, task_id: s.metric.task_id })).sort((a, b) => a.container_id.localeCompare(b.container_id));
    const want = running.map((c) => ({ container_id: c.container_id, task_family: c.task_family, task_id: c.task_id })).sort((a, b) => a.container_id.localeCompare(b.container_id));
    expect(got).toEqual(want);
    expect(samples.some((s) => s.metric.container_id === stranger)).toBe(false);
  });

  it('answers every query of the Grafana dashboard with data, except the SimpleDB panel on this SQLite server', async () => {
    // Rates need two scrapes of every target inside the window.
    await prometheus!.waitFor('count_over_time(up[15s]) >= 2', (s) => s.length === 3, 30_000);
    const empty: string[] = [];
    for (const { panel, expr } of dashboardTargets()) {
      // query() throws on anything Prometheus refuses (a syntax error, a bad function call).
      if ((await prometheus!.query(expr)).length === 0) empty.push(`${panel}: ${expr}`);
    }
    // The SimpleDB families exist only on a server whose store is SimpleDB (test/charts.test.ts
    // checks they are exposed there).
    expect(empty.filter((e) => !e.includes('ecs_id_mapper_simpledb_'))).toEqual([]);
  });

  it('counts the running containers of every cluster in the dashboard\'s fleet panels, as the store holds them', async () => {
    // Three clusters here (prod, batch, sim): a panel that takes the max over clusters instead of
    // their sum shows the biggest cluster only.
    expect(new Set(running.map((c) => c.cluster)).size).toBeGreaterThan(1);
    const fleetPanels = dashboardTargets().filter((t) => ['Running containers', 'Containers by state'].includes(t.panel) && t.expr.includes('ecs_id_mapper_containers{'));
    expect(fleetPanels.map((t) => t.panel).sort()).toEqual(['Containers by state', 'Running containers']);
    for (const { panel, expr } of fleetPanels) {
      const samples = await prometheus!.query(expr);
      const runningSample = samples.find((s) => s.metric.state === undefined || s.metric.state === 'running');
      expect(Number(runningSample?.value[1]), `${panel}: ${expr}`).toBe(running.length);
    }
  });
});

/**
 * The dashboard's queries as Grafana sends them with its default variables: `$cluster` and
 * `$instance` at "All" (`.*`), the job variables at their defaults (the jobs this test scrapes),
 * `$__rate_interval` at 15 s (15 scrapes here).
 */
function dashboardTargets(): Array<{ panel: string; expr: string }> {
  const dashboard = JSON.parse(readFileSync(new URL('../charts/grafana/ecs-id-mapper.dashboard.json', import.meta.url), 'utf8')) as {
    panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
    templating: { list: Array<{ name: string; allValue?: string; current?: { value?: string } }> };
  };
  const values = new Map<string, string>([['__rate_interval', '15s']]);
  for (const v of dashboard.templating.list) values.set(v.name, v.current?.value === '$__all' ? v.allValue ?? '.*' : v.current?.value ?? '');
  const substitute = (expr: string) =>
    expr.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (whole, name: string) => {
      const value = values.get(name);
      if (value === undefined) throw new Error(`dashboard query uses an undeclared variable ${whole}: ${expr}`);
      return value;
    });
  return dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: substitute(t.expr) })));
}
