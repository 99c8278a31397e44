/** Percentiles from sorted arrays (exact, no histogram bucketing) and small summaries. */

export interface Distribution {
  readonly count: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/** Percentile curve points for charts: [percentile (0–100), value]. */
export type PercentileCurve = readonly (readonly [number, number])[];

/** The value at percentile `p` (0–100) of an ascending array: nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function sortNumbers(values: readonly number[]): number[] {
  return Float64Array.from(values).sort() as unknown as number[];
}

export function distribution(values: readonly number[]): Distribution {
  const sorted = Array.from(sortNumbers(values));
  const n = sorted.length;
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: n,
    min: n ? sorted[0]! : Number.NaN,
    mean: n ? sum / n : Number.NaN,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: n ? sorted[n - 1]! : Number.NaN,
  };
}

/** Points of the percentile curve at 0, 10, …, 90, 95, 99, 99.5, 99.9, 99.95, 99.99 and 100. */
export function percentileCurve(values: readonly number[]): PercentileCurve {
  const sorted = Array.from(sortNumbers(values));
  if (sorted.length === 0) return [];
  const ps = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97, 99, 99.5, 99.9, 99.95, 99.99, 100];
  return ps.map((p) => [p, p === 0 ? sorted[0]! : percentile(sorted, p)] as const);
}

/** Round for reports: 3 significant digits below 100, integers above. */
export function round(v: number): number {
  if (!Number.isFinite(v)) return v;
  if (Math.abs(v) >= 100) return Math.round(v);
  return Number(v.toPrecision(3));
}

export function roundDistribution(d: Distribution): Distribution {
  return {
    count: d.count,
    min: round(d.min),
    mean: round(d.mean),
    p50: round(d.p50),
    p90: round(d.p90),
    p99: round(d.p99),
    p999: round(d.p999),
    max: round(d.max),
  };
}
