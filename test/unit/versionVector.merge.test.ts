import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Causality,
  compareVectors,
  mergeVectors,
  type VersionVector,
} from '../../shared/domain/versionVector.js';
import { REGION_PATTERN, vectorArb } from './support/arbitraries.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

const count = (v: VersionVector, r: string) => (Object.hasOwn(v, r) ? v[r]! : 0);
const keysOf = (...vs: VersionVector[]) => [...new Set(vs.flatMap((v) => Object.keys(v)))];
const isSorted = (keys: string[]) => keys.every((k, i) => i === 0 || keys[i - 1]! < k);
const dominatesOrEquals = (a: VersionVector, b: VersionVector) =>
  [Causality.After, Causality.Equal].includes(compareVectors(a, b) as 'after' | 'equal');

describe('mergeVectors', () => {
  it('when two vectors are merged in either order, then the result is the same (commutative)', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, (a, b) => {
        expect(mergeVectors(a, b)).toEqual(mergeVectors(b, a));
        expect(Object.keys(mergeVectors(a, b))).toEqual(Object.keys(mergeVectors(b, a)));
      }),
      fcRuns.params(200),
    );
  });

  it('when three vectors are merged with either grouping, then the result is the same (associative)', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, vectorArb, (a, b, c) => {
        expect(mergeVectors(mergeVectors(a, b), c)).toEqual(mergeVectors(a, mergeVectors(b, c)));
      }),
      fcRuns.params(200),
    );
  });

  it('when a vector is merged with itself or an equivalent vector, then nothing is gained (idempotent)', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, (a, b) => {
        const m = mergeVectors(a, b);
        expect(compareVectors(mergeVectors(a, a), a)).toBe(Causality.Equal);
        expect(mergeVectors(m, m)).toEqual(m);
        expect(mergeVectors(m, a)).toEqual(m);
        expect(mergeVectors(m, b)).toEqual(m);
      }),
      fcRuns.params(200),
    );
  });

  it('when two vectors are merged, then the result dominates or equals each input', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, (a, b) => {
        const m = mergeVectors(a, b);
        expect(dominatesOrEquals(m, a)).toBe(true);
        expect(dominatesOrEquals(m, b)).toBe(true);
      }),
      fcRuns.params(200),
    );
  });

  it('when two vectors are merged, then every entry is the pointwise maximum', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, (a, b) => {
        const m = mergeVectors(a, b);
        for (const r of keysOf(a, b, m)) expect(count(m, r)).toBe(Math.max(count(a, r), count(b, r)));
      }),
      fcRuns.params(200),
    );
  });

  it('when a vector dominates both inputs, then it dominates or equals their merge (least upper bound)', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, vectorArb, (a, b, extra) => {
        // An upper bound of a and b built by hand: at least max(a, b) in every entry.
        const upper: VersionVector = Object.fromEntries(
          keysOf(a, b, extra).map((r) => [r, Math.max(count(a, r), count(b, r)) + count(extra, r)]),
        );
        expect(dominatesOrEquals(upper, a) && dominatesOrEquals(upper, b)).toBe(true);
        expect(dominatesOrEquals(upper, mergeVectors(a, b))).toBe(true);
      }),
      fcRuns.params(150),
    );
  });

  it('when one input dominates or equals the other, then the merge is equivalent to it', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, (a, b) => {
        const c = compareVectors(a, b);
        const m = mergeVectors(a, b);
        if (c === Causality.After || c === Causality.Equal)
          expect(compareVectors(m, a)).toBe(Causality.Equal);
        if (c === Causality.Before || c === Causality.Equal)
          expect(compareVectors(m, b)).toBe(Causality.Equal);
        if (c === Causality.Concurrent) {
          expect(compareVectors(m, a)).toBe(Causality.After);
          expect(compareVectors(m, b)).toBe(Causality.After);
        }
      }),
      fcRuns.params(200),
    );
  });

  it('when vectors are merged, then the result is canonical (sorted keys, no zero entries), a plain object, and the inputs are untouched', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, (a, b) => {
        const [a0, b0] = [structuredClone(a), structuredClone(b)];
        const m = mergeVectors(a, b);
        expect(isSorted(Object.keys(m))).toBe(true);
        expect(Object.values(m).every((n) => Number.isSafeInteger(n) && n > 0)).toBe(true);
        expect(Object.getPrototypeOf(m)).toBe(Object.prototype);
        expect(a).toStrictEqual(a0);
        expect(b).toStrictEqual(b0);
      }),
      fcRuns.params(150),
    );
  });

  it('when any number of vectors are merged in any order, then the result is the same', () => {
    fc.assert(
      fc.property(
        fc
          .array(vectorArb, { maxLength: 8 })
          .chain((vs) => fc.tuple(fc.constant(vs), fc.shuffledSubarray(vs, { minLength: vs.length }))),
        ([vs, shuffled]) => {
          expect(shuffled.reduce(mergeVectors, {})).toEqual(vs.reduce(mergeVectors, {}));
          expect(vs.reduceRight(mergeVectors, {})).toEqual(vs.reduce(mergeVectors, {}));
        },
      ),
      fcRuns.params(150),
    );
  });

  it('when examples are merged, then the result is the sorted pointwise maximum without zeros', () => {
    expect(mergeVectors({ us: 2, eu: 1 }, { eu: 3, ap: 0 })).toEqual({ eu: 3, us: 2 });
    expect(Object.keys(mergeVectors({ us: 2, eu: 1 }, { ap: 1 }))).toEqual(['ap', 'eu', 'us']);
    expect(mergeVectors({}, {})).toEqual({});
    expect(mergeVectors({ us: 0 }, {})).toEqual({});
  });

  // Legal region ids that are also Object.prototype property names (today: `constructor`).
  it.each(Object.getOwnPropertyNames(Object.prototype).filter((r) => REGION_PATTERN.test(r)))(
    'when a region id is also an Object.prototype name (%s), then its count is merged like any other',
    (r) => {
      expect(mergeVectors({ [r]: 2 }, { us: 1 })).toEqual({ [r]: 2, us: 1 });
      expect(mergeVectors({ us: 1 }, { [r]: 2 })).toEqual({ [r]: 2, us: 1 });
      expect(mergeVectors({ [r]: 2 }, { [r]: 5 })).toEqual({ [r]: 5 });
    },
  );
});
