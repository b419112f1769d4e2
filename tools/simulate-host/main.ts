// `ecs-id-mapper simulate-host`: starts the simulated host, prints its URLs as one JSON line on
// stdout (for scripts and the demo to read), logs to stderr, and runs until SIGTERM/SIGINT.
import pino from 'pino';
import type { SimulateHostConfig } from '../../config/index.js';
import { startSimulatedHost } from './index.js';

export interface RunSimulateHostOptions {
  /** Resolves the run when aborted (tests); SIGTERM/SIGINT always do. */
  signal?: AbortSignal;
  /** Where the URL line goes (default stdout). */
  out?: NodeJS.WritableStream;
  /** Log destination (default stderr). */
  logStream?: NodeJS.WritableStream;
}

export async function runSimulateHost(config: SimulateHostConfig, options: RunSimulateHostOptions = {}): Promise<void> {
  const log = pino({ level: config.logLevel, base: { service: 'ecs-id-mapper-simulate-host' } }, options.logStream ?? process.stderr);
  const host = await startSimulatedHost(config);
  const urls = { agent_url: host.agentUrl, imds_url: host.imdsUrl, control_url: host.controlUrl };
  (options.out ?? process.stdout).write(JSON.stringify(urls) + '\n');
  log.info({ ...urls, tasks: host.state.length, docker_socket: config.dockerSocket ?? null, seed: config.seed }, 'simulated host ready');

  await new Promise<void>((resolve) => {
    const stop = (reason: string) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      options.signal?.removeEventListener('abort', onAbort);
      log.info({ reason }, 'simulated host stopping');
      resolve();
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    const onAbort = () => stop('aborted');
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onInt);
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
  });
  await host.close();
}
