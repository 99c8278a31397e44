/**
 * The pipelined transactions of shared/db/withTransaction.ts: statements sent together still run
 * one after the other with snapshots of their own, a failure anywhere leaves nothing behind (and
 * is reported as itself, not as the statements the server refused after it), and the write path
 * built on them loses no update under contention.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { findItem, lockItems, upsertItems } from '../../shared/db/queries/item.js';
import { allInOrder, withTransaction } from '../../shared/db/withTransaction.js';
import { startTestRegions, type TestRegions } from '../support/regionHarness.js';
import { randomId, type TestDatabase, testLogger, waitFor } from '../support/harness.js';
import { databaseTest, DATABASE_START_MS, regionsTest, REGIONS_START_MS } from '../support/fixtures.js';

const outboxCount = async (pool: pg.Pool, tag: string) =>
  Number(
    (await pool.query<{ n: string }>('SELECT count(*) AS n FROM outbox WHERE msg_key LIKE $1', [`${tag}%`]))
      .rows[0]!.n,
  );

const pipelineTest = databaseTest(`t${randomId()}`, testLogger(), {
  max: 4,
  applicationName: 'pipeline-test',
});

describe('pipelined transactions', () => {
  let db: TestDatabase;
  let pool: pg.Pool;

  pipelineTest.beforeAll(({ db: started }) => {
    db = started;
    pool = db.pool;
  }, DATABASE_START_MS);
  it('when the statement sent with the COMMIT fails, then the whole transaction is rolled back and the client works on', async () => {
    const attempt = withTransaction(pool, async (c, tx) => {
      await c.query("INSERT INTO outbox (msg_key, payload) VALUES ('fail-a', '{}')");
      await tx.commitWith(() =>
        c.query("INSERT INTO outbox (msg_key, payload) VALUES ('fail-b', 'not json')"),
      );
    });
    await expect(attempt).rejects.toMatchObject({ code: '22P02' }); // invalid JSON
    expect(await outboxCount(pool, 'fail-')).toBe(0);
    // Every client of the pool is still usable: run more transactions than the pool has clients.
    for (let i = 0; i < 6; i++) {
      await withTransaction(pool, (c, tx) =>
        tx.commitWith(() =>
          c.query('INSERT INTO outbox (msg_key, payload) VALUES ($1, $2)', [`ok-${i}`, '{}']),
        ),
      );
    }
    expect(await outboxCount(pool, 'ok-')).toBe(6);
  });

  it('when one of several statements sent together fails, then allInOrder rejects with its error, not a later 25P02', async () => {
    // The failing statement's promise reaches the caller through a few hops (as through a query
    // helper's own awaits), the ones after it directly: Promise.all would take whichever rejection
    // settled first, often "current transaction is aborted" (25P02) of a statement behind it.
    for (let i = 0; i < 5; i++) {
      const attempt = withTransaction(pool, (c, tx) =>
        tx.commitWith(() => {
          const first = c.query("INSERT INTO outbox (msg_key, payload) VALUES ('order-a', '{}')");
          const failing = c
            .query('SELECT 1 / 0')
            .then((r) => r)
            .then((r) => r)
            .then((r) => r);
          return allInOrder([first, failing, c.query('SELECT 2'), c.query('SELECT 3')]);
        }),
      );
      await expect(attempt).rejects.toMatchObject({ code: '22012' }); // division_by_zero
    }
    expect(await outboxCount(pool, 'order-')).toBe(0);
  });

  it('when the work throws after statements sent with the BEGIN, then none of them is kept', async () => {
    const attempt = withTransaction(pool, async (c) => {
      await Promise.all([
        c.query("INSERT INTO outbox (msg_key, payload) VALUES ('undo-a', '{}')"),
        c.query("INSERT INTO outbox (msg_key, payload) VALUES ('undo-b', '{}')"),
      ]);
      throw new Error('precondition failed');
    });
    await expect(attempt).rejects.toThrow('precondition failed');
    expect(await outboxCount(pool, 'undo-')).toBe(0);
  });

  it('when a writer holds the item lock, then a lock and read sent together wait and read what the writer committed', async () => {
    const key = { collection: 'pipe', key: `k${randomId()}` };
    const writer = await pool.connect();
    try {
      await writer.query('BEGIN');
      await lockItems(writer, [key]);
      // The reader sends BEGIN, the lock and the read in one write; the lock waits for the writer.
      const reader = withTransaction(pool, async (c) => {
        const [, row] = await Promise.all([lockItems(c, [key]), findItem(c, key)]);
        return row;
      });
      await waitFor('the reader to wait on the item lock', async () => {
        const { rows } = await pool.query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_stat_activity
            WHERE application_name = 'pipeline-test' AND wait_event_type = 'Lock' AND wait_event = 'advisory'`,
        );
        return Number(rows[0]!.n) > 0 || undefined;
      });
      await upsertItems(writer, [
        {
          ...key,
          policy: 'lww',
          value: { by: 'writer' },
          deleted: false,
          hlc: { wall: 1, logical: 0, region: 'us' },
          vv: { us: 1 },
        },
      ]);
      await writer.query('COMMIT');
      // A read in the same statement as the lock would have taken its snapshot before the writer
      // committed and found nothing.
      expect((await reader)?.value).toEqual({ by: 'writer' });
    } finally {
      writer.release();
    }
  });
});

const writePathTest = regionsTest(() =>
  startTestRegions(['us'], { HEARTBEAT_INTERVAL_MS: '0', DB_POOL_SIZE: '8' }),
);

describe('the write path under contention', () => {
  let t: TestRegions;

  writePathTest.beforeAll(({ regions }) => {
    t = regions;
  }, REGIONS_START_MS);

  it('when 40 PUTs of one key arrive at once, then each is a new version and none is lost', async () => {
    const url = `${t.regions.us!.url}/v1/items/race/one`;
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        fetch(url, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ i }),
        }).then(async (r) => {
          await r.body?.cancel();
          return { status: r.status, etag: r.headers.get('etag') };
        }),
      ),
    );
    expect(answers.filter((a) => a.status === 200 || a.status === 201)).toHaveLength(40);
    expect(answers.filter((a) => a.status === 201)).toHaveLength(1);
    expect(new Set(answers.map((a) => a.etag)).size).toBe(40);
    const item = (await (await fetch(url)).json()) as { vv: Record<string, number> };
    // Every write bumped the vector of the version before it: 40 writes, counter 40.
    expect(item.vv).toEqual({ us: 40 });
  });
});
