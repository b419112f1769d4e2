// The simulated host's tasks and their scripted churn. Pure and deterministic: the same seed and
// the same sequence of calls give the same tasks, ids and exit codes.
//
// Lifecycle, as the real agent shows it in /v1/tasks:
//   start   → KnownStatus PENDING, DesiredStatus RUNNING. With `pendingForMs`, the containers do
//             not exist yet (see SimCreation): for the first half of it the task lists
//             "Containers": [] (the agent pulls images), for the second half each container under
//             the name it will get with DockerId "" (the agent's task engine pre-adds it before
//             `docker create`). Then, or without `pendingForMs` at once: created, not started.
//   tick    → RUNNING (StartedAt set). A task whose containers do not exist yet gets them on
//             the same tick, so ticks move tasks exactly as without `pendingForMs`.
//   stop    → DesiredStatus STOPPED while KnownStatus stays RUNNING for one tick
//   tick    → STOPPED/STOPPED, containers get exit codes (the agent blanks DesiredStatus only while
//             it lags behind a STOPPED KnownStatus, agent/handlers/v1 NewTaskResponse)
//   cleanup → removed from the listing `cleanupAfterMs` after stopping (the agent's ~3 h)
//   restart → (churn, one tick in ten) a container with a restart policy restarts in place:
//             same DockerId, RestartCount + 1, new StartedAt
// A task stopped while PENDING goes straight to STOPPED: it never ran, and shows that lagging
// shape (KnownStatus STOPPED, DesiredStatus omitted), as the documentation's sample does.

export type SimTaskStatus = 'PENDING' | 'RUNNING' | 'STOPPED';

/**
 * How far the agent has got with a task's containers. `none`: none listed ("Containers": []);
 * `named`: listed under the Docker name they will get, with DockerId "" and no CreatedAt;
 * `created`: Docker created them (ids, CreatedAt). A task stopped before `created` keeps the
 * shape it had, as the agent's state does.
 */
export type SimCreation = 'none' | 'named' | 'created';

export interface SimPort {
  ContainerPort: number;
  Protocol: string;
  HostPort?: number;
}

export interface SimContainer {
  /** The container's id; before its task's `creation` is `created`, the id it will get (v1 shows ""). */
  docker_id: string;
  docker_name: string;
  name: string;
  image: string;
  image_id: string;
  created_at: string | null;
  started_at: string | null;
  ports: SimPort[];
  /** Only containers with a restart policy report RestartCount (agent ≥ 1.75). */
  restart_count: number | null;
  /** Set when the task stopped (the v1 API does not show it; GET /state does). */
  exit_code: number | null;
}

export interface SimTask {
  arn: string;
  task_id: string;
  family: string;
  version: string;
  desired_status: SimTaskStatus | null;
  known_status: SimTaskStatus;
  containers: SimContainer[];
  creation: SimCreation;
  /** Simulated-clock milliseconds when the task was started; null for tasks RUNNING from the start. */
  listed_at: number | null;
  /** Simulated-clock milliseconds when the task reached STOPPED. */
  stopped_at: number | null;
}

export interface ModelOptions {
  cluster: string;
  region: string;
  accountId: string;
  containersPerTask: number;
  cleanupAfterMs: number;
  /** How long a started task's containers do not exist yet (0: created at start). */
  pendingForMs: number;
  now: () => number;
  random: () => number;
}

/** mulberry32: small, fast, good enough for reproducible churn. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FAMILIES = [
  { family: 'web', image: 'nginx:1.27' },
  { family: 'api', image: 'node:20-alpine' },
  { family: 'worker', image: 'python:3.12-slim' },
  { family: 'cron', image: 'busybox:1.36' },
];
const CONTAINER_NAMES = ['app', 'sidecar', 'log-router', 'envoy', 'metrics', 'init', 'cache', 'proxy', 'agent', 'backup'];
/** Exit codes a stopped container shows: clean exit, SIGTERM, SIGKILL, app error. */
const EXIT_CODES = [0, 0, 0, 143, 137, 1];
/** Docker's ephemeral host ports (net.ipv4.ip_local_port_range's default), handed out in turn. */
const FIRST_HOST_PORT = 32768;
const LAST_HOST_PORT = 60999;

export class TaskModel {
  private readonly tasks: SimTask[] = [];
  /** Tasks asked to stop while RUNNING: they show desired STOPPED for one tick first. */
  private readonly stopping = new Set<string>();
  private nextHostPort = FIRST_HOST_PORT;
  private portsWrapped = false;

  constructor(private readonly options: ModelOptions) {}

  /**
   * The next ephemeral port no listed task holds, wrapping at the range's end: counting up forever
   * passed 65535 after enough churn, and the reconciler then refused the whole listing as garbage.
   */
  private allocateHostPort(): number {
    // Until the first wrap every port handed out is new; after it, skip those still listed.
    const held = this.portsWrapped ? new Set(this.tasks.flatMap((t) => t.containers.flatMap((c) => c.ports.map((p) => p.HostPort)))) : undefined;
    for (let tries = 0; tries <= LAST_HOST_PORT - FIRST_HOST_PORT; tries++) {
      const port = this.nextHostPort;
      if (port >= LAST_HOST_PORT) this.portsWrapped = true;
      this.nextHostPort = port >= LAST_HOST_PORT ? FIRST_HOST_PORT : port + 1;
      if (!held?.has(port)) return port;
    }
    throw new Error(`simulated host: all ${LAST_HOST_PORT - FIRST_HOST_PORT + 1} ephemeral host ports are held`);
  }

  list(): SimTask[] {
    this.advanceCreation();
    this.cleanup();
    return this.tasks;
  }

  private hex(length: number): string {
    let out = '';
    for (let i = 0; i < length; i++) out += Math.floor(this.options.random() * 16).toString(16);
    return out;
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.options.random() * items.length)];
  }

  private timestamp(at = this.options.now()): string {
    return new Date(at).toISOString();
  }

  /** Creates a task's containers: from here on they have their ids and CreatedAt. */
  private create(task: SimTask, at: number): void {
    task.creation = 'created';
    for (const c of task.containers) c.created_at = this.timestamp(at);
  }

  /** Moves started tasks through `none` → `named` → `created` as `pendingForMs` passes. */
  private advanceCreation(): void {
    const { pendingForMs } = this.options;
    const now = this.options.now();
    for (const task of this.tasks) {
      // The agent creates nothing for a task it has been told to stop.
      if (task.creation === 'created' || task.known_status !== 'PENDING' || task.desired_status !== 'RUNNING' || task.listed_at === null) continue;
      const elapsed = now - task.listed_at;
      if (elapsed >= pendingForMs) this.create(task, task.listed_at + pendingForMs);
      else if (elapsed >= pendingForMs / 2) task.creation = 'named';
    }
  }

  /** Starts a task in PENDING (or RUNNING when `running`, for the initial population). */
  startTask(spec: { family?: string; containers?: number; running?: boolean } = {}): SimTask {
    const kind = spec.family ? (FAMILIES.find((f) => f.family === spec.family) ?? { family: spec.family, image: 'busybox:1.36' }) : this.pick(FAMILIES);
    const version = String(1 + Math.floor(this.options.random() * 9));
    const taskId = this.hex(32);
    const count = spec.containers ?? this.options.containersPerTask;
    const listedAt = this.options.now();
    const created = this.timestamp(listedAt);
    const creation: SimCreation = spec.running || this.options.pendingForMs === 0 ? 'created' : 'none';
    const containers: SimContainer[] = [];
    for (let i = 0; i < count; i++) {
      const name = CONTAINER_NAMES[i] ?? `c${i}`;
      containers.push({
        docker_id: this.hex(64),
        docker_name: `ecs-${kind.family}-${version}-${name}-${this.hex(20)}`,
        name,
        image: i === 0 ? kind.image : 'busybox:1.36',
        image_id: `sha256:${this.hex(64)}`,
        created_at: creation === 'created' ? created : null,
        started_at: spec.running ? created : null,
        // The first container publishes a port, as a bridge-mode service would.
        ports: i === 0 ? [{ ContainerPort: 80, Protocol: 'tcp', HostPort: this.allocateHostPort() }] : [],
        restart_count: i === 1 ? 0 : null,
        exit_code: null,
      });
    }
    const task: SimTask = {
      arn: `arn:aws:ecs:${this.options.region}:${this.options.accountId}:task/${this.options.cluster}/${taskId}`,
      task_id: taskId,
      family: kind.family,
      version,
      desired_status: 'RUNNING',
      known_status: spec.running ? 'RUNNING' : 'PENDING',
      containers,
      creation,
      listed_at: spec.running ? null : listedAt,
      stopped_at: null,
    };
    this.tasks.push(task);
    return task;
  }

  find(idOrArn: string): SimTask | undefined {
    return this.tasks.find((t) => t.arn === idOrArn || t.task_id === idOrArn);
  }

  /** Asks a task to stop; it reaches STOPPED on a later tick. False when unknown or already stopped. */
  stopTask(idOrArn: string): boolean {
    const task = this.find(idOrArn);
    if (!task || task.known_status === 'STOPPED') return false;
    this.advanceCreation(); // the shape it stops in is the one it has now
    task.desired_status = 'STOPPED';
    if (task.known_status === 'RUNNING') this.stopping.add(task.arn);
    return true;
  }

  /** Restarts one RUNNING container that has a restart policy: RestartCount grows, StartedAt moves. */
  private restartOne(): void {
    const candidates = this.tasks
      .filter((t) => t.known_status === 'RUNNING' && t.desired_status === 'RUNNING')
      .flatMap((t) => t.containers.filter((c) => c.restart_count !== null));
    if (candidates.length === 0) return;
    const container = this.pick(candidates);
    container.restart_count = (container.restart_count ?? 0) + 1;
    container.started_at = this.timestamp();
  }

  private markStopped(task: SimTask): void {
    const ran = task.known_status === 'RUNNING';
    task.known_status = 'STOPPED';
    task.desired_status = ran ? 'STOPPED' : null;
    task.stopped_at = this.options.now();
    // A container never created has no exit code.
    for (const c of task.containers) c.exit_code = ran ? this.pick(EXIT_CODES) : task.creation === 'created' ? 0 : null;
  }

  private cleanup(): void {
    const now = this.options.now();
    for (let i = this.tasks.length - 1; i >= 0; i--) {
      const t = this.tasks[i];
      if (t.stopped_at !== null && now - t.stopped_at >= this.options.cleanupAfterMs) this.tasks.splice(i, 1);
    }
  }

  /** Advances every task one step; then, when `churn`, starts or stops one task to move around `target`. */
  tick(churn: { target: number } | undefined): void {
    this.advanceCreation();
    // One tick in ten, a container with a restart policy restarts in place (same DockerId); only
    // tasks RUNNING before this tick qualify.
    if (churn && this.options.random() < 0.1) this.restartOne();
    for (const task of this.tasks) {
      if (task.desired_status === 'STOPPED' && task.known_status !== 'STOPPED') {
        // First tick after a stop request of a RUNNING task: it still shows RUNNING.
        if (this.stopping.delete(task.arn)) continue;
        this.markStopped(task);
      } else if (task.known_status === 'PENDING') {
        if (task.creation !== 'created') this.create(task, this.options.now());
        task.known_status = 'RUNNING';
        for (const c of task.containers) c.started_at = this.timestamp();
      }
    }
    this.cleanup();
    if (!churn) return;
    const live = this.tasks.filter((t) => t.known_status !== 'STOPPED' && t.desired_status !== 'STOPPED');
    if (live.length < churn.target || live.length === 0) {
      const task = this.startTask();
      // One start in ten fails before its containers ever run.
      if (this.options.random() < 0.1) task.desired_status = 'STOPPED';
    } else {
      const running = live.filter((t) => t.known_status === 'RUNNING');
      if (running.length > 0) this.stopTask(this.pick(running).arn);
    }
  }
}
