import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClockSkewError, HybridLogicalClock, formatStamp, type HlcStamp } from '../../shared/domain/hlc.js';
import { regionArb } from './support/arbitraries.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

const physicalArb = fc.integer({ min: 0, max: 4_000_000_000_000 });
const maxSkewArb = fc.oneof(fc.constantFrom(0, 1, 60_000), fc.integer({ min: 0, max: 1_000_000 }));

function caught(f: () => void): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('HybridLogicalClock.observe (skew limit)', () => {
  it('when an observed stamp leads the physical clock by more than maxSkewMs, then it throws ClockSkewError and leaves the clock unchanged', () => {
    fc.assert(
      fc.property(
        physicalArb,
        maxSkewArb,
        fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 1_000_000_000 })),
        fc.nat(),
        regionArb,
        fc.array(fc.oneof(fc.constant(0), fc.integer({ min: -2000, max: 2000 })), { maxLength: 5 }),
        (physical, maxSkewMs, excess, logical, peer, warmup) => {
          let now = physical;
          const clock = new HybridLogicalClock('us', { physicalNow: () => now, maxSkewMs });
          for (const d of warmup) {
            now = Math.max(0, physical + d);
            clock.now();
          }
          now = physical;
          const before = clock.peek();
          const stamp: HlcStamp = { wall: physical + maxSkewMs + excess, logical, region: peer };

          const error = caught(() => clock.observe(stamp));

          expect(error).toBeInstanceOf(ClockSkewError);
          expect(error).toBeInstanceOf(Error);
          const skew = error as ClockSkewError;
          expect(skew.name).toBe('ClockSkewError');
          expect(skew.stamp).toBe(stamp);
          expect(skew.physicalMs).toBe(physical);
          expect(skew.maxSkewMs).toBe(maxSkewMs);
          expect(skew.message).toContain(formatStamp(stamp));
          expect(skew.message).toContain(`${maxSkewMs + excess} ms ahead`);
          expect(clock.peek()).toEqual(before);
        },
      ),
      fcRuns.params(150),
    );
  });

  it('when an observed stamp leads the physical clock by exactly maxSkewMs or less, then it is accepted and the clock moves to it', () => {
    fc.assert(
      fc.property(
        physicalArb,
        maxSkewArb,
        fc.nat(),
        regionArb,
        fc.boolean(),
        (physical, maxSkewMs, logical, peer, exact) => {
          const clock = new HybridLogicalClock('us', { physicalNow: () => physical, maxSkewMs });
          const lead = exact ? maxSkewMs : Math.floor(maxSkewMs / 2);
          const stamp: HlcStamp = { wall: physical + lead, logical, region: peer };
          expect(() => clock.observe(stamp)).not.toThrow();
          expect(clock.peek()).toEqual({ wall: stamp.wall, logical, region: 'us' });
        },
      ),
      fcRuns.params(150),
    );
  });

  it('when an observed stamp is behind the physical clock by any amount, then it is accepted', () => {
    fc.assert(
      fc.property(physicalArb, maxSkewArb, fc.nat(), fc.nat(), (physical, maxSkewMs, behind, logical) => {
        const clock = new HybridLogicalClock('us', { physicalNow: () => physical, maxSkewMs });
        expect(() => clock.observe({ wall: physical - behind, logical, region: 'eu' })).not.toThrow();
      }),
      fcRuns.params(150),
    );
  });

  it('when rejected stamps are observed, then the clock issues exactly the stamps a clock that never saw them would issue', () => {
    fc.assert(
      fc.property(
        physicalArb,
        maxSkewArb,
        fc.array(
          fc.oneof(
            fc.record({ kind: fc.constant('now' as const), dt: fc.integer({ min: -100, max: 100 }) }),
            fc.record({
              kind: fc.constant('reject' as const),
              excess: fc.integer({ min: 1, max: 1_000_000 }),
              logical: fc.nat(),
            }),
          ),
          { maxLength: 40 },
        ),
        (start, maxSkewMs, ops) => {
          let t = start;
          const physicalNow = () => t;
          const probed = new HybridLogicalClock('us', { physicalNow, maxSkewMs });
          const control = new HybridLogicalClock('us', { physicalNow, maxSkewMs });
          for (const op of ops) {
            if (op.kind === 'now') {
              t = Math.max(0, t + op.dt);
              expect(probed.now()).toEqual(control.now());
            } else {
              const stamp = { wall: t + maxSkewMs + op.excess, logical: op.logical, region: 'eu' };
              expect(() => probed.observe(stamp)).toThrow(ClockSkewError);
            }
            expect(probed.peek()).toEqual(control.peek());
          }
        },
      ),
      fcRuns.params(150),
    );
  });

  it('when maxSkewMs is not given, then the limit is 60 000 ms: +60 000 is accepted and +60 001 refused', () => {
    const clock = new HybridLogicalClock('us', { physicalNow: () => 1_000_000 });
    expect(clock.maxSkewMs).toBe(60_000);
    expect(() => clock.observe({ wall: 1_060_001, logical: 0, region: 'eu' })).toThrow(ClockSkewError);
    expect(clock.peek()).toEqual({ wall: 0, logical: 0, region: 'us' });
    expect(() => clock.observe({ wall: 1_060_000, logical: 3, region: 'eu' })).not.toThrow();
    expect(clock.peek()).toEqual({ wall: 1_060_000, logical: 3, region: 'us' });
  });

  it('when maxSkewMs is 0, then only stamps at or behind the physical clock are accepted', () => {
    const clock = new HybridLogicalClock('us', { physicalNow: () => 500, maxSkewMs: 0 });
    expect(() => clock.observe({ wall: 501, logical: 0, region: 'eu' })).toThrow(ClockSkewError);
    expect(() => clock.observe({ wall: 500, logical: 9, region: 'eu' })).not.toThrow();
    expect(clock.peek()).toEqual({ wall: 500, logical: 9, region: 'us' });
  });

  it('when the physical clock catches up, then a stamp refused earlier is accepted', () => {
    let t = 1000;
    const clock = new HybridLogicalClock('us', { physicalNow: () => t, maxSkewMs: 100 });
    const stamp = { wall: 1200, logical: 0, region: 'eu' };
    expect(() => clock.observe(stamp)).toThrow(ClockSkewError);
    t = 1100;
    expect(() => clock.observe(stamp)).not.toThrow();
    expect(clock.now()).toEqual({ wall: 1200, logical: 1, region: 'us' });
  });

  it('when the skew check runs, then it compares with the physical clock, not with the clock already advanced by earlier stamps', () => {
    const clock = new HybridLogicalClock('us', { physicalNow: () => 1000, maxSkewMs: 100 });
    clock.observe({ wall: 1100, logical: 0, region: 'eu' });
    expect(() => clock.observe({ wall: 1150, logical: 0, region: 'eu' })).toThrow(ClockSkewError);
    expect(clock.peek()).toEqual({ wall: 1100, logical: 0, region: 'us' });
  });

  it('when a ClockSkewError is raised, then its message names the peer region and says to check NTP', () => {
    const clock = new HybridLogicalClock('us', { physicalNow: () => 1000, maxSkewMs: 10 });
    const error = caught(() => clock.observe({ wall: 1500, logical: 2, region: 'ap' }));
    expect(error).toBeInstanceOf(ClockSkewError);
    expect((error as Error).message).toMatch(
      /1500\.2\.ap from region ap is 500 ms ahead .*maximum skew 10 ms.*NTP/,
    );
  });
});
