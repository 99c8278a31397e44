import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { compareStamps, type HlcStamp } from '../../shared/domain/hlc.js';
import {
  mergeItem,
  PolicyMismatchError,
  type PolicyConflict,
  type PolicyVersion,
} from '../../shared/domain/mergeItem.js';
import { Policy } from '../../shared/domain/mergePolicy.js';
import { counterVersion } from '../../shared/domain/policies/counter.js';
import {
  EMPTY_COUNTERS,
  incrementCounter,
  type CounterState,
} from '../../shared/domain/policies/counterState.js';
import { fieldsVersion } from '../../shared/domain/policies/fields.js';
import {
  deleteFields,
  patchFields,
  putFields,
  type FieldsState,
} from '../../shared/domain/policies/fieldsState.js';
import { ConflictRule, ResolutionOutcome } from '../../shared/domain/resolve.js';
import { seeded } from './support/fc.js';
import { scheduleArb, World } from './support/simulation.js';

const fcRuns = seeded(import.meta.url);
// Properties take seconds on a busy two-core machine; a soak run (FC_NUM_RUNS) sets its own limit.
if (!process.env.FC_NUM_RUNS?.trim()) vi.setConfig({ testTimeout: 60_000 });

const at = (wall: number, region: string, logical = 0): HlcStamp => ({ wall, logical, region });
const fieldsOf = (v: PolicyVersion) => v.crdt as FieldsState;

/** A PATCH made on `cur` (undefined: a new item) by `region`, its `n`-th write of the item. */
function patch(
  cur: PolicyVersion | undefined,
  p: Record<string, unknown>,
  stamp: HlcStamp,
  vv: Record<string, number>,
) {
  return fieldsVersion(
    patchFields(cur && fieldsOf(cur), p, stamp, { region: stamp.region, n: vv[stamp.region]! }),
    vv,
  );
}
function put(value: Record<string, unknown>, stamp: HlcStamp, vv: Record<string, number>) {
  return fieldsVersion(putFields(value, stamp, { region: stamp.region, n: vv[stamp.region]! }), vv);
}
function del(stamp: HlcStamp, vv: Record<string, number>) {
  return fieldsVersion(deleteFields(stamp, { region: stamp.region, n: vv[stamp.region]! }), vv);
}

/** Both regions' view of one exchange: `a` receives `b` and `b` receives `a`. */
function exchange(a: PolicyVersion, b: PolicyVersion) {
  const atA = mergeItem(a, b);
  const atB = mergeItem(b, a);
  expect(atA.result).toEqual(atB.result);
  return { atA, atB, result: atA.result };
}

/** A conflict as the audit log shows it, without the sides' vectors (each side names its own). */
const shape = (c: PolicyConflict) => ({
  field: c.field,
  rule: c.rule,
  winner: { value: c.winner.value, deleted: c.winner.deleted, hlc: c.winner.hlc },
  loser: { value: c.loser.value, deleted: c.loser.deleted, hlc: c.loser.hlc },
});

describe('mergeItem (lww policy)', () => {
  it('when two lww versions are concurrent, then both regions store the greater stamp with the merged vector and record the same lww-hlc conflict', () => {
    const us: PolicyVersion = {
      policy: Policy.Lww,
      value: 1,
      deleted: false,
      hlc: at(10, 'us'),
      vv: { us: 1 },
    };
    const eu: PolicyVersion = {
      policy: Policy.Lww,
      value: 2,
      deleted: false,
      hlc: at(10, 'eu'),
      vv: { eu: 1 },
    };
    const { atA, atB, result } = exchange(us, eu);
    expect(result).toEqual({
      policy: Policy.Lww,
      value: 1,
      deleted: false,
      hlc: at(10, 'us'),
      vv: { eu: 1, us: 1 },
    });
    expect(atA.outcome).toBe(ResolutionOutcome.Conflict);
    expect(atA.conflicts.map(shape)).toEqual(atB.conflicts.map(shape));
    expect(atA.conflicts).toMatchObject([
      { rule: ConflictRule.LwwHlc, winner: { value: 1 }, loser: { value: 2 } },
    ]);
  });

  it('when nothing is stored, then the incoming version is inserted as it is, whatever the policy', () => {
    for (const v of [
      {
        policy: Policy.Lww,
        value: 1,
        deleted: false,
        hlc: at(1, 'us'),
        vv: { us: 1 },
      } satisfies PolicyVersion,
      patch(undefined, { a: 1 }, at(1, 'us'), { us: 1 }),
      counterVersion(incrementCounter(EMPTY_COUNTERS, 'us', 'x', 2), at(1, 'us'), { us: 1 }),
    ]) {
      const r = mergeItem(undefined, v);
      expect(r).toEqual({ outcome: ResolutionOutcome.Insert, result: v, changed: true, conflicts: [] });
      expect(r.result).toBe(v);
    }
  });

  it('when the stored item and the incoming version use different policies, then the merge refuses with PolicyMismatchError', () => {
    const lww: PolicyVersion = {
      policy: Policy.Lww,
      value: 1,
      deleted: false,
      hlc: at(1, 'us'),
      vv: { us: 1 },
    };
    const fields = patch(undefined, { a: 1 }, at(2, 'eu'), { eu: 1 });
    expect(() => mergeItem(lww, fields)).toThrow(PolicyMismatchError);
    expect(() => mergeItem(fields, lww)).toThrow(PolicyMismatchError);
  });
});

describe('mergeItem (fields policy)', () => {
  const base = put({ a: 1, b: 1 }, at(1, 'us'), { us: 1 });

  it('when two regions patch different fields concurrently, then both edits survive in both regions and nothing is recorded (merged)', () => {
    const atUs = patch(base, { a: 2 }, at(5, 'us'), { us: 2 });
    const atEu = patch(base, { b: 3 }, at(5, 'eu'), { us: 1, eu: 1 });
    const { atA, atB, result } = exchange(atUs, atEu);
    expect(result.value).toEqual({ a: 2, b: 3 });
    expect(result.vv).toEqual({ eu: 1, us: 2 });
    expect(result.hlc).toEqual(at(5, 'us'));
    for (const r of [atA, atB]) {
      expect(r.outcome).toBe(ResolutionOutcome.Merged);
      expect(r.conflicts).toEqual([]);
    }
  });

  it('when two regions patch the same field concurrently, then the greater stamp wins and both regions record the same field conflict', () => {
    const atUs = patch(base, { a: 2 }, at(5, 'us'), { us: 2 });
    const atEu = patch(base, { a: 3, b: 3 }, at(5, 'eu'), { us: 1, eu: 1 });
    const { atA, atB, result } = exchange(atUs, atEu);
    // Equal walls: the region id decides ("us" > "eu").
    expect(result.value).toEqual({ a: 2, b: 3 });
    for (const r of [atA, atB]) {
      expect(r.outcome).toBe(ResolutionOutcome.Conflict);
      expect(r.conflicts.map(shape)).toEqual([
        {
          field: 'a',
          rule: ConflictRule.FieldsLwwHlc,
          winner: { value: 2, deleted: false, hlc: at(5, 'us') },
          loser: { value: 3, deleted: false, hlc: at(5, 'eu') },
        },
      ]);
    }
  });

  it('when a region patches a field after seeing the other region patch it, then the later value wins with no conflict (fast-forward)', () => {
    const first = patch(base, { a: 2 }, at(5, 'us'), { us: 2 });
    const second = patch(first, { a: 3 }, at(6, 'eu'), { us: 2, eu: 1 });
    const r = mergeItem(first, second);
    expect(r.outcome).toBe(ResolutionOutcome.FastForward);
    expect(r.conflicts).toEqual([]);
    expect(r.result.value).toEqual({ a: 3, b: 1 });
    // And the older version arriving late changes nothing.
    const late = mergeItem(r.result, first);
    expect(late).toMatchObject({ outcome: ResolutionOutcome.Stale, changed: false, conflicts: [] });
    expect(late.result).toBe(r.result);
  });

  it('when a PATCH of a field races a newer PUT that leaves the field out, then the field is gone and both regions record the PATCH as the loser of a field conflict', () => {
    const patched = patch(base, { c: 7 }, at(5, 'eu'), { us: 1, eu: 1 });
    const replaced = put({ a: 9 }, at(6, 'us'), { us: 2 });
    const { atA, atB, result } = exchange(patched, replaced);
    expect(result.value).toEqual({ a: 9 });
    const expected = [
      {
        field: 'c',
        rule: ConflictRule.FieldsLwwHlc,
        winner: { value: null, deleted: true, hlc: at(6, 'us') },
        loser: { value: 7, deleted: false, hlc: at(5, 'eu') },
      },
    ];
    expect(atA.conflicts.map(shape)).toEqual(expected);
    expect(atB.conflicts.map(shape)).toEqual(expected);
  });

  it('when a PATCH races a newer DELETE and the deleting region patches another field before the exchange, then the patched field is gone and both regions record it lost to the DELETE', () => {
    const patched = patch(base, { c: 7 }, at(5, 'eu'), { us: 1, eu: 1 });
    const deleted = del(at(6, 'us'), { us: 2 });
    const revived = patch(deleted, { b: 8 }, at(7, 'us'), { us: 3 });
    const { atA, atB, result } = exchange(patched, revived);
    expect(result.value).toEqual({ b: 8 });
    // Both existence registers say "alive": without the field-level record this race left no trace.
    const expected = [
      {
        field: 'c',
        rule: ConflictRule.FieldsLwwHlc,
        winner: { value: null, deleted: true, hlc: at(6, 'us') },
        loser: { value: 7, deleted: false, hlc: at(5, 'eu') },
      },
    ];
    expect(atA.conflicts.map(shape)).toEqual(expected);
    expect(atB.conflicts.map(shape)).toEqual(expected);
  });

  it('when a field removal (PATCH null) races a newer PUT without the field, then the field is gone and the removal is recorded as the loser, as two concurrent removals are', () => {
    const removed = patch(base, { b: null }, at(5, 'eu'), { us: 1, eu: 1 });
    const replaced = put({ a: 9 }, at(6, 'us'), { us: 2 });
    const { atA, atB, result } = exchange(removed, replaced);
    expect(result.value).toEqual({ a: 9 });
    const expected = [
      {
        field: 'b',
        rule: ConflictRule.FieldsLwwHlc,
        winner: { value: null, deleted: true, hlc: at(6, 'us') },
        loser: { value: null, deleted: true, hlc: at(5, 'eu') },
      },
    ];
    expect(atA.conflicts.map(shape)).toEqual(expected);
    expect(atB.conflicts.map(shape)).toEqual(expected);
  });

  it("when a removal is absorbed by a newer PUT and a third region concurrently sets the field, then the removal's loss is on record where it was dropped (no other merge can see it)", () => {
    // sa removes c; ap, not having seen that, replaces the item with {}; us, having seen neither,
    // replaces it with {c: "x"}, the newest. us's value wins field c over sa's removal.
    const removal = patch(base, { c: null }, at(5, 'sa'), { us: 1, sa: 1 });
    const cleared = put({}, at(6, 'ap'), { us: 1, ap: 1 });
    const set = put({ c: 'x' }, at(7, 'us'), { us: 2 });
    const atSa = mergeItem(removal, cleared);
    expect(atSa.conflicts.map(shape)).toEqual([
      {
        field: 'c',
        rule: ConflictRule.FieldsLwwHlc,
        winner: { value: null, deleted: true, hlc: at(6, 'ap') },
        loser: { value: null, deleted: true, hlc: at(5, 'sa') },
      },
    ]);
    // Once sa's state has dropped the removal, meeting us's value records nothing more.
    const later = mergeItem(atSa.result, set);
    expect(later.result.value).toEqual({ c: 'x' });
    expect(later.conflicts.filter((c) => c.field === 'c')).toEqual([]);
  });

  it('when a PATCH races an older DELETE, then the item is alive with the patched fields only and both regions record the whole-item conflict the DELETE lost', () => {
    const deleted = del(at(5, 'us'), { us: 2 });
    const patched = patch(base, { c: 7 }, at(6, 'eu'), { us: 1, eu: 1 });
    const { atA, atB, result } = exchange(deleted, patched);
    expect(result.value).toEqual({ c: 7 });
    expect(result.deleted).toBe(false);
    const expected = [
      {
        field: undefined,
        rule: ConflictRule.LwwHlc,
        winner: { value: { a: 1, b: 1, c: 7 }, deleted: false, hlc: at(6, 'eu') },
        loser: { value: null, deleted: true, hlc: at(5, 'us') },
      },
    ];
    expect(atA.conflicts.map(shape)).toEqual(expected);
    expect(atB.conflicts.map(shape)).toEqual(expected);
  });

  it('when a PATCH races a newer DELETE, then the item stays deleted and both regions record the PATCH as the loser, of the item and of each field', () => {
    const patched = patch(base, { c: 7 }, at(5, 'eu'), { us: 1, eu: 1 });
    const deleted = del(at(6, 'us'), { us: 2 });
    const { atA, atB, result } = exchange(patched, deleted);
    expect(result).toMatchObject({ value: null, deleted: true, hlc: at(6, 'us'), vv: { eu: 1, us: 2 } });
    for (const r of [atA, atB]) {
      expect(r.conflicts.map(shape)).toEqual([
        {
          field: 'c',
          rule: ConflictRule.FieldsLwwHlc,
          winner: { value: null, deleted: true, hlc: at(6, 'us') },
          loser: { value: 7, deleted: false, hlc: at(5, 'eu') },
        },
        {
          field: undefined,
          rule: ConflictRule.LwwHlc,
          winner: { value: null, deleted: true, hlc: at(6, 'us') },
          loser: { value: { a: 1, b: 1, c: 7 }, deleted: false, hlc: at(5, 'eu') },
        },
      ]);
    }
  });

  it('when a fields version arrives twice or late, then nothing changes (stale) and nothing is recorded', () => {
    const v = patch(base, { a: 2 }, at(5, 'us'), { us: 2 });
    for (const incoming of [v, base]) {
      const r = mergeItem(v, incoming);
      expect(r).toMatchObject({ outcome: ResolutionOutcome.Stale, changed: false, conflicts: [] });
      expect(r.result).toBe(v);
    }
  });
});

describe('mergeItem (counter policy)', () => {
  it('when regions increment one counter concurrently, then every region adds up every increment exactly and records no conflict', () => {
    const inc = (s: CounterState, region: string, field: string, by: number) =>
      incrementCounter(s, region, field, by);
    const us = counterVersion(inc(inc(EMPTY_COUNTERS, 'us', 'x', 5), 'us', 'x', -2), at(5, 'us'), { us: 2 });
    const eu = counterVersion(inc(EMPTY_COUNTERS, 'eu', 'x', 4), at(5, 'eu'), { eu: 1 });
    const ap = counterVersion(inc(EMPTY_COUNTERS, 'ap', 'y', 1), at(3, 'ap'), { ap: 1 });
    for (const order of [
      [us, eu, ap],
      [ap, eu, us],
      [eu, us, ap, us, eu],
    ]) {
      let state: PolicyVersion | undefined;
      for (const v of order) {
        const r = mergeItem(state, v);
        expect(r.conflicts).toEqual([]);
        state = r.result;
      }
      expect(state!.value).toEqual({ x: 7, y: 1 });
      expect(state!.hlc).toEqual(at(5, 'us'));
      expect(state!.vv).toEqual({ ap: 1, eu: 1, us: 2 });
    }
  });

  it('when an older counter version arrives late, then nothing changes (stale)', () => {
    const first = counterVersion(incrementCounter(EMPTY_COUNTERS, 'us', 'x', 1), at(1, 'us'), { us: 1 });
    const second = counterVersion(incrementCounter(first.crdt as CounterState, 'us', 'x', 1), at(2, 'us'), {
      us: 2,
    });
    const r = mergeItem(second, first);
    expect(r).toMatchObject({ outcome: ResolutionOutcome.Stale, changed: false, conflicts: [] });
    expect(r.result.value).toEqual({ x: 2 });
  });
});

describe('mergeItem (as a join over versions real writers produce)', () => {
  /** Every version written in a simulated schedule, grouped by item. */
  const versionsArb = scheduleArb({ maxSteps: 20 }).map((schedule) => {
    const world = new World(schedule);
    for (const s of schedule.steps) world.step(s);
    const byItem = new Map<string, PolicyVersion[]>();
    for (const w of world.writes) byItem.set(w.item.id, [...(byItem.get(w.item.id) ?? []), w.version]);
    return [...byItem.values()];
  });
  const fold = (vs: readonly PolicyVersion[]) =>
    vs.reduce<PolicyVersion | undefined>((s, v) => mergeItem(s, v).result, undefined);
  const content = (v: PolicyVersion | undefined) =>
    v && { policy: v.policy, value: v.value, deleted: v.deleted, hlc: v.hlc, vv: v.vv, crdt: v.crdt };

  it('when two written versions are merged in either order, then both orders store the same state and record conflicts naming the same winners', () => {
    fc.assert(
      fc.property(versionsArb, (groups) => {
        for (const vs of groups)
          for (const a of vs)
            for (const b of vs) {
              const ab = mergeItem(a, b);
              const ba = mergeItem(b, a);
              expect(content(ab.result)).toEqual(content(ba.result));
              expect(ab.conflicts.map(shape).sort(byField)).toEqual(ba.conflicts.map(shape).sort(byField));
              for (const c of ab.conflicts) expect(compareStamps(c.winner.hlc, c.loser.hlc)).toBe(1);
            }
      }),
      fcRuns.params(100),
    );
  });

  it('when the written versions of an item are merged in any order with duplicates, then the state is the same (associative, idempotent)', () => {
    fc.assert(
      fc.property(versionsArb, fc.array(fc.nat(), { maxLength: 40 }), (groups, keys) => {
        for (const vs of groups) {
          const shuffled = [...vs, ...vs.slice(0, keys.length % (vs.length + 1))]
            .map((v, j) => ({ v, key: keys[j] ?? j, j }))
            .sort((x, y) => x.key - y.key || x.j - y.j)
            .map((x) => x.v);
          expect(content(fold(shuffled))).toEqual(content(fold(vs)));
        }
      }),
      fcRuns.params(200),
    );
  });
});

const byField = (x: { field?: string | undefined }, y: { field?: string | undefined }) =>
  (x.field ?? '').localeCompare(y.field ?? '');
