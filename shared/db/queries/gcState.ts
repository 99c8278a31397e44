/** Data access for `gc_state`: the tombstone-GC horizon replays below which are refused, and its counts. */
import type { Queryable } from '../pool.js';

export interface GcState {
  readonly horizonMs: number;
  readonly collected: number;
  readonly lastRunAt: Date | null;
}

export async function readGcState(q: Queryable): Promise<GcState> {
  const { rows } = await q.query<{ horizonMs: string; collected: string; lastRunAt: Date | null }>({
    name: 'gcState.read',
    text: `SELECT horizon_ms AS "horizonMs", collected, last_run_at AS "lastRunAt" FROM gc_state`,
  });
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
