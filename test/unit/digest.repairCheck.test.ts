import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { diffBucket } from '../../infra/ops/repairCommands.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

const itemArb = fc.record({
  k: fc.integer({ min: 0, max: 30 }),
  d: fc.constantFrom('000000000000000a', '000000000000000b'),
});
const listOf = (xs: { k: number; d: string }[]) => {
  const m = new Map<number, string>();
  for (const x of xs) m.set(x.k, x.d);
  return [...m].map(([k, d]) => ({
    collection: 'c',
    key: `k${k}`,
    version: `1.0.us`,
    deleted: false,
    digest: d,
  }));
};

describe('hothot repair --check: diffBucket', () => {
  it('when two lists of a bucket are compared, then exactly the keys with different or missing digests are listed, each once, with both sides', () => {
    fc.assert(
      fc.property(fc.array(itemArb), fc.array(itemArb), (xa, xb) => {
        const a = listOf(xa);
        const b = listOf(xb);
        const diffs = diffBucket(7, a, b);
        const da = new Map(a.map((i) => [i.key, i.digest]));
        const db = new Map(b.map((i) => [i.key, i.digest]));
        const expected = [...new Set([...da.keys(), ...db.keys()])]
          .filter((k) => da.get(k) !== db.get(k))
          .sort();
        expect(diffs.map((d) => d.key).sort()).toEqual(expected);
        for (const d of diffs) {
          expect(d.bucket).toBe(7);
          expect(d.a?.digest).toBe(da.get(d.key));
          expect(d.b?.digest).toBe(db.get(d.key));
        }
        expect(diffBucket(7, a, a)).toEqual([]);
      }),
      fcRuns.params(200),
    );
  });
});
