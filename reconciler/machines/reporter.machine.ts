// Delivery of outbox batches to the server: idle → sending → (backingOff | rejected) → sending.
//
// The machine owns only the decision of when to send next; the request itself is the invoked
// actor `sendBatch`, provided by reporter.ts (`machine.provide({ actors })`). Its output says how
// many transitions are still queued; its error carries `terminal: true` for a 4xx the server will
// never accept (anything but 408/429). Delays are named so tests replace them:
// - `retryDelay`: exponential backoff with full jitter, capped (see backoffDelay).
// - `rejectedDelay`: the long, fixed wait after a terminal rejection. The batch is kept, never
//   dropped: an operator fixes the token or the server, and delivery resumes by itself.
import { setup, assign, fromPromise } from 'xstate';

export interface ReporterInput {
  backoffBaseMs: number;
  backoffMaxMs: number;
  rejectedBackoffMs: number;
}

export interface ReporterContext extends ReporterInput {
  /** Consecutive failed attempts; 0 after a success. */
  attempt: number;
  lastError: { code: string; message: string } | null;
}

/** What a send reports back: transitions still queued after this request. */
export interface SendOutput {
  remaining: number;
}

export interface SendFailure {
  code: string;
  message: string;
  /** A 4xx other than 408/429: retrying soon will not help. */
  terminal: boolean;
}

export type ReporterEvent =
  /** New outbox entries, or a full snapshot became due. */
  | { type: 'outbox.appended' };

/**
 * Full jitter: a uniformly random delay in [0, min(max, base · 2^(attempt-1))).
 * `random` returns [0, 1) like Math.random.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  return Math.floor(random() * exp);
}

function asFailure(error: unknown): SendFailure {
  const e = error as Partial<SendFailure> & { message?: string };
  return { code: typeof e?.code === 'string' ? e.code : 'ERR_UNKNOWN', message: String(e?.message ?? error), terminal: e?.terminal === true };
}

export const reporterMachine = setup({
  types: {
    context: {} as ReporterContext,
    events: {} as ReporterEvent,
    input: {} as ReporterInput,
  },
  actors: {
    /** Replaced by reporter.ts: sends one batch (or the snapshot when drained and due). */
    sendBatch: fromPromise<SendOutput>(async () => ({ remaining: 0 })),
  },
  actions: {
    resetAttempts: assign({ attempt: 0, lastError: null }),
    recordFailure: assign({
      attempt: ({ context }) => context.attempt + 1,
      lastError: ({ event }) => {
        const f = asFailure((event as { error?: unknown }).error);
        return { code: f.code, message: f.message };
      },
    }),
  },
  guards: {
    moreQueued: ({ event }) => ((event as { output?: SendOutput }).output?.remaining ?? 0) > 0,
    isTerminal: ({ event }) => asFailure((event as { error?: unknown }).error).terminal,
  },
  delays: {
    retryDelay: ({ context }) => backoffDelay(context.attempt, context.backoffBaseMs, context.backoffMaxMs, Math.random),
    rejectedDelay: ({ context }) => context.rejectedBackoffMs,
  },
}).createMachine({
  id: 'reporter',
  initial: 'idle',
  context: ({ input }) => ({ ...input, attempt: 0, lastError: null }),
  states: {
    idle: {
      on: { 'outbox.appended': { target: 'sending' } },
    },
    sending: {
      invoke: {
        id: 'sendBatch',
        src: 'sendBatch',
        onDone: [
          { guard: 'moreQueued', target: 'sending', reenter: true, actions: 'resetAttempts' },
          { target: 'idle', actions: 'resetAttempts' },
        ],
        onError: [
          { guard: 'isTerminal', target: 'rejected', actions: 'recordFailure' },
          { target: 'backingOff', actions: 'recordFailure' },
        ],
      },
    },
    /** Server error, timeout or connection refused: retry after the jittered delay. */
    backingOff: {
      after: { retryDelay: { target: 'sending' } },
    },
    /** A terminal 4xx: the batch stays queued; try again after the long delay. */
    rejected: {
      after: { rejectedDelay: { target: 'sending' } },
    },
  },
});

export type ReporterMachine = typeof reporterMachine;
