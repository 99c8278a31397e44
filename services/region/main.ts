/**
 * Composition root of a region process: `node --import tsx services/region/main.ts`.
 * Configured only by environment variables (see shared/config/loadConfig.ts and docs/operations.md).
 */
import { ConfigError, loadConfig } from '../../shared/config/loadConfig.js';
import { createRootLogger } from '../../shared/logging/logger.js';
import { Region } from './region.js';

const SHUTDOWN_DEADLINE_MS = 15_000;

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`hothot region: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const rootLog = createRootLogger({ region: config.region, level: config.logLevel });
  const region = new Region(config, rootLog);
  const log = rootLog.child({ component: 'main' });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    setTimeout(() => {
      log.error('shutdown deadline passed; exiting');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    region.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // SIGHUP: re-read PEER_REGIONS_FILE and EVENT_PUBLIC_KEYS_FILE (a region joined or left).
  process.on('SIGHUP', () => void region.reloadMembership('SIGHUP'));
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));

  await region.start();
}

main().catch((err: unknown) => {
  process.stderr.write(
    `hothot region: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
