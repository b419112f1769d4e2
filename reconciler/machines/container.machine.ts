// The lifecycle of one container on this host, as the ECS agent and Docker describe it.
//
// Pure: no I/O, no timers. Every lifecycle change runs the named action `emitTransition` with
// `{ from, to, reason }`; the loop reads those actions from `transition()`'s result and turns
// them into outbox entries. The machine never decides that a container is gone on its own: only a
// `container.vanished` event (sent by the loop after a SUCCESSFUL listing lacks the container)
// leads to `gone`, so a failed observation can never remove anything.
import { setup, assign } from 'xstate';
import type { LifecycleState } from '../../wire/index.js';
import type { AgentTaskStatus, DockerContainerState } from '../sources/types.js';

/** The agent listed the container's task. Task-level statuses; Docker's view when Docker answers. */
export interface AgentObservedEvent {
  type: 'agent.observed';
  known_status: AgentTaskStatus;
  desired_status: AgentTaskStatus | null;
  /** RestartCount from newer agents; 0 when the agent does not send it. */
  restart_count: number;
  /** Docker's state of the container, null when Docker is disabled or did not answer. */
  docker_state: DockerContainerState | null;
}

/** The agent did not answer, Docker did: the container is known only from its ECS labels. */
export interface LabelsObservedEvent {
  type: 'labels.observed';
  docker_state: DockerContainerState;
}

export type ContainerEvent =
  | AgentObservedEvent
  | LabelsObservedEvent
  | { type: 'docker.died' }
  | { type: 'docker.started' }
  /** A successful listing no longer contains the container (agent cleanup after ~3 h, docker rm). */
  | { type: 'container.vanished' };

export interface EmittedTransition {
  /** null on the first observation of a container. */
  from: LifecycleState | null;
  to: LifecycleState;
  /** The event that caused it, or `container.restarted`. */
  reason: string;
}

export interface ContainerContext {
  restart_count: number;
}

const DOCKER_DOWN: ReadonlySet<DockerContainerState> = new Set(['exited', 'dead', 'removing']);
const DOCKER_UP: ReadonlySet<DockerContainerState> = new Set(['running', 'restarting', 'paused']);

/** What an observation says the lifecycle state is. Exported for the loop's change detection. */
export function observedLifecycle(event: AgentObservedEvent | LabelsObservedEvent): Exclude<LifecycleState, 'gone'> {
  const docker = event.docker_state;
  // Docker is the fresher source for "the process has exited"; the agent lags by a poll.
  if (docker !== null && DOCKER_DOWN.has(docker)) return 'stopped';
  if (event.type === 'labels.observed') return docker !== null && DOCKER_UP.has(docker) ? 'running' : 'pending';
  if (event.known_status === 'STOPPED') return 'stopped';
  if (event.known_status === 'RUNNING') return event.desired_status === 'STOPPED' ? 'stopping' : 'running';
  return 'pending';
}

type ObservationEvent = AgentObservedEvent | LabelsObservedEvent;
const isObservation = (e: ContainerEvent): e is ObservationEvent => e.type === 'agent.observed' || e.type === 'labels.observed';
const observes = (e: ContainerEvent, state: LifecycleState) => isObservation(e) && observedLifecycle(e) === state;

/** An emitTransition action whose reason is the triggering event's type. */
function emit(from: LifecycleState | null, to: LifecycleState) {
  return { type: 'emitTransition', params: ({ event }: { event: ContainerEvent }) => ({ from, to, reason: event.type }) } as const;
}
const emitRestart = (from: LifecycleState) =>
  ({ type: 'emitTransition', params: { from, to: 'running', reason: 'container.restarted' } }) as const;
/** Docker started the container again without the agent counting a restart (reason as for the `docker.started` event). */
const emitDockerStart = (from: LifecycleState) =>
  ({ type: 'emitTransition', params: { from, to: 'running', reason: 'docker.started' } }) as const;

/**
 * Observation-driven moves shared by both observation events. Order matters: first match wins.
 * The restart count is taken only on a move into running: the agent counts a restart before it asks
 * Docker to start the container again, so a pass in between sees the new count on an exited
 * container, and had stopped taken it, the start that follows would not read as a restart.
 */
function observedMoves(from: LifecycleState | null, targets: Array<Exclude<LifecycleState, 'gone'>>) {
  const guards = { pending: 'observedPending', running: 'observedRunning', stopping: 'observedStopping', stopped: 'observedStopped' } as const;
  return targets.map((to) => ({ guard: guards[to], target: to, actions: to === 'running' ? ([emit(from, to), 'recordRestartCount'] as const) : ([emit(from, to)] as const) }));
}

export const containerMachine = setup({
  types: {
    context: {} as ContainerContext,
    events: {} as ContainerEvent,
  },
  actions: {
    /** Carried out by the loop: append `{from, to, reason}` for this container to the outbox. */
    emitTransition: (_args, _params: EmittedTransition) => {},
    recordRestartCount: assign({
      restart_count: ({ context, event }) =>
        event.type === 'agent.observed' ? Math.max(context.restart_count, event.restart_count) : context.restart_count,
    }),
  },
  guards: {
    observedPending: ({ event }) => observes(event, 'pending'),
    observedRunning: ({ event }) => observes(event, 'running'),
    observedStopping: ({ event }) => observes(event, 'stopping'),
    observedStopped: ({ event }) => observes(event, 'stopped'),
    /** Running again with a higher RestartCount: the agent restarted it in place. */
    restartedWhileRunning: ({ context, event }) =>
      event.type === 'agent.observed' && observedLifecycle(event) === 'running' && event.restart_count > context.restart_count,
    /**
     * Docker runs the container again (`docker start`, `docker restart`) and the agent lists its task
     * running: the RestartCount counts only the agent's own restarts, so it need not have grown.
     */
    dockerRunsAgain: ({ event }) => event.type === 'agent.observed' && event.docker_state === 'running' && observedLifecycle(event) === 'running',
  },
}).createMachine({
  id: 'container',
  initial: 'unobserved',
  context: { restart_count: 0 },
  states: {
    /** Created by the loop, before its first observation is applied. */
    unobserved: {
      on: {
        'agent.observed': observedMoves(null, ['stopped', 'stopping', 'running', 'pending']),
        'labels.observed': observedMoves(null, ['stopped', 'running', 'pending']),
      },
    },
    pending: {
      on: {
        // A task that stops before it ever ran goes straight to stopped.
        'agent.observed': observedMoves('pending', ['stopped', 'stopping', 'running']),
        'labels.observed': observedMoves('pending', ['stopped', 'running']),
        'docker.started': { target: 'running', actions: emit('pending', 'running') },
        'docker.died': { target: 'stopped', actions: emit('pending', 'stopped') },
        'container.vanished': { target: 'gone', actions: emit('pending', 'gone') },
      },
    },
    running: {
      on: {
        'agent.observed': [
          { guard: 'restartedWhileRunning', actions: [emitRestart('running'), 'recordRestartCount'] },
          ...observedMoves('running', ['stopped', 'stopping']),
        ],
        'labels.observed': observedMoves('running', ['stopped']),
        'docker.died': { target: 'stopped', actions: emit('running', 'stopped') },
        'container.vanished': { target: 'gone', actions: emit('running', 'gone') },
      },
    },
    /** Desired STOPPED while known RUNNING: the agent is stopping it. */
    stopping: {
      on: {
        'agent.observed': observedMoves('stopping', ['stopped']),
        'labels.observed': observedMoves('stopping', ['stopped']),
        'docker.died': { target: 'stopped', actions: emit('stopping', 'stopped') },
        'container.vanished': { target: 'gone', actions: emit('stopping', 'gone') },
      },
    },
    stopped: {
      on: {
        // Only a restart brings a stopped container back: the agent's (ECS restart policy, RestartCount
        // grew), or Docker running it again (docker start, docker restart) while the agent lists it
        // running. Without the second, such a container stayed stopped on the server for good.
        'agent.observed': [
          { guard: 'restartedWhileRunning', target: 'running', actions: [emitRestart('stopped'), 'recordRestartCount'] },
          { guard: 'dockerRunsAgain', target: 'running', actions: [emitDockerStart('stopped'), 'recordRestartCount'] },
        ],
        'docker.started': { target: 'running', actions: emit('stopped', 'running') },
        'container.vanished': { target: 'gone', actions: emit('stopped', 'gone') },
      },
    },
    /** Reported once, then the loop drops the machine. */
    gone: { type: 'final' },
  },
});

export type ContainerMachine = typeof containerMachine;
