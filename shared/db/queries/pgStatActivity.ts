/** Reads of `pg_stat_activity`: the open transactions of this region's writers. */
import type { Queryable } from '../pool.js';

/** The advisory lock key of a region's leader (services/region/leadership.ts takes it). */
export const LEADER_LOCK_KEY = 'hothot-region-leader';

/** The application name of a region process's leadership connection, with its process id. */
export function leadershipApplicationName(region: string, pid: number): string {
  return `hothot-${region}-leadership-${pid}`;
}

/**
 * The process id of the region's leader: the process whose leadership connection holds the leader
 * lock on this database (services/region/leadership.ts; not the preferred mark a relay worker also
 * holds), or null while none does. A bigint advisory key shows in `pg_locks` as classid (high 32 bits)
 * and objid (low 32 bits), objsubid 1.
 */
export async function readLeaderPid(q: Queryable): Promise<number | null> {
  const { rows } = await q.query<{ name: string }>({
    name: 'leadership.leaderPid',
    text: `SELECT a.application_name AS name
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()
              AND l.objsubid = 1
              AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 0)
              AND a.application_name LIKE 'hothot-%-leadership-%'`,
    values: [LEADER_LOCK_KEY],
  });
  const m = rows[0] === undefined ? null : /-(\d+)$/.exec(rows[0].name);
  return m === null ? null : Number(m[1]);
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
