// CPU time of this process's threads, read from /proc (Linux). The API bench runs its servers on
// the main thread and its load generator in a worker thread of the same process, so the CPU a
// server used during a slice is that of the threads that existed before the generator started: the
// main thread and the helpers V8, libuv and the SQLite checkpointer started with it.
//
// Unlike requests per second, this does not count time the machine took away: while the
// hypervisor does not run the VM, the kernel charges that time as steal, not to the thread
// (/proc/stat's steal column moves on this VM), and a thread waiting for a core accrues nothing.
import { readdirSync, readFileSync } from 'node:fs';

/** /proc reports utime and stime in USER_HZ ticks, which Linux fixes at 100 per second whatever the kernel's HZ. */
const TICKS_PER_SECOND = 100;

/** Each live thread's CPU seconds so far, by thread id. */
export type ThreadCpu = ReadonlyMap<string, number>;

/** The CPU seconds (user + system) of every thread of this process now. */
export function threadCpu(): ThreadCpu {
  const cpu = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    const seconds = readThread(tid);
    if (seconds !== undefined) cpu.set(tid, seconds);
  }
  return cpu;
}

/**
 * CPU seconds used since `before` by the threads it lists: threads started since are left out,
 * and a thread that has ended since counts for nothing (its last figures are gone with it).
 */
export function cpuSince(before: ThreadCpu): number {
  let total = 0;
  for (const [tid, then] of before) {
    const now = readThread(tid);
    if (now !== undefined) total += now - then;
  }
  return total;
}

function readThread(tid: string): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  } catch {
    return undefined; // the thread ended between listing and reading
  }
  // The name field (2) is in parentheses and may hold spaces: count fields after its closing one.
  // There, field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}
