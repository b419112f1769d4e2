// The processes the fleet simulator measures: `ecs-id-mapper server` (and `simpledb-local` for the
// SimpleDB backend) run as child processes of the built CLI, so their RSS can be read from
// /proc/<pid>/status and load generation never shares their event loop.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';

/** bin/ecs-id-mapper from the source tree (tools/fleet-sim/) or from dist/tools/fleet-sim/. */
export function cliPath(): string {
  for (const rel of ['../../bin/ecs-id-mapper', '../../../bin/ecs-id-mapper']) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error('bin/ecs-id-mapper not found next to the fleet simulator');
}

/** Where a process's resident memory is (Linux /proc), split by kind, bytes. */
export interface MemoryBreakdown {
  rss: number;
  /** Heap, malloc (SQLite's page cache among it), stacks: what a memory limit cannot reclaim. */
  anon: number;
  /** File-backed and shared pages: the node executable's, and any mapped file's. */
  file: number;
  /** The part of `file` that maps `mappedPath` or a file beside it with that prefix (a SQLite store and its -shm). */
  mapped: number;
}

/**
 * A live process's RSS split into anonymous and file-backed memory (/proc/<pid>/status), with the
 * pages of mappings whose path starts with `mappedPath` (/proc/<pid>/smaps); null when unreadable.
 */
export function memoryBreakdown(pid: number, mappedPath?: string): MemoryBreakdown | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    const rss = kb('VmRSS');
    if (Number.isNaN(rss)) return null;
    let mapped = 0;
    if (mappedPath !== undefined) {
      let inside = false;
      for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
        // A mapping's header line starts with its address range; its fields follow, one per line.
        if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inside = (line.split(/\s+/)[5] ?? '').startsWith(mappedPath);
        else if (inside && line.startsWith('Rss:')) mapped += Number(/(\d+) kB/.exec(line)?.[1] ?? 0) * 1024;
      }
    }
    return { rss, anon: kb('RssAnon'), file: kb('RssFile') + kb('RssShmem'), mapped };
  } catch {
    return null;
  }
}

/** CPU time (user + system) a live process has used, in ms (Linux /proc, 100 ticks/s), or null. */
export function cpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return null;
  }
}

/** A free loopback port (the server is started with `--log-level warn`, so it does not print its URL). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface ChildHandle {
  pid: number;
  url: string;
  /** Output kept for error messages (last 4 KiB of stderr). */
  stderrTail(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

function track(child: ChildProcess): { tail: () => string; exited: Promise<number | null> } {
  let err = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    err = (err + chunk.toString()).slice(-4096);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { tail: () => err, exited };
}

function stopper(child: ChildProcess, exited: Promise<number | null>) {
  return async (graceMs = 10_000): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
}

export interface ServerChildOptions {
  /** `--store` value. */
  store: string;
  /** Extra flags (credentials for simpledb://). */
  args?: string[];
  /** Node flags for the child, e.g. `--max-old-space-size=256`. */
  nodeArgs?: string[];
}

/** Starts `ecs-id-mapper server` on a free loopback port and waits until /health answers. */
export async function startServerChild(options: ServerChildOptions): Promise<ChildHandle> {
  const port = await freePort();
  const args = [
    ...(options.nodeArgs ?? []),
    cliPath(),
    'server',
    '--host', '127.0.0.1',
    '--port', String(port),
    '--store', options.store,
    '--log-level', 'warn',
    // One broken daemon must not starve the rest in production; here every host is well behaved
    // and reports far faster than a real one, so the per-host limit would only measure itself.
    '--report-rate-limit', '1000000',
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const { tail, exited } = track(child);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${tail().trim().split('\n').pop() ?? ''}`);
    try {
      const res = await request(`${url}/health`, { headersTimeout: 1000, bodyTimeout: 1000 });
      await res.body.dump();
      if (res.statusCode === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server did not become healthy within 30 s: ${tail().trim().split('\n').pop() ?? ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { pid: child.pid!, url, stderrTail: tail, stop: stopper(child, exited) };
}

export const LOCAL_KEYS = { accessKeyId: 'AKIDFLEETSIM', secretAccessKey: 'fleet-sim/secret' } as const;

/** Starts `ecs-id-mapper simpledb-local` on a free port; resolves once it printed its URL. */
export async function startSimpleDbLocalChild(): Promise<ChildHandle> {
  const child = spawn(
    process.execPath,
    [cliPath(), 'simpledb-local', '--port', '0', '--access-key-id', LOCAL_KEYS.accessKeyId, '--secret-access-key', LOCAL_KEYS.secretAccessKey, '--log-level', 'warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const { tail, exited } = track(child);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('simpledb-local did not print its URL within 30 s'));
    }, 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { url: string }).url);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`simpledb-local exited with ${code}: ${tail().trim()}`));
    });
  });
  child.stdout!.resume();
  return { pid: child.pid!, url, stderrTail: tail, stop: stopper(child, exited) };
}
