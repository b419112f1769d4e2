import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { batch, containerId, hostIdentity, transition } from '../store.fixtures.js';
import { BACKSTOP_AUTOCHECKPOINT_PAGES, startCheckpointer } from './checkpointer.js';
import { openSqliteStore } from './index.js';

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

describe('background WAL checkpoints', () => {
  it('copy committed pages into the database file without a checkpoint on the main connection', async () => {
    const path = join(tempDir(), 'store.db');
    const store = openSqliteStore({ path, checkpointIntervalMs: 50 });
    try {
      const host = hostIdentity();
      const sizeBefore = statSync(path).size;
      const transitions = Array.from({ length: 300 }, (_, i) => {
        const id = containerId(`ckpt/${i}`);
        return transition(i + 1, 'running', { container: { container_id: id } });
      });
      await store.applyTransitions(batch(host, transitions), new Date());
      // Far below the main connection's automatic checkpoint (64 MiB of WAL): only the worker copies pages.
      expect(statSync(`${path}-wal`).size).toBeLessThan(BACKSTOP_AUTOCHECKPOINT_PAGES * 4096);
      expect(await until(() => statSync(path).size > sizeBefore + 100 * 1024, 5_000)).toBe(true);
      expect((await store.getContainer(containerId('ckpt/299'))).kind).toBe('found');
    } finally {
      await store.close();
    }
  });

  it('raise the main connection automatic checkpoint to the backstop', async () => {
    const path = join(tempDir(), 'store.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    const checkpointer = startCheckpointer(db, path);
    try {
      expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(BACKSTOP_AUTOCHECKPOINT_PAGES);
    } finally {
      await checkpointer.stop();
      db.close();
    }
  });

  it('fall back to checkpoints on commit, with a warning, when the worker cannot run', async () => {
    const dir = tempDir();
    const db = new Database(join(dir, 'real.db'));
    db.pragma('journal_mode = WAL');
    const log = captureLog();
    // The worker opens with fileMustExist, so a missing file makes it fail at start.
    const checkpointer = startCheckpointer(db, join(dir, 'missing.db'), { logger: log.logger });
    try {
      expect(await until(() => db.pragma('wal_autocheckpoint', { simple: true }) === 1000, 5_000)).toBe(true);
      expect(log.lines().some((l) => l.msg === 'sqlite checkpoint worker stopped; checkpoints run on commit again' && String(l.path).endsWith('missing.db') && typeof l.reason === 'string')).toBe(true);
    } finally {
      await checkpointer.stop();
      db.close();
    }
  });

  it('stop when the store closes, and a second close is a no-op', async () => {
    const path = join(tempDir(), 'store.db');
    const store = openSqliteStore({ path });
    await store.close();
    await store.close();
    expect((await store.health()).ok).toBe(false);
    // The file is free again: a new store opens it and sees the schema.
    const again = openSqliteStore({ path });
    expect((await again.health()).ok).toBe(true);
    await again.close();
  });
});
