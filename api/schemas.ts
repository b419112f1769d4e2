// Response and legacy-request schemas of the API (the v2 report bodies live in wire/). They mirror
// the record types of storage/store.ts; the serializer drops fields a schema does not name, so a
// field added to a record must be added here too.
import { Type, type TSchema } from 'typebox';
import { ErrorBodySchema, LIFECYCLE_STATES, LifecycleStateSchema, PortMappingSchema, RECORD_SOURCES } from '../wire/index.js';

/** `type: [T, "null"]` rather than anyOf: cheaper to validate and to serialize. */
function Nullable<T extends TSchema>(schema: T) {
  const s = schema as unknown as { type: string };
  return Type.Unsafe<import('typebox').Static<T> | null>({ ...schema, type: [s.type, 'null'] });
}
const NStr = Nullable(Type.String());

/** A string enum as `{type:"string", enum}` (typed as the union of its members). */
export function StringEnum<const T extends readonly string[]>(values: T) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values] });
}

export const ContainerRecordSchema = Type.Object({
  container_id: Type.String(),
  docker_name: NStr,
  container_name: NStr,
  image: NStr,
  task_arn: NStr,
  task_id: NStr,
  task_id_raw: NStr,
  task_family: NStr,
  task_version: NStr,
  cluster: NStr,
  container_instance_arn: NStr,
  instance_id: Type.String(),
  instance_ip: NStr,
  instance_type: NStr,
  instance_az: NStr,
  region: NStr,
  host_name: NStr,
  ports: Type.Array(PortMappingSchema),
  desired_status: NStr,
  known_status: NStr,
  state: LifecycleStateSchema,
  restart_count: Type.Integer(),
  exit_code: Nullable(Type.Integer()),
  started_at: NStr,
  first_seen: Type.String(),
  last_seen: Type.String(),
  stopped_at: NStr,
  gone_at: NStr,
  ecs_agent_version: NStr,
  source: StringEnum(RECORD_SOURCES),
  seq: Type.Integer(),
  legacy_key: NStr,
  /** The original agent's own sample time of its last report map (ISO); null for reconciler reports. */
  sampled_at: NStr,
});

/**
 * The longest id a path parameter takes (a URL-encoded task ARN is the longest real one): the
 * router's maxParamLength, and the limit /v2/lookup names when an id is longer.
 */
export const MAX_PATH_ID_LENGTH = 2048;

export const LinkSchema = Type.Object({ name: Type.String(), url: Type.String() });

export const ContainerViewSchema = Type.Intersect([ContainerRecordSchema, Type.Object({ links: Type.Array(LinkSchema) })]);

export const TransitionRecordSchema = Type.Object({
  container_id: Type.String(),
  from: Nullable(Type.String()),
  to: Nullable(Type.String()),
  at: Type.String(),
  host: Type.String(),
  seq: Nullable(Type.Integer()),
  reason: Type.String(),
});

const stateCounts = Object.fromEntries(LIFECYCLE_STATES.map((s) => [s, Type.Integer()])) as Record<(typeof LIFECYCLE_STATES)[number], ReturnType<typeof Type.Integer>>;

export const HostViewSchema = Type.Object({
  instance_id: Type.String(),
  cluster: NStr,
  container_instance_arn: NStr,
  instance_ip: NStr,
  instance_type: NStr,
  instance_az: NStr,
  region: NStr,
  host_name: NStr,
  ecs_agent_version: NStr,
  first_seen: Type.String(),
  last_report_at: Type.String(),
  last_snapshot_at: NStr,
  last_seq: Type.Integer(),
  reporter: Type.String(),
  seconds_since_report: Type.Number(),
  stale: Type.Boolean(),
  retired: Type.Boolean(),
  containers_by_state: Type.Object(stateCounts),
});

/** The error responses every route may give, by status. */
export function errorResponses<const S extends readonly number[]>(...statuses: S): { [K in S[number]]: typeof ErrorBodySchema } {
  return Object.fromEntries(statuses.map((s) => [s, ErrorBodySchema])) as { [K in S[number]]: typeof ErrorBodySchema };
}

/** A text/plain answer, documented as such in the OpenAPI document. */
export const TextBody = {
  description: 'text/plain',
  content: { 'text/plain': { schema: Type.String() } },
};

/** The original's Flask-style JSON (sorted keys, indent 2), documented as application/json. */
export const LegacyJsonBody = {
  description: 'application/json, laid out as Flask 0.10.1 jsonify did (sorted keys, indent 2)',
  content: { 'application/json': { schema: Type.Unknown() } },
};

// --- the original Python agent's report bodies ------------------------------------------------------

const LegacyString = Nullable(Type.String({ maxLength: 1024 }));
/**
 * Fields the stores index (cluster, task family) are capped as ECS caps them and as the v2 wire
 * schema does: 255 characters. SimpleDB refuses attribute values over 1024 bytes, so a longer
 * legacy value was a 503 on that backend instead of a 400.
 */
const LegacyIndexedString = Nullable(Type.String({ maxLength: 255 }));

/**
 * One entry of the original agent's map. The first agent sent fewer fields (no ports, AZ, cluster
 * or agent version) and may send null where instance metadata failed, so only the fields every
 * version sent are required. Unknown extra fields are accepted and ignored, as the original did.
 */
export const LegacyMapEntrySchema = Type.Object({
  container_id: Type.String({ maxLength: 128 }),
  container_name: Type.Optional(LegacyString),
  container_port: Type.Optional(LegacyString),
  task_id: Type.String({ maxLength: 512 }),
  task_name: Type.Optional(LegacyIndexedString),
  task_version: Type.Optional(LegacyString),
  instance_port: Type.Optional(LegacyString),
  instance_ip: Type.Optional(LegacyString),
  instance_id: LegacyString,
  instance_type: Type.Optional(LegacyString),
  instance_az: Type.Optional(LegacyString),
  desired_status: Type.String({ maxLength: 32 }),
  known_status: Type.String({ maxLength: 32 }),
  host_name: Type.Optional(LegacyString),
  cluster_name: Type.Optional(LegacyIndexedString),
  ecs_agent_version: Type.Optional(LegacyString),
  /** Epoch seconds (Python time.time()). */
  sample_time: Type.Number({ minimum: 0 }),
});
export type LegacyMapEntry = import('typebox').Static<typeof LegacyMapEntrySchema>;

export const LegacyMapSchema = Type.Record(Type.String({ maxLength: 128 }), LegacyMapEntrySchema, { maxProperties: 5000 });

export const LegacyEventSchema = Type.Object({
  /** The map key (sha256 hex) of the container that was added or removed. */
  event_id: Type.String({ minLength: 1, maxLength: 128 }),
  event: Type.Union([Type.Literal('added'), Type.Literal('removed')]),
  /** Epoch seconds. */
  timestamp: Type.Number({ minimum: 0 }),
});
