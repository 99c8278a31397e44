/** Reads of `pg_stat_activity`: the open transactions of this region's writers. */
import type { Queryable } from '../pool.js';

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
