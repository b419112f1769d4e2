// Fastify gives every request a child logger bound to its request id. Most requests never log (the
// per-request lines are off, a lookup logs nothing), yet pino builds each child eagerly, serialising
// its bindings to JSON: a visible share of a cached lookup's cost in a CPU profile. This factory
// hands out a stand-in that builds the pino child on the first line written at an enabled level, so
// every line still carries the request id.
import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify';
import type { Bindings, ChildLoggerOptions } from 'pino';

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** What the stand-in needs of its parent: pino's logger has it; Fastify's null logger does not. */
type ParentLogger = FastifyBaseLogger & { isLevelEnabled?(level: string): boolean };

class LazyRequestLogger {
  private built: FastifyBaseLogger | undefined = undefined;

  constructor(
    private readonly parent: ParentLogger,
    private readonly requestBindings: Bindings,
  ) {}

  private logger(): FastifyBaseLogger {
    return (this.built ??= this.parent.child(this.requestBindings));
  }

  private write(level: Level, args: unknown[]): void {
    // A disabled level writes nothing, so it need not build the child.
    if (this.built === undefined && this.parent.isLevelEnabled?.(level) === false) return;
    const logger = this.logger();
    (logger[level] as (...a: unknown[]) => void).apply(logger, args);
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.write('error', args);
  }
  warn(...args: unknown[]): void {
    this.write('warn', args);
  }
  info(...args: unknown[]): void {
    this.write('info', args);
  }
  debug(...args: unknown[]): void {
    this.write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.write('trace', args);
  }
  silent(): void {}

  get level(): string {
    return (this.built ?? this.parent).level;
  }
  set level(level: string) {
    this.logger().level = level;
  }

  isLevelEnabled(level: string): boolean {
    const logger = (this.built ?? this.parent) as ParentLogger;
    return logger.isLevelEnabled?.(level) ?? true;
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.logger().child(bindings, options);
  }

  bindings(): Bindings {
    const logger = this.logger() as FastifyBaseLogger & { bindings?(): Bindings };
    return logger.bindings?.() ?? { ...this.requestBindings };
  }
}

/**
 * Fastify's `childLoggerFactory`: a request logger built on first use. A route with its own log
 * level or serializers gets its pino child at once, as Fastify would build it.
 */
export const lazyRequestLoggerFactory: NonNullable<FastifyServerOptions['childLoggerFactory']> = function (logger, bindings, options) {
  if (options.level !== undefined || options.serializers !== undefined) return logger.child(bindings, options);
  return new LazyRequestLogger(logger, bindings) as unknown as FastifyBaseLogger;
};
