import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolve, type ItemVersion } from '../../shared/domain/resolve.js';
import { World, scenarioArb } from './support/replicas.js';
import { versionsArb } from './support/arbitraries.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

describe('resolve (duplicate delivery)', () => {
  it('when any event a replica has already applied is delivered again, at any later point, then the outcome is stale and nothing changes', () => {
    fc.assert(
      fc.property(scenarioArb({ maxSteps: 30 }), fc.array(fc.nat(), { maxLength: 10 }), (scenario, picks) => {
        const applied = new Map<string, Set<number>>();
        const world = new World(scenario, ({ at, event }) => {
          const s = applied.get(at) ?? new Set<number>();
          s.add(event.id);
          applied.set(at, s);
        });
        const redeliver = () => {
          for (const r of world.replicas) {
            const ids = [...(applied.get(r.region) ?? [])];
            for (const k of picks.length > 0 ? picks : [0]) {
              if (ids.length === 0) break;
              const e = world.events[ids[k % ids.length]!]!;
              const before = r.state;
              const res = resolve(before, e.version);
              expect(res.outcome).toBe('stale');
              expect(res.changed).toBe(false);
              expect(res.result).toBe(before);
              expect(res.conflict).toBeUndefined();
            }
          }
        };
        for (const step of scenario.steps) {
          world.step(step);
          redeliver();
        }
        world.exchangeAll();
        redeliver();
      }),
      fcRuns.params(100),
    );
  });

  it('when the same event is delivered twice in a row, then the second delivery is stale with changed=false', () => {
    const first: ItemVersion = {
      value: 1,
      deleted: false,
      hlc: { wall: 10, logical: 0, region: 'us' },
      vv: { us: 1 },
    };
    const next: ItemVersion = {
      value: 2,
      deleted: false,
      hlc: { wall: 11, logical: 0, region: 'eu' },
      vv: { eu: 1, us: 1 },
    };
    const s1 = resolve(first, next);
    expect(s1).toMatchObject({ outcome: 'fast-forward', changed: true });
    const s2 = resolve(s1.result, next);
    expect(s2).toEqual({ outcome: 'stale', result: s1.result, changed: false });
    expect(s2.result).toBe(s1.result);
  });

  it('when a conflict was resolved and either side is delivered again, then it is stale, not a second conflict', () => {
    const a: ItemVersion = {
      value: 'a',
      deleted: false,
      hlc: { wall: 10, logical: 0, region: 'us' },
      vv: { us: 1 },
    };
    const b: ItemVersion = {
      value: 'b',
      deleted: false,
      hlc: { wall: 10, logical: 0, region: 'eu' },
      vv: { eu: 1 },
    };
    const merged = resolve(a, b);
    expect(merged.outcome).toBe('conflict');
    for (const again of [a, b]) {
      const r = resolve(merged.result, again);
      expect(r.outcome).toBe('stale');
      expect(r.changed).toBe(false);
      expect(r.conflict).toBeUndefined();
    }
  });

  it('when arbitrary versions are folded and any of them is delivered again, then changed is false and the state object is kept', () => {
    fc.assert(
      fc.property(versionsArb({ minLength: 1, maxLength: 6 }), fc.nat(), (vs, pick) => {
        const state = vs.reduce<ItemVersion | undefined>((s, v) => resolve(s, v).result, undefined)!;
        const r = resolve(state, vs[pick % vs.length]!);
        expect(r.changed).toBe(false);
        expect(r.result).toBe(state);
      }),
      fcRuns.params(150),
    );
  });
});
