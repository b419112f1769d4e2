// `ecs-id-mapper simulate-host`: starts the simulated host, prints its URLs as one JSON line on
// stdout (for scripts and the demo to read), logs to stderr, and runs until SIGTERM/SIGINT.
import pino from 'pino';
import type { SimulateHostConfig } from '../../config/index.js';
import { startSimulatedHost } from './index.js';
import { untilStopped } from '../../cli/until-stopped.js';

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

  log.info({ reason: await untilStopped(options.signal) }, 'simulated host stopping');
  await host.close();
}
