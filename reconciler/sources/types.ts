// What the reconciler observes, normalised from its three sources. The clients in this folder
// produce these shapes; the loop and the machines consume only these, never raw agent JSON.
import type { PortMapping } from '../../wire/index.js';

/** ECS agent task status: the agent only ever reports these three. */
export type AgentTaskStatus = 'PENDING' | 'RUNNING' | 'STOPPED';

export interface AgentMetadata {
  cluster: string;
  container_instance_arn: string | null;
  version: string | null;
}

export interface AgentContainer {
  docker_id: string;
  docker_name: string;
  /** Container name in the task definition. */
  name: string;
  /**
   * Only newer agents send the fields below; old agents send DockerId, DockerName, Name only.
   * ImageID and CreatedAt are checked but not kept: nothing reads them, and the daemon holds
   * every listed container's fields for as long as it is listed (150 bytes a container).
   */
  image: string | null;
  started_at: string | null;
  ports: PortMapping[];
  restart_count: number | null;
}

export interface AgentTask {
  arn: string;
  task_id: string;
  family: string;
  version: string;
  /** Absent for stopped tasks (normal), hence null. */
  desired_status: AgentTaskStatus | null;
  known_status: AgentTaskStatus;
  containers: AgentContainer[];
}

export interface InstanceIdentity {
  instance_id: string;
  instance_ip: string | null;
  instance_type: string | null;
  instance_az: string | null;
  region: string | null;
  host_name: string | null;
}

/** ECS labels the agent puts on every container it starts. */
export const ECS_LABELS = {
  taskArn: 'com.amazonaws.ecs.task-arn',
  containerName: 'com.amazonaws.ecs.container-name',
  family: 'com.amazonaws.ecs.task-definition-family',
  version: 'com.amazonaws.ecs.task-definition-version',
  cluster: 'com.amazonaws.ecs.cluster',
} as const;

export type DockerContainerState = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface DockerContainer {
  id: string;
  /** Without the leading `/`. */
  name: string;
  image: string;
  state: DockerContainerState;
  /** Its ECS labels (ECS_LABELS) only: the daemon reads no other, and keeps this for the container's life. */
  labels: Record<string, string>;
  /** Exit code when the container has exited and Docker knows it, else null. */
  exit_code: number | null;
}

export interface DockerEvent {
  action: 'start' | 'die' | 'destroy';
  container_id: string;
  /** Unix time in nanoseconds as Docker reports it (timeNano), as a string to avoid precision loss. */
  time_nano: string;
  labels: Record<string, string>;
  /** `die` only: the exit code Docker reports with the event, when it does. */
  exit_code?: number;
}

/** A failed observation: never to be read as "no containers". Callers branch on `code`. */
export class ObservationError extends Error {
  readonly name = 'ObservationError';
  constructor(
    readonly source: 'agent' | 'imds' | 'docker',
    readonly code:
      | 'ERR_UNREACHABLE'
      | 'ERR_TIMEOUT'
      | 'ERR_HTTP_STATUS'
      | 'ERR_ZERO_VALUE'
      | 'ERR_WRONG_PATH'
      | 'ERR_GARBAGE'
      | 'ERR_UNAUTHORIZED',
    message: string,
    options?: { cause?: unknown; status?: number },
  ) {
    super(message, { cause: options?.cause });
    this.status = options?.status;
  }
  readonly status: number | undefined;
}

export interface EcsAgentSource {
  metadata(signal?: AbortSignal): Promise<AgentMetadata>;
  tasks(signal?: AbortSignal): Promise<AgentTask[]>;
}

export interface ImdsSource {
  identity(signal?: AbortSignal): Promise<InstanceIdentity>;
}

export interface DockerSource {
  /** All containers (running and exited) with their labels. */
  listContainers(signal?: AbortSignal): Promise<DockerContainer[]>;
  /**
   * Follows the engine's event stream (container start/die/destroy), reconnecting with capped
   * exponential backoff until `signal` aborts. `onConnected`/`onDisconnected` report link changes.
   */
  watchEvents(handlers: {
    onEvent(event: DockerEvent): void;
    onConnected?(): void;
    onDisconnected?(error: Error): void;
  }, signal: AbortSignal): Promise<void>;
}
