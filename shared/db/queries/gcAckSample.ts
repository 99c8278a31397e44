/**
 * Data access for `gc_ack_sample`: when each acknowledged horizon (shared/domain/watermark.ts) was
 * first seen, so that tombstones are collected only below one acknowledged a grace period ago.
 */
import type { Queryable } from '../pool.js';

/**
 * Record the horizon every region has acknowledged now, and return the greatest one acknowledged
 * at least `graceMs` ago (null if none is that old yet). Old samples are pruned.
 */
export async function sampleAckHorizon(
  q: Queryable,
  horizonMs: number,
  graceMs: number,
): Promise<number | null> {
  await q.query('INSERT INTO gc_ack_sample (horizon_ms) VALUES ($1) ON CONFLICT DO NOTHING', [horizonMs]);
  const { rows } = await q.query<{ h: string | null }>(
    `SELECT max(horizon_ms) AS h FROM gc_ack_sample WHERE observed_at <= clock_timestamp() - make_interval(secs => $1::float8 / 1000)`,
    [graceMs],
  );
  // Keep the newest sample that is already old enough; drop the ones before it.
  await q.query(
    `DELETE FROM gc_ack_sample WHERE observed_at < (
       SELECT max(observed_at) FROM gc_ack_sample WHERE observed_at <= clock_timestamp() - make_interval(secs => $1::float8 / 1000))`,
    [graceMs],
  );
  return rows[0]!.h === null ? null : Number(rows[0]!.h);
}

/** The greatest horizon acknowledged at least `graceMs` ago, without recording a sample. */
export async function agedAckHorizon(q: Queryable, graceMs: number): Promise<number | null> {
  const { rows } = await q.query<{ h: string | null }>(
    `SELECT max(horizon_ms) AS h FROM gc_ack_sample WHERE observed_at <= clock_timestamp() - make_interval(secs => $1::float8 / 1000)`,
    [graceMs],
  );
  return rows[0]!.h === null ? null : Number(rows[0]!.h);
}
