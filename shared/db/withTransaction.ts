import type pg from 'pg';
import { isRetryablePgError, SQLSTATE, sqlState } from '../errors/pgErrors.js';

/**
 * Run `work` in one transaction on a client checked out of `pool`; commit when it resolves, roll
 * back when it throws. A client that failed mid-transaction is destroyed rather than returned.
 */
export async function withTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: unknown;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackErr) {
      broken = rollbackErr;
    }
    if (isRetryablePgError(err)) broken ??= err;
    throw err;
  } finally {
    client.release(broken instanceof Error ? broken : undefined);
  }
}

/** True when a transaction failed only because of a concurrent one and may simply be run again. */
export function isTransientConflict(err: unknown): boolean {
  const s = sqlState(err);
  return (
    s === SQLSTATE.deadlockDetected || s === SQLSTATE.serializationFailure || s === SQLSTATE.uniqueViolation
  );
}
