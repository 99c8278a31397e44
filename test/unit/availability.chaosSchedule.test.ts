/**
 * The availability study's chaos schedule (infra/lab/availability/chaosSchedule.ts): each region down
 * exactly P of the run, the same schedule for the same seed, and over many seeds every instant down with
 * probability P and all regions down about P^N of the time — the model's assumptions.
 */
import { describe, expect, it } from 'vitest';
import {
  chaosSchedule,
  intersectAll,
  isDownAt,
  measure,
  merge,
} from '../../infra/lab/availability/chaosSchedule.js';

const REGIONS = ['us', 'eu', 'ap'];

describe('chaosSchedule', () => {
  it('when built for P and a duration, then each region is down exactly P of it, in disjoint intervals inside the run', () => {
    for (let seed = 1; seed <= 200; seed++) {
      for (const p of [0.05, 0.2, 0.5]) {
        const s = chaosSchedule({ seed, regions: REGIONS, p, durationMs: 60_000 });
        for (const r of REGIONS) {
          const down = s.down[r]!;
          expect(measure(down) / 60_000).toBeCloseTo(p, 9);
          for (const i of down) {
            expect(i.from).toBeGreaterThanOrEqual(0);
            expect(i.to).toBeLessThanOrEqual(60_000);
            expect(i.to).toBeGreaterThan(i.from);
          }
          for (let k = 1; k < down.length; k++) expect(down[k]!.from).toBeGreaterThan(down[k - 1]!.to);
        }
      }
    }
  });

  it('when given the same seed, then it gives the same schedule; another seed, another one', () => {
    const a = chaosSchedule({ seed: 7, regions: REGIONS, p: 0.2, durationMs: 120_000 });
    expect(chaosSchedule({ seed: 7, regions: REGIONS, p: 0.2, durationMs: 120_000 })).toEqual(a);
    expect(chaosSchedule({ seed: 8, regions: REGIONS, p: 0.2, durationMs: 120_000 }).down).not.toEqual(
      a.down,
    );
  });

  it('when averaged over seeds, then every instant is down with probability P and all regions are down P^N of the time', () => {
    const p = 0.3;
    const seeds = 2_000;
    let allDown = 0;
    const probes = [0, 5_000, 29_999, 59_999];
    const downAt = probes.map(() => 0);
    for (let seed = 1; seed <= seeds; seed++) {
      const s = chaosSchedule({ seed, regions: ['us', 'eu'], p, durationMs: 60_000 });
      allDown += s.allDownFraction;
      probes.forEach((t, i) => (downAt[i]! += isDownAt(s.down.us!, t) ? 1 : 0));
    }
    // Binomial(2000, 0.3): sd ≈ 0.010; 5 sd.
    for (const d of downAt) expect(Math.abs(d / seeds - p)).toBeLessThan(0.05);
    expect(Math.abs(allDown / seeds - p ** 2)).toBeLessThan(0.02);
  });

  it('when P is 0, then nothing is ever down; a P outside [0, 1) is refused', () => {
    const s = chaosSchedule({ seed: 1, regions: REGIONS, p: 0, durationMs: 10_000 });
    expect(Object.values(s.down).every((d) => d.length === 0)).toBe(true);
    expect(s.allDownFraction).toBe(0);
    expect(() => chaosSchedule({ seed: 1, regions: REGIONS, p: 1, durationMs: 10_000 })).toThrow(/p must be/);
  });

  it('when intervals are merged and intersected, then touching ones join and only common time remains', () => {
    expect(
      merge([
        { from: 5, to: 8 },
        { from: 0, to: 5 },
        { from: 10, to: 12 },
      ]),
    ).toEqual([
      { from: 0, to: 8 },
      { from: 10, to: 12 },
    ]);
    expect(
      intersectAll([
        [{ from: 0, to: 10 }],
        [
          { from: 2, to: 4 },
          { from: 8, to: 20 },
        ],
      ]),
    ).toEqual([
      { from: 2, to: 4 },
      { from: 8, to: 10 },
    ]);
  });
});
