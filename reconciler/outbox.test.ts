import fc from 'fast-check';
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

/** node:fs, except that once `dying` is set the rename of a rewritten log fails, as a kill -9 just before it would leave things. */
function dyingBeforeLogRename(): { fs: OutboxFs; dying: boolean } {
  const state = {
    dying: false,
    fs: {
      ...(fs as unknown as OutboxFs),
      renameSync(from: string, to: string) {
        if (state.dying && from.endsWith('outbox.jsonl.tmp')) throw Object.assign(new Error('killed before the rename'), { code: 'EIO' });
        fs.renameSync(from, to);
      },
    },
  };
  return state;
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
    const box = openOutbox({ dir, maxBytes: 1 << 20, compactAfterBytes: 1 });
    box.append([t(1, null, 'running'), t(2, null, 'running'), t(3, null, 'running')]);
    box.ack(2);
    expect(box.peek(10).map((x) => x.seq)).toEqual([3]);
    const lines = readFileSync(join(dir, 'outbox.jsonl'), 'utf8').trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).seq)).toEqual([3]);
    // Acknowledged, the last line stays in the log until the acknowledged lines add up to the checkpoint.
    box.ack(3);
    expect(box.depth()).toBe(0);
    expect(box.peek(10)).toEqual([]);
    box.close();
    const again = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(again.peek(10)).toEqual([]);
    expect(again.lastSeq()).toBe(3);
    expect(again.ackedSeq()).toBe(3);
    expect(again.append([t(4, null, 'running')])[0].seq).toBe(4);
    again.close();
  });

  it('writes only the acknowledged mark on an ack, and compacts once the acknowledged lines add up to the checkpoint', () => {
    const dir = tempDir();
    const log = join(dir, 'outbox.jsonl');
    const checkpoint = join(dir, 'containers.checkpoint.jsonl');
    const seqs = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l).seq as number);
    const box = openOutbox({ dir, maxBytes: 1 << 20, compactAfterBytes: 1 });
    // 100 live containers, then compacted: the checkpoint holds their 100 states.
    box.append(Array.from({ length: 100 }, (_, i) => t(i, null, 'running')));
    box.ack(100);
    const checkpointSize = readFileSync(checkpoint).length;
    expect(seqs(log)).toEqual([]);
    // Then one change per report: each ack leaves the checkpoint and the log as they were.
    for (let seq = 101; seq <= 150; seq++) {
      box.append([t(seq % 100, 'running', seq % 2 ? 'stopped' : 'running')]);
      box.ack(seq);
      expect(box.depth()).toBe(0);
    }
    expect(seqs(log)).toEqual(Array.from({ length: 50 }, (_, i) => 101 + i));
    expect(seqs(checkpoint)[0]).toBe(100); // the header's seq
    expect(readFileSync(log).length).toBeLessThan(checkpointSize);
    // A restart skips what was acknowledged, and restores the states the log adds to the checkpoint.
    box.close();
    const again = openOutbox({ dir, maxBytes: 1 << 20, compactAfterBytes: 1 });
    expect(again.depth()).toBe(0);
    expect(again.ackedSeq()).toBe(150);
    expect(again.takeRestored().find((r) => r.container.container_id === cid(49))?.state).toBe('stopped');
    // Once the acknowledged lines reach the checkpoint's size, an ack compacts.
    let seq = 150;
    while (readFileSync(log).length > 0) {
      again.append([t(++seq % 100, 'running', 'running')]);
      again.ack(seq);
      expect(seq).toBeLessThan(400);
    }
    expect(seqs(checkpoint)[0]).toBe(seq);
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
    expect(box.peek(10).map((x) => [x.seq, x.to])).toEqual([[3, 'running'], [4, 'running']]);
    box.append([t(1, 'running', 'stopped')]);
    box.append([t(2, 'running', 'stopped')]);
    const queued = box.peek(10);
    expect(queued.map((x) => [x.seq, x.container_id, x.to])).toEqual([
      [5, cid(1), 'stopped'],
      [6, cid(2), 'stopped'],
    ]);
    expect(box.stats().coalescedTotal).toBe(4);
    expect(box.overCapacity()).toBe(false);
    box.close();
    const again = openOutbox({ dir, maxBytes: one * 3 });
    expect(again.peek(10).map((x) => x.seq)).toEqual([5, 6]);
    expect(again.append([t(3, null, 'running')])[0].seq).toBe(7);
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

  it('does not rewrite the whole log on every append when coalescing cannot get under the bound: it waits for another half of it', () => {
    const one = JSON.stringify({ seq: 1, ...t(1, null, 'running') }).length + 1;
    let rewrites = 0;
    const counting: OutboxFs = {
      ...(fs as unknown as OutboxFs),
      renameSync(from: string, to: string) {
        if (to.endsWith('outbox.jsonl')) rewrites++;
        fs.renameSync(from, to);
      },
    };
    // Room for 10 entries (a little slack: later seqs and names are a digit longer).
    const box = openOutbox({ dir: tempDir(), maxBytes: one * 10 + 20, fs: counting });
    // 12 distinct containers: over the bound, and coalescing cannot help.
    box.append(Array.from({ length: 10 }, (_, i) => t(i, null, 'running')));
    box.append([t(10, null, 'running'), t(11, null, 'running')]);
    expect([rewrites, box.depth(), box.overCapacity()]).toEqual([1, 12, true]);
    // Each further append would have rewritten the log again; now they wait for half the bound (5 entries).
    for (let i = 0; i < 4; i++) box.append([t(i, 'running', 'stopped')]);
    expect([rewrites, box.depth()]).toEqual([1, 16]);
    box.append([t(4, 'running', 'stopped')]);
    expect([rewrites, box.depth(), box.stats().coalescedTotal]).toEqual([2, 12, 5]);
    expect(box.peek(20).filter((x) => x.to === 'stopped').map((x) => x.container_id)).toEqual([0, 1, 2, 3, 4].map(cid));
    box.close();
  });

  it('surfaces ENOSPC as a typed error, leaves no torn line, and works again when space returns', () => {
    const dir = tempDir();
    let full = false;
    const failing: OutboxFs = {
      ...(fs as unknown as OutboxFs),
      writeSync(fd: number, data: Uint8Array) {
        if (full) {
          fs.writeSync(fd, data.subarray(0, 10)); // a partial write, then the disk is full
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

  it('continues a short write, so every line reaches the disk whole', () => {
    const dir = tempDir();
    // write(2) may write fewer bytes than asked without an error: here always half.
    const halving: OutboxFs = {
      ...(fs as unknown as OutboxFs),
      writeSync: (fd: number, data: Uint8Array) => fs.writeSync(fd, data.length > 1 ? data.subarray(0, Math.ceil(data.length / 2)) : data),
    };
    const box = openOutbox({ dir, maxBytes: 1 << 20, fs: halving });
    box.append([t(1, null, 'running'), t(2, null, 'running')]);
    box.append([t(3, null, 'running')]);
    expect(box.peek(10).map((x) => x.seq)).toEqual([1, 2, 3]);
    box.ack(1); // the temp log, the meta file and the checkpoint, all through short writes
    expect(box.peek(10).map((x) => x.seq)).toEqual([2, 3]);
    box.close();
    const again = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(again.peek(10).map((x) => [x.seq, x.container_id])).toEqual([[2, cid(2)], [3, cid(3)]]);
    expect(again.takeRestored().map((r) => r.container.container_id)).toEqual([cid(1), cid(2), cid(3)]);
    expect(again.append([t(4, null, 'running')])[0].seq).toBe(4);
    again.close();
  });

  it('fails an append whose write stops making progress, and leaves no partial line behind', () => {
    const dir = tempDir();
    let stall = false;
    let stalledWrites = 0;
    const stalling: OutboxFs = {
      ...(fs as unknown as OutboxFs),
      // While stalled, the first write takes 10 bytes and every one after it none.
      writeSync(fd: number, data: Uint8Array) {
        if (!stall) return fs.writeSync(fd, data);
        return stalledWrites++ === 0 ? fs.writeSync(fd, data.subarray(0, 10)) : 0;
      },
    };
    const box = openOutbox({ dir, maxBytes: 1 << 20, fs: stalling });
    box.append([t(1, null, 'running')]);
    stall = true;
    expect(() => box.append([t(2, null, 'running')])).toThrow(expect.objectContaining({ name: 'OutboxWriteError', code: 'ERR_OUTBOX_WRITE' }));
    expect(readFileSync(join(dir, 'outbox.jsonl'), 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
    stall = false;
    expect(box.append([t(2, null, 'running')])[0].seq).toBe(2);
    expect(box.peek(10).map((x) => x.seq)).toEqual([1, 2]);
    box.close();
  });

  it('loses nothing when renumbering stops before the renumbered log is in place (a crash, a failed write)', () => {
    const dir = tempDir();
    const crashing = dyingBeforeLogRename();
    const box = openOutbox({ dir, maxBytes: 1 << 20, fs: crashing.fs });
    box.append([t(1, null, 'running'), t(2, null, 'running')]);
    crashing.dying = true;
    expect(() => box.ack(40)).toThrow(expect.objectContaining({ code: 'ERR_OUTBOX_WRITE' }));
    expect(box.peek(10).map((x) => x.seq)).toEqual([1, 2]);
    box.close();
    const again = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(again.peek(10).map((x) => x.container_id)).toEqual([cid(1), cid(2)]);
    again.ack(40);
    expect(again.peek(10).map((x) => x.seq)).toEqual([41, 42]);
    again.close();
  });

  it('restores no state from a coalescing append whose log never got in place', () => {
    const dir = tempDir();
    const one = JSON.stringify({ seq: 1, ...t(1, null, 'running') }).length + 1;
    const crashing = dyingBeforeLogRename();
    const box = openOutbox({ dir, maxBytes: one * 3, fs: crashing.fs });
    box.append([t(1, null, 'running'), t(2, null, 'running'), t(3, null, 'running')]);
    crashing.dying = true;
    // Over the bound: this append coalesces, which rewrites the whole log.
    expect(() => box.append([t(1, 'running', 'stopped')])).toThrow(expect.objectContaining({ code: 'ERR_OUTBOX_WRITE' }));
    box.close();
    const again = openOutbox({ dir, maxBytes: one * 3 });
    expect(again.takeRestored().map((r) => [r.container.container_id, r.state])).toEqual([
      [cid(1), 'running'],
      [cid(2), 'running'],
      [cid(3), 'running'],
    ]);
    expect(again.peek(10).map((x) => x.seq)).toEqual([1, 2, 3]);
    again.close();
  });

  it.each([
    ['an acknowledgement', undefined],
    ['a compaction', 1],
  ])('keeps entries queued when %s fails to write', (_what, compactAfterBytes) => {
    let failRename = false;
    const failing: OutboxFs = {
      ...(fs as unknown as OutboxFs),
      renameSync(a: string, b: string) {
        if (failRename) throw Object.assign(new Error('EIO'), { code: 'EIO' });
        fs.renameSync(a, b);
      },
    };
    const dir = tempDir();
    const box = openOutbox({ dir, maxBytes: 1 << 20, fs: failing, compactAfterBytes });
    box.append([t(1, null, 'running'), t(2, null, 'running')]);
    const bytes = box.bytes();
    failRename = true;
    expect(() => box.ack(1)).toThrow(expect.objectContaining({ code: 'ERR_OUTBOX_WRITE' }));
    expect(box.peek(10).map((x) => x.seq)).toEqual([1, 2]);
    expect(box.stats()).toMatchObject({ depth: 2, bytes, ackedSeq: 0 });
    failRename = false;
    box.ack(1);
    expect(box.peek(10).map((x) => x.seq)).toEqual([2]);
    expect(box.bytes()).toBeLessThan(bytes);
    box.close();
    const reopened = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(reopened.peek(10).map((x) => x.seq)).toEqual([2]);
    reopened.close();
  });

  it('keeps an acknowledged state that only the log holds until the checkpoint has it, also when coalescing rewrites the log', () => {
    let failCheckpoint = false;
    const failing: OutboxFs = {
      ...(fs as unknown as OutboxFs),
      renameSync(a: string, b: string) {
        if (failCheckpoint && b.endsWith('containers.checkpoint.jsonl')) throw Object.assign(new Error('EIO'), { code: 'EIO' });
        fs.renameSync(a, b);
      },
    };
    const dir = tempDir();
    const box = openOutbox({ dir, maxBytes: 4096, fs: failing });
    box.append([t(1, null, 'running')]);
    box.ack(1); // below the compaction threshold: container 1's state is in the log only
    failCheckpoint = true;
    // A backlog past the bound makes the next append coalesce, which rewrites the log.
    try {
      for (let i = 0; i < 20; i++) box.append([t(100 + (i % 3), null, 'running')]);
    } catch (err) {
      expect(err).toMatchObject({ code: 'ERR_OUTBOX_WRITE' });
    }
    box.close();
    const again = openOutbox({ dir, maxBytes: 4096 });
    expect(again.takeRestored().map((r) => [r.container.container_id, r.state])).toContainEqual([cid(1), 'running']);
    again.close();
  });

  describe('a backlog larger than one read', () => {
    // 3,000 entries of about 600 bytes: several of the outbox's 1 MiB reads.
    const backlog = (from: number, n: number) => Array.from({ length: n }, (_, i) => t(from + i, null, 'running'));

    it('reads queued entries back from the log, in order, through acknowledgements and a restart', () => {
      const dir = tempDir();
      const box = openOutbox({ dir, maxBytes: 64 << 20 });
      const sent = box.append(backlog(1, 3000));
      expect(box.bytes()).toBeGreaterThan(1.5 * (1 << 20));
      expect(box.peek(5000)).toEqual(sent);
      box.ack(1000);
      expect(box.peek(5000)).toEqual(sent.slice(1000));
      const more = box.append(backlog(5000, 10));
      expect(box.peek(5000)).toEqual([...sent.slice(1000), ...more]);
      box.close();
      const again = openOutbox({ dir, maxBytes: 64 << 20 });
      expect(again.peek(5000)).toEqual([...sent.slice(1000), ...more]);
      again.close();
    });

    it('keeps the lines on disk, not in memory: what peek returns is what the log holds', () => {
      const dir = tempDir();
      const box = openOutbox({ dir, maxBytes: 64 << 20 });
      box.append(backlog(1, 3000));
      // Rewrite one queued line in place, same length: a copy held in memory would not see it.
      const log = join(dir, 'outbox.jsonl');
      const text = readFileSync(log, 'utf8');
      writeFileSync(log, text.replace('"docker_name":"ecs-web-2000"', '"docker_name":"ecs-xyz-2000"'));
      expect(box.peek(5000)[1999].container.docker_name).toBe('ecs-xyz-2000');
      box.close();
    });

    it('coalesces and renumbers a multi-read backlog, and keeps byte offsets right for non-ASCII names', () => {
      const dir = tempDir();
      const named = (n: number, to: LifecycleState): PendingTransition => ({ ...t(n, null, to), container: { ...observation(n), docker_name: `ecs-wéb-ünïcode-${n}` } });
      const one = JSON.stringify({ seq: 1, ...named(1, 'running') }).length + 1;
      const box = openOutbox({ dir, maxBytes: one * 2500 });
      box.append(Array.from({ length: 2000 }, (_, i) => named(i, 'pending')));
      // Over the bound: the 2,000 pending entries give way to the latest per container.
      const latest = box.append(Array.from({ length: 1000 }, (_, i) => named(i, 'running')));
      const queued = box.peek(5000);
      expect(queued).toHaveLength(2000);
      expect(queued.slice(0, 1000).map((x) => [x.seq, x.to])).toEqual(Array.from({ length: 1000 }, (_, i) => [1001 + i, 'pending']));
      expect(queued.slice(1000)).toEqual(latest);
      expect(queued[1500].container.docker_name).toBe('ecs-wéb-ünïcode-500');
      box.ack(1_000_000); // the server knows a later seq: everything queued is renumbered above it
      expect(box.peek(5000).map((x) => x.seq)).toEqual(Array.from({ length: 2000 }, (_, i) => 1_000_001 + i));
      expect(box.peek(5000)[1999]).toEqual({ ...latest[999], seq: 1_002_000 });
      const before = box.peek(5000);
      box.close();
      // Reopening scans the log a read at a time: lines with multi-byte characters cross the reads.
      const again = openOutbox({ dir, maxBytes: one * 2500 });
      expect(again.peek(5000)).toEqual(before);
      again.close();
    });

    it('drops a torn tail after a multi-read log on open, keeping every complete line', () => {
      const dir = tempDir();
      const box = openOutbox({ dir, maxBytes: 64 << 20 });
      const sent = box.append(backlog(1, 3000));
      box.close();
      appendFileSync(join(dir, 'outbox.jsonl'), '{"seq":3001,"container_id":"00');
      const again = openOutbox({ dir, maxBytes: 64 << 20 });
      expect(again.peek(5000)).toEqual(sent);
      expect(again.append(backlog(9000, 1))[0].seq).toBe(3001);
      again.close();
      expect(readFileSync(join(dir, 'outbox.jsonl'), 'utf8').endsWith('\n')).toBe(true);
    });
  });

  it('surfaces a failed read of the log as a typed error and reads again once the disk answers', () => {
    let failing = false;
    const flaky: OutboxFs = {
      ...(fs as unknown as OutboxFs),
      readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number) {
        if (failing) throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
        return fs.readSync(fd, buffer, offset, length, position);
      },
    };
    const box = openOutbox({ dir: tempDir(), maxBytes: 1 << 20, fs: flaky });
    box.append([t(1, null, 'running')]);
    failing = true;
    expect(() => box.peek(10)).toThrow(expect.objectContaining({ name: 'OutboxWriteError', code: 'ERR_OUTBOX_READ', syscallCode: 'EIO' }));
    failing = false;
    expect(box.peek(10).map((x) => x.seq)).toEqual([1]);
    box.close();
  });

  it('fails to open with a typed error when the log cannot be read', () => {
    const dir = tempDir();
    const box = openOutbox({ dir, maxBytes: 1 << 20 });
    box.append([t(1, null, 'running')]);
    box.close();
    const unreadable: OutboxFs = {
      ...(fs as unknown as OutboxFs),
      readSync() {
        throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
      },
    };
    expect(() => openOutbox({ dir, maxBytes: 1 << 20, fs: unreadable })).toThrow(expect.objectContaining({ code: 'ERR_OUTBOX_OPEN', syscallCode: 'EIO' }));
  });

  it('fails to open with a typed error when the state dir cannot be created', () => {
    const file = join(tempDir(), 'not-a-dir');
    writeFileSync(file, 'x');
    expect(() => openOutbox({ dir: join(file, 'sub'), maxBytes: 4096 })).toThrow(expect.objectContaining({ code: 'ERR_OUTBOX_OPEN' }));
  });

  it('fails to open with ENOENT, not a hang, for a state dir under /proc', { skip: process.platform !== 'linux' }, () => {
    // Node's recursive mkdir spins forever here (cli/ensure-directory.ts).
    expect(() => openOutbox({ dir: '/proc/ecs-id-mapper-nope/state', maxBytes: 4096 })).toThrow(expect.objectContaining({ code: 'ERR_OUTBOX_OPEN', syscallCode: 'ENOENT' }));
  });

  describe('claimed for one instance', () => {
    it("forgets another instance's entries and states, keeps its own and the seq counter, across a failed claim and restarts", () => {
      const dir = tempDir();
      const a = openOutbox({ dir, maxBytes: 1 << 20 });
      expect(a.claim('i-a')).toEqual({ forgotten: [], dropped: 0, previous: null });
      a.append([t(1, null, 'running'), t(2, null, 'running')]);
      a.ack(1);
      a.close();
      // The state dir comes up on instance i-b, which appends one of its own before IMDS answers.
      let failMeta = true;
      const failing: OutboxFs = {
        ...(fs as unknown as OutboxFs),
        renameSync(from: string, to: string) {
          if (failMeta && to.endsWith('outbox.meta.json')) throw Object.assign(new Error('killed'), { code: 'EIO' });
          fs.renameSync(from, to);
        },
      };
      const b = openOutbox({ dir, maxBytes: 1 << 20, fs: failing });
      b.append([t(3, null, 'running')]);
      expect(() => b.claim('i-b')).toThrow(expect.objectContaining({ code: 'ERR_OUTBOX_WRITE' }));
      expect(b.owner()).toBe('i-a');
      failMeta = false;
      expect(b.claim('i-b')).toEqual({ forgotten: [cid(1), cid(2)], dropped: 1, previous: 'i-a' });
      expect(b.peek(10).map((x) => [x.seq, x.container_id])).toEqual([[3, cid(3)]]);
      expect(b.append([t(4, null, 'running')])[0].seq).toBe(4);
      b.close();
      const again = openOutbox({ dir, maxBytes: 1 << 20 });
      expect(again.owner()).toBe('i-b');
      expect(again.takeRestored().map((r) => r.container.container_id)).toEqual([cid(3), cid(4)]);
      expect(again.claim('i-b')).toEqual({ forgotten: [], dropped: 0, previous: 'i-b' });
      expect(again.peek(10).map((x) => x.seq)).toEqual([3, 4]);
      again.close();
    });
  });

  it('syncs the state dir after creating the log and after every rename, before the next step (power loss keeps the order)', () => {
    const dir = tempDir();
    const events: string[] = [];
    const dirFds = new Set<number>();
    const recording: OutboxFs = {
      ...(fs as unknown as OutboxFs),
      openSync(path: string, flags: string) {
        const existed = fs.existsSync(path);
        const fd = fs.openSync(path, flags);
        if (path === dir) dirFds.add(fd);
        else if (path.endsWith('/outbox.jsonl') && !existed) events.push('create outbox.jsonl');
        return fd;
      },
      fsyncSync(fd: number) {
        fs.fsyncSync(fd);
        if (dirFds.has(fd)) events.push('sync dir');
      },
      closeSync(fd: number) {
        dirFds.delete(fd);
        fs.closeSync(fd);
      },
      renameSync(from: string, to: string) {
        fs.renameSync(from, to);
        events.push(`rename ${to.slice(dir.length + 1)}`);
      },
    };
    const o = openOutbox({ dir, maxBytes: 1 << 20, fs: recording, compactAfterBytes: 1 });
    o.append([t(1, null, 'running'), t(2, null, 'running')]);
    o.ack(1);
    o.close();
    // Each rename (and the log's creation) is followed by a sync of the directory before anything else is renamed.
    for (let i = 0; i < events.length; i++) {
      if (events[i] !== 'sync dir') expect(events[i + 1], `after ${events[i]}`).toBe('sync dir');
    }
    expect(events.filter((e) => e !== 'sync dir')).toEqual(['create outbox.jsonl', 'rename outbox.meta.json', 'rename containers.checkpoint.jsonl', 'rename outbox.jsonl']);
  });

  describe("the server's mark for a new state dir", () => {
    it('renumbers what is queued above the mark and above every seq handed out, and remembers that across restarts', () => {
      const dir = tempDir();
      const a = openOutbox({ dir, maxBytes: 1 << 20 });
      expect(a.serverSeqKnown()).toBe(false);
      a.append([1, 2, 3, 4, 5].map((n) => t(n, null, 'running')));
      // The server holds seq 3 from before the state dir was lost: 1..3 would be replays, 4 and 5
      // seqs this outbox already handed out. Numbering continues above both.
      a.rebase(3);
      expect(a.serverSeqKnown()).toBe(true);
      expect(a.peek(10).map((x) => [x.seq, x.container_id])).toEqual([6, 7, 8, 9, 10].map((seq, i) => [seq, cid(i + 1)]));
      expect([a.ackedSeq(), a.lastSeq()]).toEqual([5, 10]);
      a.rebase(1000); // once only
      expect(a.peek(10).map((x) => x.seq)).toEqual([6, 7, 8, 9, 10]);
      a.close();
      const again = openOutbox({ dir, maxBytes: 1 << 20 });
      expect(again.serverSeqKnown()).toBe(true);
      expect(again.peek(10).map((x) => x.seq)).toEqual([6, 7, 8, 9, 10]);
      expect(again.append([t(6, null, 'running')])[0].seq).toBe(11);
      again.close();
    });

    it('numbers above a mark higher than anything queued, also with nothing queued; a mark of 0 changes nothing', () => {
      const high = openOutbox({ dir: tempDir(), maxBytes: 1 << 20 });
      high.append([t(1, null, 'running')]);
      high.rebase(100);
      expect(high.peek(10).map((x) => x.seq)).toEqual([101]);
      high.close();
      const empty = openOutbox({ dir: tempDir(), maxBytes: 1 << 20 });
      empty.rebase(60);
      // A snapshot carries lastSeq: it must be at the server's mark to mark gone what the server holds.
      expect([empty.ackedSeq(), empty.lastSeq(), empty.depth()]).toEqual([60, 60, 0]);
      empty.close();
      const unknownHost = openOutbox({ dir: tempDir(), maxBytes: 1 << 20 });
      unknownHost.append([t(1, null, 'running')]);
      unknownHost.rebase(0);
      expect(unknownHost.peek(10).map((x) => x.seq)).toEqual([1]);
      expect(unknownHost.serverSeqKnown()).toBe(true);
      unknownHost.close();
    });

    it('asks again after a restart that came before the mark was taken, and not for a state dir from before the rule', () => {
      const dir = tempDir();
      const a = openOutbox({ dir, maxBytes: 1 << 20 });
      a.claim('i-a'); // writes the meta file: it must still say the mark is not known
      a.append([t(1, null, 'running')]);
      a.close();
      expect(openOutbox({ dir, maxBytes: 1 << 20 }).serverSeqKnown()).toBe(false);
      const old = tempDir();
      writeFileSync(join(old, 'outbox.meta.json'), JSON.stringify({ last_seq: 7, acked_seq: 7 }) + '\n');
      expect(openOutbox({ dir: old, maxBytes: 1 << 20 }).serverSeqKnown()).toBe(true);
    });

    it('keeps the mark unknown when recording it fails, and never numbers below what the failed attempt handed out', () => {
      const dir = tempDir();
      let fail = true;
      const failing: OutboxFs = {
        ...(fs as unknown as OutboxFs),
        renameSync(from: string, to: string) {
          if (fail && to.endsWith('outbox.meta.json')) throw Object.assign(new Error('disk full'), { code: 'ENOSPC' });
          fs.renameSync(from, to);
        },
      };
      const a = openOutbox({ dir, maxBytes: 1 << 20, fs: failing });
      a.append([t(1, null, 'running'), t(2, null, 'running')]);
      expect(() => a.rebase(10)).toThrow(expect.objectContaining({ code: 'ERR_OUTBOX_NO_SPACE' }));
      expect(a.serverSeqKnown()).toBe(false);
      fail = false;
      a.rebase(10);
      // The failed attempt had renumbered them 11 and 12; this one goes above those.
      expect(a.peek(10).map((x) => [x.seq, x.container_id])).toEqual([[13, cid(1)], [14, cid(2)]]);
      a.close();
      expect(openOutbox({ dir, maxBytes: 1 << 20 }).peek(10).map((x) => x.seq)).toEqual([13, 14]);
    });
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
      const states = again.takeRestored().map((r) => [r.container.container_id, r.state]).sort();
      expect(states).toEqual([[cid(1), 'running'], [cid(2), 'stopped']]);
      again.close();
    });

    it('restores from the log alone before any compaction, and is empty for a new state dir', () => {
      const dir = tempDir();
      const fresh = openOutbox({ dir, maxBytes: 1 << 20 });
      expect(fresh.takeRestored()).toEqual([]);
      fresh.append([t(1, null, 'running')]);
      fresh.close();
      const again = openOutbox({ dir, maxBytes: 1 << 20 });
      expect(again.takeRestored()).toEqual([{ state: 'running', container: observation(1) }]);
      again.close();
    });

    it('hands the restored states over once, so the outbox does not hold them for the life of the daemon', () => {
      const dir = tempDir();
      const first = openOutbox({ dir, maxBytes: 1 << 20 });
      first.append([t(1, null, 'running')]);
      first.close();
      const again = openOutbox({ dir, maxBytes: 1 << 20 });
      expect(again.takeRestored()).toHaveLength(1);
      expect(again.takeRestored()).toEqual([]);
      again.close();
    });
  });
});

describe('outbox container states across compactions, coalescing and restarts', () => {
  // Appends of random containers and states (gone among them), acknowledgements of random extent,
  // restarts; compactions come often (a tiny threshold) and a small bound makes appends coalesce.
  const step = fc.oneof(
    fc.record({ kind: fc.constant('append' as const), changes: fc.array(fc.tuple(fc.integer({ min: 1, max: 12 }), fc.constantFrom<LifecycleState>('pending', 'running', 'stopped', 'gone')), { minLength: 1, maxLength: 5 }) }),
    fc.record({ kind: fc.constant('ack' as const), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }),
    fc.record({ kind: fc.constant('restart' as const) }),
  );

  it('restores, after every restart, the last state appended for each container not gone', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), fc.constantFrom(1, 2048, 1 << 20), fc.constantFrom(3000, 1 << 20), (steps, compactAfterBytes, maxBytes) => {
        const dir = tempDir();
        const model = new Map<string, LifecycleState>();
        let box = openOutbox({ dir, maxBytes, compactAfterBytes });
        const check = (restored: ReturnType<typeof box.takeRestored>) => {
          const expected = [...model].filter(([, s]) => s !== 'gone').sort();
          expect(restored.map((r) => [r.container.container_id, r.state]).sort()).toEqual(expected);
        };
        for (const s of steps) {
          if (s.kind === 'append') {
            box.append(s.changes.map(([n, to]) => t(n, model.get(cid(n)) ?? null, to)));
            for (const [n, to] of s.changes) model.set(cid(n), to);
          } else if (s.kind === 'ack') {
            box.ack(box.ackedSeq() + Math.floor((box.lastSeq() - box.ackedSeq()) * s.fraction));
          } else {
            box.close();
            box = openOutbox({ dir, maxBytes, compactAfterBytes });
            check(box.takeRestored());
          }
        }
        box.close();
        const last = openOutbox({ dir, maxBytes, compactAfterBytes });
        check(last.takeRestored());
        last.close();
      }),
      { numRuns: 60 },
    );
  });
});

describe('outbox corrupt lines', () => {
  it('keeps a corrupt line found on open out of the checkpoint, even when its head reads as a transition', () => {
    const dir = tempDir();
    const first = openOutbox({ dir, maxBytes: 1 << 20, compactAfterBytes: 1 });
    first.append([t(1, null, 'running')]);
    first.ack(1); // compacted: the checkpoint holds container 1 running, the log nothing
    first.close();
    // A torn write followed by a retry leaves a complete line whose JSON is broken past its head.
    const line = JSON.stringify({ seq: 2, ...t(1, 'running', 'stopped') });
    appendFileSync(join(dir, 'outbox.jsonl'), `${line.slice(0, line.length - 20)}\n`);
    const second = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(second.lastSeq()).toBe(1);
    expect(second.takeRestored().map((r) => r.state)).toEqual(['running']);
    second.close();
    const third = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(third.takeRestored().map((r) => [r.container.container_id, r.state])).toEqual([[cid(1), 'running']]);
    third.close();
  });
});

describe('outbox damage found on open', () => {
  it('reports a torn last line and a corrupt complete line apart, and nothing on a clean open', () => {
    const dir = tempDir();
    const box = openOutbox({ dir, maxBytes: 1 << 20 });
    box.append([t(1, null, 'running'), t(2, null, 'running'), t(3, null, 'running')]);
    box.close();
    expect(openOutbox({ dir, maxBytes: 1 << 20 }).repairsOnOpen()).toEqual({ tornTail: false, corruptLines: 0, metaRebuilt: false, checkpointUnreadable: false });
    // Bytes of the middle line changed on disk, and a crash mid-append at the end.
    const lines = readFileSync(join(dir, 'outbox.jsonl'), 'utf8').split('\n');
    lines[1] = `#${lines[1].slice(1)}`;
    writeFileSync(join(dir, 'outbox.jsonl'), `${lines.join('\n')}{"seq":4,"contai`);
    const again = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(again.repairsOnOpen()).toEqual({ tornTail: true, corruptLines: 1, metaRebuilt: false, checkpointUnreadable: false });
    expect(again.peek(10).map((x) => x.seq)).toEqual([1, 3]);
    again.close();
  });

  it('rebuilds an unreadable meta file from the log: queued and unacknowledged lines are sent again, seqs go on above them', () => {
    const dir = tempDir();
    const box = openOutbox({ dir, maxBytes: 1 << 20 });
    box.rebase(0);
    box.append([t(1, null, 'running'), t(2, null, 'running'), t(3, null, 'running')]);
    box.ack(2); // only the mark moves: lines 1 and 2 are still in the log
    box.close();
    writeFileSync(join(dir, 'outbox.meta.json'), '{"last_seq":');
    const again = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(again.repairsOnOpen()).toMatchObject({ metaRebuilt: true });
    // What the meta said was acknowledged is not known: the server drops the seqs it holds.
    expect(again.peek(10).map((x) => x.seq)).toEqual([1, 2, 3]);
    expect(again.serverSeqKnown()).toBe(true);
    expect(again.append([t(4, null, 'running')])[0].seq).toBe(4);
    again.close();
    // Written again, whole: the next open reads it.
    expect(JSON.parse(readFileSync(join(dir, 'outbox.meta.json'), 'utf8'))).toMatchObject({ last_seq: 3, acked_seq: 0, server_seq_known: true });
    expect(openOutbox({ dir, maxBytes: 1 << 20 }).repairsOnOpen().metaRebuilt).toBe(false);
  });

  it('takes what the checkpoint covers as acknowledged when it rebuilds the meta file', () => {
    const dir = tempDir();
    const box = openOutbox({ dir, maxBytes: 1 << 20, compactAfterBytes: 1 });
    box.rebase(0);
    box.append([t(1, null, 'running'), t(2, null, 'running')]);
    box.ack(2); // compacted: the checkpoint covers seq 2, the log is empty
    box.append([t(3, null, 'stopped')]);
    box.close();
    writeFileSync(join(dir, 'outbox.meta.json'), 'not json');
    const again = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(again.peek(10).map((x) => x.seq)).toEqual([3]);
    expect([again.lastSeq(), again.ackedSeq(), again.serverSeqKnown()]).toEqual([3, 2, true]);
    again.close();
  });

  it("keeps numbering above the server's mark taken before the meta file became unreadable", () => {
    const dir = tempDir();
    const box = openOutbox({ dir, maxBytes: 1 << 20 });
    box.rebase(40); // the server held seqs up to 40 for this host; nothing appended since
    box.close();
    writeFileSync(join(dir, 'outbox.meta.json'), '[]');
    const again = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(again.repairsOnOpen().metaRebuilt).toBe(true);
    expect(again.append([t(1, null, 'running')])[0].seq).toBe(41);
    again.close();
  });

  it('asks the server for its mark again when the meta file is unreadable and no seq is left on disk', () => {
    const dir = tempDir();
    const box = openOutbox({ dir, maxBytes: 1 << 20 });
    box.rebase(0);
    box.close();
    writeFileSync(join(dir, 'outbox.meta.json'), '{');
    const again = openOutbox({ dir, maxBytes: 1 << 20 });
    expect(again.repairsOnOpen().metaRebuilt).toBe(true);
    // Numbering from 1 could hand out seqs the server drops as replays: it is asked for the mark first.
    expect(again.serverSeqKnown()).toBe(false);
    again.close();
  });

  it('reports an unreadable checkpoint', () => {
    const dir = tempDir();
    const box = openOutbox({ dir, maxBytes: 1 << 20, compactAfterBytes: 1 });
    box.append([t(1, null, 'running')]);
    box.ack(1);
    box.close();
    writeFileSync(join(dir, 'containers.checkpoint.jsonl'), 'garbage\n');
    expect(openOutbox({ dir, maxBytes: 1 << 20 }).repairsOnOpen()).toMatchObject({ checkpointUnreadable: true, metaRebuilt: false });
  });
});

describe('outbox beforeWrite (the state dir lock)', () => {
  it('asks before every change and, when refused, leaves the files and the seqs as they were', () => {
    const dir = tempDir();
    let refuse = false;
    let asked = 0;
    const outbox = openOutbox({
      dir,
      maxBytes: 1 << 20,
      beforeWrite: () => {
        asked++;
        if (refuse) throw new Error('lock lost');
      },
    });
    expect(outbox.append([t(1, null, 'running')])[0].seq).toBe(1);
    expect(asked).toBe(1);
    refuse = true;
    const files = () => fs.readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f), 'utf8')]);
    const before = files();
    expect(() => outbox.append([t(2, null, 'running')])).toThrow(expect.objectContaining({ name: 'OutboxWriteError', code: 'ERR_OUTBOX_REFUSED', message: 'outbox write refused: lock lost' }));
    expect(() => outbox.ack(1)).toThrow('lock lost');
    expect(() => outbox.rebase(10)).toThrow('lock lost');
    expect(() => outbox.claim('i-0123456789abcdef0')).toThrow('lock lost');
    expect(asked).toBe(5);
    expect(files()).toEqual(before);
    expect(outbox.stats()).toMatchObject({ lastSeq: 1, ackedSeq: 0, depth: 1 });
    outbox.close();
  });
});
