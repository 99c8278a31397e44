/**
 * Data access for `peer_progress`: what this region has applied from each origin, one row per origin
 * and partition (migration 0011: concurrent partitions' transactions never share a row), combined
 * per origin when read.
 */
import type { HlcStamp } from '../../domain/hlc.js';
import type { ProgressUpdate } from '../../domain/watermark.js';
import type { Queryable } from '../pool.js';

/** Add each update to its origin's row for the partition its batch came from. */
export async function recordProgress(
  q: Queryable,
  updates: readonly (ProgressUpdate & { readonly partition: number })[],
): Promise<void> {
  if (updates.length === 0) return;
  await q.query({
    name: 'peerProgress.record',
    text: `INSERT INTO peer_progress AS p (origin, partition, applied_events, last_event_id, last_hlc_wall, last_hlc_logical,
                                     last_applied_at, heartbeat_sent_at, heartbeat_applied_at, last_lag_ms)
     SELECT o, pa, n, e, w, l, CASE WHEN e IS NULL THEN NULL ELSE clock_timestamp() END,
            hb, CASE WHEN hb IS NULL THEN NULL ELSE clock_timestamp() END, lag
       FROM unnest($1::text[], $8::int[], $2::bigint[], $3::text[], $4::bigint[], $5::int[], $6::timestamptz[], $7::bigint[])
         AS t(o, pa, n, e, w, l, hb, lag)
     ON CONFLICT (origin, partition) DO UPDATE SET
       applied_events = p.applied_events + EXCLUDED.applied_events,
       last_event_id = COALESCE(EXCLUDED.last_event_id, p.last_event_id),
       last_applied_at = COALESCE(EXCLUDED.last_applied_at, p.last_applied_at),
       last_lag_ms = COALESCE(EXCLUDED.last_lag_ms, p.last_lag_ms),
       -- greatest stamp wins: partitions are consumed independently, so batches arrive in any order
       (last_hlc_wall, last_hlc_logical) = (
         SELECT w, l FROM (VALUES (p.last_hlc_wall, p.last_hlc_logical), (EXCLUDED.last_hlc_wall, EXCLUDED.last_hlc_logical)) AS s(w, l)
          WHERE w IS NOT NULL ORDER BY w DESC, l DESC LIMIT 1),
       heartbeat_sent_at = GREATEST(p.heartbeat_sent_at, EXCLUDED.heartbeat_sent_at),
       heartbeat_applied_at = CASE WHEN EXCLUDED.heartbeat_sent_at IS NOT NULL
                                     AND EXCLUDED.heartbeat_sent_at >= COALESCE(p.heartbeat_sent_at, '-infinity')
                                   THEN EXCLUDED.heartbeat_applied_at ELSE p.heartbeat_applied_at END`,
    values: [
      updates.map((u) => u.origin),
      updates.map((u) => u.events),
      updates.map((u) => u.lastEventId ?? null),
      updates.map((u) => u.maxHlc?.wall ?? null),
      updates.map((u) => u.maxHlc?.logical ?? null),
      updates.map((u) => u.heartbeatSentAt ?? null),
      updates.map((u) => (u.lagMs === undefined ? null : Math.round(u.lagMs))),
      updates.map((u) => u.partition),
    ],
  });
}

export interface PeerProgress {
  readonly origin: string;
  readonly appliedEvents: number;
  readonly lastEventId: string | null;
  readonly lastHlc: HlcStamp | null;
  readonly lastAppliedAt: Date | null;
  readonly heartbeatSentAt: Date | null;
  readonly heartbeatAppliedAt: Date | null;
  readonly lastLagMs: number | null;
}

/**
 * Per origin, its partitions' rows combined: events summed; the greatest stamp; the last event, lag
 * and apply time of the partition applied most recently; the newest heartbeat and when it was applied.
 */
export async function readProgress(q: Queryable): Promise<PeerProgress[]> {
  const { rows } = await q.query<{
    origin: string;
    appliedEvents: string;
    lastEventId: string | null;
    lastHlcWall: string | null;
    lastHlcLogical: number | null;
    lastAppliedAt: Date | null;
    heartbeatSentAt: Date | null;
    heartbeatAppliedAt: Date | null;
    lastLagMs: string | null;
  }>(
    `SELECT origin, sum(applied_events)::text AS "appliedEvents",
            (array_agg(last_event_id ORDER BY last_applied_at DESC NULLS LAST))[1] AS "lastEventId",
            (array_agg(last_hlc_wall ORDER BY last_hlc_wall DESC NULLS LAST, last_hlc_logical DESC))[1] AS "lastHlcWall",
            (array_agg(last_hlc_logical ORDER BY last_hlc_wall DESC NULLS LAST, last_hlc_logical DESC))[1] AS "lastHlcLogical",
            max(last_applied_at) AS "lastAppliedAt",
            max(heartbeat_sent_at) AS "heartbeatSentAt",
            (array_agg(heartbeat_applied_at ORDER BY heartbeat_sent_at DESC NULLS LAST))[1] AS "heartbeatAppliedAt",
            (array_agg(last_lag_ms ORDER BY last_applied_at DESC NULLS LAST))[1] AS "lastLagMs"
       FROM peer_progress GROUP BY origin ORDER BY origin`,
  );
  return rows.map((r) => ({
    origin: r.origin,
    appliedEvents: Number(r.appliedEvents),
    lastEventId: r.lastEventId,
    lastHlc:
      r.lastHlcWall === null
        ? null
        : { wall: Number(r.lastHlcWall), logical: r.lastHlcLogical ?? 0, region: r.origin },
    lastAppliedAt: r.lastAppliedAt,
    heartbeatSentAt: r.heartbeatSentAt,
    heartbeatAppliedAt: r.heartbeatAppliedAt,
    lastLagMs: r.lastLagMs === null ? null : Number(r.lastLagMs),
  }));
}
