import { describe, it, expect } from 'vitest';
import { initialTransition, transition } from 'xstate';
import { getShortestPaths, getSimplePaths } from 'xstate/graph';
import { containerMachine, observedLifecycle, type ContainerEvent, type EmittedTransition } from './container.machine.js';

type Snap = ReturnType<typeof initialTransition<typeof containerMachine>>[0];

const agent = (known: 'PENDING' | 'RUNNING' | 'STOPPED', desired: 'PENDING' | 'RUNNING' | 'STOPPED' | null = known, restart_count = 0, docker_state: 'running' | 'exited' | 'created' | null = null): ContainerEvent => ({
  type: 'agent.observed',
  known_status: known,
  desired_status: desired,
  restart_count,
  docker_state,
});

/** Applies events purely; returns the final snapshot and every emitted transition in order. */
function run(events: ContainerEvent[]): { snap: Snap; emitted: EmittedTransition[] } {
  let [snap] = initialTransition(containerMachine);
  const emitted: EmittedTransition[] = [];
  for (const event of events) {
    const [next, actions] = transition(containerMachine, snap, event);
    for (const a of actions) if (a.type === 'emitTransition') emitted.push(a.params as EmittedTransition);
    snap = next;
  }
  return { snap, emitted };
}

describe('container machine', () => {
  it('starts unobserved and emits nothing', () => {
    const [snap, actions] = initialTransition(containerMachine);
    expect(snap.value).toBe('unobserved');
    expect(actions.filter((a) => a.type === 'emitTransition')).toEqual([]);
  });

  it('follows pending → running → stopping → stopped → gone, one transition each', () => {
    const { snap, emitted } = run([
      agent('PENDING', 'RUNNING'),
      agent('RUNNING'),
      agent('RUNNING', 'STOPPED'),
      agent('STOPPED', null),
      { type: 'container.vanished' },
    ]);
    expect(snap.value).toBe('gone');
    expect(snap.status).toBe('done');
    expect(emitted).toEqual([
      { from: null, to: 'pending', reason: 'agent.observed' },
      { from: 'pending', to: 'running', reason: 'agent.observed' },
      { from: 'running', to: 'stopping', reason: 'agent.observed' },
      { from: 'stopping', to: 'stopped', reason: 'agent.observed' },
      { from: 'stopped', to: 'gone', reason: 'container.vanished' },
    ]);
  });

  it('emits nothing when the same observation repeats', () => {
    const { emitted } = run([agent('RUNNING'), agent('RUNNING'), agent('RUNNING')]);
    expect(emitted).toHaveLength(1);
  });

  it('records a task that stops before it ever ran as pending → stopped', () => {
    const { snap, emitted } = run([agent('PENDING', 'RUNNING'), agent('STOPPED', null)]);
    expect(snap.value).toBe('stopped');
    expect(emitted[1]).toEqual({ from: 'pending', to: 'stopped', reason: 'agent.observed' });
  });

  it('records a restart as container.restarted and stays running', () => {
    const { snap, emitted } = run([agent('RUNNING', 'RUNNING', 0), agent('RUNNING', 'RUNNING', 1), agent('RUNNING', 'RUNNING', 1), agent('RUNNING', 'RUNNING', 3)]);
    expect(snap.value).toBe('running');
    expect(snap.context.restart_count).toBe(3);
    expect(emitted.slice(1)).toEqual([
      { from: 'running', to: 'running', reason: 'container.restarted' },
      { from: 'running', to: 'running', reason: 'container.restarted' },
    ]);
  });

  it('brings a stopped container back to running only when its restart count grew', () => {
    const stillStopped = run([agent('RUNNING', 'RUNNING', 0), agent('STOPPED', null), agent('RUNNING', 'RUNNING', 0)]);
    expect(stillStopped.snap.value).toBe('stopped');
    const restarted = run([agent('RUNNING', 'RUNNING', 0), agent('STOPPED', null), agent('RUNNING', 'RUNNING', 1)]);
    expect(restarted.snap.value).toBe('running');
    expect(restarted.emitted.at(-1)).toEqual({ from: 'stopped', to: 'running', reason: 'container.restarted' });
  });

  it('takes a restart the agent counted before Docker started the container again as a restart', () => {
    // The agent records the restart, then asks Docker to start it: one pass sees the new count on an exited container.
    const { snap, emitted } = run([agent('RUNNING', 'RUNNING', 0, 'running'), agent('RUNNING', 'RUNNING', 1, 'exited'), agent('RUNNING', 'RUNNING', 1, 'running')]);
    expect(snap.value).toBe('running');
    expect(snap.context.restart_count).toBe(1);
    expect(emitted.slice(1)).toEqual([
      { from: 'running', to: 'stopped', reason: 'agent.observed' },
      { from: 'stopped', to: 'running', reason: 'container.restarted' },
    ]);
  });

  it('brings a stopped container back to running when Docker runs it again and the agent lists it running', () => {
    // docker start / docker restart: Docker's state moves back to running, the agent's RestartCount does not grow.
    const { snap, emitted } = run([agent('RUNNING', 'RUNNING', 0, 'running'), agent('STOPPED', null, 0, 'exited'), agent('RUNNING', 'RUNNING', 0, 'running')]);
    expect(snap.value).toBe('running');
    expect(emitted.slice(1)).toEqual([
      { from: 'running', to: 'stopped', reason: 'agent.observed' },
      { from: 'stopped', to: 'running', reason: 'docker.started' },
    ]);
  });

  it('keeps a stopped container stopped while Docker runs it but the agent lists its task stopped', () => {
    const { snap } = run([agent('RUNNING', 'RUNNING', 0, 'running'), agent('STOPPED', null, 0, 'exited'), agent('STOPPED', null, 0, 'running')]);
    expect(snap.value).toBe('stopped');
  });

  it('moves a running container to stopping when its desired status becomes STOPPED', () => {
    const { snap } = run([agent('RUNNING'), agent('RUNNING', 'STOPPED')]);
    expect(snap.value).toBe('stopping');
  });

  it('trusts Docker that the process exited even while the agent still says RUNNING', () => {
    const { snap, emitted } = run([agent('RUNNING', 'RUNNING', 0, 'running'), agent('RUNNING', 'RUNNING', 0, 'exited')]);
    expect(snap.value).toBe('stopped');
    expect(emitted.at(-1)).toEqual({ from: 'running', to: 'stopped', reason: 'agent.observed' });
  });

  it('maps a container from its labels when the agent is unreachable', () => {
    const { snap, emitted } = run([{ type: 'labels.observed', docker_state: 'running' }, { type: 'docker.died' }]);
    expect(snap.value).toBe('stopped');
    expect(emitted).toEqual([
      { from: null, to: 'running', reason: 'labels.observed' },
      { from: 'running', to: 'stopped', reason: 'docker.died' },
    ]);
  });

  it('ignores a vanish before the first observation (nothing was ever reported)', () => {
    const { snap, emitted } = run([{ type: 'container.vanished' }]);
    expect(snap.value).toBe('unobserved');
    expect(emitted).toEqual([]);
  });

  it('never leaves gone', () => {
    const { snap, emitted } = run([agent('RUNNING'), { type: 'container.vanished' }, agent('RUNNING'), { type: 'docker.started' }]);
    expect(snap.value).toBe('gone');
    expect(emitted).toHaveLength(2);
  });

  it('classifies observations as the agent and Docker describe them', () => {
    expect(observedLifecycle({ type: 'agent.observed', known_status: 'PENDING', desired_status: 'STOPPED', restart_count: 0, docker_state: null })).toBe('pending');
    expect(observedLifecycle({ type: 'agent.observed', known_status: 'RUNNING', desired_status: null, restart_count: 0, docker_state: null })).toBe('running');
    expect(observedLifecycle({ type: 'labels.observed', docker_state: 'created' })).toBe('pending');
    expect(observedLifecycle({ type: 'labels.observed', docker_state: 'dead' })).toBe('stopped');
  });

  describe('path coverage (xstate/graph)', () => {
    const events: ContainerEvent[] = [
      agent('PENDING', 'RUNNING'),
      agent('RUNNING'),
      agent('RUNNING', 'RUNNING', 1),
      agent('RUNNING', 'STOPPED'),
      agent('STOPPED', null),
      agent('RUNNING', 'RUNNING', 0, 'running'),
      { type: 'labels.observed', docker_state: 'running' },
      { type: 'docker.died' },
      { type: 'docker.started' },
      { type: 'container.vanished' },
    ];
    // Serialise by state value only: restart_count would make the graph infinite.
    const serializeState = (s: Snap) => JSON.stringify(s.value);

    it('reaches every lifecycle state by a shortest path', () => {
      const paths = getShortestPaths(containerMachine, { events, serializeState });
      const reached = new Set(paths.map((p) => p.state.value));
      expect([...reached].sort()).toEqual(['gone', 'pending', 'running', 'stopped', 'stopping', 'unobserved']);
    });

    it('emits exactly one transition per state change along every simple path, and every path ends consistent', () => {
      const paths = getSimplePaths(containerMachine, { events, serializeState });
      expect(paths.length).toBeGreaterThan(10);
      for (const path of paths) {
        const { snap, emitted } = run(path.steps.slice(1).map((s) => s.event as ContainerEvent));
        expect(snap.value).toBe(path.state.value);
        const changes = path.steps.slice(1).filter((s, i) => s.state.value !== path.steps[i].state.value).length;
        const selfRestarts = emitted.filter((e) => e.from === e.to).length;
        expect(emitted.length - selfRestarts).toBe(changes);
        // Transitions chain: each from is the previous to.
        emitted.forEach((e, i) => expect(e.from).toBe(i === 0 ? null : emitted[i - 1].to));
      }
    });

    it('has no path out of gone', () => {
      const paths = getSimplePaths(containerMachine, { events, serializeState });
      for (const path of paths) {
        const i = path.steps.findIndex((s) => s.state.value === 'gone');
        if (i >= 0) expect(path.steps.slice(i).every((s) => s.state.value === 'gone')).toBe(true);
      }
    });
  });
});
