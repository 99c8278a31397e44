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
  await q.query(
    `INSERT INTO item_history (collection, key, hlc_wall, hlc_logical, origin, vv, deleted, value, outcome)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::text[], $6::jsonb[], $7::bool[], $8::jsonb[], $9::text[])
     ON CONFLICT DO NOTHING`,
    [
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
  );
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

/** Keep the newest `keep` versions per item; returns how many rows were removed. */
export async function pruneHistory(q: Queryable, keep: number): Promise<number> {
  const { rowCount } = await q.query(
    `DELETE FROM item_history WHERE id IN (
       SELECT id FROM (
         SELECT id, row_number() OVER (PARTITION BY collection, key ORDER BY hlc_wall DESC, hlc_logical DESC, origin DESC) AS rn
           FROM item_history) ranked
        WHERE rn > $1)`,
    [keep],
  );
  return rowCount ?? 0;
}
