// The real executable: `./bin/ecs-id-mapper server` as a child process on loopback, a legacy map
// reported over real HTTP and read back, flag errors, and a clean SIGTERM shutdown.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'ecs-id-mapper');

/** Builds dist/ when the compiled server is missing or older than its sources. */
function ensureBuilt(): void {
  const compiled = join(ROOT, 'dist', 'api', 'main.js');
  const sources = ['api/main.ts', 'api/server.ts', 'cli/main.ts'].map((p) => join(ROOT, p));
  const stale = !existsSync(join(ROOT, 'dist', 'cli', 'main.js')) || !existsSync(compiled) || sources.some((s) => statSync(s).mtimeMs > statSync(compiled).mtimeMs);
  if (!stale) return;
  // tsc still emits when another folder has type errors; what matters is that the server compiled.
  spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'ignore' });
  if (!existsSync(compiled)) throw new Error('npm run build did not produce dist/api/main.js');
}

interface Running {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
  stdout: () => string;
}

function startServer(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [BIN, 'server', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not log its URL within 20 s:\n${out}\n${err}`)), 20_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      for (const line of out.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const entry = JSON.parse(line) as { url?: string; msg?: string };
          if (entry.url && entry.msg?.includes(entry.url)) {
            clearTimeout(timer);
            resolve({ child, url: entry.url, exited, stdout: () => out });
          }
        } catch {
          // a partial line; wait for the rest
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${out}\n${err}`));
    });
  });
}

describe('ecs-id-mapper server (real process)', () => {
  let dir: string;
  let server: Running | undefined;

  beforeAll(() => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-server-'));
  }, 240_000);

  afterAll(async () => {
    if (server && server.child.exitCode === null) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints its help and exits 0 with --help', () => {
    const res = spawnSync(process.execPath, [BIN, 'server', '--help'], { cwd: ROOT, encoding: 'utf8' });
    expect(res.status).toBe(0);
    expect(res.stdout).toContain('--report-token');
  });

  it('prints a command\'s help for `help <command>`, and refuses an unknown one', () => {
    const res = spawnSync(process.execPath, [BIN, 'help', 'server'], { cwd: ROOT, encoding: 'utf8' });
    expect(res.status).toBe(0);
    expect(res.stdout).toBe(spawnSync(process.execPath, [BIN, 'server', '--help'], { cwd: ROOT, encoding: 'utf8' }).stdout);
    const unknown = spawnSync(process.execPath, [BIN, 'help', 'serve'], { cwd: ROOT, encoding: 'utf8' });
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/^ecs-id-mapper serve: unknown command "serve"/);
  });

  it('prints its version and exits 0 with --version, -V or version', () => {
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    for (const arg of ['--version', '-V', 'version']) {
      const res = spawnSync(process.execPath, [BIN, arg], { cwd: ROOT, encoding: 'utf8' });
      expect(res.status, arg).toBe(0);
      expect(res.stdout).toBe(`ecs-id-mapper ${version} (node ${process.version})\n`);
    }
  });

  it('exits 2 with one line for a bad flag', () => {
    const res = spawnSync(process.execPath, [BIN, 'server', '--port', 'eighty'], { cwd: ROOT, encoding: 'utf8' });
    expect(res.status).toBe(2);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toContain('--port');
  });

  it('exits 1 with one line naming the cause when the store path is a directory, or not writable by its user', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-store-dir-'));
    try {
      const asDirectory = spawnSync(process.execPath, [BIN, 'server', '--port', '0', '--store', `sqlite:${dir}`], { cwd: ROOT, encoding: 'utf8' });
      expect(asDirectory.status).toBe(1);
      expect(asDirectory.stderr.trim()).toBe(`ecs-id-mapper server: cannot open the SQLite store at "${dir}": it is a directory; give the path of a file in it (sqlite:DIR/ecs-id-mapper.db) (ERR_STORE_UNAVAILABLE)`);

      // A directory its user may not write. Root may write anywhere through CAP_DAC_OVERRIDE, so as
      // root the server runs without it (still root, so it can read the repository wherever it is).
      chmodSync(dir, 0o555);
      const withoutOverride = process.getuid?.() === 0 ? ['/usr/bin/setpriv', '--bounding-set=-dac_override,-dac_read_search', '--'] : [];
      const [command, ...prefix] = [...withoutOverride, process.execPath];
      const readOnly = spawnSync(command, [...prefix, BIN, 'server', '--port', '0', '--store', `sqlite:${join(dir, 'store.db')}`], { cwd: ROOT, encoding: 'utf8' });
      expect(readOnly.status, readOnly.stderr).toBe(1);
      expect(readOnly.stderr.trim()).toBe(`ecs-id-mapper server: cannot open the SQLite store at "${join(dir, 'store.db')}": permission denied (EACCES): the server's user must be able to write the file and its directory (ERR_STORE_UNAVAILABLE)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stores a legacy map reported over HTTP, answers it back, and exits 0 on SIGTERM', async () => {
    server = await startServer(['--port', '0', '--host', '127.0.0.1', '--store', `sqlite:${join(dir, 'db', 'map.db')}`, '--report-token', 'tok', '--log-level', 'info']);
    const containerId = 'ab'.repeat(32);
    const taskId = '0123456789abcdef'.repeat(2);
    const entry = {
      container_id: containerId, container_name: 'app', container_port: '80', task_id: `prod/${taskId}`, task_name: 'web', task_version: '3',
      instance_port: '32768', instance_ip: '10.0.0.5', instance_id: 'i-0123456789abcdef0', instance_type: 't3.small', instance_az: 'us-east-1b',
      desired_status: 'RUNNING', known_status: 'RUNNING', host_name: 'ip-10-0-0-5', cluster_name: 'prod', ecs_agent_version: '1.14.4', sample_time: 1767225600.5,
    };
    const key = createHash('sha256').update(containerId + entry.task_id + 'RUNNING').digest('hex');
    // As the original agent posts it, with the token in Basic auth (http://x:tok@server/).
    const report = await fetch(`${server.url}/report/map`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/plain', authorization: `Basic ${Buffer.from('x:tok').toString('base64')}` },
      body: JSON.stringify({ [key]: entry }),
    });
    expect(report.status).toBe(200);
    expect(await report.text()).toBe('true');

    const lookup = await fetch(`${server.url}/query/container_id/${containerId.slice(0, 12)}`);
    expect(lookup.status).toBe(200);
    expect(lookup.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await lookup.text()).toBe(taskId);
    const byTask = await fetch(`${server.url}/query/task_id/${taskId}`);
    expect(await byTask.text()).toBe(containerId);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);

    // The live /metrics of the real process (default process metrics included) passes promtool.
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toContain('ecs_id_mapper_reports_received_total{kind="legacy_map",result="ok"} 1');
    if (existsSync('/usr/bin/promtool')) {
      const check = spawnSync('/usr/bin/promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
      expect(check.stdout + check.stderr).toBe('');
      expect(check.status).toBe(0);
    } else if (process.env.CI === 'true') {
      throw new Error('promtool is not installed (Debian package prometheus)');
    }

    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.stdout()).toContain('server stopped');
    expect(existsSync(join(dir, 'db', 'map.db'))).toBe(true);
  }, 60_000);
});
