/**
 * Loading one region's snapshot into another (services/bootstrap/snapshotCopy.ts) on real
 * PostgreSQL: an empty target is streamed into with binary COPY, a target holding items is merged
 * into, and both end with the source's rows, digests and metadata.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copySnapshot, SnapshotLoad } from '../../services/bootstrap/snapshotCopy.js';
import { readOwnDigest } from '../../shared/db/queries/digest.js';
import { upsertItems } from '../../shared/db/queries/item.js';
import { migratedDatabase, randomId, testLogger, type TestDatabase } from '../support/harness.js';

const ITEMS = 5_000;
const ROWS_SQL = `SELECT collection, key, value::text, deleted, hlc_wall::text, hlc_logical, origin, vv::text, policy,
                         crdt::text FROM item ORDER BY collection, key`;

describe('copySnapshot', () => {
  const log = testLogger('snapshot');
  let source: TestDatabase;
  const targets: TestDatabase[] = [];
  const target = async () => {
    const t = await migratedDatabase(`hothot_snap_t_${randomId()}`, log);
    targets.push(t);
    return t;
  };

  beforeAll(async () => {
    source = await migratedDatabase(`hothot_snap_s_${randomId()}`, log);
    const now = Date.now();
    await upsertItems(
      source.pool,
      Array.from({ length: ITEMS }, (_, i) => ({
        collection: i % 3 === 0 ? 'orders' : 'users',
        key: `k${i}`,
        value: i % 10 === 9 ? null : { n: i, text: 'é'.repeat(i % 7), nested: { a: [i, true, null] } },
        deleted: i % 10 === 9,
        hlc: { wall: now - i, logical: i % 4, region: i % 2 === 0 ? 'us' : 'eu' },
        vv: { us: 1 + (i % 5), eu: i % 3 },
        policy: 'lww' as const,
      })),
    );
    // A counter's state, opaque to the copy: it travels as stored.
    await source.pool.query(
      `INSERT INTO item (collection, key, value, deleted, hlc_wall, hlc_logical, origin, vv, policy, crdt)
       VALUES ('counters', 'c1', '7', false, $1, 0, 'us', '{"us": 2}', 'counter', '{"inc": {"us": 7}, "dec": {}}')`,
      [now],
    );
    await source.pool.query('UPDATE gc_state SET horizon_ms = $1', [now - 60_000]);
    await source.pool.query(
      `INSERT INTO peer_partition_progress (origin, partition, partitions, safe_before, sent_at)
       VALUES ('eu', 0, 2, $1, now()), ('eu', 1, 2, $1, now()), ('ap', 0, 1, $1, now())`,
      [now - 1_000],
    );
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled([source?.drop(), ...targets.map((t) => t.drop())]);
  });

  it('when the target holds no item, then the rows are streamed in with COPY and equal the source, digests included', async () => {
    const t = await target();
    // The copy drops the item table's indexes and builds them again: they must come back as they were.
    const INDEXES_SQL = `SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'item' ORDER BY indexname`;
    const indexesBefore = (await t.pool.query(INDEXES_SQL)).rows;
    expect(indexesBefore.map((r: { indexname: string }) => r.indexname)).toContain('item_pkey');
    const progress: number[] = [];
    const r = await copySnapshot(source.pool, t.pool, {
      targetRegion: 'ap',
      onProgress: (p) => progress.push(p.bytes ?? -1),
    });
    expect(r.load).toBe(SnapshotLoad.Copy);
    expect(r.items).toBe(ITEMS + 1);
    expect(r.inserted).toBe(ITEMS + 1);
    expect(r.tombstones).toBe(ITEMS / 10);
    expect(progress.at(-1)).toBeGreaterThan(0);
    const [a, b] = await Promise.all([source.pool.query(ROWS_SQL), t.pool.query(ROWS_SQL)]);
    expect(b.rows).toEqual(a.rows);
    expect((await t.pool.query(INDEXES_SQL)).rows).toEqual(indexesBefore);
    const pk = await t.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_constraint WHERE conrelid = 'item'::regclass AND contype = 'p'",
    );
    expect(pk.rows[0]!.n).toBe(1);
    // The target's trigger-kept digest is the source's: anti-entropy finds them equal.
    const [da, db] = await Promise.all([readOwnDigest(source.pool), readOwnDigest(t.pool)]);
    expect(db.digests).toEqual(da.digests);
    expect(db.items).toEqual(da.items);
    // The digest trigger (off during the copy) is on again: a later write is counted.
    const trig = await t.pool.query<{ enabled: string }>(
      "SELECT tgenabled AS enabled FROM pg_trigger WHERE tgname = 'item_digest_insert'",
    );
    expect(trig.rows[0]!.enabled).toBe('O');
    await upsertItems(t.pool, [
      {
        collection: 'after',
        key: 'copy',
        value: 1,
        deleted: false,
        hlc: { wall: Date.now(), logical: 0, region: 'ap' },
        vv: { ap: 1 },
        policy: 'lww',
      },
    ]);
    const later = await readOwnDigest(t.pool);
    expect(later.items.reduce((a, b) => a + b, 0)).toBe(ITEMS + 2);
    // Metadata: GC horizon, the marks of other origins (none of the target's own), API keys.
    expect(r.gcHorizonMs).toBeGreaterThan(0);
    expect(r.watermarks).toBe(2);
    const gc = await t.pool.query<{ h: string }>('SELECT horizon_ms::text AS h FROM gc_state');
    expect(Number(gc.rows[0]!.h)).toBe(r.gcHorizonMs);
  });

  it('when the target already holds items, then the snapshot is merged: newer local versions stay, the rest arrive', async () => {
    const t = await target();
    const now = Date.now();
    await upsertItems(t.pool, [
      {
        collection: 'users',
        key: 'k1',
        value: { mine: true },
        deleted: false,
        hlc: { wall: now + 10_000, logical: 0, region: 'ap' },
        vv: { us: 9, eu: 9, ap: 1 },
        policy: 'lww',
      },
    ]);
    const r = await copySnapshot(source.pool, t.pool, { targetRegion: 'ap' });
    expect(r.load).toBe(SnapshotLoad.Merge);
    expect(r.items).toBe(ITEMS + 1);
    expect(r.inserted).toBe(ITEMS);
    expect(r.unchanged).toBe(1);
    const k1 = await t.pool.query<{ value: unknown }>("SELECT value FROM item WHERE key = 'k1'");
    expect(k1.rows[0]!.value).toEqual({ mine: true });
    const n = await t.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM item');
    expect(n.rows[0]!.n).toBe(ITEMS + 1);

    // Loading the same snapshot again changes nothing.
    const again = await copySnapshot(source.pool, t.pool, { targetRegion: 'ap' });
    expect(again.load).toBe(SnapshotLoad.Merge);
    expect(again.inserted + again.merged).toBe(0);
  });
});
