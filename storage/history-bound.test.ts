import { describe, expect, it } from 'vitest';
import { DEFAULT_HISTORY_LIMIT, HistoryBound } from './history-bound.js';

describe('HistoryBound', () => {
  it('is due a count every tenth of the limit of rows written for one container', () => {
    const bound = new HistoryBound(100);
    expect(bound.checkEvery).toBe(10);
    const due = Array.from({ length: 30 }, () => bound.written('c1'));
    expect(due.map((d, i) => (d ? i + 1 : 0)).filter(Boolean)).toEqual([10, 20, 30]);
  });

  it('counts each container apart, and rows written together as many', () => {
    const bound = new HistoryBound(100);
    for (let i = 0; i < 9; i++) expect(bound.written('c1')).toBe(false);
    expect(bound.written('c2', 9)).toBe(false);
    expect(bound.written('c2', 3)).toBe(true);
    expect(bound.written('c1')).toBe(true);
  });

  it('forgets the least recently written of more than 10,000 containers, whose count starts again', () => {
    const bound = new HistoryBound(100);
    for (let i = 0; i < 9; i++) bound.written('old');
    for (let c = 0; c < 10_000; c++) bound.written(`c${c}`);
    expect(bound.written('old')).toBe(false);
  });

  it('deletes only what is past the limit, and nothing with limit 0', () => {
    expect(new HistoryBound(10).excess(25)).toBe(15);
    expect(new HistoryBound(10).excess(10)).toBe(0);
    const unbounded = new HistoryBound(0);
    expect(unbounded.excess(1_000_000)).toBe(0);
    expect(Array.from({ length: 1000 }, () => unbounded.written('c1')).some(Boolean)).toBe(false);
  });

  it('defaults to 1,000 rows, checked every 100, and refuses a limit that is not a whole number ≥ 0', () => {
    expect(new HistoryBound().limit).toBe(DEFAULT_HISTORY_LIMIT);
    expect(DEFAULT_HISTORY_LIMIT).toBe(1000);
    expect(new HistoryBound().checkEvery).toBe(100);
    expect(() => new HistoryBound(-1)).toThrow(RangeError);
    expect(() => new HistoryBound(1.5)).toThrow(/whole number/);
  });
});
