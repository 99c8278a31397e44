/**
 * A seeded chaos schedule: for each region, when it is down during a run of `durationMs`, so that each
 * region is down exactly a fraction `p` of the time, independently of the others — the assumptions of
 * the availability model A = 1 − P^N. Pure: the same seed gives the same schedule.
 *
 * Each region gets `k` outages of equal length (about `outageMs` each; k ≥ 1), placed uniformly at
 * random without overlap on a circle of length `durationMs` and then rotated by a random phase, so
 * every instant has the same chance `p` of being inside an outage of a region (no edge effects). An
 * outage that wraps past the end continues at the start. Regions are placed independently: the
 * fraction of time all are down is P^N on average, and the schedule reports what it is for this seed.
 */
import { seededRandom } from '../seededRandom.js';

export interface Interval {
  readonly from: number;
  readonly to: number;
}

export interface ChaosSchedule {
  readonly seed: number;
  readonly durationMs: number;
  readonly p: number;
  /** Per region, its down intervals in ms from the start, sorted and disjoint. */
  readonly down: Readonly<Record<string, readonly Interval[]>>;
  /** Fraction of the run during which every region is down (P^N on average over seeds). */
  readonly allDownFraction: number;
  /** Fraction during which at least one region is down (1 − (1 − P)^N on average). */
  readonly anyDownFraction: number;
}

export interface ChaosScheduleOptions {
  readonly seed: number;
  readonly regions: readonly string[];
  /** Fraction of the time each region is down, 0 ≤ p < 1. */
  readonly p: number;
  readonly durationMs: number;
  /** Target length of one outage. @default 12000 */
  readonly outageMs?: number;
}

export function chaosSchedule(options: ChaosScheduleOptions): ChaosSchedule {
  const { seed, regions, p, durationMs } = options;
  if (!(p >= 0 && p < 1)) throw new Error(`p must be in [0, 1), got ${p}`);
  if (!(durationMs > 0)) throw new Error('durationMs must be positive');
  const random = seededRandom(seed);
  const totalDown = p * durationMs;
  const down: Record<string, Interval[]> = {};
  for (const region of regions) {
    if (totalDown === 0) {
      down[region] = [];
      continue;
    }
    const k = Math.max(1, Math.round(totalDown / (options.outageMs ?? 12_000)));
    const length = totalDown / k;
    // k gaps summing to durationMs − totalDown, cut at k − 1 uniform points (uniform placement on a circle).
    const free = durationMs - totalDown;
    const cuts = [0, ...Array.from({ length: k - 1 }, () => random() * free), free].sort((a, b) => a - b);
    const phase = random() * durationMs;
    const pieces: Interval[] = [];
    let at = 0;
    for (let i = 0; i < k; i++) {
      at += cuts[i + 1]! - cuts[i]!;
      const from = (at + phase) % durationMs;
      const to = from + length;
      if (to <= durationMs) pieces.push({ from, to });
      else pieces.push({ from, to: durationMs }, { from: 0, to: to - durationMs });
      at += length;
    }
    down[region] = merge(pieces);
  }
  return {
    seed,
    durationMs,
    p,
    down,
    allDownFraction: measure(intersectAll(regions.map((r) => down[r]!))) / durationMs,
    anyDownFraction: measure(merge(regions.flatMap((r) => down[r]!))) / durationMs,
  };
}

/** Whether `t` lies in one of `intervals`. */
export function isDownAt(intervals: readonly Interval[], t: number): boolean {
  return intervals.some((i) => t >= i.from && t < i.to);
}

/** Sorted, disjoint union of `intervals` (touching ones joined). */
export function merge(intervals: readonly Interval[]): Interval[] {
  const sorted = [...intervals].filter((i) => i.to > i.from).sort((a, b) => a.from - b.from);
  const out: Interval[] = [];
  for (const i of sorted) {
    const last = out.at(-1);
    if (last !== undefined && i.from <= last.to)
      out[out.length - 1] = { from: last.from, to: Math.max(last.to, i.to) };
    else out.push(i);
  }
  return out;
}

/** Intersection of several unions of intervals (each sorted and disjoint). */
export function intersectAll(sets: readonly (readonly Interval[])[]): Interval[] {
  if (sets.length === 0) return [];
  let acc: Interval[] = [...sets[0]!];
  for (const set of sets.slice(1)) {
    const next: Interval[] = [];
    for (const a of acc)
      for (const b of set) {
        const from = Math.max(a.from, b.from);
        const to = Math.min(a.to, b.to);
        if (to > from) next.push({ from, to });
      }
    acc = merge(next);
  }
  return acc;
}

/** Total length of sorted, disjoint intervals. */
export function measure(intervals: readonly Interval[]): number {
  return intervals.reduce((sum, i) => sum + (i.to - i.from), 0);
}
