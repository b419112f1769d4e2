import { describe, it, expect } from 'vitest';
import { initialTransition, transition } from 'xstate';
import { getShortestPaths } from 'xstate/graph';
import { hostMachine, type HostEvent } from './host.machine.js';

const identity = { instance_id: 'i-0123456789abcdef0', instance_ip: '10.0.0.1', instance_type: 't3.micro', instance_az: 'eu-west-1a', region: 'eu-west-1', host_name: 'ip-10-0-0-1' };

function run(events: HostEvent[]) {
  let [snap] = initialTransition(hostMachine);
  for (const e of events) [snap] = transition(hostMachine, snap, e);
  return snap;
}

describe('host machine', () => {
  it('goes starting → identifying → syncing → steady and keeps the identity', () => {
    const snap = run([{ type: 'host.started' }, { type: 'imds.identified', identity }, { type: 'agent.observed' }]);
    expect(snap.value).toBe('steady');
    expect(snap.context.identity).toEqual(identity);
  });

  it('stays identifying while IMDS fails and counts the failures', () => {
    const snap = run([{ type: 'host.started' }, { type: 'imds.failed' }, { type: 'imds.failed' }, { type: 'agent.observed' }]);
    expect(snap.value).toBe('identifying');
    expect(snap.context.consecutive_imds_failures).toBe(2);
  });

  it('degrades when the agent fails and recovers when it answers again', () => {
    const base: HostEvent[] = [{ type: 'host.started' }, { type: 'imds.identified', identity }, { type: 'agent.observed' }];
    const degraded = run([...base, { type: 'agent.failed' }, { type: 'agent.failed' }]);
    expect(degraded.value).toBe('degraded');
    expect(degraded.context.consecutive_agent_failures).toBe(2);
    const recovered = run([...base, { type: 'agent.failed' }, { type: 'agent.observed' }]);
    expect(recovered.value).toBe('steady');
    expect(recovered.context.consecutive_agent_failures).toBe(0);
  });

  it('goes straight from syncing to degraded when the first agent listing fails', () => {
    expect(run([{ type: 'host.started' }, { type: 'imds.identified', identity }, { type: 'agent.failed' }]).value).toBe('degraded');
  });

  it('reaches every state (xstate/graph shortest paths)', () => {
    const events: HostEvent[] = [{ type: 'host.started' }, { type: 'imds.identified', identity }, { type: 'imds.failed' }, { type: 'agent.observed' }, { type: 'agent.failed' }];
    const paths = getShortestPaths(hostMachine, { events, serializeState: (s) => JSON.stringify(s.value) });
    expect(paths.map((p) => p.state.value).sort()).toEqual(['degraded', 'identifying', 'starting', 'steady', 'syncing']);
    const toDegraded = paths.find((p) => p.state.value === 'degraded')!;
    expect(toDegraded.steps.slice(1).map((s) => s.event.type)).toEqual(['host.started', 'imds.identified', 'agent.failed']);
  });
});
