// Small builders for Store test data, shared by the contract suite and other suites (api, bench).
// Every builder returns a valid wire object (it passes the wire schemas) and takes overrides.
import { createHash } from 'node:crypto';
import type {
  ContainerObservation,
  HostIdentity,
  HostSnapshot,
  LifecycleState,
  SnapshotContainer,
  Transition,
  TransitionBatch,
} from '../wire/index.js';
import type { LegacyEvent, LegacySnapshot } from './store.js';

/** A fixed instant plus `minutes`, so stored times are predictable. */
export const T0 = new Date('2026-01-01T00:00:00.000Z');
export function at(minutes: number): Date {
  return new Date(T0.getTime() + minutes * 60_000);
}
export function iso(minutes: number): string {
  return at(minutes).toISOString();
}

/** A deterministic 64-hex container id for any seed. */
export function containerId(seed: string | number): string {
  return createHash('sha256').update(`container:${seed}`).digest('hex');
}

/** A deterministic 32-hex task id (new ARN format) for any seed. */
export function taskId(seed: string | number): string {
  return createHash('sha256').update(`task:${seed}`).digest('hex').slice(0, 32);
}

/** A deterministic dashed UUID task id (old ARN format) for any seed. */
export function uuidTaskId(seed: string | number): string {
  const h = createHash('sha256').update(`uuid:${seed}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** New format `task/<cluster>/<id>` unless `cluster` is null (old format `task/<id>`). */
export function taskArn(id: string, cluster: string | null = 'prod', region = 'us-east-1'): string {
  return `arn:aws:ecs:${region}:123456789012:task/${cluster === null ? '' : `${cluster}/`}${id}`;
}

/** A deterministic instance id `i-` + 17 hex. */
export function instanceId(seed: string | number): string {
  return `i-${createHash('sha256').update(`instance:${seed}`).digest('hex').slice(0, 17)}`;
}

export function hostIdentity(overrides: Partial<HostIdentity> = {}): HostIdentity {
  const id = overrides.instance_id ?? instanceId('a');
  return {
    instance_id: id,
    cluster: 'prod',
    container_instance_arn: `arn:aws:ecs:us-east-1:123456789012:container-instance/prod/${createHash('sha256').update(id).digest('hex').slice(0, 32)}`,
    instance_ip: '10.0.1.17',
    instance_type: 'm5.large',
    instance_az: 'us-east-1a',
    region: 'us-east-1',
    host_name: 'ip-10-0-1-17.ec2.internal',
    ecs_agent_version: 'Amazon ECS Agent - v1.87.0 (abcdef12)',
    ...overrides,
  };
}

export function observation(overrides: Partial<ContainerObservation> = {}): ContainerObservation {
  const id = overrides.container_id ?? containerId('default');
  const tid = taskId(id);
  return {
    container_id: id,
    docker_name: `ecs-web-3-app-${id.slice(0, 20)}`,
    container_name: 'app',
    image: 'nginx:1.27',
    task_arn: taskArn(tid),
    task_family: 'web',
    task_version: '3',
    ports: [{ container_port: 80, host_port: 32768, protocol: 'tcp' }],
    desired_status: 'RUNNING',
    known_status: 'RUNNING',
    restart_count: 0,
    exit_code: null,
    started_at: null,
    source: 'agent',
    ...overrides,
  };
}

export function transition(
  seq: number,
  to: LifecycleState,
  overrides: Partial<Omit<Transition, 'container'>> & { container?: Partial<ContainerObservation> } = {},
): Transition {
  const { container, ...rest } = overrides;
  const obs = observation(container);
  return {
    seq,
    container_id: obs.container_id,
    from: null,
    to,
    at: iso(seq),
    reason: 'agent.observed',
    ...rest,
    container: obs,
  };
}

export function batch(host: HostIdentity, transitions: Transition[]): TransitionBatch {
  return { host, transitions };
}

export function snapshotContainer(state: LifecycleState, overrides: Partial<ContainerObservation> = {}): SnapshotContainer {
  return { ...observation(overrides), state };
}

export function snapshot(host: HostIdentity, seq: number, containers: SnapshotContainer[], takenAt = iso(seq)): HostSnapshot {
  return { host, seq, taken_at: takenAt, containers };
}

export type LegacyContainer = LegacySnapshot['containers'][number];

/** The opaque report-map key the original agent used (sha256 of docker id + task id + desired status). */
export function legacyKey(containerIdValue: string, taskIdRaw: string, desiredStatus: string): string {
  return createHash('sha256').update(containerIdValue + taskIdRaw + desiredStatus).digest('hex');
}

/**
 * A container of the original agent's report map: no ARN, the task id as the agent derived it
 * (`<cluster>/<id>` for new ARNs), source `legacy`.
 */
export function legacyContainer(
  state: LifecycleState,
  overrides: Partial<LegacyContainer> & { task_id_raw?: string } = {},
): LegacyContainer {
  const obs = observation({
    source: 'legacy',
    task_arn: null,
    ...(overrides.container_id === undefined ? {} : { container_id: overrides.container_id }),
  });
  const raw = overrides.task_id_raw ?? `prod/${taskId(obs.container_id)}`;
  return {
    ...obs,
    state,
    task_id_raw: raw,
    legacy_key: legacyKey(obs.container_id, raw, obs.desired_status ?? ''),
    sampled_at: iso(0),
    instance_port: '32768',
    container_port: '80',
    ...overrides,
  };
}

export function legacySnapshot(host: HostIdentity, containers: LegacyContainer[], receivedAt = iso(0)): LegacySnapshot {
  return { host, received_at: receivedAt, containers };
}

export function legacyEvent(eventId: string, event: LegacyEvent['event'], atIso = iso(1)): LegacyEvent {
  return { event_id: eventId, event, at: atIso };
}

/** Strings the original's hand-built select expressions were open to; every lookup must find nothing. */
export const INJECTION_STRINGS: readonly string[] = [
  '" or "1"="1',
  "' OR 1=1 --",
  '%',
  '_',
  '*',
  '`',
  '``',
  "itemName() like '%'",
  "x' or itemName() is not null or 'a'='a",
  '%00',
  '',
];
