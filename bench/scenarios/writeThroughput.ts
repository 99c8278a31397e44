/**
 * #1 Write throughput of one region: closed-loop PUTs (autocannon) at growing concurrency against
 * region `us`, and pgbench running the write path's SQL on the same PostgreSQL server (database
 * `peer`) at the same concurrency. Best sustained rate with < 1 % errors wins for each.
 *
 * Also CPU per write (region process; PostgreSQL cluster incl. all backends) and the region's peak RSS.
 */
import { closedLoop, type ClosedLoopResult } from '../load/closedLoop.js';
import { seededRandom } from '../../infra/lab/seededRandom.js';
import { pgbench } from '../load/pgbench.js';
import { cpuMs, RssSampler } from '../measure/processStats.js';
import { round } from '../measure/stats.js';
import { putItem, type BenchContext } from './benchContext.js';
import { sleep } from '../../infra/lab/waitFor.js';

export const THROUGHPUT_COLLECTION = 'w';
export const THROUGHPUT_KEYSPACE = 100_000;
const MAX_ERROR_RATE = 0.01;

export interface ThroughputLevel {
  readonly concurrency: number;
  readonly hothot: {
    readonly okPerS: number;
    readonly errorRate: number;
    readonly p50Ms: number;
    readonly p99Ms: number;
    readonly regionCpuMsPerWrite: number;
    readonly postgresCpuMsPerWrite: number;
    readonly statusCodes: Record<string, number>;
  };
  readonly pgbench: {
    readonly tps: number;
    readonly errorRate: number;
    readonly latencyAvgMs: number;
    readonly postgresCpuMsPerWrite: number;
  };
}

export interface ThroughputResult {
  readonly durationS: number;
  readonly levels: readonly ThroughputLevel[];
  readonly hothotBest: { readonly concurrency: number; readonly okPerS: number };
  readonly pgbenchBest: { readonly concurrency: number; readonly tps: number };
  readonly ratio: number;
  /** Peak RSS of the `us` region process during the scenario, MiB. */
  readonly regionPeakRssMiB: number;
  readonly pgbenchCommand: string;
  /** The same region with 1, 2 and 4 API processes (`API_PROCESSES`): best of the concurrencies. */
  readonly byProcesses?: readonly ProcessesPoint[];
}

export interface ProcessesPoint {
  readonly processes: number;
  readonly okPerS: number;
  readonly concurrency: number;
  readonly errorRate: number;
  readonly p99Ms: number;
  /** Region (primary and workers) CPU per write, ms. */
  readonly regionCpuMsPerWrite: number;
  /** ÷ pgbench's best of the main levels. */
  readonly ratio: number;
}

/** Two halves of one closed-loop measurement as one (latency percentiles: the worse half's). */
function mergeClosedLoop(a: ClosedLoopResult, b: ClosedLoopResult): ClosedLoopResult {
  const ok = a.ok + b.ok;
  const failed = a.non2xx + a.errors + b.non2xx + b.errors;
  const statusCodes: Record<string, number> = { ...a.statusCodes };
  for (const [k, v] of Object.entries(b.statusCodes)) statusCodes[k] = (statusCodes[k] ?? 0) + v;
  return {
    connections: a.connections,
    ok,
    non2xx: a.non2xx + b.non2xx,
    errors: a.errors + b.errors,
    durationS: a.durationS + b.durationS,
    okPerS: ok / (a.durationS + b.durationS),
    errorRate: ok + failed === 0 ? 1 : failed / (ok + failed),
    latencyMs: {
      p50: Math.max(a.latencyMs.p50, b.latencyMs.p50),
      p99: Math.max(a.latencyMs.p99, b.latencyMs.p99),
      mean: (a.latencyMs.mean * a.ok + b.latencyMs.mean * b.ok) / Math.max(1, ok),
      max: Math.max(a.latencyMs.max, b.latencyMs.max),
    },
    statusCodes,
  };
}

async function backendsGone(ctx: BenchContext, database: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    const { rows } = await ctx.lab
      .db('us')
      .query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1', [database]);
    if (rows[0]?.n === '0') return;
    await sleep(50);
  }
}

export async function writeThroughput(ctx: BenchContext): Promise<ThroughputResult> {
  const { lab, quick, log } = ctx;
  const levels = quick ? [4, 16] : [1, 4, 16, 64];
  const durationS = quick ? 4 : 10;
  const us = lab.region('us');
  const pgPid = lab.cluster('us').pid ?? 0;
  const random = seededRandom(7);
  const request = (i: number) =>
    putItem(THROUGHPUT_COLLECTION, 1 + Math.floor(random() * THROUGHPUT_KEYSPACE), i);

  log(`warm-up: ${quick ? 2 : 3} s of PUTs at concurrency 16`);
  await closedLoop({
    baseUrl: us.url,
    authorization: lab.authorization,
    connections: 16,
    durationS: quick ? 2 : 3,
    request,
  });

  const rss = new RssSampler([us.pid]);
  const results: ThroughputLevel[] = [];
  let command = '';
  for (const c of levels) {
    // ABBA order (hothot, pgbench, pgbench, hothot), half the duration each: a drift in the load
    // others put on the machine hits both sides alike.
    const half = durationS / 2;
    const cpu = { region: 0, pgHothot: 0, pgPeer: 0 };
    const runHothot = async () => {
      const r0 = cpuMs(us.pid);
      const p0 = cpuMs(pgPid, true);
      const h = await closedLoop({
        baseUrl: us.url,
        authorization: lab.authorization,
        connections: c,
        durationS: half,
        request,
      });
      cpu.region += cpuMs(us.pid) - r0;
      cpu.pgHothot += cpuMs(pgPid, true) - p0;
      return h;
    };
    const runPgbench = async (part: number) => {
      const p0 = cpuMs(pgPid, true);
      const g = await pgbench({
        binDir: ctx.pgBinDir,
        workDir: ctx.workDir,
        target: lab.pgbenchTarget('peer'),
        collection: THROUGHPUT_COLLECTION,
        keyspace: THROUGHPUT_KEYSPACE,
        clients: c,
        durationS: half,
        tag: `throughput-${c}-${part}`,
      });
      await backendsGone(ctx, 'peer'); // so their CPU time is in the postmaster's reaped-children total
      cpu.pgPeer += cpuMs(pgPid, true) - p0;
      return g;
    };
    const h1 = await runHothot();
    const g1 = await runPgbench(1);
    const g2 = await runPgbench(2);
    const h2 = await runHothot();
    const h = mergeClosedLoop(h1, h2);
    const g = {
      ...g2,
      processed: g1.processed + g2.processed,
      failed: g1.failed + g2.failed,
      tps: (g1.tps + g2.tps) / 2,
    };
    g.errorRate = g.processed + g.failed === 0 ? 1 : g.failed / (g.processed + g.failed);
    command = g.command;
    const level: ThroughputLevel = {
      concurrency: c,
      hothot: {
        okPerS: round(h.okPerS),
        errorRate: h.errorRate,
        p50Ms: h.latencyMs.p50,
        p99Ms: h.latencyMs.p99,
        regionCpuMsPerWrite: round(cpu.region / Math.max(1, h.ok)),
        postgresCpuMsPerWrite: round(cpu.pgHothot / Math.max(1, h.ok)),
        statusCodes: h.statusCodes,
      },
      pgbench: {
        tps: round(g.tps),
        errorRate: g.errorRate,
        latencyAvgMs: round((g1.latencyAvgMs + g2.latencyAvgMs) / 2),
        postgresCpuMsPerWrite: round(cpu.pgPeer / Math.max(1, g.processed)),
      },
    };
    results.push(level);
    log(
      `concurrency ${c}: hothot ${level.hothot.okPerS} req/s (errors ${(h.errorRate * 100).toFixed(2)} %, p99 ${h.latencyMs.p99} ms), ` +
        `pgbench ${level.pgbench.tps} tx/s → ${(level.hothot.okPerS / level.pgbench.tps).toFixed(2)}×`,
    );
  }
  const peak = rss.stop().get(us.pid) ?? Number.NaN;
  const okLevels = results.filter((l) => l.hothot.errorRate < MAX_ERROR_RATE);
  const hBest = okLevels.reduce<ThroughputLevel | undefined>(
    (b, l) => (!b || l.hothot.okPerS > b.hothot.okPerS ? l : b),
    undefined,
  );
  const gBest = results
    .filter((l) => l.pgbench.errorRate < MAX_ERROR_RATE)
    .reduce<ThroughputLevel | undefined>((b, l) => (!b || l.pgbench.tps > b.pgbench.tps ? l : b), undefined);
  const hothotBest = { concurrency: hBest?.concurrency ?? 0, okPerS: hBest?.hothot.okPerS ?? 0 };
  const pgbenchBest = { concurrency: gBest?.concurrency ?? 0, tps: gBest?.pgbench.tps ?? Number.NaN };
  const byProcesses = await throughputByProcesses(ctx, request, pgbenchBest.tps);
  return {
    durationS,
    levels: results,
    hothotBest,
    pgbenchBest,
    ratio: round(hothotBest.okPerS / pgbenchBest.tps),
    regionPeakRssMiB: round(peak),
    pgbenchCommand: command,
    byProcesses,
  };
}

/**
 * The region's write throughput by API processes (node:cluster workers on one port, one of them
 * leading the relay): `us` restarted alone with API_PROCESSES = 1, 2, 4 (eu stays stopped), a warm-up,
 * then closed-loop PUTs at 16 and 64 connections; the best with < 1 % errors. Left on the run's own
 * setting afterwards.
 */
async function throughputByProcesses(
  ctx: BenchContext,
  request: (i: number) => ReturnType<typeof putItem>,
  pgbenchTps: number,
): Promise<ProcessesPoint[]> {
  const { lab, quick, log } = ctx;
  const durationS = quick ? 3 : 6;
  const points: ProcessesPoint[] = [];
  try {
    for (const processes of [1, 2, 4]) {
      await lab.restartRegion('us', { API_PROCESSES: String(processes) });
      const us = lab.region('us');
      const common = { baseUrl: us.url, authorization: lab.authorization, request };
      await closedLoop({ ...common, connections: 16, durationS: quick ? 1 : 2 });
      let best: ProcessesPoint | undefined;
      for (const connections of [16, 64]) {
        const c0 = cpuMs(us.pid, true);
        const r = await closedLoop({ ...common, connections, durationS });
        const point: ProcessesPoint = {
          processes,
          okPerS: round(r.okPerS),
          concurrency: connections,
          errorRate: r.errorRate,
          p99Ms: r.latencyMs.p99,
          regionCpuMsPerWrite: round((cpuMs(us.pid, true) - c0) / Math.max(1, r.ok)),
          ratio: round(r.okPerS / pgbenchTps),
        };
        if (r.errorRate < MAX_ERROR_RATE && (!best || point.okPerS > best.okPerS)) best = point;
      }
      if (best) points.push(best);
      log(
        best
          ? `${processes} API process(es): ${best.okPerS} req/s @${best.concurrency} (${best.ratio}× pgbench's best)`
          : `${processes} API process(es): no level with < 1 % errors`,
      );
    }
  } finally {
    await lab.restartRegion('us', {});
  }
  return points;
}
