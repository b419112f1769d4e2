// Row ↔ record mapping for the SQLite tables. Columns are named like the record fields except
// the history's from/to (reserved words in SQL) and `ports` (JSON text).
import type { LifecycleState, PortMapping, RecordSource } from '../../wire/index.js';
import type { ContainerRecord, HostRecord, TransitionRecord } from '../store.js';

export type ContainerRow = Omit<ContainerRecord, 'ports'> & { ports: string };

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

export type HostRow = HostRecord;

/** A container row as read (queries.ts CONTAINERS): with its host's last reconciler snapshot, null when the host has no row. */
export type StoredContainerRow = ContainerRow & { host_snapshot_seq: number | null; host_snapshot_seen_at: string | null };

export function toContainerRow(r: ContainerRecord): ContainerRow {
  return { ...r, ports: JSON.stringify(r.ports) };
}

/**
 * The record a row stands for. A reconciler snapshot does not rewrite the rows of the containers it
 * merely confirms (same host, nothing changed): it moves its host's snapshot_seq and
 * snapshot_seen_at instead. A live row of that host whose seq is at or below the host's snapshot
 * seq was in that snapshot (were it absent, the snapshot would have made it gone), so it was seen
 * then and carries that seq. Gone rows, and rows written after the snapshot, are as stored.
 */
export function fromContainerRow(row: StoredContainerRow): ContainerRecord {
  const { host_snapshot_seq: snapshotSeq, host_snapshot_seen_at: snapshotSeenAt } = row;
  const confirmed = snapshotSeenAt !== null && snapshotSeq !== null && row.state !== 'gone' && row.seq <= snapshotSeq;
  // Field by field rather than a spread: the row also holds the host's columns, and this runs for
  // every record read (a rest-spread over 35 properties was a tenth of a snapshot's CPU).
  return {
    container_id: row.container_id,
    docker_name: row.docker_name,
    container_name: row.container_name,
    image: row.image,
    task_arn: row.task_arn,
    task_id: row.task_id,
    task_id_raw: row.task_id_raw,
    task_family: row.task_family,
    task_version: row.task_version,
    cluster: row.cluster,
    container_instance_arn: row.container_instance_arn,
    instance_id: row.instance_id,
    instance_ip: row.instance_ip,
    instance_type: row.instance_type,
    instance_az: row.instance_az,
    region: row.region,
    host_name: row.host_name,
    ports: JSON.parse(row.ports) as PortMapping[],
    desired_status: row.desired_status,
    known_status: row.known_status,
    state: row.state as LifecycleState,
    restart_count: row.restart_count,
    exit_code: row.exit_code,
    started_at: row.started_at,
    first_seen: row.first_seen,
    last_seen: confirmed && snapshotSeenAt > row.last_seen ? snapshotSeenAt : row.last_seen,
    stopped_at: row.stopped_at,
    gone_at: row.gone_at,
    ecs_agent_version: row.ecs_agent_version,
    source: row.source as RecordSource,
    seq: confirmed ? snapshotSeq : row.seq,
    legacy_key: row.legacy_key,
    sampled_at: row.sampled_at,
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

export type ContainerColumn = (typeof CONTAINER_COLUMNS)[number];
