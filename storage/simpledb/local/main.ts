// `ecs-id-mapper simpledb-local`: runs the SimpleDB-compatible endpoint until SIGTERM/SIGINT.
// Prints one JSON line with the URL once listening, so scripts can wait for it.
import type { SimpleDbLocalConfig } from '../../../config/index.js';
import { startSimpleDbLocal } from './server.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

export async function runSimpleDbLocal(config: SimpleDbLocalConfig): Promise<void> {
  const threshold = config.logLevel === 'silent' ? Number.POSITIVE_INFINITY : LEVELS.indexOf(config.logLevel);
  const local = await startSimpleDbLocal({
    host: config.host,
    port: config.port,
    dataFile: config.dataFile,
    accessKeyId: config.accessKeyId,
    secretAccessKey: config.secretAccessKey,
    faults: { failureRate: config.failureRate, latencyMs: config.latencyMs, staleReads: config.staleReads },
    log: (entry) => {
      if (LEVELS.indexOf(String(entry.level)) >= threshold) process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
    },
  });
  process.stdout.write(`${JSON.stringify({ event: 'listening', service: 'simpledb-local', url: local.url })}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  await local.close();
}
