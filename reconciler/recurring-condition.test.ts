import { describe, expect, it } from 'vitest';
import { RecurringCondition } from './recurring-condition.js';

describe('RecurringCondition', () => {
  it('asks for a line at the first occurrence and then once per repeat interval', () => {
    const c = new RecurringCondition(600_000);
    expect(c.occurred(0)).toEqual({ occurrences: 1, for_s: 0 });
    expect(c.occurred(10_000)).toBeUndefined();
    expect(c.occurred(599_999)).toBeUndefined();
    expect(c.occurred(600_000)).toEqual({ occurrences: 4, for_s: 600 });
    expect(c.occurred(610_000)).toBeUndefined();
  });

  it('says how long the condition held when it ends, once', () => {
    const c = new RecurringCondition(600_000);
    c.occurred(5_000);
    c.occurred(15_000);
    c.occurred(25_000);
    expect(c.ended(35_000)).toEqual({ occurrences: 3, for_s: 30 });
    expect(c.ended(45_000)).toBeUndefined();
  });

  it('starts over after it ends: the next occurrence is logged at once', () => {
    const c = new RecurringCondition(600_000);
    c.occurred(0);
    c.ended(10_000);
    expect(c.occurred(20_000)).toEqual({ occurrences: 1, for_s: 0 });
  });

  it('has nothing to say when it ends without having occurred', () => {
    expect(new RecurringCondition().ended(1_000)).toBeUndefined();
  });

  it('asks for a line at the first occurrence of each new cause, once each while it lasts', () => {
    const c = new RecurringCondition(600_000);
    expect(c.occurred(0, 'ERR_UNREACHABLE')).toEqual({ occurrences: 1, for_s: 0 });
    expect(c.occurred(10_000, 'ERR_UNREACHABLE')).toBeUndefined();
    expect(c.occurred(20_000, 'ERR_GARBAGE')).toEqual({ occurrences: 3, for_s: 20 });
    expect(c.occurred(30_000, 'ERR_UNREACHABLE')).toBeUndefined();
    expect(c.occurred(40_000, 'ERR_GARBAGE')).toBeUndefined();
    c.ended(50_000);
    expect(c.occurred(60_000, 'ERR_UNREACHABLE')).toEqual({ occurrences: 1, for_s: 0 });
    expect(c.occurred(70_000, 'ERR_GARBAGE')).toEqual({ occurrences: 2, for_s: 10 });
  });
});
