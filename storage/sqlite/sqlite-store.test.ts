import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { describeStoreContract } from '../store.contract.js';
import { at, batch, containerId, hostIdentity, transition } from '../store.fixtures.js';
import { StoreUnavailableError } from '../store.js';
import { openSqliteStore, SCHEMA_VERSION, SchemaVersionError } from './index.js';

const temps: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-sqlite-'));
  temps.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describeStoreContract('sqlite (file)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-contract-'));
  const store = openSqliteStore({ path: join(dir, 'store.db') });
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describeStoreContract('sqlite (:memory:)', async () => {
  const store = openSqliteStore({ path: ':memory:' });
  return { store, cleanup: () => store.close() };
});

describe('SQLite store', () => {
  it('creates missing directories and runs in WAL mode with synchronous=NORMAL', async () => {
    const path = join(tempDir(), 'a', 'b', 'store.db');
    const store = openSqliteStore({ path });
    await store.close();
    expect(existsSync(path)).toBe(true);
    const db = new Database(path);
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    } finally {
      db.close();
    }
  });

  it('keeps what it stored across a reopen', async () => {
    const path = join(tempDir(), 'store.db');
    const c1 = containerId(1);
    let store = openSqliteStore({ path });
    await store.applyTransitions(batch(hostIdentity(), [transition(1, 'running', { container: { container_id: c1 } })]), at(1));
    await store.close();
    store = openSqliteStore({ path });
    try {
      expect((await store.getContainer(c1)).kind).toBe('found');
      expect(await store.applyTransitions(batch(hostIdentity(), [transition(1, 'running', { container: { container_id: c1 } })]), at(2))).toEqual({
        applied: 0,
        duplicates: 1,
        acked_seq: 1,
      });
    } finally {
      await store.close();
    }
  });

  it('fails with a clear StoreUnavailableError naming the path when the directory cannot be created', () => {
    const file = join(tempDir(), 'plain-file');
    writeFileSync(file, 'not a directory');
    const path = join(file, 'store.db');
    expect(() => openSqliteStore({ path })).toThrow(StoreUnavailableError);
    expect(() => openSqliteStore({ path })).toThrow(`cannot open the SQLite store at "${path}"`);
  });

  it('fails with a clear error when the file is not a database', () => {
    const path = join(tempDir(), 'garbage.db');
    writeFileSync(path, 'x'.repeat(4096));
    expect(() => openSqliteStore({ path })).toThrow(/cannot open the SQLite store at .*garbage\.db.*not a database/);
  });

  it('refuses a database with a newer schema version', () => {
    const path = join(tempDir(), 'future.db');
    const db = new Database(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => openSqliteStore({ path })).toThrow(SchemaVersionError);
  });

  it('turns a closed handle into StoreUnavailableError and an unhealthy answer', async () => {
    const store = openSqliteStore({ path: ':memory:' });
    await store.close();
    await expect(store.getContainer(containerId(1))).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.applyTransitions(batch(hostIdentity(), [transition(1, 'running')]), at(1))).rejects.toMatchObject({
      code: 'ERR_STORE_UNAVAILABLE',
    });
    expect(await store.health()).toEqual({ ok: false, backend: 'sqlite', detail: 'store is closed' });
  });

  it('answers StoreUnavailableError when another connection holds the write lock past busy_timeout', async () => {
    const path = join(tempDir(), 'locked.db');
    const store = openSqliteStore({ path, busyTimeoutMs: 50 });
    const other = new Database(path);
    try {
      other.prepare('BEGIN IMMEDIATE').run();
      await expect(store.applyTransitions(batch(hostIdentity(), [transition(1, 'running')]), at(1))).rejects.toBeInstanceOf(StoreUnavailableError);
      other.prepare('ROLLBACK').run();
      expect((await store.applyTransitions(batch(hostIdentity(), [transition(1, 'running')]), at(1))).applied).toBe(1);
    } finally {
      other.close();
      await store.close();
    }
  });

  describe('query plans', () => {
    function plan(db: Database.Database, sql: string, ...params: unknown[]): string {
      return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((r) => r.detail).join('; ');
    }
    function withSchema(fn: (db: Database.Database) => void): void {
      const path = join(tempDir(), 'plan.db');
      openSqliteStore({ path }).close();
      const db = new Database(path, { readonly: true });
      try {
        fn(db);
      } finally {
        db.close();
      }
    }

    it('answers a prefix lookup with a primary-key range scan', () => {
      withSchema((db) => {
        expect(plan(db, 'SELECT container_id FROM containers WHERE container_id >= ? AND container_id < ? ORDER BY container_id LIMIT ?', 'abc', 'abcg', 2)).toMatch(
          /SEARCH containers USING PRIMARY KEY \(container_id>\? AND container_id<\?\)/,
        );
      });
    });

    it('answers task, ARN, docker name, legacy key, host and purge lookups from indexes', () => {
      withSchema((db) => {
        expect(plan(db, 'SELECT * FROM containers WHERE task_id = ? ORDER BY container_id', 'x')).toMatch(/USING INDEX containers_task_id/);
        expect(plan(db, 'SELECT * FROM containers WHERE task_arn = ? ORDER BY container_id', 'x')).toMatch(/USING INDEX containers_task_arn/);
        expect(plan(db, 'SELECT * FROM containers WHERE docker_name = ? ORDER BY container_id', 'x')).toMatch(/USING INDEX containers_docker_name/);
        expect(plan(db, 'SELECT * FROM containers WHERE legacy_key = ? ORDER BY last_seen DESC LIMIT 1', 'x')).toMatch(/USING INDEX containers_legacy_key/);
        expect(plan(db, "SELECT * FROM containers WHERE instance_id = ? AND state IN ('pending','running')", 'x')).toMatch(/USING INDEX containers_instance_state/);
        expect(plan(db, "SELECT container_id FROM containers WHERE state = 'gone' AND gone_at < ?", 'x')).toMatch(/USING (COVERING )?INDEX containers_state_gone_at/);
        expect(plan(db, 'SELECT * FROM transitions WHERE container_id = ? ORDER BY at, id', 'x')).toMatch(/USING INDEX transitions_container/);
      });
    });
  });
});
