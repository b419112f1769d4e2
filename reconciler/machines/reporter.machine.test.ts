import { describe, it, expect } from 'vitest';
import { initialTransition, transition, type AnyEventObject } from 'xstate';
import { getShortestPaths } from 'xstate/graph';
import { reporterMachine, backoffDelay } from './reporter.machine.js';

const input = { backoffBaseMs: 100, backoffMaxMs: 1000, rejectedBackoffMs: 60_000 };
type Snap = ReturnType<typeof initialTransition<typeof reporterMachine>>[0];

const done = (remaining: number) => ({ type: 'xstate.done.actor.sendBatch', output: { remaining } }) as AnyEventObject;
const failed = (terminal: boolean) => ({ type: 'xstate.error.actor.sendBatch', error: { code: terminal ? 'ERR_REPORT_REJECTED' : 'ERR_REPORT_STATUS', message: 'x', terminal } }) as AnyEventObject;
const retryAfter = (state: string, delay: string) => ({ type: `xstate.after.${delay}.reporter.${state}` }) as AnyEventObject;

function run(events: AnyEventObject[]) {
  let [snap, actions] = initialTransition(reporterMachine, input);
  const delays: number[] = [];
  for (const e of events) {
    [snap, actions] = transition(reporterMachine, snap, e as never);
    for (const a of actions) if (a.type === 'xstate.raise' && typeof (a.params as { delay?: unknown }).delay === 'number') delays.push((a.params as { delay: number }).delay);
  }
  return { snap, delays };
}

describe('reporter machine', () => {
  it('sends when the outbox gains entries and returns to idle when drained', () => {
    expect(run([{ type: 'outbox.appended' }]).snap.value).toBe('sending');
    expect(run([{ type: 'outbox.appended' }, done(0)]).snap.value).toBe('idle');
  });

  it('keeps sending while transitions remain queued', () => {
    const { snap } = run([{ type: 'outbox.appended' }, done(10)]);
    expect(snap.value).toBe('sending');
  });

  it('backs off on a retryable failure, counting attempts, and sends again after the delay', () => {
    const { snap, delays } = run([{ type: 'outbox.appended' }, failed(false)]);
    expect(snap.value).toBe('backingOff');
    expect(snap.context.attempt).toBe(1);
    expect(snap.context.lastError?.code).toBe('ERR_REPORT_STATUS');
    expect(delays).toHaveLength(1);
    expect(delays[0]).toBeGreaterThanOrEqual(0);
    expect(delays[0]).toBeLessThan(100);
    const after = run([{ type: 'outbox.appended' }, failed(false), retryAfter('backingOff', 'retryDelay')]);
    expect(after.snap.value).toBe('sending');
  });

  it('resets the attempt count after a success', () => {
    const { snap } = run([{ type: 'outbox.appended' }, failed(false), retryAfter('backingOff', 'retryDelay'), done(0)]);
    expect(snap.context.attempt).toBe(0);
    expect(snap.context.lastError).toBeNull();
  });

  it('waits the long rejected delay after a terminal rejection, keeping the batch queued', () => {
    const { snap, delays } = run([{ type: 'outbox.appended' }, failed(true)]);
    expect(snap.value).toBe('rejected');
    expect(delays).toEqual([60_000]);
    expect(run([{ type: 'outbox.appended' }, failed(true), retryAfter('rejected', 'rejectedDelay')]).snap.value).toBe('sending');
  });

  it('lets tests replace the named delays', () => {
    const fixed = reporterMachine.provide({ delays: { retryDelay: 7 } });
    let [snap] = initialTransition(fixed, input);
    [snap] = transition(fixed, snap, { type: 'outbox.appended' });
    const [next, actions] = transition(fixed, snap, failed(false) as never);
    expect(next.value).toBe('backingOff');
    expect(actions.some((a) => a.type === 'xstate.raise' && (a.params as { delay?: number }).delay === 7)).toBe(true);
  });

  it('reaches every state (xstate/graph)', () => {
    const events = [{ type: 'outbox.appended' }, done(0), done(1), failed(false), failed(true), retryAfter('backingOff', 'retryDelay'), retryAfter('rejected', 'rejectedDelay')];
    const paths = getShortestPaths(reporterMachine, { events: events as never, input, serializeState: (s: Snap) => JSON.stringify(s.value) });
    expect(paths.map((p) => p.state.value).sort()).toEqual(['backingOff', 'idle', 'rejected', 'sending']);
  });
});

describe('backoffDelay (full jitter, capped)', () => {
  it('grows exponentially with the attempt and never exceeds the cap', () => {
    const top = () => 0.999999;
    expect(backoffDelay(1, 100, 1000, top)).toBe(99);
    expect(backoffDelay(2, 100, 1000, top)).toBe(199);
    expect(backoffDelay(3, 100, 1000, top)).toBe(399);
    expect(backoffDelay(10, 100, 1000, top)).toBe(999);
    expect(backoffDelay(1000, 100, 1000, top)).toBe(999);
  });

  it('may pick any delay down to zero', () => {
    expect(backoffDelay(5, 100, 1000, () => 0)).toBe(0);
  });
});
