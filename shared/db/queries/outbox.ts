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
    values: [msgKey, typeof payload === 'string' ? payload : JSON.stringify(payload)],
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
  /** Rows set aside in `outbox_held` because Kafka will not take them (never published until resolved). */
  readonly heldRows: number;
  /** When the oldest held row was set aside; null when none is. */
  readonly oldestHeldAt: string | null;
}

export async function outboxBacklog(q: Queryable): Promise<OutboxBacklog> {
  const { rows } = await q.query<{ n: string; age: number | null; held: string; heldAt: Date | null }>(
    `SELECT count(*) AS n,
            (extract(epoch FROM clock_timestamp() - min(created_at)) * 1000)::float8 AS age,
            (SELECT count(*) FROM outbox_held) AS held,
            (SELECT min(held_at) FROM outbox_held) AS "heldAt"
       FROM outbox`,
  );
  const r = rows[0]!;
  return {
    rows: Number(r.n),
    oldestAgeMs: Math.max(0, Math.round(r.age ?? 0)),
    heldRows: Number(r.held),
    oldestHeldAt: r.heldAt?.toISOString() ?? null,
  };
}

/** An outbox row Kafka would not take, set aside in `outbox_held` (see migration 0005). */
export interface HeldRow {
  readonly id: string;
  readonly msgKey: string;
  readonly bytes: number;
  readonly reason: string;
  readonly createdAt: Date;
  readonly heldAt: Date;
}

/** Move one claimed outbox row to `outbox_held` with the reason (inside the relay's transaction). */
export async function holdOutboxRow(q: Queryable, id: string, reason: string): Promise<void> {
  await q.query({
    name: 'outbox.hold',
    text: `WITH moved AS (DELETE FROM outbox WHERE id = $1 RETURNING id, msg_key, payload, created_at)
           INSERT INTO outbox_held (id, msg_key, payload, bytes, reason, created_at)
           SELECT id, msg_key, payload, octet_length(payload::text), $2, created_at FROM moved`,
    values: [id, reason],
  });
}

export async function listHeld(q: Queryable, limit: number): Promise<HeldRow[]> {
  const { rows } = await q.query<HeldRow>({
    text: `SELECT id, msg_key AS "msgKey", bytes, reason, created_at AS "createdAt", held_at AS "heldAt"
             FROM outbox_held ORDER BY id LIMIT $1`,
    values: [limit],
  });
  return rows;
}

/**
 * Put held rows (all when `ids` is undefined) back in the outbox, as new rows at its end; returns
 * how many. The relay publishes them, or holds them again if they still do not fit.
 */
export async function requeueHeld(q: Queryable, ids: readonly string[] | undefined): Promise<number> {
  const { rowCount } = await q.query({
    text: `WITH moved AS (DELETE FROM outbox_held WHERE $1::bigint[] IS NULL OR id = ANY($1::bigint[])
                          RETURNING id, msg_key, payload)
           INSERT INTO outbox (msg_key, payload) SELECT msg_key, payload FROM moved ORDER BY id`,
    values: [ids ?? null],
  });
  return rowCount ?? 0;
}

/** Remove held rows (all when `ids` is undefined) for good; returns how many. */
export async function dropHeld(q: Queryable, ids: readonly string[] | undefined): Promise<number> {
  const { rowCount } = await q.query({
    text: 'DELETE FROM outbox_held WHERE $1::bigint[] IS NULL OR id = ANY($1::bigint[])',
    values: [ids ?? null],
  });
  return rowCount ?? 0;
}
