/**
 * Data access for `peer_partition_progress`: each origin's newest heartbeat mark per partition, from
 * which this region's applied watermarks follow (shared/domain/watermark.ts).
 */
import { foldAppliedWatermarks, type PartitionMark } from '../../domain/watermark.js';
import type { Queryable } from '../pool.js';

export async function recordPartitionMarks(q: Queryable, marks: readonly PartitionMark[]): Promise<void> {
  if (marks.length === 0) return;
  await q.query({
    name: 'peerPartitionProgress.record',
    text: `INSERT INTO peer_partition_progress AS p (origin, partition, partitions, safe_before, sent_at)
     SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::bigint[], $5::timestamptz[])
     ON CONFLICT (origin, partition) DO UPDATE SET
       partitions = EXCLUDED.partitions,
       safe_before = GREATEST(p.safe_before, EXCLUDED.safe_before),
       sent_at = GREATEST(p.sent_at, EXCLUDED.sent_at)`,
    values: [
      marks.map((m) => m.origin),
      marks.map((m) => m.partition),
      marks.map((m) => m.partitions),
      marks.map((m) => m.safeBefore),
      marks.map((m) => m.sentAt),
    ],
  });
}

/** origin → watermark (ms) for origins whose every partition has reported; others are absent. */
export async function appliedWatermarks(q: Queryable): Promise<Map<string, number>> {
  const { rows } = await q.query<{ origin: string; partitions: number; safeBefore: string }>(
    `SELECT origin, partitions, safe_before AS "safeBefore" FROM peer_partition_progress`,
  );
  return foldAppliedWatermarks(
    rows.map((r) => ({ origin: r.origin, partitions: r.partitions, safeBefore: Number(r.safeBefore) })),
  );
}
