/**
 * Progress and peer reports are kept per origin and partition (migration 0011): the transactions of
 * one origin's partitions, which the applier runs concurrently, never wait on each other's progress
 * or report row, and readers combine the rows into one per origin.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { readProgress, recordProgress } from '../../shared/db/queries/peerProgress.js';
import { readPeerReports, recordPeerReports } from '../../shared/db/queries/peerReport.js';
import { withTransaction } from '../../shared/db/withTransaction.js';
import { randomId, type TestDatabase, testLogger } from '../support/harness.js';
import { databaseTest, DATABASE_START_MS } from '../support/fixtures.js';

const progressTest = databaseTest(`t${randomId()}`, testLogger(), {
  max: 4,
  applicationName: 'progress-test',
});

/** Run `write` in a transaction that gives up after 1 s waiting for a lock (55P03) instead of queueing. */
const withoutWaiting = (pool: pg.Pool, write: (q: pg.PoolClient) => Promise<void>) =>
  withTransaction(pool, async (q) => {
    await q.query("SET LOCAL lock_timeout = '1s'");
    await write(q);
  });

describe('progress and peer reports per partition', () => {
  let db: TestDatabase;

  progressTest.beforeAll(({ db: started }) => {
    db = started;
  }, DATABASE_START_MS);

  it('when two partitions of one origin are applied at once, then neither waits on the other for its progress or report row', async () => {
    const held = await db.pool.connect();
    try {
      // Partition 0's transaction has written its rows and not committed (its locks held).
      await held.query('BEGIN');
      await recordProgress(held, [{ origin: 'us', partition: 0, events: 1, lastEventId: 'a' }]);
      await recordPeerReports(held, [
        { reporter: 'us', partition: 0, watermarks: { eu: 1 }, policies: {}, sentAt: new Date(1_000) },
      ]);
      // Partition 1's would have queued behind it on a per-origin row: here it commits at once.
      await withoutWaiting(db.pool, async (q) => {
        await recordProgress(q, [{ origin: 'us', partition: 1, events: 2, lastEventId: 'b' }]);
        await recordPeerReports(q, [
          { reporter: 'us', partition: 1, watermarks: { eu: 2 }, policies: {}, sentAt: new Date(2_000) },
        ]);
      });
      // The same partition's row is still one row: a second writer of partition 0 does wait.
      await expect(
        withoutWaiting(db.pool, (q) => recordProgress(q, [{ origin: 'us', partition: 0, events: 1 }])),
      ).rejects.toMatchObject({ code: '55P03' });
      await held.query('COMMIT');
    } finally {
      held.release();
    }
    const [us] = (await readProgress(db.pool)).filter((p) => p.origin === 'us');
    expect(us?.appliedEvents).toBe(3);
  });

  it('when an origin has rows in several partitions, then they read as one: summed, newest and greatest', async () => {
    const origin = 'ap';
    await recordProgress(db.pool, [
      {
        origin,
        partition: 0,
        events: 5,
        lastEventId: 'older-partition',
        maxHlc: { wall: 9_000, logical: 3, region: origin },
        heartbeatSentAt: new Date(50_000),
        lagMs: 7,
      },
    ]);
    await recordProgress(db.pool, [
      {
        origin,
        partition: 2,
        events: 4,
        lastEventId: 'newest-partition',
        maxHlc: { wall: 8_000, logical: 9, region: origin },
        heartbeatSentAt: new Date(40_000),
        lagMs: 3,
      },
    ]);
    const ap = (await readProgress(db.pool)).find((p) => p.origin === origin)!;
    expect(ap.appliedEvents).toBe(9);
    // The greatest stamp of any partition, not the last written.
    expect(ap.lastHlc).toEqual({ wall: 9_000, logical: 3, region: origin });
    // The last event, its lag and apply time: of the partition applied most recently.
    expect(ap.lastEventId).toBe('newest-partition');
    expect(ap.lastLagMs).toBe(3);
    // The newest heartbeat of any partition, with when it was applied.
    expect(ap.heartbeatSentAt).toEqual(new Date(50_000));
    expect(ap.heartbeatAppliedAt).not.toBeNull();

    await recordPeerReports(db.pool, [
      { reporter: origin, partition: 1, watermarks: { us: 10 }, policies: {}, sentAt: new Date(60_000) },
      { reporter: origin, partition: 2, watermarks: { us: 20 }, policies: {}, sentAt: new Date(70_000) },
    ]);
    // An older heartbeat delivered late to a partition does not replace that partition's newer one.
    await recordPeerReports(db.pool, [
      { reporter: origin, partition: 2, watermarks: { us: 5 }, policies: {}, sentAt: new Date(65_000) },
    ]);
    const report = (await readPeerReports(db.pool)).filter((r) => r.reporter === origin);
    expect(report).toEqual([
      { reporter: origin, watermarks: { us: 20 }, policies: {}, sentAt: new Date(70_000) },
    ]);
  });
});
