/**
 * Helpers shared by integration and end-to-end tests: per-test databases and topic prefixes on the
 * shared infrastructure, deadline polling instead of sleeps, quiet loggers.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pino } from 'pino';
import { inject } from 'vitest';
import { seededRandom } from '../../infra/lab/seededRandom.js';
import { migrate } from '../../shared/db/migrate.js';
import { createPool } from '../../shared/db/pool.js';
import type { Logger } from '../../shared/logging/logger.js';

export interface SharedInfra {
  readonly postgresUrl: string;
  readonly kafkaBrokers: readonly string[];
}

declare module 'vitest' {
  export interface ProvidedContext {
    infra: SharedInfra;
  }
}

/** The infrastructure started once per run by test/support/globalSetup.ts. */
export function sharedInfra(): SharedInfra {
  return inject('infra');
}

/** Short random id for database names, topic prefixes and keys. */
export function randomId(bytes = 4): string {
  return randomBytes(bytes).toString('hex');
}

/** Create an empty database on the shared server; returns its URL. */
export async function createDatabase(adminUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Drop a database, terminating its remaining sessions. */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/** A fresh database on the shared server with hothot's schema, and a pool like a region's. */
export interface TestDatabase {
  readonly pool: pg.Pool;
  /** End the pool and drop the database. */
  drop(): Promise<void>;
}

export async function migratedDatabase(
  name: string,
  log: Logger,
  options: { max?: number; applicationName?: string } = {},
): Promise<TestDatabase> {
  const adminUrl = sharedInfra().postgresUrl;
  const pool = createPool(
    {
      connectionString: await createDatabase(adminUrl, name),
      max: options.max ?? 5,
      applicationName: options.applicationName ?? 'test',
    },
    log,
  );
  await migrate(pool, log);
  return {
    pool,
    async drop() {
      await pool.end();
      await dropDatabase(adminUrl, name).catch(() => undefined);
    },
  };
}

/** A logger for tests: silent unless HOTHOT_TEST_LOG is set to a level. */
export function testLogger(region = 'test'): Logger {
  return pino({ level: process.env.HOTHOT_TEST_LOG ?? 'silent', base: { region } });
}

export interface WaitOptions {
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
}

/**
 * Poll `check` until it returns something other than undefined/false, or fail after the deadline
 * with `what` and the last value or error seen.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Seed for randomized tests: HOTHOT_SEED if set, else random; printed so a failure can be rerun. */
export function testSeed(name: string): number {
  const fromEnv = process.env.HOTHOT_SEED;
  const seed = fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : randomBytes(4).readUInt32LE(0);
  console.log(`[${name}] seed=${seed} (rerun with HOTHOT_SEED=${seed})`);
  return seed;
}

/** Small deterministic PRNG (mulberry32) for seeded schedules. */
export const prng = seededRandom;
