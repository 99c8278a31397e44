/** Data access for `item_history`: the recent versions of each item as this region saw them. */
import type { ItemVersion } from '../../domain/resolve.js';
import type { Queryable } from '../pool.js';
import type { ItemKey } from './item.js';

export const HistoryOutcome = {
  /** Written by this region's API. */
  Written: 'written',
  /** A peer's version that became the item's state (insert or fast-forward, or a conflict it won). */
  Applied: 'applied',
  /** A peer's concurrent version merged without a conflict (fields, counters). */
  Merged: 'merged',
  /** A peer's version that lost a conflict. */
  Lost: 'lost',
} as const;
export type HistoryOutcome = (typeof HistoryOutcome)[keyof typeof HistoryOutcome];

export interface HistoryEntry extends ItemKey {
  readonly version: ItemVersion;
  readonly outcome: HistoryOutcome;
}

/** Record versions; a version already recorded for the item is not recorded again. */
export async function insertHistory(q: Queryable, entries: readonly HistoryEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await q.query({
    name: 'itemHistory.insert',
    text: `INSERT INTO item_history (collection, key, hlc_wall, hlc_logical, origin, vv, deleted, value, outcome)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::text[], $6::jsonb[], $7::bool[], $8::jsonb[], $9::text[])
     ON CONFLICT DO NOTHING`,
    values: [
      entries.map((e) => e.collection),
      entries.map((e) => e.key),
      entries.map((e) => e.version.hlc.wall),
      entries.map((e) => e.version.hlc.logical),
      entries.map((e) => e.version.hlc.region),
      entries.map((e) => JSON.stringify(e.version.vv)),
      entries.map((e) => e.version.deleted),
      entries.map((e) => (e.version.deleted ? null : JSON.stringify(e.version.value))),
      entries.map((e) => e.outcome),
    ],
  });
}

export interface StoredHistoryEntry {
  readonly version: string;
  readonly origin: string;
  readonly vv: Record<string, number>;
  readonly deleted: boolean;
  readonly value: unknown;
  readonly outcome: HistoryOutcome;
  readonly recordedAt: Date;
}

/** Newest first. */
export async function readHistory(q: Queryable, k: ItemKey, limit: number): Promise<StoredHistoryEntry[]> {
  const { rows } = await q.query<StoredHistoryEntry>(
    `SELECT hlc_wall || '.' || hlc_logical || '.' || origin AS version, origin, vv, deleted, value, outcome,
            recorded_at AS "recordedAt"
       FROM item_history WHERE collection = $1 AND key = $2 ORDER BY hlc_wall DESC, hlc_logical DESC, origin DESC LIMIT $3`,
    [k.collection, k.key, limit],
  );
  return rows;
}

export interface HistoryPrunePass {
  /** Rows removed. */
  readonly pruned: number;
  /** Greatest history id this pass looked at (the next pass starts after it); null when none. */
  readonly scannedUpTo: string | null;
}

/**
 * Keep the newest `keep` versions of the items that gained history rows after id `afterId`
 * (at most `scanLimit` new rows per pass; the rest is for the next pass). The cost follows the
 * writes since the last pass, not the size of the table: the earlier whole-table window function
 * took 17–35 ms a pass on a few thousand rows and grows with every item ever written. Ids commit
 * out of order, so a row whose transaction commits after a pass moved past its id is not seen by
 * that pass: its item keeps one version too many until it is written again.
 */
export async function pruneHistory(
  q: Queryable,
  keep: number,
  afterId: string,
  scanLimit: number,
): Promise<HistoryPrunePass> {
  const { rows } = await q.query<{ pruned: string; scannedUpTo: string | null }>({
    name: 'itemHistory.prune',
    text: `WITH recent AS (
             SELECT id, collection, key FROM item_history WHERE id > $2 ORDER BY id LIMIT $3
           ), touched AS (
             SELECT DISTINCT collection, key FROM recent
           ), doomed AS (
             DELETE FROM item_history d
              USING touched t
              CROSS JOIN LATERAL (
                SELECT h.id FROM item_history h
                 WHERE h.collection = t.collection AND h.key = t.key
                 ORDER BY h.hlc_wall DESC, h.hlc_logical DESC, h.origin DESC
                OFFSET $1
              ) x
              WHERE d.id = x.id
             RETURNING d.id
           )
           SELECT (SELECT count(*) FROM doomed) AS pruned, (SELECT max(id) FROM recent) AS "scannedUpTo"`,
    values: [keep, afterId, scanLimit],
  });
  return { pruned: Number(rows[0]!.pruned), scannedUpTo: rows[0]!.scannedUpTo };
}
