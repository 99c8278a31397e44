/**
 * `hothot lab add-region <name>`: a region joins a running lab online — the lab's version of the
 * production procedure in docs/operations.md ("Adding and removing a region"). Phases, each printed
 * with its counts and time:
 *
 *  1. credentials: a Kafka SCRAM password and PostgreSQL passwords for the new region, its Ed25519
 *     event-signing key, and its public key added to the public-keys file every region reads;
 *  2. its PostgreSQL cluster (role, database, migrations) and, at the same time, its broker-link
 *     proxy (Toxiproxy) and Kafka listener: the lab's broker is restarted once with the new listener
 *     and SCRAM user (the lab's price for one cuttable link per region; in production the brokers
 *     are reached directly and nothing restarts). Writes go on in every region meanwhile: the API
 *     never waits for Kafka;
 *  3. its change topic and ACLs (it writes its own topic and reads its peers'; its peers read its);
 *  4. the existing regions told, without a restart: their peers file is rewritten and they get
 *     SIGHUP, so they consume the new topic from its start, verify its events with its public key,
 *     and make tombstone collection wait for its acknowledgements (membership/labRegionLaunch.ts);
 *  5. settled: every existing region reports every other existing one `up` again — caught up
 *     after the broker restart of phase 2 (bounded: after {@link SETTLE_TIMEOUT_MS} it goes on with a
 *     warning). Without it the copy and the new region's catch-up ran while the others were still
 *     applying the backlog the restart left them;
 *  6. positions: every peer topic's offsets up to which the source's snapshot is complete
 *     (membership/peerPositions.ts), recorded before the snapshot;
 *  7. the snapshot: one REPEATABLE READ transaction on the source, streamed into the new (empty)
 *     database with binary COPY (services/bootstrap/snapshotCopy.ts); meanwhile its consumer group
 *     set to the positions, and then the region started: its database was marked snapshot_pending
 *     in phase 2, so it connects to Kafka and joins its group but serves, leads and applies nothing
 *     until the copy's last transaction deletes the mark;
 *  8. the region ready: it replays every peer topic from the positions (events the snapshot
 *     already holds change nothing);
 *  9. joined: every region reports every other `up` (the new region's heartbeats are applied after
 *     everything before them, so its peers' heartbeats being fresh means it has caught up).
 *
 * Phases 1–5 provision (what a production deployment has in place before it starts the copy: there
 * no broker restarts, and the regions are settled); 6–9 are the join proper, timed separately
 * (`joinMs`) next to the total.
 *
 * lab.json is updated after each phase, so `hothot lab down` stops whatever was started if a phase
 * fails. The front door (HAProxy) keeps balancing over the regions it started with.
 */
import { join } from 'node:path';
import pg from 'pg';
import { copySnapshot, type SnapshotCopyResult } from '../../../services/bootstrap/snapshotCopy.js';
import { migrate } from '../../../shared/db/migrate.js';
import { createPool } from '../../../shared/db/pool.js';
import { markSnapshotPending } from '../../../shared/db/queries/snapshot.js';
import { applyGroupId } from '../../../shared/kafka/topics.js';
import { createRootLogger } from '../../../shared/logging/logger.js';
import { eventKeyEnv, provisionEventKeys } from '../../../shared/security/eventKeys.js';
import { provisionRegions } from '../kafkaAcls.js';
import { KafkaBroker } from '../kafkaBroker.js';
import { ensureKafkaJars } from '../kafkaJars.js';
import { listenerNameForRegion } from '../kafkaServerProperties.js';
import { LAB_DATABASE, labDatabaseUrl, validateRegions, type LabProgressListener } from '../lab.js';
import { ensureAdminKey, ensureSessionTokenKeys, provisionAdminKey } from '../labClientKeys.js';
import { KAFKA_ADMIN_PRINCIPAL, POSTGRES_APP_ROLE, ensureLabSecrets } from '../labSecrets.js';
import { PortAllocator } from '../ports.js';
import { PostgresCluster, findPostgresBinaries } from '../postgresCluster.js';
import { RegionProcess } from '../regionProcess.js';
import { BrokerLinkProxies, brokerProxyName } from '../brokerLinkProxies.js';
import { waitFor } from '../waitFor.js';
import { labAdminKafka, withLabAdmin } from './labAdminKafka.js';
import { readRegionLaunch, saveRegionLaunch, tellRegionPeers, topicPrefixOf } from './labRegionLaunch.js';
import { recordPeerPositions, startGroupAt } from './peerPositions.js';
import { fetchLabRegionStatus, readRunningLab, updateLabState, type LabRegionStatus } from './runningLab.js';

export interface AddRegionOptions {
  /** Directory of lab.json. */
  readonly root: string;
  /** The new region's id (lower-case letters, digits, dashes). */
  readonly region: string;
  /** The region whose snapshot the new one starts from. @default the lab's first region */
  readonly source?: string;
  /** Deadline for the last phase (every region up in every other's status). @default 300000 */
  readonly joinTimeoutMs?: number;
  readonly onProgress?: LabProgressListener;
}

export interface AddRegionResult {
  readonly region: string;
  readonly source: string;
  readonly snapshot: SnapshotCopyResult;
  /** Each phase and how long it took, in order. */
  readonly phases: readonly { readonly phase: string; readonly ms: number }[];
  /**
   * The join proper: from the positions recorded (before the snapshot) to every region reporting
   * every other up — what native logical replication's initial copy is compared with.
   */
  readonly joinMs: number;
  /** From the start of the command to the new region joined (every region up in every status). */
  readonly totalMs: number;
}

/** How long phase 5 waits for the existing regions to report each other up before it goes on anyway. */
export const SETTLE_TIMEOUT_MS = 60_000;

export async function addRegion(options: AddRegionOptions): Promise<AddRegionResult> {
  const started = performance.now();
  const { root } = options;
  const progress = options.onProgress ?? (() => undefined);
  const state = readRunningLab(root);
  const existing = [...state.regionNames];
  const [name] = validateRegions([options.region]);
  if (name === undefined || existing.includes(name))
    throw new Error(`the lab already has a region ${options.region}: choose another name`);
  validateRegions([...existing, name]);
  const source = options.source ?? existing[0]!;
  if (!existing.includes(source))
    throw new Error(`--from ${source}: the lab has no such region; it has ${existing.join(', ')}`);
  const all = [...existing, name];
  const labDir = join(root, 'lab');
  const sourceLaunch = readRegionLaunch(root, source);
  const prefix = topicPrefixOf(sourceLaunch);
  const phases: { phase: string; ms: number }[] = [];
  const total = 9;
  const phase = async <T>(n: number, title: string, work: () => Promise<T>, done: (r: T) => string) => {
    const t0 = performance.now();
    progress({ type: 'info', message: `[${n}/${total}] ${title} …` });
    const r = await work();
    const ms = Math.round(performance.now() - t0);
    phases.push({ phase: title, ms });
    progress({ type: 'info', message: `[${n}/${total}] ${title}: ${done(r)} (${(ms / 1000).toFixed(1)} s)` });
    return r;
  };

  const secrets = await phase(
    1,
    'credentials',
    () => {
      const s = ensureLabSecrets(state.secretsDir!, { kafkaPrincipals: all, postgresClusters: all });
      if (state.eventKeysDir === undefined)
        throw new Error('the lab has no event keys directory: restart it');
      const keys = provisionEventKeys(state.eventKeysDir, all);
      return Promise.resolve({ s, keys });
    },
    () =>
      `Kafka principal ${name}, PostgreSQL passwords, event key ${name}-1; public keys of ${all.length} regions`,
  );
  const ports = new PortAllocator();
  const port = {
    region: await ports.allocate(undefined, `region ${name}`),
    postgres: await ports.allocate(undefined, `PostgreSQL ${name}`),
    listener: await ports.allocate(undefined, `Kafka listener ${name}`),
    proxy: await ports.allocate(undefined, `broker-link proxy ${name}`),
  };

  const postgres = phase(
    2,
    `PostgreSQL ${name}`,
    async () => {
      const cluster = new PostgresCluster({
        dataDir: join(labDir, `pg-${name}`),
        port: port.postgres,
        binDir: findPostgresBinaries().binDir,
        logFile: join(labDir, 'logs', `postgres-${name}.log`),
        superuserPassword: secrets.s.postgresPassword(name, 'superuser'),
      });
      updateLabState(root, (s) => {
        s.postgres[name] = {
          ...cluster.info,
          pid: 0,
          url: cluster.redactedUrl(),
          databaseUrl: cluster.redactedUrl(LAB_DATABASE, POSTGRES_APP_ROLE),
        };
      });
      await cluster.init();
      await cluster.start();
      updateLabState(root, (s) => {
        s.postgres[name]!.pid = cluster.pid ?? 0;
      });
      await cluster.ensureRole(POSTGRES_APP_ROLE, secrets.s.postgresPassword(name, 'app'), {
        readAllStats: true,
      });
      await cluster.createDatabase(LAB_DATABASE, POSTGRES_APP_ROLE);
      const pool = new pg.Pool({ connectionString: labDatabaseUrl(readRunningLab(root), name), max: 2 });
      try {
        const applied = await migrate(pool, createRootLogger({ region: name, level: 'silent' }));
        // The region starts before its snapshot is loaded (phase 6) and waits for it.
        await markSnapshotPending(pool, source);
        return applied;
      } finally {
        await pool.end();
      }
    },
    (applied) => `127.0.0.1:${port.postgres}, ${applied.length} migrations`,
  );

  const broker = phase(
    2,
    `broker link and Kafka listener ${listenerNameForRegion(name)} (broker restart)`,
    async () => {
      const link = {
        name: brokerProxyName(name),
        listen: `127.0.0.1:${port.proxy}`,
        upstream: `127.0.0.1:${port.listener}`,
      };
      await new BrokerLinkProxies(state.toxiproxy!.url).define([{ region: name, ...link }]);
      updateLabState(root, (s) => {
        s.toxiproxy!.proxies[name] = link;
      });
      const kafka = state.kafka!;
      await KafkaBroker.stopPid(kafka.pid, kafka.propertiesFile);
      const bootstrap = { ...kafka.bootstrap, [name]: link.listen };
      const broker = await KafkaBroker.start({
        dir: kafka.dir,
        logFile: kafka.logFile,
        libsDir: (await ensureKafkaJars()).libsDir,
        controllerPort: kafka.controllerPort,
        internalPort: kafka.internalPort,
        listeners: [
          ...kafka.listeners,
          { name: listenerNameForRegion(name), port: port.listener, advertisedPort: port.proxy },
        ],
        detached: true,
        onSpawn: (info) =>
          updateLabState(root, (s) => {
            s.kafka = { ...info, listeners: [...info.listeners], bootstrap };
          }),
        security: {
          tls: { keystoreFile: secrets.s.brokerKeystoreFile, truststoreFile: secrets.s.caCertFile },
          scramUsers: Object.fromEntries(
            [KAFKA_ADMIN_PRINCIPAL, ...all].map((p) => [p, secrets.s.kafkaPassword(p)]),
          ),
          secretsDir: secrets.s.dir,
        },
      });
      updateLabState(root, (s) => {
        s.kafka = { ...broker.info, listeners: [...broker.info.listeners], bootstrap };
      });
      return broker.info.pid;
    },
    (pid) => `proxy ${port.proxy} → listener ${port.listener}; broker pid ${pid}`,
  );
  await Promise.all([postgres, broker]);

  await phase(
    3,
    'topic and ACLs',
    async () => {
      const partitions = sourceLaunch.env?.KAFKA_TOPIC_PARTITIONS;
      await provisionRegions(labAdminKafka(readRunningLab(root)), {
        prefix,
        regions: all,
        ...(partitions !== undefined ? { partitions: Number(partitions) } : {}),
      });
      return Promise.resolve();
    },
    () => `${prefix}.changes.${name}; ${name} writes it and reads ${existing.join(', ')}; they read it`,
  );

  await phase(
    4,
    'existing regions told (peers file + SIGHUP, no restart)',
    () =>
      Promise.all(
        existing.map((r) =>
          tellRegionPeers(
            root,
            r,
            all.filter((p) => p !== r),
          ).then((how) => `${r} ${how}`),
        ),
      ),
    (told) => `${told.join(', ')}: consuming ${prefix}.changes.${name}`,
  );

  const latest = () => readRunningLab(root);
  /** Wait until each of `regions` reports every other of them up; prints who is not yet, every 2 s. */
  const untilAllUp = async (regions: readonly string[], timeoutMs: number) => {
    const t0 = performance.now();
    let lastPrinted = 0;
    await waitFor(
      async () => {
        const s = latest();
        const statuses = await Promise.all(regions.map((r) => fetchLabRegionStatus(root, s.regions[r]!.url)));
        const up = statuses.every((st) =>
          regions.every((r) => r === st.region || st.peers.some((p) => p.region === r && p.state === 'up')),
        );
        const ms = performance.now() - t0;
        if (!up && ms - lastPrinted >= 2_000) {
          lastPrinted = ms;
          progress({
            type: 'info',
            message: `      waiting (${(ms / 1000).toFixed(1)} s): ${notYetUp(regions, statuses)}`,
          });
        }
        return up;
      },
      { description: `${regions.join(', ')} to report each other up`, timeoutMs, intervalMs: 250 },
    );
  };

  await phase(
    5,
    `${existing.join(', ')} settled after the broker restart`,
    async () => {
      try {
        await untilAllUp(existing, SETTLE_TIMEOUT_MS);
        return 'every one reports the others up';
      } catch (err) {
        // A timeout, or a status that could not be read: either way the join goes on, and says why.
        progress({
          type: 'warning',
          message: `${existing.join(', ')} not all settled (${err instanceof Error ? err.message : String(err)}): joining anyway`,
        });
        return 'not all up: joining anyway';
      }
    },
    (r) => r,
  );

  const joinStarted = performance.now();
  const positions = await phase(
    6,
    `positions (before ${source}'s snapshot)`,
    () => withLabAdmin(latest(), (admin) => recordPeerPositions(admin, { prefix, source, peers: existing })),
    (p) => `${[...p.values()].reduce((n, parts) => n + parts.size, 0)} partitions of ${p.size} topics`,
  );

  /** Start the new region (it waits for its snapshot: snapshot_pending). */
  const launchRegion = (): RegionProcess => {
    const launch = {
      ...sourceLaunch,
      region: name,
      peerRegions: existing,
      peersFile: join(labDir, `peers-${name}`),
      kafkaBrokers: [`127.0.0.1:${port.proxy}`],
      port: port.region,
      logFile: join(labDir, 'logs', `region-${name}.log`),
      env: {
        ...sourceLaunch.env,
        KAFKA_SASL_USERNAME: name,
        KAFKA_SASL_PASSWORD_FILE: secrets.s.kafkaPasswordFile(name),
        ...eventKeyEnv(secrets.keys[name]!),
      },
    };
    saveRegionLaunch(root, launch);
    const started = RegionProcess.launch({
      ...launch,
      databaseUrl: labDatabaseUrl(latest(), name),
      env: { ...launch.env, SESSION_TOKEN_KEYS: ensureSessionTokenKeys(root) },
      detached: true,
    });
    updateLabState(root, (s) => {
      s.regions[name] = started.info;
      s.regionNames = all;
    });
    return started;
  };
  let regionProcess: RegionProcess | undefined;

  const snapshot = await phase(
    7,
    `snapshot of ${source} (one REPEATABLE READ transaction), consumer group set to the positions`,
    async () => {
      // The new group's offsets are independent of the copy (set by joining the group with a
      // consumer of its own): done meanwhile.
      const t0 = performance.now();
      // Then the region starts, meanwhile too: it connects and joins its group, and waits for the
      // copy (snapshot_pending) before it serves, leads or applies anything.
      const group = startGroupAt(labAdminKafka(latest()), applyGroupId(prefix, name), positions).then(() => {
        progress({
          type: 'info',
          message: `      consumer group ${applyGroupId(prefix, name)} set to the positions (${((performance.now() - t0) / 1000).toFixed(1)} s); starting region ${name}`,
        });
        regionProcess = launchRegion();
      });
      const sourcePool = new pg.Pool({ connectionString: labDatabaseUrl(latest(), source), max: 1 });
      const log = createRootLogger({ region: name, level: 'silent' });
      const targetPool = createPool(
        { connectionString: labDatabaseUrl(latest(), name), max: 2, applicationName: 'hothot-add-region' },
        log,
      );
      let lastPrinted = 0;
      try {
        const copied = copySnapshot(sourcePool, targetPool, {
          targetRegion: name,
          onProgress: ({ items, bytes, ms }) => {
            if (ms - lastPrinted < 2_000) return;
            lastPrinted = ms;
            const copied =
              items !== undefined
                ? `${items.toLocaleString('en')} items`
                : `${((bytes ?? 0) / 1_048_576).toFixed(0)} MiB`;
            progress({ type: 'info', message: `      ${copied} copied (${(ms / 1000).toFixed(1)} s)` });
          },
        });
        const [snapshot] = await Promise.all([copied, group]);
        return snapshot;
      } finally {
        await Promise.allSettled([sourcePool.end(), targetPool.end()]);
      }
    },
    (r) =>
      `${r.items.toLocaleString('en')} items (${r.tombstones.toLocaleString('en')} tombstones) by ${r.load}, ` +
      `${r.watermarks} watermarks, ${r.apiKeys} API keys, GC horizon ${r.gcHorizonMs}`,
  );

  await phase(
    8,
    `region ${name} ready (started during the snapshot)`,
    async () => {
      if (regionProcess === undefined) throw new Error(`region ${name} was not started`);
      await regionProcess.waitUntilReady();
      await provisionAdminKey(ensureAdminKey(root).token, [labDatabaseUrl(latest(), name)]);
      return regionProcess.url;
    },
    (url) => `${url}, consuming ${existing.join(', ')} from the recorded positions`,
  );

  await phase(
    9,
    'joined',
    () => untilAllUp(all, options.joinTimeoutMs ?? 300_000),
    () => `every region reports ${all.length - 1} peers up`,
  );
  if (state.frontDoor !== undefined)
    progress({
      type: 'warning',
      message: `the front door still balances over ${existing.join(', ')}; ${name} is reached directly at ${readRunningLab(root).regions[name]!.url}`,
    });
  const ended = performance.now();
  return {
    region: name,
    source,
    snapshot,
    phases,
    joinMs: Math.round(ended - joinStarted),
    totalMs: Math.round(ended - started),
  };
}

/** Which region does not report which peer up yet, with the peer's heartbeat age and the applier's lag. */
function notYetUp(regions: readonly string[], statuses: readonly LabRegionStatus[]): string {
  return statuses
    .map((st, i) => {
      const waiting = st.peers
        .filter((p) => p.state !== 'up' && regions.includes(p.region))
        .map((p) => {
          const age = p.heartbeatAgeMs;
          return `${p.region} ${p.state} (${age === null || age === undefined ? 'no heartbeat yet' : `heartbeat ${(age / 1000).toFixed(1)} s old`})`;
        });
      const missing = regions.filter((r) => r !== regions[i] && !st.peers.some((p) => p.region === r));
      const lag = st.applier?.lagMessages;
      const parts = [...waiting, ...missing.map((r) => `${r} not a peer yet`)];
      return parts.length === 0
        ? undefined
        : `${regions[i]} sees ${parts.join(', ')}${lag !== null && lag !== undefined ? `, ${lag} messages behind` : ''}`;
    })
    .filter((x) => x !== undefined)
    .join('; ');
}
