import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { at, containerId, hostIdentity, snapshot, snapshotContainer } from '../store.fixtures.js';
import { backupSqliteStore, restoreSqliteStore } from './backup.js';
import { openSqliteStore, SCHEMA_VERSION, type SqliteStore } from './index.js';

const temps: string[] = [];
const stores: SqliteStore[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-backup-'));
  temps.push(dir);
  return dir;
}
const root = process.getuid?.() === 0;
const canMount = root || process.env.CI === 'true';
/** Read-only directories made by readOnlyDirectory: tmpfs mounts (root) or 0555 directories. */
const readOnly: { path: string; mounted: boolean }[] = [];
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
  for (const { path, mounted } of readOnly.splice(0)) {
    if (mounted) execFileSync('umount', [path]);
    else chmodSync(path, 0o755);
  }
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A store with `n` running containers on one host, left open as a running server holds it. */
async function storeWith(path: string, n: number): Promise<SqliteStore> {
  const store = openSqliteStore({ path });
  stores.push(store);
  const containers = Array.from({ length: n }, (_, i) => snapshotContainer('running', { container_id: containerId(i + 1) }));
  await store.replaceSnapshot(snapshot(hostIdentity(), 1, containers), at(1));
  return store;
}

/**
 * `<dir>/ro`, filled by `fill` and then made read-only: for root (whom file modes do not stop) a
 * tmpfs remounted read-only, for anyone else mode 0555.
 */
async function readOnlyDirectory(dir: string, fill: (inside: string) => Promise<void>): Promise<string> {
  const inside = join(dir, 'ro');
  mkdirSync(inside);
  if (root) execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', inside]);
  readOnly.push({ path: inside, mounted: root });
  await fill(inside);
  if (root) execFileSync('mount', ['-o', 'remount,ro', inside]);
  else chmodSync(inside, 0o555);
  return inside;
}

/**
 * `<dir>/small`, a tmpfs of `kib` KiB: a disk that fills up. Only root can mount one: elsewhere the
 * tests that need it are skipped, except under CI, which runs as root and must not lose them unseen.
 */
function smallDirectory(dir: string, kib: number): string {
  const inside = join(dir, 'small');
  mkdirSync(inside);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k`, 'tmpfs', inside]);
  readOnly.push({ path: inside, mounted: true });
  return inside;
}

describe('backupSqliteStore', () => {
  it('copies a store that is open and has commits still in its WAL, and the copy opens as a store with the same records and history', async () => {
    const dir = tempDir();
    const source = join(dir, 'store.db');
    const live = await storeWith(source, 3);
    // The server keeps its WAL: the last commits live only there until a checkpoint.
    expect(existsSync(`${source}-wal`)).toBe(true);

    const result = backupSqliteStore(source, join(dir, 'backups', 'copy.db'));

    expect(result).toMatchObject({ path: join(dir, 'backups', 'copy.db'), records: 3, schemaVersion: SCHEMA_VERSION });
    expect(result.bytes).toBeGreaterThan(0);
    const copy = openSqliteStore({ path: result.path });
    stores.push(copy);
    for (let i = 1; i <= 3; i++) {
      const [original, copied] = await Promise.all([live.getContainer(containerId(i)), copy.getContainer(containerId(i))]);
      expect(copied).toEqual(original);
      expect(await copy.history(containerId(i))).toEqual(await live.history(containerId(i)));
    }
    expect(await copy.listHosts()).toEqual(await live.listHosts());
  });

  it('is the store as of one commit: later writes to the store do not reach the copy', async () => {
    const dir = tempDir();
    const source = join(dir, 'store.db');
    const live = await storeWith(source, 2);
    const result = backupSqliteStore(source, join(dir, 'copy.db'));
    await live.replaceSnapshot(snapshot(hostIdentity(), 2, [snapshotContainer('running', { container_id: containerId(9) })]), at(2));
    const copy = openSqliteStore({ path: result.path });
    stores.push(copy);
    expect((await copy.getContainer(containerId(9))).kind).toBe('missing');
    expect((await copy.getContainer(containerId(1))).kind).toBe('found');
  });

  it('never overwrites: an existing destination is refused and left as it was', async () => {
    const dir = tempDir();
    const source = join(dir, 'store.db');
    await storeWith(source, 1);
    const existing = join(dir, 'precious.db');
    writeFileSync(existing, 'yesterday');
    expect(() => backupSqliteStore(source, existing)).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_EXISTS', message: `"${existing}" already exists (a backup never overwrites a file)` }));
    expect(readFileSync(existing, 'utf8')).toBe('yesterday');
  });

  it('refuses a missing store, a file that is not a database and a database that is not a store, writing nothing', () => {
    const dir = tempDir();
    const destination = join(dir, 'copy.db');
    expect(() => backupSqliteStore(join(dir, 'absent.db'), destination)).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_NO_STORE' }));

    const garbage = join(dir, 'garbage.db');
    writeFileSync(garbage, 'x'.repeat(4096));
    expect(() => backupSqliteStore(garbage, destination)).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_NOT_A_STORE', message: expect.stringContaining('file is not a database') }));

    const other = join(dir, 'other.db');
    const db = new Database(other);
    db.exec('CREATE TABLE notes (text TEXT)');
    db.close();
    expect(() => backupSqliteStore(other, destination)).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_NOT_A_STORE', message: `"${other}" is not an ecs-id-mapper store (schema version 0, no containers table)` }));

    expect(readdirSync(dir).sort()).toEqual(['garbage.db', 'other.db']);
  });

  it('copies a stopped store from a read-only directory, and says why when a write-ahead log there makes that impossible', async () => {
    const dir = tempDir();
    const readOnly = readOnlyDirectory(dir, async (inside) => {
      const store = await storeWith(join(inside, 'store.db'), 2);
      await store.close();
      stores.splice(stores.indexOf(store), 1);
      writeFileSync(join(inside, 'torn.db'), readFileSync(join(inside, 'store.db')));
      writeFileSync(join(inside, 'torn.db-wal'), 'a log SQLite cannot read here');
    });
    expect(readdirSync(await readOnly).sort()).toEqual(['store.db', 'torn.db', 'torn.db-wal']);
    const inside = await readOnly;

    const result = backupSqliteStore(join(inside, 'store.db'), join(dir, 'copy.db'));

    expect(result).toMatchObject({ path: join(dir, 'copy.db'), records: 2, schemaVersion: SCHEMA_VERSION });
    const copy = openSqliteStore({ path: result.path });
    stores.push(copy);
    expect((await copy.getContainer(containerId(2))).kind).toBe('found');
    expect(() => backupSqliteStore(join(inside, 'torn.db'), join(dir, 'torn-copy.db'))).toThrow(
      expect.objectContaining({ code: 'ERR_BACKUP_FAILED', message: expect.stringContaining('is in a read-only directory with a write-ahead log beside it') }),
    );
    // Neither the scratch copy of the source nor a partial backup is left behind.
    expect(readdirSync(dir).filter((name) => !name.startsWith('copy.db')).sort()).toEqual(['ro']);
  });

  it('names a read-only destination as such, not the temporary file SQLite failed to open there', async () => {
    const dir = tempDir();
    const source = join(dir, 'store.db');
    await storeWith(source, 1);
    const inside = await readOnlyDirectory(dir, async () => {});
    const why = root ? 'it is on a read-only file system' : 'this user may not write there';
    expect(() => backupSqliteStore(source, join(inside, 'copy.db'))).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_FAILED', message: `cannot write the backup in "${inside}": ${why}` }));
  });

  // A full disk needs a file system of its own, which only root can mount; CI runs as root.
  it.runIf(canMount)('leaves neither a partial copy nor its journal on a disk that fills up', () => {
    const dir = tempDir();
    // Larger than SQLite's page cache, so the copy spills and keeps a rollback journal.
    const source = join(dir, 'store.db');
    const db = new Database(source);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
    db.exec('CREATE TABLE containers (id TEXT, body TEXT); CREATE INDEX containers_id ON containers (id)');
    db.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) INSERT INTO containers SELECT hex(randomblob(32)), printf('%.200c', 'x') FROM n");
    db.close();
    const small = smallDirectory(dir, 4096);
    expect(() => backupSqliteStore(source, join(small, 'copy.db'))).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_FAILED', message: `backup of "${source}" to "${join(small, 'copy.db')}" failed: database or disk is full` }));
    expect(readdirSync(small)).toEqual([]);
  });

  it('refuses a directory given for the store or the backup, naming it, and writes nothing', async () => {
    const dir = tempDir();
    const source = join(dir, 'store.db');
    await storeWith(source, 1);
    const folder = join(dir, 'folder');
    mkdirSync(folder);
    expect(() => backupSqliteStore(folder, join(dir, 'copy.db'))).toThrow(
      expect.objectContaining({ code: 'ERR_BACKUP_FAILED', message: `"${folder}" is a directory; give the path of the store's file (sqlite:DIR/ecs-id-mapper.db)` }),
    );
    expect(() => backupSqliteStore(source, folder)).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_FAILED', message: `"${folder}" is a directory; give the path of a file for the backup, in it or elsewhere` }));
    expect(readdirSync(folder)).toEqual([]);
    expect(existsSync(join(dir, 'copy.db'))).toBe(false);
  });

  it('fails with one error and leaves no partial file when the copy cannot be written', async () => {
    const dir = tempDir();
    const source = join(dir, 'store.db');
    await storeWith(source, 1);
    const blocker = join(dir, 'file');
    writeFileSync(blocker, 'x');
    // The destination's directory is a file: the copy cannot be created.
    expect(() => backupSqliteStore(source, join(blocker, 'copy.db'))).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_FAILED', message: expect.stringContaining('failed') }));
    expect(readdirSync(dir).filter((name) => name.includes('partial'))).toEqual([]);
  });
});

describe('restoreSqliteStore', () => {
  const NOW = new Date('2026-12-04T05:30:00.123Z');

  it('puts the backup in place of a closed store, keeping the store it replaced beside it, and the server opens the result', async () => {
    const dir = tempDir();
    const path = join(dir, 'store.db');
    const live = await storeWith(path, 2);
    const backup = backupSqliteStore(path, join(dir, 'monday.db'));
    await live.replaceSnapshot(snapshot(hostIdentity(), 2, [snapshotContainer('running', { container_id: containerId(9) })]), at(2));
    await live.close();
    stores.splice(stores.indexOf(live), 1);

    const result = restoreSqliteStore(path, backup.path, NOW);

    expect(result).toMatchObject({ path, records: 2, schemaVersion: SCHEMA_VERSION, replacedKeptAs: `${path}.before-restore-20261204T053000Z` });
    const restored = openSqliteStore({ path });
    stores.push(restored);
    expect((await restored.getContainer(containerId(1))).kind).toBe('found');
    expect((await restored.getContainer(containerId(9))).kind).toBe('missing');
    const kept = openSqliteStore({ path: result.replacedKeptAs! });
    stores.push(kept);
    expect((await kept.getContainer(containerId(9))).kind).toBe('found');
  });

  it('refuses a directory given for the store or the backup, naming it, and moves nothing aside', async () => {
    const dir = tempDir();
    const path = join(dir, 'store.db');
    const live = await storeWith(path, 1);
    const backup = backupSqliteStore(path, join(dir, 'monday.db'));
    await live.close();
    stores.splice(stores.indexOf(live), 1);
    const folder = join(dir, 'folder');
    mkdirSync(folder);
    expect(() => restoreSqliteStore(folder, backup.path, NOW)).toThrow(
      expect.objectContaining({ code: 'ERR_BACKUP_FAILED', message: `"${folder}" is a directory; give the path of the store's file (sqlite:DIR/ecs-id-mapper.db)` }),
    );
    expect(() => restoreSqliteStore(path, folder, NOW)).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_FAILED', message: `"${folder}" is a directory; give the path of a backup file` }));
    expect(readdirSync(dir).sort()).toEqual(['folder', 'monday.db', 'store.db']);
    expect(readdirSync(folder)).toEqual([]);
  });

  it('refuses while another connection has the store open, and changes nothing', async () => {
    const dir = tempDir();
    const path = join(dir, 'store.db');
    const live = await storeWith(path, 1);
    const backup = backupSqliteStore(path, join(dir, 'b.db'));
    expect(() => restoreSqliteStore(path, backup.path, NOW)).toThrow(expect.objectContaining({ code: 'ERR_STORE_IN_USE', message: `the store at "${path}" is open in another process: stop the server first` }));
    expect(readdirSync(dir).filter((name) => name.includes('before-restore') || name.includes('restoring'))).toEqual([]);
    expect((await live.getContainer(containerId(1))).kind).toBe('found');
  });

  it('moves a damaged store aside as it is, WAL included, so no WAL is left beside the restored file', async () => {
    const dir = tempDir();
    const path = join(dir, 'store.db');
    const backup = backupSqliteStore((await storeWith(join(dir, 'other.db'), 3), join(dir, 'other.db')), join(dir, 'b.db'));
    writeFileSync(path, 'x'.repeat(8192));
    writeFileSync(`${path}-wal`, 'stale frames');

    const result = restoreSqliteStore(path, backup.path, NOW);

    expect(result.records).toBe(3);
    expect(existsSync(`${path}-wal`)).toBe(false);
    expect(readFileSync(`${result.replacedKeptAs}-wal`, 'utf8')).toBe('stale frames');
    expect(readFileSync(result.replacedKeptAs!, 'utf8')).toBe('x'.repeat(8192));
  });

  it('never renames over a store kept by an earlier restore in the same second', async () => {
    const dir = tempDir();
    const path = join(dir, 'store.db');
    const backup = backupSqliteStore((await storeWith(join(dir, 'other.db'), 1), join(dir, 'other.db')), join(dir, 'b.db'));
    writeFileSync(path, 'first');
    const first = restoreSqliteStore(path, backup.path, NOW);
    const second = restoreSqliteStore(path, backup.path, NOW);
    expect(second.replacedKeptAs).toBe(`${first.replacedKeptAs}-2`);
    expect(readFileSync(first.replacedKeptAs!, 'utf8')).toBe('first');
  });

  it('refuses a live store given as the backup, whose WAL holds commits its file does not', async () => {
    const dir = tempDir();
    const live = join(dir, 'live.db');
    await storeWith(live, 2);
    expect(() => restoreSqliteStore(join(dir, 'store.db'), live, NOW)).toThrow(expect.objectContaining({ code: 'ERR_STORE_IN_USE', message: `"${live}" is open in another process (a live store, not a backup): copy it with \`ecs-id-mapper backup\` first` }));
    expect(existsSync(join(dir, 'store.db'))).toBe(false);
  });

  it.runIf(canMount)('leaves the store where it was when the copy of the backup fails (a full disk)', async () => {
    const dir = tempDir();
    const backup = backupSqliteStore((await storeWith(join(dir, 'big.db'), 2000), join(dir, 'big.db')), join(dir, 'b.db'));
    const small = smallDirectory(dir, 1024);
    const path = join(small, 'store.db');
    const store = await storeWith(path, 1);
    await store.close();
    stores.splice(stores.indexOf(store), 1);

    expect(() => restoreSqliteStore(path, backup.path, NOW)).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_FAILED', message: expect.stringMatching(/^restore of ".*" to ".*store\.db" failed: .*ENOSPC/) }));

    expect(readdirSync(small)).toEqual(['store.db']);
    const kept = openSqliteStore({ path });
    stores.push(kept);
    expect((await kept.getContainer(containerId(1))).kind).toBe('found');
  });

  it('restores a stopped store from a read-only directory, and names a read-only store directory as such', async () => {
    const dir = tempDir();
    const inside = await readOnlyDirectory(dir, async (ro) => {
      const store = await storeWith(join(ro, 'store.db'), 2);
      await store.close();
      stores.splice(stores.indexOf(store), 1);
    });
    const path = join(dir, 'restored.db');

    expect(restoreSqliteStore(path, join(inside, 'store.db'), NOW)).toMatchObject({ path, records: 2, schemaVersion: SCHEMA_VERSION, replacedKeptAs: undefined });
    const restored = openSqliteStore({ path });
    stores.push(restored);
    expect((await restored.getContainer(containerId(2))).kind).toBe('found');
    expect(readdirSync(dir).filter((name) => name.includes('restoring'))).toEqual([]);

    const why = root ? 'it is on a read-only file system' : 'this user may not write there';
    expect(() => restoreSqliteStore(join(inside, 'other.db'), path, NOW)).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_FAILED', message: `cannot write the store in "${inside}": ${why}` }));
  });

  it('restores where there is no store yet', async () => {
    const dir = tempDir();
    const backup = backupSqliteStore((await storeWith(join(dir, 'other.db'), 1), join(dir, 'other.db')), join(dir, 'b.db'));
    const path = join(dir, 'new', 'store.db');
    expect(restoreSqliteStore(path, backup.path, NOW)).toMatchObject({ path, records: 1, replacedKeptAs: undefined });
  });

  it("gives the restored store the replaced store's mode (or 0644), not a read-only backup's", async () => {
    const dir = tempDir();
    const path = join(dir, 'store.db');
    const live = await storeWith(path, 1);
    const backup = backupSqliteStore(path, join(dir, 'kept.db'));
    await live.close();
    stores.splice(stores.indexOf(live), 1);
    chmodSync(backup.path, 0o444);
    chmodSync(path, 0o600);
    restoreSqliteStore(path, backup.path, NOW);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const fresh = join(dir, 'fresh', 'store.db');
    restoreSqliteStore(fresh, backup.path, NOW);
    expect(statSync(fresh).mode & 0o777).toBe(0o644);
  });

  it('refuses a missing backup, a file that is not a store and a backup newer than this build, leaving the store alone', async () => {
    const dir = tempDir();
    const path = join(dir, 'store.db');
    writeFileSync(path, 'keep me');
    expect(() => restoreSqliteStore(path, join(dir, 'absent.db'), NOW)).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_NO_STORE', message: `no backup at "${join(dir, 'absent.db')}"` }));
    const other = join(dir, 'other.db');
    const db = new Database(other);
    db.exec('CREATE TABLE notes (text TEXT)');
    db.close();
    expect(() => restoreSqliteStore(path, other, NOW)).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_NOT_A_STORE' }));
    const newer = join(dir, 'newer.db');
    const backup = backupSqliteStore((await storeWith(join(dir, 'live.db'), 1), join(dir, 'live.db')), newer);
    const bump = new Database(backup.path);
    bump.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    bump.close();
    expect(() => restoreSqliteStore(path, newer, NOW)).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_TOO_NEW', message: `"${newer}" has schema version ${SCHEMA_VERSION + 1}, newer than this build's ${SCHEMA_VERSION}: restore it with the build that wrote it` }));
    expect(readFileSync(path, 'utf8')).toBe('keep me');
  });
});
