// Backup and restore of the SQLite store (docs/operations.md, "Back up and restore").
// - Backup runs while the server does. `VACUUM INTO` reads the store in one read transaction, so
//   the copy is the store as of one commit, and in WAL mode the server's commits carry on.
// - Restore runs while no process has the store open (it checks by taking SQLite's exclusive
//   lock). It never deletes: the store it replaces is renamed aside together with its -wal and
//   -shm files. A WAL left beside a different database file would be applied to it and corrupt it,
//   which is the mistake a restore by hand invites.
// - Every file is written beside its destination, checked (`PRAGMA quick_check`), flushed and only
//   then renamed into place: an interruption at any point leaves no half-written file under the
//   destination's name.
import { accessSync, chmodSync, closeSync, constants, copyFileSync, existsSync, fsyncSync, openSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { ensureDirectory } from '../../cli/ensure-directory.js';
import { SCHEMA_VERSION } from './schema.js';

export type BackupErrorCode = 'ERR_BACKUP_NO_STORE' | 'ERR_BACKUP_NOT_A_STORE' | 'ERR_BACKUP_EXISTS' | 'ERR_BACKUP_FAILED' | 'ERR_STORE_IN_USE' | 'ERR_BACKUP_TOO_NEW';

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
  refuseDirectory(from, "the store's file (sqlite:DIR/ecs-id-mapper.db)");
  refuseDirectory(to, 'a file for the backup, in it or elsewhere');
  if (existsSync(to)) throw new BackupError('ERR_BACKUP_EXISTS', `"${to}" already exists (a backup never overwrites a file)`);
  const partial = `${to}.partial-${process.pid}`;
  const scratch = `${to}.source-${process.pid}`;
  let db: Database.Database | undefined;
  try {
    db = openFile(from);
    let schemaVersion: number;
    try {
      schemaVersion = storeSchemaVersion(db, from);
    } catch (err) {
      if (!inReadOnlyDirectory(err, from)) throw err;
      db.close();
      db = openStoppedCopy(from, scratch);
      schemaVersion = storeSchemaVersion(db, from);
    }
    writableDirectory(dirname(to), 'the backup');
    // The file name is a bound parameter: VACUUM INTO takes an expression.
    db.prepare('VACUUM INTO ?').run(partial);
    const records = checkCopy(partial);
    flush(partial);
    renameSync(partial, to);
    flush(dirname(to));
    return { path: to, bytes: statSync(to).size, records, schemaVersion, durationMs: performance.now() - started };
  } catch (err) {
    removeWithJournals(partial);
    if (err instanceof BackupError) throw err;
    throw new BackupError('ERR_BACKUP_FAILED', `backup of "${from}" to "${to}" failed: ${(err as Error).message}`, { cause: err });
  } finally {
    db?.close();
    removeWithJournals(scratch);
  }
}

/**
 * A WAL-mode store cannot be opened where its -shm file can be neither found nor created: a store
 * in a read-only directory (a read-only mount, a snapshot of a volume) with no server running.
 */
function inReadOnlyDirectory(err: unknown, store: string): boolean {
  const code = ((err as { cause?: { code?: string } }).cause?.code ?? '') as string;
  if (!code.startsWith('SQLITE_CANTOPEN') || existsSync(`${store}-shm`)) return false;
  try {
    accessSync(dirname(store), constants.W_OK);
    return false;
  } catch {
    return true;
  }
}

/**
 * No server can be writing to a store in a read-only directory without a -shm file beside it, so
 * the file alone is the database, unless a write-ahead log was left there. It is copied beside the
 * destination and the backup is made from the copy, so the backup is checked and named like any other.
 */
function openStoppedCopy(store: string, scratch: string): Database.Database {
  copyStopped(store, scratch);
  return openFile(scratch);
}

/** Copies a store from a read-only directory (see openStoppedCopy), refusing one whose WAL SQLite could not read there. */
function copyStopped(store: string, copy: string): void {
  if (existsSync(`${store}-wal`) && statSync(`${store}-wal`).size > 0) {
    throw new BackupError(
      'ERR_BACKUP_FAILED',
      `"${store}" is in a read-only directory with a write-ahead log beside it and no -shm file: SQLite cannot read it there; copy the directory somewhere writable and use the copy`,
    );
  }
  ensureDirectory(dirname(copy));
  copyFileSync(store, copy);
}

/**
 * Creates `dir` if need be and makes sure this process may create files in it: a read-only file
 * system or a directory of another user is named as such, not as the error of a temporary file's
 * open deep inside SQLite or the copy.
 */
function writableDirectory(dir: string, what: string): void {
  try {
    ensureDirectory(dir);
    accessSync(dir, constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'EROFS' ? 'it is on a read-only file system' : code === 'EACCES' || code === 'EPERM' ? 'this user may not write there' : (err as Error).message;
    throw new BackupError('ERR_BACKUP_FAILED', `cannot write ${what} in "${dir}": ${why}`, { cause: err });
  }
}

export interface RestoreResult {
  /** The store, absolute. */
  path: string;
  records: number;
  schemaVersion: number;
  /** Where the store it replaced went (its -wal and -shm files beside it); undefined when there was none. */
  replacedKeptAs: string | undefined;
  durationMs: number;
}

/** A directory where a file is meant: refused by name, where SQLite and the copy said EISDIR or "unable to open". */
function refuseDirectory(path: string, want: string): void {
  let directory = false;
  try {
    directory = statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
  } catch {
    // ENOTDIR, EACCES: not a directory we can see; the copy itself will say what is wrong.
  }
  if (directory) throw new BackupError('ERR_BACKUP_FAILED', `"${path}" is a directory; give the path of ${want}`);
}

/** The same file under two paths (a link, `./` against an absolute path). */
function sameFile(a: string, b: string): boolean {
  const x = statSync(a);
  const y = statSync(b);
  return x.dev === y.dev && x.ino === y.ino;
}

/**
 * Puts the backup at `backup` in place of the store at `store`, which no process may have open.
 * Throws BackupError: ERR_STORE_IN_USE while the server runs, ERR_BACKUP_TOO_NEW for a backup
 * this build's server could not open.
 */
export function restoreSqliteStore(store: string, backup: string, now: Date = new Date()): RestoreResult {
  const started = performance.now();
  const to = resolve(store);
  const from = resolve(backup);
  if (!existsSync(from)) throw new BackupError('ERR_BACKUP_NO_STORE', `no backup at "${from}"`);
  refuseDirectory(from, 'a backup file');
  refuseDirectory(to, "the store's file (sqlite:DIR/ecs-id-mapper.db)");
  // A mistake, not a restore: the result would be the store it is, its old name taken by a copy.
  if (existsSync(to) && sameFile(from, to)) throw new BackupError('ERR_BACKUP_FAILED', `"${from}" is the store itself: give the path of a backup`);
  writableDirectory(dirname(to), 'the store');
  // Refused before a copy that may be long; moveAside takes the lock again just before the rename.
  if (existsSync(to) && hasSqliteHeader(to)) closeIfUnused(to);
  // The store's own mode, not the backup's: a backup is often kept read-only, and a copy of its
  // mode was a store the server could not open (EACCES). SQLite creates a new store 0644.
  const mode = existsSync(to) ? statSync(to).mode & 0o7777 : 0o644;
  // The backup is copied and checked beside the store before the store is moved aside: a restore
  // that fails (a bad backup, a full disk) leaves the store where it was.
  const partial = `${to}.restoring-${process.pid}`;
  let replacedKeptAs: string | undefined;
  let checked: { schemaVersion: number; records: number };
  try {
    try {
      checked = checkedBackup(from, from);
      copyFileSync(from, partial);
    } catch (err) {
      if (!inReadOnlyDirectory(err, from)) throw err;
      // A stopped store in a read-only directory (see openStoppedCopy): the copy is what is checked.
      copyStopped(from, partial);
      checked = checkedBackup(partial, from);
    }
    chmodSync(partial, mode);
    flush(partial);
    if (existsSync(to)) replacedKeptAs = moveAside(to, freeName(`${to}.before-restore-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '')}`));
    renameSync(partial, to);
    flush(dirname(to));
  } catch (err) {
    removeWithJournals(partial);
    if (err instanceof BackupError) throw err;
    throw new BackupError('ERR_BACKUP_FAILED', `restore of "${from}" to "${to}" failed: ${(err as Error).message}${replacedKeptAs ? ` (the store it was to replace is ${replacedKeptAs})` : ''}`, { cause: err });
  }
  const { schemaVersion, records } = checked;
  // A byte copy of the checked file, flushed: it needs no second check.
  return { path: to, records, schemaVersion, replacedKeptAs, durationMs: performance.now() - started };
}

/**
 * A backup fit to restore: a store, of a schema this build opens, that passes quick_check. `path`
 * is the file read, `shownAs` the backup the user named (they differ for a copy of it).
 */
function checkedBackup(path: string, shownAs: string): { schemaVersion: number; records: number } {
  const db = openFile(path, shownAs);
  let schemaVersion: number;
  let records: number;
  try {
    schemaVersion = storeSchemaVersion(db, shownAs);
    if (schemaVersion > SCHEMA_VERSION) throw new BackupError('ERR_BACKUP_TOO_NEW', `"${shownAs}" has schema version ${schemaVersion}, newer than this build's ${SCHEMA_VERSION}: restore it with the build that wrote it`);
    records = checkedRecords(db, shownAs);
  } finally {
    db.close();
  }
  // Closing folded its WAL into it, unless another process has it open: then the file alone is
  // not the database, and copying it would restore an older, maybe torn, state.
  if (existsSync(`${path}-wal`) && statSync(`${path}-wal`).size > 0) {
    throw new BackupError('ERR_STORE_IN_USE', `"${shownAs}" is open in another process (a live store, not a backup): copy it with \`ecs-id-mapper backup\` first`);
  }
  return { schemaVersion, records };
}

/**
 * Renames the store and its -wal and -shm files to `keptAs`(-wal, -shm) once SQLite's exclusive
 * lock shows no other process has it open. A store is closed first, which folds its WAL into the
 * file. A file without SQLite's header (what a restore is often for) is moved as it is, unopened:
 * SQLite deletes the WAL beside such a file when it closes it, and no server can have it open.
 */
function moveAside(store: string, keptAs: string): string {
  if (hasSqliteHeader(store)) closeIfUnused(store);
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(store + suffix)) renameSync(store + suffix, keptAs + suffix);
  }
  return keptAs;
}

/** Takes and drops SQLite's exclusive lock on the store; ERR_STORE_IN_USE when another connection holds it. */
function closeIfUnused(store: string): void {
  let db: Database.Database | undefined;
  try {
    db = new Database(store, { fileMustExist: true });
    db.pragma('busy_timeout = 0');
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE; COMMIT');
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      throw new BackupError('ERR_STORE_IN_USE', `the store at "${store}" is open in another process: stop the server first`, { cause: err });
    }
    // Damaged beyond its header: it is moved aside as it is.
  } finally {
    db?.close();
  }
}

/** `name`, or `name-2`, `-3`... : the first that no file (nor its -wal or -shm) has taken. */
function freeName(name: string): string {
  const taken = (candidate: string) => ['', '-wal', '-shm'].some((suffix) => existsSync(candidate + suffix));
  let candidate = name;
  for (let n = 2; taken(candidate); n++) candidate = `${name}-${n}`;
  return candidate;
}

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

function hasSqliteHeader(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(SQLITE_HEADER.length);
    return readSync(fd, head, 0, head.length, 0) === head.length && head.equals(SQLITE_HEADER);
  } finally {
    closeSync(fd);
  }
}

function openFile(path: string, shownAs = path): Database.Database {
  try {
    const db = new Database(path, { fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    return db;
  } catch (err) {
    throw new BackupError('ERR_BACKUP_FAILED', `cannot open "${shownAs}": ${(err as Error).message}`, { cause: err });
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
    // Only SQLite's own verdict on the file's content says it is not a store; anything else
    // (unable to open, permission denied, I/O) says nothing about what the file is.
    const code = (err as { code?: string }).code ?? '';
    if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
      throw new BackupError('ERR_BACKUP_NOT_A_STORE', `"${path}" is not an ecs-id-mapper store: ${(err as Error).message}`, { cause: err });
    }
    throw new BackupError('ERR_BACKUP_FAILED', `cannot read "${path}": ${(err as Error).message}`, { cause: err });
  }
  if (version < 1 || containers === undefined) throw new BackupError('ERR_BACKUP_NOT_A_STORE', `"${path}" is not an ecs-id-mapper store (schema version ${version}, no containers table)`);
  return version;
}

/** Reads a copy back: SQLite's quick_check must pass. Returns its container record count. */
function checkCopy(path: string): number {
  const copy = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return checkedRecords(copy, path);
  } finally {
    copy.close();
  }
}

/** The container records of a database that passes SQLite's quick_check; BackupError otherwise. */
function checkedRecords(db: Database.Database, path: string): number {
  const check = db.pragma('quick_check', { simple: true });
  if (check !== 'ok') throw new BackupError('ERR_BACKUP_FAILED', `"${path}" fails SQLite's quick_check: ${String(check)}`);
  return (db.prepare('SELECT count(*) AS n FROM containers').get() as { n: number }).n;
}

/** Removes a database file of ours and the journal files SQLite may have left beside it. */
function removeWithJournals(path: string): void {
  for (const suffix of ['', '-journal', '-wal', '-shm']) removeQuietly(path + suffix);
}

/** Removes a file that may not exist; a failure means nothing was written there. */
function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {
    // Its directory is missing or not a directory.
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

