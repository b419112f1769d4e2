// The host's link to its sources: who am I (IMDS), is the ECS agent answering?
//
// Pure: the loop sends the outcome of each observation and reads the state. `degraded` means the
// agent did not answer on the last pass; the loop then maps new containers from their Docker
// labels and marks nothing gone. Context counts consecutive agent failures for logs and health.
import { setup, assign } from 'xstate';
import type { InstanceIdentity } from '../sources/types.js';

export type HostEvent =
  | { type: 'host.started' }
  | { type: 'imds.identified'; identity: InstanceIdentity }
  | { type: 'imds.failed' }
  | { type: 'agent.observed' }
  | { type: 'agent.failed' };

export interface HostContext {
  identity: InstanceIdentity | null;
  consecutive_agent_failures: number;
  consecutive_imds_failures: number;
}

export const hostMachine = setup({
  types: {
    context: {} as HostContext,
    events: {} as HostEvent,
  },
  actions: {
    recordIdentity: assign({
      identity: ({ event, context }) => (event.type === 'imds.identified' ? event.identity : context.identity),
      consecutive_imds_failures: 0,
    }),
    countImdsFailure: assign({ consecutive_imds_failures: ({ context }) => context.consecutive_imds_failures + 1 }),
    countAgentFailure: assign({ consecutive_agent_failures: ({ context }) => context.consecutive_agent_failures + 1 }),
    resetAgentFailures: assign({ consecutive_agent_failures: 0 }),
  },
}).createMachine({
  id: 'host',
  initial: 'starting',
  context: { identity: null, consecutive_agent_failures: 0, consecutive_imds_failures: 0 },
  states: {
    starting: {
      on: { 'host.started': { target: 'identifying' } },
    },
    /** Waiting for IMDS: without an instance id nothing can be reported (observing goes on). */
    identifying: {
      on: {
        'imds.identified': { target: 'syncing', actions: 'recordIdentity' },
        'imds.failed': { actions: 'countImdsFailure' },
      },
    },
    /** Identified; the first agent listing has not been applied yet. */
    syncing: {
      on: {
        'agent.observed': { target: 'steady', actions: 'resetAgentFailures' },
        'agent.failed': { target: 'degraded', actions: 'countAgentFailure' },
      },
    },
    steady: {
      on: {
        'agent.observed': { actions: 'resetAgentFailures' },
        'agent.failed': { target: 'degraded', actions: 'countAgentFailure' },
      },
    },
    /** The agent failed on the last pass: labels only, nothing marked gone from the agent's view. */
    degraded: {
      on: {
        'agent.observed': { target: 'steady', actions: 'resetAgentFailures' },
        'agent.failed': { actions: 'countAgentFailure' },
      },
    },
  },
});

export type HostMachine = typeof hostMachine;
