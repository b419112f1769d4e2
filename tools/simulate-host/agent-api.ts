// The simulated ECS agent introspection API (v1), with the agent's real answer shapes: field names
// and order from the agent's response structs, `omitempty` fields left out, zero-valued JSON bodies
// for errors, and 200 + AvailableCommands for any unknown path.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SimTask } from './model.js';

export const AGENT_FAULTS = ['ok', '500', 'timeout', 'garbage', 'zero', 'wrong-path'] as const;
export type AgentFault = (typeof AGENT_FAULTS)[number];

/** The agent's body for `/` and any unknown path (server_test.go). */
export const AVAILABLE_COMMANDS_BODY = '{"AvailableCommands":["/v1/metadata","/v1/tasks","/license"]}';
/** json.Marshal of the zero-valued response structs: the agent's error bodies. */
const ZERO_TASKS = '{"Tasks":null}';
const ZERO_TASK = '{"Arn":"","KnownStatus":"","Family":"","Version":"","Containers":null}';
const ZERO_METADATA = '{"Cluster":"","ContainerInstanceArn":null,"Version":""}';
const AGENT_VERSION = 'Amazon ECS Agent - v1.105.1 (simulated)';

export interface AgentApiState {
  cluster: string;
  containerInstanceArn: string;
  fault: () => AgentFault;
  /** Current tasks; may reject (docker-derived mode when the engine fails) → 500. */
  tasks: () => Promise<SimTask[]>;
}

/**
 * One task as the agent's TaskResponse marshals it (ecs-agent/introspection/v1/response.go):
 * DockerId, DockerName, Name, Image and ImageID are always there, even empty; the rest is omitempty.
 * Before Docker created them (SimCreation), containers are not listed at all, then listed with
 * DockerId "". Until a container started, its ports are the task definition's: a dynamic host port
 * is not bound yet.
 */
export function renderTask(task: SimTask): Record<string, unknown> {
  const out: Record<string, unknown> = { Arn: task.arn };
  if (task.desired_status) out.DesiredStatus = task.desired_status;
  out.KnownStatus = task.known_status;
  out.Family = task.family;
  out.Version = task.version;
  const created = task.creation === 'created';
  out.Containers = (task.creation === 'none' ? [] : task.containers).map((c) => {
    const container: Record<string, unknown> = { DockerId: created ? c.docker_id : '', DockerName: c.docker_name, Name: c.name, Image: c.image, ImageID: c.image_id };
    if (c.created_at) container.CreatedAt = c.created_at;
    if (c.started_at) container.StartedAt = c.started_at;
    // The agent lists the bindings Docker reported once the container started (KnownPortBindings);
    // until then the task definition's mappings, where a dynamic host port is 0 and so left out
    // (agent/handlers/v1 NewPortBindingsResponse).
    if (c.ports.length > 0) container.Ports = c.started_at !== null ? c.ports : c.ports.map(({ HostPort: _bound, ...declared }) => declared);
    if (c.restart_count !== null) container.RestartCount = c.restart_count;
    return container;
  });
  return out;
}

function send(res: ServerResponse, status: number, body: string, contentType = 'application/json'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Request handler for the agent port. */
export function agentHandler(state: AgentApiState) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://agent');
    const fault = state.fault();
    if (fault === 'timeout') return; // never answers; the server closes the socket on shutdown
    if (fault === 'wrong-path') return send(res, 200, AVAILABLE_COMMANDS_BODY);
    if (fault === 'garbage') return send(res, 200, '{"Tasks":[{"Arn":"arn:aws:ecs:', 'application/json');

    if (url.pathname === '/v1/metadata') {
      if (fault === '500') return send(res, 500, ZERO_METADATA);
      if (fault === 'zero') return send(res, 200, ZERO_METADATA);
      return send(res, 200, JSON.stringify({ Cluster: state.cluster, ContainerInstanceArn: state.containerInstanceArn, Version: AGENT_VERSION }));
    }

    if (url.pathname === '/v1/tasks') {
      const dockerId = url.searchParams.get('dockerid');
      const taskArn = url.searchParams.get('taskarn');
      const single = dockerId !== null || taskArn !== null;
      if (fault === '500') return send(res, 500, single ? ZERO_TASK : ZERO_TASKS);
      if (fault === 'zero') return send(res, 200, single ? ZERO_TASK : ZERO_TASKS);
      if (dockerId !== null && taskArn !== null) return send(res, 400, ZERO_TASK);
      state.tasks().then(
        (tasks) => {
          if (dockerId !== null) {
            // As the agent (handlers.go, dockerShortIDLen): up to 12 characters a unique prefix, longer the whole id.
            // Containers not created yet have no id to find them by.
            const matches =
              dockerId === ''
                ? []
                : tasks.filter((t) => t.creation === 'created' && t.containers.some((c) => (dockerId.length <= 12 ? c.docker_id.startsWith(dockerId) : c.docker_id === dockerId)));
            return matches.length === 1 ? send(res, 200, JSON.stringify(renderTask(matches[0]))) : send(res, matches.length > 1 ? 400 : 404, ZERO_TASK);
          }
          if (taskArn !== null) {
            const task = tasks.find((t) => t.arn === taskArn);
            return task ? send(res, 200, JSON.stringify(renderTask(task))) : send(res, 404, ZERO_TASK);
          }
          send(res, 200, JSON.stringify({ Tasks: tasks.map(renderTask) }));
        },
        () => send(res, 500, single ? ZERO_TASK : ZERO_TASKS),
      );
      return;
    }

    if (url.pathname === '/license') return send(res, 200, 'Amazon ECS Agent (simulated by ecs-id-mapper simulate-host)\n', 'text/plain');
    send(res, 200, AVAILABLE_COMMANDS_BODY);
  };
}
