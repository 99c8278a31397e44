import type pg from 'pg';
import { isRetryablePgError, SQLSTATE, sqlState } from '../errors/pgErrors.js';

/**
 * Handle on the transaction `withTransaction` runs, for work that wants its last statements and
 * the COMMIT to travel together.
 */
export interface Transaction {
  /**
   * Send the statements `issue` starts (without awaiting them in between) and COMMIT in one
   * write, and wait for all of them: the transaction's last round trip. Resolves with `issue`'s
   * result; rejects with the first failure (a failed statement makes the server roll the COMMIT
   * back). Call it at most once, as the last thing the work does.
   */
  commitWith<T>(issue: () => Promise<T>): Promise<T>;
}

/**
 * Run `work` in one transaction on a client checked out of `pool`; commit when it resolves, roll
 * back when it throws. A client that failed mid-transaction is destroyed rather than returned.
 *
 * Round trips: the pool's clients run in node-postgres's pipeline mode (`createPool`), so a query
 * goes out without waiting for the previous one's result. BEGIN is sent together with the
 * statements `work` starts before its first `await` (one socket write, see {@link sendTogether}),
 * and `Transaction.commitWith` sends the last statements with the COMMIT. Statements still run one
 * after the other on the server, each with a snapshot of its own, so a read sent behind a lock
 * sees what the lock protects. BEGIN itself cannot fail short of a broken connection, which fails
 * the statements behind it too.
 */
export async function withTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient, tx: Transaction) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: unknown;
  let commitSent = false;
  const tx: Transaction = {
    async commitWith<R>(issue: () => Promise<R>): Promise<R> {
      if (commitSent) throw new Error('commitWith called twice in one transaction');
      commitSent = true;
      const [last, commit] = sendTogether(client, () => [issue(), client.query('COMMIT')] as const);
      const [lastResult, commitResult] = await Promise.allSettled([last, commit]);
      if (commitResult.status === 'rejected') broken = commitResult.reason;
      if (lastResult.status === 'rejected') throw lastResult.reason;
      if (commitResult.status === 'rejected') throw commitResult.reason;
      return lastResult.value;
    },
  };
  try {
    const [begun, done] = sendTogether(client, () => [client.query('BEGIN'), work(client, tx)] as const);
    // Wait for both, whatever happens: the client must not go back to the pool while `work` still
    // has statements in flight on it.
    const [beginResult, workResult] = await Promise.allSettled([begun, done]);
    if (beginResult.status === 'rejected') throw beginResult.reason;
    if (workResult.status === 'rejected') throw workResult.reason;
    if (!commitSent) await client.query('COMMIT');
    return workResult.value;
  } catch (err) {
    broken = await rollBackFailed(client, err, { commitSent, broken });
    throw err;
  } finally {
    client.release(broken instanceof Error ? broken : undefined);
  }
}

/**
 * After `err` failed a transaction on `client`: roll it back unless its COMMIT was already sent.
 * Returns why the client must be destroyed instead of going back to the pool, if it must: the
 * rollback failed, `broken` (already known), or `err` is the connection's.
 */
export async function rollBackFailed(
  client: pg.PoolClient,
  err: unknown,
  state: { readonly commitSent: boolean; readonly broken: unknown },
): Promise<unknown> {
  if (!state.commitSent) {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackErr) {
      return rollbackErr;
    }
  }
  return state.broken ?? (isRetryablePgError(err) ? err : undefined);
}

/**
 * Run `issue`, which starts queries on `client` without awaiting them, with the client's socket
 * corked: in pipeline mode the statements leave in one write instead of one each, so the server
 * process is woken once (strace of the write path: 18.1 → 10.3 syscalls per API write with the
 * two-trip transactions).
 */
export function sendTogether<T>(client: pg.PoolClient, issue: () => T): T {
  const stream = (client as unknown as { connection?: { stream?: { cork?(): void; uncork?(): void } } })
    .connection?.stream;
  stream?.cork?.();
  try {
    return issue();
  } finally {
    stream?.uncork?.();
  }
}

/**
 * `Promise.all` for statements sent together on one client: waits for every one and rejects with the
 * first failure in the order given, which is the order the server ran them in. Once a statement
 * fails, the server refuses every later one of the transaction (25P02, "current transaction is
 * aborted"), and `Promise.all` would reject with whichever of those rejections settled first — the
 * real cause or a 25P02, depending on how many promise hops each caller's wrapper adds and on how
 * the replies were split across socket reads. Waiting for all costs nothing: they are in flight.
 */
export async function allInOrder<T extends readonly unknown[] | []>(
  statements: T,
): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const settled = await Promise.allSettled(statements);
  for (const r of settled) if (r.status === 'rejected') throw r.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as {
    -readonly [K in keyof T]: Awaited<T[K]>;
  };
}

/** True when a transaction failed only because of a concurrent one and may simply be run again. */
export function isTransientConflict(err: unknown): boolean {
  const s = sqlState(err);
  return (
    s === SQLSTATE.deadlockDetected || s === SQLSTATE.serializationFailure || s === SQLSTATE.uniqueViolation
  );
}
