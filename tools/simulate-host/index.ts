// A simulated ECS container instance on loopback: the ECS agent introspection API (v1), IMDSv2 and
// a control API with fault switches. Tasks come either from a deterministic scripted churn (seeded)
// or, with `dockerSocket`, from a real Docker engine's ECS-labelled containers.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SimulateHostConfig } from '../../config/index.js';
import { createDockerClient, type DockerClient } from '../../reconciler/sources/docker.js';
import { agentHandler } from './agent-api.js';
import { ControlError, controlHandler, type ControlApiHost, type Faults } from './control-api.js';
import { tasksFromContainers } from './docker-tasks.js';
import { imdsHandler } from './imds-api.js';
import { seededRandom, TaskModel, type SimTask } from './model.js';

export type { SimTask, SimContainer, SimTaskStatus, SimCreation } from './model.js';
export type { Faults } from './control-api.js';
export { ControlError } from './control-api.js';

/** The simulate-host command's config (documented in config/), plus injectable clock and randomness. */
export interface SimulatedHostOptions extends Omit<SimulateHostConfig, 'logLevel' | 'pendingForMs'> {
  /**
   * How long a started task's containers do not exist yet (see model.ts). Default 0 here, unlike
   * the command's --pending-for (1s): tests that take container ids from `state` as listed ones opt in.
   */
  pendingForMs?: number;
  /** Clock in ms (Date.now by default): timestamps, cleanup, pendingForMs and IMDS token expiry. */
  now?: () => number;
  /** [0, 1) source; default a PRNG seeded with `seed`. */
  random?: () => number;
}

export interface SimulatedHost {
  agentUrl: string;
  imdsUrl: string;
  controlUrl: string;
  /** Current tasks (a copy). In Docker mode, as of the latest listing (see refresh()). */
  readonly state: SimTask[];
  readonly faults: Faults;
  /** Starts a task (PENDING until the next tick; its containers exist after pendingForMs or at that tick). Docker mode: ControlError 409. */
  startTask(spec?: { family?: string; containers?: number }): SimTask;
  /** Asks a task (id or ARN) to stop. Unknown or stopped: ControlError 404/409. Docker mode: 409. */
  stopTask(idOrArn: string): SimTask;
  setFault(faults: Partial<Faults>): Faults;
  /**
   * One churn step: every task advances one lifecycle step, stopped tasks past cleanupAfterMs are
   * removed, then (unless `churn: false`) one task starts or stops to keep about `tasks` live.
   */
  tick(options?: { churn?: boolean }): void;
  /** Docker mode: re-reads the engine's containers. Scripted mode: no-op. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

const REGION = 'us-east-1';
const ACCOUNT_ID = '012345678910';

function listen(handler: (req: IncomingMessage, res: ServerResponse) => void, host: string, port: number): Promise<Server> {
  const server = createServer(handler);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

function urlOf(server: Server): string {
  const { address, port, family } = server.address() as AddressInfo;
  return family === 'IPv6' ? `http://[${address}]:${port}` : `http://${address}:${port}`;
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections(); // includes requests held open by the timeout faults
    server.close(() => resolve());
  });
}

function hex(random: () => number, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += Math.floor(random() * 16).toString(16);
  return out;
}

export async function startSimulatedHost(options: SimulatedHostOptions): Promise<SimulatedHost> {
  const now = options.now ?? Date.now;
  const random = options.random ?? seededRandom(options.seed);
  const model = new TaskModel({
    cluster: options.cluster,
    region: REGION,
    accountId: ACCOUNT_ID,
    containersPerTask: options.containersPerTask,
    cleanupAfterMs: options.cleanupAfterMs,
    pendingForMs: options.pendingForMs ?? 0,
    now,
    random,
  });
  const docker: DockerClient | undefined = options.dockerSocket ? createDockerClient({ socketPath: options.dockerSocket, timeoutMs: 5000 }) : undefined;
  let dockerTasks: SimTask[] = [];
  if (!docker) for (let i = 0; i < options.tasks; i++) model.startTask({ running: true });

  const faults: Faults = { agent: 'ok', imds: 'ok' };
  // Its own generator, so the instance ARN does not shift the churn sequence.
  const containerInstanceArn = `arn:aws:ecs:${REGION}:${ACCOUNT_ID}:container-instance/${options.cluster}/${hex(seededRandom(options.seed ^ 0x5eed), 32)}`;
  const ip = /^\d+\.\d+\.\d+\.\d+$/.test(options.host) ? options.host : '127.0.0.1';
  const hostname = `ip-${ip.replace(/\./g, '-')}.ec2.internal`;

  async function currentTasks(): Promise<SimTask[]> {
    if (!docker) return model.list();
    dockerTasks = tasksFromContainers(await docker.listContainers());
    return dockerTasks;
  }

  function dockerMode(): never {
    throw new ControlError(409, 'conflict', 'tasks come from the Docker engine here: use docker run / docker stop / docker rm');
  }

  const host: ControlApiHost & Pick<SimulatedHost, 'refresh'> = {
    get state() {
      return structuredClone(docker ? dockerTasks : model.list());
    },
    get faults() {
      return { ...faults };
    },
    setFault(next) {
      Object.assign(faults, next);
      return { ...faults };
    },
    startTask(spec) {
      if (docker) dockerMode();
      return structuredClone(model.startTask(spec));
    },
    stopTask(idOrArn) {
      if (docker) dockerMode();
      const task = model.find(idOrArn);
      if (!task) throw new ControlError(404, 'not_found', `no task ${idOrArn}`);
      if (!model.stopTask(idOrArn)) throw new ControlError(409, 'conflict', `task ${idOrArn} is already STOPPED`);
      return structuredClone(task);
    },
    tick(step) {
      if (!docker) model.tick(step?.churn === false ? undefined : { target: options.tasks });
    },
    async refresh() {
      if (docker) await currentTasks();
    },
  };

  const servers: Server[] = [];
  try {
    // A socket that is not a Docker engine would otherwise start "ready" and answer 500 forever.
    if (docker) {
      await currentTasks().catch((err: unknown) => {
        throw new Error(`--docker-socket ${options.dockerSocket}: cannot list containers (${(err as { code?: string }).code ?? (err as Error).message})`, { cause: err });
      });
    }
    servers.push(await listen(agentHandler({ cluster: options.cluster, containerInstanceArn, fault: () => faults.agent, tasks: currentTasks }), options.host, options.agentPort));
    servers.push(
      await listen(
        imdsHandler({
          fault: () => faults.imds,
          now,
          metadata: {
            'instance-id': options.instanceId,
            'local-ipv4': ip,
            'instance-type': 'm5.large',
            'placement/availability-zone': `${REGION}a`,
            'placement/region': REGION,
            hostname,
            'local-hostname': hostname,
          },
        }),
        options.host,
        options.imdsPort,
      ),
    );
    const control = controlHandler(host);
    servers.push(
      await listen(
        (req, res) => {
          // GET /state in Docker mode shows the engine as it is now.
          if (docker && req.method === 'GET' && req.url === '/state') {
            currentTasks().then(
              () => control(req, res),
              (err: unknown) =>
                res
                  .writeHead(500, { 'content-type': 'application/json' })
                  .end(JSON.stringify({ error: 'docker_unavailable', message: `listing the Docker engine's containers failed: ${(err as Error).message}` })),
            );
          }
          else control(req, res);
        },
        options.host,
        options.controlPort,
      ),
    );
  } catch (error) {
    await Promise.all(servers.map(close));
    await docker?.close();
    throw error;
  }

  const timer = !docker && options.churnIntervalMs > 0 ? setInterval(() => host.tick(), options.churnIntervalMs) : undefined;
  timer?.unref();

  const [agentServer, imdsServer, controlServer] = servers;
  return {
    agentUrl: urlOf(agentServer),
    imdsUrl: urlOf(imdsServer),
    controlUrl: urlOf(controlServer),
    get state() {
      return host.state;
    },
    get faults() {
      return host.faults;
    },
    startTask: (spec) => host.startTask(spec),
    stopTask: (id) => host.stopTask(id),
    setFault: (f) => host.setFault(f),
    tick: (step) => host.tick(step),
    refresh: () => host.refresh(),
    async close() {
      if (timer) clearInterval(timer);
      await Promise.all(servers.map(close));
      await docker?.close();
    },
  };
}
