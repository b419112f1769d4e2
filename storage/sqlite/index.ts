// The SQLite backend's entry: opens (creating the directory and schema as needed) and returns a Store.
import { accessSync, constants, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { StoreUnavailableError } from '../store.js';
import { HistoryBound } from '../history-bound.js';
import { startCheckpointer } from './checkpointer.js';
import { migrate, SCHEMA_VERSION } from './schema.js';
import { SqliteStore } from './sqlite-store.js';
import { DEFAULT_CACHE_SIZE_BYTES, DEFAULT_MMAP_SIZE_BYTES } from './sizes.js';
import { ensureDirectory } from '../../cli/ensure-directory.js';

export { SqliteStore } from './sqlite-store.js';
export { SCHEMA_VERSION, SchemaVersionError } from './schema.js';
export { DEFAULT_CACHE_SIZE_BYTES, DEFAULT_MMAP_SIZE_BYTES, SQLITE_MAX_MMAP_BYTES } from './sizes.js';

export interface SqliteOptions {
  /** A file path, or `:memory:`. */
  path: string;
  logger?: Logger;
  /** How long a writer waits for another connection's lock before failing (default 5000 ms). */
  busyTimeoutMs?: number;
  /** SQLite's own page cache, in bytes (default 8 MiB; SQLite's default is 2 MiB). */
  cacheSizeBytes?: number;
  /** How much of the file is read through a memory map instead of read() calls (default: SQLite's maximum, 2 GiB - 64 KiB; 0 disables). */
  mmapSizeBytes?: number;
  /** How often a worker thread checkpoints the WAL (default 20 ms; checkpointer.ts); 0 leaves checkpoints to the commits. */
  checkpointIntervalMs?: number;
  /** Rows of history kept per container (default DEFAULT_HISTORY_LIMIT; 0 keeps all): storage/history-bound.ts. */
  historyLimit?: number;
}

const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

/**
 * Opens the store. Throws StoreUnavailableError naming the path when the directory cannot be
 * created or the file cannot be opened as a database, and SchemaVersionError for a newer schema.
 */
export function openSqliteStore(options: SqliteOptions): SqliteStore {
  const { path, logger } = options;
  const memory = path === ':memory:';
  const where = memory ? ':memory:' : resolve(path);
  let db: Database.Database | undefined;
  try {
    if (!memory) ensureDirectory(dirname(where));
    db = new Database(memory ? ':memory:' : where);
    // WAL lets readers run while a report is written; NORMAL is durable across process crashes. An
    // OS crash may lose the last acknowledged commits: the reconciler's next full snapshot restores
    // the records, not the history rows of those transitions (docs/architecture.md).
    const journal = db.pragma('journal_mode = WAL', { simple: true });
    db.pragma('synchronous = NORMAL');
    // Statement journals in memory. A statement that can fail half-way (an upsert, a row with
    // triggers, an INSERT OR IGNORE inside a transaction) first copies each page it changes into a
    // statement journal, and SQLite moves that journal to a temporary file once it passes 64 KiB:
    // 16 pages, which one upsert of a container row with its nine indexes reaches. In a file, each
    // spilled page was a write() per statement; in memory, the original agent's map (every row
    // touched) ingested about a fifth faster per container (docs/benchmarks.md, snapshot curves).
    // The journal lives only as long as its statement. Temporary sort tables live in memory too:
    // the three queries that use one (byLegacyKey, pendingEvents, countByState) sort a handful of rows.
    db.pragma('temp_store = MEMORY');
    db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
    // Negative cache_size is in KiB. Both values are numbers (the config module checked the flags'),
    // never text from input.
    const cacheSizeBytes = Math.trunc(options.cacheSizeBytes ?? DEFAULT_CACHE_SIZE_BYTES);
    const mmapSizeBytes = memory ? 0 : Math.trunc(options.mmapSizeBytes ?? DEFAULT_MMAP_SIZE_BYTES);
    db.pragma(`cache_size = -${Math.max(1, Math.trunc(cacheSizeBytes / 1024))}`);
    if (!memory) db.pragma(`mmap_size = ${mmapSizeBytes}`);
    // After a burst (a fleet's first reports), the WAL file is cut back to this size when it restarts.
    db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    const found = migrate(db);
    logger?.info({ path: where, journal_mode: journal, schema_version: SCHEMA_VERSION, migrated_from: found, cache_size_bytes: cacheSizeBytes, mmap_size_bytes: mmapSizeBytes }, 'sqlite store open');
    const checkpointer = memory || options.checkpointIntervalMs === 0 ? undefined : startCheckpointer(where, { intervalMs: options.checkpointIntervalMs, logger });
    return new SqliteStore(db, checkpointer, new HistoryBound(options.historyLimit));
  } catch (err) {
    db?.close();
    if (err instanceof Error && 'code' in err && err.code === 'ERR_SCHEMA_VERSION') throw err;
    const sqliteCode = String((err as { code?: unknown } | null)?.code ?? '');
    const cannotOpen = !memory && (sqliteCode.startsWith('SQLITE_CANTOPEN') || sqliteCode.startsWith('SQLITE_READONLY'));
    const reason = (cannotOpen ? whyNotOpened(where) : undefined) ?? (err instanceof Error ? err.message : String(err));
    throw new StoreUnavailableError(`cannot open the SQLite store at "${where}": ${reason}`, { cause: err });
  }
}

/**
 * SQLite says "unable to open database file" (or "readonly database") whatever stopped it. The two causes an operator meets
 * most are named instead: a directory given as the store, and a file or directory the server's
 * user may not write (the store's -wal and -shm files are created beside it). Undefined: neither.
 */
function whyNotOpened(path: string): string | undefined {
  try {
    if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) return 'it is a directory; give the path of a file in it (sqlite:DIR/ecs-id-mapper.db)';
    accessSync(dirname(path), constants.W_OK | constants.X_OK);
    if (statSync(path, { throwIfNoEntry: false })) accessSync(path, constants.R_OK | constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return `permission denied (${code}): the server's user must be able to write the file and its directory`;
  }
  return undefined;
}
