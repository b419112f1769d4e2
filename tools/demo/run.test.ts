import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runDemo } from './run.js';

describe('npm run demo', () => {
  it('prints lookup URLs that answer 200 with the mapped container, and stops cleanly', async () => {
    const out = new PassThrough();
    let printed = '';
    out.on('data', (chunk: Buffer) => (printed += chunk.toString('utf8')));
    const controller = new AbortController();
    const running = runDemo({ port: 0, tasks: 3, churnIntervalMs: 0, resyncIntervalMs: 500, exitAfterMs: 0 }, { signal: controller.signal, out });
    try {
      await expect.poll(() => printed, { timeout: 30_000 }).toContain('Ctrl-C stops everything.');
      expect(printed).toContain('3 tasks x 2 containers, no churn');
      const urls = [...printed.matchAll(/(http:\/\/127\.0\.0\.1:\d+\S*)/g)].map((m) => m[1]);
      expect(urls.length).toBe(16);
      const lookups = urls.filter((u) => u.includes('/v2/lookup/'));
      expect(lookups).toHaveLength(4);
      const ids = new Set<string>();
      for (const url of lookups) {
        const res = await fetch(url);
        expect(res.status).toBe(200);
        const body = (await res.json()) as { containers: Array<{ container_id: string }> };
        body.containers.forEach((c) => ids.add(c.container_id));
      }
      const shortId = /\?q=([0-9a-f]{12})/.exec(printed)![1];
      expect([...ids].some((id) => id.startsWith(shortId))).toBe(true);
      // Every URL but the POST-only fault switch answers a GET.
      for (const url of urls.filter((u) => !u.includes('/v2/lookup/') && !u.endsWith('/faults'))) {
        expect((await fetch(url)).status, url).toBe(200);
      }
    } finally {
      controller.abort();
      await running;
    }
  });

  it('stops at once, quietly and leaving no state directory, when stopped before anything is mapped', async () => {
    const demoDirs = () => new Set(readdirSync(tmpdir()).filter((d) => d.startsWith('ecs-id-mapper-demo-')));
    const before = demoDirs();
    const controller = new AbortController();
    // No tasks and no churn: nothing is ever mapped, so the demo is still starting when stopped.
    const running = runDemo({ port: 0, tasks: 0, churnIntervalMs: 0, resyncIntervalMs: 200, exitAfterMs: 0 }, { signal: controller.signal, out: new PassThrough(), readyTimeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 1_500));
    const stoppedAt = Date.now();
    controller.abort();
    await expect(running).resolves.toBeUndefined();
    expect(Date.now() - stoppedAt).toBeLessThan(5_000);
    expect([...demoDirs()].filter((d) => !before.has(d))).toEqual([]);
  });

  it('stops by itself after --exit-after once the lookups work', async () => {
    const out = new PassThrough();
    let printed = '';
    out.on('data', (chunk: Buffer) => (printed += chunk.toString('utf8')));
    await runDemo({ port: 0, tasks: 1, churnIntervalMs: 0, resyncIntervalMs: 200, exitAfterMs: 300 }, { out });
    expect(printed).toContain('Stops by itself in 0.3 s');
    const server = /lookup page\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(printed)![1];
    await expect(fetch(`${server}/v2/hosts`)).rejects.toThrow();
  });
});
