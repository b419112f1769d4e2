// WAL checkpoints, off the request path.
//
// better-sqlite3 is synchronous, and SQLite's automatic checkpoint runs inside the commit that
// takes the WAL past 1,000 pages: that report copies every page written since the last checkpoint
// into the database file and fsyncs it while every other request waits on the event loop. A commit
// that writes more than 1,000 pages by itself (a 1,000-container host's snapshot writes about 1,600)
// paid for copying all of them, every time.
//
// A worker thread with its own connection runs PASSIVE checkpoints every few milliseconds. PASSIVE
// never takes the write lock, so commits carry on while the worker copies and fsyncs. What the
// worker cannot do is restart the WAL: SQLite starts writing the WAL from its beginning again only
// when a write transaction begins while every frame has been copied, and under a steady stream of
// commits a new one always lands while the worker is copying. So when the worker finds the WAL past
// 1,000 pages, it asks the main thread to catch up and waits: the main connection checkpoints,
// between two requests, the few frames committed since the worker's last pass, and the next commit
// restarts the WAL. The main connection's automatic checkpoint stays as a backstop far above that
// (BACKSTOP_PAGES), and goes back to SQLite's 1,000 pages should the worker fail: then commits
// checkpoint by themselves, as SQLite does by default, and the failure is logged once.
//
// (History, docs/architecture.md: a first version left restarts to the worker with a 64 MiB backstop,
// and at 2,000 hosts the worker rarely caught up; the next kept the 1,000-page automatic checkpoint,
// which every large commit paid for in full.)
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';

/** How often the worker checkpoints by default; an idle WAL costs a lock and a header read per tick. */
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 20;
/** WAL pages past which the worker asks the main connection to catch up (SQLite's own automatic threshold). */
export const DEFAULT_CATCH_UP_PAGES = 1000;
/** The main connection's automatic checkpoint while the worker runs: only if catching up falls far behind. */
export const BACKSTOP_PAGES = 10_000;
/** SQLite's default automatic checkpoint, which the main connection goes back to when the worker stops. */
export const SQLITE_DEFAULT_AUTOCHECKPOINT_PAGES = 1000;
/** How long the worker waits for the main thread to catch up before it carries on anyway. */
const CATCH_UP_WAIT_MS = 1000;

export interface CheckpointerOptions {
  intervalMs?: number;
  catchUpPages?: number;
  logger?: Pick<Logger, 'warn'>;
  /**
   * Runs on the main thread when the worker asks: a PASSIVE checkpoint on the main connection, so
   * that the next commit restarts the WAL. Without it the worker only copies pages.
   */
  catchUp?: () => void;
  /** Runs once when the worker stops other than by stop(): the main connection must checkpoint by itself again. */
  onFailure?: () => void;
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
let asked = -1;
let previous = 0;
let loud = 0;
const tick = () => {
  timer = undefined;
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    failing = false;
    // Frames committed since the previous pass: what the main thread would copy if asked now.
    const fresh = r.log >= previous ? r.log - previous : r.log;
    previous = r.log;
    // Past the threshold and not restarted: ask the main thread to catch up (once per WAL length),
    // and stay out of its way until it answers. Preferably after a pass that found little new, so
    // the main thread copies little (right after a big commit, the next pass copies it here
    // first); under a steady stream of commits, where no pass is quiet, after a few passes anyway.
    const due = workerData.catchUp && r.log >= workerData.catchUpPages && r.log !== asked;
    loud = due && fresh > workerData.askBelowPages ? loud + 1 : 0;
    if (due && (loud === 0 || loud >= workerData.loudPasses)) {
      loud = 0;
      asked = r.log;
      parentPort.postMessage({ catchUp: r.log });
      timer = setTimeout(tick, workerData.catchUpWaitMs);
      return;
    }
  } catch (err) {
    // Reported once per run of failures, not every tick.
    if (!failing) parentPort.postMessage({ failed: String(err && err.message) });
    failing = true;
  }
  timer = setTimeout(tick, workerData.intervalMs);
};
timer = setTimeout(tick, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'caught-up') {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(tick, workerData.intervalMs);
    return;
  }
  clearTimeout(timer);
  db.close();
  parentPort.close();
});
`;

/** Starts checkpointing the WAL of the database file at `path` from a worker thread. Not for `:memory:`. */
export function startCheckpointer(path: string, options: CheckpointerOptions = {}): Checkpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const intervalMs = options.intervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
  const catchUp = options.catchUp;
  const catchUpPages = options.catchUpPages ?? DEFAULT_CATCH_UP_PAGES;
  const workerData = { driver, path, intervalMs, catchUp: catchUp !== undefined, catchUpPages, askBelowPages: Math.ceil(catchUpPages / 5), loudPasses: 5, catchUpWaitMs: CATCH_UP_WAIT_MS };
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
  worker.on('message', (m: { failed?: string; catchUp?: number }) => {
    if (m.failed) options.logger?.warn({ path, err: m.failed }, 'sqlite background checkpoint failed; the backstop checkpoint in commits bounds the WAL meanwhile');
    if (m.catchUp !== undefined && catchUp && !stopping) {
      try {
        catchUp();
      } catch (err) {
        // A busy or closing database: the worker asks again at its next tick.
        options.logger?.warn({ path, err: (err as Error).message }, 'sqlite checkpoint catch-up failed');
      }
      worker.postMessage('caught-up');
    }
  });
  let stopping = false;
  let lastError: string | undefined;
  worker.on('error', (err) => {
    lastError = err.message;
  });
  const exited = new Promise<void>((resolve) => {
    worker.once('exit', (code) => {
      if (!stopping) {
        options.logger?.warn({ path, reason: lastError ?? `exit code ${code}` }, 'sqlite checkpoint worker stopped; commits checkpoint by themselves');
        options.onFailure?.();
      }
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
        worker.postMessage({ stop: true });
      }
      return exited;
    },
  };
}
