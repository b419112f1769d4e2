// How every long-running command waits: until SIGTERM, SIGINT or the caller's abort signal (tests),
// whichever comes first. Resolves with which one it was, having removed its listeners.
export type StopReason = 'SIGTERM' | 'SIGINT' | 'abort';

/**
 * How long a second SIGINT or SIGTERM right behind the first is ignored. Ctrl-C under `npm run`
 * reaches the process twice at once (from the terminal, and forwarded by npm), and the second one
 * killed the shutdown the first had begun (the demo left its state dir behind). A signal after
 * this still takes its default action: a user insisting on a shutdown that hangs.
 */
export const REPEATED_SIGNAL_GRACE_MS = 1_000;

export function untilStopped(signal?: AbortSignal): Promise<StopReason> {
  return new Promise((resolve) => {
    const stop = (reason: StopReason) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      signal?.removeEventListener('abort', onAbort);
      if (reason !== 'abort') ignoreRepeatedSignals();
      resolve(reason);
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    const onAbort = () => stop('abort');
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onInt);
    if (signal?.aborted) stop('abort');
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function ignoreRepeatedSignals(): void {
  const ignore = () => {};
  process.on('SIGTERM', ignore);
  process.on('SIGINT', ignore);
  setTimeout(() => {
    process.off('SIGTERM', ignore);
    process.off('SIGINT', ignore);
  }, REPEATED_SIGNAL_GRACE_MS).unref();
}
