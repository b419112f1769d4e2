// Machine stalls, measured beside a latency run: a worker thread that does nothing but wake every
// millisecond records every wake-up later than `thresholdMs`. Its thread is idle, so a late
// wake-up is time the machine did not run it (another thread of the process holding both cores,
// or the hypervisor not running the VM), and every request in flight then is late by as much.
// On the 2-core development VM, idle processes see 6-12 ms gaps at the same instants a few times a
// second under load: that, not the server, sets the p99 floor there (docs/benchmarks.md).
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

export interface StallReport {
  /** Wake-ups later than the threshold. */
  stalls: number;
  /** The longest, ms. */
  maxMs: number;
  /** Their total, ms. */
  totalMs: number;
}

export interface StallMeter {
  /** Stops the meter and reports what it saw since it started. */
  stop(): Promise<StallReport>;
}

interface MeterData {
  stallMeterThresholdMs: number;
}

/** Starts a meter in its own worker thread; resolves once it is running. */
export async function startStallMeter(thresholdMs = 5): Promise<StallMeter> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { stallMeterThresholdMs: thresholdMs } satisfies MeterData });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  return {
    stop: () =>
      new Promise<StallReport>((resolve, reject) => {
        worker.once('message', (report: StallReport) => {
          void worker.terminate();
          resolve(report);
        });
        worker.once('error', reject);
        worker.postMessage('stop');
      }),
  };
}

if (!isMainThread && parentPort && typeof (workerData as Partial<MeterData> | null)?.stallMeterThresholdMs === 'number') {
  const port = parentPort;
  const threshold = (workerData as MeterData).stallMeterThresholdMs;
  const report: StallReport = { stalls: 0, maxMs: 0, totalMs: 0 };
  let last = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    // The timer asked for 1 ms; anything beyond that is time this thread was not run.
    const late = now - last - 1;
    last = now;
    if (late > threshold) {
      report.stalls++;
      report.totalMs += late;
      report.maxMs = Math.max(report.maxMs, late);
    }
  }, 1);
  port.on('message', () => {
    clearInterval(tick);
    port.postMessage(report);
    port.close();
  });
  port.postMessage('ready');
}
