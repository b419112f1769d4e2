import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeStoreContract } from '../store.contract.js';
import { at, batch, containerId, hostIdentity, instanceId, iso, legacyContainer, legacySnapshot, observation, snapshot, snapshotContainer, taskArn, taskId, transition } from '../store.fixtures.js';
import { nextRecord } from '../records.js';
import { StoreUnavailableError } from '../store.js';
import { openSqliteStore, SCHEMA_VERSION, SchemaVersionError, SqliteStore } from './index.js';
import { migrate } from './schema.js';
import { PURGE_CHUNK } from './sqlite-store.js';
import { listSql, SQL, updateSql } from './queries.js';
import { CONTAINER_COLUMNS, CONTAINER_READ_COLUMNS, CONTAINER_TABLE_COLUMNS, toContainerRow } from './rows.js';

const temps: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-sqlite-'));
  temps.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Runs `check` on the file opened read-only (after a store closed it), and closes it. */
function readOnly(path: string, check: (db: Database.Database) => void): void {
  const db = new Database(path, { readonly: true });
  try {
    check(db);
  } finally {
    db.close();
  }
}

async function found(store: SqliteStore, id: string) {
  const r = await store.getContainer(id);
  if (r.kind !== 'found') throw new Error(`${id} not found`);
  return r.record;
}

const containerIndexes = (db: Database.Database) =>
  (db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'containers'").all() as Array<{ name: string }>).map((r) => r.name);

describeStoreContract('sqlite (file)', async (options) => {
  const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-contract-'));
  const store = openSqliteStore({ path: join(dir, 'store.db'), ...options });
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describeStoreContract('sqlite (:memory:)', async (options) => {
  const store = openSqliteStore({ path: ':memory:', ...options });
  return { store, cleanup: () => store.close() };
});

describe('sqlite connection settings', () => {
  it('open files with an 8 MiB page cache, reads memory-mapped up to SQLite\'s 2 GiB ceiling and a bounded WAL file', async () => {
    const store = openSqliteStore({ path: join(tempDir(), 'store.db') });
    const db = (store as unknown as { db: Database.Database }).db;
    try {
      expect(db.pragma('cache_size', { simple: true })).toBe(-8 * 1024);
      expect(db.pragma('mmap_size', { simple: true })).toBe(0x7fff0000);
      expect(db.pragma('journal_size_limit', { simple: true })).toBe(64 * 1024 * 1024);
      expect(db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
      expect(db.pragma('temp_store', { simple: true })).toBe(2); // MEMORY: statement journals never spill to a file
    } finally {
      await store.close();
    }
  });

  it('take the cache and map sizes from the options', async () => {
    const store = openSqliteStore({ path: join(tempDir(), 'store.db'), cacheSizeBytes: 4 * 1024 * 1024, mmapSizeBytes: 0 });
    const db = (store as unknown as { db: Database.Database }).db;
    try {
      expect(db.pragma('cache_size', { simple: true })).toBe(-4 * 1024);
      expect(db.pragma('mmap_size', { simple: true })).toBe(0);
    } finally {
      await store.close();
    }
  });
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
        conflicts: 0,
        acked_seq: 1,
        conflicting: [],
      });
    } finally {
      await store.close();
    }
  });

  it('shares one file between two open stores (two API processes): each sees the other\'s writes', async () => {
    const path = join(tempDir(), 'shared.db');
    const one = openSqliteStore({ path });
    const two = openSqliteStore({ path });
    try {
      await one.applyTransitions(batch(hostIdentity(), [transition(1, 'running', { container: { container_id: containerId(1) } })]), at(1));
      expect((await two.getContainer(containerId(1))).kind).toBe('found');
      expect(await two.applyTransitions(batch(hostIdentity(), [transition(1, 'running', { container: { container_id: containerId(1) } })]), at(2))).toEqual({
        applied: 0,
        duplicates: 1,
        conflicts: 0,
        acked_seq: 1,
        conflicting: [],
      });
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('migrates a version 1 database in place, keeping its records', async () => {
    const path = join(tempDir(), 'v1.db');
    const db = new Database(path);
    migrate(db, 1);
    const c1 = containerId(1);
    // Written with version 1's columns (today's store prepares statements for the current schema).
    const record = nextRecord(undefined, observation({ container_id: c1 }), { host: hostIdentity(), state: 'running', seq: 1, eventAt: iso(1), receivedAt: iso(1) });
    const row = toContainerRow(record, 0) as Record<string, unknown>;
    const v1Columns = CONTAINER_COLUMNS.filter((c) => c !== 'sampled_at');
    db.prepare(`INSERT INTO containers (${v1Columns.join(', ')}) VALUES (${v1Columns.map((c) => `@${c}`).join(', ')})`).run(Object.fromEntries(v1Columns.map((c) => [c, row[c]])));
    db.close();

    const store = openSqliteStore({ path });
    // Records from before migration 3 have no agent sample time.
    expect(await store.getContainer(c1)).toEqual({ kind: 'found', record: { ...record, sampled_at: null } });
    await store.close();
    readOnly(path, (check) => {
      expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      expect(containerIndexes(check)).toEqual(expect.arrayContaining(['containers_cluster', 'containers_state', 'containers_task_id']));
      expect(check.prepare('SELECT state FROM containers WHERE container_id = ?').get(c1)).toEqual({ state: 'running' });
    });
  });

  it('migrating to version 6 gives a record known by its ARN the ARN’s task id, so lookups by ARN still find it', async () => {
    const path = join(tempDir(), 'v5.db');
    const db = new Database(path);
    migrate(db, 5);
    const c1 = containerId(1);
    const arn = taskArn(taskId(1));
    const record = nextRecord(undefined, observation({ container_id: c1, task_arn: arn }), { host: hostIdentity(), state: 'running', seq: 1, eventAt: iso(1), receivedAt: iso(1) });
    // What an older build could store after a legacy report about this container: a legacy task id beside the ARN.
    const row = { ...(toContainerRow(record, 0) as Record<string, unknown>), task_id: taskId(2) };
    db.prepare(`INSERT INTO containers (${CONTAINER_COLUMNS.join(', ')}) VALUES (${CONTAINER_COLUMNS.map((c) => `@${c}`).join(', ')})`).run(row);
    db.close();

    const store = openSqliteStore({ path });
    try {
      expect((await store.findByTask(arn)).map((r) => [r.container_id, r.task_id])).toEqual([[c1, taskId(1)]]);
      expect(await store.findByTask(taskId(2))).toEqual([]);
    } finally {
      await store.close();
    }
    readOnly(path, (check) => expect(containerIndexes(check)).not.toContain('containers_task_arn'));
  });

  it('migrating to version 7 keeps a replayed transition out of history, and leaves snapshot rows out of the (host, seq) index', async () => {
    const path = join(tempDir(), 'v6.db');
    const db = new Database(path);
    migrate(db, 6);
    db.prepare("INSERT INTO transitions (container_id, from_state, to_state, at, host, seq, reason) VALUES (?, NULL, 'running', ?, ?, 1, 'agent.observed')").run(containerId(1), iso(1), hostIdentity().instance_id);
    db.close();

    const store = openSqliteStore({ path });
    try {
      const replay = batch(hostIdentity(), [transition(1, 'running', { container: { container_id: containerId(1) } })]);
      // The container row was never written above, so the store applies the batch (seq 1 is above the host's 0)
      // and the history insert meets the row already there: still exactly one.
      await store.applyTransitions(replay, at(2));
      expect((await store.history(containerId(1))).filter((t) => t.seq === 1)).toHaveLength(1);
    } finally {
      await store.close();
    }
    readOnly(path, (check) => {
      expect(check.prepare("SELECT sql FROM sqlite_master WHERE name = 'transitions_host_seq'").get()).toEqual({
        sql: 'CREATE UNIQUE INDEX transitions_host_seq ON transitions (host, seq) WHERE seq IS NOT NULL',
      });
      const plan = check.prepare('EXPLAIN QUERY PLAN SELECT 1 FROM transitions WHERE host = ? AND seq = ?').all('i-1', 1) as Array<{ detail: string }>;
      expect(plan.map((r) => r.detail).join(' ')).toContain('transitions_host_seq');
    });
  });

  it('migrating to version 10 keeps a confirmed container confirmed, and later snapshots confirm it as before', async () => {
    const path = join(tempDir(), 'v9.db');
    const store9 = openSqliteStore({ path, checkpointIntervalMs: 0 });
    const host = hostIdentity();
    const [c1, c2] = [containerId(1), containerId(2)];
    await store9.applyTransitions(batch(host, [transition(5, 'running', { container: { container_id: c1 } })]), at(1));
    await store9.replaceSnapshot(snapshot(host, 10, [snapshotContainer('running', { container_id: c1 })]), at(2));
    await store9.close();
    // Back to version 9 as that build left the row: no written_at_snapshot_seq.
    const db = new Database(path);
    db.exec('DROP TABLE pending_events; ALTER TABLE containers DROP COLUMN written_at_snapshot_seq');
    db.pragma('user_version = 9');
    db.close();

    const store = openSqliteStore({ path, checkpointIntervalMs: 0 });
    try {
      let r = await found(store, c1);
      expect([r.seq, r.last_seen]).toEqual([10, iso(2)]);
      // Seq 7 is older than the snapshot that confirmed c1: it changes history only, as before.
      await store.applyTransitions(batch(host, [transition(7, 'stopped', { from: 'running', container: { container_id: c1 } })]), at(3));
      r = await found(store, c1);
      expect(r.state).toBe('running');
      await store.replaceSnapshot(snapshot(host, 12, [snapshotContainer('running', { container_id: c1 }), snapshotContainer('running', { container_id: c2 })]), at(4));
      r = await found(store, c1);
      expect([r.seq, r.last_seen]).toEqual([12, iso(4)]);
    } finally {
      await store.close();
    }
  });

  it('migrating to version 8 keeps history and its ids, and new history rows no longer touch sqlite_sequence', async () => {
    const path = join(tempDir(), 'v7.db');
    const db = new Database(path);
    migrate(db, 7);
    const insert = db.prepare("INSERT INTO transitions (container_id, from_state, to_state, at, host, seq, reason) VALUES (?, NULL, 'running', ?, ?, ?, 'agent.observed')");
    insert.run(containerId(1), iso(1), hostIdentity().instance_id, 1);
    insert.run(containerId(1), iso(1), hostIdentity().instance_id, 2);
    const before = db.prepare('SELECT * FROM transitions ORDER BY id').all();
    db.close();

    const store = openSqliteStore({ path });
    try {
      await store.applyTransitions(batch(hostIdentity(), [transition(3, 'stopping', { container: { container_id: containerId(1) } })]), at(2));
      expect((await store.history(containerId(1))).map((t) => t.seq)).toEqual([1, 2, 3]);
    } finally {
      await store.close();
    }
    readOnly(path, (check) => {
      const rows = check.prepare('SELECT * FROM transitions ORDER BY id').all() as Array<{ id: number; seq: number }>;
      expect(rows.slice(0, 2)).toEqual(before);
      // The new row takes the next id after the ones kept.
      expect(rows.map((r) => [r.id, r.seq])).toEqual([[1, 1], [2, 2], [3, 3]]);
      const table = check.prepare("SELECT sql FROM sqlite_master WHERE name = 'transitions'").get() as { sql: string };
      expect(table.sql).toContain('id           INTEGER PRIMARY KEY,');
      expect(table.sql).not.toContain('AUTOINCREMENT');
      expect(check.prepare("SELECT count(*) AS n FROM sqlite_sequence WHERE name = 'transitions'").get()).toEqual({ n: 0 });
      expect(check.prepare("SELECT name FROM sqlite_master WHERE tbl_name = 'transitions' AND type = 'index' ORDER BY name").all()).toEqual([
        { name: 'transitions_container' },
        { name: 'transitions_host_seq' },
      ]);
    });
  });

  it('fails with a clear StoreUnavailableError naming the path when the directory cannot be created', () => {
    const file = join(tempDir(), 'plain-file');
    writeFileSync(file, 'not a directory');
    const path = join(file, 'store.db');
    expect(() => openSqliteStore({ path })).toThrow(StoreUnavailableError);
    expect(() => openSqliteStore({ path })).toThrow(`cannot open the SQLite store at "${path}"`);
  });

  it('fails with StoreUnavailableError, not a hang, for a directory under /proc', { skip: process.platform !== 'linux' }, () => {
    // Node's recursive mkdir spins forever here (cli/ensure-directory.ts).
    const path = '/proc/ecs-id-mapper-nope/store.db';
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

  it('cuts a history that passed the limit before the store bounded it at that container\'s next rows', async () => {
    const path = join(tempDir(), 'store.db');
    const host = hostIdentity();
    const id = containerId('long-lived');
    const restart = (seq: number) => transition(seq, seq % 2 === 1 ? 'running' : 'stopped', { container: { container_id: id } });
    const unbounded = openSqliteStore({ path, historyLimit: 0 });
    for (let seq = 1; seq <= 40; seq++) await unbounded.applyTransitions(batch(host, [restart(seq)]), at(seq));
    await unbounded.close();
    const bounded = openSqliteStore({ path, historyLimit: 20 });
    try {
      expect(await bounded.history(id)).toHaveLength(40);
      await bounded.applyTransitions(batch(host, [restart(41)]), at(41));
      expect(await bounded.history(id)).toHaveLength(41);
      await bounded.applyTransitions(batch(host, [restart(42)]), at(42));
      expect((await bounded.history(id)).map((h) => h.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 23 + i));
    } finally {
      await bounded.close();
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
        expect(plan(db, SQL.byPrefix, 'abcdef012345', 'abcdef012345g')).toMatch(/SEARCH containers USING PRIMARY KEY \(container_id>\? AND container_id<\?\)/);
        expect(plan(db, SQL.byPrefix, 'abcdef012345', 'abcdef012345g')).not.toMatch(/TEMP B-TREE/);
        expect(plan(db, SQL.prefixIds, 'abcdef012345', 'abcdef012345g', 2)).toMatch(/SEARCH containers USING PRIMARY KEY \(container_id>\? AND container_id<\?\)/);
      });
    });

    it('answers task, ARN, docker name, legacy key, host and purge lookups from indexes', () => {
      withSchema((db) => {
        expect(plan(db, SQL.getContainer, 'x')).toMatch(/SEARCH containers USING PRIMARY KEY \(container_id=\?\)/);
        expect(plan(db, SQL.byTaskId, 'x')).toMatch(/SEARCH containers USING INDEX containers_task_id \(task_id=\?\)/);
        const arn = plan(db, SQL.byTaskArn, 'x', 'y');
        expect(arn).toMatch(/SEARCH containers USING INDEX containers_task_id \(task_id=\?\)/);
        expect(arn).not.toContain('TEMP B-TREE');
        expect(plan(db, SQL.byDockerName, 'x')).toMatch(/USING INDEX containers_docker_name \(docker_name=\?\)/);
        expect(plan(db, SQL.byLegacyKey, 'x')).toMatch(/USING INDEX containers_legacy_key \(legacy_key=\?\)/);
        expect(plan(db, SQL.liveOnHost, 'x')).toMatch(/USING (COVERING )?INDEX containers_instance_state \(instance_id=\? AND state=\?\)/);
        const chunk = plan(db, SQL.purgeChunk, 'x', 250);
        expect(chunk).toMatch(/USING (COVERING )?INDEX containers_gone_at \(gone_at<\?\)/);
        expect(chunk).not.toContain('TEMP B-TREE');
        expect(plan(db, SQL.purgeContainers, '[]')).toMatch(/SEARCH containers USING PRIMARY KEY \(container_id=\?\)/);
        expect(plan(db, SQL.purgeHistory, '[]')).toMatch(/SEARCH transitions USING (COVERING )?INDEX transitions_container \(container_id=\?\)/);
        expect(plan(db, SQL.history, 'x')).toMatch(/USING INDEX transitions_container \(container_id=\?\)/);
        // The history bound: counted and trimmed along the index, oldest first, without a sort.
        expect(plan(db, SQL.countHistory, 'x')).toMatch(/USING COVERING INDEX transitions_container \(container_id=\?\)/);
        const trim = plan(db, SQL.trimHistory, 'x', 10);
        expect(trim).toMatch(/USING COVERING INDEX transitions_container \(container_id=\?\)/);
        expect(trim).not.toContain('TEMP B-TREE');
        expect(plan(db, SQL.getHost, 'x')).toMatch(/USING PRIMARY KEY \(instance_id=\?\)/);
      });
    });

    it('selects container rows in the column order the raw-row reader expects, for every read statement', () => {
      withSchema((db) => {
        const reads = [SQL.getContainer, SQL.byTaskId, SQL.byTaskArn, SQL.byDockerName, listSql(['cluster', 'state'], true), listSql([], false)];
        for (const sql of reads) expect(db.prepare(sql).columns().map((c) => c.name)).toEqual([...CONTAINER_READ_COLUMNS]);
        // Every column of the table is read and written: a column added by a migration must be added to the row too.
        const table = (db.prepare('PRAGMA table_info(containers)').all() as Array<{ name: string }>).map((c) => c.name);
        expect([...CONTAINER_TABLE_COLUMNS].sort()).toEqual(table.sort());
      });
    });

    it('counts from the trigger-kept counts table, never from the containers', () => {
      withSchema((db) => {
        for (const sql of [SQL.countByState, SQL.countByHostAndState]) {
          const detail = plan(db, sql);
          expect(detail).toContain('container_counts');
          expect(detail).not.toMatch(/\bcontainers\b/);
        }
      });
    });

    it('updates a changed record by primary key, setting only the columns that changed', () => {
      withSchema((db) => {
        const sql = updateSql(['state', 'last_seen']);
        expect(sql).toBe('UPDATE containers SET state = @state, last_seen = @last_seen WHERE container_id = @container_id');
        expect(plan(db, sql, { state: 'stopping', last_seen: 'x', container_id: 'c' })).toMatch(/SEARCH containers USING PRIMARY KEY \(container_id=\?\)/);
      });
    });

    it('pages every listing filter by keyset from an index, without sorting (instance: one host, sorted)', () => {
      withSchema((db) => {
        const params = { cluster: 'c', instance_id: 'i', state: 'running', task_family: 'f', after: 'a', limit: 10 };
        const cases: Array<[Parameters<typeof listSql>[0], RegExp]> = [
          [[], /SEARCH containers USING PRIMARY KEY \(container_id>\?\)/],
          [['cluster'], /USING INDEX containers_cluster \(cluster=\? AND container_id>\?\)/],
          [['state'], /USING INDEX containers_state \(state=\? AND container_id>\?\)/],
          [['task_family'], /USING INDEX containers_family \(task_family=\? AND container_id>\?\)/],
          [['cluster', 'state'], /USING INDEX containers_cluster_state \(cluster=\? AND state=\? AND container_id>\?\)/],
        ];
        for (const [filters, expected] of cases) {
          const detail = plan(db, listSql(filters, true), params);
          expect(detail, filters.join(',')).toMatch(expected);
          expect(detail, filters.join(',')).not.toContain('TEMP B-TREE');
        }
        expect(plan(db, listSql(['instance_id'], true), params)).toMatch(/USING INDEX containers_instance_state \(instance_id=\?\)/);
      });
    });
  });
});

describe('SQLite retention', () => {
  it('purges a backlog bigger than one chunk completely, letting the event loop turn between chunks', async () => {
    const store = openSqliteStore({ path: ':memory:' });
    try {
      const host = hostIdentity();
      const total = PURGE_CHUNK * 2 + 17;
      const ids = Array.from({ length: total }, (_, i) => containerId(`purge-${i}`));
      await store.applyTransitions(batch(host, ids.map((id, i) => transition(i + 1, 'gone', { at: iso(1), container: { container_id: id } }))), at(1));
      await store.applyTransitions(batch(host, [transition(total + 1, 'running', { container: { container_id: containerId('kept') } })]), at(2));
      let turns = 0;
      let purging = true;
      const tick = () => {
        turns++;
        if (purging) setImmediate(tick);
      };
      setImmediate(tick);
      const purged = await store.purgeGone(at(60));
      purging = false;
      expect(purged).toBe(total);
      // Three chunks, and the event loop turned between them.
      expect(turns).toBeGreaterThanOrEqual(2);
      expect(await store.history(ids[0])).toEqual([]);
      expect((await store.getContainer(ids[total - 1])).kind).toBe('missing');
      expect((await store.getContainer(containerId('kept'))).kind).toBe('found');
      expect(await store.countByHostAndState()).toEqual([{ instance_id: host.instance_id, state: 'running', count: 1 }]);
      expect(await store.purgeGone(at(60))).toBe(0);
    } finally {
      await store.close();
    }
  });
});

describe('SQLite pending legacy events (migration 11)', () => {
  it('forgets an event no map brought within an hour, when a later one arrives', async () => {
    const store = openSqliteStore({ path: ':memory:' });
    try {
      const lc = legacyContainer('running', { container_id: containerId(1), sampled_at: iso(62) });
      await store.recordLegacyEvent({ event_id: lc.legacy_key, event: 'added', at: iso(0) }, null);
      await store.recordLegacyEvent({ event_id: 'f'.repeat(64), event: 'added', at: iso(61) }, null);
      await store.replaceLegacySnapshot(legacySnapshot(hostIdentity(), [lc], iso(62)));
      expect((await store.history(lc.container_id)).map((h) => h.reason)).toEqual(['snapshot']);
    } finally {
      await store.close();
    }
  });
});

describe('SQLite record counts (migration 9)', () => {
  /** The counts table's non-zero rows and a count over the containers themselves, side by side. */
  function bothCounts(path: string): { kept: unknown[]; counted: unknown[] } {
    let result: { kept: unknown[]; counted: unknown[] } = { kept: [], counted: [] };
    readOnly(path, (db) => {
      result = {
        kept: db.prepare('SELECT instance_id, state, cluster, count FROM container_counts WHERE count != 0 ORDER BY instance_id, state, cluster').all(),
        counted: db.prepare('SELECT instance_id, state, cluster, COUNT(*) AS count FROM containers GROUP BY instance_id, state, cluster ORDER BY instance_id, state, cluster').all(),
      };
    });
    return result;
  }

  it('agrees with counting the records after inserts, state changes, host moves, gone, legacy maps and purges', async () => {
    const path = join(tempDir(), 'counts.db');
    const store = openSqliteStore({ path, checkpointIntervalMs: 0 });
    const a = hostIdentity({ instance_id: instanceId('a'), cluster: 'prod' });
    const b = hostIdentity({ instance_id: instanceId('b'), cluster: null });
    try {
      await store.applyTransitions(batch(a, [1, 2, 3, 4].map((i) => transition(i, 'running', { container: { container_id: containerId(i) } }))), at(1));
      await store.applyTransitions(batch(a, [transition(5, 'stopped', { from: 'running', container: { container_id: containerId(1) } })]), at(2));
      // Container 2 absent from a's snapshot: gone. Container 5 new, with no cluster.
      await store.replaceSnapshot(snapshot(a, 1, [1, 3, 4].map((i) => snapshotContainer(i === 1 ? 'stopped' : 'running', { container_id: containerId(i) }))), at(3));
      // Host b (no cluster) reports container 3 as its own: the record moves host and cluster. Container 5 is new.
      await store.replaceSnapshot(snapshot(b, 1, [3, 5].map((i) => snapshotContainer('running', { container_id: containerId(i) }))), at(3));
      // A legacy map from a third host.
      await store.replaceLegacySnapshot(legacySnapshot(hostIdentity({ instance_id: instanceId('c') }), [legacyContainer('running', { container_id: containerId(6) })], iso(4)));
      let { kept, counted } = bothCounts(path);
      expect(kept).toEqual(counted);
      expect(counted.map((c) => (c as { instance_id: string }).instance_id)).toEqual(expect.arrayContaining([a.instance_id, b.instance_id, instanceId('c')]));
      // Everything gone long ago is purged, and the counts that fell to 0 go with it.
      await store.replaceSnapshot(snapshot(a, 10, []), at(5));
      await store.replaceSnapshot(snapshot(b, 10, []), at(5));
      await store.replaceLegacySnapshot(legacySnapshot(hostIdentity({ instance_id: instanceId('c') }), [], iso(5)));
      await store.purgeGone(at(60 * 24 * 30));
      ({ kept, counted } = bothCounts(path));
      expect(counted).toEqual([]);
      expect(kept).toEqual([]);
      readOnly(path, (db) => expect(db.prepare('SELECT COUNT(*) AS n FROM container_counts').get()).toEqual({ n: 0 }));
    } finally {
      await store.close();
    }
  });

  it('drops the counts that fell to 0 when the purge takes exactly a whole number of chunks', async () => {
    const path = join(tempDir(), 'chunks.db');
    const store = openSqliteStore({ path, checkpointIntervalMs: 0 });
    const host = hostIdentity();
    try {
      const ids = Array.from({ length: PURGE_CHUNK }, (_, i) => containerId(`c${i}`));
      await store.replaceSnapshot(snapshot(host, 1, ids.map((id) => snapshotContainer('running', { container_id: id }))), at(1));
      await store.replaceSnapshot(snapshot(host, 2, []), at(2));
      expect(await store.purgeGone(at(60 * 24 * 30))).toBe(PURGE_CHUNK);
      readOnly(path, (db) => expect(db.prepare('SELECT COUNT(*) AS n FROM container_counts').get()).toEqual({ n: 0 }));
    } finally {
      await store.close();
    }
  });

  it('is filled from the records already there when a version 8 store migrates', async () => {
    const path = join(tempDir(), 'v8.db');
    const old = openSqliteStore({ path, checkpointIntervalMs: 0 });
    await old.applyTransitions(batch(hostIdentity(), [1, 2, 3].map((i) => transition(i, i === 3 ? 'stopped' : 'running', { container: { container_id: containerId(i) } }))), at(1));
    await old.close();
    // Back to version 8 as that build left it: no counts table, no triggers.
    const db = new Database(path);
    db.exec('DROP TRIGGER containers_counted_insert; DROP TRIGGER containers_counted_delete; DROP TRIGGER containers_counted_update; DROP TABLE container_counts');
    db.exec('DROP TABLE pending_events; ALTER TABLE containers DROP COLUMN written_at_snapshot_seq');
    db.pragma('user_version = 8');
    db.close();
    const store = openSqliteStore({ path, checkpointIntervalMs: 0 });
    try {
      expect((await store.countByHostAndState()).map((c) => [c.state, c.count])).toEqual([['running', 2], ['stopped', 1]]);
      const { kept, counted } = bothCounts(path);
      expect(kept).toEqual(counted);
    } finally {
      await store.close();
    }
  });
});

describe('SQLite snapshots that confirm containers', () => {
  const host = hostIdentity();
  const c1 = containerId(1);
  const c2 = containerId(2);
  const rawRow = (store: SqliteStore, id: string) =>
    (store as unknown as { db: Database.Database }).db.prepare('SELECT state, seq, last_seen FROM containers WHERE container_id = ?').get(id);
  let store: SqliteStore;
  beforeEach(() => {
    store = openSqliteStore({ path: join(tempDir(), 'store.db') });
  });
  afterEach(async () => {
    await store.close();
  });

  it('leave the rows of unchanged containers as they were, and read them with the snapshot seq and receive time', async () => {
    await store.replaceSnapshot(snapshot(host, 3, [snapshotContainer('running', { container_id: c1 })]), at(1));
    await store.replaceSnapshot(snapshot(host, 7, [snapshotContainer('running', { container_id: c1 })]), at(2));
    expect(rawRow(store, c1)).toEqual({ state: 'running', seq: 3, last_seen: iso(1) });
    expect([(await found(store, c1)).seq, (await found(store, c1)).last_seen]).toEqual([7, iso(2)]);
    expect((await store.findByTask((await found(store, c1)).task_id!)).map((r) => [r.seq, r.last_seen])).toEqual([[7, iso(2)]]);
  });

  it('write a container that a later snapshot leaves out as gone, seen last when the snapshot before confirmed it', async () => {
    const both = [snapshotContainer('running', { container_id: c1 }), snapshotContainer('running', { container_id: c2 })];
    await store.replaceSnapshot(snapshot(host, 1, both), at(1));
    await store.replaceSnapshot(snapshot(host, 2, both), at(2));
    await store.replaceSnapshot(snapshot(host, 3, [both[0]]), at(3));
    const gone = await found(store, c2);
    expect([gone.state, gone.seq, gone.last_seen, gone.gone_at]).toEqual(['gone', 3, iso(2), iso(3)]);
    expect(rawRow(store, c2)).toEqual({ state: 'gone', seq: 3, last_seen: iso(2) });
  });

  it('do not confirm a container whose transition is newer than the snapshot', async () => {
    await store.applyTransitions(batch(host, [transition(1, 'running', { container: { container_id: c1 } })]), at(1));
    await store.applyTransitions(batch(host, [transition(9, 'stopping', { from: 'running', container: { container_id: c1 } })]), at(2));
    // A snapshot taken at seq 5 arrives late: it still lists c1 as running.
    const late = await store.replaceSnapshot(snapshot(host, 5, [snapshotContainer('running', { container_id: c1 })]), at(3));
    expect(late.skipped).toBe(1);
    const r = await found(store, c1);
    expect([r.state, r.seq, r.last_seen]).toEqual(['stopping', 9, iso(2)]);
  });

  it('are kept by a late, older snapshot from confirming or marking gone what a newer one confirmed', async () => {
    const both = [snapshotContainer('running', { container_id: c1 }), snapshotContainer('running', { container_id: c2 })];
    await store.replaceSnapshot(snapshot(host, 4, both), at(1));
    await store.replaceSnapshot(snapshot(host, 8, both), at(2));
    const late = await store.replaceSnapshot(snapshot(host, 6, [both[0]]), at(3));
    expect(late).toEqual({ upserted: 0, gone: 0, skipped: 2 });
    expect([(await found(store, c2)).state, (await found(store, c2)).seq, (await found(store, c2)).last_seen]).toEqual(['running', 8, iso(2)]);
  });
});
