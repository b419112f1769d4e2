// How every long-running command waits: until SIGTERM, SIGINT or the caller's abort signal (tests),
// whichever comes first. Resolves with which one it was, having removed its listeners.
export type StopReason = 'SIGTERM' | 'SIGINT' | 'abort';

export function untilStopped(signal?: AbortSignal): Promise<StopReason> {
  return new Promise((resolve) => {
    const stop = (reason: StopReason) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      signal?.removeEventListener('abort', onAbort);
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
