// `./bin/ecs-id-mapper lookup` end to end: the built binary, spawned as a user runs it, against a
// real server on loopback seeded through the v2 report routes. Checks output and exit codes:
// 0 found, 1 no single match (not found, ambiguous), 2 usage or connection error with one line.
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupUrl } from '../cli/lookup.js';
import { seedFleet, seedSharedPrefix, startLookupServer, type LookupServer, type SeededFleet } from './support/seed.js';
import { PRIVATE_CA_CERT, SELF_SIGNED_CERT, startPrivateCaHttps, startSelfSignedHttps } from './support/tls.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const BIN = `${ROOT}bin/ecs-id-mapper`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the binary with a clean ECS_ID_MAPPER_* environment (plus `env`). */
function lookup(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ECS_ID_MAPPER_')));
  return new Promise((resolve, reject) => {
    execFile(BIN, ['lookup', ...args], { cwd: ROOT, env: { ...base, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

function newerThan(target: string, sources: string[]): boolean {
  return existsSync(target) && sources.every((s) => statSync(target).mtimeMs >= statSync(s).mtimeMs);
}

/** Builds dist/ when the compiled CLI is missing or older than its sources. */
function ensureBuilt(): Promise<void> {
  const sources = ['cli/lookup.ts', 'cli/tls-trust.ts', 'cli/main.ts', 'config/index.ts'].map((p) => ROOT + p);
  if (newerThan(`${ROOT}dist/cli/lookup.js`, sources) && existsSync(`${ROOT}dist/cli/main.js`)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    // tsc emits even when files elsewhere in the tree have type errors; the check below is what matters.
    execFile('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, timeout: 240_000 }, () => {
      if (newerThan(`${ROOT}dist/cli/lookup.js`, sources)) resolve();
      else reject(new Error('npx tsc -p tsconfig.build.json did not produce dist/cli/lookup.js'));
    });
  });
}

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const NOW = new Date();
let api: LookupServer;
let fleet: SeededFleet;

beforeAll(async () => {
  await ensureBuilt();
  api = await startLookupServer({ now: NOW });
  fleet = await seedFleet(api.url, { now: NOW, setServerTime: api.setNow, staleByMs: api.hostStaleAfterMs * 2 });
}, 300_000); // a cold `tsc` build on a busy two-core machine

afterAll(async () => {
  await api?.close();
});

describe('lookup: found (exit 0)', () => {
  it('prints a short table for a 12-hex container prefix', async () => {
    const app = fleet.web.app;
    const run = await lookup([app.container_id.slice(0, 12), '--server', api.url]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const rows = Object.fromEntries(
      run.stdout
        .split('\n')
        .slice(2)
        .filter(Boolean)
        .map((line) => {
          const m = /^(.+?)\s{2,}(.*)$/.exec(line);
          return m ? [m[1], m[2]] : [line, ''];
        }),
    );
    expect(run.stdout.split('\n')[0]).toBe('1 container matched by container prefix');
    expect(rows.container).toBe(`${app.container_id.slice(0, 12)}  ${app.container_id}`);
    expect(rows.name).toBe('app');
    expect(rows['docker name']).toBe(app.docker_name);
    expect(rows.task).toBe(fleet.web.taskId);
    expect(rows['family:rev']).toBe('web:3');
    expect(rows.state).toBe('running');
    expect(rows.instance).toBe(`${fleet.host.instance_id} / 10.0.1.17`);
    expect(rows.cluster).toBe('prod');
    expect(rows.cadvisor).toBe(`http://10.0.1.17:${api.cadvisorPort}/docker/${app.container_id}`);
  });

  it('prints one block per container for a task id, and the exit code of a stopped one', async () => {
    const run = await lookup([fleet.web.taskId, '--server', api.url]);
    expect(run.code).toBe(0);
    expect(run.stdout.split('\n')[0]).toBe('2 containers matched by task id');
    expect(run.stdout).toContain(`container    ${fleet.web.app.container_id.slice(0, 12)}  ${fleet.web.app.container_id}`);
    expect(run.stdout).toContain(`container    ${fleet.web.proxy.container_id.slice(0, 12)}  ${fleet.web.proxy.container_id}`);

    const stopped = await lookup([fleet.worker.job.container_id, '--server', api.url]);
    expect(stopped.code).toBe(0);
    expect(stopped.stdout).toMatch(/^state\s+stopped \(exit 0\)$/m);
  });

  it('prints the JSON body with --json, for a task ARN (which contains slashes)', async () => {
    const run = await lookup([fleet.web.taskArn, '--server', api.url, '--json']);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const body = JSON.parse(run.stdout) as { query: string; kind: string; containers: Array<{ container_id: string; links: Array<{ name: string; url: string }> }> };
    expect(body.kind).toBe('task_arn');
    expect(body.query).toBe(fleet.web.taskArn);
    expect(body.containers.map((c) => c.container_id).sort()).toEqual([fleet.web.app.container_id, fleet.web.proxy.container_id].sort());
    expect(body.containers[0].links[0].name).toBe('cadvisor');
  });

  it('answers an EC2 instance id with that host: reporting or stale, its last report, its containers by state', async () => {
    const hostRows = (stdout: string) =>
      Object.fromEntries(stdout.split('\n').filter(Boolean).map((line) => /^(.+?)\s{2,}(.*)$/.exec(line)!.slice(1, 3) as [string, string]));
    const served = (await (await fetch(`${api.url}/v2/hosts/${fleet.host.instance_id}`)).json()) as { containers_by_state: Record<string, number> };
    const run = await lookup([fleet.host.instance_id, '--server', api.url]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const rows = hostRows(run.stdout);
    expect(rows.host).toBe(fleet.host.instance_id);
    expect(rows.cluster).toBe('prod');
    expect(rows.status).toBe('reporting');
    expect(rows['last report']).toMatch(/^\d+ (s|m \d+ s) ago \(.+, reconciler, seq \d+\)$/);
    expect(rows.containers).toBe(['pending', 'running', 'stopping', 'stopped', 'gone'].map((s) => `${served.containers_by_state[s]} ${s}`).join(', '));
    expect(served.containers_by_state.running).toBeGreaterThan(0);

    const stale = await lookup([fleet.staleHost.instance_id, '--server', api.url]);
    expect(stale.code).toBe(0);
    expect(hostRows(stale.stdout).status).toBe('stale: silent past --host-stale-after');

    const json = await lookup([fleet.host.instance_id, '--server', api.url, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ instance_id: fleet.host.instance_id, stale: false, containers_by_state: served.containers_by_state });
  });

  it('takes the server from ECS_ID_MAPPER_SERVER and finds a docker name', async () => {
    const run = await lookup([fleet.web.proxy.docker_name!], { ECS_ID_MAPPER_SERVER: api.url });
    expect(run.code).toBe(0);
    expect(run.stdout.split('\n')[0]).toBe('1 container matched by docker name');
    expect(run.stdout).toMatch(/^name\s+proxy$/m);
  });
});

describe('lookup: no single match (exit 1)', () => {
  it('says plainly that a host has never reported', async () => {
    const run = await lookup(['i-0123456789abcdef9', '--server', api.url]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('No host i-0123456789abcdef9 has reported.\n');
  });

  it('says plainly that nothing matches an unknown id', async () => {
    const unknown = 'badc0ffee0ddf00d';
    const run = await lookup([unknown, '--server', api.url]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe(`No container or task matches "${unknown}".\n`);
    expect(run.stderr).toBe('');
  });

  it('prints the 404 body with --json', async () => {
    const run = await lookup(['badc0ffee0ddf00d', '--server', api.url, '--json']);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ error: 'not_found' });
  });

  it('lists the candidates of an ambiguous short id', async () => {
    const run = await lookup([fleet.ambiguousPrefix, '--server', api.url]);
    expect(run.code).toBe(1);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`"${fleet.ambiguousPrefix}" is ambiguous: it matches 2 containers:`);
    expect(lines.slice(1).map((l) => l.trim()).sort()).toEqual(fleet.twins.map((t) => t.container_id).sort());
  });

  it('says a short id matches more containers than the 20 the server lists, not that it matches 20', async () => {
    const ids = await seedSharedPrefix(api.url, { now: NOW, prefix: '5a5a5a5a5a5a', count: 25 });
    const run = await lookup(['5a5a5a5a5a5a', '--server', api.url]);
    expect(run.code).toBe(1);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('"5a5a5a5a5a5a" is ambiguous: it matches more than 20 containers; the first 20:');
    expect(lines.slice(1).map((l) => l.trim())).toEqual(ids.slice(0, 20));
  });
});

describe('lookup: usage and connection errors (exit 2, one line on stderr)', () => {
  it('needs an id', async () => {
    const run = await lookup(['--server', api.url]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe('ecs-id-mapper lookup: lookup needs one id (container id, prefix, task id, task ARN, docker name or EC2 instance id)\n');
  });

  it("shows the server's message for an id of no known shape", async () => {
    const run = await lookup(['not an id', '--server', api.url]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe('ecs-id-mapper lookup: "not an id" is not a container id (12-64 hex), task id, task ARN or docker name\n');
  });

  it('names the server it cannot reach', async () => {
    const port = await closedPort();
    const run = await lookup(['abcdefabcdef', '--server', `http://127.0.0.1:${port}`]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`ecs-id-mapper lookup: cannot reach http://127.0.0.1:${port} (connection refused)\n`);
  });

  it('says how to trust a server behind a private CA, and NODE_EXTRA_CA_CERTS does', async () => {
    const https = await startSelfSignedHttps((_req, res) => res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not_found', message: 'no container or task matches' })));
    try {
      const untrusted = await lookup(['abcdefabcdef', '--server', https.url]);
      expect(untrusted.code).toBe(2);
      expect(untrusted.stderr).toBe(
        `ecs-id-mapper lookup: cannot reach ${https.url}: the peer's TLS certificate is not trusted (DEPTH_ZERO_SELF_SIGNED_CERT); if it comes from a private CA, start with NODE_EXTRA_CA_CERTS=/path/to/ca.pem\n`,
      );
      const trusted = await lookup(['abcdefabcdef', '--server', https.url], { NODE_EXTRA_CA_CERTS: fileURLToPath(SELF_SIGNED_CERT) });
      expect(trusted.code).toBe(1);
      expect(trusted.stdout).toBe('No container or task matches "abcdefabcdef".\n');
    } finally {
      await https.close();
    }
  });

  it('says an https:// --server names a plain HTTP port', async () => {
    const { server, url } = await listen((_req, res) => res.writeHead(404).end());
    const https = url.replace('http://', 'https://');
    try {
      const run = await lookup(['abcdefabcdef', '--server', https]);
      expect(run).toMatchObject({
        code: 2,
        stdout: '',
        stderr: `ecs-id-mapper lookup: cannot reach ${https}: the peer does not speak TLS (ERR_SSL_WRONG_VERSION_NUMBER): does this https:// URL name a plain HTTP port?\n`,
      });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('names a missing intermediate certificate when the private CA is trusted, and the full chain works', async () => {
    const notFound = (_req: unknown, res: import('node:http').ServerResponse) =>
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not_found', message: 'no container or task matches' }));
    const env = { NODE_EXTRA_CA_CERTS: fileURLToPath(PRIVATE_CA_CERT) };
    const leafOnly = await startPrivateCaHttps({ chain: false }, notFound);
    const fullChain = await startPrivateCaHttps({ chain: true }, notFound);
    try {
      const missing = await lookup(['abcdefabcdef', '--server', leafOnly.url], env);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toBe(
        `ecs-id-mapper lookup: cannot reach ${leafOnly.url}: the peer's TLS certificate is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE); if it comes from a private CA, start with NODE_EXTRA_CA_CERTS=/path/to/ca.pem; if that file holds the CA already, the server sends its certificate without its intermediate CA certificate: give it (or its load balancer) the full chain\n`,
      );
      const trusted = await lookup(['abcdefabcdef', '--server', fullChain.url], env);
      expect(trusted.code).toBe(1);
      expect(trusted.stdout).toBe('No container or task matches "abcdefabcdef".\n');
    } finally {
      await leafOnly.close();
      await fullChain.close();
    }
  });

  it('says a 5xx page that is not the server\'s comes from a proxy in front of it, not from some other server', async () => {
    const { server, url } = await listen((_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' }).end('<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body><center><h1>502 Bad Gateway</h1></center></body>\r\n</html>\r\n');
    });
    try {
      const run = await lookup(['abcdefabcdef', '--server', url]);
      expect(run).toMatchObject({
        code: 2,
        stdout: '',
        stderr: `ecs-id-mapper lookup: ${url} answered 502 with a page of its own, not the server's JSON: a proxy or load balancer in front of the server cannot reach it (is the server running?)\n`,
      });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('names where a redirect points rather than calling its page an unexpected body', async () => {
    const { server, url } = await listen((req, res) => {
      res.writeHead(301, { location: `https://mapper.example.com${req.url}`, 'content-type': 'text/html' }).end('<html><body><h1>301 Moved Permanently</h1></body></html>');
    });
    try {
      const run = await lookup(['abcdefabcdef', '--server', url]);
      expect(run).toMatchObject({
        code: 2,
        stdout: '',
        stderr: `ecs-id-mapper lookup: ${url} answered 301, a redirect to https://mapper.example.com/v2/lookup/abcdefabcdef: set --server to the address it redirects to (lookup never follows a redirect)\n`,
      });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('gives up after --timeout on a server that never answers', async () => {
    const sockets = new Set<import('node:net').Socket>();
    const { server, url } = await listen(() => {
      /* never answers */
    });
    server.on('connection', (s) => sockets.add(s));
    try {
      const run = await lookup(['abcdefabcdef', '--server', url, '--timeout', '300ms']);
      expect(run.code).toBe(2);
      expect(run.stderr).toBe(`ecs-id-mapper lookup: no answer from ${url} within 300ms\n`);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('does not read a wrong --server path as "nothing matches"', async () => {
    const unknown = 'badc0ffee0ddf00d';
    const run = await lookup([unknown, '--server', `${api.url}/mapper/`]);
    expect(run).toMatchObject({ code: 2, stdout: '' });
    expect(run.stderr).toBe(`ecs-id-mapper lookup: ${api.url}/mapper/ has no lookup route (no such page: /mapper/v2/lookup/${unknown}): --server must be the server's base URL\n`);
  });

  it('reports a 5xx and a server that is not ecs-id-mapper', async () => {
    const { server, url } = await listen((req, res) => {
      if (req.url?.includes('boom')) {
        res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'store_unavailable', message: 'store unavailable: disk full' }));
      } else if (req.url?.includes('cafecafecafe')) {
        // The shape of an answer outside, not inside.
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'container_prefix', containers: [{}] }));
      } else {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html>hello</html>');
      }
    });
    try {
      const unavailable = await lookup(['boomboomboom', '--server', url]);
      expect(unavailable.code).toBe(2);
      expect(unavailable.stderr).toBe(`ecs-id-mapper lookup: ${url} answered 503: store unavailable: disk full\n`);

      const html = await lookup(['abcdefabcdef', '--server', url]);
      expect(html.code).toBe(2);
      expect(html.stderr).toBe(`ecs-id-mapper lookup: ${url} answered 200 with a body that is not JSON (is it an ecs-id-mapper server?)\n`);

      const hollow = await lookup(['cafecafecafe', '--server', url]);
      expect(hollow).toMatchObject({ code: 2, stdout: '', stderr: `ecs-id-mapper lookup: ${url} answered 200 with an unexpected body (is it an ecs-id-mapper server?)\n` });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('lookupUrl', () => {
  it('keeps a path prefix of --server and encodes the id (task ARNs contain / and :)', () => {
    const arn = 'arn:aws:ecs:us-east-1:123456789012:task/prod/0f4c6a8e2b1d4c3a9e7f5b6d8c0a1e2f';
    expect(lookupUrl(new URL('http://mapper.internal:5001'), 'abcdefabcdef').href).toBe('http://mapper.internal:5001/v2/lookup/abcdefabcdef');
    expect(lookupUrl(new URL('https://tools.example/mapper?x=1'), arn).href).toBe(
      'https://tools.example/mapper/v2/lookup/arn%3Aaws%3Aecs%3Aus-east-1%3A123456789012%3Atask%2Fprod%2F0f4c6a8e2b1d4c3a9e7f5b6d8c0a1e2f',
    );
    expect(lookupUrl(new URL('http://h/base/'), '../../etc').href).toBe('http://h/base/v2/lookup/..%2F..%2Fetc');
  });
});
