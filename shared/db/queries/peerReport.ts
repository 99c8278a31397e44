/** Data access for `peer_report`: each peer's newest acknowledgements and policies, from its heartbeats. */
import type { PeerReport } from '../../domain/watermark.js';
import type { Queryable } from '../pool.js';

/**
 * Keep each report in its reporter's row for the partition whose heartbeat carried it (migration 0011:
 * every partition carries the heartbeats, and their concurrent transactions must not queue on one row).
 */
export async function recordPeerReports(
  q: Queryable,
  reports: readonly (PeerReport & { readonly partition: number })[],
): Promise<void> {
  if (reports.length === 0) return;
  await q.query({
    name: 'peerReport.record',
    text: `INSERT INTO peer_report AS r (reporter, partition, watermarks, policies, sent_at)
     SELECT * FROM unnest($1::text[], $5::int[], $2::jsonb[], $3::jsonb[], $4::timestamptz[])
     ON CONFLICT (reporter, partition) DO UPDATE SET
       watermarks = EXCLUDED.watermarks, policies = EXCLUDED.policies, sent_at = EXCLUDED.sent_at,
       received_at = clock_timestamp()
     WHERE EXCLUDED.sent_at >= r.sent_at`,
    values: [
      reports.map((r) => r.reporter),
      reports.map((r) => JSON.stringify(r.watermarks)),
      reports.map((r) => JSON.stringify(r.policies)),
      reports.map((r) => r.sentAt),
      reports.map((r) => r.partition),
    ],
  });
}

/** Each reporter's newest report, whichever partition carried it. */
export async function readPeerReports(q: Queryable): Promise<PeerReport[]> {
  const { rows } = await q.query<PeerReport>(
    `SELECT DISTINCT ON (reporter) reporter, watermarks, policies, sent_at AS "sentAt"
       FROM peer_report ORDER BY reporter, sent_at DESC`,
  );
  return rows;
}
