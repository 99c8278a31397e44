import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareStamps } from '../../shared/domain/hlc.js';
import { Causality, compareVectors, mergeVectors } from '../../shared/domain/versionVector.js';
import { ResolutionOutcome, resolve, type ItemVersion } from '../../shared/domain/resolve.js';
import { World, scenarioArb, type ApplyRecord } from './support/replicas.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);
const RUNS = 150;

const seen = {
  insert: 0,
  'fast-forward': 0,
  stale: 0,
  conflict: 0,
  merged: 0,
  equalWallConflict: 0,
  tombstoneWins: 0,
};

/** Checks every single application against the rules, whatever the schedule. */
function checkApply({ local, event, resolution }: ApplyRecord): void {
  const incoming = event.version;
  seen[resolution.outcome] += 1;
  if (local === undefined) {
    expect(resolution).toEqual({ outcome: 'insert', result: incoming, changed: true });
    return;
  }
  const causality = compareVectors(incoming.vv, local.vv);
  const order = compareStamps(incoming.hlc, local.hlc);

  // Writers observe the row's stamp before stamping, so a dominating vector carries a greater stamp
  // and a state with the same history carries the same stamp. (A dominated event may carry the
  // state's own stamp: the state can be an earlier conflict's winner with a merged vector.)
  if (causality === Causality.After) expect(order).toBe(1);
  if (causality === Causality.Before) expect(order).toBeLessThanOrEqual(0);
  if (causality === Causality.Equal) expect(order).toBe(0);

  switch (causality) {
    case Causality.Before:
    case Causality.Equal:
      // Late or duplicate delivery: nothing changes.
      expect(resolution.outcome).toBe(ResolutionOutcome.Stale);
      expect(resolution.changed).toBe(false);
      expect(resolution.result).toBe(local);
      expect(resolution.conflict).toBeUndefined();
      break;
    case Causality.After:
      expect(resolution.outcome).toBe(ResolutionOutcome.FastForward);
      expect(resolution.changed).toBe(true);
      expect(resolution.result).toEqual(incoming);
      expect(resolution.conflict).toBeUndefined();
      break;
    case Causality.Concurrent: {
      expect(resolution.outcome).toBe(ResolutionOutcome.Conflict);
      const winner = order > 0 ? incoming : local;
      expect(resolution.conflict).toEqual({
        winner,
        loser: winner === incoming ? local : incoming,
        rule: 'lww-hlc',
      });
      expect(resolution.conflict!.winner).toBe(winner);
      expect(resolution.result).toEqual({ ...winner, vv: mergeVectors(local.vv, incoming.vv) });
      // The other region, holding `incoming` and receiving `local`, picks the same winner and state.
      const mirrored = resolve(incoming, local);
      expect(mirrored.outcome).toBe(ResolutionOutcome.Conflict);
      expect(mirrored.conflict!.winner).toBe(winner);
      expect(mirrored.result).toEqual(resolution.result);
      if (incoming.hlc.wall === local.hlc.wall) seen.equalWallConflict += 1;
      if (winner.deleted) seen.tombstoneWins += 1;
      break;
    }
  }
  // A replica's state only moves forward: stamp and vector never go back.
  expect(compareStamps(resolution.result.hlc, local.hlc)).toBeGreaterThanOrEqual(0);
  expect(['after', 'equal']).toContain(compareVectors(resolution.result.vv, local.vv));
}

const core = (v: ItemVersion | undefined) =>
  v && { value: v.value, deleted: v.deleted, hlc: v.hlc, vv: v.vv };

describe('resolve (convergence of replicas)', () => {
  it('when regions write and exchange events in any order with duplicates, then every replica ends identical, at the greatest-stamp version with the pointwise-max vector', () => {
    fc.assert(
      fc.property(scenarioArb(), (scenario) => {
        const world = new World(scenario, checkApply);
        world.runSteps();
        world.exchangeAll();

        const written = world.written();
        if (written.length === 0) {
          for (const r of world.replicas) expect(r.state).toBeUndefined();
          return;
        }
        // Causal invariant of the writers, over every pair of written versions.
        for (const a of written)
          for (const b of written)
            if (compareVectors(a.vv, b.vv) === Causality.After) expect(compareStamps(a.hlc, b.hlc)).toBe(1);

        const greatest = written.reduce((m, v) => (compareStamps(v.hlc, m.hlc) > 0 ? v : m));
        const vv = written.map((v) => v.vv).reduce(mergeVectors, {});
        const expected = { value: greatest.value, deleted: greatest.deleted, hlc: greatest.hlc, vv };
        for (const r of world.replicas) {
          expect(core(r.state)).toEqual(expected);
          // Same bytes too (key order of the vector included), so digests over rows agree.
          expect(JSON.stringify(core(r.state))).toBe(JSON.stringify(core(world.replicas[0]!.state)));
          expect(Object.hasOwn(r.state!.vv, r.region) ? r.state!.vv[r.region] : 0).toBe(
            world.events.filter((e) => e.origin === r.region).length,
          );
        }
      }),
      fcRuns.params(RUNS),
    );
    // The generator must reach every path; otherwise the property above proves little.
    if (fcRuns.params(RUNS).numRuns! >= 100) {
      expect(seen.insert).toBeGreaterThan(0);
      expect(seen['fast-forward']).toBeGreaterThan(0);
      expect(seen.stale).toBeGreaterThan(0);
      expect(seen.conflict).toBeGreaterThan(0);
      expect(seen.equalWallConflict).toBeGreaterThan(0);
      expect(seen.tombstoneWins).toBeGreaterThan(0);
    }
  });

  it('when a schedule is replayed, then it produces the same events and the same final states (determinism)', () => {
    fc.assert(
      fc.property(scenarioArb({ maxSteps: 25 }), (scenario) => {
        const run = () => {
          const w = new World(scenario);
          w.runSteps();
          w.exchangeAll();
          return { events: w.events, states: w.replicas.map((r) => r.state) };
        };
        expect(run()).toEqual(run());
      }),
      fcRuns.params(50),
    );
  });

  it('when the same events reach a fresh replica in two different orders with duplicates, then both replicas end identical', () => {
    fc.assert(
      fc.property(
        scenarioArb({ maxSteps: 30 }),
        fc.array(fc.nat(), { maxLength: 80 }),
        fc.array(fc.nat(), { maxLength: 80 }),
        (scenario, order1, order2) => {
          const world = new World(scenario);
          world.runSteps();
          const versions = world.written();
          const fold = (order: number[]) => {
            const seq = [
              ...versions,
              ...order.map((k) => versions[k % Math.max(1, versions.length)]!),
            ].filter(Boolean);
            const keyed = seq
              .map((v, j) => ({ v, key: order[j] ?? j, j }))
              .sort((a, b) => a.key - b.key || a.j - b.j);
            return keyed.reduce<ItemVersion | undefined>((s, { v }) => resolve(s, v).result, undefined);
          };
          expect(core(fold(order1))).toEqual(core(fold(order2)));
        },
      ),
      fcRuns.params(100),
    );
  });
});
