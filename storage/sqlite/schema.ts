// The SQLite schema and its migrations. `PRAGMA user_version` holds the number of migrations
// applied; each migration runs in its own transaction, so a crash leaves the previous version.
// To change the schema, append a migration: never edit one that has shipped.
import type Database from 'better-sqlite3';
import { taskIdFromArn } from '../../wire/ids.js';

/** Timestamps are ISO-8601 UTC with milliseconds (Date#toISOString), so text order is time order. */
const MIGRATIONS: ReadonlyArray<(db: Database.Database) => void> = [
  // 1: containers, transitions (history), hosts.
  (db) => {
    db.exec(`
      CREATE TABLE containers (
        container_id           TEXT PRIMARY KEY NOT NULL,
        docker_name            TEXT,
        container_name         TEXT,
        image                  TEXT,
        task_arn               TEXT,
        task_id                TEXT,
        task_id_raw            TEXT,
        task_family            TEXT,
        task_version           TEXT,
        cluster                TEXT,
        container_instance_arn TEXT,
        instance_id            TEXT NOT NULL,
        instance_ip            TEXT,
        instance_type          TEXT,
        instance_az            TEXT,
        region                 TEXT,
        host_name              TEXT,
        ports                  TEXT NOT NULL,  -- JSON array of PortMapping
        desired_status         TEXT,
        known_status           TEXT,
        state                  TEXT NOT NULL,
        restart_count          INTEGER NOT NULL,
        exit_code              INTEGER,
        started_at             TEXT,
        first_seen             TEXT NOT NULL,
        last_seen              TEXT NOT NULL,
        stopped_at             TEXT,
        gone_at                TEXT,
        ecs_agent_version      TEXT,
        source                 TEXT NOT NULL,
        seq                    INTEGER NOT NULL,
        legacy_key             TEXT
      ) WITHOUT ROWID;

      -- One index per lookup path.
      CREATE INDEX containers_task_id ON containers (task_id);
      CREATE INDEX containers_task_arn ON containers (task_arn);
      CREATE INDEX containers_docker_name ON containers (docker_name);
      CREATE INDEX containers_legacy_key ON containers (legacy_key);
      CREATE INDEX containers_instance_state ON containers (instance_id, state);
      CREATE INDEX containers_cluster_state ON containers (cluster, state);
      CREATE INDEX containers_family ON containers (task_family);
      CREATE INDEX containers_state_gone_at ON containers (state, gone_at);

      CREATE TABLE transitions (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        container_id TEXT NOT NULL,
        from_state   TEXT,
        to_state     TEXT,
        at           TEXT NOT NULL,
        host         TEXT NOT NULL,
        seq          INTEGER,
        reason       TEXT NOT NULL
      );
      -- History holds each host transition exactly once; NULL seqs (snapshots, legacy) are distinct.
      CREATE UNIQUE INDEX transitions_host_seq ON transitions (host, seq);
      CREATE INDEX transitions_container ON transitions (container_id, at);

      CREATE TABLE hosts (
        instance_id            TEXT PRIMARY KEY NOT NULL,
        cluster                TEXT,
        container_instance_arn TEXT,
        instance_ip            TEXT,
        instance_type          TEXT,
        instance_az            TEXT,
        region                 TEXT,
        host_name              TEXT,
        ecs_agent_version      TEXT,
        first_seen             TEXT NOT NULL,
        last_report_at         TEXT NOT NULL,
        last_snapshot_at       TEXT,
        last_seq               INTEGER NOT NULL,
        reporter               TEXT NOT NULL
      ) WITHOUT ROWID;
    `);
  },
  // 2: keyset listing by cluster or by state without sorting. In a WITHOUT ROWID table every index
  // ends with the primary key, so (cluster) is (cluster, container_id). Listing by instance sorts
  // that one host's records, which is bounded.
  (db) => {
    db.exec(`
      CREATE INDEX containers_cluster ON containers (cluster);
      CREATE INDEX containers_state ON containers (state);
    `);
  },
  // 3: the legacy agent's own sample time (records.ts); null for older records and reconciler reports.
  (db) => {
    db.exec('ALTER TABLE containers ADD COLUMN sampled_at TEXT');
  },
  // 4: fewer index entries move per write. Every index entry a write inserts or deletes dirties a
  // page that the commit appends to the WAL, so a container's start or stop cost one page per
  // index it touched. Reconciler records have no legacy key, and only gone records need gone_at
  // for retention: both indexes now hold just the rows their queries can match (SQLite uses a
  // partial index when the query's WHERE implies the index's).
  (db) => {
    db.exec(`
      DROP INDEX containers_legacy_key;
      CREATE INDEX containers_legacy_key ON containers (legacy_key) WHERE legacy_key IS NOT NULL;
      DROP INDEX containers_state_gone_at;
      CREATE INDEX containers_gone_at ON containers (gone_at) WHERE state = 'gone';
    `);
  },
  // 5: the host remembers its last reconciler snapshot (seq, receive time), so a snapshot no longer
  // rewrites the row of every container it merely confirms: rows.ts derives those containers'
  // last_seen and seq from it. Container ids are random, so the rewrite dirtied one page per
  // container (31 WAL frames for an unchanged 30-container snapshot).
  (db) => {
    db.exec(`
      ALTER TABLE hosts ADD COLUMN snapshot_seq INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE hosts ADD COLUMN snapshot_seen_at TEXT;
    `);
  },
  // 6: lookups by ARN go through the task_id index (queries.ts, byTaskArn), so the task_arn index,
  // one more random page for every new container, is dropped. That relies on a record with an ARN
  // having the ARN's last segment as task_id; a legacy report about a container already known by
  // its ARN could set the legacy id instead before this version (storage/records.ts), so such rows
  // are corrected first.
  (db) => {
    const fix = db.prepare('UPDATE containers SET task_id = ? WHERE container_id = ?');
    const rows = db.prepare('SELECT container_id, task_arn, task_id FROM containers WHERE task_arn IS NOT NULL').iterate() as IterableIterator<{ container_id: string; task_arn: string; task_id: string | null }>;
    const pending: Array<[string, string]> = [];
    for (const row of rows) {
      const id = taskIdFromArn(row.task_arn);
      if (id !== undefined && id !== row.task_id) pending.push([id, row.container_id]);
    }
    for (const [id, containerId] of pending) fix.run(id, containerId);
    db.exec('DROP INDEX containers_task_arn');
  },
  // 7: the (host, seq) index that keeps each reconciler transition once in history holds only rows
  // with a seq. Snapshot and legacy history rows have none (NULLs never conflict), yet each one
  // dirtied a page of it: about 1.6 of the 7 pages every snapshot writes whatever its size
  // (docs/architecture.md). INSERT OR IGNORE still finds a replayed transition through it.
  (db) => {
    db.exec(`
      DROP INDEX transitions_host_seq;
      CREATE UNIQUE INDEX transitions_host_seq ON transitions (host, seq) WHERE seq IS NOT NULL;
    `);
  },
  // 8: history ids without AUTOINCREMENT. AUTOINCREMENT keeps each table's highest id in
  // sqlite_sequence and rewrites that row at the end of every statement that inserts, so every
  // commit with a history row also wrote the sqlite_sequence page to the WAL: one more frame per
  // report, whatever its size. A plain INTEGER PRIMARY KEY takes the highest id + 1, so ids still
  // grow with time; one could only be reused if the newest history row were deleted, and retention
  // deletes the oldest. `id` is only a tie-breaker after `at` (queries.ts, history). SQLite cannot
  // drop AUTOINCREMENT in place, so the table is rebuilt (ids kept).
  (db) => {
    db.exec(`
      CREATE TABLE transitions_v8 (
        id           INTEGER PRIMARY KEY,
        container_id TEXT NOT NULL,
        from_state   TEXT,
        to_state     TEXT,
        at           TEXT NOT NULL,
        host         TEXT NOT NULL,
        seq          INTEGER,
        reason       TEXT NOT NULL
      );
      INSERT INTO transitions_v8 (id, container_id, from_state, to_state, at, host, seq, reason)
        SELECT id, container_id, from_state, to_state, at, host, seq, reason FROM transitions;
      DROP TABLE transitions;
      ALTER TABLE transitions_v8 RENAME TO transitions;
      CREATE UNIQUE INDEX transitions_host_seq ON transitions (host, seq) WHERE seq IS NOT NULL;
      CREATE INDEX transitions_container ON transitions (container_id, at);
    `);
  },
  // 9: record counts kept by triggers, so that /metrics (by state and cluster) and GET /v2/hosts (by
  // host and state) read a table of a few rows per host instead of counting every record: at
  // 500,000 records each count took 56-72 ms of the event loop. One row per (host, state,
  // cluster) that ever held a record; a host's rows sit together, so a report that changes states
  // dirties one more page. Rows that fall to 0 stay until purgeGone removes them. cluster may be
  // null, hence the rowid table and `IS`: a unique key would let two null clusters coexist.
  (db) => {
    db.exec(`
      CREATE TABLE container_counts (
        instance_id TEXT NOT NULL,
        state       TEXT NOT NULL,
        cluster     TEXT,
        count       INTEGER NOT NULL
      );
      CREATE INDEX container_counts_key ON container_counts (instance_id, state, cluster);
      INSERT INTO container_counts (instance_id, state, cluster, count)
        SELECT instance_id, state, cluster, COUNT(*) FROM containers GROUP BY instance_id, state, cluster;

      CREATE TRIGGER containers_counted_insert AFTER INSERT ON containers BEGIN
        INSERT INTO container_counts (instance_id, state, cluster, count)
          SELECT new.instance_id, new.state, new.cluster, 0
          WHERE NOT EXISTS (SELECT 1 FROM container_counts WHERE instance_id = new.instance_id AND state = new.state AND cluster IS new.cluster);
        UPDATE container_counts SET count = count + 1 WHERE instance_id = new.instance_id AND state = new.state AND cluster IS new.cluster;
      END;
      CREATE TRIGGER containers_counted_delete AFTER DELETE ON containers BEGIN
        UPDATE container_counts SET count = count - 1 WHERE instance_id = old.instance_id AND state = old.state AND cluster IS old.cluster;
      END;
      CREATE TRIGGER containers_counted_update AFTER UPDATE OF instance_id, state, cluster ON containers
        WHEN old.instance_id IS NOT new.instance_id OR old.state IS NOT new.state OR old.cluster IS NOT new.cluster
      BEGIN
        UPDATE container_counts SET count = count - 1 WHERE instance_id = old.instance_id AND state = old.state AND cluster IS old.cluster;
        INSERT INTO container_counts (instance_id, state, cluster, count)
          SELECT new.instance_id, new.state, new.cluster, 0
          WHERE NOT EXISTS (SELECT 1 FROM container_counts WHERE instance_id = new.instance_id AND state = new.state AND cluster IS new.cluster);
        UPDATE container_counts SET count = count + 1 WHERE instance_id = new.instance_id AND state = new.state AND cluster IS new.cluster;
      END;
    `);
  },
  // 10: each container row keeps the host's snapshot seq at its last write, so that only a later
  // snapshot counts as having confirmed it (rows.ts, confirmedBySnapshot). Without it, a transition
  // older than the host's snapshot but committed after it (two replicas) read as confirmed by that
  // snapshot, and the container's next transition was dropped as older. Rows written before this
  // version keep the old reading (-1: any snapshot at or above their seq confirmed them).
  (db) => {
    db.exec('ALTER TABLE containers ADD COLUMN written_at_snapshot_seq INTEGER NOT NULL DEFAULT -1');
  },
  // 11: the original agent's events whose map key no record has yet. The agent posts its `added`
  // events before the map that brings their keys, so each waited here for that map
  // (replaceHostInTx), instead of being dropped. Kept an hour at most (PENDING_EVENT_MS).
  (db) => {
    db.exec(`
      CREATE TABLE pending_events (
        event_id TEXT NOT NULL,
        event    TEXT NOT NULL,
        at       TEXT NOT NULL,
        host     TEXT
      );
      CREATE INDEX pending_events_key ON pending_events (event_id);
      CREATE INDEX pending_events_at ON pending_events (at);
    `);
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export class SchemaVersionError extends Error {
  readonly name = 'SchemaVersionError';
  readonly code = 'ERR_SCHEMA_VERSION';
  constructor(
    readonly found: number,
    readonly supported: number,
  ) {
    super(`the database has schema version ${found}, newer than this build supports (${supported}); upgrade ecs-id-mapper`);
  }
}

/** Brings the database to `target` (default SCHEMA_VERSION; tests build older versions); returns the version it found. */
export function migrate(db: Database.Database, target = SCHEMA_VERSION): number {
  const found = db.pragma('user_version', { simple: true }) as number;
  if (found > SCHEMA_VERSION) throw new SchemaVersionError(found, SCHEMA_VERSION);
  for (let v = found; v < Math.min(target, SCHEMA_VERSION); v++) {
    db.transaction(() => {
      MIGRATIONS[v](db);
      // user_version takes no bound parameter; v + 1 is a number we computed, not input.
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
  return found;
}
