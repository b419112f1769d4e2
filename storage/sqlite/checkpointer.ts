// WAL checkpoints, mostly off the request path.
//
// better-sqlite3 is synchronous, and SQLite's automatic checkpoint runs inside the commit that
// takes the WAL past 1,000 pages: that report copies every page written since the last checkpoint
// into the database file and fsyncs it while every other request waits on the event loop.
//
// A worker thread with its own connection runs PASSIVE checkpoints every few milliseconds. PASSIVE
// never takes the write lock, so commits carry on while the worker copies and fsyncs. The main
// connection keeps SQLite's automatic checkpoint at its default 1,000 pages: by the time a commit
// crosses it, the worker has copied most of the WAL, and the main connection copies only the rest.
// Because that checkpoint runs inside the writer, no frame can be appended while it runs, so it
// catches up and the next commit restarts the WAL from its beginning. The one exception: a PASSIVE
// checkpoint that finds the worker's own in progress gives up at once. On a stalled disk the
// worker's fsync can take seconds, and the WAL grows by whatever is written meanwhile (CI once saw
// 5,000 pages) -- rather than every request waiting out the stall, as it would if the commit did the
// checkpoint -- and restarts at the first commit after the worker's checkpoint ends. (A first version raised the main connection's threshold to 64 MiB and
// left restarts to the worker; at 2,000 hosts the worker rarely caught up between commits and the
// large backstop checkpoints made the tail worse: docs/architecture.md.)
//
// Should the worker fail, nothing changes but speed: commits checkpoint by themselves, as SQLite
// does by default, and the failure is logged once.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';

/** How often the worker checkpoints by default; an idle WAL costs a lock and a header read per tick. */
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 20;

export interface CheckpointerOptions {
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
let failing = false;
let timer;
const tick = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
    failing = false;
  } catch (err) {
    // Reported once per run of failures, not every tick.
    if (!failing) parentPort.postMessage({ failed: String(err && err.message) });
    failing = true;
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

/** Starts checkpointing the WAL of the database file at `path` from a worker thread. Not for `:memory:`. */
export function startCheckpointer(path: string, options: CheckpointerOptions = {}): Checkpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const intervalMs = options.intervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver, path, intervalMs } });
  worker.on('message', (m: { failed?: string }) => {
    if (m.failed) options.logger?.warn({ path, err: m.failed }, 'sqlite background checkpoint failed; commits checkpoint by themselves meanwhile');
  });
  let stopping = false;
  let lastError: string | undefined;
  worker.on('error', (err) => {
    lastError = err.message;
  });
  const exited = new Promise<void>((resolve) => {
    worker.once('exit', (code) => {
      if (!stopping) options.logger?.warn({ path, reason: lastError ?? `exit code ${code}` }, 'sqlite checkpoint worker stopped; commits checkpoint by themselves');
      resolve();
    });
  });
  // The worker must never keep the process alive on its own; stop() is how it ends. After the
  // listeners: adding a 'message' listener refs the worker's port again.
  worker.unref();
  return {
    stop() {
      if (!stopping) {
        stopping = true;
        // Referenced again while it winds down: a process awaiting this with nothing else to do
        // would otherwise exit before the worker does (and before whatever follows the await).
        worker.ref();
        worker.postMessage('stop');
      }
      return exited;
    },
  };
}
