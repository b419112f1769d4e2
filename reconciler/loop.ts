// The reconcile loop: observe the whole host, drive one container machine per container, append
// what changed to the durable outbox.
//
// Why level-triggered (controller-runtime style): whatever woke the loop — the resync timer or a
// Docker event — a pass reads the complete current state from the ECS agent (and Docker) and
// converges every machine towards it. Events carry no meaning of their own; they only shorten the
// wait for the next pass (debounced). A missed, duplicated or reordered event therefore leaves
// the map late, never wrong, and polling alone converges.
//
// Safety rules a pass keeps:
// - A failed observation is never "no containers": `container.vanished` is sent only for
//   containers absent from a SUCCESSFUL listing (the agent's, or Docker's when the agent is down).
// - When the agent fails and Docker answers, containers new to Docker are mapped from their ECS
//   labels (source "labels"); known ones follow Docker's state. When both answer, labels are
//   cross-checked against the agent and disagreements counted.
// - Machine state advances only after its transitions are fsync'd to the outbox. When the append
//   fails (disk full), the pass's changes are discarded and the next pass recomputes them.
// - Machines for gone containers are dropped once `gone` is in the outbox: memory follows the
//   number of live containers, not the host's history.
//
// Container machines are pure snapshots advanced with xstate's `transition()`; a container whose
// observed inputs did not change is not sent an event at all, which keeps a 250-container pass
// allocation-light (the agent's JSON parsing dominates).
import { transition, initialTransition, type SnapshotFrom } from 'xstate';
import { CONTAINER_ID, TASK_ARN, LIFECYCLE_STATES, type LifecycleState, type RecordSource } from '../wire/ids.js';
import { fitToWire } from './fit-to-wire.js';
import type { ContainerObservation, HostIdentity, SnapshotContainer, Transition } from '../wire/index.js';
import { containerMachine, type ContainerEvent, type EmittedTransition } from './machines/container.machine.js';
import { hostMachine, type HostEvent } from './machines/host.machine.js';
import {
  ECS_LABELS, ObservationError,
  type AgentContainer, type AgentMetadata, type AgentTask, type AgentTaskStatus, type DockerContainer, type DockerContainerState,
  type DockerSource, type EcsAgentSource, type ImdsSource, type InstanceIdentity,
} from './sources/types.js';
import { OutboxWriteError, type Outbox, type PendingTransition } from './outbox.js';
import { transitionFromLabel, type PassResultKind, type ReconcilerMetrics } from './metrics.js';
import type { ReporterLogger } from './reporter.js';
import { RecurringCondition, type ConditionHeld } from './recurring-condition.js';
import { monotonicMs } from './clock.js';

type ContainerSnapshot = SnapshotFrom<typeof containerMachine>;
type HostSnapshot = SnapshotFrom<typeof hostMachine>;

export interface LoopOptions {
  agent: EcsAgentSource;
  imds: ImdsSource;
  /** Undefined when Docker is disabled (`--docker-socket none`). */
  docker?: DockerSource;
  outbox: Outbox;
  logger: ReporterLogger;
  metrics?: ReconcilerMetrics;
  resyncIntervalMs: number;
  eventDebounceMs: number;
  requestTimeoutMs: number;
  /** Called after every pass (main wires the reporter's notify here). */
  onPass?: (result: PassResult) => void;
  /** Wall-clock time for the transitions' `at`. Default Date.now. */
  now?: () => number;
  /**
   * Monotonic time for the metrics' last observation and how long problems last (reconciler/clock.ts).
   * Default: `now` when given (a test's one fake clock), else monotonicMs.
   */
  clock?: () => number;
}

export interface PassResult {
  result: PassResultKind;
  agentOk: boolean;
  /** null when Docker is disabled. */
  dockerOk: boolean | null;
  imdsOk: boolean;
  /** Containers tracked after the pass (gone ones already dropped). */
  containers: number;
  /** Transitions appended to the outbox by this pass, with their seqs. */
  transitions: Transition[];
  labelDisagreements: number;
  /** Set when the outbox append failed; the pass's changes were discarded. */
  outboxError: OutboxWriteError | null;
  durationMs: number;
  /** CPU time (user + system) of the synchronous reconcile step, microseconds. */
  reconcileCpuMicros: number;
}

export interface ReconcileLoop {
  /** Runs one pass now (or waits for the running one and then runs another). */
  runPass(): Promise<PassResult>;
  /** Passes every resyncIntervalMs, earlier on Docker events. */
  start(): void;
  /** Stops scheduling and waits for a running pass to finish. */
  stop(): Promise<void>;
  /** Asks for an earlier pass (debounced by eventDebounceMs). */
  trigger(): void;
  identity(): HostIdentity | null;
  /** The live containers for a full snapshot, or null when the last agent listing failed. */
  snapshot(): SnapshotContainer[] | null;
  hostState(): string;
  containersByState(): Record<LifecycleState, number>;
}

/**
 * Docker's view of a tracked container as the loop keeps it: a listing entry for a container
 * known from its labels, but only what the observation reads (rawObservationOf) for one the agent
 * lists (agentsDockerView).
 */
type DockerView = Pick<DockerContainer, 'image' | 'exit_code'> & Partial<Pick<DockerContainer, 'name' | 'labels'>>;

/**
 * What the loop keeps of Docker's view of a container the agent lists: the image (when the agent
 * has none) and the exit code, not the listing entry with its id, name and labels, about 0.9 KiB a
 * container on a host that lists thousands. An unchanged one is kept rather than made anew.
 */
function agentsDockerView(d: DockerContainer, previous: DockerView | null): DockerView {
  // A previous view with a name is a whole listing entry (the container was known from its labels): replaced.
  if (previous && previous.name === undefined && previous.image === d.image && previous.exit_code === d.exit_code) return previous;
  return { image: d.image, exit_code: d.exit_code };
}

/** What the loop remembers per container: its machine and the inputs last applied to it. */
interface Tracked {
  id: string;
  snap: ContainerSnapshot;
  state: LifecycleState | null;
  via: RecordSource | null;
  known: AgentTaskStatus | null;
  desired: AgentTaskStatus | null;
  restart: number;
  dockerState: DockerContainerState | null;
  task: AgentTask | null;
  container: AgentContainer | null;
  docker: DockerView | null;
  /** The last emitted observation, restored from the outbox after a restart, until the agent lists the container again. */
  restored: ContainerObservation | null;
  seenPass: number;
}

interface Staged {
  tr: Tracked;
  isNew: boolean;
  next: ContainerSnapshot;
  via: RecordSource | null;
  known: AgentTaskStatus | null;
  desired: AgentTaskStatus | null;
  restart: number;
  dockerState: DockerContainerState | null;
  /** The observation this step saw, the tracked container's once committed (a failed append leaves the old one). */
  seen: Pick<Tracked, 'task' | 'container' | 'docker'>;
  emits: EmittedTransition[];
}

/**
 * How the names of the labelled containers the agent never lists begin (Container.IsInternal): the
 * awsvpc task's pause container `~internal~ecs~pause`, the pid/ipc namespace one
 * `~internal~ecs~pause~namespace`, Service Connect's `~internal~ecs~pause-<name>`, and
 * `~internal~ecs-emptyvolume-source` (agent/api/task/task.go).
 */
const ECS_INTERNAL_CONTAINER_PREFIX = '~internal~';

const DOCKER_DOWN: ReadonlySet<DockerContainerState> = new Set(['exited', 'dead', 'removing']);
/** Docker's state for a container the agent lists and a successful Docker listing lacks (removed). */
const REMOVED: DockerContainerState = 'removing';
/** How often the agent's metadata is read again without a reason (doPass): 30 passes, 5 minutes at the default resync. */
const META_REFRESH_PASSES = 30;
/** Sequential IMDS round-trips one identity() may need (see observeIdentity). */
const IDENTITY_ROUND_TRIPS = 4;

function orNull(s: string | null | undefined): string | null {
  return s === undefined || s === null || s === '' ? null : s;
}

/** The wire observation of a tracked container, from the agent's view when it has one. */
export function observationOf(tr: Pick<Tracked, 'id' | 'task' | 'container' | 'docker' | 'via' | 'restored'>): ContainerObservation {
  return fitToWire(rawObservationOf(tr));
}

function rawObservationOf(tr: Pick<Tracked, 'id' | 'task' | 'container' | 'docker' | 'via' | 'restored'>): ContainerObservation {
  const { task, container: c, docker: d } = tr;
  if (!task && tr.restored && (tr.restored.source === 'agent' || !d)) {
    // Restored after a restart and not listed by the agent since: keep its mapping.
    return d ? { ...tr.restored, exit_code: d.exit_code ?? tr.restored.exit_code } : tr.restored;
  }
  if (tr.via === 'agent' && task && c) {
    return {
      container_id: tr.id,
      docker_name: orNull(c.docker_name),
      container_name: orNull(c.name),
      image: orNull(c.image) ?? orNull(d?.image),
      task_arn: TASK_ARN.test(task.arn) ? task.arn : null,
      task_family: orNull(task.family),
      task_version: orNull(task.version),
      ports: c.ports,
      desired_status: task.desired_status,
      known_status: task.known_status,
      restart_count: c.restart_count ?? 0,
      exit_code: d?.exit_code ?? null,
      started_at: orNull(c.started_at),
      source: 'agent',
    };
  }
  const labels = d?.labels ?? {};
  const arn = labels[ECS_LABELS.taskArn];
  return {
    container_id: tr.id,
    docker_name: orNull(d?.name),
    container_name: orNull(labels[ECS_LABELS.containerName]),
    image: orNull(d?.image),
    task_arn: arn && TASK_ARN.test(arn) ? arn : null,
    task_family: orNull(labels[ECS_LABELS.family]),
    task_version: orNull(labels[ECS_LABELS.version]),
    ports: [],
    desired_status: null,
    known_status: null,
    restart_count: 0,
    exit_code: d?.exit_code ?? null,
    started_at: null,
    source: 'labels',
  };
}

export function createReconcileLoop(options: LoopOptions): ReconcileLoop {
  const now = options.now ?? Date.now;
  const clock = options.clock ?? options.now ?? monotonicMs;
  const log = options.logger;
  const metrics = options.metrics;
  const tracked = new Map<string, Tracked>();
  const [initialContainer] = initialTransition(containerMachine);
  let [host] = initialTransition(hostMachine) as [HostSnapshot, unknown];
  let agentMeta: AgentMetadata | null = null;
  /** The last pass could not list the agent's tasks: an agent restart (an upgrade) looks like this. */
  let agentFailedLastPass = false;
  let passNo = 0;

  let running: Promise<PassResult> | null = null;
  let again = false;
  let started = false;
  let resyncTimer: NodeJS.Timeout | undefined;
  let debounceTimer: NodeJS.Timeout | undefined;
  let eventsAbort: AbortController | undefined;

  /**
   * Snapshots are immutable values and almost every container's is one of a few (its state, no
   * restart): one shared object per state saves about 460 bytes a container, a fifth of what the
   * loop holds for each on a host that lists thousands.
   */
  const sharedSnapshots = new Map<string, ContainerSnapshot>();
  const shared = (snap: ContainerSnapshot): ContainerSnapshot => {
    if (snap.context.restart_count !== 0) return snap;
    const key = `${snap.status}:${snap.value as string}`;
    const known = sharedSnapshots.get(key);
    if (known) return known;
    sharedSnapshots.set(key, snap);
    return snap;
  };

  const sendHost = (event: HostEvent) => {
    [host] = transition(hostMachine, host, event);
  };

  function newTracked(id: string): Tracked {
    return { id, snap: initialContainer, state: null, via: null, known: null, desired: null, restart: 0, dockerState: null, task: null, container: null, docker: null, restored: null, seenPass: 0 };
  }

  // After a restart, continue from the states last emitted instead of reporting every container anew.
  for (const r of options.outbox.takeRestored()) {
    const tr = newTracked(r.container.container_id);
    tr.snap = shared(containerMachine.resolveState({ value: r.state, context: { restart_count: r.container.restart_count } }));
    tr.state = r.state;
    tr.via = r.container.source;
    tr.restart = r.container.restart_count;
    // The inputs that produced this state, so an unchanged container costs nothing on the first pass.
    const status = (v: string | null): AgentTaskStatus | null => (v === 'PENDING' || v === 'RUNNING' || v === 'STOPPED' ? v : null);
    tr.known = status(r.container.known_status);
    tr.desired = status(r.container.desired_status);
    tr.restored = r.container;
    tracked.set(tr.id, tr);
  }

  function timeoutSignal(): AbortSignal {
    return AbortSignal.timeout(options.requestTimeoutMs);
  }

  /** The synchronous heart of a pass: observations in, staged machine steps out. */
  function reconcile(tasks: AgentTask[] | null, docker: DockerContainer[] | null, staged: Staged[]): number {
    const pass = passNo;
    let disagreements = 0;
    const dockerById = docker ? new Map<string, DockerContainer>() : null;
    if (docker && dockerById) for (let i = 0; i < docker.length; i++) dockerById.set(docker[i].id, docker[i]);

    const step = (
      tr: Tracked,
      isNew: boolean,
      event: ContainerEvent,
      via: RecordSource | null,
      known: AgentTaskStatus | null,
      desired: AgentTaskStatus | null,
      restart: number,
      dockerState: DockerContainerState | null,
      seen: Staged['seen'] = { task: tr.task, container: tr.container, docker: tr.docker },
    ) => {
      const [next, actions] = transition(containerMachine, tr.snap, event);
      let emits: EmittedTransition[] | null = null;
      for (let i = 0; i < actions.length; i++) {
        const a = actions[i];
        if (a.type === 'emitTransition') (emits ??= []).push(a.params as EmittedTransition);
      }
      // Known from its labels until now, the agent's mapping (ports, statuses, start time) is news
      // to the server even when the lifecycle stays: sent as a same-state transition, as a restart is.
      if (!emits && via === 'agent' && tr.via === 'labels' && tr.state !== null && next.value === tr.state) {
        emits = [{ from: tr.state, to: tr.state, reason: 'agent.observed' }];
      }
      staged.push({ tr, isNew, next, via, known, desired, restart, dockerState, seen, emits: emits ?? [] });
    };

    if (tasks) {
      for (let ti = 0; ti < tasks.length; ti++) {
        const task = tasks[ti];
        const cs = task.containers;
        for (let ci = 0; ci < cs.length; ci++) {
          const c = cs[ci];
          const id = c.docker_id;
          // A PENDING task's containers have no Docker id until Docker creates them.
          if (!CONTAINER_ID.test(id)) continue;
          const existing = tracked.get(id);
          const tr = existing ?? newTracked(id);
          tr.seenPass = pass;
          const d = dockerById ? dockerById.get(id) ?? null : null;
          const restart = c.restart_count ?? 0;
          // Docker enabled but not answering this pass: keep its last word rather than forget it.
          // Absent from a listing that answered (read after the agent's, so not yet created is
          // impossible), the container was removed (docker rm -f): its process runs no more, whatever
          // the agent still says. Taken as null, it stayed running for as long as the agent listed it so.
          const dockerState = d ? d.state : docker ? REMOVED : tr.dockerState;
          const dockerSeen = d ? agentsDockerView(d, tr.docker) : tr.docker;
          if (
            existing &&
            tr.via === 'agent' &&
            tr.known === task.known_status &&
            tr.desired === task.desired_status &&
            tr.restart === restart &&
            tr.dockerState === dockerState
          ) {
            // Nothing the lifecycle follows changed: the fresh details are kept without a transition
            // (assigned, not staged: the pass's hot path, one container after another).
            tr.task = task;
            tr.container = c;
            tr.docker = dockerSeen;
            tr.restored = null; // the agent's view replaces it (rawObservationOf)
            continue;
          }
          if (d) {
            const arn = d.labels[ECS_LABELS.taskArn];
            const name = d.labels[ECS_LABELS.containerName];
            if ((arn !== undefined && arn !== task.arn) || (name !== undefined && name !== c.name)) disagreements++;
          }
          step(tr, !existing, { type: 'agent.observed', known_status: task.known_status, desired_status: task.desired_status, restart_count: restart, docker_state: dockerState }, 'agent', task.known_status, task.desired_status, restart, dockerState, { task, container: c, docker: dockerSeen });
        }
      }
    }

    if (docker) {
      // Containers the agent did not list this pass (or all of them, when the agent failed).
      for (let i = 0; i < docker.length; i++) {
        const d = docker[i];
        let tr = tracked.get(d.id);
        if (tr && tr.seenPass === pass) continue;
        if (!tr) {
          // Only when the agent is down: while it answers, it is the authority on what is ECS's. The
          // agent's internal containers (pause, namespace, empty volume) carry the task's labels
          // but are no containers of it.
          if (tasks || d.labels[ECS_LABELS.taskArn] === undefined || d.labels[ECS_LABELS.containerName]?.startsWith(ECS_INTERNAL_CONTAINER_PREFIX)) continue;
          tr = newTracked(d.id);
          step(tr, true, { type: 'labels.observed', docker_state: d.state }, 'labels', null, null, 0, d.state, { task: null, container: null, docker: d });
          continue;
        }
        tr.seenPass = pass;
        if (tr.dockerState === d.state) {
          tr.docker = d;
          continue;
        }
        let event: ContainerEvent;
        if (tr.state === null) event = { type: 'labels.observed', docker_state: d.state };
        else if (DOCKER_DOWN.has(d.state)) event = { type: 'docker.died' };
        else if (d.state === 'running') event = { type: 'docker.started' };
        else continue; // created, paused, restarting: nothing the lifecycle follows
        step(tr, false, event, tr.via ?? 'labels', tr.known, tr.desired, tr.restart, d.state, { task: tr.task, container: tr.container, docker: d });
      }
    }

    // Absent from a successful listing → vanished. With the agent down, Docker's listing decides.
    if (tasks || docker) {
      for (const tr of tracked.values()) {
        if (tr.seenPass === pass || tr.state === null) continue;
        // Restored from the state dir and not seen since: until IMDS says which instance this is,
        // it may be another instance's container (observeIdentity), not one that vanished here.
        if (!host.context.identity && tr.restored !== null && tr.seenPass === 0) continue;
        if (!tasks && tr.via === 'agent' && dockerById && dockerById.has(tr.id)) continue;
        // Known from its labels only: Docker's listing is the one that can say it is gone.
        if (tr.via === 'labels' && !docker) continue;
        step(tr, false, { type: 'container.vanished' }, tr.via, tr.known, tr.desired, tr.restart, tr.dockerState);
      }
    }
    return disagreements;
  }

  function commit(staged: Staged[]): void {
    for (let i = 0; i < staged.length; i++) {
      const s = staged[i];
      const tr = s.tr;
      tr.snap = shared(s.next);
      const value = s.next.value as string;
      tr.state = value === 'unobserved' ? null : (value as LifecycleState);
      tr.via = s.via;
      tr.known = s.known;
      tr.desired = s.desired;
      tr.restart = s.restart;
      tr.dockerState = s.dockerState;
      tr.task = s.seen.task;
      tr.container = s.seen.container;
      tr.docker = s.seen.docker;
      if (tr.task) tr.restored = null; // the agent's view replaces it (rawObservationOf)
      if (tr.state === 'gone') tracked.delete(tr.id);
      else if (s.isNew) tracked.set(tr.id, tr);
    }
  }

  // Problems a pass can meet on every pass: logged when they start, every 10 minutes while they
  // last, and when they end (recurring-condition.ts). The metrics count every occurrence.
  const conditions = {
    imds: new RecurringCondition(),
    agent: new RecurringCondition(),
    agentMetadata: new RecurringCondition(),
    taskArns: new RecurringCondition(),
    docker: new RecurringCondition(),
    dockerEvents: new RecurringCondition(),
    outbox: new RecurringCondition(),
  };
  /** Logs this occurrence of `condition` through `line` when a line is due; repeats carry how long it has lasted. */
  function recurring(condition: RecurringCondition, line: (held: Partial<ConditionHeld>) => void, cause?: string): void {
    const held = condition.occurred(clock(), cause);
    if (held) line(held.occurrences > 1 ? held : {});
  }
  /** Logs, at info, that `condition` ended, with how long it lasted; nothing if it was not holding. */
  function ended(condition: RecurringCondition, message: string): void {
    const held = condition.ended(clock());
    if (held) log.info(held, message);
  }

  async function observeIdentity(): Promise<boolean> {
    if (host.value === 'starting') sendHost({ type: 'host.started' });
    if (host.context.identity) return true;
    let identity: InstanceIdentity;
    try {
      // identity() is up to three round-trips in sequence (token PUT, then GETs, IMDSv1 after a
      // PUT that timed out), each bounded by requestTimeoutMs in the client. One requestTimeoutMs
      // for the whole call aborted the call together with a hanging PUT, so the IMDSv1 fallback
      // never happened and the host stayed unidentified.
      identity = await options.imds.identity(AbortSignal.timeout(IDENTITY_ROUND_TRIPS * options.requestTimeoutMs));
    } catch (err) {
      metrics?.observationFailures.inc({ source: 'imds' });
      sendHost({ type: 'imds.failed' });
      recurring(conditions.imds, (held) => log.warn({ code: (err as ObservationError).code, ...held }, `IMDS observation failed: ${(err as Error).message}`), (err as ObservationError).code);
      return false;
    }
    // The state dir may come from another instance (an AMI made from a running host): what it
    // brought is that instance's to report, and not one of its containers is on this host.
    let claim: ReturnType<Outbox['claim']>;
    try {
      claim = options.outbox.claim(identity.instance_id);
    } catch (err) {
      if (!(err instanceof OutboxWriteError)) throw err;
      metrics?.outboxWriteErrors.inc({ code: err.code === 'ERR_OUTBOX_NO_SPACE' ? 'ERR_OUTBOX_NO_SPACE' : 'ERR_OUTBOX_WRITE' });
      recurring(conditions.outbox, (held) => log.error({ code: err.code, syscall_code: err.syscallCode, ...held }, `claiming the state dir for ${identity.instance_id} failed; nothing is reported until it works: ${err.message}`));
      return false;
    }
    if (claim.previous !== null && claim.previous !== identity.instance_id) {
      for (const id of claim.forgotten) {
        const tr = tracked.get(id);
        if (tr && tr.seenPass === 0) tracked.delete(id);
      }
      log.warn(
        { instance_id: identity.instance_id, state_dir_instance_id: claim.previous, forgotten_containers: claim.forgotten.length, dropped_transitions: claim.dropped },
        `the state dir was last used on instance ${claim.previous}: its ${claim.forgotten.length} containers and ${claim.dropped} queued transitions were forgotten (they are that instance's to report)`,
      );
    }
    sendHost({ type: 'imds.identified', identity });
    log.info({ instance_id: identity.instance_id, ...conditions.imds.ended(clock()) }, 'host identified via IMDS');
    return true;
  }

  /**
   * The parser takes a task whose Arn is not an ECS task ARN (its containers are still mapped by
   * family and name), but the wire cannot carry that Arn: its containers go out with task_arn null
   * and cannot be found by task. Said, rather than lost without a word.
   */
  function warnMalformedArns(tasks: AgentTask[]): void {
    let count = 0;
    let example: string | undefined;
    for (let i = 0; i < tasks.length; i++) {
      const t = tasks[i];
      if (t.containers.length > 0 && !TASK_ARN.test(t.arn)) {
        count++;
        example ??= t.arn.slice(0, 200);
      }
    }
    if (example === undefined) return ended(conditions.taskArns, 'the ECS agent lists well-formed task ARNs again');
    recurring(conditions.taskArns, (held) =>
      log.warn({ tasks: count, task_arn: example, ...held }, `the ECS agent lists ${count} task(s) whose Arn is not an ECS task ARN (${JSON.stringify(example)}): their containers are reported without one`),
    );
  }

  async function doPass(): Promise<PassResult> {
    passNo++;
    const passStart = performance.now();
    const imdsOk = await observeIdentity();
    // The cluster, instance ARN and agent version are read again after the agent failed a pass (a
    // restart, as an upgrade does) and every META_REFRESH_PASSES passes, else kept: they rarely change.
    const needMeta = agentMeta === null || agentFailedLastPass || passNo % META_REFRESH_PASSES === 0;
    const [tasksR, metaR] = await Promise.allSettled([
      options.agent.tasks(timeoutSignal()),
      needMeta ? options.agent.metadata(timeoutSignal()) : Promise.resolve(agentMeta),
    ]);
    // Docker is read after the agent, not beside it. The agent learns of a container's exit from
    // Docker, so a Docker listing taken after the agent's is at least as new: a container the agent
    // reports stopped is listed exited, with its exit code. Read in parallel, a container that
    // exited between the two reads went to stopped with no exit code (the agent's newer view beside
    // Docker's older one), and only the next full snapshot filled it in.
    const [dockerR] = await Promise.allSettled([options.docker ? options.docker.listContainers(timeoutSignal()) : Promise.resolve(null)]);
    const tasks = tasksR.status === 'fulfilled' ? tasksR.value : null;
    agentFailedLastPass = tasks === null;
    if (metaR.status === 'fulfilled') agentMeta = metaR.value;
    const docker = dockerR.status === 'fulfilled' ? dockerR.value : null;
    if (tasksR.status === 'rejected') {
      metrics?.observationFailures.inc({ source: 'agent' });
      recurring(conditions.agent, (held) => log.warn({ code: (tasksR.reason as ObservationError).code, ...held }, `ECS agent observation failed: ${(tasksR.reason as Error).message}`), (tasksR.reason as ObservationError).code);
    } else {
      ended(conditions.agent, 'ECS agent observation works again');
      // An agent not registered yet answers zero-valued metadata for a while: normal at start. Any
      // other failure (an error page, a value the server would refuse) leaves the host's cluster,
      // instance ARN and agent version unknown for as long as it lasts: said at warn, as the other sources.
      const metaError = metaR.status === 'rejected' ? (metaR.reason as ObservationError) : null;
      if (metaError?.code === 'ERR_ZERO_VALUE') log.debug({ code: metaError.code }, 'ECS agent metadata not available yet');
      else if (metaError) recurring(conditions.agentMetadata, (held) => log.warn({ code: metaError.code, ...held }, `ECS agent metadata observation failed: ${metaError.message}`), metaError.code);
      else if (needMeta) ended(conditions.agentMetadata, 'ECS agent metadata observation works again');
    }
    if (dockerR.status === 'rejected') {
      metrics?.observationFailures.inc({ source: 'docker' });
      recurring(conditions.docker, (held) => log.warn({ code: (dockerR.reason as ObservationError).code, ...held }, `Docker observation failed: ${(dockerR.reason as Error).message}`), (dockerR.reason as ObservationError).code);
    } else ended(conditions.docker, 'Docker observation works again');
    if (host.context.identity) sendHost({ type: tasks ? 'agent.observed' : 'agent.failed' });
    if (tasks) warnMalformedArns(tasks);

    const cpu0 = process.cpuUsage();
    const staged: Staged[] = [];
    const disagreements = reconcile(tasks, docker, staged);
    let appended: Transition[] = [];
    let outboxError: OutboxWriteError | null = null;
    const pendingOut: PendingTransition[] = [];
    if (staged.length > 0) {
      const at = new Date(now()).toISOString();
      for (let i = 0; i < staged.length; i++) {
        const s = staged[i];
        if (s.emits.length === 0) continue;
        const container = observationOf({ id: s.tr.id, ...s.seen, via: s.via, restored: s.tr.restored });
        for (const e of s.emits) pendingOut.push({ container_id: s.tr.id, from: e.from, to: e.to, at, reason: e.reason, container });
      }
      try {
        appended = options.outbox.append(pendingOut);
        ended(conditions.outbox, 'outbox append works again');
        commit(staged);
        for (const t of appended) metrics?.transitions.inc({ from: transitionFromLabel(t.from), to: t.to });
      } catch (err) {
        if (!(err instanceof OutboxWriteError)) throw err;
        outboxError = err;
        metrics?.outboxWriteErrors.inc({ code: err.code === 'ERR_OUTBOX_NO_SPACE' ? 'ERR_OUTBOX_NO_SPACE' : 'ERR_OUTBOX_WRITE' });
        recurring(conditions.outbox, (held) =>
          log.error({ code: err.code, syscall_code: err.syscallCode, pending: pendingOut.length, ...held }, `outbox append failed; the next pass retries: ${err.message}`),
        );
      }
    }
    const cpu = process.cpuUsage(cpu0);
    if (disagreements > 0) {
      metrics?.labelDisagreements.inc(disagreements);
      log.warn({ count: disagreements }, 'Docker ECS labels disagree with the agent');
    }

    const result: PassResultKind = tasks ? 'ok' : docker ? 'degraded' : 'failed';
    if (result !== 'failed') metrics?.observedAt(clock());
    const durationMs = performance.now() - passStart;
    if (metrics) {
      metrics.passes.inc({ result });
      metrics.passDuration.observe(durationMs / 1000);
      const stats = options.outbox.stats();
      metrics.outboxDepth.set(stats.depth);
      metrics.outboxBytes.set(stats.bytes);
      const coalesced = stats.coalescedTotal - coalescedSeen;
      if (coalesced > 0) metrics.outboxCoalesced.inc(coalesced);
      coalescedSeen = stats.coalescedTotal;
      const byState = containersByState();
      for (const s of LIFECYCLE_STATES) metrics.containers.set({ state: s }, byState[s]);
    }
    return {
      result,
      agentOk: tasks !== null,
      dockerOk: options.docker ? docker !== null : null,
      imdsOk,
      containers: tracked.size,
      transitions: appended,
      labelDisagreements: disagreements,
      outboxError,
      durationMs,
      reconcileCpuMicros: cpu.user + cpu.system,
    };
  }
  let coalescedSeen = options.outbox.stats().coalescedTotal;

  function containersByState(): Record<LifecycleState, number> {
    const out: Record<LifecycleState, number> = { pending: 0, running: 0, stopping: 0, stopped: 0, gone: 0 };
    for (const tr of tracked.values()) if (tr.state) out[tr.state]++;
    return out;
  }

  function runPass(): Promise<PassResult> {
    if (running) {
      // One pass at a time; a request during a pass gets a fresh pass right after it.
      const current = running;
      return current.then(runPass, runPass);
    }
    const p = doPass().finally(() => {
      running = null;
    });
    running = p;
    return p;
  }

  function schedule(delayMs: number): void {
    if (!started) return;
    clearTimeout(resyncTimer);
    resyncTimer = setTimeout(() => void tick(), delayMs);
  }

  async function tick(): Promise<void> {
    if (!started) return;
    clearTimeout(resyncTimer);
    try {
      const result = await runPass();
      options.onPass?.(result);
    } catch (err) {
      // A bug, not an observation failure: log it and keep the daemon alive.
      log.error({ err }, 'reconcile pass failed unexpectedly');
    }
    if (again) {
      again = false;
      schedule(0);
    } else schedule(options.resyncIntervalMs);
  }

  function trigger(): void {
    if (!started || debounceTimer) return;
    debounceTimer = setTimeout(() => {
      debounceTimer = undefined;
      if (running) again = true;
      else void tick();
    }, options.eventDebounceMs);
  }

  return {
    runPass,
    start() {
      if (started) return;
      started = true;
      if (options.docker) {
        eventsAbort = new AbortController();
        options.docker
          .watchEvents(
            {
              onEvent: () => {
                metrics?.dockerEvents.inc();
                trigger();
              },
              onConnected: () => {
                metrics?.dockerEventsConnected.set(1);
                log.info({ ...conditions.dockerEvents.ended(clock()) }, 'following Docker events');
              },
              onDisconnected: (err) => {
                metrics?.dockerEventsConnected.set(0);
                recurring(conditions.dockerEvents, (held) => log.warn({ ...held }, `Docker events disconnected: ${err.message}`));
              },
            },
            eventsAbort.signal,
          )
          .catch((err: unknown) => log.warn(`Docker events stopped: ${(err as Error).message}`));
      }
      schedule(0);
    },
    async stop() {
      started = false;
      clearTimeout(resyncTimer);
      clearTimeout(debounceTimer);
      // Else a start() after this stop() would find it set, and no Docker event would trigger a pass again.
      debounceTimer = undefined;
      eventsAbort?.abort();
      metrics?.dockerEventsConnected.set(0);
      if (running) await running.catch(() => undefined);
    },
    trigger,
    identity() {
      const id = host.context.identity;
      if (!id) return null;
      return {
        instance_id: id.instance_id,
        cluster: agentMeta?.cluster || null,
        container_instance_arn: agentMeta?.container_instance_arn ?? null,
        instance_ip: id.instance_ip,
        instance_type: id.instance_type,
        instance_az: id.instance_az,
        region: id.region,
        host_name: id.host_name,
        ecs_agent_version: agentMeta?.version ?? null,
      };
    },
    snapshot() {
      if (host.value !== 'steady') return null;
      const out: SnapshotContainer[] = [];
      for (const tr of tracked.values()) if (tr.state) out.push({ ...observationOf(tr), state: tr.state });
      return out;
    },
    hostState: () => String(host.value),
    containersByState,
  };
}
