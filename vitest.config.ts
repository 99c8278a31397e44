/**
 * Two projects:
 * - `unit`: pure tests (test/unit), no infrastructure, run in parallel;
 * - `integration`: tests against real PostgreSQL and Kafka (test/integration, test/e2e). The
 *   infrastructure starts once per run in test/support/globalSetup.ts (from the environment, from
 *   testcontainers, or natively). Files run one at a time: the machines this runs on have two cores,
 *   and e2e tests start whole labs of their own. Every region it starts has the run's admin API
 *   key, and `fetch` to 127.0.0.1 sends it (test/support/authenticateLocalRequests.ts).
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    teardownTimeout: 60_000,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          globalSetup: ['test/support/globalSetup.ts'],
          // fetch to 127.0.0.1 carries the run's admin API key unless it has an Authorization header.
          setupFiles: ['test/support/authenticateLocalRequests.ts'],
          pool: 'forks',
          fileParallelism: false,
          maxWorkers: 1,
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
