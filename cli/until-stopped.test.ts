import { describe, expect, it, vi } from 'vitest';
import { REPEATED_SIGNAL_GRACE_MS, untilStopped } from './until-stopped.js';

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

  it('survives the second Ctrl-C right behind the first (npm run forwards one), not one after the grace period', async () => {
    vi.useFakeTimers();
    try {
      const before = process.listenerCount('SIGINT');
      const waiting = untilStopped();
      process.emit('SIGINT', 'SIGINT');
      await expect(waiting).resolves.toBe('SIGINT');
      // A listener stays, so the repeated signal does not take its default action (exit).
      expect(process.listenerCount('SIGINT')).toBe(before + 1);
      expect(process.listenerCount('SIGTERM')).toBeGreaterThan(0);
      vi.advanceTimersByTime(REPEATED_SIGNAL_GRACE_MS);
      expect(process.listenerCount('SIGINT')).toBe(before);
    } finally {
      vi.useRealTimers();
    }
  });
});
