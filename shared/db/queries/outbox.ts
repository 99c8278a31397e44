/** Data access for the `outbox` table. */
import type { Queryable } from '../pool.js';

export interface OutboxRow {
  readonly id: string;
  readonly msgKey: string;
  /** The event as JSON text, ready to publish (no parse and re-serialise in the relay). */
  readonly payload: string;
  /** The event's HLC wall, when it has one. */
  readonly stampWall: number | null;
}

export async function insertOutbox(q: Queryable, msgKey: string, payload: unknown): Promise<void> {
  await q.query({
    name: 'outbox.insert',
    text: 'INSERT INTO outbox (msg_key, payload) VALUES ($1, $2)',
    values: [msgKey, JSON.stringify(payload)],
  });
}

/**
 * Claim up to `limit` unpublished rows in id order, skipping rows another relay holds. Rows of
 * transactions that have not committed yet are invisible now and are claimed by a later pass:
 * nothing is remembered between passes, so nothing is skipped.
 */
export async function claimOutbox(q: Queryable, limit: number): Promise<OutboxRow[]> {
  const { rows } = await q.query<OutboxRow>({
    name: 'outbox.claim',
    text: `SELECT id, msg_key AS "msgKey", payload::text AS payload,
                  (payload #>> '{hlc,wall}')::float8 AS "stampWall"
             FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
    values: [limit],
  });
  return rows;
}

export async function deleteOutbox(q: Queryable, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await q.query({
    name: 'outbox.delete',
    text: 'DELETE FROM outbox WHERE id = ANY($1::bigint[])',
    values: [ids],
  });
}

export interface OutboxBacklog {
  readonly rows: number;
  /** Age of the oldest unpublished row in ms; 0 when empty. */
  readonly oldestAgeMs: number;
}

export async function outboxBacklog(q: Queryable): Promise<OutboxBacklog> {
  const { rows } = await q.query<{ n: string; age: number | null }>(
    `SELECT count(*) AS n,
            (extract(epoch FROM clock_timestamp() - min(created_at)) * 1000)::float8 AS age
       FROM outbox`,
  );
  const r = rows[0]!;
  return { rows: Number(r.n), oldestAgeMs: Math.max(0, Math.round(r.age ?? 0)) };
}
