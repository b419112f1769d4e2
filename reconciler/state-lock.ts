// One daemon per state dir. Two daemons sharing one would hand out the same sequence numbers and
// rewrite each other's outbox files, losing transitions without a trace; it happens when a second
// copy is started by hand, when two ECS services both run the daemon, or when a deployment overlaps.
//
// Why not a PID file: daemons run in containers with their own PID namespaces (both are often PID
// 1), so a PID says nothing to another container, and a daemon killed by the OOM killer leaves its
// file behind. Why not flock(2): Node has no binding for it.
//
// The lock is the file `daemon.lock`, created with O_EXCL. Its holder keeps it open and touches its
// mtime every heartbeat (futimes: no disk block needed, so a full disk does not stop the heartbeat).
// A lock is stale when its file (inode and mtime) has not changed for `staleAfterMs` on the waiter's
// own monotonic clock, from when it first saw it so: no clock is compared between processes, so a
// wall-clock step cannot make a live lock look stale (a lock left by a reboot waits out the limit
// too). A waiter takes a stale lock over by renaming the file aside, and keeps it aside only if it is
// still the file it judged stale (otherwise it puts it back), then creates its own with O_EXCL, so
// two waiters racing for one stale lock cannot both win.
//
// A holder must never write once another daemon may have taken over: `assertHeld()` runs before
// every outbox write (outbox.ts beforeWrite). It refuses when the holder's last confirmed heartbeat
// is older than staleAfterMs - heartbeatMs on its own monotonic clock (a holder resumed from a
// freeze writes nothing until its heartbeat has confirmed the lock again), which is at least one
// heartbeat before a waiter can judge the lock stale; and it reports the lock lost (onLost) when the
// lock path no longer holds its file.
import * as nodeFs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { monotonicMs } from './clock.js';
import { ensureDirectory } from '../cli/ensure-directory.js';

export const LOCK_FILE = 'daemon.lock';

/**
 * ERR_STATE_LOCK: the lock cannot be created or read. ERR_STATE_LOCK_LOST: another daemon holds it
 * now. ERR_STATE_LOCK_UNCONFIRMED: no heartbeat confirmed it lately (a freeze); writes wait for the next.
 */
export type StateLockErrorCode = 'ERR_STATE_LOCK' | 'ERR_STATE_LOCK_LOST' | 'ERR_STATE_LOCK_UNCONFIRMED';

export class StateLockError extends Error {
  override readonly name = 'StateLockError';
  constructor(
    readonly code: StateLockErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Who holds a lock, as its file says (written once, best effort: a full disk leaves it empty). */
export interface LockHolder {
  pid?: number;
  hostname?: string;
  started_at?: string;
  /** Seconds since its last heartbeat, by the wall clock. */
  heartbeat_age_seconds: number;
}

export interface StateLockOptions {
  dir: string;
  /** How often the holder touches the lock (default 2 s). */
  heartbeatMs?: number;
  /** A lock unchanged this long is the holder's that died (default 15 s). */
  staleAfterMs?: number;
  /** How often a waiter looks at the lock (default heartbeatMs). */
  pollMs?: number;
  /** Stops waiting: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called once when this daemon starts waiting, and whenever the holder changes. */
  onWait?: (holder: LockHolder) => void;
  /** Called when a stale lock was taken over. */
  onTakeover?: (holder: LockHolder) => void;
  /** Called once if the lock is lost after it was held (ERR_STATE_LOCK_LOST). */
  onLost?: (error: StateLockError) => void;
  fs?: typeof nodeFs;
  /** Wall clock, ms (mtimes are wall-clock). */
  now?: () => number;
  monotonic?: () => number;
}

export interface StateLock {
  /** Throws StateLockError ERR_STATE_LOCK_LOST when the lock file is no longer this daemon's. */
  assertHeld(): void;
  /** Stops the heartbeat and removes the lock file if it is still this daemon's. */
  release(): void;
}

const DEFAULT_HEARTBEAT_MS = 2_000;
const DEFAULT_STALE_AFTER_MS = 15_000;

interface Seen {
  ino: number;
  mtimeMs: number;
}

/** Waits until this daemon holds the state dir's lock. Throws StateLockError ERR_STATE_LOCK when the lock cannot be created at all. */
export async function acquireStateLock(options: StateLockOptions): Promise<StateLock> {
  const fs = options.fs ?? nodeFs;
  const now = options.now ?? Date.now;
  const monotonic = options.monotonic ?? monotonicMs;
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const pollMs = options.pollMs ?? heartbeatMs;
  const lockPath = join(options.dir, LOCK_FILE);
  const failed = (what: string, err: unknown) =>
    new StateLockError('ERR_STATE_LOCK', `state dir lock ${lockPath}: ${what} failed: ${(err as Error).message}`, { cause: err });

  try {
    // Not Node's recursive mkdir: it spins forever under /proc (cli/ensure-directory.ts), and
    // answers ENOENT where the real cause is a read-only file system (EROFS).
    ensureDirectory(options.dir, fs);
  } catch (err) {
    throw failed('creating the state dir', err);
  }

  let watched: { seen: Seen; since: number } | undefined;
  for (;;) {
    options.signal?.throwIfAborted();
    const fd = tryCreate(fs, lockPath, failed);
    if (fd !== undefined) return hold(fd);

    let seen: Seen | undefined;
    try {
      seen = statOrUndefined(fs, lockPath);
    } catch (err) {
      throw failed('reading', err);
    }
    if (seen === undefined) continue; // released meanwhile: try again at once
    if (!watched || watched.seen.ino !== seen.ino || watched.seen.mtimeMs !== seen.mtimeMs) {
      const holderChanged = watched?.seen.ino !== seen.ino;
      watched = { seen, since: monotonic() };
      if (holderChanged) options.onWait?.(readHolder(fs, lockPath, seen, now));
    }
    const stale = monotonic() - watched.since >= staleAfterMs;
    if (stale) {
      const holder = readHolder(fs, lockPath, seen, now);
      let tookIt: boolean;
      try {
        tookIt = setAside(fs, lockPath, seen);
      } catch (err) {
        throw failed('taking over a stale lock', err);
      }
      if (tookIt) options.onTakeover?.(holder);
      // Create ours next (another waiter may still be first: then this one waits for it), or,
      // when the lock turned out alive, look at it again.
      watched = undefined;
      continue;
    }
    await sleep(Math.min(pollMs, staleAfterMs), options.signal);
  }

  function hold(fd: number): StateLock {
    const ino = fs.fstatSync(fd).ino;
    try {
      fs.writeSync(fd, `${JSON.stringify({ pid: process.pid, hostname: hostname(), started_at: new Date(now()).toISOString() })}\n`);
    } catch {
      // A full disk: the file exists, empty; its mtime is the heartbeat, so the lock holds.
    }
    let released = false;
    let lost: StateLockError | undefined;
    let confirmedAt = monotonic();
    const owned = (): boolean => statOrUndefined(fs, lockPath)?.ino === ino;
    const checkOwned = (): void => {
      if (lost) throw lost;
      if (released || owned()) return;
      lost = new StateLockError('ERR_STATE_LOCK_LOST', `state dir lock ${lockPath} was taken over by another daemon (this one missed its heartbeats for ${staleAfterMs} ms); stopping without writing`);
      options.onLost?.(lost);
      throw lost;
    };
    const timer = setInterval(() => {
      try {
        checkOwned();
        const t = new Date(now());
        fs.futimesSync(fd, t, t);
        confirmedAt = monotonic();
      } catch {
        // Lost (onLost was told) or a failed touch (writes stop once unconfirmed): the next beat tries again.
      }
    }, heartbeatMs);
    timer.unref();
    return {
      assertHeld() {
        checkOwned();
        if (released) return;
        const age = monotonic() - confirmedAt;
        if (age > staleAfterMs - heartbeatMs) {
          throw new StateLockError('ERR_STATE_LOCK_UNCONFIRMED', `state dir lock ${lockPath}: no heartbeat confirmed it for ${Math.round(age)} ms (the daemon was frozen?); writing waits for the next one`);
        }
      },
      release() {
        if (released) return;
        released = true;
        clearInterval(timer);
        try {
          if (!lost && owned()) fs.unlinkSync(lockPath);
        } catch {
          // Left behind, it goes stale and the next daemon takes it over.
        }
        try {
          fs.closeSync(fd);
        } catch {
          // already closed
        }
      },
    };
  }
}

function tryCreate(fs: typeof nodeFs, lockPath: string, failed: (what: string, err: unknown) => StateLockError): number | undefined {
  try {
    return fs.openSync(lockPath, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_RDWR, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    throw failed('creating', err);
  }
}

function statOrUndefined(fs: typeof nodeFs, path: string): Seen | undefined {
  try {
    const st = fs.statSync(path);
    return { ino: st.ino, mtimeMs: st.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function readHolder(fs: typeof nodeFs, lockPath: string, seen: Seen, now: () => number): LockHolder {
  const age = Math.max(0, (now() - seen.mtimeMs) / 1000);
  try {
    const parsed = JSON.parse(fs.readFileSync(lockPath, 'utf8')) as Record<string, unknown>;
    return {
      ...(typeof parsed.pid === 'number' ? { pid: parsed.pid } : {}),
      ...(typeof parsed.hostname === 'string' ? { hostname: parsed.hostname.slice(0, 255) } : {}),
      ...(typeof parsed.started_at === 'string' ? { started_at: parsed.started_at.slice(0, 40) } : {}),
      heartbeat_age_seconds: Math.round(age),
    };
  } catch {
    return { heartbeat_age_seconds: Math.round(age) };
  }
}

/**
 * Moves the lock judged stale out of the way. True when the file moved was that one (inode and
 * mtime unchanged) and it is gone; false when it had changed (a heartbeat came after all, or another
 * waiter's new lock): it is put back if nothing took its place.
 */
function setAside(fs: typeof nodeFs, lockPath: string, judged: Seen): boolean {
  const aside = `${lockPath}.stale-${randomBytes(6).toString('hex')}`;
  try {
    fs.renameSync(lockPath, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false; // someone else moved it
    throw err;
  }
  const moved = statOrUndefined(fs, aside);
  if (moved && moved.ino === judged.ino && moved.mtimeMs === judged.mtimeMs) {
    fs.rmSync(aside, { force: true });
    return true;
  }
  try {
    fs.linkSync(aside, lockPath);
  } catch {
    // A new lock took its place: the moved one's holder finds its lock gone at its next check.
  }
  fs.rmSync(aside, { force: true });
  return false;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
