import { describe, it, expect, afterEach, vi } from 'vitest';
import * as nodeFs from 'node:fs';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, statSync, utimesSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireStateLock, LOCK_FILE, StateLockError, type LockHolder, type StateLock, type StateLockOptions } from './state-lock.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function stateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'state-lock-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Short timings: a heartbeat every 20 ms, stale after 300 ms. */
const FAST = { heartbeatMs: 20, staleAfterMs: 300, pollMs: 10 } as const;

async function acquire(options: StateLockOptions): Promise<StateLock> {
  const lock = await acquireStateLock({ ...FAST, ...options });
  cleanups.push(() => lock.release());
  return lock;
}

/** Starts acquiring and reports whether (and when) it settled, without waiting for it. */
function pending(options: StateLockOptions): { settled: () => boolean; promise: Promise<StateLock>; waits: LockHolder[]; abort: AbortController } {
  const abort = new AbortController();
  const waits: LockHolder[] = [];
  let done = false;
  const promise = acquireStateLock({ ...FAST, signal: abort.signal, onWait: (h) => waits.push(h), ...options });
  promise.then(
    (lock) => {
      done = true;
      cleanups.push(() => lock.release());
    },
    () => void (done = true),
  );
  cleanups.push(() => abort.abort());
  return { settled: () => done, promise, waits, abort };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('state dir lock', () => {
  it('creates the state dir and a lock file naming its holder', async () => {
    const dir = join(stateDir(), 'nested');
    await acquire({ dir });
    const holder = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'));
    expect(holder).toMatchObject({ pid: process.pid, hostname: expect.any(String), started_at: expect.any(String) });
  });

  it('keeps a second daemon waiting for as long as the holder heartbeats', async () => {
    const dir = stateDir();
    await acquire({ dir });
    const second = pending({ dir });
    await sleep(1000); // more than three times the stale limit
    expect(second.settled()).toBe(false);
    expect(second.waits).toEqual([expect.objectContaining({ pid: process.pid })]);
  });

  it('lets the waiter in as soon as the holder releases', async () => {
    const dir = stateDir();
    const first = await acquire({ dir });
    const second = pending({ dir });
    await sleep(50);
    first.release();
    const t = Date.now();
    await second.promise;
    expect(Date.now() - t).toBeLessThan(200);
    expect(existsSync(join(dir, LOCK_FILE))).toBe(true);
  });

  it('takes over a lock whose holder was killed (no heartbeat) after the stale limit', async () => {
    const dir = stateDir();
    // What kill -9 leaves: the file, no longer touched.
    writeFileSync(join(dir, LOCK_FILE), '{"pid":1,"hostname":"old"}\n');
    const takeovers: LockHolder[] = [];
    const t = Date.now();
    await acquire({ dir, onTakeover: (h) => takeovers.push(h) });
    expect(Date.now() - t).toBeGreaterThanOrEqual(FAST.staleAfterMs - 20);
    expect(takeovers).toEqual([expect.objectContaining({ pid: 1, hostname: 'old' })]);
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
  });

  it('waits out the stale limit even for a lock whose mtime is an hour old: it compares no clocks', async () => {
    const dir = stateDir();
    writeFileSync(join(dir, LOCK_FILE), '');
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(join(dir, LOCK_FILE), hourAgo, hourAgo);
    const t = Date.now();
    await acquire({ dir });
    expect(Date.now() - t).toBeGreaterThanOrEqual(FAST.staleAfterMs - 20);
  });

  it('refuses writes once no heartbeat has confirmed the lock for the stale limit less one beat (a freeze), until the next beat', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    cleanups.push(() => vi.useRealTimers());
    const dir = stateDir();
    let clock = 0;
    const lock = await acquire({ dir, monotonic: () => clock, heartbeatMs: 1_000, staleAfterMs: 5_000 });
    clock = 3_999;
    expect(() => lock.assertHeld()).not.toThrow();
    // Resumed after a freeze, before its heartbeat timer had a chance to run: a waiter that saw the
    // lock unchanged may take it over from 5,000 on, so writing stops a beat before that.
    clock = 4_001;
    expect(() => lock.assertHeld()).toThrow(expect.objectContaining({ code: 'ERR_STATE_LOCK_UNCONFIRMED' }));
    vi.advanceTimersByTime(1_000);
    expect(() => lock.assertHeld()).not.toThrow();
  });

  it('lets exactly one of two waiters take over a stale lock; the other waits for it', async () => {
    const dir = stateDir();
    writeFileSync(join(dir, LOCK_FILE), '{"pid":1}\n');
    const a = pending({ dir });
    const b = pending({ dir });
    await sleep(FAST.staleAfterMs + 300);
    expect([a.settled(), b.settled()].filter(Boolean)).toHaveLength(1);
    const winner = a.settled() ? a : b;
    const loser = a.settled() ? b : a;
    (await winner.promise).release();
    await loser.promise;
  });

  it('puts back a lock it moved aside when that lock is no longer the stale one it judged', async () => {
    const dir = stateDir();
    const lockPath = join(dir, LOCK_FILE);
    writeFileSync(lockPath, '{"pid":1}\n');
    // Between this waiter's look and its move, another waiter takes the stale lock over and
    // creates its own: the move then catches the new lock, which must survive.
    let raced = false;
    const fs = new Proxy(nodeFs, {
      get(target, prop, receiver) {
        if (prop === 'renameSync') {
          return (from: string, to: string) => {
            if (!raced) {
              raced = true;
              nodeFs.rmSync(lockPath);
              nodeFs.writeFileSync(lockPath, '{"pid":2}\n');
            }
            return nodeFs.renameSync(from, to);
          };
        }
        return Reflect.get(target, prop, receiver);
      },
    });
    const waiter = pending({ dir, fs });
    await sleep(FAST.staleAfterMs + 100);
    expect(raced).toBe(true);
    expect(readFileSync(lockPath, 'utf8')).toBe('{"pid":2}\n');
    expect(waiter.settled()).toBe(false);
    expect(waiter.waits.map((h) => h.pid)).toEqual([1, 2]);
  });

  it('tells a holder whose lock was taken over, and refuses its writes from then on', async () => {
    const dir = stateDir();
    const lost: StateLockError[] = [];
    const lock = await acquire({ dir, onLost: (e) => lost.push(e) });
    expect(() => lock.assertHeld()).not.toThrow();
    rmSync(join(dir, LOCK_FILE));
    writeFileSync(join(dir, LOCK_FILE), '{"pid":2}\n');
    await sleep(FAST.heartbeatMs * 3);
    expect(lost).toHaveLength(1);
    expect(lost[0].code).toBe('ERR_STATE_LOCK_LOST');
    expect(() => lock.assertHeld()).toThrow(StateLockError);
    expect(lost).toHaveLength(1);
    // Releasing leaves the new holder's lock alone.
    lock.release();
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe('{"pid":2}\n');
  });

  it('keeps its lock fresh by heartbeat', async () => {
    const dir = stateDir();
    await acquire({ dir });
    const before = statSync(join(dir, LOCK_FILE)).mtimeMs;
    await sleep(FAST.heartbeatMs * 4);
    expect(statSync(join(dir, LOCK_FILE)).mtimeMs).toBeGreaterThan(before);
  });

  it('stops waiting when aborted', async () => {
    const dir = stateDir();
    await acquire({ dir });
    const second = pending({ dir });
    second.abort.abort(new Error('SIGTERM'));
    await expect(second.promise).rejects.toThrow('SIGTERM');
  });

  it('fails with ERR_STATE_LOCK when the state dir cannot be created', async () => {
    const file = join(stateDir(), 'a-file');
    writeFileSync(file, '');
    const error = (await acquireStateLock({ dir: join(file, 'state') }).catch((e: unknown) => e)) as StateLockError;
    expect(error).toBeInstanceOf(StateLockError);
    expect(error.code).toBe('ERR_STATE_LOCK');
    expect(error.message).toMatch(/creating the state dir failed: ENOTDIR/);
  });

  it('fails with ENOENT, not a hang, for a state dir under /proc', { skip: process.platform !== 'linux', timeout: 5000 }, async () => {
    const error = (await acquireStateLock({ dir: '/proc/ecs-id-mapper-nope/state' }).catch((e: unknown) => e)) as StateLockError;
    expect(error.code).toBe('ERR_STATE_LOCK');
    expect(error.message).toMatch(/creating the state dir failed: ENOENT/);
  });

  it('names the real cause when the file system is read-only (EROFS), not ENOENT', async () => {
    const calls: string[] = [];
    // As the kernel answers: the missing parent first (ENOENT), then the read-only file system.
    const readOnly = {
      ...nodeFs,
      mkdirSync: (path: string) => {
        calls.push(path);
        const code = calls.length === 1 ? 'ENOENT' : 'EROFS';
        throw Object.assign(new Error(`${code}: mkdir '${path}'`), { code });
      },
    };
    const error = (await acquireStateLock({ dir: '/ro/missing/state', fs: readOnly as unknown as typeof nodeFs }).catch((e: unknown) => e)) as StateLockError;
    expect(error.message).toMatch(/creating the state dir failed: EROFS/);
  });
});
