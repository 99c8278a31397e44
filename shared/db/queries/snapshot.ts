/**
 * Data access for copying one region's state into another (services/bootstrap/snapshotCopy.ts):
 * a cursor over every item row, the GC horizon, the per-partition watermarks and the API keys, read
 * in the source's REPEATABLE READ transaction and written into the target with joins that never go
 * backwards (GREATEST, ON CONFLICT DO NOTHING), so loading the same snapshot twice changes nothing.
 */
import type { PolicyVersion } from '../../domain/mergeItem.js';
import type { Queryable } from '../pool.js';
import { ITEM_VERSION_COLUMNS, toItemVersion, type ItemKey, type ItemVersionRow } from './item.js';
import { recordPartitionMarks } from './peerPartitionProgress.js';

/** A cursor name of this module (declared in the caller's transaction). */
const ITEM_CURSOR = 'hothot_snapshot_items';

/** Open a cursor over every item row, tombstones included (needs an open transaction). */
export async function declareItemCursor(q: Queryable): Promise<void> {
  await q.query(`DECLARE ${ITEM_CURSOR} NO SCROLL CURSOR FOR SELECT ${ITEM_VERSION_COLUMNS} FROM item`);
}

/** The next `n` rows of the cursor (fewer at the end, none after it). */
export async function fetchItems(q: Queryable, n: number): Promise<(ItemKey & PolicyVersion)[]> {
  const { rows } = await q.query<ItemVersionRow>(
    `FETCH FORWARD ${Math.max(1, Math.floor(n))} FROM ${ITEM_CURSOR}`,
  );
  return rows.map(toItemVersion);
}

export async function closeItemCursor(q: Queryable): Promise<void> {
  await q.query(`CLOSE ${ITEM_CURSOR}`);
}

/** The item columns a snapshot carries (`updated_at` is the target's own: when it got the row). */
const ITEM_COPY_COLUMNS = 'collection, key, value, deleted, hlc_wall, hlc_logical, origin, vv, policy, crdt';

/**
 * Every item row in PostgreSQL's binary COPY format (run in the source's snapshot transaction). Both
 * ends are hothot databases of the same major version and migrations, which binary COPY needs.
 */
export const ITEM_COPY_OUT_SQL = `COPY (SELECT ${ITEM_COPY_COLUMNS} FROM item) TO STDOUT (FORMAT binary)`;

/** The target side of {@link ITEM_COPY_OUT_SQL}. */
export const ITEM_COPY_IN_SQL = `COPY item (${ITEM_COPY_COLUMNS}) FROM STDIN (FORMAT binary)`;

/**
 * Lock the item table against every writer until the caller's transaction ends and say whether it
 * is empty (then a snapshot may be copied in without merging). Needs an open transaction.
 */
export async function lockEmptyItemTable(q: Queryable): Promise<boolean> {
  await q.query('LOCK TABLE item IN SHARE ROW EXCLUSIVE MODE');
  const { rows } = await q.query<{ empty: boolean }>('SELECT NOT EXISTS (SELECT 1 FROM item) AS empty');
  return rows[0]!.empty;
}

/**
 * The per-bucket digests (migration 0008) as of the snapshot: kept by triggers in the transaction of
 * every item change, so they agree with the items the same snapshot holds.
 */
export const DIGEST_COPY_OUT_SQL =
  'COPY (SELECT bucket, stripe, digest, items, max_wall FROM item_digest) TO STDOUT (FORMAT binary)';
export const DIGEST_COPY_IN_SQL =
  'COPY item_digest (bucket, stripe, digest, items, max_wall) FROM STDIN (FORMAT binary)';

/**
 * Prepare the empty item table for a bulk load, until {@link endItemBulkLoad} in the same transaction:
 * the insert trigger that keeps the digests is off (the rows copied in come with the source's digests
 * instead, and hashing each row again costs most of a load's time), and the table's indexes and
 * index-backed constraints are dropped, to be built again at the end from their definitions as the
 * catalog holds them (built in bulk, an index costs one sort instead of an insertion per row; the
 * figures are in docs/operations.md, "Adding and removing a region").
 * Empties the target's digest table (its item table is empty). Only the table's owner may: returns
 * undefined, with nothing changed, otherwise. Takes the table's ACCESS EXCLUSIVE lock: readers wait too.
 */
export async function beginItemBulkLoad(q: Queryable): Promise<ItemBulkLoad | undefined> {
  await q.query('SAVEPOINT hothot_bulk_load');
  try {
    await q.query('ALTER TABLE item DISABLE TRIGGER item_digest_insert');
  } catch (err) {
    if ((err as { code?: string }).code !== '42501') throw err; // insufficient_privilege
    await q.query('ROLLBACK TO SAVEPOINT hothot_bulk_load');
    return undefined;
  }
  await q.query('DELETE FROM item_digest');
  // Index-backed constraints (the primary key) are dropped and added back as constraints.
  const { rows } = await q.query<{ drop: string; create: string }>(
    `SELECT CASE WHEN c.oid IS NULL THEN format('DROP INDEX %s', i.indexrelid::regclass)
                 ELSE format('ALTER TABLE item DROP CONSTRAINT %I', c.conname) END AS drop,
            CASE WHEN c.oid IS NULL THEN pg_get_indexdef(i.indexrelid)
                 ELSE format('ALTER TABLE item ADD CONSTRAINT %I %s', c.conname, pg_get_constraintdef(c.oid)) END AS create
       FROM pg_index i
       LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
      WHERE i.indrelid = 'item'::regclass
      ORDER BY i.indisprimary DESC, i.indexrelid`,
  );
  for (const r of rows) await q.query(r.drop);
  return { indexes: rows.map((r) => r.create) };
}

/** What {@link beginItemBulkLoad} turned off, to be restored. */
export interface ItemBulkLoad {
  /** The statements that build the dropped indexes and constraints again, primary key first. */
  readonly indexes: readonly string[];
}

/** Build the item table's indexes again and turn digest tracking back on. */
export async function endItemBulkLoad(q: Queryable, load: ItemBulkLoad): Promise<void> {
  for (const statement of load.indexes) await q.query(statement);
  await q.query('ALTER TABLE item ENABLE TRIGGER item_digest_insert');
}

export async function countTombstones(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM item WHERE deleted');
  return rows[0]!.n;
}

/** What travels with the items: how far the source had applied, and who may call it. */
export interface SnapshotMeta {
  /** GC horizon (ms): below it the source collected tombstones, so older events must not insert. */
  readonly gcHorizonMs: number;
  /** Per origin and partition, the source's applied mark (see shared/domain/watermark.ts). */
  readonly partitionMarks: readonly {
    origin: string;
    partition: number;
    partitions: number;
    safeBefore: string;
    sentAt: Date;
  }[];
  /** API keys (hashes only) as rows of `api_key`. */
  readonly apiKeys: readonly Record<string, unknown>[];
}

export async function readSnapshotMeta(q: Queryable): Promise<SnapshotMeta> {
  // One after the other: the caller's client may not pipeline (a plain pg client queues, deprecated).
  const gc = await q.query<{ horizonMs: string }>('SELECT horizon_ms::text AS "horizonMs" FROM gc_state');
  const marks = await q.query<SnapshotMeta['partitionMarks'][number]>(
    `SELECT origin, partition, partitions, safe_before::text AS "safeBefore", sent_at AS "sentAt"
       FROM peer_partition_progress`,
  );
  const keys = await q.query<{ row: Record<string, unknown> }>('SELECT row_to_json(k) AS row FROM api_key k');
  return {
    gcHorizonMs: Number(gc.rows[0]?.horizonMs ?? 0),
    partitionMarks: marks.rows,
    apiKeys: keys.rows.map((r) => r.row),
  };
}

/**
 * Write the snapshot's metadata into the target: the GC horizon raised to the source's, the marks of
 * every origin but `targetRegion` (a region keeps no mark of itself) raised to the source's, and the
 * API keys the target lacks. Returns how many marks and keys were written.
 */
export async function writeSnapshotMeta(
  q: Queryable,
  meta: SnapshotMeta,
  targetRegion: string,
): Promise<{ marks: number; apiKeys: number }> {
  await q.query('UPDATE gc_state SET horizon_ms = GREATEST(horizon_ms, $1)', [meta.gcHorizonMs]);
  const marks = meta.partitionMarks.filter((m) => m.origin !== targetRegion);
  await recordPartitionMarks(
    q,
    marks.map((m) => ({ ...m, safeBefore: Number(m.safeBefore) })),
  );
  // The load is complete: a region started before it (snapshot_pending) serves, leads and applies.
  await q.query('DELETE FROM snapshot_pending');
  let apiKeys = 0;
  if (meta.apiKeys.length > 0) {
    const { rowCount } = await q.query(
      `INSERT INTO api_key SELECT * FROM json_populate_recordset(NULL::api_key, $1::json)
       ON CONFLICT (id) DO NOTHING`,
      [JSON.stringify(meta.apiKeys)],
    );
    apiKeys = rowCount ?? 0;
  }
  return { marks: marks.length, apiKeys };
}

/**
 * Mark a migrated, empty database as waiting for a snapshot of `source`: a region started on it
 * waits for the copy (migration 0010) instead of serving an empty table.
 */
export async function markSnapshotPending(q: Queryable, source: string): Promise<void> {
  await q.query(
    `INSERT INTO snapshot_pending (source) VALUES ($1)
     ON CONFLICT (only_row) DO UPDATE SET source = EXCLUDED.source, marked_at = clock_timestamp()`,
    [source],
  );
}

/** The region whose snapshot this database waits for, or undefined when it waits for none. */
export async function pendingSnapshotSource(q: Queryable): Promise<string | undefined> {
  const { rows } = await q.query<{ source: string }>('SELECT source FROM snapshot_pending');
  return rows[0]?.source;
}
