// Resolving "any id" to container records: the one place that decides what kind of id a string is.
//
//   64 hex                      → container id
//   32 hex                      → task id first; when no task has it, a container id prefix
//                                 (a 32-hex string is both shapes)
//   dashed UUID                 → task id (old-format ARNs)
//   12..63 hex                  → container id prefix (unique, else ambiguous)
//   arn:aws…:task/…             → task ARN
//   [A-Za-z0-9_.-]{1,640}       → docker name (v2 only; as long as the wire takes: WIRE_LIMITS)
// Hex ids are matched case-insensitively (Docker prints lower case). Anything else is a 400.
import { CONTAINER_ID, TASK_ARN, TASK_ID } from '../wire/index.js';
import { WIRE_LIMITS } from '../wire/ids.js';
import type { ContainerRecord, Store } from '../storage/store.js';
import { ambiguous, badRequest } from './errors.js';
import type { ApiMetrics, LookupKind } from './metrics.js';

const HEX_PREFIX = /^[0-9a-f]{12,63}$/;
const DOCKER_NAME = new RegExp(`^[A-Za-z0-9_.-]{1,${WIRE_LIMITS.observation.docker_name}}$`);

export interface LookupAnswer {
  kind: LookupKind;
  /** Normalised id (lower-cased hex). */
  query: string;
  records: ContainerRecord[];
}

/** Which id shapes a route accepts: the legacy routes know only container ids, prefixes and task ids. */
export type LookupScope = 'legacy' | 'any';

async function byContainer(store: Store, id: string, kind: LookupKind, metrics: ApiMetrics): Promise<ContainerRecord[]> {
  const found = await store.getContainer(id);
  if (found.kind === 'ambiguous') {
    metrics.lookup(kind, 'ambiguous');
    throw ambiguous(id, found.candidates, found.more);
  }
  return found.kind === 'found' ? [found.record] : [];
}

function tally(metrics: ApiMetrics, kind: LookupKind, records: ContainerRecord[]): void {
  metrics.lookup(kind, records.length > 0 ? 'hit' : 'miss');
}

/**
 * Resolves an id to its records (empty when unknown). Throws ApiError 400 for an id of no known
 * shape and 409 (with candidates) for an ambiguous prefix.
 */
export async function lookupId(store: Store, raw: string, scope: LookupScope, metrics: ApiMetrics): Promise<LookupAnswer> {
  const lower = raw.toLowerCase();
  if (CONTAINER_ID.test(lower)) {
    const records = await byContainer(store, lower, 'container_id', metrics);
    tally(metrics, 'container_id', records);
    return { kind: 'container_id', query: lower, records };
  }
  if (TASK_ID.test(lower)) {
    const records = await store.findByTask(lower);
    if (records.length > 0 || lower.includes('-')) {
      tally(metrics, 'task_id', records);
      return { kind: 'task_id', query: lower, records };
    }
    // 32 hex and no such task: it may be a container id prefix.
    const byPrefix = await byContainer(store, lower, 'container_prefix', metrics);
    if (byPrefix.length > 0) {
      tally(metrics, 'container_prefix', byPrefix);
      return { kind: 'container_prefix', query: lower, records: byPrefix };
    }
    tally(metrics, 'task_id', []);
    return { kind: 'task_id', query: lower, records: [] };
  }
  if (HEX_PREFIX.test(lower)) {
    const records = await byContainer(store, lower, 'container_prefix', metrics);
    if (records.length > 0 || scope === 'legacy') {
      tally(metrics, 'container_prefix', records);
      return { kind: 'container_prefix', query: lower, records };
    }
    // A hex-looking string may also be a docker name; try that before answering "not found".
    const named = await store.findByDockerName(raw);
    if (named.length > 0) {
      tally(metrics, 'docker_name', named);
      return { kind: 'docker_name', query: raw, records: named };
    }
    tally(metrics, 'container_prefix', []);
    return { kind: 'container_prefix', query: lower, records: [] };
  }
  if (scope === 'any') {
    if (raw.startsWith('arn:')) {
      // Hex is matched in any case, as for the other ids: the task id (the last segment) is
      // lower-cased as ECS writes it; the cluster name before it is case-sensitive and kept.
      const arn = raw.replace(/[^/]*$/, (id) => id.toLowerCase());
      if (!TASK_ARN.test(arn)) throw badRequest(`"${truncate(raw)}" is not an ECS task ARN (arn:aws:ecs:REGION:ACCOUNT:task/[CLUSTER/]ID)`);
      const records = await store.findByTask(arn);
      tally(metrics, 'task_arn', records);
      return { kind: 'task_arn', query: arn, records };
    }
    if (DOCKER_NAME.test(raw)) {
      const records = await store.findByDockerName(raw);
      tally(metrics, 'docker_name', records);
      return { kind: 'docker_name', query: raw, records };
    }
    throw badRequest(`"${truncate(raw)}" is not a container id (12-64 hex), task id, task ARN or docker name`);
  }
  throw badRequest(`"${truncate(raw)}" is not a container id (12-64 hex characters) or a task id (32 hex or UUID)`);
}

/**
 * Resolves an id on a route that names a task (`/query/task_id/...`): a 32-hex id there is a task id
 * only, never a container prefix (which could answer 409 about containers on a task route). Other
 * hex ids are no task's (kind container_prefix, no records); ids of no known shape are 400 as in
 * lookupId.
 */
export async function lookupTaskId(store: Store, raw: string, metrics: ApiMetrics): Promise<LookupAnswer> {
  const lower = raw.toLowerCase();
  if (TASK_ID.test(lower)) {
    const records = await store.findByTask(lower);
    tally(metrics, 'task_id', records);
    return { kind: 'task_id', query: lower, records };
  }
  if (CONTAINER_ID.test(lower) || HEX_PREFIX.test(lower)) {
    tally(metrics, 'task_id', []);
    return { kind: 'container_prefix', query: lower, records: [] };
  }
  return lookupId(store, raw, 'legacy', metrics);
}

function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
