import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import {
  counterValue,
  EMPTY_COUNTERS,
  incrementCounter,
  isCounterFieldExact,
  isCounterState,
  mergeCounters,
  type CounterState,
} from '../../shared/domain/policies/counterState.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);
// Properties take seconds on a busy two-core machine; a soak run (FC_NUM_RUNS) sets its own limit.
if (!process.env.FC_NUM_RUNS?.trim()) vi.setConfig({ testTimeout: 30_000 });

const plain = { noNullPrototype: true } as const;
const REGIONS = ['us', 'eu', 'ap'] as const;
const FIELDS = ['x', 'y', 'likes'] as const;

/** Any counter state: field → region → grow-only totals. */
const stateArb: fc.Arbitrary<CounterState> = fc
  .array(
    fc.tuple(
      fc.constantFrom(...FIELDS),
      fc.constantFrom(...REGIONS),
      fc.record({ p: fc.nat(20), n: fc.nat(20) }, plain),
    ),
    { maxLength: 8 },
  )
  .map((entries) => {
    const counters: Record<string, Record<string, { p: number; n: number }>> = {};
    for (const [f, r, e] of entries) (counters[f] ??= {})[r] = e;
    return { counters };
  });

/** One increment: region, field, amount (negative too). */
const incrementArb = fc.record({
  region: fc.constantFrom(...REGIONS),
  field: fc.constantFrom(...FIELDS),
  by: fc.integer({ min: -5, max: 10 }),
});

describe('counterState (merge is a join)', () => {
  it('when two states are merged in either order, then the result is the same (commutative)', () => {
    fc.assert(
      fc.property(stateArb, stateArb, (a, b) => {
        expect(mergeCounters(a, b)).toEqual(mergeCounters(b, a));
      }),
      fcRuns.params(500),
    );
  });

  it('when three states are merged in either grouping, then the result is the same (associative)', () => {
    fc.assert(
      fc.property(stateArb, stateArb, stateArb, (a, b, c) => {
        expect(mergeCounters(mergeCounters(a, b), c)).toEqual(mergeCounters(a, mergeCounters(b, c)));
      }),
      fcRuns.params(500),
    );
  });

  it('when a state is merged with itself or with a state it includes, then its value does not change (idempotent, absorbing)', () => {
    fc.assert(
      fc.property(stateArb, stateArb, (a, b) => {
        expect(mergeCounters(a, a)).toEqual(a);
        const ab = mergeCounters(a, b);
        expect(mergeCounters(ab, a)).toEqual(ab);
        expect(isCounterState(ab)).toBe(true);
      }),
      fcRuns.params(500),
    );
  });
});

describe('counterState (increments)', () => {
  it('when every region increments its own copy concurrently, then merging the copies in any order, with duplicates, adds up every increment exactly', () => {
    fc.assert(
      fc.property(
        fc.array(incrementArb, { maxLength: 10 }),
        fc.array(incrementArb, { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (before, concurrent, order) => {
          // A shared history, then each region increments its own copy without hearing from the others.
          const base = before.reduce((s, i) => incrementCounter(s, i.region, i.field, i.by), EMPTY_COUNTERS);
          const copies = REGIONS.map((r) =>
            concurrent
              .filter((i) => i.region === r)
              .reduce((s, i) => incrementCounter(s, r, i.field, i.by), base),
          );
          const deliveries = [...copies, ...order.map((k) => copies[k % copies.length]!)]
            .map((s, j) => ({ s, key: order[j] ?? j, j }))
            .sort((a, b) => a.key - b.key || a.j - b.j)
            .map((x) => x.s);
          const merged = deliveries.reduce(mergeCounters, EMPTY_COUNTERS);
          const expected: Record<string, number> = {};
          for (const i of [...before, ...concurrent]) expected[i.field] = (expected[i.field] ?? 0) + i.by;
          expect(counterValue(merged)).toEqual(expected);
        },
      ),
      fcRuns.params(500),
    );
  });

  it('when a counter is incremented and decremented, then increments count in p, decrements in n, and the value is their difference', () => {
    let s = incrementCounter(EMPTY_COUNTERS, 'us', 'x', 5);
    s = incrementCounter(s, 'us', 'x', -2);
    s = incrementCounter(s, 'eu', 'x', -4);
    s = incrementCounter(s, 'us', 'y', 0);
    expect(s.counters).toEqual({ x: { us: { p: 5, n: 2 }, eu: { p: 0, n: 4 } }, y: { us: { p: 0, n: 0 } } });
    expect(counterValue(s)).toEqual({ x: -1, y: 0 });
  });

  it('when an older copy of a region’s counters is merged in, then nothing is lost (entries only grow)', () => {
    fc.assert(
      fc.property(fc.array(incrementArb, { minLength: 1, maxLength: 15 }), fc.nat(), (incs, cut) => {
        const states = [EMPTY_COUNTERS];
        for (const i of incs) states.push(incrementCounter(states.at(-1)!, i.region, i.field, i.by));
        const last = states.at(-1)!;
        const older = states[cut % states.length]!;
        expect(mergeCounters(last, older)).toEqual(mergeCounters(last, last));
        expect(counterValue(mergeCounters(older, last))).toEqual(counterValue(last));
      }),
      fcRuns.params(300),
    );
  });

  it('when incrementing, then the input state is left unchanged', () => {
    const s = incrementCounter(EMPTY_COUNTERS, 'us', 'x', 1);
    const copy = structuredClone(s);
    incrementCounter(s, 'us', 'x', 3);
    incrementCounter(s, 'eu', 'x', 3);
    expect(s).toEqual(copy);
    expect(EMPTY_COUNTERS).toEqual({ counters: {} });
  });
});

describe('counterState (field names)', () => {
  it('when a counter field is named "__proto__", then its increments survive merges like any other', () => {
    const us = incrementCounter(EMPTY_COUNTERS, 'us', '__proto__', 2);
    const eu = incrementCounter(EMPTY_COUNTERS, 'eu', '__proto__', 3);
    for (const m of [mergeCounters(us, eu), mergeCounters(eu, us)]) {
      expect(JSON.stringify(counterValue(m))).toBe('{"__proto__":5}');
      expect(Object.getPrototypeOf(m.counters)).toBe(Object.prototype);
    }
  });
});

describe('counterState (exact range)', () => {
  const max = Number.MAX_SAFE_INTEGER;
  it('when a field and its entries stay within ±(2^53 − 1), then it is exact; one past, in an entry or the total, it is not', () => {
    const at = (p: number, n = 0) =>
      incrementCounter(incrementCounter(EMPTY_COUNTERS, 'us', 'f', p), 'us', 'f', -n);
    expect(isCounterFieldExact(EMPTY_COUNTERS, 'f')).toBe(true);
    expect(isCounterFieldExact(at(max), 'f')).toBe(true);
    expect(isCounterFieldExact(at(max, max), 'f')).toBe(true);
    expect(isCounterFieldExact(incrementCounter(at(max), 'us', 'f', 1), 'f')).toBe(false);
    expect(isCounterFieldExact(incrementCounter(at(max), 'eu', 'f', 1), 'f')).toBe(false);
    expect(isCounterFieldExact(incrementCounter(at(0, max), 'eu', 'f', -1), 'f')).toBe(false);
    // Another field does not matter.
    expect(isCounterFieldExact(incrementCounter(at(max), 'us', 'g', 1), 'g')).toBe(true);
  });
});
