// Turning the original Python agent's `POST /report/map` body into per-host legacy snapshots.
//
// The agent sends its host's whole current map (keys: sha256 of docker id + task id + desired
// status). Its task_id is the ARN's text after the last ':' minus 'task/', so new-format ARNs
// arrive as `<cluster>/<id>`: the bare id is derived and the raw value kept.
import { CONTAINER_ID, INSTANCE_ID, taskIdFromLegacy, type LifecycleState } from '../wire/index.js';
import type { LegacySnapshot } from '../storage/store.js';
import { badRequest } from './errors.js';
import type { LegacyMapEntry } from './schemas.js';

/** The lifecycle state the ECS statuses of an original-agent entry amount to. */
export function legacyState(desired: string, known: string): LifecycleState {
  if (known === 'STOPPED') return 'stopped';
  if (desired === 'STOPPED') return 'stopping';
  if (known === 'RUNNING') return 'running';
  return 'pending';
}

const str = (v: string | null | undefined): string | null => (v === undefined || v === null || v === '' ? null : v);

function portsOf(entry: LegacyMapEntry) {
  const containerPort = Number(entry.container_port ?? '0');
  const hostPort = Number(entry.instance_port ?? '0');
  if (!Number.isInteger(containerPort) || containerPort <= 0 || containerPort > 65535) return [];
  return [{ container_port: containerPort, host_port: Number.isInteger(hostPort) && hostPort > 0 && hostPort <= 65535 ? hostPort : null, protocol: 'tcp' }];
}

/** AZ `us-east-1a` → region `us-east-1`. */
function regionOf(az: string | null): string | null {
  return az && /^[a-z]{2}(-[a-z]+)+-\d[a-z]$/.test(az) ? az.slice(0, -1) : null;
}

const STATE_ORDER: readonly LifecycleState[] = ['pending', 'running', 'stopping', 'stopped', 'gone'];

/**
 * The original agent sends "" (or null) for every metadata field when its plain GETs to instance
 * metadata fail, as they do on instances that require IMDSv2 (401). Its maps name no host, and a
 * map is its host's snapshot, so they are refused; the agent ignores the answer, so the 400 is
 * counted (reports-rejected) and says what to do.
 */
const NO_METADATA_HINT =
  ': the agent could not read instance metadata (an instance that requires IMDSv2 answers its plain requests 401); allow IMDSv1 on the instance (HttpTokens=optional) or run the reconciler there';

/** 9999-12-31T23:59:59.999Z: the last instant the stores' four-digit ISO times can hold. */
const LAST_STORABLE_MS = 253402300799999;

/**
 * An original agent's epoch-seconds time (sample_time, an event's timestamp) in milliseconds, or a
 * 400 naming `field`. Checked here, before anything is applied: the stores refuse later years too,
 * but by then a map's earlier hosts would already be stored.
 */
export function legacyEpochMs(seconds: number, field: string): number {
  const ms = seconds * 1000;
  if (!Number.isFinite(ms) || ms > LAST_STORABLE_MS) throw badRequest(`${field} is not an epoch time in seconds before the year 10000`);
  return ms;
}

/** An empty snapshot of the host an entry names. */
function hostSnapshot(entry: LegacyMapEntry, instanceId: string, receivedAt: Date): LegacySnapshot {
  const az = str(entry.instance_az);
  return {
    host: {
      instance_id: instanceId,
      cluster: str(entry.cluster_name),
      container_instance_arn: null,
      instance_ip: str(entry.instance_ip),
      instance_type: str(entry.instance_type),
      instance_az: az,
      region: regionOf(az),
      host_name: str(entry.host_name),
      ecs_agent_version: str(entry.ecs_agent_version),
    },
    received_at: receivedAt.toISOString(),
    containers: [],
  };
}

/**
 * Groups a map by reporting instance (in practice one) and validates each entry. Entries with an
 * empty container_id (a container the ECS agent has not created yet) are skipped, but their host
 * still gets its snapshot, so its containers absent from the map become gone. A container under
 * two keys (its desired status is part of the key) is taken once: the entry sampled last, or on a
 * tie the further state, whatever order the keys came in (JSON key order would otherwise decide,
 * and could take a stopped container back to running). Throws a 400 ApiError for anything malformed.
 */
export function legacySnapshotsFromMap(map: Record<string, LegacyMapEntry>, receivedAt: Date): { snapshots: LegacySnapshot[]; skipped: number } {
  const byHost = new Map<string, LegacySnapshot>();
  /** One entry per container, in the order containers first appear; put into their snapshots at the end. */
  const chosen = new Map<string, { snapshot: LegacySnapshot; container: LegacySnapshot['containers'][number]; sampledMs: number }>();
  let skipped = 0;
  for (const [key, entry] of Object.entries(map)) {
    const instanceId = entry.instance_id ?? '';
    if (entry.container_id === '') {
      // Still names its host: a map holding only containers not created yet (a task pulling its
      // images) says the host's other containers are gone.
      if (INSTANCE_ID.test(instanceId) && !byHost.has(instanceId)) byHost.set(instanceId, hostSnapshot(entry, instanceId, receivedAt));
      skipped++;
      continue;
    }
    const containerId = entry.container_id.toLowerCase();
    if (!CONTAINER_ID.test(containerId)) throw badRequest(`entry ${key}: container_id must be 64 hex characters`);
    if (!INSTANCE_ID.test(instanceId)) throw badRequest(`entry ${key}: instance_id "${instanceId.slice(0, 40)}" is not an EC2 instance id${instanceId === '' ? NO_METADATA_HINT : ''}`);
    const taskId = entry.task_id === '' ? undefined : taskIdFromLegacy(entry.task_id);
    if (entry.task_id !== '' && !taskId) throw badRequest(`entry ${key}: task_id "${entry.task_id.slice(0, 80)}" holds no task id`);
    const sampledMs = legacyEpochMs(entry.sample_time, `entry ${key}: sample_time`);

    let snapshot = byHost.get(instanceId);
    if (!snapshot) {
      snapshot = hostSnapshot(entry, instanceId, receivedAt);
      byHost.set(instanceId, snapshot);
    }
    const state = legacyState(entry.desired_status, entry.known_status);
    const before = chosen.get(containerId);
    if (before) {
      skipped++;
      const later = sampledMs > before.sampledMs || (sampledMs === before.sampledMs && STATE_ORDER.indexOf(state) > STATE_ORDER.indexOf(before.container.state));
      if (!later) continue;
    }
    const container: LegacySnapshot['containers'][number] = {
      container_id: containerId,
      docker_name: null,
      container_name: str(entry.container_name),
      image: null,
      // The original agent never sent the ARN (nor its region and account), only the task id.
      task_arn: null,
      task_family: str(entry.task_name),
      task_version: str(entry.task_version),
      ports: portsOf(entry),
      desired_status: entry.desired_status,
      known_status: entry.known_status,
      restart_count: 0,
      exit_code: null,
      started_at: null,
      source: 'legacy',
      state,
      task_id_raw: entry.task_id === '' ? null : entry.task_id,
      legacy_key: key,
      sampled_at: new Date(sampledMs).toISOString(),
      instance_port: str(entry.instance_port),
      container_port: str(entry.container_port),
    };
    chosen.set(containerId, { snapshot, container, sampledMs });
  }
  for (const { snapshot, container } of chosen.values()) snapshot.containers.push(container);
  return { snapshots: [...byHost.values()], skipped };
}
