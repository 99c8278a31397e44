/**
 * Watermarks: how far this region has applied each origin's changes, correct across partitions.
 *
 * Each origin sends heartbeats to every partition of its topic with a `safeBefore` mark: every
 * change it wrote with a stamp wall below the mark was published to that partition before the
 * heartbeat. Kafka keeps order within a partition and the applier commits a heartbeat with the
 * batch it came in, so once the marks of all partitions are past a stamp, every change of that
 * origin up to the stamp is applied here. The watermark is the minimum over the partitions.
 */
import type { PolicyMap } from '../../domain/mergePolicy.js';
import type { Queryable } from '../pool.js';

export interface PartitionMark {
  readonly origin: string;
  readonly partition: number;
  readonly partitions: number;
  readonly safeBefore: number;
  readonly sentAt: Date;
}

export async function recordPartitionMarks(q: Queryable, marks: readonly PartitionMark[]): Promise<void> {
  if (marks.length === 0) return;
  await q.query(
    `INSERT INTO peer_partition_progress AS p (origin, partition, partitions, safe_before, sent_at)
     SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::bigint[], $5::timestamptz[])
     ON CONFLICT (origin, partition) DO UPDATE SET
       partitions = EXCLUDED.partitions,
       safe_before = GREATEST(p.safe_before, EXCLUDED.safe_before),
       sent_at = GREATEST(p.sent_at, EXCLUDED.sent_at)`,
    [
      marks.map((m) => m.origin),
      marks.map((m) => m.partition),
      marks.map((m) => m.partitions),
      marks.map((m) => m.safeBefore),
      marks.map((m) => m.sentAt),
    ],
  );
}

/** origin → watermark (ms) for origins whose every partition has reported; others are absent. */
export async function appliedWatermarks(q: Queryable): Promise<Map<string, number>> {
  const { rows } = await q.query<{ origin: string; watermark: string }>(
    `SELECT origin, min(safe_before) AS watermark FROM peer_partition_progress
      GROUP BY origin HAVING count(*) >= max(partitions)`,
  );
  return new Map(rows.map((r) => [r.origin, Number(r.watermark)]));
}

/**
 * Stamp wall below which every change this region's writers may still commit is excluded: the
 * start of the oldest open transaction on this database (a writer stamps after its transaction
 * began), or now. Run it before claiming outbox rows.
 */
export async function safeBeforeMs(q: Queryable, marginMs: number): Promise<number> {
  const { rows } = await q.query<{ safe: number }>({
    name: 'watermark.safeBefore',
    text: `SELECT (extract(epoch FROM least(clock_timestamp(), min(xact_start))) * 1000)::float8 AS safe
             FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
              AND backend_type = 'client backend'`,
  });
  return Math.floor(rows[0]!.safe) - marginMs;
}

export interface PeerReport {
  readonly reporter: string;
  readonly watermarks: Readonly<Record<string, number>>;
  readonly policies: PolicyMap;
  readonly sentAt: Date;
}

export async function recordPeerReports(q: Queryable, reports: readonly PeerReport[]): Promise<void> {
  if (reports.length === 0) return;
  await q.query(
    `INSERT INTO peer_report AS r (reporter, watermarks, policies, sent_at)
     SELECT * FROM unnest($1::text[], $2::jsonb[], $3::jsonb[], $4::timestamptz[])
     ON CONFLICT (reporter) DO UPDATE SET
       watermarks = EXCLUDED.watermarks, policies = EXCLUDED.policies, sent_at = EXCLUDED.sent_at,
       received_at = clock_timestamp()
     WHERE EXCLUDED.sent_at >= r.sent_at`,
    [
      reports.map((r) => r.reporter),
      reports.map((r) => JSON.stringify(r.watermarks)),
      reports.map((r) => JSON.stringify(r.policies)),
      reports.map((r) => r.sentAt),
    ],
  );
}

export async function readPeerReports(q: Queryable): Promise<PeerReport[]> {
  const { rows } = await q.query<PeerReport>(
    `SELECT reporter, watermarks, policies, sent_at AS "sentAt" FROM peer_report ORDER BY reporter`,
  );
  return rows;
}

export interface GcState {
  readonly horizonMs: number;
  readonly collected: number;
  readonly lastRunAt: Date | null;
}

export async function readGcState(q: Queryable): Promise<GcState> {
  const { rows } = await q.query<{ horizonMs: string; collected: string; lastRunAt: Date | null }>(
    `SELECT horizon_ms AS "horizonMs", collected, last_run_at AS "lastRunAt" FROM gc_state`,
  );
  const r = rows[0]!;
  return { horizonMs: Number(r.horizonMs), collected: Number(r.collected), lastRunAt: r.lastRunAt };
}

/** Raise the horizon (never lowers it) and add to the collected count. */
export async function advanceGc(q: Queryable, horizonMs: number, collected: number): Promise<void> {
  await q.query(
    `UPDATE gc_state SET horizon_ms = GREATEST(horizon_ms, $1), collected = collected + $2, last_run_at = clock_timestamp()`,
    [horizonMs, collected],
  );
}

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
