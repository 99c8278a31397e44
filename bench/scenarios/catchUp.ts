/**
 * #4 Catch-up after a partition. hothot: cut `eu`'s broker link, write N new items into `us`
 * (closed loop, 32 connections), wait until `us`'s relay has published them all, heal, and measure
 * until `eu` holds all N. Peer: disable the logical-replication subscription, write the same N rows
 * into `pub` as N transactions of the same SQL (pgbench), enable, and measure until `sub` holds all.
 *
 * Two rates per system, from when rows landed in the target (see measure/commitTimes.ts):
 * - heal → done: N / (last apply commit − heal time) — what a user waits, reconnection included;
 * - apply only: N / (last apply commit − first apply commit).
 */
import type pg from 'pg';
import { closedLoop } from '../load/closedLoop.js';
import { pgbench, UNIQUE_KEYSPACE } from '../load/pgbench.js';
import { commitTimes, countRows, type LandedClock } from '../measure/commitTimes.js';
import { RssSampler } from '../measure/processStats.js';
import { round } from '../measure/stats.js';
import { waitFor } from '../../infra/lab/waitFor.js';
import { SUBSCRIPTION } from '../lab/benchLab.js';
import { outboxRows, putItem, waitForQuiet, waitForRows, type BenchContext } from './benchContext.js';
import type { DebeziumPeer } from '../lab/debeziumPeer.js';
import { debeziumCatchUp } from './debezium.js';

export const CATCH_UP_COLLECTION = 'catchup';

export interface CatchUpSide {
  readonly items: number;
  /** Time to write the backlog, s. */
  readonly writeS: number;
  /** Heal/enable → last row applied, s. */
  readonly healToDoneS: number;
  /** Heal/enable → first row applied, s. */
  readonly healToFirstS: number;
  readonly eventsPerS: number;
  readonly applyOnlyEventsPerS: number;
  readonly complete: boolean;
}

export interface CatchUpResult {
  /** Events in the backlog (written within the time bound). */
  readonly items: number;
  /** Events the scenario aimed for. */
  readonly requested: number;
  readonly hothot: CatchUpSide;
  readonly logical: CatchUpSide;
  readonly ratio: number;
  readonly applyOnlyRatio: number;
  /** Peak RSS of the region processes during the scenario, MiB. */
  readonly peakRssMiB: { readonly us: number; readonly eu: number };
  /** The Debezium peer (issue 13), when it ran: sink stopped, same backlog, sink resumed. */
  readonly debezium?: CatchUpSide;
  /** hothot ÷ Debezium, heal → done and apply only. */
  readonly ratioDebezium?: number;
  readonly applyOnlyRatioDebezium?: number;
}

export async function catchUp(ctx: BenchContext, debezium?: DebeziumPeer): Promise<CatchUpResult> {
  const { lab, quick, log } = ctx;
  const items = quick ? 10_000 : 100_000;
  // Writing the backlog is bounded in time: on a slow (shared) machine fewer items are written, and
  // the peer then carries exactly as many.
  const maxWriteS = quick ? 25 : 120;
  const deadlineMs = quick ? 120_000 : 300_000;
  const us = lab.region('us');
  const eu = lab.region('eu');
  const rss = new RssSampler([us.pid, eu.pid]);

  // hothot
  await lab.cut('eu');
  log(`eu's broker link cut; writing up to ${items} items into us (at most ${maxWriteS} s)`);
  let writeS = 0;
  try {
    const w0 = Date.now();
    const written = await closedLoop({
      baseUrl: us.url,
      authorization: lab.authorization,
      connections: 32,
      amount: items,
      maxDurationS: maxWriteS,
      request: (i) => putItem(CATCH_UP_COLLECTION, i, i),
    });
    writeS = (Date.now() - w0) / 1000;
    log(
      `wrote ${written.ok} items in ${writeS.toFixed(1)} s (${Math.round(written.ok / writeS)}/s); waiting for us's relay to publish them`,
    );
    await waitFor(async () => (await outboxRows(lab, 'us')) <= 2, {
      description: "us's outbox to drain",
      timeoutMs: deadlineMs,
      intervalMs: 200,
    });
  } catch (err) {
    await lab.heal('eu');
    throw err;
  }
  const healAt = Date.now();
  await lab.heal('eu');
  log('healed; waiting for eu to apply the backlog');
  const hComplete = await waitForRows(lab, 'us', 'eu', CATCH_UP_COLLECTION, deadlineMs);
  const hothot = await sideOf(
    lab.db('eu'),
    'commit',
    healAt,
    await countRows(lab.db('us'), CATCH_UP_COLLECTION),
    hComplete,
    writeS,
  );
  const usPid = us.pid;
  const euPid = eu.pid;
  const peaks = rss.stop();
  await waitForQuiet(lab, 60_000);
  log(
    `hothot: ${hothot.items} events, heal → done ${hothot.healToDoneS} s (${hothot.eventsPerS}/s; apply only ${hothot.applyOnlyEventsPerS}/s)`,
  );

  // native logical replication
  const sub = lab.db('sub');
  await sub.query(`ALTER SUBSCRIPTION ${SUBSCRIPTION} DISABLE`);
  await waitFor(
    async () => {
      const { rows } = await sub.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_stat_subscription WHERE subname = $1 AND pid IS NOT NULL`,
        [SUBSCRIPTION],
      );
      return rows[0]?.n === '0';
    },
    { description: 'the subscription worker to stop', timeoutMs: 30_000, intervalMs: 100 },
  );
  const backlog = hothot.items;
  log(`subscription disabled; writing the same ${backlog} rows into pub`);
  const clients = 8;
  const g0 = Date.now();
  await pgbench({
    binDir: ctx.pgBinDir,
    workDir: ctx.workDir,
    target: lab.pgbenchTarget('pub'),
    collection: CATCH_UP_COLLECTION,
    keyspace: UNIQUE_KEYSPACE,
    clients,
    transactionsPerClient: Math.ceil(backlog / clients),
    tag: 'catchup',
  });
  const gWriteS = (Date.now() - g0) / 1000;
  const enableAt = Date.now();
  await sub.query(`ALTER SUBSCRIPTION ${SUBSCRIPTION} ENABLE`);
  const gComplete = await waitForRows(lab, 'pub', 'sub', CATCH_UP_COLLECTION, deadlineMs);
  const logical = await sideOf(
    sub,
    lab.landedClock('sub'),
    enableAt,
    await countRows(lab.db('pub'), CATCH_UP_COLLECTION),
    gComplete,
    gWriteS,
  );
  log(
    `logical: ${logical.items} events, enable → done ${logical.healToDoneS} s (${logical.eventsPerS}/s; apply only ${logical.applyOnlyEventsPerS}/s)`,
  );

  let dbz: CatchUpSide | undefined;
  if (debezium) {
    dbz = await debeziumCatchUp(ctx, debezium, backlog, deadlineMs);
    log(
      `Debezium: ${dbz.items} events, resume → first ${dbz.healToFirstS} s, → done ${dbz.healToDoneS} s (${dbz.eventsPerS}/s; apply only ${dbz.applyOnlyEventsPerS}/s)`,
    );
  }

  return {
    items: backlog,
    requested: items,
    hothot,
    logical,
    ratio: round(hothot.eventsPerS / logical.eventsPerS),
    applyOnlyRatio: round(hothot.applyOnlyEventsPerS / logical.applyOnlyEventsPerS),
    peakRssMiB: { us: round(peaks.get(usPid) ?? Number.NaN), eu: round(peaks.get(euPid) ?? Number.NaN) },
    ...(dbz
      ? {
          debezium: dbz,
          ratioDebezium: round(hothot.eventsPerS / dbz.eventsPerS),
          applyOnlyRatioDebezium: round(hothot.applyOnlyEventsPerS / dbz.applyOnlyEventsPerS),
        }
      : {}),
  };
}

/** One system's catch-up figures from when the rows of the backlog landed in `target`. */
export async function sideOf(
  target: pg.Pool,
  clock: LandedClock,
  healAt: number,
  expected: number,
  complete: boolean,
  writeS: number,
): Promise<CatchUpSide> {
  const times = [...(await commitTimes(target, CATCH_UP_COLLECTION, clock)).values()];
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for (const t of times) {
    if (t < first) first = t;
    if (t > last) last = t;
  }
  const n = times.length;
  return {
    items: n,
    writeS: round(writeS),
    healToDoneS: round((last - healAt) / 1000),
    healToFirstS: round((first - healAt) / 1000),
    eventsPerS: round(n / ((last - healAt) / 1000)),
    applyOnlyEventsPerS: round(n / Math.max(0.001, (last - first) / 1000)),
    complete: complete && n >= expected,
  };
}
