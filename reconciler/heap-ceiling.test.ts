import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { createHeapCeiling, fullCollection } from './heap-ceiling.js';

const MiB = 1024 * 1024;

/** A heap whose size the test sets; a collection leaves `live` bytes. */
function fakeHeap(start: number) {
  const heap = { used: start, live: start, collections: 0 };
  return {
    heap,
    usedHeapBytes: () => heap.used,
    collect: () => {
      heap.collections++;
      heap.used = heap.live;
    },
  };
}

describe('heap ceiling', () => {
  it('does not collect while the heap stays within the headroom of the live heap', () => {
    const { heap, usedHeapBytes, collect } = fakeHeap(9 * MiB);
    const ceiling = createHeapCeiling({ headroomBytes: 3 * MiB, usedHeapBytes, collector: () => collect });
    heap.used = 12 * MiB;
    expect(ceiling.afterPass()).toBe(false);
    expect(heap.collections).toBe(0);
  });

  it('collects once the heap grows past the headroom, and reports what it freed', () => {
    const { heap, usedHeapBytes, collect } = fakeHeap(9 * MiB);
    const freed: number[] = [];
    const ceiling = createHeapCeiling({ headroomBytes: 3 * MiB, usedHeapBytes, collector: () => collect, onCollect: (bytes) => freed.push(bytes) });
    heap.used = 12 * MiB + 1;
    expect(ceiling.afterPass()).toBe(true);
    expect(heap.collections).toBe(1);
    expect(heap.used).toBe(9 * MiB);
    expect(freed).toEqual([3 * MiB + 1]);
  });

  it('measures the next ceiling from what the collection left, so a live heap that grows moves it up', () => {
    const { heap, usedHeapBytes, collect } = fakeHeap(9 * MiB);
    const ceiling = createHeapCeiling({ headroomBytes: 3 * MiB, usedHeapBytes, collector: () => collect });
    heap.live = 11 * MiB; // more containers since start
    heap.used = 13 * MiB;
    expect(ceiling.afterPass()).toBe(true);
    expect(ceiling.ceilingBytes()).toBe(14 * MiB);
    heap.used = 14 * MiB;
    expect(ceiling.afterPass()).toBe(false);
    expect(heap.collections).toBe(1);
  });

  it('allows a quarter of a large live heap rather than the fixed headroom, so a big host is not collected constantly', () => {
    const { heap, usedHeapBytes, collect } = fakeHeap(40 * MiB);
    const ceiling = createHeapCeiling({ headroomBytes: 3 * MiB, usedHeapBytes, collector: () => collect });
    expect(ceiling.ceilingBytes()).toBe(50 * MiB);
    heap.used = 49 * MiB;
    expect(ceiling.afterPass()).toBe(false);
  });

  it('does not collect again on the next pass when a collection freed nothing (a heap that is all live)', () => {
    const { heap, usedHeapBytes, collect } = fakeHeap(9 * MiB);
    const ceiling = createHeapCeiling({ headroomBytes: 3 * MiB, usedHeapBytes, collector: () => collect });
    heap.live = 13 * MiB;
    heap.used = 13 * MiB;
    expect(ceiling.afterPass()).toBe(true);
    expect(ceiling.afterPass()).toBe(false);
    expect(heap.collections).toBe(1);
  });

  it('is off with a headroom of 0: it never collects and never builds a collector', () => {
    let built = 0;
    const ceiling = createHeapCeiling({ headroomBytes: 0, usedHeapBytes: () => 1e12, collector: () => (built++, () => {}) });
    expect(ceiling.afterPass()).toBe(false);
    expect(ceiling.ceilingBytes()).toBe(Infinity);
    expect(built).toBe(0);
  });

  it('turns itself off and says why, rather than failing the daemon, when no collector can be built', () => {
    const reasons: string[] = [];
    const ceiling = createHeapCeiling({
      headroomBytes: 3 * MiB,
      usedHeapBytes: () => 1e12,
      collector: () => {
        throw new Error('gc is not defined');
      },
      onUnavailable: (err) => reasons.push(err.message),
    });
    expect(reasons).toEqual(['gc is not defined']);
    expect(ceiling.afterPass()).toBe(false);
    expect(ceiling.ceilingBytes()).toBe(Infinity);
  });

  it("collects this process's real heap without node's --expose-gc", () => {
    const gc = fullCollection();
    let garbage: number[][] | undefined = Array.from({ length: 2000 }, () => new Array<number>(1000).fill(1.5));
    const before = getHeapStatistics().used_heap_size;
    garbage = undefined;
    gc();
    expect(garbage).toBeUndefined();
    expect(before - getHeapStatistics().used_heap_size).toBeGreaterThan(10 * MiB);
  });
});
