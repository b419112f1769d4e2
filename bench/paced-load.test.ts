// The latency benchmark's load generator and stall meter run in worker threads, so they are tested
// from dist/ (what `npm run bench` runs), against real loopback servers and a really stopped process.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, REPO_ROOT } from '../test/support/built.js';
import type { PacedLoadOptions, PacedLoadResult } from './paced-load.js';

const compiled = (name: string) => pathToFileURL(join(REPO_ROOT, 'dist', 'bench', name)).href;
let pacedLoad: (options: PacedLoadOptions) => Promise<PacedLoadResult>;

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

async function listen(server: Server | ReturnType<typeof createTcpServer>): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('paced load', () => {
  beforeAll(async () => {
    await ensureBuilt(['bench', 'tools', 'storage', 'wire', 'api', 'config']);
    ({ pacedLoad } = (await import(compiled('paced-load.js'))) as { pacedLoad: typeof pacedLoad });
  }, 300_000);

  it('sends every request of the phase over keep-alive connections, cycling through the paths', async () => {
    const seen = new Map<string, number>();
    const sockets = new Set<unknown>();
    const server = createServer((req, res) => {
      sockets.add(req.socket);
      seen.set(req.url!, (seen.get(req.url!) ?? 0) + 1);
      res.setHeader('content-type', 'text/plain');
      res.end('ok'); // with a Content-Length, as Fastify answers
    });
    const origin = await listen(server);
    const r = await pacedLoad({ origin, paths: ['/a', '/b'], rate: 400, seconds: 0.5, connections: 3 });
    expect(r).toMatchObject({ requests: 200, failed: 0 });
    // The warm-up second (400) and the measured part (200), half on each path, over the same connections (at most 3).
    expect(seen.get('/a')).toBe(300);
    expect(seen.get('/b')).toBe(300);
    expect(sockets.size).toBeLessThanOrEqual(3);
    expect(r.p99Ms).toBeGreaterThanOrEqual(r.p50Ms);
    expect(r.maxMs).toBeGreaterThanOrEqual(r.p99Ms);
    expect(r.generatorBusy).toBeGreaterThan(0);
    expect(r.generatorBusy).toBeLessThanOrEqual(1);
    expect(r.releaseLateP99Ms).toBeGreaterThanOrEqual(0);
    expect(r.releaseLateP99Ms).toBeLessThanOrEqual(r.maxMs);
  }, 30_000);

  it('waits until a request is due, never less, however near its time', async () => {
    const { untilDue } = (await import(compiled('paced-load.js'))) as { untilDue: (due: number) => Promise<void> };
    for (const ahead of [0.05, 0.3, 1, 1.6, 4]) {
      const due = performance.now() + ahead;
      await untilDue(due);
      expect(performance.now()).toBeGreaterThanOrEqual(due);
    }
  });

  it('counts non-2xx answers as failed', async () => {
    const server = createServer((req, res) => {
      res.statusCode = req.url === '/bad' ? 503 : 200;
      res.end('x');
    });
    const r = await pacedLoad({ origin: await listen(server), paths: ['/ok', '/bad'], rate: 200, seconds: 0.5, connections: 2 });
    expect(r).toMatchObject({ requests: 100, failed: 50 });
  }, 30_000);

  it('counts a latency from the scheduled start, so a slow server shows its queueing', async () => {
    // One connection and a server that takes 20 ms: requests every 10 ms queue behind each other.
    const server = createServer((_req, res) => setTimeout(() => res.end('x'), 20));
    const r = await pacedLoad({ origin: await listen(server), paths: ['/'], rate: 100, seconds: 0.3, connections: 1 });
    expect(r.failed).toBe(0);
    expect(r.maxMs).toBeGreaterThan(100);
  }, 30_000);

  it('fails, without hanging, the requests of connections the server drops, and answers without a Content-Length', async () => {
    // Accepts, then closes every connection at its first request.
    const dropping = createTcpServer((socket) => socket.once('data', () => socket.destroy()));
    const dropped = await pacedLoad({ origin: await listen(dropping), paths: ['/'], rate: 200, seconds: 0.2, connections: 2 });
    expect(dropped).toMatchObject({ requests: 40, failed: 40 });
    // Headers sent before the body: Node answers chunked.
    const chunked = createServer((_req, res) => {
      res.writeHead(200);
      res.write('x');
      res.end('y');
    });
    const r = await pacedLoad({ origin: await listen(chunked), paths: ['/'], rate: 200, seconds: 0.2, connections: 2 });
    expect(r).toMatchObject({ requests: 40, failed: 40 });
  }, 30_000);

  it('rejects when nothing listens', async () => {
    const server = createTcpServer();
    const origin = await listen(server);
    await closers.pop()!();
    await expect(pacedLoad({ origin, paths: ['/'], rate: 10, seconds: 0.1, connections: 1 })).rejects.toThrow(/ECONNREFUSED/);
  }, 30_000);
});

describe('stall meter', () => {
  beforeAll(() => ensureBuilt(['bench']), 300_000);

  it('reports the time its process was stopped as a stall', async () => {
    // A script file, not -e: the meter's worker would inherit --input-type and refuse its own file.
    const dir = mkdtempSync(join(tmpdir(), 'stall-meter-'));
    closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    const script = join(dir, 'meter.mjs');
    writeFileSync(script, `const { startStallMeter } = await import(${JSON.stringify(compiled('stall-meter.js'))});
      const meter = await startStallMeter(5);
      console.log('ready');
      process.stdin.once('data', async () => { console.log(JSON.stringify(await meter.stop())); process.exit(0); });`);
    const child = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
    closers.push(async () => void child.kill('SIGKILL'));
    let out = '';
    const line = (n: number) =>
      new Promise<string>((resolve) => {
        const check = () => {
          const lines = out.split('\n').filter(Boolean);
          if (lines.length >= n) resolve(lines[n - 1]);
          else child.stdout.once('data', (c: Buffer) => ((out += c.toString()), check()));
        };
        check();
      });
    expect(await line(1)).toBe('ready');
    await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGCONT');
    await new Promise((r) => setTimeout(r, 50));
    child.stdin.write('stop\n');
    const report = JSON.parse(await line(2)) as { stalls: number; maxMs: number; totalMs: number };
    expect(report.maxMs).toBeGreaterThan(150);
    expect(report.maxMs).toBeLessThan(1000);
    expect(report.totalMs).toBeGreaterThanOrEqual(report.maxMs);
    expect(report.stalls).toBeGreaterThanOrEqual(1);
  }, 30_000);
});
