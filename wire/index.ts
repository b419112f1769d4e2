// The wire contract between the reconciler and the server, defined once and imported by both:
// the v2 report bodies and answers (TypeBox schemas, so the API validates exactly what the
// reconciler's types describe), plus the id shapes every layer agrees on.
//
// Field names are snake_case on the wire and in stored records, matching the original API.
import { Type, type Static } from 'typebox';

// --- identifiers -------------------------------------------------------------------------------

/** Full Docker container id: 64 lower-case hex characters. */
export const CONTAINER_ID = /^[0-9a-f]{64}$/;
/** A container id prefix as `docker ps`, cAdvisor and logs show it: 12 to 64 hex characters. */
export const CONTAINER_ID_PREFIX = /^[0-9a-f]{12,64}$/;
/** A task id: 32 hex (new ARNs) or a dashed UUID (old ARNs). */
export const TASK_ID = /^(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;
/**
 * An ECS task ARN, old (`task/<id>`) or new (`task/<cluster>/<id>`) format. Partitions include
 * aws, aws-cn, aws-us-gov; the account may be a placeholder in AWS's own samples.
 */
export const TASK_ARN = /^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[A-Za-z0-9_]+:task\/(?:[A-Za-z0-9_-]{1,255}\/)?([0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;
/** EC2 instance id (also accepts the simulated ids used in tests: `i-` + hex). */
export const INSTANCE_ID = /^i-[0-9a-f]{8,32}$/;

/** The task id of an ARN: its last `/` segment; undefined when the ARN is malformed. */
export function taskIdFromArn(arn: string): string | undefined {
  const m = TASK_ARN.exec(arn);
  return m ? m[1] : undefined;
}

/**
 * The task id as the original Python agent derived it (text after the last `:` minus `task/`),
 * which for new ARNs is `<cluster>/<id>`: returns the bare id, or undefined when it has no id shape.
 */
export function taskIdFromLegacy(raw: string): string | undefined {
  const last = raw.slice(raw.lastIndexOf('/') + 1);
  return TASK_ID.test(last) ? last : undefined;
}

// --- lifecycle -----------------------------------------------------------------------------------

export const LIFECYCLE_STATES = ['pending', 'running', 'stopping', 'stopped', 'gone'] as const;
export type LifecycleState = (typeof LIFECYCLE_STATES)[number];
// Type.Enum over the const tuple keeps the literal union in Static<> (a mapped array would infer never).
export const LifecycleStateSchema = Type.Enum(LIFECYCLE_STATES);

/** Where a container's task mapping came from. */
export const RECORD_SOURCES = ['agent', 'labels', 'legacy'] as const;
export type RecordSource = (typeof RECORD_SOURCES)[number];

// --- what a reconciler knows ---------------------------------------------------------------------

const NullableString = (max = 1024) => Type.Union([Type.String({ maxLength: max }), Type.Null()]);

export const PortMappingSchema = Type.Object(
  {
    container_port: Type.Integer({ minimum: 0, maximum: 65535 }),
    host_port: Type.Union([Type.Integer({ minimum: 0, maximum: 65535 }), Type.Null()]),
    protocol: Type.String({ maxLength: 8 }),
    host_ip: Type.Optional(NullableString(64)),
  },
  { additionalProperties: false },
);
export type PortMapping = Static<typeof PortMappingSchema>;

/** The identity of the reporting host, from IMDS and the agent's /v1/metadata. */
export const HostIdentitySchema = Type.Object(
  {
    instance_id: Type.String({ pattern: INSTANCE_ID.source }),
    cluster: NullableString(255),
    container_instance_arn: NullableString(1024),
    instance_ip: NullableString(64),
    instance_type: NullableString(64),
    instance_az: NullableString(64),
    region: NullableString(64),
    host_name: NullableString(255),
    ecs_agent_version: NullableString(255),
  },
  { additionalProperties: false },
);
export type HostIdentity = Static<typeof HostIdentitySchema>;

/** One container as observed on a host: the task mapping plus what the agent and Docker say. */
export const ContainerObservationSchema = Type.Object(
  {
    container_id: Type.String({ pattern: CONTAINER_ID.source }),
    docker_name: NullableString(255),
    container_name: NullableString(255),
    image: NullableString(1024),
    task_arn: Type.Union([Type.String({ pattern: TASK_ARN.source }), Type.Null()]),
    task_family: NullableString(255),
    task_version: NullableString(32),
    ports: Type.Array(PortMappingSchema, { maxItems: 256 }),
    desired_status: NullableString(32),
    known_status: NullableString(32),
    restart_count: Type.Integer({ minimum: 0 }),
    exit_code: Type.Union([Type.Integer(), Type.Null()]),
    started_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    source: Type.Enum(RECORD_SOURCES),
  },
  { additionalProperties: false },
);
export type ContainerObservation = Static<typeof ContainerObservationSchema>;

// --- POST /v2/hosts/<instance_id>/transitions ----------------------------------------------------

export const TransitionSchema = Type.Object(
  {
    /** Per-host, strictly increasing; gaps are allowed (the outbox may coalesce). */
    seq: Type.Integer({ minimum: 1 }),
    container_id: Type.String({ pattern: CONTAINER_ID.source }),
    /** null for the first observation of a container. */
    from: Type.Union([LifecycleStateSchema, Type.Null()]),
    to: LifecycleStateSchema,
    /** When the reconciler observed the transition (ISO-8601 UTC). */
    at: Type.String({ format: 'date-time' }),
    /** The machine event that caused it, e.g. `agent.observed`, `container.vanished`. */
    reason: Type.String({ maxLength: 64 }),
    /** The container's attributes as of this transition. */
    container: ContainerObservationSchema,
  },
  { additionalProperties: false },
);
export type Transition = Static<typeof TransitionSchema>;

export const TransitionBatchSchema = Type.Object(
  {
    host: HostIdentitySchema,
    transitions: Type.Array(TransitionSchema, { minItems: 1, maxItems: 5000 }),
  },
  { additionalProperties: false },
);
export type TransitionBatch = Static<typeof TransitionBatchSchema>;

export const TransitionBatchResultSchema = Type.Object({
  /** Transitions that changed stored state or history. */
  applied: Type.Integer(),
  /** Transitions already seen (replays), acknowledged without effect. */
  duplicates: Type.Integer(),
  /** Highest sequence number the server holds for this host; the reconciler may compact up to it. */
  acked_seq: Type.Integer(),
});
export type TransitionBatchResult = Static<typeof TransitionBatchResultSchema>;

// --- PUT /v2/hosts/<instance_id>/snapshot --------------------------------------------------------

// One flat object rather than an allOf: ContainerObservationSchema forbids additional properties,
// so an intersection with `{state}` could never validate.
export const SnapshotContainerSchema = Type.Object(
  { ...ContainerObservationSchema.properties, state: LifecycleStateSchema },
  { additionalProperties: false },
);
export type SnapshotContainer = ContainerObservation & { state: LifecycleState };

export const HostSnapshotSchema = Type.Object(
  {
    host: HostIdentitySchema,
    /**
     * The highest sequence number the reconciler had assigned when it took the snapshot. Records
     * the server updated from a later transition (higher seq) are left alone.
     */
    seq: Type.Integer({ minimum: 0 }),
    taken_at: Type.String({ format: 'date-time' }),
    containers: Type.Array(SnapshotContainerSchema, { maxItems: 5000 }),
  },
  { additionalProperties: false },
);
export type HostSnapshot = Static<typeof HostSnapshotSchema>;

export const SnapshotResultSchema = Type.Object({
  /** Records created or changed by the snapshot. */
  upserted: Type.Integer(),
  /** Records of this host absent from the snapshot, now marked gone. */
  gone: Type.Integer(),
  /** Containers skipped because the server already held a later sequence number. */
  skipped: Type.Integer(),
});
export type SnapshotResult = Static<typeof SnapshotResultSchema>;

/** The JSON body of every 4xx/5xx answer. */
export const ErrorBodySchema = Type.Object({
  error: Type.String(),
  message: Type.String(),
  candidates: Type.Optional(Type.Array(Type.String())),
});
export type ErrorBody = Static<typeof ErrorBodySchema>;
