// Every SQL statement the SQLite store runs, built once from constant text (never from input);
// values are always bound parameters. Kept apart so tests can EXPLAIN exactly these statements.
import { CONTAINER_TABLE_COLUMNS, HOST_READ_COLUMNS, type ContainerColumn } from './rows.js';

/** States a snapshot may still turn into `gone`. */
export const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped'] as const;

export const LIST_FILTER_COLUMNS = ['cluster', 'instance_id', 'state', 'task_family'] as const;
export type ListFilterColumn = (typeof LIST_FILTER_COLUMNS)[number];

const cols = CONTAINER_TABLE_COLUMNS.join(', ');
const params = CONTAINER_TABLE_COLUMNS.map((c) => `@${c}`).join(', ');
const updates = CONTAINER_TABLE_COLUMNS.filter((c) => c !== 'container_id')
  .map((c) => `${c} = excluded.${c}`)
  .join(', ');

/**
 * Container rows with their host's last reconciler snapshot, from which rows.ts derives the last_seen
 * and seq of the containers that snapshot confirmed without rewriting them. The columns are listed
 * in rows.ts CONTAINER_READ_COLUMNS order: the store reads these statements in raw mode (arrays).
 * Filters name their table: hosts has instance_id and cluster columns too.
 */
const CONTAINERS = `SELECT ${CONTAINER_TABLE_COLUMNS.map((c) => `containers.${c}`).join(', ')},
    hosts.snapshot_seq AS host_snapshot_seq, hosts.snapshot_seen_at AS host_snapshot_seen_at
  FROM containers LEFT JOIN hosts ON hosts.instance_id = containers.instance_id`;

/** In rows.ts HOST_READ_COLUMNS order: the store reads hosts in raw mode (arrays). */
const HOST_COLUMNS = HOST_READ_COLUMNS.join(', ');

export const SQL = {
  getContainer: `${CONTAINERS} WHERE containers.container_id = ?`,
  // A primary-key range scan: every id with this prefix lies in [prefix, prefix + 'g'), because
  // hex digits sort below 'g'. Bound as (prefix, prefix + 'g'). Two rows at most: one is the
  // answer, two say the prefix is ambiguous (then prefixIds lists the candidates). One statement
  // reading the record in the same descent halved a prefix lookup (p50 17 → 8 µs) against listing
  // the ids first and reading the record by id.
  byPrefix: `${CONTAINERS} WHERE containers.container_id >= ? AND containers.container_id < ? ORDER BY containers.container_id LIMIT 2`,
  // Bound as (prefix, prefix + 'g', limit).
  prefixIds: 'SELECT container_id FROM containers WHERE container_id >= ? AND container_id < ? ORDER BY container_id LIMIT ?',
  byTaskId: `${CONTAINERS} WHERE containers.task_id = ? ORDER BY containers.container_id`,
  // By ARN, plus legacy records that know only the bare id (no ARN), bound as (id, arn): a record
  // with an ARN has that ARN's last segment as task_id (storage/records.ts), so one probe of the
  // task_id index finds both, already in container_id order (a WITHOUT ROWID table's index entries
  // end with the primary key), and no index on task_arn is kept up to date on every insert.
  byTaskArn: `${CONTAINERS} WHERE containers.task_id = ? AND (containers.task_arn = ? OR containers.task_arn IS NULL) ORDER BY containers.container_id`,
  byDockerName: `${CONTAINERS} WHERE containers.docker_name = ? ORDER BY containers.container_id`,
  byLegacyKey: 'SELECT container_id, instance_id FROM containers WHERE legacy_key = ? ORDER BY last_seen DESC LIMIT 1',
  liveOnHost: `SELECT container_id FROM containers WHERE instance_id = ? AND state IN (${LIVE_STATES.map((s) => `'${s}'`).join(', ')})`,
  upsertContainer: `INSERT INTO containers (${cols}) VALUES (${params}) ON CONFLICT (container_id) DO UPDATE SET ${updates}`,
  // A legacy snapshot entry that changed nothing but bookkeeping: no indexed column is set, so no index is rewritten.
  touchContainer: 'UPDATE containers SET last_seen = ?, seq = ?, sampled_at = ?, written_at_snapshot_seq = ? WHERE container_id = ?',
  insertTransition: `INSERT OR IGNORE INTO transitions (container_id, from_state, to_state, at, host, seq, reason)
     VALUES (@container_id, @from_state, @to_state, @at, @host, @seq, @reason)`,
  history: 'SELECT * FROM transitions WHERE container_id = ? ORDER BY at, id',
  // The transitions_container index read backwards from the newest, then put back in order.
  latestHistory: 'SELECT * FROM (SELECT * FROM transitions WHERE container_id = ? ORDER BY at DESC, id DESC LIMIT ?) ORDER BY at, id',
  // One probe of transitions_host_seq (its WHERE is implied by `seq = ?`).
  historyAtSeq: 'SELECT container_id, from_state, to_state FROM transitions WHERE host = ? AND seq = ?',
  getHost: 'SELECT last_seq, snapshot_seq FROM hosts WHERE instance_id = ?',
  // Reconciler hosts only: Store.retireSilentHosts.
  silentHosts: "SELECT instance_id FROM hosts WHERE last_report_at < ? AND reporter = 'reconciler' ORDER BY instance_id",
  hostLastReport: 'SELECT last_report_at, reporter FROM hosts WHERE instance_id = ?',
  hostHasRecords: 'SELECT 1 AS one FROM containers WHERE instance_id = ? LIMIT 1',
  deleteHost: 'DELETE FROM hosts WHERE instance_id = ?',
  // @snapshot_seq is set for reconciler snapshots only (null otherwise); an older snapshot arriving
  // late moves neither the host's snapshot seq nor its time.
  upsertHost: `INSERT INTO hosts (instance_id, cluster, container_instance_arn, instance_ip, instance_type, instance_az, region,
                        host_name, ecs_agent_version, first_seen, last_report_at, last_snapshot_at, last_seq, reporter,
                        snapshot_seq, snapshot_seen_at)
     VALUES (@instance_id, @cluster, @container_instance_arn, @instance_ip, @instance_type, @instance_az, @region,
             @host_name, @ecs_agent_version, @received_at, @received_at, @snapshot_at, @last_seq, @reporter,
             coalesce(@snapshot_seq, 0), CASE WHEN @snapshot_seq IS NULL THEN NULL ELSE @received_at END)
     ON CONFLICT (instance_id) DO UPDATE SET
       cluster = excluded.cluster, container_instance_arn = excluded.container_instance_arn,
       instance_ip = excluded.instance_ip, instance_type = excluded.instance_type, instance_az = excluded.instance_az,
       region = excluded.region, host_name = excluded.host_name, ecs_agent_version = excluded.ecs_agent_version,
       last_report_at = excluded.last_report_at,
       last_snapshot_at = coalesce(excluded.last_snapshot_at, hosts.last_snapshot_at),
       last_seq = max(hosts.last_seq, excluded.last_seq),
       reporter = excluded.reporter,
       snapshot_seen_at = CASE WHEN @snapshot_seq IS NOT NULL AND @snapshot_seq >= hosts.snapshot_seq
                               THEN excluded.snapshot_seen_at ELSE hosts.snapshot_seen_at END,
       snapshot_seq = max(hosts.snapshot_seq, excluded.snapshot_seq)`,
  listHosts: `SELECT ${HOST_COLUMNS} FROM hosts ORDER BY instance_id`,
  // Retention deletes a chunk of the oldest gone records at a time (sqlite-store.ts purgeGone),
  // found through the partial index of gone records only. Without statistics the planner prefers
  // the equality on state (containers_state), which would visit every gone record to test gone_at.
  // The chunk's ids are bound as one JSON array (json_each), never spliced into the text.
  purgeChunk: "SELECT container_id FROM containers INDEXED BY containers_gone_at WHERE state = 'gone' AND gone_at < ? ORDER BY gone_at LIMIT ?",
  insertPendingEvent: 'INSERT INTO pending_events (event_id, event, at, host) VALUES (?, ?, ?, ?)',
  pendingEvents: 'SELECT event, at, host FROM pending_events WHERE event_id = ? ORDER BY at',
  /** Whether an `added` event waits for any of the keys in a JSON array. */
  pendingAdded: "SELECT 1 AS found FROM pending_events WHERE event = 'added' AND event_id IN (SELECT value FROM json_each(?)) LIMIT 1",
  dropPendingEvents: 'DELETE FROM pending_events WHERE event_id = ?',
  expirePendingEvents: 'DELETE FROM pending_events WHERE at < ?',
  purgeHistory: 'DELETE FROM transitions WHERE container_id IN (SELECT value FROM json_each(?))',
  // The history bound (storage/history-bound.ts): a container's rows counted, then its oldest
  // beyond the limit deleted, both along transitions_container (container_id, at, then the rowid).
  countHistory: 'SELECT count(*) FROM transitions WHERE container_id = ?',
  trimHistory: 'DELETE FROM transitions WHERE id IN (SELECT id FROM transitions WHERE container_id = ? ORDER BY at, id LIMIT ?)',
  purgeContainers: 'DELETE FROM containers WHERE container_id IN (SELECT value FROM json_each(?))',
  // Both counts read the trigger-kept counts table (schema.ts, migration 9), a few rows per host,
  // not the containers; sqlite-store.test.ts checks the plans and that the table agrees with a count.
  countByState: 'SELECT state, cluster, SUM(count) AS count FROM container_counts GROUP BY state, cluster HAVING SUM(count) > 0 ORDER BY state, cluster',
  countByHostAndState:
    'SELECT instance_id, state, SUM(count) AS count FROM container_counts GROUP BY instance_id, state HAVING SUM(count) > 0 ORDER BY instance_id, state',
  // Counts that fell to 0 (a host's records all purged, a state no longer held there).
  dropEmptyCounts: 'DELETE FROM container_counts WHERE count = 0',
  ping: 'SELECT 1 AS ok',
} as const;

/** An UPDATE of exactly these columns of one container (named parameters, keyed by @container_id). */
export function updateSql(columns: readonly ContainerColumn[]): string {
  return `UPDATE containers SET ${columns.map((c) => `${c} = @${c}`).join(', ')} WHERE container_id = @container_id`;
}

/**
 * The listing statement for one combination of filters (named parameters @cluster, @instance_id,
 * @state, @task_family, @after, @limit). Keyset pagination: `container_id > @after`.
 */
export function listSql(filters: readonly ListFilterColumn[], hasCursor: boolean): string {
  const where: string[] = filters.map((k) => `containers.${k} = @${k}`);
  if (hasCursor) where.push('containers.container_id > @after');
  return `${CONTAINERS} ${where.length ? `WHERE ${where.join(' AND ')} ` : ''}ORDER BY containers.container_id LIMIT @limit`;
}
