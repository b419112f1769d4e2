// WAL checkpoints off the request path.
//
// better-sqlite3 is synchronous, and SQLite's automatic checkpoint runs inside the commit that
// crosses the threshold: that report copied megabytes of WAL frames into the database file and
// fsync'd it while every other request waited on the event loop (the tail of the fleet ingest
// latency, docs/benchmarks.md). Here a worker thread with its own connection runs PASSIVE
// checkpoints on a timer; PASSIVE never takes the write lock, so commits on the main connection
// carry on meanwhile, and the WAL restarts from its beginning once a checkpoint has caught up.
//
// The main connection keeps a large automatic checkpoint as a backstop: should the worker fail or
// fall behind, the WAL is still bounded (and the failure is logged).
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';

/** Pages (4 KiB) of WAL at which the main connection checkpoints by itself: 64 MiB. */
export const BACKSTOP_AUTOCHECKPOINT_PAGES = 16_384;

export interface CheckpointerOptions {
  /** How often the worker checkpoints (default 20 ms; an idle WAL costs a lock and a read). */
  intervalMs?: number;
  logger?: Pick<Logger, 'warn'>;
}

export interface Checkpointer {
  /** Stops the worker and closes its connection. */
  stop(): Promise<void>;
}

// Plain CommonJS evaluated in the worker, so it runs the same from dist/ and from the TypeScript
// sources under test. It only ever runs PRAGMA wal_checkpoint(PASSIVE) on the file it was given.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 1000');
let failures = 0;
let timer;
// The WAL only restarts from its beginning after a checkpoint has copied every frame and no commit
// came in meanwhile: frequent small checkpoints catch up between a steady writer's commits, where
// one every 250 ms lagged behind and left the restarts (and their stalls) to the backstop.
const tick = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
    failures = 0;
  } catch (err) {
    // Reported once per run of failures, not every tick.
    if (failures++ === 0) parentPort.postMessage({ failed: String(err && err.message) });
  }
  timer = setTimeout(tick, workerData.intervalMs);
};
timer = setTimeout(tick, workerData.intervalMs);
parentPort.on('message', () => {
  clearTimeout(timer);
  db.close();
  parentPort.close();
});
`;

/**
 * Starts checkpointing `path` from a worker thread and raises the main connection's automatic
 * checkpoint to the backstop. Not for `:memory:` databases (no WAL).
 */
export function startCheckpointer(db: Database.Database, path: string, options: CheckpointerOptions = {}): Checkpointer {
  db.pragma(`wal_autocheckpoint = ${BACKSTOP_AUTOCHECKPOINT_PAGES}`);
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver, path, intervalMs: options.intervalMs ?? 20 } });
  // The worker must never keep the process alive on its own; stop() is how it ends.
  worker.unref();
  worker.on('message', (m: { failed?: string }) => {
    if (m.failed) options.logger?.warn({ path, err: m.failed }, 'sqlite background checkpoint failed; the WAL is bounded by the automatic checkpoint');
  });
  const restoreAutocheckpoint = (reason: string) => {
    options.logger?.warn({ path, reason }, 'sqlite checkpoint worker stopped; checkpoints run on commit again');
    try {
      db.pragma('wal_autocheckpoint = 1000');
    } catch {
      // The store is closing.
    }
  };
  let stopping = false;
  let lastError: string | undefined;
  worker.on('error', (err) => {
    lastError = err.message;
  });
  const exited = new Promise<void>((resolve) => {
    worker.once('exit', (code) => {
      if (!stopping) restoreAutocheckpoint(lastError ?? `exit code ${code}`);
      resolve();
    });
  });
  return {
    async stop() {
      if (stopping) return exited;
      stopping = true;
      worker.postMessage('stop');
      return exited;
    },
  };
}
