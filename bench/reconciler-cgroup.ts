// A cgroup v1 memory group for one benchmark daemon: what `docker run --memory=64m` (the original
// agent's limit) and an ECS task's hard `Memory` do to a container. The limit counts the group's
// anonymous memory and the page cache it brought in; when usage reaches it, the kernel first
// reclaims the group's clean file pages (code of the node executable, which it reads back on the
// next touch: a major page fault) and only then kills a process of the group (OOM).
//
// A page is charged to the group that first read it. The node executable this machine runs is
// cached already (every other node process read it), so a daemon started from it would never be
// charged for its code, unlike a fresh container. The daemon therefore runs a private copy of the
// executable, dropped from the page cache before it starts, whose pages are charged to the group
// when the daemon faults them in. Shared libraries (libc, libstdc++: about 3 MiB) stay charged to
// whoever read them first.
//
// Needs root and a cgroup v1 memory controller (/sys/fs/cgroup/memory); the group is made under
// this process's own group and removed afterwards.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MemoryCgroupReport {
  limitBytes: number;
  /** memory.max_usage_in_bytes: the most the kernel counted against the limit at once. */
  maxUsageBytes: number;
  /** memory.failcnt: times usage hit the limit (each one made the kernel reclaim). */
  limitHits: number;
  /** OOM kills in the group (memory.oom_control `oom_kill`; kernels without it: whether under_oom was ever seen at the end). */
  oomKills: number;
}

export interface MemoryCgroup {
  /** The group's directory under /sys/fs/cgroup/memory. */
  path: string;
  /** Starts `node <argv>` inside the group. */
  spawn(argv: string[], env: NodeJS.ProcessEnv): ChildProcess;
  report(): MemoryCgroupReport;
  /** Removes the group; its processes must have exited. */
  remove(): void;
}

const V1_ROOT = '/sys/fs/cgroup/memory';

/** This process's cgroup v1 memory group directory, or null when there is no such controller. */
export function ownMemoryCgroup(procSelfCgroup: string = readFileSync('/proc/self/cgroup', 'utf8'), root = V1_ROOT): string | null {
  for (const line of procSelfCgroup.split('\n')) {
    const [, controllers, ...rest] = line.split(':');
    if (controllers?.split(',').includes('memory')) {
      const dir = join(root, rest.join(':'));
      return existsSync(join(dir, 'memory.limit_in_bytes')) ? dir : null;
    }
  }
  return null;
}

/** Whether a memory group can be made here, and if not, why (for the benchmark's text). */
export function memoryCgroupUnavailable(): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root';
  if (!ownMemoryCgroup()) return 'no cgroup v1 memory controller';
  return null;
}

const readNumber = (file: string) => Number(readFileSync(file, 'utf8').trim());

export interface MemoryCgroupOptions {
  limitBytes: number;
  /** Where the private copy of the node executable goes. */
  scratchDir: string;
  /**
   * Run a private, uncached copy of the executable (default), so its pages are charged to the
   * group. false: the cached one, whose pages stay charged elsewhere and so cannot be reclaimed
   * from the group; a process over the limit is then killed at once instead of first trading its
   * own code pages for memory (tests).
   */
  privateNode?: boolean;
}

export function createMemoryCgroup(options: MemoryCgroupOptions): MemoryCgroup {
  const unavailable = memoryCgroupUnavailable();
  if (unavailable) throw new Error(`cannot make a memory cgroup: ${unavailable}`);
  const path = join(ownMemoryCgroup()!, `ecs-id-mapper-soak-${process.pid}-${Date.now()}`);
  mkdirSync(path);
  try {
    writeFileSync(join(path, 'memory.limit_in_bytes'), String(options.limitBytes));
  } catch (err) {
    rmdirSync(path);
    throw err;
  }
  let node = process.execPath;
  if (options.privateNode !== false) {
    node = join(options.scratchDir, 'node');
    copyFileSync(process.execPath, node);
    chmodSync(node, 0o755);
    // GNU dd: fdatasync the copy, then drop its pages from the page cache (posix_fadvise DONTNEED).
    execFileSync('dd', ['if=/dev/null', `of=${node}`, 'oflag=nocache', 'conv=notrunc,fdatasync', 'count=0'], { stdio: 'ignore' });
  }
  return {
    path,
    spawn(argv, env) {
      // The shell moves itself into the group, then becomes node: every page node touches is charged to it.
      return spawn('/bin/sh', ['-c', 'echo $$ > "$0" && exec "$@"', join(path, 'cgroup.procs'), node, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env });
    },
    report() {
      const oom = readFileSync(join(path, 'memory.oom_control'), 'utf8');
      const kills = /^oom_kill (\d+)/m.exec(oom);
      return {
        limitBytes: options.limitBytes,
        maxUsageBytes: readNumber(join(path, 'memory.max_usage_in_bytes')),
        limitHits: readNumber(join(path, 'memory.failcnt')),
        oomKills: kills ? Number(kills[1]) : /^under_oom 1/m.test(oom) ? 1 : 0,
      };
    },
    remove() {
      // The kernel refuses while an exiting process is still being accounted; it takes milliseconds.
      for (let attempt = 0; ; attempt++) {
        try {
          rmdirSync(path);
          return;
        } catch (err) {
          if (attempt >= 50 || (err as NodeJS.ErrnoException).code !== 'EBUSY') throw err;
          execFileSync('sleep', ['0.1']);
        }
      }
    },
  };
}
