// Client for the ECS agent introspection API (GET /v1/metadata, GET /v1/tasks).
//
// Contract: every answer that is not a well-formed listing is a failed observation
// (ObservationError, source 'agent'), never "no containers". The agent answers errors with
// zero-valued JSON and no message (`{"Tasks":null}`), and any unknown path with 200 and
// `{"AvailableCommands":[...]}`; both are recognised here. `{"Tasks":[]}` is a valid, empty listing.
import type { Dispatcher } from '../undici.js';
import { CONTAINER_ID, isWellFormedText, taskIdFromArn, WIRE_LIMITS } from '../../wire/ids.js';
import type { PortMapping } from '../../wire/index.js';
import { exchange, type HttpAnswer } from './http.js';
import { ListingSyntaxError, TaskListingReader } from './task-listing-reader.js';
import {
  ObservationError,
  type AgentContainer,
  type AgentMetadata,
  type AgentTask,
  type AgentTaskStatus,
  type EcsAgentSource,
} from './types.js';

export interface EcsAgentClientOptions {
  /** e.g. http://127.0.0.1:51678 */
  baseUrl: URL;
  timeoutMs: number;
  /** Defaults to undici's global dispatcher. */
  dispatcher?: Dispatcher;
}

const TASK_STATUSES: readonly AgentTaskStatus[] = ['PENDING', 'RUNNING', 'STOPPED'];

class Garbage extends Error {}

function garbage(message: string): never {
  throw new Garbage(message);
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Json, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== 'string') garbage(`${where}.${key}: expected a string, got ${JSON.stringify(v) ?? 'nothing'}`);
  return v;
}

function nonEmpty(o: Json, key: string, where: string): string {
  const v = str(o, key, where);
  if (v === '') garbage(`${where}.${key}: empty`);
  return v;
}

/** Absent, null and "" are all "not known" (the agent omits empty fields). */
function optStr(o: Json, key: string, where: string): string | null {
  const v = o[key];
  if (v === undefined || v === null || v === '') return null;
  if (typeof v !== 'string') garbage(`${where}.${key}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}

function optInt(o: Json, key: string, where: string, min: number, max: number): number | null {
  const v = o[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) garbage(`${where}.${key}: expected an integer ${min}..${max}, got ${JSON.stringify(v)}`);
  return v;
}

/** Go's zero time marks "not set" in agents that do not omit it. */
function optTime(o: Json, key: string, where: string): string | null {
  const v = optStr(o, key, where);
  if (v === null || v.startsWith('0001-01-01')) return null;
  if (Number.isNaN(Date.parse(v))) garbage(`${where}.${key}: not a timestamp: ${JSON.stringify(v)}`);
  return v;
}

function status(v: unknown, where: string): AgentTaskStatus {
  if (typeof v !== 'string' || !TASK_STATUSES.includes(v as AgentTaskStatus)) garbage(`${where}: expected PENDING, RUNNING or STOPPED, got ${JSON.stringify(v)}`);
  return v as AgentTaskStatus;
}

/**
 * The container's port mappings. An entry without a ContainerPort is left out: the agent lists a
 * task definition's port range (ContainerPortRange "8000-8010", ContainerPort omitted) that way
 * until Docker reports its bindings, which then come one port per entry. Reported, it read as
 * container port 0.
 */
function parsePorts(v: unknown, where: string): PortMapping[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) garbage(`${where}: expected an array`);
  const out: PortMapping[] = [];
  v.forEach((p, i) => {
    const at = `${where}[${i}]`;
    if (!isObject(p)) garbage(`${at}: expected an object`);
    const containerPort = optInt(p, 'ContainerPort', at, 0, 65535);
    const mapping: PortMapping = {
      container_port: containerPort ?? 0,
      host_port: optInt(p, 'HostPort', at, 0, 65535),
      protocol: optStr(p, 'Protocol', at) ?? 'tcp',
    };
    const hostIp = optStr(p, 'HostIp', at);
    if (hostIp !== null) mapping.host_ip = hostIp;
    // Checked whole first (a malformed HostPort fails the listing either way), then left out.
    if (mapping.container_port > 0) out.push(mapping);
  });
  return out;
}

function parseContainer(c: unknown, where: string): AgentContainer | undefined {
  if (!isObject(c)) garbage(`${where}: expected an object`);
  const dockerId = str(c, 'DockerId', where);
  // A container the agent has not created yet has no Docker id: nothing to map until it has one.
  if (dockerId === '') return undefined;
  // Any other id must be Docker's full one. The loop tracks containers by it: a short or upper-case
  // one was skipped without a word, and the container it names, absent from a successful listing,
  // was reported gone while the agent still listed it running.
  if (!CONTAINER_ID.test(dockerId)) garbage(`${where}.DockerId: not a full Docker container id (64 lower-case hex): ${JSON.stringify(dockerId.slice(0, 80))}`);
  // Checked like the rest (a listing with a malformed one is garbage), but not kept (types.ts).
  optStr(c, 'ImageID', where);
  optTime(c, 'CreatedAt', where);
  return {
    docker_id: dockerId,
    docker_name: str(c, 'DockerName', where),
    name: nonEmpty(c, 'Name', where),
    image: optStr(c, 'Image', where),
    started_at: optTime(c, 'StartedAt', where),
    ports: parsePorts(c.Ports, `${where}.Ports`),
    restart_count: optInt(c, 'RestartCount', where, 0, Number.MAX_SAFE_INTEGER),
  };
}

function parseTask(t: unknown, where: string): AgentTask {
  if (!isObject(t)) garbage(`${where}: expected an object`);
  const arn = nonEmpty(t, 'Arn', where);
  const containers = t.Containers;
  if (containers !== null && containers !== undefined && !Array.isArray(containers)) garbage(`${where}.Containers: expected an array`);
  return {
    arn,
    // Well-formed ARNs (both formats) give the validated id; anything else its last segment.
    task_id: taskIdFromArn(arn) ?? arn.slice(arn.lastIndexOf('/') + 1),
    family: nonEmpty(t, 'Family', where),
    version: nonEmpty(t, 'Version', where),
    desired_status: t.DesiredStatus === undefined || t.DesiredStatus === null || t.DesiredStatus === '' ? null : status(t.DesiredStatus, `${where}.DesiredStatus`),
    known_status: status(t.KnownStatus, `${where}.KnownStatus`),
    containers: (containers ?? [])
      .map((c, i) => parseContainer(c, `${where}.Containers[${i}]`))
      .filter((c): c is AgentContainer => c !== undefined),
  };
}

function wrongPath(body: unknown): boolean {
  return isObject(body) && 'AvailableCommands' in body;
}

/** Parses one element of /v1/tasks' `Tasks` (already JSON-decoded), named `where` in errors. Throws ObservationError. */
export function parseAgentTask(t: unknown, where: string): AgentTask {
  try {
    return parseTask(t, where);
  } catch (error) {
    if (error instanceof Garbage) throw new ObservationError('agent', 'ERR_GARBAGE', `ECS agent /v1/tasks: ${error.message}`);
    throw error;
  }
}

/**
 * Parses a /v1/tasks body as it arrives (task-listing-reader.ts), one task at a time, without the
 * body or its JSON tree ever being held whole; it answers as JSON.parse followed by these rules
 * would (task-listing-reader.test.ts holds it to that). `write` may throw as soon as the body
 * cannot be JSON; an element that is not a valid task is reported only by `end`, as JSON.parse
 * would have rejected the whole body first.
 */
export class AgentTasksParser {
  private tasks: AgentTask[] = [];
  /** The last `Tasks` key's value (the last duplicate wins, as in JSON.parse). */
  private listing: 'absent' | 'array' | 'null' | 'other' = 'absent';
  private wrongPath = false;
  private invalid: unknown;
  /**
   * The task each Docker id was listed in. One id in two places is a contradiction the loop cannot
   * settle: it applied both in turn, reporting the container's first state twice and flipping its
   * stored task from one to the other at every full sync.
   */
  private taskOf = new Map<string, number>();
  private readonly reader = new TaskListingReader({
    onTasksStart: () => this.restart('array'),
    onElement: (element, index) => {
      if (this.invalid !== undefined) return;
      try {
        const task = parseAgentTask(element, `Tasks[${index}]`);
        for (const c of task.containers) {
          const first = this.taskOf.get(c.docker_id);
          if (first !== undefined) garbage(`Tasks[${index}]: container ${c.docker_id} is listed ${first === index ? 'twice in this task' : `in Tasks[${first}] too`}`);
          this.taskOf.set(c.docker_id, index);
        }
        this.tasks.push(task);
      } catch (error) {
        this.invalid = error instanceof Garbage ? new ObservationError('agent', 'ERR_GARBAGE', `ECS agent /v1/tasks: ${error.message}`) : error;
      }
    },
    onValue: (key, value) => {
      if (key === 'AvailableCommands') this.wrongPath = true;
      else if (key === 'Tasks') this.restart(value === null ? 'null' : 'other');
    },
  });

  private restart(listing: AgentTasksParser['listing']): void {
    this.listing = listing;
    this.tasks = [];
    this.taskOf = new Map();
    this.invalid = undefined;
  }

  write(chunk: Buffer): void {
    this.syntax(() => this.reader.write(chunk));
  }

  /** The body is complete: the tasks, or an ObservationError. */
  end(): AgentTask[] {
    this.syntax(() => this.reader.end());
    try {
      if (this.wrongPath) throw new ObservationError('agent', 'ERR_WRONG_PATH', 'ECS agent /v1/tasks: answered with AvailableCommands (wrong path or not an agent)');
      if (this.listing === 'null') throw new ObservationError('agent', 'ERR_ZERO_VALUE', 'ECS agent /v1/tasks: zero-valued body {"Tasks":null}');
      if (this.listing !== 'array') garbage('Tasks: expected an array');
      if (this.invalid !== undefined) throw this.invalid;
      return this.tasks;
    } catch (error) {
      if (error instanceof Garbage) throw new ObservationError('agent', 'ERR_GARBAGE', `ECS agent /v1/tasks: ${error.message}`);
      throw error;
    }
  }

  private syntax(step: () => void): void {
    try {
      step();
    } catch (error) {
      if (error instanceof ListingSyntaxError) throw new ObservationError('agent', 'ERR_GARBAGE', `ECS agent /v1/tasks: ${error.message}`, { cause: error });
      throw error;
    }
  }
}

/** Parses a whole /v1/tasks body held in memory (tests, benchmarks, fixtures). Throws ObservationError. */
export function parseAgentTasksBody(body: string | Buffer): AgentTask[] {
  const parser = new AgentTasksParser();
  parser.write(typeof body === 'string' ? Buffer.from(body) : body);
  return parser.end();
}

function upTo<T extends string | null>(max: number, value: T, key: string): T {
  if (value !== null && value.length > max) garbage(`metadata.${key}: longer than the ${max} characters the server takes (${value.length})`);
  if (value !== null && !isWellFormedText(value)) garbage(`metadata.${key}: holds a lone UTF-16 surrogate, which the server refuses`);
  return value;
}

/** arn:<partition>:ecs:<region>:<account>:cluster/<name> */
const CLUSTER_ARN = /^arn:[a-z-]+:ecs:[a-z0-9-]*:\d*:cluster\/([^/]+)$/;

/** Parses a /v1/metadata body (already JSON-decoded). Throws ObservationError. */
export function parseAgentMetadata(body: unknown): AgentMetadata {
  try {
    if (wrongPath(body)) throw new ObservationError('agent', 'ERR_WRONG_PATH', 'ECS agent /v1/metadata: answered with AvailableCommands (wrong path or not an agent)');
    if (!isObject(body)) garbage('expected a JSON object');
    const configured = str(body, 'Cluster', 'metadata');
    if (configured === '') throw new ObservationError('agent', 'ERR_ZERO_VALUE', 'ECS agent /v1/metadata: zero-valued body (empty Cluster)');
    // The agent answers ECS_CLUSTER as it was set, and it takes a cluster ARN as well as a name: the
    // name is what task ARNs, the console and `?cluster=` filters use, so an ARN is reduced to it.
    const cluster = CLUSTER_ARN.exec(configured)?.[1] ?? configured;
    // Every report carries these as the host's identity: one over the server's limit or not
    // encodable as UTF-8 made it refuse every transition and snapshot of the host, which then went
    // silent and was retired.
    const limits = WIRE_LIMITS.host;
    return {
      cluster: upTo(limits.cluster, cluster, 'Cluster'),
      container_instance_arn: upTo(limits.container_instance_arn, optStr(body, 'ContainerInstanceArn', 'metadata'), 'ContainerInstanceArn'),
      version: upTo(limits.ecs_agent_version, optStr(body, 'Version', 'metadata'), 'Version'),
    };
  } catch (error) {
    if (error instanceof Garbage) throw new ObservationError('agent', 'ERR_GARBAGE', `ECS agent /v1/metadata: ${error.message}`);
    throw error;
  }
}

export function createEcsAgentClient(options: EcsAgentClientOptions): EcsAgentSource {
  /** One GET; a 2xx body goes to `onBodyChunk` when given (answer.body is then ''). */
  async function get(path: string, signal: AbortSignal | undefined, onBodyChunk?: (chunk: Buffer) => void): Promise<HttpAnswer> {
    const what = `ECS agent ${path}`;
    const answer = await exchange('agent', what, {
      url: new URL(path, options.baseUrl),
      headers: { accept: 'application/json' },
      timeoutMs: options.timeoutMs,
      signal,
      dispatcher: options.dispatcher,
      onBodyChunk,
    });
    if (answer.status < 200 || answer.status > 299) {
      throw new ObservationError('agent', 'ERR_HTTP_STATUS', `${what}: HTTP ${answer.status}`, { status: answer.status });
    }
    return answer;
  }

  return {
    async metadata(signal) {
      const answer = await get('/v1/metadata', signal);
      let json: unknown;
      try {
        json = JSON.parse(answer.body);
      } catch (error) {
        throw new ObservationError('agent', 'ERR_GARBAGE', 'ECS agent /v1/metadata: body is not JSON', { cause: error, status: answer.status });
      }
      return parseAgentMetadata(json);
    },
    async tasks(signal) {
      // The listing can run to megabytes on a batch host: read it task by task as it arrives.
      const parser = new AgentTasksParser();
      await get('/v1/tasks', signal, (chunk) => parser.write(chunk));
      return parser.end();
    },
  };
}
