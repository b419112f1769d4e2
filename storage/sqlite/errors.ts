// Which driver failures mean "the store is unavailable" (the API answers 503 and /health fails)
// rather than a bug: I/O, a full or read-only disk, locks that outlast busy_timeout, a closed handle.
import { StoreUnavailableError } from '../store.js';

const UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|CORRUPT|NOTADB|PROTOCOL|NOMEM|PERM|AUTH)/;

export function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && UNAVAILABLE.test(code)) return true;
  // better-sqlite3 throws a TypeError once the connection is closed.
  return err instanceof TypeError && /database connection is not open/.test(err.message);
}

/** Wraps unavailability in StoreUnavailableError; anything else is returned unchanged. */
export function toStoreError(err: unknown, operation: string): unknown {
  if (err instanceof StoreUnavailableError || !isUnavailable(err)) return err;
  return new StoreUnavailableError(`sqlite store: ${operation} failed: ${(err as Error).message}`, { cause: err });
}
