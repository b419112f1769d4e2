import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { loadCommand, type SimpleDbLocalConfig } from '../../../config/index.js';
import { signParams } from '../sigv2.js';
import { runSimpleDbLocal } from './main.js';

function firstLine(stream: PassThrough): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    stream.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const nl = text.indexOf('\n');
      if (nl >= 0) resolve(text.slice(0, nl));
    });
  });
}

describe('runSimpleDbLocal', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('listens, prints one JSON line with the URL, serves signed requests and saves the data file on stop', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'simpledb-local-main-'));
    dirs.push(dir);
    const file = join(dir, 'sdb.json');
    const loaded = loadCommand('simpledb-local', ['--port', '0', '--data', file, '--access-key-id', 'AKIDMAIN', '--secret-access-key', 'main-secret', '--log-level', 'silent'], {});
    expect(loaded.kind).toBe('run');
    const config = (loaded as { config: SimpleDbLocalConfig }).config;

    const stdout = new PassThrough();
    const abort = new AbortController();
    const line = firstLine(stdout);
    const running = runSimpleDbLocal(config, { signal: abort.signal, stdout, stderr: new PassThrough() });
    const announced = JSON.parse(await line) as { event: string; url: string };
    expect(announced).toMatchObject({ event: 'listening', service: 'simpledb-local', url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) });

    const url = new URL(announced.url);
    const signed = signParams(
      { Action: 'CreateDomain', DomainName: 'from_main', Version: '2009-04-15', Timestamp: new Date().toISOString() },
      { accessKeyId: 'AKIDMAIN', secretAccessKey: 'main-secret', method: 'POST', host: url.host, path: '/' },
    );
    const res = await fetch(`${announced.url}/`, { method: 'POST', body: new URLSearchParams(signed).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<CreateDomainResponse');

    abort.abort();
    await running;
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ version: 1, domains: { from_main: { items: {} } } });
    await expect(fetch(`${announced.url}/`)).rejects.toThrow();
  });

  it('fails at start with one readable error when the port is taken', async () => {
    const first = new AbortController();
    const stdout = new PassThrough();
    const line = firstLine(stdout);
    const config: SimpleDbLocalConfig = {
      host: '127.0.0.1', port: 0, accessKeyId: 'a', secretAccessKey: 'b', failureRate: 0, latencyMs: 0, staleReads: false, logLevel: 'silent',
    };
    const running = runSimpleDbLocal(config, { signal: first.signal, stdout });
    const port = Number(new URL((JSON.parse(await line) as { url: string }).url).port);
    await expect(runSimpleDbLocal({ ...config, port }, { stdout: new PassThrough() })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    first.abort();
    await running;
  });
});
