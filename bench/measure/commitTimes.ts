/**
 * Replication lag from PostgreSQL's own clocks, per row: for each key written once in the origin,
 * lag = time the row landed in the target − commit time of the row in the origin. All clusters run
 * on this machine, so every timestamp comes from the same clock; nothing is polled, so there is no
 * sampling error, and every row counts.
 *
 * - Origin (`us`, `pub`) and hothot's target (`eu`): the commit timestamp of the row's transaction,
 *   `pg_xact_commit_timestamp(xmin)` (`track_commit_timestamp = on` in every bench cluster).
 * - Logical replication's target (`sub`): the apply worker commits with its *origin's* commit
 *   timestamp (replication origins keep it for conflict handling), so that would read as zero lag.
 *   Instead a BEFORE trigger enabled ALWAYS stamps `updated_at = clock_timestamp()` as the apply
 *   worker writes the row — just before its commit (the apply worker commits with
 *   synchronous_commit off: well under 0.1 ms later). If anything, this favours the peer.
 */
import type pg from 'pg';

/** How the time a row landed is read: its transaction's commit timestamp, or its `updated_at`. */
export type LandedClock = 'commit' | 'updated_at';

/** Trigger making `updated_at` the local apply time on a logical-replication subscriber. */
export const SUBSCRIBER_APPLY_STAMP_SQL = [
  `CREATE FUNCTION bench_stamp_apply() RETURNS trigger LANGUAGE plpgsql AS
     $$ BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$`,
  'CREATE TRIGGER bench_stamp_apply BEFORE INSERT OR UPDATE ON item FOR EACH ROW EXECUTE FUNCTION bench_stamp_apply()',
  'ALTER TABLE item ENABLE ALWAYS TRIGGER bench_stamp_apply',
];

/** When each row of `collection` landed (ms since the epoch, µs resolution), by key. */
export async function commitTimes(pool: pg.Pool, collection: string, clock: LandedClock = 'commit'): Promise<Map<string, number>> {
  const expr = clock === 'commit' ? 'pg_xact_commit_timestamp(xmin)' : 'updated_at';
  const { rows } = await pool.query<{ key: string; t: number }>(
    `SELECT key, (extract(epoch FROM ${expr}) * 1000)::float8 AS t FROM item WHERE collection = $1`,
    [collection],
  );
  const out = new Map<string, number>();
  for (const r of rows) if (r.t !== null) out.set(r.key, r.t);
  return out;
}

export interface CommitPair {
  readonly origin: number;
  readonly target: number;
}

/** Pairs (origin commit, target commit) of the keys present in both. */
export function commitPairs(origin: Map<string, number>, target: Map<string, number>): CommitPair[] {
  const out: CommitPair[] = [];
  for (const [key, t0] of origin) {
    const t1 = target.get(key);
    if (t1 !== undefined) out.push({ origin: t0, target: t1 });
  }
  return out;
}

export function lagsOf(pairs: readonly CommitPair[]): number[] {
  return pairs.map((p) => p.target - p.origin);
}

export async function countRows(pool: pg.Pool, collection: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM item WHERE collection = $1', [collection]);
  return Number(rows[0]?.n ?? 0);
}
