/**
 * Data access for `replication_gap`: ranges of a peer's topic that Kafka deleted (retention) before
 * this region applied them. Open until a re-bootstrap resolves them.
 */
import type { Queryable } from '../pool.js';

export interface NewReplicationGap {
  readonly topic: string;
  readonly partition: number;
  readonly origin: string;
  /** First offset lost. */
  readonly fromOffset: string;
  /** First offset after the loss (the partition's earliest retained offset when detected). */
  readonly toOffset: string;
}

export interface ReplicationGap extends NewReplicationGap {
  readonly detectedAt: Date;
}

/** Record a gap (idempotent: the same range detected again after a restart is one row). */
export async function recordReplicationGap(q: Queryable, gap: NewReplicationGap): Promise<void> {
  await q.query(
    `INSERT INTO replication_gap (topic, partition, origin, from_offset, to_offset)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (topic, partition, from_offset) DO UPDATE
       SET to_offset = GREATEST(replication_gap.to_offset, EXCLUDED.to_offset)`,
    [gap.topic, gap.partition, gap.origin, gap.fromOffset, gap.toOffset],
  );
}

/** The gaps not resolved yet, oldest first. */
export async function openReplicationGaps(q: Queryable): Promise<ReplicationGap[]> {
  const { rows } = await q.query<{
    topic: string;
    partition: number;
    origin: string;
    fromOffset: string;
    toOffset: string;
    detectedAt: Date;
  }>(
    `SELECT topic, partition, origin, from_offset::text AS "fromOffset", to_offset::text AS "toOffset",
            detected_at AS "detectedAt"
       FROM replication_gap WHERE resolved_at IS NULL ORDER BY detected_at, topic, partition`,
  );
  return rows;
}

/** Mark every open gap resolved (a snapshot that holds the lost events was loaded); returns how many. */
export async function resolveReplicationGaps(q: Queryable, by: string): Promise<number> {
  const { rowCount } = await q.query(
    `UPDATE replication_gap SET resolved_at = clock_timestamp(), resolved_by = $1 WHERE resolved_at IS NULL`,
    [by],
  );
  return rowCount ?? 0;
}
