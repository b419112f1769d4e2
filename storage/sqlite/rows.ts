// Row ↔ record mapping for the SQLite tables. Columns are named like the record fields except
// the history's from/to (reserved words in SQL) and `ports` (JSON text).
import type { LifecycleState, PortMapping, RecordSource } from '../../wire/index.js';
import type { ContainerRecord, HostRecord, TransitionRecord } from '../store.js';

/** A record as written: `written_at_snapshot_seq` is its host's snapshot seq at the write (fromContainerRow). */
export type ContainerRow = Omit<ContainerRecord, 'ports'> & { ports: string; written_at_snapshot_seq: number };

export interface TransitionRow {
  id: number;
  container_id: string;
  from_state: string | null;
  to_state: string | null;
  at: string;
  host: string;
  seq: number | null;
  reason: string;
}

/**
 * A host row as read (queries.ts listHosts), in raw mode: its values in HOST_READ_COLUMNS order.
 * Raw for the same reason as container rows: `/v2/hosts` and every metrics scrape read every host,
 * and at 2,000 hosts building the row objects a property at a time took 8 ms of a 45 ms answer.
 */
export type StoredHostRow = ReadonlyArray<string | number | null>;

/** The columns a host read selects, in order. */
export const HOST_READ_COLUMNS = [
  'instance_id', 'cluster', 'container_instance_arn', 'instance_ip', 'instance_type', 'instance_az', 'region', 'host_name',
  'ecs_agent_version', 'first_seen', 'last_report_at', 'last_snapshot_at', 'last_seq', 'reporter',
] as const satisfies ReadonlyArray<keyof HostRecord>;

/** Where each column sits in a raw host row (StoredHostRow). */
const HOST_INDEX = Object.fromEntries(HOST_READ_COLUMNS.map((c, i) => [c, i])) as Readonly<Record<(typeof HOST_READ_COLUMNS)[number], number>>;

export function fromHostRow(row: StoredHostRow): HostRecord {
  const at = HOST_INDEX;
  return {
    instance_id: row[at.instance_id] as string,
    cluster: row[at.cluster] as string | null,
    container_instance_arn: row[at.container_instance_arn] as string | null,
    instance_ip: row[at.instance_ip] as string | null,
    instance_type: row[at.instance_type] as string | null,
    instance_az: row[at.instance_az] as string | null,
    region: row[at.region] as string | null,
    host_name: row[at.host_name] as string | null,
    ecs_agent_version: row[at.ecs_agent_version] as string | null,
    first_seen: row[at.first_seen] as string,
    last_report_at: row[at.last_report_at] as string,
    last_snapshot_at: row[at.last_snapshot_at] as string | null,
    last_seq: row[at.last_seq] as number,
    reporter: row[at.reporter] as HostRecord['reporter'],
  };
}

/**
 * A container row as read (queries.ts CONTAINERS), in better-sqlite3's raw mode: its values in
 * CONTAINER_READ_COLUMNS order, ending with its host's last reconciler snapshot (null when the host
 * has no row). Raw because better-sqlite3 builds a row object one named property at a time: for
 * these 35 columns that was 7 of the 19 µs a lookup by id took here, an array a fraction of it.
 */
export type StoredContainerRow = ReadonlyArray<string | number | null>;

export function toContainerRow(r: ContainerRecord, writtenAtSnapshotSeq: number): ContainerRow {
  return { ...r, ports: JSON.stringify(r.ports), written_at_snapshot_seq: writtenAtSnapshotSeq };
}

/**
 * The record a row stands for. A reconciler snapshot does not rewrite the rows of the containers it
 * merely confirms (same host, nothing changed): it moves its host's snapshot_seq and
 * snapshot_seen_at instead. A live row of that host was in that snapshot (were it absent, the
 * snapshot would have made it gone, or skipped it for a higher seq) when the snapshot is newer than
 * both the row's seq and the host's snapshot when the row was written (written_at_snapshot_seq):
 * then it was seen at that time and carries that seq. The second condition matters when a late
 * transition (seq 40, sent before the snapshot at seq 100 but committed after it, by another
 * replica) writes a row: that row was not in the snapshot and keeps its own seq. Gone rows, and rows
 * an original agent wrote (sampled_at set; its maps do not move the snapshot), are as stored.
 */
export function confirmedBySnapshot(row: StoredContainerRow): boolean {
  const at = READ_INDEX;
  const snapshotSeq = row[at.host_snapshot_seq] as number | null;
  return (
    row[at.host_snapshot_seen_at] !== null &&
    snapshotSeq !== null &&
    row[at.state] !== 'gone' &&
    row[at.sampled_at] === null &&
    (row[at.seq] as number) <= snapshotSeq &&
    (row[at.written_at_snapshot_seq] as number) < snapshotSeq
  );
}

export function fromContainerRow(row: StoredContainerRow): ContainerRecord {
  const at = READ_INDEX;
  const snapshotSeq = row[at.host_snapshot_seq] as number;
  const snapshotSeenAt = row[at.host_snapshot_seen_at] as string;
  const state = row[at.state] as LifecycleState;
  const seq = row[at.seq] as number;
  const lastSeen = row[at.last_seen] as string;
  const confirmed = confirmedBySnapshot(row);
  return {
    container_id: row[at.container_id] as string,
    docker_name: row[at.docker_name] as string | null,
    container_name: row[at.container_name] as string | null,
    image: row[at.image] as string | null,
    task_arn: row[at.task_arn] as string | null,
    task_id: row[at.task_id] as string | null,
    task_id_raw: row[at.task_id_raw] as string | null,
    task_family: row[at.task_family] as string | null,
    task_version: row[at.task_version] as string | null,
    cluster: row[at.cluster] as string | null,
    container_instance_arn: row[at.container_instance_arn] as string | null,
    instance_id: row[at.instance_id] as string,
    instance_ip: row[at.instance_ip] as string | null,
    instance_type: row[at.instance_type] as string | null,
    instance_az: row[at.instance_az] as string | null,
    region: row[at.region] as string | null,
    host_name: row[at.host_name] as string | null,
    ports: JSON.parse(row[at.ports] as string) as PortMapping[],
    desired_status: row[at.desired_status] as string | null,
    known_status: row[at.known_status] as string | null,
    state,
    restart_count: row[at.restart_count] as number,
    exit_code: row[at.exit_code] as number | null,
    started_at: row[at.started_at] as string | null,
    first_seen: row[at.first_seen] as string,
    last_seen: confirmed && snapshotSeenAt > lastSeen ? snapshotSeenAt : lastSeen,
    stopped_at: row[at.stopped_at] as string | null,
    gone_at: row[at.gone_at] as string | null,
    ecs_agent_version: row[at.ecs_agent_version] as string | null,
    source: row[at.source] as RecordSource,
    seq: confirmed ? snapshotSeq : seq,
    legacy_key: row[at.legacy_key] as string | null,
    sampled_at: row[at.sampled_at] as string | null,
  };
}

export function fromTransitionRow(row: TransitionRow): TransitionRecord {
  return {
    container_id: row.container_id,
    from: row.from_state as LifecycleState | null,
    to: row.to_state as LifecycleState | null,
    at: row.at,
    host: row.host,
    seq: row.seq,
    reason: row.reason,
  };
}

export function toTransitionParams(t: TransitionRecord): Omit<TransitionRow, 'id'> {
  return { container_id: t.container_id, from_state: t.from, to_state: t.to, at: t.at, host: t.host, seq: t.seq, reason: t.reason };
}

/** Column list of the containers table, in record-field order (the INSERT uses it). */
export const CONTAINER_COLUMNS = [
  'container_id', 'docker_name', 'container_name', 'image', 'task_arn', 'task_id', 'task_id_raw', 'task_family',
  'task_version', 'cluster', 'container_instance_arn', 'instance_id', 'instance_ip', 'instance_type', 'instance_az',
  'region', 'host_name', 'ports', 'desired_status', 'known_status', 'state', 'restart_count', 'exit_code',
  'started_at', 'first_seen', 'last_seen', 'stopped_at', 'gone_at', 'ecs_agent_version', 'source', 'seq', 'legacy_key',
  'sampled_at',
] as const satisfies ReadonlyArray<keyof ContainerRow>;

/** Every column of the containers table: the record's, then the host snapshot seq its last write saw (schema.ts, 10). */
export const CONTAINER_TABLE_COLUMNS = [...CONTAINER_COLUMNS, 'written_at_snapshot_seq'] as const satisfies ReadonlyArray<keyof ContainerRow>;

export type ContainerColumn = (typeof CONTAINER_TABLE_COLUMNS)[number];

/** The columns a container read selects, in order (queries.ts CONTAINERS; a raw row's positions). */
export const CONTAINER_READ_COLUMNS = [...CONTAINER_TABLE_COLUMNS, 'host_snapshot_seq', 'host_snapshot_seen_at'] as const;

/** Where each column sits in a raw row (StoredContainerRow). */
export const READ_INDEX = Object.fromEntries(CONTAINER_READ_COLUMNS.map((c, i) => [c, i])) as Readonly<
  Record<(typeof CONTAINER_READ_COLUMNS)[number], number>
>;
