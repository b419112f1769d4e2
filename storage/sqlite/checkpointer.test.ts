import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import type Database from 'better-sqlite3';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { batch, containerId, hostIdentity, instanceId, snapshot, snapshotContainer, transition } from '../store.fixtures.js';
import { startCheckpointer } from './checkpointer.js';
import { openSqliteStore, type SqliteStore } from './index.js';
import { BIG_SNAPSHOT_CONTAINERS } from './sqlite-store.js';

const temps: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-ckpt-'));
  temps.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function captureLog(): { logger: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { logger: pino({ level: 'warn' }, stream), lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (condition()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return condition();
}

const dbOf = (store: SqliteStore) => (store as unknown as { db: Database.Database }).db;
/** 4 KiB pages plus a 24-byte frame header, after the WAL's 32-byte header. */
const walFrames = (path: string) => Math.max(0, (statSync(`${path}-wal`).size - 32) / (4096 + 24));
/** The WAL header's checkpoint sequence number (bytes 12-15): SQLite adds one each time the WAL restarts from its beginning. */
function walRestarts(path: string): number {
  const header = Buffer.alloc(16);
  const fd = openSync(`${path}-wal`, 'r');
  try {
    readSync(fd, header, 0, 16, 0);
  } finally {
    closeSync(fd);
  }
  return header.readUInt32BE(12);
}

function startingContainers(prefix: string, count: number, firstSeq: number) {
  return Array.from({ length: count }, (_, i) => transition(firstSeq + i, 'running', { container: { container_id: containerId(`${prefix}/${i}`) } }));
}

describe('background WAL checkpoints', () => {
  it('copy committed pages into the database file before any commit reaches the automatic checkpoint', async () => {
    const path = join(tempDir(), 'store.db');
    const store = openSqliteStore({ path, checkpointIntervalMs: 20 });
    try {
      const sizeBefore = statSync(path).size;
      await store.applyTransitions(batch(hostIdentity(), startingContainers('ckpt', 40, 1)), new Date());
      // Well below the main connection's 1,000-page automatic checkpoint: only the worker copies pages.
      expect(walFrames(path)).toBeLessThan(1000);
      expect(dbOf(store).pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
      expect(await until(() => statSync(path).size > sizeBefore + 64 * 1024, 5_000)).toBe(true);
      expect((await store.getContainer(containerId('ckpt/39'))).kind).toBe('found');
    } finally {
      await store.close();
    }
  });

  it('restart the WAL from its beginning under sustained writes, and at the first commit once they pause', async () => {
    // The same writes twice: into a store whose WAL is never checkpointed (how many frames they
    // make), and into one as opened in production.
    const write = async (store: SqliteStore, from: number, batches: number) => {
      const host = hostIdentity();
      for (let b = from; b < from + batches; b++) await store.applyTransitions(batch(host, startingContainers(`burst-${b}`, 20, b * 20 + 1)), new Date());
    };
    const neverPath = join(tempDir(), 'never.db');
    const never = openSqliteStore({ path: neverPath, checkpointIntervalMs: 0 });
    dbOf(never).pragma('wal_autocheckpoint = 0');
    const path = join(tempDir(), 'store.db');
    const store = openSqliteStore({ path });
    try {
      await write(never, 0, 60);
      await write(store, 0, 60);
      const total = walFrames(neverPath);
      expect(total).toBeGreaterThan(5000);
      expect(walRestarts(neverPath)).toBe(0);
      // The WAL file keeps its high-water mark (journal_size_limit is 64 MiB), so this is the most
      // the WAL ever held. How far under the total it stays depends on the disk: a checkpoint of the
      // worker's that stalls lets the WAL grow meanwhile (CI once saw 5,087 of 8,947 pages).
      expect(walFrames(path)).toBeLessThan(total);
      expect(walRestarts(path)).toBeGreaterThan(0);
      expect(await store.countByState()).toEqual(await never.countByState());
      // Once the writes pause, the worker catches up, and the next commit starts the WAL over.
      const before = walRestarts(path);
      const end = Date.now() + 10_000;
      for (let b = 60; walRestarts(path) === before && Date.now() < end; b++) {
        await new Promise((r) => setTimeout(r, 50));
        await write(store, b, 1);
      }
      expect(walRestarts(path)).toBeGreaterThan(before);
    } finally {
      await never.close();
      await store.close();
    }
  });

  it('leave a big snapshot’s pages to the worker: its own commit does not checkpoint, the next commit past 1,000 pages does', async () => {
    // A worker that does not tick during the test: whatever reaches the database file, a commit copied.
    const path = join(tempDir(), 'store.db');
    const store = openSqliteStore({ path, checkpointIntervalMs: 60_000 });
    try {
      const host = hostIdentity();
      const big = Array.from({ length: 5000 }, (_, i) => snapshotContainer('running', { container_id: containerId(`big/${i}`) }));
      expect(big.length).toBeGreaterThanOrEqual(BIG_SNAPSHOT_CONTAINERS);
      const sizeBefore = statSync(path).size;
      await store.replaceSnapshot(snapshot(host, 1, big), new Date());
      expect(walFrames(path)).toBeGreaterThan(1000);
      expect(statSync(path).size).toBe(sizeBefore);
      expect(dbOf(store).pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
      // A 10-container host's snapshot is no big commit: past 1,000 pages, it checkpoints.
      const small = Array.from({ length: 10 }, (_, i) => snapshotContainer('running', { container_id: containerId(`small/${i}`) }));
      await store.replaceSnapshot(snapshot(hostIdentity({ instance_id: instanceId('small') }), 1, small), new Date());
      expect(statSync(path).size).toBeGreaterThan(sizeBefore);
      const restarts = walRestarts(path);
      await store.replaceSnapshot(snapshot(hostIdentity({ instance_id: instanceId('small') }), 2, small), new Date());
      expect(walRestarts(path)).toBe(restarts + 1);
      expect((await store.getContainer(containerId('big/4999'))).kind).toBe('found');
    } finally {
      await store.close();
    }
  });

  it('warn once, and leave checkpoints to the commits, when the worker cannot run', async () => {
    const log = captureLog();
    // The worker opens with fileMustExist, so a missing file makes it fail at start.
    const checkpointer = startCheckpointer(join(tempDir(), 'missing.db'), { logger: log.logger });
    try {
      expect(await until(() => log.lines().length > 0, 5_000)).toBe(true);
      expect(log.lines()).toEqual([
        expect.objectContaining({ msg: 'sqlite checkpoint worker stopped; commits checkpoint by themselves', path: expect.stringMatching(/missing\.db$/), reason: expect.any(String) }),
      ]);
    } finally {
      await checkpointer.stop();
    }
  });

  /** Runs `then` after opening a store, in a process of its own, with the compiled module (npm test builds first). */
  function inChildProcess(then: string) {
    const entry = fileURLToPath(new URL('../../dist/storage/sqlite/index.js', import.meta.url));
    const script = `const { openSqliteStore } = await import(${JSON.stringify(entry)}); const s = openSqliteStore({ path: ${JSON.stringify(join(tempDir(), 'child.db'))} }); ${then}`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000, encoding: 'utf8' });
    return [child.stdout.trim(), child.status, child.signal];
  }

  it('never keep a process alive that did not close its store', () => {
    expect(inChildProcess('console.log((await s.health()).ok);')).toEqual(['true', 0, null]);
  });

  it('let a process that awaits close() carry on after it, with nothing else to keep it alive', () => {
    expect(inChildProcess("await s.close(); console.log('after close');")).toEqual(['after close', 0, null]);
  });

  it('stop when the store closes; a second close is a no-op and the file opens again', async () => {
    const path = join(tempDir(), 'store.db');
    const store = openSqliteStore({ path });
    await store.close();
    await store.close();
    expect((await store.health()).ok).toBe(false);
    const again = openSqliteStore({ path });
    expect((await again.health()).ok).toBe(true);
    await again.close();
  });
});
