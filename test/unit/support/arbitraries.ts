/** fast-check arbitraries shared by the domain unit tests. */
import fc from 'fast-check';
import type { HlcStamp } from '../../../shared/domain/hlc.js';
import type { VersionVector } from '../../../shared/domain/versionVector.js';
import type { ItemVersion } from '../../../shared/domain/resolve.js';
import { REGION_NAME_PATTERN } from '../../../shared/domain/regionName.js';

/** Region id pattern the config loader and `parseStamp` accept. */
export const REGION_PATTERN = REGION_NAME_PATTERN;

/**
 * A few fixed ids, so that generated stamps and vectors collide often. `constructor` is a legal
 * region id that is also an `Object.prototype` property name.
 */
export const FIXED_REGIONS = ['us', 'eu', 'ap', 'us-east-1', 'a', 'constructor'] as const;

/** Any legal region id, biased towards {@link FIXED_REGIONS}. */
export const regionArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...FIXED_REGIONS) },
  { weight: 1, arbitrary: fc.stringMatching(REGION_PATTERN) },
);

/** Largest wall and logical values `parseStamp` accepts (15 and 9 decimal digits). */
export const MAX_TEXT_WALL = 999_999_999_999_999;
export const MAX_TEXT_LOGICAL = 999_999_999;

/** fast-check may build records without a prototype; code and `JSON.parse` never do. */
const plain = { noNullPrototype: true } as const;

/** Stamps from a small domain (many ties on wall, logical and region) mixed with wide ones. */
export const stampArb: fc.Arbitrary<HlcStamp> = fc.record(
  {
    wall: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: MAX_TEXT_WALL })),
    logical: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: MAX_TEXT_LOGICAL })),
    region: regionArb,
  },
  plain,
);

/** Entries of a vector, possibly with zeros; built as a plain object, like `JSON.parse` output. */
const vectorEntriesArb = fc.array(fc.tuple(regionArb, fc.oneof(fc.integer({ min: 0, max: 4 }), fc.nat())), {
  maxLength: 6,
});

/** A version vector as it may arrive: plain object, any key order, zero entries allowed. */
export const vectorArb: fc.Arbitrary<VersionVector> = vectorEntriesArb.map((entries) =>
  Object.fromEntries(entries),
);

/** A vector as stored and sent: sorted keys, no zero entries. */
export const canonicalVectorArb: fc.Arbitrary<VersionVector> = vectorEntriesArb.map((entries) => {
  const counts = new Map<string, number>();
  for (const [region, n] of entries) if (n > 0) counts.set(region, n);
  return Object.fromEntries([...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
});

export const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.string({ maxLength: 8 }),
  fc.record({ n: fc.integer(), tag: fc.constantFrom('x', 'y', 'z') }, plain),
);

/** An arbitrary item version (live or tombstone); not necessarily one a writer could produce. */
export const versionArb = (vv: fc.Arbitrary<VersionVector> = vectorArb): fc.Arbitrary<ItemVersion> =>
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({ value: valueArb, deleted: fc.constant(false), hlc: stampArb, vv }, plain),
    },
    {
      weight: 1,
      arbitrary: fc.record(
        { value: fc.constant(null), deleted: fc.constant(true), hlc: stampArb, vv },
        plain,
      ),
    },
  );

/**
 * Distinct arbitrary versions with distinct stamps. A stamp names one write (a writer stamps after
 * observing the item's current stamp, and the region id is part of the stamp), so two different
 * versions of one item never share a stamp; with shared stamps the join would not be defined.
 */
export const versionsArb = (
  constraints: { minLength?: number; maxLength?: number } = {},
  vv: fc.Arbitrary<VersionVector> = vectorArb,
): fc.Arbitrary<ItemVersion[]> =>
  fc.uniqueArray(versionArb(vv), {
    minLength: constraints.minLength ?? 1,
    maxLength: constraints.maxLength ?? 6,
    selector: (v) => `${v.hlc.wall}.${v.hlc.logical}.${v.hlc.region}`,
  });
