import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { skipWithoutDockerd, startDockerd } from './dockerd.js';

describe.skipIf(skipWithoutDockerd())('startDockerd (real dockerd)', () => {
  it('serves a private engine with the busybox image, and stop() removes containers, daemon and temp dir', async () => {
    const engine = await startDockerd();
    let stopped = false;
    try {
      expect(engine.socketPath.startsWith('/tmp/eim-dockerd-')).toBe(true);
      expect(await engine.run(['images', '--format', '{{.Repository}}:{{.Tag}}'])).toBe(engine.image);
      const id = await engine.run(['run', '-d', '--network', 'none', '--label', 'purpose=harness-test', engine.image]);
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      expect(await engine.run(['inspect', '-f', '{{.State.Running}} {{.HostConfig.NetworkMode}} {{index .Config.Labels "purpose"}}', id])).toBe('true none harness-test');
      expect(await engine.run(['exec', id, '/bin/echo', 'hello'])).toBe('hello');

      await engine.stop();
      stopped = true;
      expect(existsSync(engine.socketPath)).toBe(false);
      expect(existsSync(dirname(engine.socketPath))).toBe(false);
    } finally {
      if (!stopped) await engine.stop();
    }
  });

  it('gives two engines different paths, so parallel runs never collide', async () => {
    const [a, b] = await Promise.all([startDockerd(), startDockerd()]);
    try {
      expect(a.socketPath).not.toBe(b.socketPath);
      const id = await a.run(['run', '-d', '--network', 'none', a.image]);
      expect(await b.run(['ps', '-aq'])).toBe('');
      expect(await a.run(['ps', '-q', '--no-trunc'])).toBe(id);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
