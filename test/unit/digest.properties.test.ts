import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DIGEST_BUCKETS,
  bucketOf,
  combineDigests,
  compareDigests,
  digestHex,
  itemDigest,
  keysToRepublish,
  parseDigestHex,
  type OwnKeyDigest,
  type RegionDigest,
} from '../../shared/domain/digest.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

const digestArb = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });

/** A region's bucket digests built from scratch from a set of item digests. */
function digestsOf(items: ReadonlyMap<string, bigint>): bigint[] {
  const out = Array.from({ length: DIGEST_BUCKETS }, () => 0n);
  for (const [id, d] of items) {
    const b = bucketOf('c', id);
    out[b] = combineDigests([out[b]!, d]);
  }
  return out;
}

describe('bucketOf and itemDigest', () => {
  it('when computed here, then they equal what PostgreSQL computes (hothot_bucket, hothot_item_hash)', () => {
    // Values printed by PostgreSQL 15 for migration 0008's functions.
    expect(bucketOf('people', 'ada')).toBe(40);
    expect(bucketOf('ünï', 'kéy')).toBe(902);
    expect(bucketOf('a', 'b')).toBe(332);
    expect(
      itemDigest({
        collection: 'people',
        key: 'ada',
        hlcWall: 1795703728240,
        hlcLogical: 0,
        origin: 'us',
        vvText: '{"us": 1}',
        deleted: false,
        policy: 'lww',
        valueText: '{"born": 1815, "name": "Ada"}',
        crdtText: null,
      }),
    ).toBe(-3221284814611606928n);
    expect(
      itemDigest({
        collection: 'people',
        key: 'ada',
        hlcWall: 1795703728240,
        hlcLogical: 3,
        origin: 'us',
        vvText: '{"eu": 2, "us": 1}',
        deleted: true,
        policy: 'fields',
        valueText: null,
        crdtText: '{"f": {"a": 1}}',
      }),
    ).toBe(-1321336858462431383n);
  });

  it('when any key is bucketed, then the bucket is an integer in 0 … 1023, the same every time', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (c, k) => {
        const b = bucketOf(c, k);
        expect(Number.isInteger(b) && b >= 0 && b < DIGEST_BUCKETS).toBe(true);
        expect(bucketOf(c, k)).toBe(b);
      }),
      fcRuns.params(300),
    );
  });

  it('when only the value changes (same version), then the item digest changes', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        fc.pre(a !== b);
        const base = {
          collection: 'c',
          key: 'k',
          hlcWall: 1,
          hlcLogical: 0,
          origin: 'us',
          vvText: '{"us": 1}',
          deleted: false,
          policy: 'lww',
          crdtText: null,
        };
        expect(itemDigest({ ...base, valueText: a })).not.toBe(itemDigest({ ...base, valueText: b }));
      }),
      fcRuns.params(200),
    );
  });
});

describe('combineDigests', () => {
  it('when a digest is kept up to date by adding and removing items in any order, then it equals the digest of the final set', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), digestArb, fc.boolean()), { maxLength: 200 }),
        (ops) => {
          const rows = new Map<string, bigint>();
          const running = Array.from({ length: DIGEST_BUCKETS }, () => 0n);
          for (const [k, d, remove] of ops) {
            const id = `k${k}`;
            const b = bucketOf('c', id);
            const old = rows.get(id);
            // What the trigger does: XOR the old row out, the new one in.
            if (old !== undefined) running[b] = combineDigests([running[b]!, old]);
            if (remove) rows.delete(id);
            else {
              rows.set(id, d);
              running[b] = combineDigests([running[b]!, d]);
            }
          }
          expect(running).toEqual(digestsOf(rows));
        },
      ),
      fcRuns.params(200),
    );
  });

  it('when combined in another order, then the digest is the same; combining twice cancels', () => {
    fc.assert(
      fc.property(fc.array(digestArb), digestArb, (ds, x) => {
        expect(combineDigests([...ds].reverse())).toBe(combineDigests(ds));
        expect(combineDigests([combineDigests([...ds, x]), x])).toBe(combineDigests(ds));
      }),
      fcRuns.params(200),
    );
  });

  it('when printed as hex and parsed, then the digest is the same; bad text is refused', () => {
    fc.assert(
      fc.property(digestArb, (d) => {
        expect(digestHex(d)).toMatch(/^[0-9a-f]{16}$/);
        expect(parseDigestHex(digestHex(d))).toBe(d);
      }),
      fcRuns.params(200),
    );
    for (const bad of ['', 'xyz', '0123456789abcdeF', '0123456789abcdef0'])
      expect(parseDigestHex(bad)).toBe(undefined);
  });
});

describe('compareDigests', () => {
  const region = (
    items: Map<string, bigint>,
    walls: Map<string, number>,
    settledBefore: number,
  ): RegionDigest => {
    const maxWalls = Array.from({ length: DIGEST_BUCKETS }, () => 0);
    for (const [id, w] of walls) {
      const b = bucketOf('c', id);
      maxWalls[b] = Math.max(maxWalls[b]!, w);
    }
    return { digests: digestsOf(items), maxWalls, settledBefore };
  };

  it('when two regions hold the same writes, then no bucket is divergent, and damage in a settled bucket is found, in that bucket only', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.tuple(fc.integer({ min: 0, max: 5000 }), digestArb, fc.integer({ min: 1, max: 1000 })),
          {
            selector: (t) => t[0],
            maxLength: 300,
          },
        ),
        fc.nat(),
        digestArb,
        (writes, pick, damage) => {
          const items = new Map(writes.map(([k, d]) => [`k${k}`, d]));
          const walls = new Map(writes.map(([k, , w]) => [`k${k}`, w]));
          const a = region(items, walls, 2000);
          const b = region(items, walls, 2000);
          const same = compareDigests(a, b);
          expect(same.divergent).toEqual([]);
          expect(same.compared.length + same.unsettled).toBe(DIGEST_BUCKETS);
          if (writes.length === 0) return;
          const [k, d] = writes[pick % writes.length]!;
          fc.pre(damage !== d);
          const damaged = new Map(items).set(`k${k}`, damage);
          const found = compareDigests(region(damaged, walls, 2000), b);
          expect(found.divergent).toEqual([bucketOf('c', `k${k}`)]);
        },
      ),
      fcRuns.params(100),
    );
  });

  it('when a bucket has a write the other region may not have had yet, then it is not compared', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 1, max: 1000 }), (k, late) => {
        const id = `k${k}`;
        const a = region(new Map([[id, 1n]]), new Map([[id, 1000 + late]]), 5000);
        const b = region(new Map(), new Map(), 1000); // b had settled only up to 1000
        const r = compareDigests(a, b);
        expect(r.compared).not.toContain(bucketOf('c', id));
        expect(r.divergent).toEqual([]);
        expect(r.unsettled).toBe(1);
      }),
      fcRuns.params(100),
    );
  });
});

describe('keysToRepublish', () => {
  const entryArb = fc.record({
    k: fc.integer({ min: 0, max: 60 }),
    d: fc.bigInt({ min: 0n, max: 3n }),
    deleted: fc.boolean(),
    wall: fc.integer({ min: 0, max: 100 }),
  });
  const list = (es: { k: number; d: bigint; deleted: boolean; wall: number }[]): OwnKeyDigest[] => {
    const seen = new Map<number, OwnKeyDigest>();
    for (const e of es)
      seen.set(e.k, { collection: 'c', key: `k${e.k}`, digest: e.d, deleted: e.deleted, wall: e.wall });
    return [...seen.values()];
  };

  it('when both sides run it on each other’s lists, then every differing key is republished by a side that has it, and no more than twice the differing keys in all', () => {
    fc.assert(
      fc.property(fc.array(entryArb), fc.array(entryArb), (ea, eb) => {
        const a = list(ea);
        const b = list(eb);
        const fromA = keysToRepublish(a, b, 0);
        const fromB = keysToRepublish(b, a, 0);
        const digestOf = (l: OwnKeyDigest[], key: string) => l.find((x) => x.key === key)?.digest;
        const keys = new Set([...a, ...b].map((x) => x.key));
        const differing = [...keys].filter((k) => digestOf(a, k) !== digestOf(b, k));
        const republished = new Set([...fromA, ...fromB].map((x) => x.key));
        expect([...republished].sort()).toEqual([...differing].sort());
        expect(fromA.length + fromB.length).toBeLessThanOrEqual(2 * differing.length);
        expect(keysToRepublish(a, a, 0)).toEqual([]);
      }),
      fcRuns.params(200),
    );
  });

  it('when the peer lacks a tombstone stamped below its GC horizon, then it is not republished (collected there)', () => {
    const own: OwnKeyDigest[] = [
      { collection: 'c', key: 'old', digest: 1n, deleted: true, wall: 50 },
      { collection: 'c', key: 'new', digest: 2n, deleted: true, wall: 150 },
      { collection: 'c', key: 'live', digest: 3n, deleted: false, wall: 50 },
    ];
    expect(keysToRepublish(own, [], 100).map((k) => k.key)).toEqual(['new', 'live']);
  });
});
