// How an observation becomes a ContainerRecord: the one place both backends take the mapping rules
// from, so SQLite and SimpleDB store exactly the same thing (the contract suite checks it).
//
// Rules:
// - host fields (cluster, container_instance_arn, instance_*, region, host_name, ecs_agent_version)
//   come from the reporting host's identity;
// - a container→task mapping never changes: mapping fields (task_arn, task_id, family, version,
//   names, image) keep their stored value when a later observation lacks them;
// - task_id is the ARN's last segment, or for legacy reports the bare id of the raw `<cluster>/<id>`;
// - first_seen is set on create, last_seen is the server's receive time of every apply;
// - sampled_at is the legacy agent's sample time of the report that last wrote the record, null for
//   reconciler reports; like last_seen it is bookkeeping (changes alone do not count as an update);
// - stopped_at is the event time the state became `stopped` (cleared when the container runs again);
// - gone_at is the server's receive time the record became `gone` (retention runs on server time);
// - restart_count never decreases; exit_code and started_at keep their last known value.
import { createHash } from 'node:crypto';
import { taskIdFromArn, taskIdFromLegacy, type ContainerObservation, type HostIdentity, type LifecycleState } from '../wire/index.js';
import type { ContainerRecord } from './store.js';

export interface ApplyContext {
  host: HostIdentity;
  state: LifecycleState;
  /** The sequence number the record will carry. */
  seq: number;
  /** When the change happened on the host (transition `at`, snapshot `taken_at`, legacy `sample_time`), ISO. */
  eventAt: string;
  /** When the server received the report, ISO. */
  receivedAt: string;
  /** Legacy reports only: the agent's raw task id and report-map key. */
  taskIdRaw?: string | null;
  legacyKey?: string | null;
  /** Legacy reports only: the agent's sample_time, ISO. */
  sampledAt?: string | null;
}

/** A time the store cannot keep in its sortable text form; the API answers 400. */
export class InvalidTimeError extends RangeError {
  override readonly name = 'InvalidTimeError';
  readonly code = 'ERR_INVALID_TIME';
}

/** A leap second (RFC 3339 allows second 60), which a JavaScript Date cannot hold. */
const LEAP_SECOND = /^(.*T\d\d:\d\d):60(?:\.\d+)?(Z|[+-]\d\d:\d\d)$/i;

/**
 * An ISO-8601 time normalised to `Date#toISOString` form (UTC, milliseconds), so text order is time
 * order. A leap second is kept as the last millisecond before it. Throws InvalidTimeError for a text
 * Date cannot read, or a time outside the years 0000-9999 (toISOString would write "+010000-…",
 * which sorts before every other time).
 */
export function normaliseIso(text: string): string {
  const leap = LEAP_SECOND.exec(text);
  const d = new Date(leap ? `${leap[1]}:59.999${leap[2]}` : text);
  if (Number.isNaN(d.getTime())) throw new InvalidTimeError(`not a date-time: "${text}"`);
  const iso = d.toISOString();
  if (!/^\d{4}-/.test(iso)) throw new InvalidTimeError(`"${text}" is outside the years 0000-9999`);
  return iso;
}

function deriveTaskId(taskArn: string | null, taskIdRaw: string | null | undefined): string | null {
  if (taskArn !== null) return taskIdFromArn(taskArn) ?? null;
  if (taskIdRaw) return taskIdFromLegacy(taskIdRaw) ?? null;
  return null;
}

export function nextRecord(existing: ContainerRecord | undefined, obs: ContainerObservation, ctx: ApplyContext): ContainerRecord {
  const { host, state } = ctx;
  const taskArn = obs.task_arn ?? existing?.task_arn ?? null;
  const taskIdRaw = ctx.taskIdRaw ?? existing?.task_id_raw ?? null;
  // Whenever the record knows its ARN, task_id is the ARN's last segment, whatever a legacy report
  // says: lookups by ARN go through the task_id index (storage/sqlite/queries.ts).
  const taskId = deriveTaskId(taskArn, ctx.taskIdRaw) ?? existing?.task_id ?? deriveTaskId(null, taskIdRaw);
  let stoppedAt: string | null = null;
  if (state === 'stopped') stoppedAt = existing?.stopped_at ?? normaliseIso(ctx.eventAt);
  else if (state === 'gone') stoppedAt = existing?.stopped_at ?? null;
  const goneAt = state === 'gone' ? (existing?.state === 'gone' && existing.gone_at ? existing.gone_at : ctx.receivedAt) : null;
  return {
    container_id: obs.container_id,
    docker_name: obs.docker_name ?? existing?.docker_name ?? null,
    container_name: obs.container_name ?? existing?.container_name ?? null,
    image: obs.image ?? existing?.image ?? null,
    task_arn: taskArn,
    task_id: taskId,
    task_id_raw: taskIdRaw,
    task_family: obs.task_family ?? existing?.task_family ?? null,
    task_version: obs.task_version ?? existing?.task_version ?? null,
    cluster: host.cluster,
    container_instance_arn: host.container_instance_arn,
    instance_id: host.instance_id,
    instance_ip: host.instance_ip,
    instance_type: host.instance_type,
    instance_az: host.instance_az,
    region: host.region,
    host_name: host.host_name,
    ports: obs.ports.map((p) => ({ ...p })),
    desired_status: obs.desired_status,
    known_status: obs.known_status,
    state,
    restart_count: Math.max(obs.restart_count, existing?.restart_count ?? 0),
    exit_code: obs.exit_code ?? existing?.exit_code ?? null,
    started_at: obs.started_at !== null ? normaliseIso(obs.started_at) : (existing?.started_at ?? null),
    first_seen: existing?.first_seen ?? ctx.receivedAt,
    last_seen: ctx.receivedAt,
    stopped_at: stoppedAt,
    gone_at: goneAt,
    ecs_agent_version: host.ecs_agent_version,
    source: obs.source,
    seq: ctx.seq,
    legacy_key: ctx.legacyKey ?? existing?.legacy_key ?? null,
    sampled_at: ctx.sampledAt ?? null,
  };
}

/** The record a host's snapshot marks gone because the container is absent from it. */
export function goneRecord(existing: ContainerRecord, seq: number, receivedAt: string): ContainerRecord {
  return { ...existing, state: 'gone', gone_at: existing.gone_at ?? receivedAt, seq: Math.max(existing.seq, seq) };
}

/** True when anything but the bookkeeping (last_seen, seq, sampled_at) differs: what snapshots count as `upserted`. */
export function recordChanged(before: ContainerRecord, after: ContainerRecord): boolean {
  for (const key of Object.keys(after) as Array<keyof ContainerRecord>) {
    if (key === 'last_seen' || key === 'seq' || key === 'sampled_at') continue;
    if (key === 'ports') {
      if (JSON.stringify(before.ports) !== JSON.stringify(after.ports)) return true;
    } else if (before[key] !== after[key]) return true;
  }
  return false;
}

/** Task desired statuses the ECS agent has used; the original agent hashed its task's into each map key. */
const ECS_DESIRED_STATUSES = ['NONE', 'PENDING', 'PULLED', 'CREATED', 'RUNNING', 'RESOURCES_PROVISIONED', 'STOPPED', 'ZOMBIE'];

/**
 * Whether the original agent's `removed` event for `key` ends this record: the key is the record's
 * current one, the record is live and no reconciler reports it (seq 0). Unless an `added` event for
 * another key of the same container waits (otherLegacyKeys), the container left the agent's listing:
 * the agent posts a key change's `added` before its `removed`, and the map after both. Its last map
 * before leaving a host empty is `{}`, which names no host: without this, the host's last containers
 * stayed live for good.
 */
export function removalEndsRecord(record: ContainerRecord, key: string): boolean {
  return record.legacy_key === key && record.seq === 0 && record.state !== 'gone';
}

/**
 * The keys the original agent would give the record's container under another task desired status:
 * sha256(docker id + task id as it sent it + desired status).
 */
export function otherLegacyKeys(record: ContainerRecord): string[] {
  const statuses = new Set([...ECS_DESIRED_STATUSES, ...(record.desired_status ? [record.desired_status] : [])]);
  const keys = [...statuses].map((status) => createHash('sha256').update(record.container_id + (record.task_id_raw ?? '') + status).digest('hex'));
  return keys.filter((key) => key !== record.legacy_key);
}
