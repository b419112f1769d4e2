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
  const { host_snapshot_seq: snapshotSeq, host_snapshot_seen_at: snapshotSeenAt, ...stored } = row;
  const confirmed = snapshotSeenAt !== null && snapshotSeq !== null && stored.state !== 'gone' && stored.seq <= snapshotSeq;
  return {
    ...stored,
    ports: JSON.parse(stored.ports) as PortMapping[],
    state: stored.state as LifecycleState,
    source: stored.source as RecordSource,
    ...(confirmed && { seq: snapshotSeq, last_seen: snapshotSeenAt > stored.last_seen ? snapshotSeenAt : stored.last_seen }),
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
