// A soft ceiling on the daemon's heap, checked after every reconcile pass.
//
// Why: in the memory-reducing mode the launcher puts V8 in (--optimize-for-size, cli/v8-flags.ts)
// the next full collection is due only once the old generation has grown at least 8 MiB past what
// the last one left alive, whatever --heap-growing-percent says. The daemon's live heap is about
// 9 MiB, so its heap saws between 9 and 17 MiB and its RSS follows, which is most of the gap to the
// 64 MiB the original agent ran under. A hard limit fixed at start (--max-old-space-size) would
// need a second node process and turns a big host or a long outbox backlog into a crash loop.
// This is the other way round, like Go's GOMEMLIMIT: when the heap has grown `headroomBytes` (or a
// quarter of the live heap, whichever is more) past what the last full collection left, collect
// now. A heap that grows for real (more containers) only moves the baseline up; a full collection
// happens at most once per `headroomBytes` allocated, so what it costs is bounded by the
// allocation rate, never by a time budget. What it costs and saves: docs/benchmarks.md.
import { runInNewContext } from 'node:vm';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';

export interface HeapCeilingOptions {
  /** Heap growth past the last full collection's live heap that triggers one; 0 disables. */
  headroomBytes: number;
  /** Bytes of heap in use now (live objects plus garbage not yet collected). */
  usedHeapBytes?: () => number;
  /** Builds the function that runs a full, synchronous garbage collection (default: fullCollection). */
  collector?: () => () => void;
  /** Called once when no collector can be built; the ceiling is then off and never collects. */
  onUnavailable?: (err: Error) => void;
  /** Called after each collection this module triggered (a metric). */
  onCollect?: (freedBytes: number) => void;
}

export interface HeapCeiling {
  /** Checks the heap after a pass; collects when it is over the ceiling. True when it collected. */
  afterPass(): boolean;
  /** The heap size that triggers the next collection, bytes (Infinity when disabled). */
  ceilingBytes(): number;
}

/**
 * V8's `gc()` without starting node with --expose-gc: the flag, set at run time, exposes `gc` in
 * contexts created from then on, so one new context is made to take it from (the expose-gc idiom).
 */
export function fullCollection(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

const usedHeap = () => getHeapStatistics().used_heap_size;

export function createHeapCeiling(options: HeapCeilingOptions): HeapCeiling {
  const used = options.usedHeapBytes ?? usedHeap;
  if (options.headroomBytes <= 0) return { afterPass: () => false, ceilingBytes: () => Infinity };
  let collect: () => void;
  try {
    collect = (options.collector ?? fullCollection)();
  } catch (err) {
    // A node whose V8 refuses the flag: run as V8 alone would rather than not at all.
    options.onUnavailable?.(err as Error);
    return { afterPass: () => false, ceilingBytes: () => Infinity };
  }
  const ceilingAbove = (live: number) => live + Math.max(options.headroomBytes, live / 4);
  // Until the first collection the heap in use at start stands for the live heap.
  let ceiling = ceilingAbove(used());
  return {
    afterPass() {
      const before = used();
      if (before <= ceiling) return false;
      collect();
      const live = used();
      ceiling = ceilingAbove(live);
      options.onCollect?.(Math.max(0, before - live));
      return true;
    },
    ceilingBytes: () => ceiling,
  };
}
