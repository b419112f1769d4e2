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
    // Spun until the reading shows it, not for a fixed time: on a loaded machine 300 ms of wall time
    // gave this thread 160 ms of CPU. A reading that did not count this thread never gets there.
    const deadline = performance.now() + 20_000;
    while (cpuSince(before) < 0.2 && performance.now() < deadline) spin(20);
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
