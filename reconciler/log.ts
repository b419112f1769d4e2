// The daemon's logger: the JSON lines pino writes, from a few lines of code instead of pino.
//
// The server logs through Fastify's pino. In the daemon, pino (with sonic-boom, thread-stream and
// node:worker_threads, which it loads for transports the daemon never uses) was about 1.3 MiB of
// RSS in a process held to 64 MiB (docs/benchmarks.md, reconciler section). The daemon logs a few
// lines an hour, each with a message and a handful of plain fields, so it needs none of pino's
// speed. The lines are pino's, field for field (level number, time in ms, the base bindings, the
// fields, msg; `err` through pino's error serializer's shape), so whatever reads the server's logs
// reads these: reconciler/log.test.ts writes the same calls through pino and compares.
import type { Writable } from 'node:stream';
import type { LogLevel } from '../config/index.js';

/** pino's level numbers. */
const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
type Method = keyof typeof LEVELS;

type LogFn = {
  (msg: string): void;
  (fields: object, msg?: string): void;
};

export type DaemonLogger = Record<Method, LogFn>;

export interface DaemonLoggerOptions {
  level: LogLevel;
  /** Fields on every line, after level and time (pino's `base`). */
  base?: Record<string, unknown>;
  stream: Pick<Writable, 'write'>;
  now?: () => number;
}

/**
 * pino-std-serializers' `errWithCause` (the server's `err` serializer too): type, message and stack,
 * the cause as an error of its own (its code is what tells ENOSPC from EACCES), then the error's
 * own enumerable fields (code, …).
 */
function serializeError(err: Error, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = { type: err.constructor?.name ?? 'Error', message: err.message, stack: err.stack };
  // Depth-bounded: a cause chain that loops back on itself is cut rather than followed forever.
  if (err.cause instanceof Error && depth < 8) out.cause = serializeError(err.cause, depth + 1);
  for (const [key, value] of Object.entries(err)) if (!(key in out)) out[key] = value instanceof Error ? serializeError(value, depth + 1) : value;
  return out;
}

export function createDaemonLogger(options: DaemonLoggerOptions): DaemonLogger {
  const threshold = options.level === 'silent' ? Infinity : LEVELS[options.level];
  const now = options.now ?? Date.now;
  const base = options.base ?? {};
  const make =
    (method: Method): LogFn =>
    (fieldsOrMsg: object | string, msg?: string) => {
      const level = LEVELS[method];
      if (level < threshold) return;
      const fields = typeof fieldsOrMsg === 'string' ? {} : fieldsOrMsg;
      const text = typeof fieldsOrMsg === 'string' ? fieldsOrMsg : msg;
      const record: Record<string, unknown> = { level, time: now(), ...base };
      for (const [key, value] of Object.entries(fields)) record[key] = key === 'err' && value instanceof Error ? serializeError(value) : value;
      if (text !== undefined) record.msg = text;
      let line: string;
      try {
        line = JSON.stringify(record);
      } catch (err) {
        // A field JSON cannot write (a cycle, a BigInt): the line still goes out, without the fields.
        line = JSON.stringify({ level, time: record.time, ...base, msg: text, log_error: `fields not serializable: ${(err as Error).message}` });
      }
      options.stream.write(`${line}\n`);
    };
  return { trace: make('trace'), debug: make('debug'), info: make('info'), warn: make('warn'), error: make('error'), fatal: make('fatal') };
}
