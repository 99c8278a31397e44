import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import {
  clearedFieldConflicts,
  covers,
  deleteFields,
  existenceConflict,
  fieldConflicts,
  fieldsStamp,
  fieldsValue,
  isFieldsState,
  mergeFieldsStates,
  patchFields,
  putFields,
  type Dot,
  type FieldsState,
} from '../../shared/domain/policies/fieldsState.js';
import { compareStamps, type HlcStamp } from '../../shared/domain/hlc.js';
import { mergeVectors, type VersionVector } from '../../shared/domain/versionVector.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);
// Properties take seconds on a busy two-core machine; a soak run (FC_NUM_RUNS) sets its own limit.
if (!process.env.FC_NUM_RUNS?.trim()) vi.setConfig({ testTimeout: 30_000 });

const plain = { noNullPrototype: true } as const;
const at = (wall: number, region: string, logical = 0): HlcStamp => ({ wall, logical, region });
const dot = (region: string, n: number): Dot => ({ region, n });

// ---------------------------------------------------------------------------------------------
// Arbitrary states: joins of single writes, each with its own stamp and dot.

const value = fc.oneof(
  fc.integer({ min: 0, max: 9 }),
  fc.record({ n: fc.integer({ min: 0, max: 9 }) }, plain),
);
const object = (v: fc.Arbitrary<unknown>) =>
  fc.record({ a: v, b: v, c: v }, { ...plain, requiredKeys: [] }) as fc.Arbitrary<Record<string, unknown>>;

type WriteSpec =
  | { kind: 'put'; value: Record<string, unknown> }
  | { kind: 'patch'; patch: Record<string, unknown> }
  | { kind: 'delete' };

const writeSpecArb: fc.Arbitrary<{ spec: WriteSpec; wall: number; region: string }> = fc.record({
  spec: fc.oneof(
    fc.record({ kind: fc.constant('put' as const), value: object(value) }),
    fc.record({ kind: fc.constant('patch' as const), patch: object(fc.oneof(value, fc.constant(null))) }),
    fc.record({ kind: fc.constant('delete' as const) }),
  ),
  // Few walls and regions: equal walls are common, and then the region (or logical) decides.
  wall: fc.integer({ min: 0, max: 3 }),
  region: fc.constantFrom('us', 'eu', 'ap'),
});

/** One state per write; stamps (logical = index) and dots (n = index + 1) are all distinct. */
function atoms(specs: readonly { spec: WriteSpec; wall: number; region: string }[]): FieldsState[] {
  return specs.map(({ spec, wall, region }, i) => {
    const stamp = at(wall, region, i);
    const d = dot(region, i + 1);
    if (spec.kind === 'put') return putFields(spec.value, stamp, d);
    if (spec.kind === 'patch') return patchFields(undefined, spec.patch, stamp, d);
    return deleteFields(stamp, d);
  });
}

const joinAll = (xs: readonly FieldsState[]) => xs.reduce((s, x) => mergeFieldsStates(s, x));

/** Three states, each the join of a non-empty subset of one pool of writes. */
const threeStatesArb = fc
  .tuple(
    fc.array(writeSpecArb, { minLength: 1, maxLength: 7 }),
    fc.array(fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), { minLength: 3, maxLength: 3 }),
  )
  .map(([specs, picks]) => {
    const pool = atoms(specs);
    return picks.map((p) => joinAll(p.map((i) => pool[i % pool.length]!))) as [
      FieldsState,
      FieldsState,
      FieldsState,
    ];
  });

describe('fieldsState (merge is a join)', () => {
  it('when two states are merged in either order, then the result is the same (commutative)', () => {
    fc.assert(
      fc.property(threeStatesArb, ([a, b]) => {
        expect(mergeFieldsStates(a, b)).toEqual(mergeFieldsStates(b, a));
      }),
      fcRuns.params(500),
    );
  });

  it('when three states are merged in either grouping, then the result is the same (associative)', () => {
    fc.assert(
      fc.property(threeStatesArb, ([a, b, c]) => {
        expect(mergeFieldsStates(mergeFieldsStates(a, b), c)).toEqual(
          mergeFieldsStates(a, mergeFieldsStates(b, c)),
        );
      }),
      fcRuns.params(500),
    );
  });

  it('when a state is merged with itself or with a state it already includes, then nothing changes (idempotent, absorbing)', () => {
    fc.assert(
      fc.property(threeStatesArb, ([a, b]) => {
        expect(mergeFieldsStates(a, a)).toEqual(a);
        const ab = mergeFieldsStates(a, b);
        expect(mergeFieldsStates(ab, a)).toEqual(ab);
        expect(mergeFieldsStates(ab, b)).toEqual(ab);
      }),
      fcRuns.params(500),
    );
  });

  it('when states are merged, then the result is well-formed: the greatest existence, no entry older than clearedAt, and the value follows', () => {
    fc.assert(
      fc.property(threeStatesArb, ([a, b, c]) => {
        const m = joinAll([a, b, c]);
        expect(isFieldsState(m)).toBe(true);
        for (const s of [a, b, c])
          expect(compareStamps(fieldsStamp(m), fieldsStamp(s))).toBeGreaterThanOrEqual(0);
        for (const e of Object.values(m.fields))
          if (m.clearedAt) expect(compareStamps(e.stamp, m.clearedAt)).toBeGreaterThanOrEqual(0);
        const v = fieldsValue(m);
        if (!m.exists.alive) expect(v).toBeUndefined();
        else
          expect(v).toEqual(
            Object.fromEntries(
              Object.entries(m.fields)
                .filter(([, e]) => e.deleted !== true)
                .map(([f, e]) => [f, e.value]),
            ),
          );
      }),
      fcRuns.params(500),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Conflicts: only for concurrent writes of one field.

/** A region's replica of one item: the state, its vector, and a writer that stamps like a region. */
class Replica {
  vv: VersionVector;
  constructor(
    readonly region: string,
    public state: FieldsState,
    vv: VersionVector,
    private wall: number,
  ) {
    this.vv = vv;
  }
  private next(): { stamp: HlcStamp; dot: Dot } {
    this.wall += 1;
    const n = (this.vv[this.region] ?? 0) + 1;
    this.vv = mergeVectors(this.vv, { [this.region]: n });
    return { stamp: at(this.wall, this.region), dot: dot(this.region, n) };
  }
  patch(p: Record<string, unknown>): this {
    const { stamp, dot: d } = this.next();
    this.state = patchFields(this.state, p, stamp, d);
    return this;
  }
  put(v: Record<string, unknown>): this {
    const { stamp, dot: d } = this.next();
    this.state = putFields(v, stamp, d);
    return this;
  }
  del(): this {
    const { stamp, dot: d } = this.next();
    this.state = deleteFields(stamp, d);
    return this;
  }
  receive(other: Replica): this {
    this.state = mergeFieldsStates(this.state, other.state);
    this.vv = mergeVectors(this.vv, other.vv);
    this.wall = Math.max(this.wall, fieldsStamp(this.state).wall);
    return this;
  }
}

/** `us` writes {a, b, c}, then `eu` and `ap` fork from it. */
function fork(startWall = 10) {
  const base = putFields({ a: 1, b: 1, c: 1 }, at(1, 'us'), dot('us', 1));
  return {
    eu: new Replica('eu', base, { us: 1 }, startWall),
    ap: new Replica('ap', base, { us: 1 }, startWall),
  };
}

const patchesArb = fc.array(object(fc.oneof(value, fc.constant(null))), { maxLength: 4 });

describe('fieldsState (field conflicts)', () => {
  it('when two regions patch concurrently, then exactly the fields both patched conflict, the greater stamp wins, and both sides name the same winners', () => {
    fc.assert(
      fc.property(patchesArb, patchesArb, fc.integer({ min: 0, max: 3 }), (pe, pa, lead) => {
        const { eu, ap } = fork();
        const apStart = new Replica('ap', ap.state, ap.vv, 10 + lead);
        for (const p of pe) eu.patch(p);
        for (const p of pa) apStart.patch(p);
        const touched = (ps: Record<string, unknown>[]) => new Set(ps.flatMap((p) => Object.keys(p)));
        const both = [...touched(pe)].filter((f) => touched(pa).has(f)).sort();

        const atEu = fieldConflicts(eu.state, eu.vv, apStart.state, apStart.vv);
        const atAp = fieldConflicts(apStart.state, apStart.vv, eu.state, eu.vv);
        expect(atEu.map((c) => c.field)).toEqual(both);
        expect(atAp).toEqual(atEu);
        for (const c of atEu) {
          expect(compareStamps(c.winner.stamp, c.loser.stamp)).toBe(1);
          expect(mergeFieldsStates(eu.state, apStart.state).fields[c.field]).toEqual(c.winner);
        }
        // Patches alone never clear a field nor disagree on existence.
        expect(clearedFieldConflicts(eu.state, eu.vv, apStart.state, apStart.vv)).toEqual([]);
        expect(existenceConflict(eu.state, eu.vv, apStart.state, apStart.vv)).toBe(false);
      }),
      fcRuns.params(300),
    );
  });

  it('when a region patches a field after receiving the other region’s patch of it, then there is no conflict: the later write saw the earlier one', () => {
    fc.assert(
      fc.property(patchesArb, patchesArb, (pe, pa) => {
        const { eu, ap } = fork();
        for (const p of pe) eu.patch(p);
        ap.receive(eu);
        for (const p of pa) ap.patch(p);
        expect(fieldConflicts(eu.state, eu.vv, ap.state, ap.vv)).toEqual([]);
        expect(clearedFieldConflicts(eu.state, eu.vv, ap.state, ap.vv)).toEqual([]);
        expect(existenceConflict(eu.state, eu.vv, ap.state, ap.vv)).toBe(false);
        expect(mergeFieldsStates(eu.state, ap.state)).toEqual(ap.state);
      }),
      fcRuns.params(300),
    );
  });

  it('when the same state is on both sides, then nothing conflicts (a duplicate is no conflict)', () => {
    const { eu } = fork();
    eu.patch({ a: 2 }).patch({ b: null });
    expect(fieldConflicts(eu.state, eu.vv, eu.state, eu.vv)).toEqual([]);
    expect(clearedFieldConflicts(eu.state, eu.vv, eu.state, eu.vv)).toEqual([]);
  });

  it('when a field removal (null) races a concurrent value of the field, then it is a field conflict like any other write', () => {
    const { eu, ap } = fork();
    eu.patch({ a: null });
    ap.patch({ a: 5 });
    // Equal walls: the region id decides, and "eu" > "ap", so the removal wins.
    const [c] = fieldConflicts(eu.state, eu.vv, ap.state, ap.vv);
    expect(c).toMatchObject({
      field: 'a',
      winner: { deleted: true, stamp: at(11, 'eu') },
      loser: { value: 5 },
    });
    expect(fieldsValue(mergeFieldsStates(eu.state, ap.state))).toEqual({ b: 1, c: 1 });
  });
});

// ---------------------------------------------------------------------------------------------
// The races the header comment documents.

describe('fieldsState (PUT, PATCH and DELETE races, as documented)', () => {
  it('when a PUT races an older PATCH, then the PUT replaces every field, the patched one included, and the patch is a cleared-field conflict', () => {
    const { eu, ap } = fork(10);
    eu.patch({ d: 4, a: 2 }); // @11.eu
    ap.put({ b: 7 }).put({ b: 8 }); // @11.ap (older than the PATCH: "ap" < "eu"), @12.ap (newer)
    const m = mergeFieldsStates(eu.state, ap.state);
    expect(fieldsValue(m)).toEqual({ b: 8 });
    expect(clearedFieldConflicts(eu.state, eu.vv, ap.state, ap.vv)).toMatchObject([
      { field: 'a', loserSide: 'a', loser: { value: 2 }, clearedAt: at(12, 'ap') },
      { field: 'd', loserSide: 'a', loser: { value: 4 }, clearedAt: at(12, 'ap') },
    ]);
    // The same two conflicts seen from the other side.
    expect(
      clearedFieldConflicts(ap.state, ap.vv, eu.state, eu.vv).map((c) => [c.field, c.loserSide]),
    ).toEqual([
      ['a', 'b'],
      ['d', 'b'],
    ]);
    // Fields the PUT's writer had seen (the base's `c`) are no conflict: the PUT saw them.
    expect(covers(ap.vv, dot('us', 1))).toBe(true);
  });

  it('when a PATCH races an older PUT, then the PUT’s value stands with the patched fields on top, and the patch’s older fields are gone', () => {
    const { eu, ap } = fork(10);
    ap.put({ b: 7 }); // @11
    eu.patch({ a: 2 }).patch({ d: 4 }); // @11, @12
    const m = mergeFieldsStates(eu.state, ap.state);
    // eu's copy of the base's b and c is older than the PUT: gone; a@11.eu > PUT@11.ap: stays.
    expect(fieldsValue(m)).toEqual({ a: 2, b: 7, d: 4 });
    expect(clearedFieldConflicts(eu.state, eu.vv, ap.state, ap.vv)).toEqual([]);
    expect(fieldConflicts(eu.state, eu.vv, ap.state, ap.vv)).toEqual([]);
  });

  it('when a DELETE races an older PATCH, then the item is deleted, the existence registers conflict, and the patched value is a cleared-field conflict', () => {
    const { eu, ap } = fork(10);
    eu.patch({ a: 2 }); // @11.eu
    ap.patch({ c: 3 }).del(); // @11.ap, @12.ap
    const m = mergeFieldsStates(eu.state, ap.state);
    expect(fieldsValue(m)).toBeUndefined();
    expect(m.fields).toEqual({});
    expect(existenceConflict(eu.state, eu.vv, ap.state, ap.vv)).toBe(true);
    expect(clearedFieldConflicts(eu.state, eu.vv, ap.state, ap.vv)).toMatchObject([
      { field: 'a', loser: { value: 2 } },
    ]);
  });

  it('when a PATCH races an older DELETE, then the item is alive again with the patched fields only, and the existence registers conflict', () => {
    const { eu, ap } = fork(10);
    ap.del(); // @11.ap
    eu.patch({ a: 2 }); // @11.eu: newer
    const m = mergeFieldsStates(eu.state, ap.state);
    expect(fieldsValue(m)).toEqual({ a: 2 });
    expect(existenceConflict(eu.state, eu.vv, ap.state, ap.vv)).toBe(true);
    expect(existenceConflict(ap.state, ap.vv, eu.state, eu.vv)).toBe(true);
    expect(fieldConflicts(eu.state, eu.vv, ap.state, ap.vv)).toEqual([]);
    expect(clearedFieldConflicts(eu.state, eu.vv, ap.state, ap.vv)).toEqual([]);
  });

  it('when a region patches an item it has deleted, then the item comes back with the patched fields only, a nested patch starting from nothing', () => {
    const r = new Replica(
      'us',
      putFields({ a: { n: 1, m: 2 }, b: 1 }, at(1, 'us'), dot('us', 1)),
      { us: 1 },
      1,
    );
    r.del().patch({ a: { n: 5 } });
    expect(fieldsValue(r.state)).toEqual({ a: { n: 5 } });
    expect(r.state.exists.alive).toBe(true);
  });

  it('when a DELETE saw every write, then no merge brings the item back', () => {
    const { eu, ap } = fork(10);
    eu.patch({ a: 2 });
    ap.receive(eu).del();
    expect(existenceConflict(eu.state, eu.vv, ap.state, ap.vv)).toBe(false);
    expect(fieldsValue(mergeFieldsStates(eu.state, ap.state))).toBeUndefined();
    expect(fieldsValue(mergeFieldsStates(ap.state, eu.state))).toBeUndefined();
  });

  it('when a PUT is made, then it replaces every field and its fields carry its stamp and dot', () => {
    const s = putFields({ b: 2, a: 1 }, at(5, 'us'), dot('us', 3));
    expect(s).toEqual({
      exists: { stamp: at(5, 'us'), dot: dot('us', 3), alive: true },
      clearedAt: at(5, 'us'),
      fields: {
        a: { stamp: at(5, 'us'), dot: dot('us', 3), value: 1 },
        b: { stamp: at(5, 'us'), dot: dot('us', 3), value: 2 },
      },
    });
    expect(isFieldsState(s)).toBe(true);
  });
});

describe('fieldsState (field names)', () => {
  it('when a field is named "__proto__", then PUT, PATCH, merge and the value keep it like any other field', () => {
    // A JSON body may name any member; JSON.parse makes "__proto__" an own property.
    const body = JSON.parse('{"__proto__":{"n":1},"a":1}') as Record<string, unknown>;
    const put = putFields(body, at(1, 'us'), dot('us', 1));
    expect(Object.keys(put.fields)).toEqual(['__proto__', 'a']);
    expect(JSON.stringify(fieldsValue(put))).toBe('{"__proto__":{"n":1},"a":1}');

    const patched = patchFields(
      put,
      JSON.parse('{"__proto__":{"m":2}}') as Record<string, unknown>,
      at(2, 'eu'),
      dot('eu', 1),
    );
    expect(JSON.stringify(fieldsValue(patched))).toBe('{"__proto__":{"n":1,"m":2},"a":1}');

    const other = patchFields(put, { a: 5 }, at(2, 'ap'), dot('ap', 1));
    for (const m of [mergeFieldsStates(patched, other), mergeFieldsStates(other, patched)]) {
      expect(JSON.stringify(fieldsValue(m))).toBe('{"__proto__":{"n":1,"m":2},"a":5}');
      expect(Object.getPrototypeOf(m.fields)).toBe(Object.prototype);
    }
    const added = patchFields(
      undefined,
      JSON.parse('{"__proto__":3}') as Record<string, unknown>,
      at(3, 'us'),
      dot('us', 2),
    );
    expect(JSON.stringify(fieldsValue(added))).toBe('{"__proto__":3}');
  });
});
