// The simulated host's control API, for tests and demos:
//   GET  /state                 → { tasks, faults }
//   POST /faults                  { agent?: AgentFault, imds?: ImdsFault } → { agent, imds }
//   POST /tasks/start             { family?, containers? } → 201 task
//   POST /tasks/:id/stop          (task id or URL-encoded ARN) → 200 task | 404
//   POST /tick                  → one churn step ({"churn":false}: lifecycle only) → { tasks }
// Errors are JSON { error, message } with a 4xx status.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AGENT_FAULTS, type AgentFault } from './agent-api.js';
import { IMDS_FAULTS, type ImdsFault } from './imds-api.js';
import type { SimTask } from './model.js';

export interface Faults {
  agent: AgentFault;
  imds: ImdsFault;
}

export interface ControlApiHost {
  readonly state: SimTask[];
  readonly faults: Faults;
  setFault(faults: Partial<Faults>): Faults;
  startTask(spec?: { family?: string; containers?: number }): SimTask;
  stopTask(idOrArn: string): SimTask;
  tick(options?: { churn?: boolean }): void;
}

/** Thrown by the host for requests the control API answers with a 4xx. */
export class ControlError extends Error {
  readonly name = 'ControlError';
  constructor(
    readonly status: 400 | 404 | 409,
    readonly code: 'bad_request' | 'not_found' | 'conflict',
    message: string,
  ) {
    super(message);
  }
}

const MAX_BODY_BYTES = 64 * 1024;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new ControlError(400, 'bad_request', `body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ControlError(400, 'bad_request', 'body is not JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ControlError(400, 'bad_request', 'body must be a JSON object');
  return body as Record<string, unknown>;
}

/** Validates a POST /faults body. */
export function parseFaults(body: Record<string, unknown>): Partial<Faults> {
  const out: Partial<Faults> = {};
  for (const key of Object.keys(body)) {
    if (key !== 'agent' && key !== 'imds') throw new ControlError(400, 'bad_request', `unknown fault "${key}" (agent, imds)`);
  }
  if (body.agent !== undefined) {
    if (!AGENT_FAULTS.includes(body.agent as AgentFault)) throw new ControlError(400, 'bad_request', `agent: expected one of ${AGENT_FAULTS.join(', ')}`);
    out.agent = body.agent as AgentFault;
  }
  if (body.imds !== undefined) {
    if (!IMDS_FAULTS.includes(body.imds as ImdsFault)) throw new ControlError(400, 'bad_request', `imds: expected one of ${IMDS_FAULTS.join(', ')}`);
    out.imds = body.imds as ImdsFault;
  }
  return out;
}

function parseStartSpec(body: Record<string, unknown>): { family?: string; containers?: number } {
  const { family, containers } = body;
  if (family !== undefined && (typeof family !== 'string' || !/^[A-Za-z0-9_-]{1,255}$/.test(family))) throw new ControlError(400, 'bad_request', 'family: expected 1-255 letters, digits, _ or -');
  if (containers !== undefined && (typeof containers !== 'number' || !Number.isInteger(containers) || containers < 1 || containers > 10)) {
    throw new ControlError(400, 'bad_request', 'containers: expected an integer 1..10');
  }
  return { family: family as string | undefined, containers: containers as number | undefined };
}

export function controlHandler(host: ControlApiHost) {
  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://control').pathname;
    const method = req.method ?? 'GET';
    if (path === '/state' && method === 'GET') return send(res, 200, { tasks: host.state, faults: host.faults });
    if (path === '/faults' && method === 'POST') return send(res, 200, host.setFault(parseFaults(await readJson(req))));
    if (path === '/tasks/start' && method === 'POST') return send(res, 201, host.startTask(parseStartSpec(await readJson(req))));
    if (path === '/tick' && method === 'POST') {
      const body = await readJson(req);
      if (body.churn !== undefined && typeof body.churn !== 'boolean') throw new ControlError(400, 'bad_request', 'churn: expected a boolean');
      host.tick({ churn: body.churn as boolean | undefined });
      return send(res, 200, { tasks: host.state });
    }
    const stop = /^\/tasks\/([^/]+)\/stop$/.exec(path);
    if (stop && method === 'POST') {
      let id: string;
      try {
        id = decodeURIComponent(stop[1]);
      } catch {
        throw new ControlError(400, 'bad_request', 'task id is not valid URL encoding');
      }
      return send(res, 200, host.stopTask(id));
    }
    throw new ControlError(404, 'not_found', `no route ${method} ${path}`);
  }

  return (req: IncomingMessage, res: ServerResponse): void => {
    route(req, res).catch((error: unknown) => {
      if (error instanceof ControlError) return send(res, error.status, { error: error.code, message: error.message });
      send(res, 400, { error: 'bad_request', message: error instanceof Error ? error.message : String(error) });
    });
  };
}
