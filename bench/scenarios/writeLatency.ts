/**
 * #2 Write latency at a fixed rate: open-loop PUTs (Poisson arrivals, latency from the scheduled
 * start) against `us`, and `pgbench -R` (same semantics) running the write SQL, at the same rate.
 * The rate is 50 % of pgbench's best throughput from #1 (the definition); a second point at
 * 50 % of hothot's own best shows the latency where hothot is not overloaded.
 */
import { seededRandom } from '../../infra/lab/seededRandom.js';
import { openLoop } from '../load/openLoop.js';
import { pgbench } from '../load/pgbench.js';
import { distribution, round, roundDistribution, type Distribution } from '../measure/stats.js';
import { putItem, waitForResponsive, type BenchContext } from './benchContext.js';
import { THROUGHPUT_COLLECTION, THROUGHPUT_KEYSPACE } from './writeThroughput.js';

const CONNECTIONS = 32;

export interface LatencyPoint {
  /** What the rate is 50 % of. */
  readonly basis: 'pgbench max' | 'hothot max';
  readonly rate: number;
  readonly hothot: Distribution & {
    readonly achievedPerS: number;
    readonly failed: number;
    readonly dropped: number;
  };
  readonly pgbench: Distribution & { readonly achievedPerS: number; readonly failed: number };
  /** hothot p99 − pgbench p99, ms (target ≤ 3). */
  readonly p99DeltaMs: number;
}

export interface LatencyResult {
  readonly durationS: number;
  readonly connections: number;
  readonly points: readonly LatencyPoint[];
}

/**
 * The rates #2 measures: 50 % of hothot's own max (the target's point) and 50 % of pgbench's, which
 * is beyond what hothot serves and shows how far. A quick run measures only the target's (when
 * hothot's max is known), so that quick runs can compare #2.
 */
export function latencyBases(
  quick: boolean,
  pgbenchMax: number,
  hothotMax: number,
): { basis: LatencyPoint['basis']; rate: number }[] {
  const hothotKnown = Number.isFinite(hothotMax) && hothotMax > 0;
  const bases: { basis: LatencyPoint['basis']; rate: number }[] = [];
  if (!quick || !hothotKnown) bases.push({ basis: 'pgbench max', rate: Math.round(pgbenchMax / 2) });
  if (hothotKnown) bases.push({ basis: 'hothot max', rate: Math.round(hothotMax / 2) });
  return bases;
}

export async function writeLatency(
  ctx: BenchContext,
  pgbenchMax: number,
  hothotMax: number,
): Promise<LatencyResult> {
  const { lab, quick, log } = ctx;
  const durationS = quick ? 6 : 16; // even: pgbench -T takes whole seconds
  const bases = latencyBases(quick, pgbenchMax, hothotMax);
  const points: LatencyPoint[] = [];
  for (const { basis, rate } of bases) {
    if (!(rate > 0)) continue;
    const random = seededRandom(11);
    const half = durationS / 2;
    // ABBA order (hothot, pgbench, pgbench, hothot), half the duration each, so that a drift in the
    // load others put on this machine hits both sides alike.
    const runHothot = async () => {
      const r = await openLoop({
        baseUrl: lab.region('us').url,
        authorization: lab.authorization,
        rate,
        durationMs: half * 1000,
        connections: CONNECTIONS,
        request: (i) => putItem(THROUGHPUT_COLLECTION, 1 + Math.floor(random() * THROUGHPUT_KEYSPACE), i),
      });
      const settledMs = await waitForResponsive(lab, 'us');
      if (settledMs > 1000) log(`us worked off its queued requests in ${(settledMs / 1000).toFixed(1)} s`);
      return r;
    };
    const runPgbench = (part: number) =>
      pgbench({
        binDir: ctx.pgBinDir,
        workDir: ctx.workDir,
        target: lab.pgbenchTarget('peer'),
        collection: THROUGHPUT_COLLECTION,
        keyspace: THROUGHPUT_KEYSPACE,
        clients: CONNECTIONS,
        durationS: half,
        rate,
        logLatencies: true,
        tag: `latency-${rate}-${part}`,
      });
    const h1 = await runHothot();
    const g1 = await runPgbench(1);
    const g2 = await runPgbench(2);
    const h2 = await runHothot();
    const h = {
      ok: h1.ok + h2.ok,
      failed: h1.failed + h2.failed,
      dropped: h1.dropped + h2.dropped,
      latenciesMs: [...h1.latenciesMs, ...h2.latenciesMs],
    };
    const g = {
      processed: g1.processed + g2.processed,
      failed: g1.failed + g2.failed,
      latenciesMs: [...(g1.latenciesMs ?? []), ...(g2.latenciesMs ?? [])],
    };
    const hd = roundDistribution(distribution(h.latenciesMs));
    const gd = roundDistribution(distribution(g.latenciesMs ?? []));
    const point: LatencyPoint = {
      basis,
      rate,
      hothot: { ...hd, achievedPerS: round(h.ok / durationS), failed: h.failed, dropped: h.dropped },
      pgbench: { ...gd, achievedPerS: round(g.processed / durationS), failed: g.failed },
      p99DeltaMs: round(hd.p99 - gd.p99),
    };
    points.push(point);
    log(
      `${rate}/s (50 % of ${basis}): hothot p50 ${hd.p50} ms p99 ${hd.p99} ms (${point.hothot.achievedPerS}/s achieved), ` +
        `pgbench p50 ${gd.p50} ms p99 ${gd.p99} ms`,
    );
  }
  return { durationS, connections: CONNECTIONS, points };
}
