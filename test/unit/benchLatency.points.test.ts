/**
 * The rates the bench's #2 (write latency) measures: a full run both 50 % of pgbench's max and 50 %
 * of hothot's own (the target's point); a quick run only the target's, unless hothot's max is unknown.
 */
import { describe, expect, it } from 'vitest';
import { latencyBases } from '../../bench/scenarios/writeLatency.js';

describe('#2 latency points', () => {
  it('measures both points in a full run, the peer-based one first', () => {
    expect(latencyBases(false, 1799, 482)).toEqual([
      { basis: 'pgbench max', rate: 900 },
      { basis: 'hothot max', rate: 241 },
    ]);
  });

  it("measures only the target's point in a quick run", () => {
    expect(latencyBases(true, 1799, 482)).toEqual([{ basis: 'hothot max', rate: 241 }]);
  });

  it("falls back to pgbench's point when hothot's max is unknown", () => {
    for (const unknown of [Number.NaN, 0])
      expect(latencyBases(true, 1799, unknown)).toEqual([{ basis: 'pgbench max', rate: 900 }]);
    expect(latencyBases(false, 1799, Number.NaN)).toEqual([{ basis: 'pgbench max', rate: 900 }]);
  });
});
