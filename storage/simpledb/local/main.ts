// `ecs-id-mapper simpledb-local`: runs the SimpleDB-compatible endpoint until SIGTERM/SIGINT.
// Prints one JSON line with the URL once listening, so scripts can wait for it; request logs
// (debug) and problems (error) go to stderr as JSON lines.
import type { SimpleDbLocalConfig } from '../../../config/index.js';
import { startSimpleDbLocal } from './server.js';
import { untilStopped } from '../../../cli/until-stopped.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

export interface RunSimpleDbLocalOptions {
  /** Stops the endpoint when aborted (tests); SIGTERM/SIGINT always do. */
  signal?: AbortSignal;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

export async function runSimpleDbLocal(config: SimpleDbLocalConfig, options: RunSimpleDbLocalOptions = {}): Promise<void> {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const threshold = config.logLevel === 'silent' ? Number.POSITIVE_INFINITY : LEVELS.indexOf(config.logLevel);
  const local = await startSimpleDbLocal({
    host: config.host,
    port: config.port,
    dataFile: config.dataFile,
    accessKeyId: config.accessKeyId,
    secretAccessKey: config.secretAccessKey,
    faults: { failureRate: config.failureRate, latencyMs: config.latencyMs, staleReads: config.staleReads },
    log: (entry) => {
      if (LEVELS.indexOf(String(entry.level)) >= threshold) {
        stderr.write(`${JSON.stringify({ time: new Date().toISOString(), service: 'simpledb-local', ...entry })}\n`);
      }
    },
  });
  stdout.write(`${JSON.stringify({ event: 'listening', service: 'simpledb-local', url: local.url, admin: `${local.url}/__admin/faults` })}\n`);
  await untilStopped(options.signal);
  await local.close();
}
