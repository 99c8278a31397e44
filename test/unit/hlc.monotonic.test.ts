import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ClockSkewError,
  HybridLogicalClock,
  compareStamps,
  maxStamp,
  type HlcStamp,
} from '../../shared/domain/hlc.js';
import { regionArb } from './support/arbitraries.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

/** A clock whose physical time the test sets by hand. */
function manualClock(region: string, start: number, maxSkewMs?: number) {
  let physical = start;
  const clock = new HybridLogicalClock(region, {
    physicalNow: () => physical,
    ...(maxSkewMs === undefined ? {} : { maxSkewMs }),
  });
  return {
    clock,
    get physical() {
      return physical;
    },
    set physical(ms: number) {
      physical = ms;
    },
  };
}

/** (wall, logical) order, ignoring the region: the clock's own position. */
function comparePosition(a: HlcStamp, b: HlcStamp): number {
  return a.wall !== b.wall ? Math.sign(a.wall - b.wall) : Math.sign(a.logical - b.logical);
}

type Op =
  | { readonly kind: 'now' }
  | { readonly kind: 'jump'; readonly to: number }
  | { readonly kind: 'step'; readonly by: number }
  | { readonly kind: 'observe'; readonly lead: number; readonly logical: number; readonly region: string }
  | {
      readonly kind: 'observeNear';
      readonly dWall: number;
      readonly dLogical: number;
      readonly region: string;
    };

const MAX_PHYSICAL = 4_000_000_000_000;

const opArb = (maxSkewMs: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.constant<Op>({ kind: 'now' }) },
    // The physical clock jumps anywhere, backwards included, or steps by a little either way.
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('jump' as const),
        to: fc.integer({ min: 0, max: MAX_PHYSICAL }),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({ kind: fc.constant('step' as const), by: fc.integer({ min: -1000, max: 1000 }) }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('observe' as const),
        // Lead of the observed stamp over the physical clock: around the skew limit, or anywhere.
        lead: fc.oneof(
          fc.integer({ min: -3, max: 3 }),
          fc.integer({ min: maxSkewMs - 2, max: maxSkewMs + 2 }),
          fc.integer({ min: -10_000_000, max: 2 * maxSkewMs + 10 }),
        ),
        logical: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.nat()),
        region: regionArb,
      }),
    },
    {
      // A stamp right next to the clock's own position: same wall, logical ±, or wall ±1.
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('observeNear' as const),
        dWall: fc.integer({ min: -1, max: 1 }),
        dLogical: fc.integer({ min: -2, max: 2 }),
        region: regionArb,
      }),
    },
  );

const scenarioArb = fc
  .record({
    region: regionArb,
    start: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: MAX_PHYSICAL })),
    maxSkewMs: fc.oneof(fc.constantFrom(0, 1, 60_000), fc.integer({ min: 0, max: 100_000 })),
  })
  .chain((s) => fc.array(opArb(s.maxSkewMs), { maxLength: 60 }).map((ops) => ({ ...s, ops })));

describe('HybridLogicalClock', () => {
  it('when now() and observe() interleave under an arbitrary, backwards-jumping physical clock, then the clock never goes backwards and now() exceeds everything issued or observed', () => {
    fc.assert(
      fc.property(scenarioArb, ({ region, start, maxSkewMs, ops }) => {
        const m = manualClock(region, start, maxSkewMs);
        const { clock } = m;
        let seen: HlcStamp | undefined; // greatest stamp issued or accepted so far (full total order)
        let lastIssued: HlcStamp | undefined;

        for (const op of ops) {
          const before = clock.peek();
          switch (op.kind) {
            case 'jump':
              m.physical = op.to;
              break;
            case 'step':
              m.physical = Math.max(0, m.physical + op.by);
              break;
            case 'now': {
              const physical = m.physical;
              const s = clock.now();
              expect(s.region).toBe(region);
              if (seen !== undefined) expect(compareStamps(s, seen)).toBe(1);
              if (lastIssued !== undefined) expect(compareStamps(s, lastIssued)).toBe(1);
              expect(s.wall).toBeGreaterThanOrEqual(physical);
              // The HLC rule exactly: wall = max(previous wall, physical); the counter restarts
              // only when the wall moved.
              if (physical > before.wall) expect(s).toEqual({ wall: physical, logical: 0, region });
              else expect(s).toEqual({ wall: before.wall, logical: before.logical + 1, region });
              expect(clock.peek()).toEqual(s);
              seen = seen === undefined ? s : maxStamp(seen, s);
              lastIssued = s;
              break;
            }
            case 'observe':
            case 'observeNear': {
              const stamp: HlcStamp =
                op.kind === 'observe'
                  ? { wall: m.physical + op.lead, logical: op.logical, region: op.region }
                  : {
                      wall: Math.max(0, before.wall + op.dWall),
                      logical: Math.max(0, before.logical + op.dLogical),
                      region: op.region,
                    };
              const tooFarAhead = stamp.wall - m.physical > maxSkewMs;
              if (tooFarAhead) {
                expect(() => clock.observe(stamp)).toThrow(ClockSkewError);
                expect(clock.peek()).toEqual(before);
              } else {
                clock.observe(stamp);
                const after = clock.peek();
                const expected = comparePosition(stamp, before) > 0 ? stamp : before;
                expect(after).toEqual({ wall: expected.wall, logical: expected.logical, region });
                seen = seen === undefined ? stamp : maxStamp(seen, stamp);
              }
              break;
            }
          }
          expect(comparePosition(clock.peek(), before)).toBeGreaterThanOrEqual(0);
          expect(clock.peek().region).toBe(region);
        }
      }),
      fcRuns.params(300),
    );
  });

  it('when the physical clock stands still or runs backwards, then now() keeps the wall and counts up', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: MAX_PHYSICAL }),
        fc.array(fc.integer({ min: -5000, max: 0 }), { minLength: 1, maxLength: 30 }),
        (start, drops) => {
          const m = manualClock('us', start);
          const first = m.clock.now();
          expect(first).toEqual({ wall: start, logical: 0, region: 'us' });
          drops.forEach((d, i) => {
            m.physical = Math.max(0, start + d);
            expect(m.clock.now()).toEqual({ wall: start, logical: i + 1, region: 'us' });
          });
        },
      ),
      fcRuns.params(150),
    );
  });

  it('when the physical clock moves past the wall, then now() takes the physical time and restarts the counter', () => {
    const m = manualClock('eu', 1000);
    expect(m.clock.now()).toEqual({ wall: 1000, logical: 0, region: 'eu' });
    expect(m.clock.now()).toEqual({ wall: 1000, logical: 1, region: 'eu' });
    m.physical = 900;
    expect(m.clock.now()).toEqual({ wall: 1000, logical: 2, region: 'eu' });
    m.physical = 1001;
    expect(m.clock.now()).toEqual({ wall: 1001, logical: 0, region: 'eu' });
  });

  it('when a stamp ahead of the clock is observed, then the next now() is past it even with a lower region id', () => {
    const m = manualClock('us', 1000);
    m.clock.now();
    m.clock.observe({ wall: 1500, logical: 7, region: 'zz' });
    expect(m.clock.peek()).toEqual({ wall: 1500, logical: 7, region: 'us' });
    const next = m.clock.now();
    expect(next).toEqual({ wall: 1500, logical: 8, region: 'us' });
    expect(compareStamps(next, { wall: 1500, logical: 7, region: 'zz' })).toBe(1);
  });

  it('when a stamp equal to the clock position from a greater region id is observed, then the next now() is still past it', () => {
    const m = manualClock('a', 1000);
    const s = m.clock.now();
    const peer = { wall: s.wall, logical: s.logical, region: 'zz' };
    m.clock.observe(peer);
    expect(compareStamps(m.clock.now(), peer)).toBe(1);
  });

  it('when a stamp behind the clock is observed, then the clock does not move', () => {
    const m = manualClock('us', 5000);
    m.clock.now();
    m.clock.now();
    const before = m.clock.peek();
    m.clock.observe({ wall: 4000, logical: 99, region: 'eu' });
    m.clock.observe({ wall: 5000, logical: 0, region: 'eu' });
    expect(m.clock.peek()).toEqual(before);
  });

  it('when no physical clock is given, then Date.now is used', () => {
    const clock = new HybridLogicalClock('us');
    const lo = Date.now();
    const s = clock.now();
    const hi = Date.now();
    expect(s.wall).toBeGreaterThanOrEqual(lo);
    expect(s.wall).toBeLessThanOrEqual(hi);
    expect(s.region).toBe('us');
    expect(clock.region).toBe('us');
  });

  it('when a clock is new, then peek() is the zero stamp of its region', () => {
    expect(new HybridLogicalClock('ap', { physicalNow: () => 42 }).peek()).toEqual({
      wall: 0,
      logical: 0,
      region: 'ap',
    });
  });
});
