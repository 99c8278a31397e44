/** Data access for the `item` table. */
import { formatItemKey } from '../../domain/itemKey.js';
import type { PolicyVersion } from '../../domain/mergeItem.js';
import type { Policy } from '../../domain/mergePolicy.js';
import type { VersionVector } from '../../domain/versionVector.js';
import type { Queryable } from '../pool.js';

export interface ItemKey {
  readonly collection: string;
  readonly key: string;
}

export interface StoredItem extends ItemKey, PolicyVersion {
  readonly updatedAt: Date;
}

/** An item row as a version (no `updatedAt`): what {@link ITEM_VERSION_COLUMNS} selects. */
export interface ItemVersionRow {
  collection: string;
  key: string;
  value: unknown;
  deleted: boolean;
  hlcWall: string;
  hlcLogical: number;
  origin: string;
  vv: VersionVector;
  policy: Policy;
  crdt: PolicyVersion['crdt'] | null;
}

interface ItemRow extends ItemVersionRow {
  updatedAt: Date;
}

/** The columns of an item's version, aliased for {@link toItemVersion}. */
export const ITEM_VERSION_COLUMNS = `collection, key, value, deleted, hlc_wall AS "hlcWall", hlc_logical AS "hlcLogical",
  origin, vv, policy, crdt`;

const ITEM_COLUMNS = `${ITEM_VERSION_COLUMNS}, updated_at AS "updatedAt"`;

/** The one mapping of an item row's columns to a version. */
export function toItemVersion(r: ItemVersionRow): ItemKey & PolicyVersion {
  return {
    collection: r.collection,
    key: r.key,
    value: r.value,
    deleted: r.deleted,
    hlc: { wall: Number(r.hlcWall), logical: r.hlcLogical, region: r.origin },
    vv: r.vv,
    policy: r.policy,
    ...(r.crdt === null ? {} : { crdt: r.crdt }),
  };
}

function toStoredItem(r: ItemRow): StoredItem {
  return { ...toItemVersion(r), updatedAt: r.updatedAt };
}

/**
 * The text of one item's advisory lock (PostgreSQL hashes it to the 64-bit lock id); the API, the
 * applier and the bootstrap copy lock items by it.
 */
export function itemLockKey(k: ItemKey): string {
  return formatItemKey(k);
}

/**
 * Take transaction-scoped advisory locks on `keys`, in one global order so that two transactions
 * locking overlapping sets cannot deadlock. Locks work whether or not the row exists yet, which a
 * row lock cannot.
 */
export async function lockItems(q: Queryable, keys: readonly ItemKey[]): Promise<void> {
  if (keys.length === 0) return;
  if (keys.length === 1) {
    // The write path's case: one named, prepared statement, no unnest/sort.
    await q.query({
      name: 'item.lockOne',
      text: 'SELECT pg_advisory_xact_lock(hashtextextended($1, 0))',
      values: [itemLockKey(keys[0]!)],
    });
    return;
  }
  await q.query({
    name: 'item.lockMany',
    text: `SELECT pg_advisory_xact_lock(h) FROM (
       SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest($1::text[]) AS k ORDER BY 1
     ) AS ordered`,
    values: [keys.map(itemLockKey)],
  });
}

export async function findItem(q: Queryable, k: ItemKey): Promise<StoredItem | undefined> {
  const { rows } = await q.query<ItemRow>({
    name: 'item.find',
    text: `SELECT ${ITEM_COLUMNS} FROM item WHERE collection = $1 AND key = $2`,
    values: [k.collection, k.key],
  });
  return rows[0] === undefined ? undefined : toStoredItem(rows[0]);
}

/** The stored items among `keys`, by {@link formatItemKey}. */
export async function findItems(q: Queryable, keys: readonly ItemKey[]): Promise<Map<string, StoredItem>> {
  const out = new Map<string, StoredItem>();
  if (keys.length === 0) return out;
  const { rows } = await q.query<ItemRow>({
    name: 'item.findMany',
    text: `SELECT ${ITEM_COLUMNS} FROM item
      WHERE (collection, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
    values: [keys.map((k) => k.collection), keys.map((k) => k.key)],
  });
  for (const r of rows) out.set(formatItemKey(r), toStoredItem(r));
  return out;
}

/** Insert or overwrite items with the given merged states, in one statement. */
export async function upsertItems(q: Queryable, items: readonly (ItemKey & PolicyVersion)[]): Promise<void> {
  if (items.length === 0) return;
  await q.query({
    name: 'item.upsertMany',
    text: `INSERT INTO item (collection, key, value, deleted, hlc_wall, hlc_logical, origin, vv, policy, crdt, updated_at)
     SELECT c, k, v, d, w, l, o, vv, p, cr, clock_timestamp()
       FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::bool[], $5::bigint[], $6::int[], $7::text[], $8::jsonb[],
                   $9::text[], $10::jsonb[])
         AS t(c, k, v, d, w, l, o, vv, p, cr)
     ON CONFLICT (collection, key) DO UPDATE SET
       value = EXCLUDED.value, deleted = EXCLUDED.deleted, hlc_wall = EXCLUDED.hlc_wall,
       hlc_logical = EXCLUDED.hlc_logical, origin = EXCLUDED.origin, vv = EXCLUDED.vv,
       policy = EXCLUDED.policy, crdt = EXCLUDED.crdt, updated_at = EXCLUDED.updated_at`,
    values: [
      items.map((i) => i.collection),
      items.map((i) => i.key),
      items.map((i) => (i.deleted ? null : JSON.stringify(i.value))),
      items.map((i) => i.deleted),
      items.map((i) => i.hlc.wall),
      items.map((i) => i.hlc.logical),
      items.map((i) => i.hlc.region),
      items.map((i) => JSON.stringify(i.vv)),
      items.map((i) => i.policy),
      items.map((i) => (i.crdt === undefined ? null : JSON.stringify(i.crdt))),
    ],
  });
}

/** Live (not deleted) items of a collection after `after` in key order. */
export async function listItems(
  q: Queryable,
  collection: string,
  after: string | undefined,
  limit: number,
): Promise<StoredItem[]> {
  const { rows } = await q.query<ItemRow>({
    name: 'item.list',
    text: `SELECT ${ITEM_COLUMNS} FROM item
            WHERE collection = $1 AND NOT deleted AND ($2::text IS NULL OR key > $2)
            ORDER BY key LIMIT $3`,
    values: [collection, after ?? null, limit],
  });
  return rows.map(toStoredItem);
}

/** Greatest stamp stored, so a restarted clock never issues a stamp below one already written. */
export async function maxItemStamp(
  q: Queryable,
): Promise<{ wall: number; logical: number; region: string } | undefined> {
  const { rows } = await q.query<{ hlcWall: string; hlcLogical: number; origin: string }>(
    `SELECT hlc_wall AS "hlcWall", hlc_logical AS "hlcLogical", origin FROM item
      ORDER BY hlc_wall DESC, hlc_logical DESC LIMIT 1`,
  );
  const r = rows[0];
  return r === undefined ? undefined : { wall: Number(r.hlcWall), logical: r.hlcLogical, region: r.origin };
}

/** Every row (tombstones included) in key order: for convergence checks and digests. */
export async function dumpItems(q: Queryable): Promise<StoredItem[]> {
  const { rows } = await q.query<ItemRow>(`SELECT ${ITEM_COLUMNS} FROM item ORDER BY collection, key`);
  return rows.map(toStoredItem);
}

export interface TombstoneStats {
  readonly count: number;
  /** Stamp wall (ms) of the oldest tombstone, or null. */
  readonly oldestWallMs: number | null;
}

export async function tombstoneStats(q: Queryable): Promise<TombstoneStats> {
  const { rows } = await q.query<{ n: number; oldest: string | null }>(
    'SELECT count(*)::int AS n, min(hlc_wall) AS oldest FROM item WHERE deleted',
  );
  return { count: rows[0]!.n, oldestWallMs: rows[0]!.oldest === null ? null : Number(rows[0]!.oldest) };
}

/** Remove tombstones whose stamp wall is below `beforeWallMs`; returns how many. */
export async function collectTombstones(q: Queryable, beforeWallMs: number, limit: number): Promise<number> {
  const { rowCount } = await q.query(
    `DELETE FROM item WHERE ctid IN (
       SELECT ctid FROM item WHERE deleted AND hlc_wall < $1 ORDER BY hlc_wall LIMIT $2)`,
    [beforeWallMs, limit],
  );
  return rowCount ?? 0;
}
