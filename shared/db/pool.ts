/** PostgreSQL pool and the `Queryable` port that data access takes (pool or checked-out client). */
import pg from 'pg';
import type { Logger } from '../logging/logger.js';

/** Anything that runs a query: a pool, or a client inside a transaction the caller owns. */
export type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>;

export interface PoolOptions {
  readonly connectionString: string;
  readonly max: number;
  readonly applicationName: string;
  /** Fail a connection attempt after this long. @default 5000 */
  readonly connectionTimeoutMs?: number;
  /** The password, when it is not in `connectionString` (it replaces one that is). */
  readonly password?: string;
}

/** `url` with `password` as its password (percent-encoded). */
export function withPassword(url: string, password: string): string {
  const u = new URL(url);
  u.password = encodeURIComponent(password);
  return u.toString();
}

export function createPool(options: PoolOptions, log: Logger): pg.Pool {
  const pool = new pg.Pool({
    connectionString:
      options.password === undefined
        ? options.connectionString
        : withPassword(options.connectionString, options.password),
    // Pipeline mode (node-postgres ≥ 8.23): a query is sent without waiting for the previous
    // one's result, so a transaction sends its statements in two writes (see withTransaction).
    // Queries awaited one by one behave exactly as before. Not for cursors or `rows:` paging,
    // which this code base does not use.
    pipeline: true,
    max: options.max,
    application_name: options.applicationName,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client whose server went away emits 'error' on the pool; unhandled, it kills the process.
  pool.on('error', (err) => log.warn({ err }, 'idle PostgreSQL client failed'));
  // A checked-out client between two queries (a transaction waiting on Kafka, say) emits 'error' on
  // itself when its server goes away (PostgreSQL restart, network cut); unhandled, that kills the
  // process too. Its next query fails and the transaction's owner retries; the pool discards it.
  pool.on('connect', (client) => {
    client.on('error', (err) => log.warn({ err }, 'PostgreSQL connection of a checked-out client failed'));
  });
  return pool;
}

/**
 * A client of its own, outside the pool and not in pipeline mode, with the pool's connection
 * settings: for COPY streams, which cannot share a pipelined connection. The caller ends it.
 */
export async function connectUnpipelined(pool: pg.Pool): Promise<pg.Client> {
  const client = new pg.Client({ ...pool.options, pipeline: false });
  await client.connect();
  return client;
}
