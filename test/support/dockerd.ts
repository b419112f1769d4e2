// A real, private Docker engine for integration tests: its own socket, data, exec root and pid
// file under a fresh temp dir (two runs never collide), no bridge, no iptables. Containers must be
// run with `--network none`; tests never send traffic to container addresses.
//
// Tests that need it: `describe.skipIf(skipWithoutDockerd())` — skipped locally when dockerd is
// not installed, but run (and fail in startDockerd) under CI=true.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const DOCKERD_PATH = '/usr/sbin/dockerd';
const BUSYBOX_PATHS = ['/bin/busybox', '/usr/bin/busybox'];
/** Applets linked in the test image; `sleep` is its command. */
const APPLETS = ['sh', 'sleep', 'true', 'false', 'echo', 'cat', 'ls', 'kill'];
const IMAGE = 'ecs-id-mapper-test:busybox';
const STARTUP_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;

export interface Dockerd {
  socketPath: string;
  /** Image imported from a busybox rootfs; runs `/bin/sleep 3600` by default. */
  image: string;
  /** Runs the docker CLI against this engine; resolves with trimmed stdout, rejects with stderr. */
  run(args: string[]): Promise<string>;
  /** Stops the engine (its socket disappears) and starts it again on the same paths and data. */
  restart(): Promise<void>;
  /** Removes every container, stops the engine and deletes its temp dir. */
  stop(): Promise<void>;
}

export function dockerdAvailable(): boolean {
  return existsSync(DOCKERD_PATH);
}

/** True when a dockerd test should be skipped: dockerd is missing and we are not in CI. */
export function skipWithoutDockerd(): boolean {
  return !dockerdAvailable() && process.env.CI !== 'true';
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function logTail(logPath: string): string {
  try {
    return readFileSync(logPath, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Unmounts anything the engine left mounted under `dir` (after a crash), deepest first. */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1])
    .filter((target): target is string => target !== undefined && target.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
  for (const target of mounts) await execFileAsync('umount', ['-l', target]).catch(() => undefined);
}

async function buildImage(tmp: string, run: Dockerd['run']): Promise<void> {
  const busybox = BUSYBOX_PATHS.find((p) => existsSync(p));
  if (!busybox) throw new Error(`busybox not found (${BUSYBOX_PATHS.join(', ')}); install busybox-static`);
  const rootfs = join(tmp, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  mkdirSync(join(rootfs, 'tmp'));
  copyFileSync(busybox, join(rootfs, 'bin', 'busybox'));
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
  for (const applet of APPLETS) symlinkSync('busybox', join(rootfs, 'bin', applet));
  const tarball = join(tmp, 'rootfs.tar');
  await execFileAsync('tar', ['-C', rootfs, '-cf', tarball, '.']);
  await run(['import', '--change', 'CMD ["/bin/sleep","3600"]', tarball, IMAGE]);
}

function spawnDockerd(tmp: string, socketPath: string, logPath: string): ChildProcess {
  const log = openSync(logPath, 'a');
  const child = spawn(
    DOCKERD_PATH,
    [
      '--bridge=none',
      '--iptables=false',
      '--ip-masq=false',
      '--host', `unix://${socketPath}`,
      '--data-root', join(tmp, 'data'),
      '--exec-root', join(tmp, 'exec'),
      '--pidfile', join(tmp, 'docker.pid'),
    ],
    { stdio: ['ignore', log, log] },
  );
  closeSync(log);
  return child;
}

async function waitForPing(child: ChildProcess, socketPath: string, logPath: string): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (!(await ping(socketPath))) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`dockerd exited during startup:\n${logTail(logPath)}`);
    if (Date.now() > deadline) throw new Error(`dockerd did not answer /_ping within ${STARTUP_TIMEOUT_MS} ms:\n${logTail(logPath)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM, then SIGKILL if the engine has not exited within STOP_TIMEOUT_MS. */
async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (!(await exited(child, STOP_TIMEOUT_MS))) {
    child.kill('SIGKILL');
    await exited(child, 5000);
  }
}

export async function startDockerd(): Promise<Dockerd> {
  if (!dockerdAvailable()) throw new Error(`dockerd not found at ${DOCKERD_PATH}; install docker.io (required when CI=true)`);
  // Short path: unix socket paths are limited to 108 bytes.
  const tmp = mkdtempSync('/tmp/eim-dockerd-');
  const socketPath = join(tmp, 'docker.sock');
  const logPath = join(tmp, 'dockerd.log');
  let child = spawnDockerd(tmp, socketPath, logPath);

  const cliEnv = { ...process.env, DOCKER_CONFIG: join(tmp, 'cli'), DOCKER_HOST: `unix://${socketPath}` };
  const run: Dockerd['run'] = async (args) => {
    try {
      const { stdout } = await execFileAsync('docker', ['-H', `unix://${socketPath}`, ...args], { env: cliEnv, maxBuffer: 16 * 1024 * 1024 });
      return stdout.trim();
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr?.trim();
      throw new Error(`docker ${args.join(' ')}: ${stderr || (error as Error).message}`, { cause: error });
    }
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      const ids = await run(['ps', '-aq']).catch(() => '');
      if (ids) await run(['rm', '-f', '-v', ...ids.split('\n')]).catch(() => undefined);
    }
    await terminate(child);
    await unmountUnder(tmp);
    rmSync(tmp, { recursive: true, force: true });
  };

  const restart = async () => {
    await terminate(child);
    child = spawnDockerd(tmp, socketPath, logPath);
    await waitForPing(child, socketPath, logPath);
  };

  try {
    await waitForPing(child, socketPath, logPath);
    await buildImage(tmp, run);
  } catch (error) {
    await stop();
    throw error;
  }
  return { socketPath, image: IMAGE, run, restart, stop };
}
