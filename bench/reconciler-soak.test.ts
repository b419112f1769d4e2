// The soak's memory cgroup (bench/reconciler-cgroup.ts): it finds this process's group, and a
// process started in a group is held to its limit — killed by the kernel above it, left alone
// below it. Needs root and a cgroup v1 memory controller; elsewhere those cases are skipped.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createMemoryCgroup, memoryCgroupUnavailable, ownMemoryCgroup } from './reconciler-cgroup.js';

const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-cgroup-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const unavailable = memoryCgroupUnavailable();

const exitOf = (child: ReturnType<ReturnType<typeof createMemoryCgroup>['spawn']>) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

describe('the soak’s memory cgroup', () => {
  it('is this process’s cgroup v1 memory group, read from /proc/self/cgroup', () => {
    const root = join(dir, 'memory');
    mkdirSync(join(root, 'session', 'a'), { recursive: true });
    writeFileSync(join(root, 'session', 'a', 'memory.limit_in_bytes'), '9223372036854771712\n');
    const procSelfCgroup = '9:name=systemd:/\n4:memory:/session/a\n3:cpuset:/\n0::/\n';
    expect(ownMemoryCgroup(procSelfCgroup, root)).toBe(join(root, 'session', 'a'));
    expect(ownMemoryCgroup('0::/\n', root)).toBeNull();
    expect(ownMemoryCgroup('4:memory:/elsewhere\n', root)).toBeNull();
  });

  it.skipIf(unavailable)('lets a process that stays under the limit finish, and reports the peak it counted', async () => {
    const group = createMemoryCgroup({ limitBytes: 64 * 2 ** 20, scratchDir: dir });
    try {
      const exit = exitOf(group.spawn(['-e', 'const keep = Buffer.alloc(8 * 2 ** 20, 1); console.log(keep.length)'], process.env));
      expect(await exit).toEqual({ code: 0, signal: null });
      const report = group.report();
      expect(report.oomKills).toBe(0);
      expect(report.limitBytes).toBe(64 * 2 ** 20);
      expect(report.maxUsageBytes).toBeGreaterThan(8 * 2 ** 20);
      expect(report.maxUsageBytes).toBeLessThanOrEqual(64 * 2 ** 20);
    } finally {
      group.remove();
    }
  }, 60_000);

  it.skipIf(unavailable)('has the kernel kill a process whose anonymous memory goes over the limit', async () => {
    // The cached executable: its pages cannot be reclaimed from the group, so the kill comes at once
    // (with a private copy the kernel first evicts and re-reads the process's own code for a while).
    const group = createMemoryCgroup({ limitBytes: 48 * 2 ** 20, scratchDir: dir, privateNode: false });
    try {
      const exit = exitOf(group.spawn(['-e', 'const keep = []; for (let i = 0; i < 40; i++) keep.push(Buffer.alloc(4 * 2 ** 20, 1)); console.log(keep.length)'], process.env));
      expect(await exit).toEqual({ code: null, signal: 'SIGKILL' });
      expect(group.report().oomKills).toBe(1);
    } finally {
      group.remove();
    }
  }, 60_000);
});
