import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { cpuSince, threadCpu } from './thread-cpu.js';

function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe('thread CPU from /proc', () => {
  it('counts the CPU this thread burns after the snapshot', () => {
    const before = threadCpu();
    spin(300);
    // Ticks are 10 ms; a busy 300 ms shows as at least 200 ms even on a loaded machine's share.
    expect(cpuSince(before)).toBeGreaterThanOrEqual(0.2);
    expect(cpuSince(before)).toBeLessThan(5);
  });

  it('leaves out a thread started after the snapshot, however busy', async () => {
    const before = threadCpu();
    const worker = new Worker('const end = Date.now() + 400; while (Date.now() < end); require("node:worker_threads").parentPort.postMessage("done");', { eval: true });
    const done = new Promise((resolve) => worker.once('message', resolve));
    await done;
    // The worker burned about 0.4 s; the snapshot's threads, mostly waiting, far less.
    expect(cpuSince(before)).toBeLessThan(0.2);
    await worker.terminate();
  });
});
