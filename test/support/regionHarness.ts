/**
 * In-process regions on the shared PostgreSQL and Kafka: one fresh database per region and a
 * random topic prefix per test, so tests never see each other's data.
 */
import { loadConfig } from '../../shared/config/loadConfig.js';
import { Region } from '../../services/region/region.js';
import { createDatabase, dropDatabase, randomId, sharedInfra, testLogger } from './harness.js';

export interface TestRegions {
  readonly prefix: string;
  readonly regions: Readonly<Record<string, Region>>;
  readonly databaseUrls: Readonly<Record<string, string>>;
  stop(): Promise<void>;
}

/** Start `names` as in-process regions that replicate to each other. */
export async function startTestRegions(
  names: readonly string[],
  env: Record<string, string> = {},
  envFor: (region: string) => Record<string, string> = () => ({}),
): Promise<TestRegions> {
  const infra = sharedInfra();
  const prefix = `t${randomId()}`;
  const databaseUrls: Record<string, string> = {};
  const regions: Record<string, Region> = {};
  for (const name of names) {
    databaseUrls[name] = await createDatabase(infra.postgresUrl, `${prefix}_${name}`);
  }
  for (const name of names) {
    const config = loadConfig({
      REGION: name,
      PEER_REGIONS: names.filter((n) => n !== name).join(','),
      DATABASE_URL: databaseUrls[name],
      KAFKA_BROKERS: infra.kafkaBrokers.join(','),
      KAFKA_TOPIC_PREFIX: prefix,
      PORT: '0',
      HEARTBEAT_INTERVAL_MS: '500',
      ...env,
      ...envFor(name),
    });
    regions[name] = new Region(config, testLogger(name));
  }
  await Promise.all(Object.values(regions).map((r) => r.start()));
  return {
    prefix,
    regions,
    databaseUrls,
    async stop() {
      await Promise.allSettled(Object.values(regions).map((r) => r.stop()));
      for (const name of names)
        await dropDatabase(infra.postgresUrl, `${prefix}_${name}`).catch(() => undefined);
    },
  };
}
