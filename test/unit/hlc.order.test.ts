import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareStamps, maxStamp, type HlcStamp } from '../../shared/domain/hlc.js';
import { stampArb } from './support/arbitraries.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

/** Code-unit (UTF-16) order, written out by hand as the oracle. */
function codeUnitOrder(a: string, b: string): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return Math.sign(d);
  }
  return Math.sign(a.length - b.length);
}

const sameFields = (a: HlcStamp, b: HlcStamp) =>
  a.wall === b.wall && a.logical === b.logical && a.region === b.region;

/** Two stamps that often share wall and/or logical. */
const closePairArb = fc
  .tuple(stampArb, stampArb, fc.constantFrom('wall', 'wall+logical', 'all', 'none'))
  .map(([a, b, share]): [HlcStamp, HlcStamp] => {
    switch (share) {
      case 'wall':
        return [a, { ...b, wall: a.wall }];
      case 'wall+logical':
        return [a, { ...b, wall: a.wall, logical: a.logical }];
      case 'all':
        return [a, { ...a }];
      case 'none':
        return [a, b];
    }
  });

describe('compareStamps', () => {
  it('when any two stamps are compared, then the result is -1, 0 or 1 and the reverse comparison mirrors it (antisymmetry, totality)', () => {
    fc.assert(
      fc.property(closePairArb, ([a, b]) => {
        const ab = compareStamps(a, b);
        const ba = compareStamps(b, a);
        expect([-1, 0, 1]).toContain(ab);
        expect(ba).toBe(ab === 0 ? 0 : -ab);
      }),
      fcRuns.params(200),
    );
  });

  it('when compareStamps returns 0, then the stamps are identical, and identical stamps compare 0', () => {
    fc.assert(
      fc.property(closePairArb, ([a, b]) => {
        expect(compareStamps(a, b) === 0).toBe(sameFields(a, b));
        expect(compareStamps(a, a)).toBe(0);
        expect(compareStamps(a, { ...a })).toBe(0);
      }),
      fcRuns.params(200),
    );
  });

  it('when a ≤ b and b ≤ c, then a ≤ c (transitivity), and strictly when either step is strict', () => {
    fc.assert(
      fc.property(stampArb, stampArb, stampArb, (x, y, z) => {
        const [a, b, c] = [x, y, z].sort(compareStamps) as [HlcStamp, HlcStamp, HlcStamp];
        expect(compareStamps(a, b)).toBeLessThanOrEqual(0);
        expect(compareStamps(b, c)).toBeLessThanOrEqual(0);
        expect(compareStamps(a, c)).toBeLessThanOrEqual(0);
        if (compareStamps(a, b) < 0 || compareStamps(b, c) < 0) expect(compareStamps(a, c)).toBe(-1);
        // Also check every orientation of the raw triple, without relying on sort.
        for (const [p, q, r] of [
          [x, y, z],
          [x, z, y],
          [y, x, z],
          [y, z, x],
          [z, x, y],
          [z, y, x],
        ] as const) {
          if (compareStamps(p, q) <= 0 && compareStamps(q, r) <= 0)
            expect(compareStamps(p, r)).toBeLessThanOrEqual(0);
        }
      }),
      fcRuns.params(200),
    );
  });

  it('when stamps are compared, then the order is lexicographic: wall, then logical, then region in code-unit order', () => {
    fc.assert(
      fc.property(closePairArb, ([a, b]) => {
        const expected =
          a.wall !== b.wall
            ? Math.sign(a.wall - b.wall)
            : a.logical !== b.logical
              ? Math.sign(a.logical - b.logical)
              : codeUnitOrder(a.region, b.region);
        expect(compareStamps(a, b)).toBe(expected);
      }),
      fcRuns.params(200),
    );
  });

  it('when region ids are arbitrary strings, then ties are broken by code units, not locale', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 6 }),
        fc.string({ unit: 'binary', maxLength: 6 }),
        (r1, r2) => {
          const a = { wall: 1, logical: 1, region: r1 };
          const b = { wall: 1, logical: 1, region: r2 };
          expect(compareStamps(a, b)).toBe(codeUnitOrder(r1, r2));
        },
      ),
      fcRuns.params(150),
    );
  });

  it('when the same set of stamps is sorted from any starting order, then the sorted sequence is the same', () => {
    fc.assert(
      fc.property(
        fc
          .array(stampArb, { maxLength: 12 })
          .chain((xs) => fc.tuple(fc.constant(xs), fc.shuffledSubarray(xs, { minLength: xs.length }))),
        ([xs, shuffled]) => {
          expect([...shuffled].sort(compareStamps)).toEqual([...xs].sort(compareStamps));
        },
      ),
      fcRuns.params(150),
    );
  });

  it('when examples are compared, then wall beats logical and logical beats region', () => {
    expect(compareStamps({ wall: 2, logical: 0, region: 'a' }, { wall: 1, logical: 99, region: 'zz' })).toBe(
      1,
    );
    expect(compareStamps({ wall: 1, logical: 2, region: 'a' }, { wall: 1, logical: 1, region: 'zz' })).toBe(
      1,
    );
    expect(compareStamps({ wall: 1, logical: 1, region: 'eu' }, { wall: 1, logical: 1, region: 'us' })).toBe(
      -1,
    );
    expect(
      compareStamps({ wall: 1, logical: 1, region: 'us' }, { wall: 1, logical: 1, region: 'us-east' }),
    ).toBe(-1);
    expect(
      compareStamps({ wall: 1, logical: 1, region: 'us-1' }, { wall: 1, logical: 1, region: 'us1' }),
    ).toBe(-1);
    expect(compareStamps({ wall: 1, logical: 1, region: 'b' }, { wall: 1, logical: 1, region: 'a-z' })).toBe(
      1,
    );
  });
});

describe('maxStamp', () => {
  it('when two stamps are given, then it returns one of them, not less than either', () => {
    fc.assert(
      fc.property(closePairArb, ([a, b]) => {
        const m = maxStamp(a, b);
        expect(m === a || m === b).toBe(true);
        expect(compareStamps(m, a)).toBeGreaterThanOrEqual(0);
        expect(compareStamps(m, b)).toBeGreaterThanOrEqual(0);
      }),
      fcRuns.params(150),
    );
  });

  it('when folded over stamps in any order and grouping, then the result is the same greatest stamp', () => {
    fc.assert(
      fc.property(
        fc.array(stampArb, { minLength: 1, maxLength: 10 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (xs, keys) => {
          const greatest = [...xs].sort(compareStamps).at(-1)!;
          const shuffled = xs
            .map((x, i) => ({ x, k: keys[i] ?? i }))
            .sort((p, q) => p.k - q.k)
            .map((p) => p.x);
          expect(compareStamps(shuffled.reduce(maxStamp), greatest)).toBe(0);
          expect(compareStamps(shuffled.reduceRight(maxStamp), greatest)).toBe(0);
          const [a, b, c] = [xs[0]!, xs[1] ?? xs[0]!, xs[2] ?? xs[0]!];
          expect(compareStamps(maxStamp(maxStamp(a, b), c), maxStamp(a, maxStamp(b, c)))).toBe(0);
        },
      ),
      fcRuns.params(150),
    );
  });
});
