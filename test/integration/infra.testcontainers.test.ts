/**
 * test/support/infra.ts's testcontainers path, run for real: testcontainers starts PostgreSQL and
 * Kafka from the images infra/docker/build-images.sh builds without a registry (the
 * HOTHOT_POSTGRES_IMAGE / HOTHOT_KAFKA_IMAGE swap of `postgres:15` / `apache/kafka:3.9.1`), with Ryuk
 * off (`stop()` removes the containers and their volumes itself, checked at the end), reached on
 * 127.0.0.1 (TESTCONTAINERS_HOST_OVERRIDE unless set); two region processes run on them and
 * replicate a write. The testcontainers Kafka is PLAINTEXT, so these regions run `insecure-dev`, said
 * explicitly. Skips, saying why once, without a Docker engine.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegionProcess } from '../../infra/lab/regionProcess.js';
import { createDatabase, randomId, waitFor } from '../support/harness.js';
import {
  acquireInfra,
  buildLocalImages,
  dockerTestsSkipReason,
  testcontainersImages,
  type TestInfra,
} from '../support/infra.js';
import { getItem, putItem } from '../support/twoRegions.js';

const log = (message: string) => console.log(`[hothot tests] ${message}`);
// Set before testcontainers makes its client (the skip check below does). Ryuk off: no reaper image.
// Ports are published on 127.0.0.1 (engine.sh starts dockerd with --ip=127.0.0.1), and our machines
// are containers themselves (/.dockerenv): testcontainers would pick the bridge gateway (172.17.0.1).
process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= '127.0.0.1';
const skipReason = await dockerTestsSkipReason();
if (skipReason !== undefined) log(`testcontainers test skipped: ${skipReason}`);

/** Bounds on what this machine showed (docs/docker.md): containers up and Kafka answering. */
const INFRA_READY_BOUND_MS = 120_000;
const REPLICATION_BOUND_MS = 30_000;

describe.skipIf(skipReason !== undefined)('testcontainers infrastructure on local images', () => {
  let infra: TestInfra | undefined;
  let images: { postgres: string; kafka: string };
  let infraReadyMs = 0;
  const regions: RegionProcess[] = [];

  beforeAll(async () => {
    const env = { ...process.env, ...(await buildLocalImages(log, ['postgres', 'kafka'])) };
    images = testcontainersImages(env);
    const started = Date.now();
    infra = await acquireInfra({ env: { ...env, HOTHOT_TEST_INFRA: 'testcontainers' }, log });
    infraReadyMs = Date.now() - started;
    log(`testcontainers infrastructure ready in ${(infraReadyMs / 1000).toFixed(1)} s: ${infra.description}`);
  }, 30 * 60_000);

  afterAll(async () => {
    await Promise.allSettled(regions.map((r) => r.stop(5000)));
    await infra?.stop();
  });

  it('when started with HOTHOT_TEST_INFRA=testcontainers, then the containers run the local images and are ready within the bound', () => {
    expect(infra?.kind).toBe('testcontainers');
    expect(images.postgres).not.toBe('postgres:15');
    expect(images.kafka).not.toBe('apache/kafka:3.9.1');
    expect(containersOf(images.postgres).length).toBe(1);
    expect(containersOf(images.kafka).length).toBe(1);
    expect(infraReadyMs).toBeLessThan(INFRA_READY_BOUND_MS);
  });

  it('when two regions run on them, then a write in us is read in eu', async () => {
    const prefix = `tc${randomId()}`;
    for (const name of ['us', 'eu']) {
      const databaseUrl = await createDatabase(infra!.postgresUrl, `${prefix}_${name}`);
      regions.push(
        await RegionProcess.start({
          region: name,
          peerRegions: name === 'us' ? ['eu'] : ['us'],
          databaseUrl,
          kafkaBrokers: infra!.kafkaBrokers,
          topicPrefix: prefix,
          // PLAINTEXT Kafka: no credentials to give, so security is off, explicitly.
          env: { SECURITY_MODE: 'insecure-dev', HEARTBEAT_INTERVAL_MS: '500' },
        }),
      );
    }
    const [us, eu] = regions as [RegionProcess, RegionProcess];
    const written = await putItem(us.url, 'people', 'ada', { name: 'Ada', born: 1815 });
    expect(written.status).toBe(201);
    const started = Date.now();
    const read = await waitFor(
      'the write of us to be read in eu',
      async () => {
        const r = await getItem(eu.url, 'people', 'ada');
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: REPLICATION_BOUND_MS, intervalMs: 100 },
    );
    log(`us → eu on testcontainers: read in eu ${Date.now() - started} ms after the write`);
    expect(read.body?.value).toEqual({ name: 'Ada', born: 1815 });
    expect(read.etag).toBe(written.etag);
  }, 240_000);

  it('when stopped, then no container of either image is left', async () => {
    await Promise.allSettled(regions.splice(0).map((r) => r.stop(5000)));
    await infra?.stop();
    expect(containersOf(images.postgres)).toEqual([]);
    expect(containersOf(images.kafka)).toEqual([]);
  });
});

/** Ids of the testcontainers-made containers (running or not) of `image`. */
function containersOf(image: string): string[] {
  return execFileSync(
    'docker',
    ['ps', '-a', '-q', '--filter', 'label=org.testcontainers=true', '--filter', `ancestor=${image}`],
    { encoding: 'utf8' },
  )
    .split('\n')
    .filter((id) => id !== '');
}
