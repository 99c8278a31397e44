import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareStamps } from '../../shared/domain/hlc.js';
import {
  Causality,
  canonicalVector,
  compareVectors,
  mergeVectors,
} from '../../shared/domain/versionVector.js';
import { ConflictRule, ResolutionOutcome, resolve, type ItemVersion } from '../../shared/domain/resolve.js';
import { versionArb, versionsArb } from './support/arbitraries.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

/**
 * The state a replica holds, compared as content: vectors in canonical form, since a version taken
 * whole (insert, or a local that wins unchanged) keeps the vector it arrived with, zero entries
 * included, while a merged vector is canonical. Versions from writers are canonical already.
 */
const content = (v: ItemVersion | undefined) =>
  v && { value: v.value, deleted: v.deleted, hlc: v.hlc, vv: canonicalVector(v.vv) };

const join = (a: ItemVersion, b: ItemVersion) => resolve(a, b).result;
const fold = (vs: readonly ItemVersion[]) =>
  vs.reduce<ItemVersion | undefined>((s, v) => resolve(s, v).result, undefined);

function deepFreeze<T>(x: T): T {
  if (typeof x === 'object' && x !== null && !Object.isFrozen(x)) {
    Object.freeze(x);
    for (const v of Object.values(x)) deepFreeze(v);
  }
  return x;
}

/** Three distinct-stamp versions. */
const tripleArb = versionsArb({ minLength: 3, maxLength: 3 }).map(
  (vs) => vs as [ItemVersion, ItemVersion, ItemVersion],
);
const pairArb = versionsArb({ minLength: 2, maxLength: 2 }).map((vs) => vs as [ItemVersion, ItemVersion]);

/** A sequence of versions and a delivery of them in another order, each at least once, some twice or more. */
const deliveryArb = versionsArb({ minLength: 1, maxLength: 7 }).chain((vs) =>
  fc.tuple(
    fc.constant(vs),
    fc
      .tuple(fc.array(fc.nat(vs.length - 1), { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 20 }))
      .map(([dups, keys]) =>
        [...vs, ...dups.map((i) => vs[i]!)]
          .map((v, j) => ({ v, key: keys[j] ?? j, j }))
          .sort((a, b) => a.key - b.key || a.j - b.j)
          .map((x) => x.v),
      ),
  ),
);

describe('resolve (as a join over arbitrary versions)', () => {
  it('when two versions are resolved in either order, then the stored state is the same (commutative)', () => {
    fc.assert(
      fc.property(pairArb, ([a, b]) => {
        expect(content(join(a, b))).toEqual(content(join(b, a)));
      }),
      fcRuns.params(200),
    );
  });

  it('when three versions are resolved with either grouping, then the stored state is the same (associative)', () => {
    fc.assert(
      fc.property(tripleArb, ([a, b, c]) => {
        expect(content(join(join(a, b), c))).toEqual(content(join(a, join(b, c))));
      }),
      fcRuns.params(200),
    );
  });

  it('when a version is resolved against itself, then the outcome is stale, nothing changes and the same object is kept (idempotent)', () => {
    fc.assert(
      fc.property(versionArb(), (a) => {
        const r = resolve(a, a);
        expect(r.outcome).toBe(ResolutionOutcome.Stale);
        expect(r.changed).toBe(false);
        expect(r.result).toBe(a);
        expect(r.conflict).toBeUndefined();
        expect(resolve(a, { ...a, vv: { ...a.vv } }).result).toBe(a);
      }),
      fcRuns.params(150),
    );
  });

  it('when a version already folded into a state is delivered again, then nothing changes (absorption)', () => {
    fc.assert(
      fc.property(deliveryArb, fc.nat(), ([vs, delivery], pick) => {
        const state = fold(delivery)!;
        const again = resolve(state, vs[pick % vs.length]!);
        expect(again.changed).toBe(false);
        expect(again.result).toBe(state);
      }),
      fcRuns.params(150),
    );
  });

  it('when versions are delivered in any order with duplicates, then the fold is the greatest-stamp version with the pointwise-max vector', () => {
    fc.assert(
      fc.property(deliveryArb, ([vs, delivery]) => {
        const greatest = vs.reduce((m, v) => (compareStamps(v.hlc, m.hlc) > 0 ? v : m));
        const expected = {
          value: greatest.value,
          deleted: greatest.deleted,
          hlc: greatest.hlc,
          vv: vs.map((v) => v.vv).reduce(mergeVectors, {}),
        };
        expect(content(fold(delivery))).toEqual(expected);
        expect(content(fold(vs))).toEqual(expected);
        expect(content(fold([...delivery].reverse()))).toEqual(expected);
      }),
      fcRuns.params(200),
    );
  });

  it('when any two versions are resolved, then the outcome follows the vector comparison', () => {
    fc.assert(
      fc.property(pairArb, fc.boolean(), ([local, incoming], sameVector) => {
        if (sameVector) incoming = { ...incoming, vv: local.vv };
        const r = resolve(local, incoming);
        const causality = compareVectors(incoming.vv, local.vv);
        const order = compareStamps(incoming.hlc, local.hlc);
        const expected =
          causality === Causality.Concurrent
            ? 'conflict'
            : causality === Causality.After
              ? 'fast-forward'
              : causality === Causality.Equal && order !== 0
                ? 'conflict'
                : 'stale';
        expect(r.outcome).toBe(expected);
      }),
      fcRuns.params(200),
    );
  });

  it('when any two versions are resolved, then the greater stamp supplies value, deleted and stamp, and the vector is the pointwise max', () => {
    fc.assert(
      fc.property(pairArb, ([local, incoming]) => {
        const r = resolve(local, incoming);
        const winner = compareStamps(incoming.hlc, local.hlc) > 0 ? incoming : local;
        expect(r.result.value).toBe(winner.value);
        expect(r.result.deleted).toBe(winner.deleted);
        expect(r.result.hlc).toBe(winner.hlc);
        expect(canonicalVector(r.result.vv)).toEqual(mergeVectors(local.vv, incoming.vv));
      }),
      fcRuns.params(200),
    );
  });

  it('when changed is false, then the result is the local object itself; when true, the state really differs', () => {
    fc.assert(
      fc.property(pairArb, fc.boolean(), ([local, incoming], dominated) => {
        // Half the time make the incoming one dominated by local, so unchanged results are common.
        if (dominated) incoming = { ...incoming, vv: {} };
        const r = resolve(local, incoming);
        if (!r.changed) expect(r.result).toBe(local);
        else
          expect(
            r.result.hlc !== local.hlc || compareVectors(r.result.vv, local.vv) !== Causality.Equal,
          ).toBe(true);
      }),
      fcRuns.params(200),
    );
  });

  it('when the outcome is a conflict, then both orders record the same winner (greater stamp) and loser under rule lww-hlc', () => {
    fc.assert(
      fc.property(pairArb, ([a, b]) => {
        const ab = resolve(a, b);
        const ba = resolve(b, a);
        expect(ab.outcome === 'conflict').toBe(ba.outcome === 'conflict');
        if (ab.outcome !== 'conflict') {
          expect(Object.hasOwn(ab, 'conflict')).toBe(false);
          expect(Object.hasOwn(ba, 'conflict')).toBe(false);
          return;
        }
        const winner = compareStamps(a.hlc, b.hlc) > 0 ? a : b;
        const loser = winner === a ? b : a;
        for (const r of [ab, ba]) {
          expect(r.conflict!.winner).toBe(winner);
          expect(r.conflict!.loser).toBe(loser);
          expect(r.conflict!.rule).toBe(ConflictRule.LwwHlc);
        }
      }),
      fcRuns.params(200),
    );
  });

  it('when there is no local version, then the incoming one is inserted as it is', () => {
    fc.assert(
      fc.property(versionArb(), (v) => {
        expect(resolve(undefined, v)).toStrictEqual({ outcome: 'insert', result: v, changed: true });
        expect(resolve(undefined, v).result).toBe(v);
      }),
      fcRuns.params(150),
    );
  });

  it('when versions are resolved, then neither input is mutated', () => {
    fc.assert(
      fc.property(pairArb, ([a, b]) => {
        const [a0, b0] = [structuredClone(a), structuredClone(b)];
        deepFreeze(a);
        deepFreeze(b);
        resolve(a, b);
        resolve(b, a);
        resolve(undefined, a);
        expect(a).toStrictEqual(a0);
        expect(b).toStrictEqual(b0);
      }),
      fcRuns.params(150),
    );
  });
});
