/**
 * #3 Replication lag at fixed write rates into `us` (open loop, unique keys), hothot (us → eu) vs
 * native logical replication (pub → sub) carrying the same rows at the same rate (pgbench -R running
 * the write SQL on pub). Lag per row = time the row landed in the target − commit time in the
 * origin, read from PostgreSQL after the run (see measure/commitTimes.ts).
 */
import { readHostCpu, sideHostCpu, type HostCpuShare, type HostCpuTimes } from '../measure/hostCpu.js';
import { openLoop } from '../load/openLoop.js';
import { pgbench, UNIQUE_KEYSPACE } from '../load/pgbench.js';
import { commitPairs, commitTimes, lagsOf } from '../measure/commitTimes.js';
import {
  distribution,
  percentileCurve,
  round,
  roundDistribution,
  type Distribution,
  type PercentileCurve,
} from '../measure/stats.js';
import { putItem, waitForQuiet, waitForResponsive, waitForRows, type BenchContext } from './benchContext.js';
import type { DebeziumPeer } from '../lab/debeziumPeer.js';
import {
  pathStages,
  scrapeStages,
  stageDelta,
  summarizeStages,
  type StageSummary,
} from '../measure/stageHistogram.js';
import { debeziumLag, warmDebezium } from './debezium.js';

/** pgbench clients for the peer's open-loop writes: enough that the rate, not the clients, bounds it. */
const PEER_CLIENTS = 16;

export interface LagSide extends Distribution {
  /** Writes committed in the origin per second, over the load phase. */
  readonly achievedPerS: number;
  /** Rows that reached the target within the deadline / rows written. */
  readonly delivered: number;
  readonly written: number;
  readonly curve: PercentileCurve;
  /** CPU time of the peer's own process per row delivered, ms (the Debezium peer's Kafka Connect worker). */
  readonly cpuMsPerRow?: number;
  /**
   * The machine's CPU while this side ran, writes through delivery (bench/measure/hostCpu.ts): the
   * sides of a rate run one after the other, and the host may change between them. Absent in older
   * results.
   */
  readonly host?: HostCpuShare;
}

export interface LagPoint {
  readonly rate: number;
  readonly hothot: LagSide;
  readonly logical: LagSide;
  readonly p50Ratio: number;
  readonly p99Ratio: number;
  /** The Debezium peer (issue 13), when it ran: same rows, same rate, measured right after logical. */
  readonly debezium?: LagSide;
  /** hothot ÷ Debezium. */
  readonly p50RatioDebezium?: number;
  readonly p99RatioDebezium?: number;
  /** Where hothot's lag went, stage by stage (the regions' stage histograms over the measured run). */
  readonly stages?: readonly StageSummary[];
}

/** `side` with the machine's CPU since `before` (see LagSide.host). */
function withHost(side: LagSide, before: HostCpuTimes | undefined): LagSide {
  const host = sideHostCpu(before);
  return host === undefined ? side : { ...side, host };
}

export interface LagResult {
  readonly durationS: number;
  readonly points: readonly LagPoint[];
}

/**
 * Writes into us at `rate` per second: a one-second warm-up of the path (into `<collection>-warm`),
 * then the measured run of `durationS` seconds into `collection`, one new key per request.
 */
export async function writeToUs(
  lab: BenchContext['lab'],
  collection: string,
  rate: number,
  durationS: number,
  afterWarmUp?: () => Promise<void>,
): ReturnType<typeof openLoop> {
  const common = { baseUrl: lab.region('us').url, authorization: lab.authorization, rate, connections: 32 };
  await openLoop({ ...common, durationMs: 1000, request: (i) => putItem(`${collection}-warm`, i) });
  await afterWarmUp?.();
  return openLoop({
    ...common,
    durationMs: durationS * 1000,
    seed: rate,
    request: (i) => putItem(collection, i, i),
  });
}

export async function replicationLag(
  ctx: BenchContext,
  rates: readonly number[],
  debezium?: DebeziumPeer,
): Promise<LagResult> {
  const { lab, quick, log } = ctx;
  const durationS = quick ? 5 : 15;
  const deadlineMs = quick ? 60_000 : 120_000;
  const points: LagPoint[] = [];
  if (debezium) await warmDebezium(ctx, debezium);
  for (const rate of rates) {
    const collection = `lag${rate}`;

    // The stage histograms over the measured run: scraped once the warm-up's rows are through.
    let before: Awaited<ReturnType<typeof scrapeAll>> | undefined;
    const hCpu = readHostCpu();
    const h = await writeToUs(lab, collection, rate, durationS, async () => {
      await waitForRows(lab, 'us', 'eu', `${collection}-warm`, deadlineMs);
      before = await scrapeAll(ctx);
    });
    const settledMs = await waitForResponsive(lab, 'us');
    if (settledMs > 1000) log(`us worked off its queued requests in ${(settledMs / 1000).toFixed(1)} s`);
    const hDone = await waitForRows(lab, 'us', 'eu', collection, deadlineMs);
    const hothot = withHost(side(await pairsOf(ctx, 'us', 'eu', collection), h.ok, durationS), hCpu);
    if (!hDone) log(`hothot ${rate}/s: eu did not receive every row within ${deadlineMs / 1000} s`);
    const after = await scrapeAll(ctx);
    const stages = summarizeStages(
      pathStages(stageDelta(before!.origin, after.origin), stageDelta(before!.peer, after.peer)),
    );

    // native logical replication
    const gCpu = readHostCpu();
    const g = await pgbench({
      binDir: ctx.pgBinDir,
      workDir: ctx.workDir,
      target: lab.pgbenchTarget('pub'),
      collection,
      keyspace: UNIQUE_KEYSPACE,
      clients: PEER_CLIENTS,
      durationS,
      rate,
      tag: `lag-${rate}`,
    });
    const gDone = await waitForRows(lab, 'pub', 'sub', collection, deadlineMs);
    const logical = withHost(
      side(await pairsOf(ctx, 'pub', 'sub', collection), g.processed, durationS),
      gCpu,
    );
    if (!gDone)
      log(`logical replication ${rate}/s: sub did not receive every row within ${deadlineMs / 1000} s`);

    const dCpu = readHostCpu();
    const dbz = debezium
      ? withHost(await debeziumLag(ctx, debezium, collection, rate, durationS, deadlineMs), dCpu)
      : undefined;

    const point: LagPoint = {
      rate,
      hothot,
      logical,
      p50Ratio: round(hothot.p50 / logical.p50),
      p99Ratio: round(hothot.p99 / logical.p99),
      ...(dbz
        ? {
            debezium: dbz,
            p50RatioDebezium: round(hothot.p50 / dbz.p50),
            p99RatioDebezium: round(hothot.p99 / dbz.p99),
          }
        : {}),
      stages,
    };
    points.push(point);
    log(
      `${rate}/s: hothot lag p50 ${hothot.p50} p99 ${hothot.p99} max ${hothot.max} ms (${hothot.achievedPerS}/s); ` +
        `logical p50 ${logical.p50} p99 ${logical.p99} max ${logical.max} ms → p50 ${point.p50Ratio}×, p99 ${point.p99Ratio}×` +
        (dbz
          ? `; Debezium p50 ${dbz.p50} p99 ${dbz.p99} max ${dbz.max} ms (${dbz.delivered}/${dbz.written} rows, ${dbz.achievedPerS}/s, worker CPU ${dbz.cpuMsPerRow} ms/row) → p50 ${point.p50RatioDebezium}×, p99 ${point.p99RatioDebezium}×`
          : ''),
    );
    log(
      `${rate}/s stages (mean / p99 ms): ` +
        stages.map((s) => `${s.label} ${s.meanMs} / ${s.p99Ms}${s.beside ? ' (beside)' : ''}`).join(', '),
    );
    await waitForQuiet(lab, 60_000);
  }
  return { durationS, points };
}

/** Both hothot regions' stage histograms now: the relay's in us, the applier's in eu. */
async function scrapeAll(ctx: BenchContext) {
  const [origin, peer] = await Promise.all([
    scrapeStages(ctx.lab.region('us').url, ctx.lab.authorization),
    scrapeStages(ctx.lab.region('eu').url, ctx.lab.authorization),
  ]);
  return { origin, peer };
}

async function pairsOf(ctx: BenchContext, origin: 'us' | 'pub', target: 'eu' | 'sub', collection: string) {
  const { lab } = ctx;
  const [o, t] = await Promise.all([
    commitTimes(lab.db(origin), collection, lab.landedClock(origin)),
    commitTimes(lab.db(target), collection, lab.landedClock(target)),
  ]);
  return { pairs: commitPairs(o, t), written: o.size };
}

function side(
  p: { pairs: ReturnType<typeof commitPairs>; written: number },
  committed: number,
  durationS: number,
): LagSide {
  const lags = lagsOf(p.pairs);
  return {
    ...roundDistribution(distribution(lags)),
    achievedPerS: round(committed / durationS),
    delivered: p.pairs.length,
    written: p.written,
    curve: percentileCurve(lags).map(([q, v]) => [q, round(v)] as const),
  };
}
