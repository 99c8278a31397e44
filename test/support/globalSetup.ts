/**
 * vitest globalSetup of the `integration` project: acquires PostgreSQL and Kafka once per run
 * (test/support/infra.ts), provides them to the tests as `inject('infra')`, stops them at the end.
 *
 * The `ProvidedContext` augmentation declaring `infra` lives in test/support/harness.ts, next to
 * `sharedInfra()` that reads it.
 */
import type { TestProject } from 'vitest/node';
import type { SharedInfra } from './harness.js';
import { acquireInfra } from './infra.js';

const log = (message: string) => console.log(`[hothot tests] ${message}`);

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const infra = await acquireInfra({ log });
  log(
    `infrastructure ${infra.kind} ready in ${((Date.now() - started) / 1000).toFixed(1)} s — ${infra.description}`,
  );
  const provided: SharedInfra = { postgresUrl: infra.postgresUrl, kafkaBrokers: infra.kafkaBrokers };
  project.provide('infra', provided);
  return async () => {
    await infra.stop();
  };
}
