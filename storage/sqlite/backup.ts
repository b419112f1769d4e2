// An online copy of the SQLite store, taken while the server runs (docs/operations.md, "Back up
// and restore"). `VACUUM INTO` reads the store in one read transaction, so the copy is the store
// as of one commit, and in WAL mode the server's commits carry on meanwhile. The copy is written
// beside the destination, checked (`PRAGMA quick_check`), flushed and only then renamed into
// place: a backup interrupted at any point leaves no file under the destination's name.
import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { ensureDirectory } from '../../cli/ensure-directory.js';

export type BackupErrorCode = 'ERR_BACKUP_NO_STORE' | 'ERR_BACKUP_NOT_A_STORE' | 'ERR_BACKUP_EXISTS' | 'ERR_BACKUP_FAILED';

export class BackupError extends Error {
  readonly name = 'BackupError';
  constructor(
    readonly code: BackupErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface BackupResult {
  /** The backup file, absolute. */
  path: string;
  bytes: number;
  /** Container records in the copy. */
  records: number;
  schemaVersion: number;
  durationMs: number;
}

/** Copies the store at `source` to `destination`, which must not exist. Throws BackupError. */
export function backupSqliteStore(source: string, destination: string): BackupResult {
  const started = performance.now();
  const from = resolve(source);
  const to = resolve(destination);
  if (!existsSync(from)) throw new BackupError('ERR_BACKUP_NO_STORE', `no SQLite store at "${from}"`);
  if (existsSync(to)) throw new BackupError('ERR_BACKUP_EXISTS', `"${to}" already exists (a backup never overwrites a file)`);
  const partial = `${to}.partial-${process.pid}`;
  let db: Database.Database | undefined;
  try {
    try {
      db = new Database(from, { fileMustExist: true });
      db.pragma('busy_timeout = 5000');
    } catch (err) {
      throw new BackupError('ERR_BACKUP_FAILED', `cannot open "${from}": ${(err as Error).message}`, { cause: err });
    }
    const schemaVersion = storeSchemaVersion(db, from);
    ensureDirectory(dirname(to));
    // The file name is a bound parameter: VACUUM INTO takes an expression.
    db.prepare('VACUUM INTO ?').run(partial);
    const records = checkCopy(partial);
    flush(partial);
    renameSync(partial, to);
    flush(dirname(to));
    return { path: to, bytes: statSync(to).size, records, schemaVersion, durationMs: performance.now() - started };
  } catch (err) {
    try {
      rmSync(partial, { force: true });
    } catch {
      // Nothing was written there (its directory is missing or not a directory).
    }
    if (err instanceof BackupError) throw err;
    throw new BackupError('ERR_BACKUP_FAILED', `backup of "${from}" to "${to}" failed: ${(err as Error).message}`, { cause: err });
  } finally {
    db?.close();
  }
}

/**
 * The store's schema version; refuses a database that is not an ecs-id-mapper store. A newer
 * version than this build's is copied all the same: the copy needs no understanding of it.
 */
function storeSchemaVersion(db: Database.Database, path: string): number {
  let version: number;
  let containers: unknown;
  try {
    version = db.pragma('user_version', { simple: true }) as number;
    containers = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'containers'").get();
  } catch (err) {
    throw new BackupError('ERR_BACKUP_NOT_A_STORE', `"${path}" is not an ecs-id-mapper store: ${(err as Error).message}`, { cause: err });
  }
  if (version < 1 || containers === undefined) throw new BackupError('ERR_BACKUP_NOT_A_STORE', `"${path}" is not an ecs-id-mapper store (schema version ${version}, no containers table)`);
  return version;
}

/** Reads the copy back: SQLite's quick_check must pass. Returns its container record count. */
function checkCopy(path: string): number {
  const copy = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const check = copy.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new BackupError('ERR_BACKUP_FAILED', `the copy of the store failed SQLite's quick_check: ${String(check)}`);
    return (copy.prepare('SELECT count(*) AS n FROM containers').get() as { n: number }).n;
  } finally {
    copy.close();
  }
}

function flush(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

