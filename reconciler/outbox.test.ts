import { describe, it, expect, afterEach } from 'vitest';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openOutbox, OutboxWriteError, type OutboxFs, type PendingTransition } from './outbox.js';
import type { ContainerObservation, LifecycleState } from '../wire/index.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'outbox-test-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

const cid = (n: number) => n.toString(16).padStart(64, '0');
function observation(n: number): ContainerObservation {
  return {
    container_id: cid(n), docker_name: `ecs-web-${n}`, container_name: 'web', image: 'nginx', task_arn: null,
    task_family: 'web', task_version: '1', ports: [], desired_status: 'RUNNING', known_status: 'RUNNING',
    restart_count: 0, exit_code: null, started_at: null, source: 'agent',
  };
}
function t(n: number, from: LifecycleState | null, to: LifecycleState): PendingTransition {
  return { container_id: cid(n), from, to, at: '2026-01-01T00:00:00.000Z', reason: 'agent.observed', container: observation(n) };
}

describe('outbox', () => {
  it('assigns strictly increasing seqs and keeps entries until acknowledged', () => {
    const box = openOutbox({ dir: tempDir(), maxBytes: 1 << 20 });
    const a = box.append([t(1, null, 'running'), t(2, null, 'pending')]);
    const b = box.append([t(2, 'pending', 'running')]);
    expect([...a, ...b].map((x) => x.seq)).toEqual([1, 2, 3]);
    expect(box.peek(10).map((x) => x.seq)).toEqual([1, 2, 3]);
    expect(box.peek(2).map((x) => x.seq)).toEqual([1, 2]);
    expect(box.peek(1)[0]).toEqual(a[0]);
    box.close();
  });

  it('survives a restart: queued entries and the seq counter come back', () => {
    const dir = tempDir();
    const box = openOutbox({ dir, maxBytes: 1 << 20 });
    box.append([t(1, null, 'running'), t(2, null, 'running')]);
    box.close();
    const again = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(again.peek(10).map((x) => x.container_id)).toEqual([cid(1), cid(2)]);
    expect(again.append([t(1, 'running', 'stopped')])[0].seq).toBe(3);
    again.close();
  });

  it('drops a torn last line on open and never reuses a seq that reached the disk', () => {
    const dir = tempDir();
    const box = openOutbox({ dir, maxBytes: 1 << 20 });
    box.append([t(1, null, 'running'), t(2, null, 'running')]);
    box.close();
    // A kill -9 in the middle of writing seq 3.
    appendFileSync(join(dir, 'outbox.jsonl'), '{"seq":3,"container_id":"ab');
    const again = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(again.peek(10).map((x) => x.seq)).toEqual([1, 2]);
    expect(readFileSync(join(dir, 'outbox.jsonl'), 'utf8').endsWith('\n')).toBe(true);
    expect(again.append([t(3, null, 'running')])[0].seq).toBe(3);
    again.close();
    const third = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(third.peek(10).map((x) => x.seq)).toEqual([1, 2, 3]);
    third.close();
  });

  it('compacts after acknowledgement and never reuses acknowledged seqs after a restart', () => {
    const dir = tempDir();
    const box = openOutbox({ dir, maxBytes: 1 << 20 });
    box.append([t(1, null, 'running'), t(2, null, 'running'), t(3, null, 'running')]);
    box.ack(2);
    expect(box.peek(10).map((x) => x.seq)).toEqual([3]);
    const lines = readFileSync(join(dir, 'outbox.jsonl'), 'utf8').trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).seq)).toEqual([3]);
    box.ack(3);
    expect(readFileSync(join(dir, 'outbox.jsonl'), 'utf8')).toBe('');
    expect(box.depth()).toBe(0);
    box.close();
    const again = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(again.lastSeq()).toBe(3);
    expect(again.ackedSeq()).toBe(3);
    expect(again.append([t(4, null, 'running')])[0].seq).toBe(4);
    again.close();
  });

  it('renumbers queued entries above the server mark when the server knows a later seq (state dir lost)', () => {
    const box = openOutbox({ dir: tempDir(), maxBytes: 1 << 20 });
    box.append([t(1, null, 'running'), t(2, null, 'running')]);
    box.ack(40);
    expect(box.peek(10).map((x) => x.seq)).toEqual([41, 42]);
    expect(box.append([t(3, null, 'running')])[0].seq).toBe(43);
    box.close();
  });

  it('coalesces to the latest entry per container when full, keeping seqs increasing', () => {
    const dir = tempDir();
    const one = JSON.stringify({ seq: 1, ...t(1, null, 'running') }).length + 1;
    const box = openOutbox({ dir, maxBytes: one * 3 });
    box.append([t(1, null, 'pending'), t(2, null, 'pending')]);
    box.append([t(1, 'pending', 'running'), t(2, 'pending', 'running')]);
    box.append([t(1, 'running', 'stopped')]);
    const queued = box.peek(10);
    expect(queued.map((x) => [x.seq, x.container_id, x.to])).toEqual([
      [4, cid(2), 'running'],
      [5, cid(1), 'stopped'],
    ]);
    expect(box.stats().coalescedTotal).toBe(3);
    expect(box.overCapacity()).toBe(false);
    box.close();
    const again = openOutbox({ dir, maxBytes: one * 3 });
    expect(again.peek(10).map((x) => x.seq)).toEqual([4, 5]);
    expect(again.append([t(3, null, 'running')])[0].seq).toBe(6);
    again.close();
  });

  it('accepts beyond the bound when distinct containers alone exceed it, and says so', () => {
    const one = JSON.stringify({ seq: 1, ...t(1, null, 'running') }).length + 1;
    const box = openOutbox({ dir: tempDir(), maxBytes: one * 2 });
    box.append([t(1, null, 'running'), t(2, null, 'running'), t(3, null, 'running')]);
    expect(box.depth()).toBe(3);
    expect(box.overCapacity()).toBe(true);
    box.ack(3);
    expect(box.overCapacity()).toBe(false);
    box.close();
  });

  it('surfaces ENOSPC as a typed error, leaves no torn line, and works again when space returns', () => {
    const dir = tempDir();
    let full = false;
    const failing: OutboxFs = {
      ...(fs as unknown as OutboxFs),
      writeSync(fd: number, data: string) {
        if (full) {
          fs.writeSync(fd, data.slice(0, 10)); // a partial write, then the disk is full
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        }
        return fs.writeSync(fd, data);
      },
    };
    const box = openOutbox({ dir, maxBytes: 1 << 20, fs: failing });
    box.append([t(1, null, 'running')]);
    full = true;
    let caught: unknown;
    try {
      box.append([t(2, null, 'running')]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(OutboxWriteError);
    expect((caught as OutboxWriteError).code).toBe('ERR_OUTBOX_NO_SPACE');
    expect((caught as OutboxWriteError).syscallCode).toBe('ENOSPC');
    expect(box.depth()).toBe(1);
    expect(readFileSync(join(dir, 'outbox.jsonl'), 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
    full = false;
    expect(box.append([t(2, null, 'running')])[0].seq).toBe(2);
    box.close();
    const again = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(again.peek(10).map((x) => x.seq)).toEqual([1, 2]);
    again.close();
  });

  it('keeps entries queued when compaction fails', () => {
    let failRename = false;
    const failing: OutboxFs = {
      ...(fs as unknown as OutboxFs),
      renameSync(a: string, b: string) {
        if (failRename) throw Object.assign(new Error('EIO'), { code: 'EIO' });
        fs.renameSync(a, b);
      },
    };
    const box = openOutbox({ dir: tempDir(), maxBytes: 1 << 20, fs: failing });
    box.append([t(1, null, 'running'), t(2, null, 'running')]);
    failRename = true;
    expect(() => box.ack(1)).toThrow(expect.objectContaining({ code: 'ERR_OUTBOX_WRITE' }));
    expect(box.peek(10).map((x) => x.seq)).toEqual([1, 2]);
    failRename = false;
    box.ack(1);
    expect(box.peek(10).map((x) => x.seq)).toEqual([2]);
    box.close();
  });

  it('fails to open with a typed error when the state dir cannot be created', () => {
    const file = join(tempDir(), 'not-a-dir');
    writeFileSync(file, 'x');
    expect(() => openOutbox({ dir: join(file, 'sub'), maxBytes: 4096 })).toThrow(expect.objectContaining({ code: 'ERR_OUTBOX_OPEN' }));
  });

  describe('restored container states', () => {
    it('gives back the last emitted state of every container not gone, across compactions', () => {
      const dir = tempDir();
      const box = openOutbox({ dir, maxBytes: 1 << 20 });
      box.append([t(1, null, 'pending'), t(2, null, 'running'), t(3, null, 'running')]);
      box.append([t(1, 'pending', 'running'), t(3, 'running', 'gone')]);
      box.ack(4); // compaction writes the checkpoint; entry 5 stays in the log
      box.append([t(2, 'running', 'stopped')]);
      box.close();
      const again = openOutbox({ dir, maxBytes: 1 << 20 });
      const states = again.restored().map((r) => [r.container.container_id, r.state]).sort();
      expect(states).toEqual([[cid(1), 'running'], [cid(2), 'stopped']]);
      again.close();
    });

    it('restores from the log alone before any compaction, and is empty for a new state dir', () => {
      const dir = tempDir();
      const fresh = openOutbox({ dir, maxBytes: 1 << 20 });
      expect(fresh.restored()).toEqual([]);
      fresh.append([t(1, null, 'running')]);
      fresh.close();
      const again = openOutbox({ dir, maxBytes: 1 << 20 });
      expect(again.restored()).toEqual([{ state: 'running', container: observation(1) }]);
      again.close();
    });
  });
});
