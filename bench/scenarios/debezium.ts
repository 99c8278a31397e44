/**
 * The Debezium peer's side of #3 (replication lag) and #4 (catch-up), issue 13: the same rows (pgbench
 * running the write path's SQL, as for the logical-replication peer), at the same rates, into the
 * Debezium source database, measured the same way (commit timestamps in the source and in the sink).
 * See bench/lab/debeziumPeer.ts for the pipeline.
 */
import type pg from 'pg';
import { waitFor } from '../../infra/lab/waitFor.js';
import type { DebeziumPeer } from '../lab/debeziumPeer.js';
import { pgbench, UNIQUE_KEYSPACE } from '../load/pgbench.js';
import { commitPairs, commitTimes, countRows, lagsOf } from '../measure/commitTimes.js';
import { cpuMs } from '../measure/processStats.js';
import { distribution, percentileCurve, round, roundDistribution } from '../measure/stats.js';
import type { BenchContext } from './benchContext.js';
import { CATCH_UP_COLLECTION, sideOf, type CatchUpSide } from './catchUp.js';
import type { LagSide } from './replicationLag.js';

/** pgbench clients for the open-loop writes (as the logical-replication peer's). */
const PEER_CLIENTS = 16;

/**
 * Warm the pipeline (JIT of the worker, the sink's first statements) before the first measured rate:
 * 10 s of writes at 200/s, into a collection of its own.
 */
export async function warmDebezium(ctx: BenchContext, peer: DebeziumPeer, seconds = 10): Promise<void> {
  const collection = 'dbz-warm';
  await pgbench({
    binDir: ctx.pgBinDir,
    workDir: ctx.workDir,
    target: peer.pgbenchTarget(),
    collection,
    keyspace: UNIQUE_KEYSPACE,
    clients: 4,
    durationS: seconds,
    rate: 200,
    tag: 'dbz-warm',
  });
  await waitForSink(peer, collection, 60_000);
}

/**
 * One rate of #3 for Debezium: a 1 s warm-up (as hothot's), then `durationS` s of open-loop writes at
 * `rate` into the source; wait until the sink holds every row; lag per row = commit in the sink −
 * commit in the source.
 */
export async function debeziumLag(
  ctx: BenchContext,
  peer: DebeziumPeer,
  collection: string,
  rate: number,
  durationS: number,
  deadlineMs: number,
): Promise<LagSide> {
  const common = {
    binDir: ctx.pgBinDir,
    workDir: ctx.workDir,
    target: peer.pgbenchTarget(),
    keyspace: UNIQUE_KEYSPACE,
    clients: PEER_CLIENTS,
    rate,
  };
  await pgbench({ ...common, collection: `${collection}-warm`, durationS: 1, tag: `dbz-lag-${rate}-warm` });
  const cpu0 = workerCpuMs(peer);
  const g = await pgbench({ ...common, collection, durationS, tag: `dbz-lag-${rate}` });
  const done = await waitForSink(peer, collection, deadlineMs);
  const cpu = workerCpuMs(peer) - cpu0;
  if (!done) ctx.log(`Debezium ${rate}/s: the sink did not receive every row within ${deadlineMs / 1000} s`);
  const [o, t] = await Promise.all([
    commitTimes(peer.db('source'), collection, 'commit'),
    commitTimes(peer.db('sink'), collection, 'commit'),
  ]);
  const lags = lagsOf(commitPairs(o, t));
  return {
    ...roundDistribution(distribution(lags)),
    achievedPerS: round(g.processed / durationS),
    delivered: lags.length,
    written: o.size,
    curve: percentileCurve(lags).map(([q, v]) => [q, round(v)] as const),
    cpuMsPerRow: round(cpu / Math.max(1, lags.length)),
  };
}

/** CPU time (user + system) of the Kafka Connect worker so far, ms; NaN when unknown. */
function workerCpuMs(peer: DebeziumPeer): number {
  const pid = peer.pid;
  return pid === undefined ? Number.NaN : cpuMs(pid);
}

/**
 * #4 for Debezium: stop the sink connector, write `backlog` rows into the source as `backlog`
 * transactions of the same SQL (pgbench, 8 clients, as for logical replication), wait until the source
 * connector has published them all to Kafka (as hothot waits for `us`'s relay), resume the sink and
 * measure until the sink database holds them all. "Heal" is the resume request: the sink's task starts
 * again (consumer joins its group, Hibernate session factory built) and consumes from its committed
 * offsets.
 */
export async function debeziumCatchUp(
  ctx: BenchContext,
  peer: DebeziumPeer,
  backlog: number,
  deadlineMs: number,
): Promise<CatchUpSide> {
  const { log } = ctx;
  await peer.stopSink();
  const before = await peer.topicMessages();
  log(`Debezium sink stopped; writing the same ${backlog} rows into the source`);
  const clients = 8;
  const cpu0 = workerCpuMs(peer);
  const g0 = Date.now();
  await pgbench({
    binDir: ctx.pgBinDir,
    workDir: ctx.workDir,
    target: peer.pgbenchTarget(),
    collection: CATCH_UP_COLLECTION,
    keyspace: UNIQUE_KEYSPACE,
    clients,
    transactionsPerClient: Math.ceil(backlog / clients),
    tag: 'dbz-catchup',
  });
  const writeS = (Date.now() - g0) / 1000;
  const written = await countRows(peer.db('source'), CATCH_UP_COLLECTION);
  await waitFor(async () => (await peer.topicMessages()) - before >= written, {
    description: `Debezium's source to publish the ${written} rows to Kafka`,
    timeoutMs: deadlineMs,
    intervalMs: 200,
  });
  const cpu1 = workerCpuMs(peer);
  log(
    `the source published them (${Math.round((Date.now() - g0) / 1000)} s after the first write; ` +
      `worker CPU ${round((cpu1 - cpu0) / Math.max(1, written))} ms per row); resuming the sink`,
  );
  const resumeAt = Date.now();
  await peer.resumeSink();
  const complete = await waitForSink(peer, CATCH_UP_COLLECTION, deadlineMs);
  const side = await sideOf(peer.db('sink'), 'commit', resumeAt, written, complete, writeS);
  log(
    `the sink applied them: worker CPU ${round((workerCpuMs(peer) - cpu1) / Math.max(1, side.items))} ms per row`,
  );
  return side;
}

/** Wait until the sink holds as many rows of `collection` as the source; false on timeout. */
async function waitForSink(peer: DebeziumPeer, collection: string, timeoutMs: number): Promise<boolean> {
  const want = await countRows(peer.db('source'), collection);
  return waitForCount(peer.db('sink'), collection, want, timeoutMs);
}

async function waitForCount(pool: pg.Pool, collection: string, want: number, timeoutMs: number) {
  try {
    await waitFor(async () => (await countRows(pool, collection)) >= want, {
      description: `the Debezium sink to hold the ${want} rows of ${collection}`,
      timeoutMs,
      intervalMs: 100,
    });
    return true;
  } catch {
    return false;
  }
}
