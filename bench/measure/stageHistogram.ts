/**
 * Per-stage replication lag from the regions' own `hothot_replication_stage_seconds` histograms
 * (services/region/regionMetrics.ts): scraped from `/metrics` before and after a measured run, the
 * difference is the run's. The relay's stages are counted in the origin, the applier's in the peer.
 * Percentiles are interpolated within the histogram's buckets (as PromQL's histogram_quantile); the
 * mean is exact (sum ÷ count).
 */

const METRIC = 'hothot_replication_stage_seconds';

/** The stages on a change's way, in order; the two marked `beside` overlap the path (see the metric). */
export const STAGES = [
  { stage: 'written_to_claimed', label: 'written → claimed', region: 'origin', beside: false },
  { stage: 'claimed_to_sent', label: 'claimed → sent', region: 'origin', beside: false },
  { stage: 'sent_to_acked', label: 'sent → acked', region: 'origin', beside: true },
  { stage: 'acked_to_relay_committed', label: 'acked → outbox committed', region: 'origin', beside: true },
  { stage: 'sent_to_fetched', label: 'sent → fetched', region: 'peer', beside: false },
  { stage: 'fetched_to_applied', label: 'fetched → applied', region: 'peer', beside: false },
  { stage: 'applied_to_committed', label: 'applied → committed', region: 'peer', beside: false },
] as const;

/** One stage's histogram: cumulative counts by upper bound (seconds, ascending, ending at +Inf). */
export interface StageHistogram {
  readonly buckets: readonly (readonly [number, number])[];
  readonly sum: number;
  readonly count: number;
}

export type StageHistograms = ReadonlyMap<string, StageHistogram>;

export interface StageSummary {
  readonly stage: string;
  readonly label: string;
  readonly beside: boolean;
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  /** Changes per bucket (not cumulative): [upper bound in ms, count]; the last bound is Infinity. */
  readonly histogram: readonly (readonly [number, number])[];
}

/** The stage histograms in a Prometheus text exposition. */
export function parseStageHistograms(text: string): Map<string, StageHistogram> {
  const acc = new Map<string, { buckets: [number, number][]; sum: number; count: number }>();
  const entry = (stage: string) => {
    let e = acc.get(stage);
    if (e === undefined) acc.set(stage, (e = { buckets: [], sum: 0, count: 0 }));
    return e;
  };
  const line = new RegExp(`^${METRIC}_(bucket|sum|count)\\{([^}]*)\\}\\s+(\\S+)`);
  for (const l of text.split('\n')) {
    const m = line.exec(l);
    if (m === null) continue;
    const labels = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
    const stage = labels.stage;
    if (stage === undefined) continue;
    const value = Number(m[3]);
    const e = entry(stage);
    if (m[1] === 'sum') e.sum = value;
    else if (m[1] === 'count') e.count = value;
    else e.buckets.push([labels.le === '+Inf' ? Infinity : Number(labels.le), value]);
  }
  for (const e of acc.values()) e.buckets.sort((a, b) => a[0] - b[0]);
  return acc;
}

/** `after` − `before`, stage by stage (a stage absent before counts from zero). */
export function stageDelta(before: StageHistograms, after: StageHistograms): Map<string, StageHistogram> {
  const out = new Map<string, StageHistogram>();
  for (const [stage, a] of after) {
    const b = before.get(stage);
    const earlier = new Map(b?.buckets ?? []);
    out.set(stage, {
      buckets: a.buckets.map(([le, n]) => [le, n - (earlier.get(le) ?? 0)] as const),
      sum: a.sum - (b?.sum ?? 0),
      count: a.count - (b?.count ?? 0),
    });
  }
  return out;
}

/** The value at quantile `q` (0–1), interpolated linearly within its bucket; NaN when empty. */
export function histogramQuantile(h: StageHistogram, q: number): number {
  const total = h.buckets.at(-1)?.[1] ?? 0;
  if (total <= 0) return Number.NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, cumulative] of h.buckets) {
    if (cumulative >= rank) {
      // The top bucket has no upper bound: its lower bound is the best answer there is.
      if (!Number.isFinite(le)) return lower;
      const inBucket = cumulative - below;
      return inBucket === 0 ? le : lower + ((le - lower) * (rank - below)) / inBucket;
    }
    lower = le;
    below = cumulative;
  }
  return lower;
}

/** The stages of one run, in path order, in ms (stages with no changes left out). */
export function summarizeStages(delta: StageHistograms): StageSummary[] {
  const ms = (s: number) => Number((s * 1000).toPrecision(3));
  return STAGES.flatMap(({ stage, label, beside }) => {
    const h = delta.get(stage);
    if (h === undefined || h.count <= 0) return [];
    let previous = 0;
    const histogram = h.buckets.map(([le, cumulative]) => {
      const n = cumulative - previous;
      previous = cumulative;
      return [Number.isFinite(le) ? le * 1000 : Infinity, n] as const;
    });
    return [
      {
        stage,
        label,
        beside,
        count: h.count,
        meanMs: ms(h.sum / h.count),
        p50Ms: ms(histogramQuantile(h, 0.5)),
        p90Ms: ms(histogramQuantile(h, 0.9)),
        p99Ms: ms(histogramQuantile(h, 0.99)),
        histogram,
      },
    ];
  });
}

/** The stage histograms a region's `/metrics` shows now (`authorization`: a key that may read it). */
export async function scrapeStages(
  baseUrl: string,
  authorization: string,
): Promise<Map<string, StageHistogram>> {
  const res = await fetch(`${baseUrl}/metrics`, { headers: { authorization } });
  if (!res.ok) throw new Error(`GET ${baseUrl}/metrics answered ${res.status}`);
  return parseStageHistograms(await res.text());
}

/** The relay's stages from the origin's histograms, the applier's from the peer's. */
export function pathStages(origin: StageHistograms, peer: StageHistograms): Map<string, StageHistogram> {
  const out = new Map<string, StageHistogram>();
  for (const { stage, region } of STAGES) {
    const h = (region === 'origin' ? origin : peer).get(stage);
    if (h !== undefined) out.set(stage, h);
  }
  return out;
}
