import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, REPO_ROOT } from '../test/support/built.js';
import { reply, startLoopback, type LoopbackServer } from '../test/support/loopback.js';
import { Agent, request } from './undici.js';

let server: LoopbackServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** Echoes what arrived: method, path with query, body. */
const echo = () =>
  startLoopback((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => reply(res, 201, JSON.stringify({ method: req.method, url: req.url, body, auth: req.headers.authorization ?? null }), 'application/json'));
  });

describe('undici, loaded part by part', () => {
  it('sends method, path with query, headers and body, and returns status and body', async () => {
    server = await echo();
    const res = await request(new URL('/v1/tasks?x=1', server.url), { method: 'POST', headers: { authorization: 'Bearer t' }, body: 'hello' });
    expect(res.statusCode).toBe(201);
    expect(await res.body.json()).toEqual({ method: 'POST', url: '/v1/tasks?x=1', body: 'hello', auth: 'Bearer t' });
  });

  it('goes through the dispatcher it is given, here over a unix socket', async () => {
    const socketPath = join(tmpdir(), `ecs-id-mapper-undici-${process.pid}.sock`);
    server = await startLoopback((req, res) => reply(res, 200, req.url ?? '', 'text/plain'), socketPath);
    const dispatcher = new Agent({ connect: { socketPath } });
    try {
      const res = await request('http://docker/events?since=1', { dispatcher });
      expect(await res.body.text()).toBe('/events?since=1');
    } finally {
      await dispatcher.close();
    }
  });

  it('rejects with the transport error code when nothing listens', async () => {
    server = await echo();
    const url = server.url;
    await server.close();
    server = undefined;
    await expect(request(url)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

describe('the daemon’s module graph', () => {
  beforeAll(() => ensureBuilt(['reconciler', 'wire', 'cli', 'config']), 300_000);

  it('loads neither undici’s package index (fetch, WebSocket, mocks), @opentelemetry/api nor pino', async () => {
    const code = `await import('./dist/reconciler/main.js'); const { createRequire } = await import('node:module'); console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', code], { cwd: REPO_ROOT });
    const loaded = (JSON.parse(stdout) as string[]).map((p) => p.slice(p.lastIndexOf('node_modules/') + 'node_modules/'.length));
    expect(loaded).toContain('undici/lib/dispatcher/agent.js');
    expect(loaded).toContain('prom-client/lib/registry.js');
    expect(loaded).not.toContain('undici/index.js');
    expect(loaded.filter((p) => p.startsWith('undici/lib/web/'))).toEqual([]);
    expect(loaded.filter((p) => p.startsWith('@opentelemetry/'))).toEqual([]);
    expect(loaded).not.toContain('prom-client/index.js');
    // The daemon writes pino's lines without pino (reconciler/log.ts).
    expect(loaded.filter((p) => /^(pino|sonic-boom|thread-stream)\//.test(p))).toEqual([]);
  });

  it('does not load node:http2, tls or crypto to speak HTTP/1.1, and still speaks https', async () => {
    // A self-signed certificate for 127.0.0.1, so the https half runs against a real TLS server.
    const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-tls-'));
    try {
      await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
      const code = `
        const { createServer } = await import('node:http');
        const { Agent, request } = await import('./dist/reconciler/undici.js');
        const loaded = (name) => process.moduleLoadList.includes('NativeModule ' + name);
        const plain = createServer((req, res) => res.end('plain')).listen(0, '127.0.0.1');
        await new Promise((r) => plain.once('listening', r));
        const first = await request('http://127.0.0.1:' + plain.address().port + '/');
        const out = { plain: await first.body.text(), afterPlain: ['http2', 'tls', 'crypto'].filter(loaded) };
        plain.close();
        const { createServer: createTls } = await import('node:https');
        const { readFileSync } = await import('node:fs');
        const secure = createTls({ key: readFileSync(${JSON.stringify(join(dir, 'key.pem'))}), cert: readFileSync(${JSON.stringify(join(dir, 'cert.pem'))}) }, (req, res) => res.end('secure')).listen(0, '127.0.0.1');
        await new Promise((r) => secure.once('listening', r));
        const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
        const second = await request('https://127.0.0.1:' + secure.address().port + '/', { dispatcher });
        out.secure = await second.body.text();
        out.afterSecure = ['http2'].filter(loaded);
        await dispatcher.close();
        secure.close();
        console.log(JSON.stringify(out));`;
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', code], { cwd: REPO_ROOT });
      expect(JSON.parse(stdout)).toEqual({ plain: 'plain', afterPlain: [], secure: 'secure', afterSecure: [] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('finds undici’s HTTP/2 client where it stands in: required by client.js, and used only for an h2 socket', () => {
    const client = readFileSync(join(REPO_ROOT, 'node_modules/undici/lib/dispatcher/client.js'), 'utf8');
    expect(client.match(/require\('\.\/client-h2\.js'\)/g)).toEqual(["require('./client-h2.js')"]);
    expect(client.match(/connectH2\(/g)).toHaveLength(1);
    expect(client).toMatch(/socket\.alpnProtocol === 'h2'\s*\?\s*connectH2\(client, socket\)/);
  });

  it('refuses, with a readable error, should undici ever hand it an h2 socket', async () => {
    await import('./undici.js');
    const load = createRequire(import.meta.url);
    const connectH2 = load.cache[load.resolve('undici/lib/dispatcher/client-h2.js')]?.exports as () => unknown;
    expect(() => connectH2()).toThrow(/HTTP\/2 is not loaded in the reconciler/);
  });

  it('loads no TypeBox: the daemon imports wire/ids.ts, not the schemas of wire/index.ts', async () => {
    // TypeBox is ESM, so require.cache cannot see it: a loader hook (its own thread) appends every
    // module URL it loads to a file. Both entries: the CLI the launcher runs, and the daemon it loads.
    const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-modules-'));
    const file = join(dir, 'loaded.txt');
    try {
      const hooks = `import { appendFileSync } from 'node:fs'; let file; export function initialize(d) { file = d.file; } export async function load(url, context, next) { appendFileSync(file, url + '\\n'); return next(url, context); }`;
      const code = `import { register, createRequire } from 'node:module';
        register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}), { data: { file: ${JSON.stringify(file)} } });
        await import('./dist/cli/main.js'); await import('./dist/reconciler/main.js');
        console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));`;
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', code], { cwd: REPO_ROOT });
      const loaded = [...readFileSync(file, 'utf8').split('\n').filter(Boolean), ...(JSON.parse(stdout) as string[])];
      // The hook saw the daemon's own modules, so an empty TypeBox list means something.
      expect(loaded.some((u) => u.endsWith('/dist/reconciler/loop.js'))).toBe(true);
      expect(loaded.filter((u) => /\/node_modules\/(@sinclair\/)?typebox\//.test(u))).toEqual([]);
      expect(loaded.filter((u) => u.endsWith('/dist/wire/index.js'))).toEqual([]);
      expect(loaded.some((u) => u.endsWith('/dist/wire/ids.js'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
