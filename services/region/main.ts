/**
 * Composition root of a region process: `node --import tsx services/region/main.ts`.
 * Configured only by environment variables (see shared/config/loadConfig.ts and docs/operations.md).
 *
 * With `API_PROCESSES` > 1 this process is a primary that forks that many workers (node:cluster):
 * each runs a whole region (API on the shared port, applier in the shared consumer group); one of
 * them leads (services/region/leadership.ts) and runs the relay. The primary restarts a worker that
 * dies, passes signals on, and carries "outbox rows committed" from the other workers to the leader.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { ConfigError, loadConfig, type Config } from '../../shared/config/loadConfig.js';
import { createRootLogger, type Logger } from '../../shared/logging/logger.js';
import { Region } from './region.js';

const SHUTDOWN_DEADLINE_MS = 15_000;
/** Delay before a worker that died is replaced (doubling while they keep dying, up to 10 s). */
const WORKER_RESTART_MS = 500;
/** A worker that lived this long resets the restart backoff. */
const WORKER_STABLE_MS = 30_000;

/** Messages between the primary and its workers. */
const OUTBOX_COMMITTED = 'hothot:outbox-committed';
const RELOAD_MEMBERSHIP = 'hothot:reload-membership';
const METRICS_REQUEST = 'hothot:metrics-request';
const METRICS_RESPONSE = 'hothot:metrics-response';
/** How long a worker waits for the region's metrics from the primary. */
const METRICS_TIMEOUT_MS = 5_000;
type WorkerMessage =
  | { readonly type: typeof OUTBOX_COMMITTED | typeof RELOAD_MEMBERSHIP }
  | { readonly type: typeof METRICS_REQUEST; readonly id: number }
  | {
      readonly type: typeof METRICS_RESPONSE;
      readonly id: number;
      readonly text?: string;
      readonly error?: string;
    };

/** A shutdown that has not finished in `ms` ends the process anyway. */
function exitAfter(ms: number, log: Logger): void {
  setTimeout(() => {
    log.error('shutdown deadline passed; exiting');
    process.exit(1);
  }, ms).unref();
}

function readConfig(): Config {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`hothot region: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** Run one region in this process until a signal (a single process, or one cluster worker). */
async function runRegion(config: Config, rootLog: Logger): Promise<void> {
  const region = new Region(config, rootLog);
  const log = rootLog.child({ component: 'main' });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    exitAfter(SHUTDOWN_DEADLINE_MS, log);
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

  if (cluster.isWorker) {
    // Commits in a worker that does not lead wake the leader's relay through the primary (at most
    // one message per turn of the event loop).
    let queued = false;
    region.onCommittedElsewhere = () => {
      if (queued) return;
      queued = true;
      setImmediate(() => {
        queued = false;
        process.send?.({ type: OUTBOX_COMMITTED } satisfies WorkerMessage);
      });
    };
    // /metrics answers for the region: the primary gathers every worker's registry (prom-client's
    // cluster support: counters summed, the database-derived gauges not).
    // (An instance is what installs prom-client's answer to the primary's requests in a worker.)
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([region.metrics]);
    let nextId = 0;
    const waiting = new Map<number, (m: WorkerMessage & { type: typeof METRICS_RESPONSE }) => void>();
    region.clusterMetrics = () =>
      new Promise<string>((resolve, reject) => {
        const id = nextId++;
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error('the primary did not gather the region’s metrics in time'));
        }, METRICS_TIMEOUT_MS);
        waiting.set(id, (m) => {
          clearTimeout(timer);
          waiting.delete(id);
          if (m.text !== undefined) resolve(m.text);
          else reject(new Error(m.error ?? 'the primary could not gather the region’s metrics'));
        });
        process.send?.({ type: METRICS_REQUEST, id } satisfies WorkerMessage);
      });
    process.on('message', (m: WorkerMessage) => {
      if (m.type === OUTBOX_COMMITTED && region.leadership.isLeader) region.relay?.wake();
      if (m.type === RELOAD_MEMBERSHIP) void region.reloadMembership('SIGHUP');
      if (m.type === METRICS_RESPONSE) waiting.get(m.id)?.(m);
    });
    // The primary going away (killed) takes its workers with it.
    process.on('disconnect', () => shutdown('primary gone'));
  }

  await region.start();
}

/** The primary of a region with several processes: fork, replace, pass signals and wake-ups on. */
function runPrimary(config: Config, rootLog: Logger): void {
  const log = rootLog.child({ component: 'primary' });
  let stopping = false;
  let restartMs = WORKER_RESTART_MS;
  const startedAt = new Map<Worker, number>();
  const aggregator = new AggregatorRegistry();
  const fork = () => {
    const worker = cluster.fork();
    startedAt.set(worker, Date.now());
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === METRICS_REQUEST) {
        aggregator.clusterMetrics().then(
          (text) => worker.send({ type: METRICS_RESPONSE, id: m.id, text } satisfies WorkerMessage),
          (err: unknown) =>
            worker.send({
              type: METRICS_RESPONSE,
              id: m.id,
              error: err instanceof Error ? err.message : String(err),
            } satisfies WorkerMessage),
        );
        return;
      }
      if (m.type !== OUTBOX_COMMITTED) return;
      for (const w of Object.values(cluster.workers ?? {}))
        if (w !== undefined && w !== worker && w.isConnected()) w.send(m);
    });
  };
  cluster.on('exit', (worker, code, signal) => {
    const lived = Date.now() - (startedAt.get(worker) ?? Date.now());
    startedAt.delete(worker);
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    restartMs = lived > WORKER_STABLE_MS ? WORKER_RESTART_MS : Math.min(10_000, restartMs * 2);
    log.error(
      { workerPid: worker.process.pid, code, signal, restartInMs: restartMs },
      'a worker died; starting another',
    );
    setTimeout(fork, restartMs).unref();
  });
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down the workers');
    // The workers' own deadline, and a little more for them to exit.
    exitAfter(SHUTDOWN_DEADLINE_MS + 2_000, log);
    const workers = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
    if (workers.length === 0) process.exit(0);
    for (const w of workers) w.process.kill(signal);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => {
    for (const w of Object.values(cluster.workers ?? {}))
      w?.send({ type: RELOAD_MEMBERSHIP } satisfies WorkerMessage);
  });
  log.info(
    { processes: config.apiProcesses, port: config.port },
    'starting the region’s worker processes (one leads: relay, maintenance, anti-entropy)',
  );
  for (let i = 0; i < config.apiProcesses; i++) fork();
}

const config = readConfig();
const rootLog = createRootLogger({ region: config.region, level: config.logLevel });
if (config.apiProcesses > 1 && cluster.isPrimary) {
  runPrimary(config, rootLog);
} else {
  runRegion(config, rootLog).catch((err: unknown) => {
    process.stderr.write(
      `hothot region: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  });
}
