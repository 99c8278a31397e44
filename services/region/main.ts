/**
 * Composition root of a region process: `node --import tsx services/region/main.ts`.
 * Configured only by environment variables (see shared/config/loadConfig.ts and docs/operations.md).
 *
 * With `API_PROCESSES` > 1 this process is a primary that forks that many workers (node:cluster):
 * each runs a whole region (API on the shared port, applier in the shared consumer group); one of
 * them leads (services/region/leadership.ts) and runs the relay. With `RELAY_WORKER` (the default) the
 * primary also forks a relay worker: it runs only the relay role, serves no requests, and leads
 * whenever it is up, so that the relay's passes do not queue behind API requests on one event loop;
 * the API workers stand by for it. The primary restarts a worker that dies (as the same kind),
 * passes signals on, and carries "outbox rows committed" from the other workers to the leader.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { ConfigError, loadConfig, Role, type Config } from '../../shared/config/loadConfig.js';
import { createRootLogger, type Logger } from '../../shared/logging/logger.js';
import type { LeaderComponents } from '../../shared/status/liveStatus.js';
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
/** A worker tells the primary whether it leads now; the primary routes leader requests by it. */
const LEADER_STATE = 'hothot:leader-state';
/** A worker asks the leader for its relay and anti-entropy (for `/v1/status`), through the primary. */
const LEADER_REQUEST = 'hothot:leader-request';
const LEADER_RESPONSE = 'hothot:leader-response';
/** How long a worker waits for the region's metrics from the primary. */
const METRICS_TIMEOUT_MS = 5_000;
/** How long a worker's status waits for the leader's components (then it shows its own). */
const LEADER_TIMEOUT_MS = 1_000;
/** Tells a worker its kind: `relay` for the relay worker (RELAY_WORKER); API workers have none. */
const WORKER_KIND_ENV = 'HOTHOT_WORKER_KIND';
type WorkerMessage =
  | { readonly type: typeof OUTBOX_COMMITTED | typeof RELOAD_MEMBERSHIP }
  | { readonly type: typeof METRICS_REQUEST; readonly id: number }
  | {
      readonly type: typeof METRICS_RESPONSE;
      readonly id: number;
      readonly text?: string;
      readonly error?: string;
    }
  | { readonly type: typeof LEADER_STATE; readonly leading: boolean }
  /** `requester`: the asking worker's id, added by the primary when it passes the request on. */
  | { readonly type: typeof LEADER_REQUEST; readonly id: number; readonly requester?: number }
  | {
      readonly type: typeof LEADER_RESPONSE;
      readonly id: number;
      readonly requester?: number;
      readonly components?: LeaderComponents;
    };

/**
 * A worker's requests to the primary: `ask(type, ms)` sends `{ type, id }` and resolves with the
 * response of that id (passed to `answered`), or undefined after `ms`.
 */
function workerRequests() {
  let nextId = 0;
  const waiting = new Map<number, (m: WorkerMessage | undefined) => void>();
  const ask = (type: typeof METRICS_REQUEST | typeof LEADER_REQUEST, ms: number) =>
    new Promise<WorkerMessage | undefined>((resolve) => {
      const id = nextId++;
      const done = (m: WorkerMessage | undefined) => {
        clearTimeout(timer);
        waiting.delete(id);
        resolve(m);
      };
      const timer = setTimeout(() => done(undefined), ms);
      waiting.set(id, done);
      process.send?.({ type, id } satisfies WorkerMessage);
    });
  return Object.assign(ask, {
    answered: (m: WorkerMessage & { readonly id: number }) => waiting.get(m.id)?.(m),
  });
}

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
  const relayWorker = cluster.isWorker && process.env[WORKER_KIND_ENV] === 'relay';
  const region = relayWorker
    ? new Region({ ...config, roles: new Set([Role.Relay]) }, rootLog.child({ worker: 'relay' }), {
        preferredLeader: true,
      })
    : new Region(config, rootLog, { listenWhenStarted: cluster.isWorker });
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
    const ask = workerRequests();
    region.clusterMetrics = () =>
      ask(METRICS_REQUEST, METRICS_TIMEOUT_MS).then((m) => {
        if (m?.type !== METRICS_RESPONSE)
          throw new Error('the primary did not gather the region’s metrics in time');
        if (m.text !== undefined) return m.text;
        throw new Error(m.error ?? 'the primary could not gather the region’s metrics');
      });
    // /v1/status shows the leader's relay and anti-entropy, asked of the leader through the primary
    // (undefined when none answers in time: the status shows this worker's own).
    region.leaderComponents = () =>
      ask(LEADER_REQUEST, LEADER_TIMEOUT_MS).then((m) =>
        m?.type === LEADER_RESPONSE ? m.components : undefined,
      );
    region.leadership.on('acquired', () =>
      process.send?.({ type: LEADER_STATE, leading: true } satisfies WorkerMessage),
    );
    region.leadership.on('lost', () =>
      process.send?.({ type: LEADER_STATE, leading: false } satisfies WorkerMessage),
    );
    process.on('message', (m: WorkerMessage) => {
      if (m.type === OUTBOX_COMMITTED && region.leadership.isLeader) region.relay?.wake();
      if (m.type === RELOAD_MEMBERSHIP) void region.reloadMembership('SIGHUP');
      if (m.type === METRICS_RESPONSE || (m.type === LEADER_RESPONSE && m.requester === undefined))
        ask.answered(m);
      if (m.type === LEADER_REQUEST)
        process.send?.({
          type: LEADER_RESPONSE,
          id: m.id,
          ...(m.requester !== undefined ? { requester: m.requester } : {}),
          ...(region.leadership.isLeader ? { components: region.ownLeaderComponents() } : {}),
        } satisfies WorkerMessage);
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
  const kinds = new Map<Worker, 'api' | 'relay'>();
  /** The worker that said last it leads (LEADER_STATE), until it says otherwise or exits. */
  let leader: Worker | undefined;
  const fork = (kind: 'api' | 'relay') => {
    const worker = cluster.fork(kind === 'relay' ? { [WORKER_KIND_ENV]: 'relay' } : {});
    startedAt.set(worker, Date.now());
    kinds.set(worker, kind);
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === LEADER_STATE) {
        if (m.leading) leader = worker;
        else if (leader === worker) leader = undefined;
        return;
      }
      if (m.type === LEADER_REQUEST) {
        // To the leader, with the asker's id; no other leader: answered at once without components.
        if (leader !== undefined && leader !== worker && leader.isConnected())
          leader.send({ ...m, requester: worker.id } satisfies WorkerMessage);
        else worker.send({ type: LEADER_RESPONSE, id: m.id } satisfies WorkerMessage);
        return;
      }
      if (m.type === LEADER_RESPONSE) {
        const to = m.requester === undefined ? undefined : cluster.workers?.[m.requester];
        if (to?.isConnected())
          to.send({
            type: LEADER_RESPONSE,
            id: m.id,
            ...(m.components !== undefined ? { components: m.components } : {}),
          } satisfies WorkerMessage);
        return;
      }
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
      // To the leader; while none has said it leads (a hand-over), to every other worker.
      if (leader !== undefined && leader !== worker && leader.isConnected()) {
        leader.send(m);
        return;
      }
      for (const w of Object.values(cluster.workers ?? {}))
        if (w !== undefined && w !== worker && w.isConnected()) w.send(m);
    });
  };
  cluster.on('exit', (worker, code, signal) => {
    const lived = Date.now() - (startedAt.get(worker) ?? Date.now());
    const kind = kinds.get(worker) ?? 'api';
    if (leader === worker) leader = undefined;
    startedAt.delete(worker);
    kinds.delete(worker);
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    restartMs = lived > WORKER_STABLE_MS ? WORKER_RESTART_MS : Math.min(10_000, restartMs * 2);
    log.error(
      { workerPid: worker.process.pid, kind, code, signal, restartInMs: restartMs },
      'a worker died; starting another',
    );
    setTimeout(() => fork(kind), restartMs).unref();
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
  const relayWorker = withRelayWorker(config);
  log.info(
    { processes: config.apiProcesses, relayWorker, port: config.port },
    relayWorker
      ? 'starting the region’s worker processes, and a relay worker that leads (relay, maintenance, anti-entropy)'
      : 'starting the region’s worker processes (one leads: relay, maintenance, anti-entropy)',
  );
  for (let i = 0; i < config.apiProcesses; i++) fork('api');
  if (relayWorker) fork('relay');
}

/** Whether the primary forks a relay worker besides the API workers. */
function withRelayWorker(config: Config): boolean {
  return config.relayWorker && config.roles.has(Role.Relay);
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
