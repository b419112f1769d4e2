// The wire contract between the reconciler and the server, defined once and imported by both:
// the v2 report bodies and answers (TypeBox schemas, so the API validates exactly what the
// reconciler's types describe), plus (from wire/ids.ts) the id shapes every layer agrees on.
//
// Field names are snake_case on the wire and in stored records, matching the original API.
import { Type, type Static } from 'typebox';
import { CONTAINER_ID, DOCKER_NAME, INSTANCE_ID, LIFECYCLE_STATES, RECORD_SOURCES, TASK_ARN, WIRE_LIMITS, type LifecycleState } from './ids.js';

// The TypeBox-free part (ids, lifecycle states, record sources): wire/ids.ts. Re-exported so every
// importer keeps one import; code the reconciler daemon loads imports ./ids.js directly.
export * from './ids.js';

// --- lifecycle -----------------------------------------------------------------------------------

// Type.Enum over the const tuple keeps the literal union in Static<> (a mapped array would infer never).
export const LifecycleStateSchema = Type.Enum(LIFECYCLE_STATES);

// --- what a reconciler knows ---------------------------------------------------------------------

const NullableString = (max = 1024) => Type.Union([Type.String({ maxLength: max }), Type.Null()]);
/**
 * Docker keeps exit codes and restart counts as 32-bit integers. Sequence numbers stop at 2^53 - 1,
 * the largest integer a JSON number holds exactly here: one seq of 1e300 would otherwise have made
 * every later batch of its host a duplicate.
 */
const INT32_MAX = WIRE_LIMITS.int32Max;
const OBS = WIRE_LIMITS.observation;
const HOST = WIRE_LIMITS.host;

export const PortMappingSchema = Type.Object(
  {
    container_port: Type.Integer({ minimum: 0, maximum: 65535 }),
    host_port: Type.Union([Type.Integer({ minimum: 0, maximum: 65535 }), Type.Null()]),
    protocol: Type.String({ maxLength: OBS.protocol }),
    host_ip: Type.Optional(NullableString(OBS.host_ip)),
  },
  { additionalProperties: false },
);
export type PortMapping = Static<typeof PortMappingSchema>;

/** The identity of the reporting host, from IMDS and the agent's /v1/metadata. */
export const HostIdentitySchema = Type.Object(
  {
    instance_id: Type.String({ pattern: INSTANCE_ID.source }),
    cluster: NullableString(HOST.cluster),
    container_instance_arn: NullableString(HOST.container_instance_arn),
    instance_ip: NullableString(HOST.instance_ip),
    instance_type: NullableString(HOST.instance_type),
    instance_az: NullableString(HOST.instance_az),
    region: NullableString(HOST.region),
    host_name: NullableString(HOST.host_name),
    ecs_agent_version: NullableString(HOST.ecs_agent_version),
  },
  { additionalProperties: false },
);
export type HostIdentity = Static<typeof HostIdentitySchema>;

/** One container as observed on a host: the task mapping plus what the agent and Docker say. */
export const ContainerObservationSchema = Type.Object(
  {
    container_id: Type.String({ pattern: CONTAINER_ID.source }),
    // dockerNameFits(): any text up to 255 characters, or a name of Docker's shape up to 640.
    docker_name: Type.Union([Type.String({ maxLength: OBS.docker_name_any }), Type.String({ maxLength: OBS.docker_name, pattern: DOCKER_NAME.source }), Type.Null()]),
    container_name: NullableString(OBS.container_name),
    image: NullableString(OBS.image),
    task_arn: Type.Union([Type.String({ pattern: TASK_ARN.source }), Type.Null()]),
    task_family: NullableString(OBS.task_family),
    task_version: NullableString(OBS.task_version),
    ports: Type.Array(PortMappingSchema, { maxItems: OBS.ports }),
    desired_status: NullableString(OBS.status),
    known_status: NullableString(OBS.status),
    restart_count: Type.Integer({ minimum: 0, maximum: INT32_MAX }),
    exit_code: Type.Union([Type.Integer({ minimum: -INT32_MAX - 1, maximum: INT32_MAX }), Type.Null()]),
    started_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    source: Type.Enum(RECORD_SOURCES),
  },
  { additionalProperties: false },
);
export type ContainerObservation = Static<typeof ContainerObservationSchema>;

// --- POST /v2/hosts/<instance_id>/transitions ----------------------------------------------------

export const TransitionSchema = Type.Object(
  {
    /** Per-host, strictly increasing (unique within a batch); gaps are allowed (the outbox may coalesce). */
    seq: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
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
    // Empty: a heartbeat from a daemon that cannot send its snapshot (its ECS agent fails); it
    // refreshes the host's last report and changes nothing else.
    transitions: Type.Array(TransitionSchema, { minItems: 0, maxItems: 5000 }),
  },
  { additionalProperties: false },
);
export type TransitionBatch = Static<typeof TransitionBatchSchema>;

export const TransitionBatchResultSchema = Type.Object({
  /** Transitions that changed stored state or history. */
  applied: Type.Integer(),
  /** Transitions already seen (replays), acknowledged without effect. */
  duplicates: Type.Integer(),
  /**
   * Transitions whose seq the server already holds for this host as a different transition (another
   * container, or other states): acknowledged without effect, and lost. Two daemons report this
   * instance, or this one's state dir was restored from an old copy (docs/operations.md).
   */
  conflicts: Type.Integer(),
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
    seq: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
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
  /** 409 only, and only when true: more containers share the prefix than `candidates` lists (20). */
  more_candidates: Type.Optional(Type.Boolean()),
});
export type ErrorBody = Static<typeof ErrorBodySchema>;
