/**
 * Helpers shared by integration and end-to-end tests: per-test databases and topic prefixes on the
 * shared infrastructure, deadline polling instead of sleeps, quiet loggers.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { pino } from 'pino';
import { inject } from 'vitest';
import { Kafka, logLevel } from 'kafkajs';
import { provisionRegions } from '../../infra/lab/kafkaAcls.js';
import { provisionAdminKey } from '../../infra/lab/labClientKeys.js';
import { KAFKA_ADMIN_PRINCIPAL, readSecret } from '../../infra/lab/labSecrets.js';
import { kafkaSecurityConfig, type KafkaClientSecurity } from '../../shared/kafka/client.js';
import type { TestKafkaSecurity } from './infra.js';
import { seededRandom } from '../../infra/lab/seededRandom.js';
import { WaitTimeoutError, waitFor as pollUntil } from '../../infra/lab/waitFor.js';
import { migrate } from '../../shared/db/migrate.js';
import { createPool } from '../../shared/db/pool.js';
import type { Logger } from '../../shared/logging/logger.js';

export interface SharedInfra {
  readonly postgresUrl: string;
  readonly kafkaBrokers: readonly string[];
  /** The broker's TLS + SCRAM credentials (files); absent when the infrastructure's Kafka is PLAINTEXT. */
  readonly kafkaSecurity?: TestKafkaSecurity;
}

declare module 'vitest' {
  export interface ProvidedContext {
    infra: SharedInfra;
    /** The run's admin API key (read, write, admin): see test/support/globalSetup.ts. */
    adminKey: string;
  }
}

/** The infrastructure started once per run by test/support/globalSetup.ts. */
export function sharedInfra(): SharedInfra {
  return inject('infra');
}

/**
 * The run's admin API key (`hh_…`): the lab and the region harnesses put it in every region's
 * database, and test/support/authenticateLocalRequests.ts sends it with `fetch`. Raw `node:http`
 * requests need {@link authorizationHeader}.
 */
export function testAdminKey(): string {
  return process.env.HOTHOT_LAB_ADMIN_KEY ?? inject('adminKey');
}

/** `{ authorization: 'Bearer <the run's admin key>' }`, for requests that do not go through fetch. */
export function authorizationHeader(): { authorization: string } {
  return { authorization: `Bearer ${testAdminKey()}` };
}

/** Create the run's admin key (every scope) in each of these region databases (migrated). */
export async function provisionTestAdminKey(databaseUrls: readonly string[]): Promise<void> {
  await provisionAdminKey(testAdminKey(), databaseUrls);
}

/** A fresh SESSION_TOKEN_KEYS value (32 random bytes, base64url): give the same to every region of a test. */
export function testSessionTokenKeys(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * How a test's own Kafka client connects to the shared broker as `principal` — by default `admin`,
 * who may use any topic and group — or undefined when the broker is PLAINTEXT. Pass it as
 * `createKafka({ …, security })`.
 */
export function kafkaClientSecurity(
  principal: string = KAFKA_ADMIN_PRINCIPAL,
): KafkaClientSecurity | undefined {
  const security = sharedInfra().kafkaSecurity;
  if (security === undefined) return undefined;
  const passwordFile = security.passwordFiles[principal];
  if (passwordFile === undefined)
    throw new Error(
      `the test broker has no Kafka principal ${principal}: add it to TEST_KAFKA_REGIONS (test/support/infra.ts)`,
    );
  return {
    ca: readFileSync(security.caFile, 'utf8'),
    username: principal,
    password: readSecret(passwordFile),
  };
}

/**
 * The Kafka variables of a region process or in-process region on the shared broker: its own
 * principal's CA, name and password file. On a PLAINTEXT broker (KAFKA_BROKERS given without
 * credentials, or testcontainers) `SECURITY_MODE=on` cannot be met, so the region is started
 * `insecure-dev` — explicitly, and it says so loudly; a test may still override it.
 */
export function regionKafkaEnv(region: string): Record<string, string> {
  const security = sharedInfra().kafkaSecurity;
  if (security === undefined) return { SECURITY_MODE: 'insecure-dev' };
  const passwordFile = security.passwordFiles[region];
  if (passwordFile === undefined)
    throw new Error(
      `the test broker has no Kafka principal for region ${region}: add it to TEST_KAFKA_REGIONS (test/support/infra.ts)`,
    );
  return {
    KAFKA_SSL_CA_FILE: security.caFile,
    KAFKA_SASL_USERNAME: region,
    KAFKA_SASL_PASSWORD_FILE: passwordFile,
  };
}

/**
 * As admin on the shared broker: the change topics of `regions` under `prefix` and their ACLs (a
 * region writes only its own topic, reads its peers', uses only its own group) — what the lab does for
 * its prefix. Call it before starting regions under a test's own prefix. Nothing when PLAINTEXT.
 */
export async function provisionTestRegions(
  prefix: string,
  regions: readonly string[],
  partitions?: number,
): Promise<void> {
  const security = kafkaClientSecurity();
  if (security === undefined) return;
  const kafka = new Kafka({
    clientId: 'hothot-test-admin',
    brokers: [...sharedInfra().kafkaBrokers],
    logLevel: logLevel.NOTHING,
    ...kafkaSecurityConfig(security),
  });
  await provisionRegions(kafka, { prefix, regions, ...(partitions !== undefined ? { partitions } : {}) });
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
 * with `what` and the last value or error seen. The lab's {@link pollUntil} does the polling; this
 * adds the tests' defaults (30 s, every 50 ms) and the last value to the message.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  let last: unknown;
  try {
    return await pollUntil(
      async () => {
        try {
          last = await check();
        } catch (err) {
          last = err;
          throw err;
        }
        return last as T | undefined | false;
      },
      { description: what, timeoutMs, intervalMs: options.intervalMs ?? 50 },
    );
  } catch (err) {
    if (!(err instanceof WaitTimeoutError)) throw err;
    throw new Error(
      `timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`,
    );
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
