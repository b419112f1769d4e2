// The plain half of the wire contract: id shapes, lifecycle states and record sources, with no
// TypeBox. The per-host daemon imports this module, not wire/index.ts: TypeBox (370-odd ES
// modules, loaded by wire/index.ts's schemas) cost the daemon ~7 MiB of RSS under its 64 MiB
// limit for schemas it never uses at run time (the server validates reports; the daemon only
// builds them, typed with `import type` from wire/index.ts, which costs nothing at run time).
// Keep this module free of TypeBox; reconciler/undici.test.ts checks the daemon never loads it.
// wire/index.ts re-exports everything here, so the server and tools keep one import.

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
/**
 * A Docker container name as Docker allows it (daemon/names: [a-zA-Z0-9][a-zA-Z0-9_.-]+, without
 * the leading '/' the engine API shows). The v2 lookup finds names of this shape only; on the wire,
 * only names of this shape may pass 255 characters (ASCII: the longest stays within SimpleDB's
 * 1024-byte values).
 */
export const DOCKER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Whether a docker_name is one the wire takes (WIRE_LIMITS.observation: docker_name_any, docker_name). */
export function dockerNameFits(name: string): boolean {
  return name.length <= WIRE_LIMITS.observation.docker_name_any || (name.length <= WIRE_LIMITS.observation.docker_name && DOCKER_NAME.test(name));
}
/**
 * Whether text can travel as UTF-8: no lone UTF-16 surrogate (`"\ud800"` is valid JSON, and
 * JSON.parse gives it). The one test for it: the server refuses a body holding one with a 400
 * (api/json-body.ts), the SimpleDB store knows it cannot hold one, the daemon keeps it off the wire.
 * Code units, not code points (no `u` flag): a high surrogate not followed by a low one, or a low
 * one not preceded by a high one.
 */
export function isWellFormedText(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

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

// --- limits --------------------------------------------------------------------------------------

/**
 * The longest values the server takes in a report (wire/index.ts builds its schemas from these).
 * Here, TypeBox-free, so the daemon can hold what it sends to them: a single value over a limit
 * makes the server refuse the whole batch with a 400, which the reporter keeps and resends.
 */
export const WIRE_LIMITS = {
  int32Max: 2_147_483_647,
  observation: {
    // Any text up to 255 characters (as before: 4-byte characters stay within SimpleDB's 1024-byte
    // attribute values), or a name of Docker's own shape (DOCKER_NAME, ASCII) up to 640: the agent
    // names a container ecs-<family>-<version>-<name>-<20 hex>, about 550 characters with a
    // 255-character family and name (both legal). dockerNameFits() is the rule.
    docker_name: 640,
    docker_name_any: 255,
    container_name: 255,
    image: 1024,
    task_family: 255,
    task_version: 32,
    status: 32,
    ports: 256,
    protocol: 8,
    host_ip: 64,
  },
  host: {
    cluster: 255,
    container_instance_arn: 1024,
    instance_ip: 64,
    instance_type: 64,
    instance_az: 64,
    region: 64,
    host_name: 255,
    ecs_agent_version: 255,
  },
} as const;

// --- lifecycle -----------------------------------------------------------------------------------

export const LIFECYCLE_STATES = ['pending', 'running', 'stopping', 'stopped', 'gone'] as const;
export type LifecycleState = (typeof LIFECYCLE_STATES)[number];

/** Where a container's task mapping came from. */
export const RECORD_SOURCES = ['agent', 'labels', 'legacy'] as const;
export type RecordSource = (typeof RECORD_SOURCES)[number];
