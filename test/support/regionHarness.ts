/**
 * In-process regions on the shared PostgreSQL and Kafka: one fresh database per region and a
 * random topic prefix per test, so tests never see each other's data. The regions share a
 * session-token key, and each has the run's admin API key (what `fetch` sends: see
 * test/support/authenticateLocalRequests.ts). Each signs what it publishes with an Ed25519 key of its
 * own and verifies its peers' events (keys made in a temporary directory, `eventKeysDir`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DestinationStream } from 'pino';
import { loadConfig, type Config } from '../../shared/config/loadConfig.js';
import { createRootLogger } from '../../shared/logging/logger.js';
import { eventKeyEnv, provisionEventKeys } from '../../shared/security/eventKeys.js';
import { Region } from '../../services/region/region.js';
import {
  createDatabase,
  dropDatabase,
  provisionTestAdminKey,
  provisionTestRegions,
  randomId,
  regionKafkaEnv,
  sharedInfra,
  testLogger,
  testSessionTokenKeys,
} from './harness.js';

export interface TestRegions {
  readonly prefix: string;
  readonly regions: Readonly<Record<string, Region>>;
  readonly databaseUrls: Readonly<Record<string, string>>;
  /** The regions' event keys (`<region>.<region>-1.key.pem`, `public-keys.json`); removed by stop(). */
  readonly eventKeysDir: string;
  stop(): Promise<void>;
}

export interface StartTestRegionsOptions {
  /**
   * Every region's log lines, as the production logger writes them (same redaction), at `logLevel`,
   * instead of the quiet test logger.
   */
  readonly logDestination?: DestinationStream;
  /** @default debug */
  readonly logLevel?: Config['logLevel'];
  /** How the environment becomes a configuration. @default loadConfig */
  readonly loadConfig?: (env: Record<string, string>) => Config;
  /** Called with each region's fresh database before any region starts (to prepare it). */
  readonly beforeStart?: (region: string, databaseUrl: string) => Promise<void>;
}

/**
 * Start `names` as in-process regions that replicate to each other. `env` and `envFor` override the
 * defaults, the event keys included (`EVENT_SIGNING_KEY_FILE: ''` and the two others: unsigned).
 */
export async function startTestRegions(
  names: readonly string[],
  env: Record<string, string> = {},
  envFor: (region: string) => Record<string, string> = () => ({}),
  options: StartTestRegionsOptions = {},
): Promise<TestRegions> {
  const infra = sharedInfra();
  const prefix = `t${randomId()}`;
  const databaseUrls: Record<string, string> = {};
  const regions: Record<string, Region> = {};
  const sessionTokenKeys = testSessionTokenKeys();
  const eventKeysDir = mkdtempSync(join(tmpdir(), `hothot-event-keys-${prefix}-`));
  const eventKeys = provisionEventKeys(eventKeysDir, names);
  for (const name of names) {
    databaseUrls[name] = await createDatabase(infra.postgresUrl, `${prefix}_${name}`);
    await options.beforeStart?.(name, databaseUrls[name]);
  }
  // The prefix's topics and ACLs, as admin: each region then connects as its own Kafka principal.
  const partitions = env.KAFKA_TOPIC_PARTITIONS;
  await provisionTestRegions(prefix, names, partitions !== undefined ? Number(partitions) : undefined);
  for (const name of names) {
    const config = (options.loadConfig ?? loadConfig)({
      REGION: name,
      PEER_REGIONS: names.filter((n) => n !== name).join(','),
      DATABASE_URL: databaseUrls[name]!,
      KAFKA_BROKERS: infra.kafkaBrokers.join(','),
      KAFKA_TOPIC_PREFIX: prefix,
      PORT: '0',
      HEARTBEAT_INTERVAL_MS: '500',
      SESSION_TOKEN_KEYS: sessionTokenKeys,
      ...eventKeyEnv(eventKeys[name]!),
      ...regionKafkaEnv(name),
      ...env,
      ...envFor(name),
    });
    const log =
      options.logDestination !== undefined
        ? createRootLogger({
            region: name,
            level: options.logLevel ?? 'debug',
            destination: options.logDestination,
          })
        : testLogger(name);
    regions[name] = new Region(config, log);
  }
  await Promise.all(Object.values(regions).map((r) => r.start()));
  // Started means migrated: the api_key table is there.
  await provisionTestAdminKey(Object.values(databaseUrls));
  return {
    prefix,
    regions,
    databaseUrls,
    eventKeysDir,
    async stop() {
      await Promise.allSettled(Object.values(regions).map((r) => r.stop()));
      for (const name of names)
        await dropDatabase(infra.postgresUrl, `${prefix}_${name}`).catch(() => undefined);
      rmSync(eventKeysDir, { recursive: true, force: true });
    },
  };
}
