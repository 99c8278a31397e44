import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Causality,
  compareVectors,
  incrementVector,
  mergeVectors,
  type VersionVector,
} from '../../shared/domain/versionVector.js';
import { REGION_PATTERN, regionArb, vectorArb } from './support/arbitraries.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

const count = (v: VersionVector, r: string) => (Object.hasOwn(v, r) ? v[r]! : 0);

describe('incrementVector', () => {
  it('when a vector is incremented for a region, then the result is After the original', () => {
    fc.assert(
      fc.property(vectorArb, regionArb, (v, r) => {
        const next = incrementVector(v, r);
        expect(compareVectors(next, v)).toBe(Causality.After);
        expect(compareVectors(v, next)).toBe(Causality.Before);
      }),
      fcRuns.params(200),
    );
  });

  it('when a vector is incremented for a region, then only that region count rises, by exactly one', () => {
    fc.assert(
      fc.property(vectorArb, regionArb, (v, r) => {
        const before = structuredClone(v);
        const next = incrementVector(v, r);
        expect(count(next, r)).toBe(count(v, r) + 1);
        for (const k of new Set([...Object.keys(v), ...Object.keys(next)]))
          if (k !== r) expect(count(next, k)).toBe(count(v, k));
        expect(Object.keys(next)).toEqual(Object.keys(next).sort());
        expect(v).toStrictEqual(before);
      }),
      fcRuns.params(200),
    );
  });

  it('when a vector the writer already saw is incremented, then the result is After everything merged into it', () => {
    fc.assert(
      fc.property(fc.array(vectorArb, { minLength: 1, maxLength: 5 }), regionArb, (seen, r) => {
        const next = incrementVector(seen.reduce(mergeVectors, {}), r);
        for (const s of seen) expect(compareVectors(next, s)).toBe(Causality.After);
      }),
      fcRuns.params(150),
    );
  });

  it('when two different regions increment the same vector, then the two results are Concurrent and their merge is After both', () => {
    fc.assert(
      fc.property(vectorArb, fc.uniqueArray(regionArb, { minLength: 2, maxLength: 2 }), (v, [r1, r2]) => {
        const a = incrementVector(v, r1!);
        const b = incrementVector(v, r2!);
        expect(compareVectors(a, b)).toBe(Causality.Concurrent);
        expect(compareVectors(mergeVectors(a, b), a)).toBe(Causality.After);
        expect(compareVectors(mergeVectors(a, b), b)).toBe(Causality.After);
      }),
      fcRuns.params(150),
    );
  });

  it('when a region increments n times, then its count is n more', () => {
    fc.assert(
      fc.property(vectorArb, regionArb, fc.integer({ min: 1, max: 20 }), (v, r, n) => {
        let x = v;
        for (let i = 0; i < n; i++) x = incrementVector(x, r);
        expect(count(x, r)).toBe(count(v, r) + n);
      }),
      fcRuns.params(150),
    );
  });

  it('when examples are incremented, then a missing or zero entry becomes 1', () => {
    expect(incrementVector({}, 'us')).toEqual({ us: 1 });
    expect(incrementVector({ us: 0 }, 'us')).toEqual({ us: 1 });
    expect(incrementVector({ us: 3, eu: 1 }, 'eu')).toEqual({ eu: 2, us: 3 });
  });

  // Legal region ids that are also Object.prototype property names (today: `constructor`).
  it.each(Object.getOwnPropertyNames(Object.prototype).filter((r) => REGION_PATTERN.test(r)))(
    'when the region id is also an Object.prototype name (%s), then its count starts at 1',
    (r) => {
      expect(incrementVector({}, r)).toEqual({ [r]: 1 });
      expect(incrementVector({ [r]: 1 }, r)).toEqual({ [r]: 2 });
      expect(compareVectors(incrementVector({}, r), {})).toBe('after');
    },
  );
});
