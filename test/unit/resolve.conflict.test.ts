import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareStamps, type HlcStamp } from '../../shared/domain/hlc.js';
import { mergeVectors } from '../../shared/domain/versionVector.js';
import { resolve, type ItemVersion } from '../../shared/domain/resolve.js';
import { regionArb } from './support/arbitraries.js';
import { World, stepArb, type Scenario } from './support/replicas.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

const v = (value: unknown, hlc: HlcStamp, vv: Record<string, number>, deleted = false): ItemVersion => ({
  value: deleted ? null : value,
  deleted,
  hlc,
  vv,
});

describe('resolve (concurrent writes)', () => {
  it('when two regions write concurrently after any shared history, then both orders report a conflict and name the same winner, the greater stamp', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(regionArb, { minLength: 2, maxLength: 3 }),
        fc.array(stepArb, { maxLength: 20 }),
        fc.array(fc.oneof(fc.constant(0), fc.integer({ min: -3000, max: 3000 })), {
          minLength: 8,
          maxLength: 8,
        }),
        fc.boolean(),
        fc.boolean(),
        (regions, prefix, offsets, del0, del1) => {
          const scenario: Scenario = {
            regions,
            start: 1_700_000_000_000,
            offsets,
            steps: prefix,
            extra: [],
            orderKeys: [],
            applierObserves: true,
          };
          const world = new World(scenario);
          world.runSteps();
          world.exchangeAll(); // a shared history: every region holds the same state
          const a = world.write(0, del0).version;
          const b = world.write(1, del1).version;

          const atB = resolve(b, a); // region 1 receives region 0's write
          const atA = resolve(a, b); // region 0 receives region 1's write
          const winner = compareStamps(a.hlc, b.hlc) > 0 ? a : b;
          const loser = winner === a ? b : a;
          for (const r of [atA, atB]) {
            expect(r.outcome).toBe('conflict');
            expect(r.conflict).toEqual({ winner, loser, rule: 'lww-hlc' });
            expect(r.result).toEqual({ ...winner, vv: mergeVectors(a.vv, b.vv) });
          }
          expect(atA.result).toEqual(atB.result);
          // Both sides change: the loser's side takes the winner, and the winner's side still gains
          // the other's vector entry (the merged vector dominates both).
          expect(atA.changed && atB.changed).toBe(true);
        },
      ),
      fcRuns.params(150),
    );
  });

  it('equal wall clocks and concurrent vectors resolve identically in every region', () => {
    // All regions' physical clocks read the same millisecond; each region writes k times on its own,
    // then every region receives every write, in a different order per region.
    fc.assert(
      fc.property(
        fc.uniqueArray(regionArb, { minLength: 2, maxLength: 4 }),
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 4, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (regions, writesPerRegion, orderKeys) => {
          const world = new World({
            regions,
            start: 1_700_000_000_000,
            offsets: [0, 0, 0, 0, 0, 0, 0, 0],
            steps: [],
            extra: [],
            orderKeys,
            applierObserves: false,
          });
          regions.forEach((_, i) => {
            for (let k = 0; k < writesPerRegion[i]!; k++) world.write(i, false);
          });
          world.exchangeAll();

          const written = world.written();
          expect(new Set(written.map((w) => w.hlc.wall)).size).toBe(1);
          // Winner: the highest logical counter, then the greatest region id.
          const best = [...written].sort((x, y) =>
            x.hlc.logical !== y.hlc.logical
              ? x.hlc.logical - y.hlc.logical
              : x.hlc.region < y.hlc.region
                ? -1
                : 1,
          )[written.length - 1]!;
          for (const r of world.replicas) {
            expect(r.state!.hlc).toEqual(best.hlc);
            expect(r.state!.value).toEqual(best.value);
            expect(r.state).toEqual(world.replicas[0]!.state);
          }
        },
      ),
      fcRuns.params(100),
    );
  });

  it('when wall clocks are equal, then the higher logical counter wins whatever the region ids', () => {
    const a = v('a', { wall: 1000, logical: 2, region: 'ap' }, { ap: 1 });
    const b = v('b', { wall: 1000, logical: 1, region: 'us' }, { us: 1 });
    for (const r of [resolve(a, b), resolve(b, a)]) {
      expect(r.outcome).toBe('conflict');
      expect(r.conflict!.winner).toBe(a);
      expect(r.result).toEqual({ value: 'a', deleted: false, hlc: a.hlc, vv: { ap: 1, us: 1 } });
    }
  });

  it('when wall clocks and counters are equal, then the greater region id (code-unit order) wins in both regions', () => {
    const eu = v('from eu', { wall: 1000, logical: 0, region: 'eu' }, { eu: 1 });
    const us = v('from us', { wall: 1000, logical: 0, region: 'us' }, { us: 1 });
    const atUs = resolve(us, eu);
    const atEu = resolve(eu, us);
    expect(atUs.conflict!.winner).toBe(us);
    expect(atEu.conflict!.winner).toBe(us);
    expect(atUs.changed).toBe(true); // the vector grew
    expect(atUs.result.value).toBe('from us');
    expect(atEu.result).toEqual(atUs.result);
  });

  it('when a greater wall clock is concurrent with a greater counter, then the wall clock wins', () => {
    const a = v('a', { wall: 1001, logical: 0, region: 'a' }, { a: 1 });
    const b = v('b', { wall: 1000, logical: 99, region: 'zz' }, { zz: 1 });
    expect(resolve(b, a).conflict!.winner).toBe(a);
    expect(resolve(a, b).conflict!.winner).toBe(a);
  });

  it('when the loser is the local version, then the result takes the winner and records the local one as loser', () => {
    const local = v({ n: 1 }, { wall: 10, logical: 0, region: 'us' }, { us: 2, eu: 1 });
    const incoming = v({ n: 2 }, { wall: 11, logical: 0, region: 'eu' }, { us: 1, eu: 2 });
    const r = resolve(local, incoming);
    expect(r).toEqual({
      outcome: 'conflict',
      changed: true,
      result: { value: { n: 2 }, deleted: false, hlc: incoming.hlc, vv: { eu: 2, us: 2 } },
      conflict: { winner: incoming, loser: local, rule: 'lww-hlc' },
    });
  });

  it('when the local version wins a conflict, then its value stays, the vector still grows and changed is true', () => {
    const local = v({ n: 1 }, { wall: 12, logical: 0, region: 'us' }, { us: 2, eu: 1 });
    const incoming = v({ n: 2 }, { wall: 11, logical: 0, region: 'eu' }, { us: 1, eu: 2 });
    const r = resolve(local, incoming);
    expect(r.outcome).toBe('conflict');
    expect(r.changed).toBe(true);
    expect(r.result).toEqual({ value: { n: 1 }, deleted: false, hlc: local.hlc, vv: { eu: 2, us: 2 } });
    expect(r.conflict).toEqual({ winner: local, loser: incoming, rule: 'lww-hlc' });
  });

  it('when equal vectors carry different stamps, then it is treated as a conflict and resolved by stamp, never hidden', () => {
    const a = v('a', { wall: 5, logical: 0, region: 'us' }, { us: 1 });
    const b = v('b', { wall: 6, logical: 0, region: 'us' }, { us: 1 });
    for (const r of [resolve(a, b), resolve(b, a)]) {
      expect(r.outcome).toBe('conflict');
      expect(r.conflict!.winner).toBe(b);
      expect(r.result.value).toBe('b');
    }
  });

  it('when a delete and an update are concurrent, then the greater stamp wins either way', () => {
    const update = v('u', { wall: 7, logical: 0, region: 'us' }, { us: 1 });
    const laterDelete = v(null, { wall: 8, logical: 0, region: 'eu' }, { eu: 1 }, true);
    const earlierDelete = v(null, { wall: 6, logical: 0, region: 'eu' }, { eu: 1 }, true);
    expect(resolve(update, laterDelete).result).toEqual({
      value: null,
      deleted: true,
      hlc: laterDelete.hlc,
      vv: { eu: 1, us: 1 },
    });
    expect(resolve(laterDelete, update).result).toEqual({
      value: null,
      deleted: true,
      hlc: laterDelete.hlc,
      vv: { eu: 1, us: 1 },
    });
    expect(resolve(update, earlierDelete).result).toEqual({
      value: 'u',
      deleted: false,
      hlc: update.hlc,
      vv: { eu: 1, us: 1 },
    });
    expect(resolve(earlierDelete, update).result).toEqual({
      value: 'u',
      deleted: false,
      hlc: update.hlc,
      vv: { eu: 1, us: 1 },
    });
  });
});
