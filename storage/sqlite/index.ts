// The SQLite backend's entry: opens (creating the directory and schema as needed) and returns a Store.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { StoreUnavailableError } from '../store.js';
import { migrate, SCHEMA_VERSION } from './schema.js';
import { SqliteStore } from './sqlite-store.js';

export { SqliteStore } from './sqlite-store.js';
export { SCHEMA_VERSION, SchemaVersionError } from './schema.js';

export interface SqliteOptions {
  /** A file path, or `:memory:`. */
  path: string;
  logger?: Logger;
  /** How long a writer waits for another connection's lock before failing (default 5000 ms). */
  busyTimeoutMs?: number;
}

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
    if (!memory) mkdirSync(dirname(where), { recursive: true });
    db = new Database(memory ? ':memory:' : where);
    // WAL lets readers run while a report is written; NORMAL is durable across process crashes
    // (an OS crash may lose the last commits, which the reconciler's outbox re-sends).
    const journal = db.pragma('journal_mode = WAL', { simple: true });
    db.pragma('synchronous = NORMAL');
    db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
    const found = migrate(db);
    logger?.info({ path: where, journal_mode: journal, schema_version: SCHEMA_VERSION, migrated_from: found }, 'sqlite store open');
    return new SqliteStore(db);
  } catch (err) {
    db?.close();
    if (err instanceof Error && 'code' in err && err.code === 'ERR_SCHEMA_VERSION') throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw new StoreUnavailableError(`cannot open the SQLite store at "${where}": ${reason}`, { cause: err });
  }
}
