import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareStamps } from '../../shared/domain/hlc.js';
import { resolve, type ItemVersion } from '../../shared/domain/resolve.js';
import { versionArb, versionsArb } from './support/arbitraries.js';
import { World, scenarioArb, type ApplyRecord } from './support/replicas.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

/** No application may replace a tombstone by a live version with a smaller stamp. */
function noResurrection({ local, event, resolution }: ApplyRecord): void {
  if (local?.deleted && compareStamps(event.version.hlc, local.hlc) < 0) {
    expect(resolution.result.deleted).toBe(true);
    expect(resolution.result.value).toBeNull();
    expect(resolution.result.hlc).toBe(local.hlc);
  }
}

describe('resolve (tombstones)', () => {
  it('when a region deletes after seeing everything and all older events are then redelivered in any order, then every region stays deleted', () => {
    fc.assert(
      fc.property(scenarioArb({ maxSteps: 30 }), fc.nat(7), (scenario, deleter) => {
        const world = new World(scenario, noResurrection);
        world.runSteps();
        world.exchangeAll();
        const tombstone = world.write(deleter, true).version;
        // Every event again — the tombstone included — in the scenario's arbitrary order, with duplicates.
        world.exchangeAll();
        for (const r of world.replicas) {
          expect(r.state).toMatchObject({ value: null, deleted: true, hlc: tombstone.hlc });
        }
      }),
      fcRuns.params(100),
    );
  });

  it('when a tombstone has the greatest stamp among arbitrary versions, then every delivery order ends deleted', () => {
    fc.assert(
      fc.property(
        versionsArb({ minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (versions, keys) => {
          const top = versions.reduce((m, x) => (compareStamps(x.hlc, m.hlc) > 0 ? x : m));
          const tombstone: ItemVersion = { ...top, value: null, deleted: true };
          const all = versions.map((x) => (x === top ? tombstone : x));
          const order = [...all, ...all]
            .map((x, j) => ({ x, key: keys[j] ?? j, j }))
            .sort((p, q) => p.key - q.key || p.j - q.j)
            .map((p) => p.x);
          let state: ItemVersion | undefined;
          let deletedSince = false;
          for (const x of order) {
            state = resolve(state, x).result;
            if (x === tombstone) deletedSince = true;
            if (deletedSince) expect(state).toMatchObject({ value: null, deleted: true, hlc: tombstone.hlc });
          }
        },
      ),
      fcRuns.params(150),
    );
  });

  it('when any live version reaches a tombstone with a greater stamp, then the tombstone stays', () => {
    fc.assert(
      fc.property(versionArb(), versionArb(), (x, y) => {
        const [older, newer] = compareStamps(x.hlc, y.hlc) < 0 ? [x, y] : [y, x];
        fc.pre(compareStamps(older.hlc, newer.hlc) < 0);
        const tombstone: ItemVersion = { ...newer, value: null, deleted: true };
        const r = resolve(tombstone, { ...older, deleted: false });
        expect(r.result.deleted).toBe(true);
        expect(r.result.value).toBeNull();
        expect(r.result.hlc).toBe(tombstone.hlc);
      }),
      fcRuns.params(150),
    );
  });

  it('when an update that happened before a delete arrives after it, then it is stale and changes nothing', () => {
    const update: ItemVersion = {
      value: 'v1',
      deleted: false,
      hlc: { wall: 100, logical: 0, region: 'us' },
      vv: { us: 1 },
    };
    const del: ItemVersion = {
      value: null,
      deleted: true,
      hlc: { wall: 101, logical: 0, region: 'eu' },
      vv: { eu: 1, us: 1 },
    };
    const r = resolve(del, update);
    expect(r.outcome).toBe('stale');
    expect(r.changed).toBe(false);
    expect(r.result).toBe(del);
  });

  it('when a delete arrives before the update it deleted, then the tombstone is inserted and the late update is stale', () => {
    const update: ItemVersion = {
      value: 'v1',
      deleted: false,
      hlc: { wall: 100, logical: 0, region: 'us' },
      vv: { us: 1 },
    };
    const del: ItemVersion = {
      value: null,
      deleted: true,
      hlc: { wall: 101, logical: 0, region: 'eu' },
      vv: { eu: 1, us: 1 },
    };
    const inserted = resolve(undefined, del);
    expect(inserted.outcome).toBe('insert');
    const late = resolve(inserted.result, update);
    expect(late.outcome).toBe('stale');
    expect(late.result).toBe(del);
  });

  it('when an update concurrent with a delete has a smaller stamp, then the conflict keeps the tombstone', () => {
    const del: ItemVersion = {
      value: null,
      deleted: true,
      hlc: { wall: 200, logical: 0, region: 'eu' },
      vv: { eu: 1 },
    };
    const update: ItemVersion = {
      value: 'late',
      deleted: false,
      hlc: { wall: 199, logical: 5, region: 'us' },
      vv: { us: 1 },
    };
    const r = resolve(del, update);
    expect(r.outcome).toBe('conflict');
    expect(r.conflict).toEqual({ winner: del, loser: update, rule: 'lww-hlc' });
    expect(r.result).toEqual({ value: null, deleted: true, hlc: del.hlc, vv: { eu: 1, us: 1 } });
  });

  it('when a region writes after seeing a tombstone, then the item is created again by fast-forward (a new write, not a resurrection)', () => {
    const world = new World({
      regions: ['us', 'eu'],
      start: 1_700_000_000_000,
      offsets: [0, 0],
      steps: [],
      extra: [],
      orderKeys: [],
      applierObserves: true,
    });
    const created = world.write(0, false, 'v1');
    world.deliver(created, 1);
    const deleted = world.write(1, true);
    world.deliver(deleted, 0);
    const recreated = world.write(0, false, 'v2');
    expect(compareStamps(recreated.version.hlc, deleted.version.hlc)).toBe(1);
    const r = resolve(world.replicas[1]!.state, recreated.version);
    expect(r.outcome).toBe('fast-forward');
    expect(r.result).toEqual(recreated.version);
    // The old create, redelivered, does not undo either step.
    expect(resolve(r.result, created.version).outcome).toBe('stale');
    expect(resolve(r.result, deleted.version).outcome).toBe('stale');
  });
});
