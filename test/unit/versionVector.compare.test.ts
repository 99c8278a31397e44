import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Causality,
  canonicalVector,
  compareVectors,
  mergeVectors,
  type VersionVector,
} from '../../shared/domain/versionVector.js';
import { REGION_PATTERN, canonicalVectorArb, regionArb, vectorArb } from './support/arbitraries.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

const count = (v: VersionVector, r: string) => (Object.hasOwn(v, r) ? v[r]! : 0);
const keysOf = (...vs: VersionVector[]) => [...new Set(vs.flatMap((v) => Object.keys(v)))];

/** The definition, written out as the oracle. */
function oracle(a: VersionVector, b: VersionVector): Causality {
  const keys = keysOf(a, b);
  const aAhead = keys.some((r) => count(a, r) > count(b, r));
  const bAhead = keys.some((r) => count(b, r) > count(a, r));
  return aAhead && bAhead ? 'concurrent' : aAhead ? 'after' : bAhead ? 'before' : 'equal';
}

const MIRROR: Record<Causality, Causality> = {
  equal: 'equal',
  before: 'after',
  after: 'before',
  concurrent: 'concurrent',
};

/** Pairs that are often related: b derived from a by raising, lowering or zeroing some entries. */
const relatedPairArb = fc.oneof(
  fc.tuple(vectorArb, vectorArb),
  fc
    .tuple(vectorArb, fc.array(fc.tuple(regionArb, fc.integer({ min: -2, max: 2 })), { maxLength: 3 }))
    .map(([a, edits]): [VersionVector, VersionVector] => {
      const b: Record<string, number> = { ...a };
      for (const [r, d] of edits) b[r] = Math.max(0, count(b, r) + d);
      return [a, b];
    }),
);

/** `v` with zero entries added for some regions it does not count. */
const withZerosArb = (v: VersionVector) =>
  fc.array(regionArb, { maxLength: 3 }).map((rs) => {
    const out: Record<string, number> = { ...v };
    for (const r of rs) if (count(out, r) === 0) out[r] = 0;
    return out;
  });

describe('compareVectors', () => {
  it('when two vectors are compared, then the result follows the pointwise definition', () => {
    fc.assert(
      fc.property(relatedPairArb, ([a, b]) => {
        expect(compareVectors(a, b)).toBe(oracle(a, b));
      }),
      fcRuns.params(200),
    );
  });

  it('when two vectors are compared both ways, then the results mirror each other', () => {
    fc.assert(
      fc.property(relatedPairArb, ([a, b]) => {
        expect(compareVectors(b, a)).toBe(MIRROR[compareVectors(a, b)]);
      }),
      fcRuns.params(200),
    );
  });

  it('when a vector is compared with itself or a copy with its keys in another order, then it is Equal', () => {
    fc.assert(
      fc.property(vectorArb, (a) => {
        expect(compareVectors(a, a)).toBe(Causality.Equal);
        expect(compareVectors(a, Object.fromEntries(Object.entries(a).reverse()))).toBe(Causality.Equal);
      }),
      fcRuns.params(150),
    );
  });

  it('when a ≤ b and b ≤ c, then a ≤ c (dominance is transitive)', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, vectorArb, (a, x, y) => {
        const b = mergeVectors(a, x);
        const c = mergeVectors(b, y);
        expect(['before', 'equal']).toContain(compareVectors(a, b));
        expect(['before', 'equal']).toContain(compareVectors(b, c));
        expect(['before', 'equal']).toContain(compareVectors(a, c));
        if (compareVectors(a, b) === 'before' || compareVectors(b, c) === 'before')
          expect(compareVectors(a, c)).toBe('before');
      }),
      fcRuns.params(150),
    );
  });

  it('when zero entries are added to or removed from a vector, then it compares exactly as before against anything', () => {
    fc.assert(
      fc.property(
        vectorArb.chain((a) => fc.tuple(fc.constant(a), withZerosArb(a))),
        vectorArb,
        ([a, aZeros], other) => {
          expect(compareVectors(a, aZeros)).toBe(Causality.Equal);
          expect(compareVectors(aZeros, canonicalVector(a))).toBe(Causality.Equal);
          expect(compareVectors(aZeros, other)).toBe(compareVectors(a, other));
          expect(compareVectors(other, aZeros)).toBe(compareVectors(other, a));
          expect(compareVectors(canonicalVector(a), other)).toBe(compareVectors(a, other));
        },
      ),
      fcRuns.params(150),
    );
  });

  it('when two vectors are Equal, then their canonical forms are identical, and only then', () => {
    fc.assert(
      fc.property(relatedPairArb, ([a, b]) => {
        const same = JSON.stringify(canonicalVector(a)) === JSON.stringify(canonicalVector(b));
        expect(compareVectors(a, b) === Causality.Equal).toBe(same);
      }),
      fcRuns.params(200),
    );
  });

  it('when examples are compared, then missing entries count as zero', () => {
    expect(compareVectors({}, {})).toBe('equal');
    expect(compareVectors({ us: 0 }, {})).toBe('equal');
    expect(compareVectors({ us: 0 }, { eu: 0 })).toBe('equal');
    expect(compareVectors({ us: 1 }, {})).toBe('after');
    expect(compareVectors({}, { us: 1 })).toBe('before');
    expect(compareVectors({ us: 1, eu: 0 }, { eu: 1 })).toBe('concurrent');
    expect(compareVectors({ us: 2, eu: 1 }, { us: 1, eu: 2 })).toBe('concurrent');
    expect(compareVectors({ us: 2, eu: 2 }, { us: 1, eu: 2 })).toBe('after');
  });

  // Legal region ids that are also Object.prototype property names (today: `constructor`).
  it.each(Object.getOwnPropertyNames(Object.prototype).filter((r) => REGION_PATTERN.test(r)))(
    'when a region id is also an Object.prototype name (%s), then a missing entry still counts as zero',
    (r) => {
      expect(compareVectors({ [r]: 1 }, {})).toBe('after');
      expect(compareVectors({}, { [r]: 1 })).toBe('before');
      expect(compareVectors({ [r]: 1 }, { us: 1 })).toBe('concurrent');
    },
  );
});

describe('canonicalVector', () => {
  it('when a vector is made canonical, then zeros are dropped, keys are sorted, counts are kept and it is idempotent', () => {
    fc.assert(
      fc.property(vectorArb, (v) => {
        const c = canonicalVector(v);
        const keys = Object.keys(c);
        expect(keys).toEqual([...keys].sort());
        expect(Object.values(c).every((n) => n > 0)).toBe(true);
        for (const r of keysOf(v, c)) expect(count(c, r)).toBe(count(v, r));
        expect(canonicalVector(c)).toEqual(c);
        expect(JSON.stringify(canonicalVector(c))).toBe(JSON.stringify(c));
      }),
      fcRuns.params(150),
    );
  });

  it('when a vector is already canonical, then canonicalVector returns the same content in the same key order', () => {
    fc.assert(
      fc.property(canonicalVectorArb, (v) => {
        expect(JSON.stringify(canonicalVector(v))).toBe(JSON.stringify(v));
      }),
      fcRuns.params(150),
    );
  });

  it('when an example is made canonical, then it drops zeros and sorts', () => {
    expect(JSON.stringify(canonicalVector({ us: 2, ap: 0, eu: 1 }))).toBe('{"eu":1,"us":2}');
  });
});
