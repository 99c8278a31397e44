/**
 * The one way a test file gets infrastructure of its own: a vitest fixture scoped to the file. It
 * is started on first use and stopped after the file's last test (vitest's `onCleanup`), so no file
 * keeps a `let`, a `beforeAll` that starts and an `afterAll` that must remember to stop.
 *
 *     const test = faultLabTest({ frontDoor: true });
 *     describe('…', () => {
 *       test.beforeAll(({ lab }) => { … }, LAB_START_MS); // optional: start it under a hook's timeout
 *       test('…', async ({ lab }) => { … });
 *     });
 *
 * The test API is made at the top level of the file (vitest refuses a file-scoped fixture defined
 * inside a describe); a file with several configurations makes one per configuration, each started
 * by the describe that uses it and stopped at the end of the file.
 *
 * A whole lab takes longer to start than a test's timeout allows: a file that needs it starts it in
 * `test.beforeAll` (the fixture is the same object there and in every test), with the timeouts here.
 */
/* eslint-disable no-empty-pattern -- vitest reads a fixture's dependencies from an object pattern
   in its first parameter; these depend on none. */
import { test as base } from 'vitest';
import type { Logger } from '../../shared/logging/logger.js';
import { startFaultLab, type FaultLab, type FaultLabOptions } from './faultLab.js';
import { migratedDatabase, type TestDatabase } from './harness.js';
import type { TestRegions } from './regionHarness.js';
import { startCluster, type Cluster } from './twoRegions.js';

/** Starting a fault lab (Kafka, PostgreSQL per region, Toxiproxy, region processes). */
export const LAB_START_MS = 240_000;
/** Starting region processes or in-process regions on the shared infrastructure. */
export const REGIONS_START_MS = 180_000;
/** Creating and migrating a database on the shared PostgreSQL. */
export const DATABASE_START_MS = 60_000;

/** A test API whose `lab` is a fault lab of the file's own (test/support/faultLab.ts). */
export function faultLabTest(options: FaultLabOptions = {}) {
  return base.extend('lab', { scope: 'file' }, async ({}, { onCleanup }): Promise<FaultLab> => {
    const lab = await startFaultLab(options);
    onCleanup(() => lab.stop());
    return lab;
  });
}

/** A test API whose `cluster` is region processes on the shared infrastructure (twoRegions.ts). */
export function clusterTest(names: readonly string[], env: Record<string, string> = {}) {
  return base.extend('cluster', { scope: 'file' }, async ({}, { onCleanup }): Promise<Cluster> => {
    const cluster = await startCluster(names, env);
    onCleanup(() => cluster.stop());
    return cluster;
  });
}

/**
 * A test API whose `regions` run in this process on the shared infrastructure (regionHarness.ts),
 * started by `start` (which also prepares what they read at start-up: files, keys).
 */
export function regionsTest<T extends Pick<TestRegions, 'stop'>>(start: () => Promise<T>) {
  return base.extend('regions', { scope: 'file' }, async ({}, { onCleanup }): Promise<T> => {
    const regions = await start();
    onCleanup(() => regions.stop());
    return regions;
  });
}

/** A test API whose `db` is a migrated database of the file's own on the shared PostgreSQL. */
export function databaseTest(
  name: string,
  log: Logger,
  options?: { max?: number; applicationName?: string },
) {
  return base.extend('db', { scope: 'file' }, async ({}, { onCleanup }): Promise<TestDatabase> => {
    const db = await migratedDatabase(name, log, options);
    onCleanup(() => db.drop());
    return db;
  });
}
