import { describe, expect, it } from 'vitest';
import { untilStopped } from './until-stopped.js';

describe('untilStopped', () => {
  it('resolves on the abort signal and removes its signal listeners', async () => {
    const before = process.listenerCount('SIGTERM');
    const beforeInt = process.listenerCount('SIGINT');
    const controller = new AbortController();
    const waiting = untilStopped(controller.signal);
    expect(process.listenerCount('SIGTERM')).toBe(before + 1);
    controller.abort();
    await expect(waiting).resolves.toBe('abort');
    expect(process.listenerCount('SIGTERM')).toBe(before);
    expect(process.listenerCount('SIGINT')).toBe(beforeInt);
  });

  it('resolves at once when the signal is already aborted', async () => {
    await expect(untilStopped(AbortSignal.abort())).resolves.toBe('abort');
  });

  it('resolves on SIGTERM', async () => {
    const waiting = untilStopped();
    process.emit('SIGTERM', 'SIGTERM');
    await expect(waiting).resolves.toBe('SIGTERM');
  });
});
