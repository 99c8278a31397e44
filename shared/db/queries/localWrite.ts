/**
 * The write path's one statement: the item row, its history entry and its outbox row, written
 * together (three data-modifying CTEs, one round trip). Runs inside the caller's transaction,
 * after the item lock was taken and the current row read.
 */
import type { PolicyVersion } from '../../domain/mergeItem.js';
import type { Queryable } from '../pool.js';
import type { ItemKey } from './item.js';

export async function storeLocalWrite(
  q: Queryable,
  k: ItemKey,
  version: PolicyVersion,
  /** The outbox row: its message key and the event as JSON text, published as it is. */
  outbox: { readonly msgKey: string; readonly payload: string },
): Promise<void> {
  await q.query({
    name: 'localWrite.store',
    text: `WITH stored AS (
             INSERT INTO item (collection, key, value, deleted, hlc_wall, hlc_logical, origin, vv, policy, crdt, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, clock_timestamp())
             ON CONFLICT (collection, key) DO UPDATE SET
               value = EXCLUDED.value, deleted = EXCLUDED.deleted, hlc_wall = EXCLUDED.hlc_wall,
               hlc_logical = EXCLUDED.hlc_logical, origin = EXCLUDED.origin, vv = EXCLUDED.vv,
               policy = EXCLUDED.policy, crdt = EXCLUDED.crdt, updated_at = EXCLUDED.updated_at),
           history AS (
             INSERT INTO item_history (collection, key, hlc_wall, hlc_logical, origin, vv, deleted, value, outcome)
             VALUES ($1, $2, $5, $6, $7, $8, $4, $3, 'written')
             ON CONFLICT DO NOTHING)
           INSERT INTO outbox (msg_key, payload) VALUES ($11, $12)`,
    values: [
      k.collection,
      k.key,
      version.deleted ? null : JSON.stringify(version.value),
      version.deleted,
      version.hlc.wall,
      version.hlc.logical,
      version.hlc.region,
      JSON.stringify(version.vv),
      version.policy,
      version.crdt === undefined ? null : JSON.stringify(version.crdt),
      outbox.msgKey,
      outbox.payload,
    ],
  });
}
