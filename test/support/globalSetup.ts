/**
 * vitest globalSetup of the `integration` project: acquires PostgreSQL and Kafka once per run
 * (test/support/infra.ts), provides them to the tests as `inject('infra')`, stops them at the end.
 *
 * It also makes the run's admin API key (`inject('adminKey')`, and `HOTHOT_LAB_ADMIN_KEY` in the
 * environment): every region and lab the tests start has it, and
 * test/support/authenticateLocalRequests.ts sends it with every request to 127.0.0.1 that carries
 * no `Authorization` of its own.
 *
 * The `ProvidedContext` augmentation declaring `infra` lives in test/support/harness.ts, next to
 * `sharedInfra()` that reads it.
 */
import type { TestProject } from 'vitest/node';
import { generateApiKey, parseApiKey } from '../../shared/security/apiKey.js';
import type { SharedInfra } from './harness.js';
import { acquireInfra } from './infra.js';

const log = (message: string) => console.log(`[hothot tests] ${message}`);

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const infra = await acquireInfra({ log });
  log(
    `infrastructure ${infra.kind} ready in ${((Date.now() - started) / 1000).toFixed(1)} s — ${infra.description}`,
  );
  const provided: SharedInfra = {
    postgresUrl: infra.postgresUrl,
    kafkaBrokers: infra.kafkaBrokers,
    ...(infra.kafkaSecurity !== undefined ? { kafkaSecurity: infra.kafkaSecurity } : {}),
  };
  project.provide('infra', provided);
  // One key per run (or the one given): set here before any worker forks, and provided as well.
  const given = process.env.HOTHOT_LAB_ADMIN_KEY;
  const adminKey = given !== undefined && parseApiKey(given) !== undefined ? given : generateApiKey().token;
  process.env.HOTHOT_LAB_ADMIN_KEY = adminKey;
  project.provide('adminKey', adminKey);
  return async () => {
    await infra.stop();
  };
}
