/**
 * One region process: wires config, logger, pool, Kafka and the components this process runs
 * (`api`, `relay`, `applier`), starts them and stops them in reverse order. No module singletons:
 * tests construct several regions in one process.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../../shared/config/loadConfig.js';
import { Role, SecurityMode } from '../../shared/config/loadConfig.js';
import { createPool } from '../../shared/db/pool.js';
import { migrate } from '../../shared/db/migrate.js';
import { maxItemStamp } from '../../shared/db/queries/item.js';
import { pendingSnapshotSource } from '../../shared/db/queries/snapshot.js';
import { HybridLogicalClock } from '../../shared/domain/hlc.js';
import { BrokerLinkMonitor, LinkState } from '../../shared/kafka/brokerLink.js';
import {
  createKafka,
  ensureTopics,
  loadKafkaClientSecurity,
  type KafkaClientSecurity,
} from '../../shared/kafka/client.js';
import { KafkaBatchConsumer } from '../../shared/kafka/consumer.js';
import { MessageLimit, describeTopicMessageMaxBytes } from '../../shared/kafka/messageLimit.js';
import { KafkaPublisher } from '../../shared/kafka/publisher.js';
import { applyGroupId, changeTopic } from '../../shared/kafka/topics.js';
import { EventSigner } from '../../shared/security/eventAuth.js';
import type { LeaderComponents, LiveComponents } from '../../shared/status/liveStatus.js';
import { loadEventKeys, type EventKeys } from '../../shared/security/eventKeys.js';
import type { Logger } from '../../shared/logging/logger.js';
import { createApp } from '../api/app.js';
import { Authenticator } from '../api/http/auth.js';
import { sessionTokenKeys } from '../api/http/sessionToken.js';
import { AntiEntropy } from '../antiEntropy/antiEntropy.js';
import { PeerApplier } from '../applier/peerApplier.js';
import { Heartbeats } from '../relay/heartbeats.js';
import { Maintenance } from '../maintenance/maintenance.js';
import { OutboxRelay } from '../relay/outboxRelay.js';
import { bootstrapAdminKey } from './bootstrapAdminKey.js';
import { leadershipApplicationName } from '../../shared/db/queries/pgStatActivity.js';
import { Leadership } from './leadership.js';
import { PeerMembership, type MembershipChange, type ReloadOutcome } from './peerMembership.js';
import { registerRegionMetrics } from './regionMetrics.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { failureKind } from '../../shared/errors/failureKind.js';
import { crashLoudly, retry } from '../../shared/lifecycle/retry.js';

/** Start-up steps retry after 250 ms, then 500 ms, then every second. */
const START_BACKOFF = { firstMs: 250, maxMs: 1000 } as const;
/** How often a region awaiting its initial snapshot looks whether the copy has finished. */
const SNAPSHOT_POLL_MS = 100;

/** A secret file's content without its trailing newline; the error names the variable, not the content. */
function readSecretFile(file: string, variable: string): string {
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new Error(
      `${variable}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`,
      {
        cause: err,
      },
    );
  }
}

export interface RegionOptions {
  /**
   * Lead whenever this process is up: a relay worker of a region with several processes (main.ts),
   * which runs only the relay role (services/region/leadership.ts). @default false
   */
  readonly preferredLeader?: boolean;
  /**
   * Listen only once migrations ran (a cluster worker: until then the other workers serve its share
   * of new connections). Otherwise the API listens first, answering "starting". @default false
   */
  readonly listenWhenStarted?: boolean;
}

export class Region {
  readonly pool: pg.Pool;
  readonly clock: HybridLogicalClock;
  readonly metrics = new Registry();
  relay: OutboxRelay | undefined;
  applier: PeerApplier | undefined;
  /** This process's view of its link to Kafka (probe + publish evidence). */
  readonly brokerLink: BrokerLinkMonitor;
  /** The largest record batch this region may publish (configured, lowered to the broker's). */
  readonly messageLimit: MessageLimit;
  private maintenance: Maintenance | undefined;
  /** Digest anti-entropy (docs/anti-entropy.md), in processes that run the applier. */
  antiEntropy: AntiEntropy | undefined;
  private publisher: KafkaPublisher | undefined;
  private server: http.Server | undefined;
  private ready = false;
  /** Whether migrations ran and the clock observed the greatest stored stamp: data can be served. */
  private migrated = false;
  private markMigrated: () => void = () => undefined;
  private readonly migratedNow = new Promise<void>((resolve) => (this.markMigrated = resolve));
  /**
   * The region whose snapshot this database awaits (snapshot_pending, migration 0010): a region
   * being added, started before its copy ends. Until then it serves no data, leads nothing and
   * applies nothing; undefined otherwise.
   */
  private awaitingSnapshot: string | undefined;
  private stopped = false;
  private background: Promise<unknown>[] = [];
  /** This class's own log lines (every line names its component). */
  private readonly regionLog: Logger;
  /** TLS + SCRAM to Kafka (from `config.security.kafka`), or undefined: PLAINTEXT (insecure-dev). */
  private readonly kafkaSecurity: KafkaClientSecurity | undefined;
  /** The peers now and their public keys, re-read from their files while running. */
  readonly membership: PeerMembership;
  /**
   * Whether this process leads the region (a PostgreSQL advisory lock): the leader runs the relay
   * with its heartbeats, maintenance and anti-entropy; other processes of the region stand by.
   */
  readonly leadership: Leadership;
  /** Leadership changes are applied one after the other. */
  private leadershipApplied: Promise<void> = Promise.resolve();
  /**
   * Called after this process committed outbox rows while another process leads (cluster workers:
   * main.ts passes it on to the leader, whose relay it wakes).
   */
  onCommittedElsewhere: (() => void) | undefined;
  /**
   * The metrics of every process of the region (cluster workers: main.ts asks the primary, which
   * gathers them), or undefined: this process's registry is the region's.
   */
  clusterMetrics: (() => Promise<string>) | undefined;
  /**
   * The leader's relay and anti-entropy, asked of the leader when another process leads (cluster
   * workers: main.ts asks through the primary), or undefined: `/v1/status` shows this process's own.
   */
  leaderComponents: (() => Promise<LeaderComponents | undefined>) | undefined;
  /** Membership changes are applied one after the other. */
  private membershipApplied: Promise<void> = Promise.resolve();
  private kafka: ReturnType<typeof createKafka> | undefined;

  constructor(
    readonly config: Config,
    private readonly log: Logger,
    private readonly options: RegionOptions = {},
  ) {
    this.pool = createPool(
      {
        connectionString: config.databaseUrl,
        max: config.dbPoolSize,
        applicationName: `hothot-${config.region}`,
        ...(config.databasePasswordFile !== undefined
          ? { password: readSecretFile(config.databasePasswordFile, 'DATABASE_PASSWORD_FILE') }
          : {}),
      },
      log.child({ component: 'db' }),
    );
    this.clock = new HybridLogicalClock(config.region, { maxSkewMs: config.maxClockSkewMs });
    this.messageLimit = new MessageLimit(config.kafkaMessageMaxBytes);
    this.regionLog = log.child({ component: 'region' });
    this.metrics.setDefaultLabels({ region: config.region });
    collectDefaultMetrics({ register: this.metrics });
    this.kafkaSecurity = loadKafkaClientSecurity(config.security);
    this.brokerLink = new BrokerLinkMonitor({
      brokers: config.kafkaBrokers,
      intervalMs: config.brokerProbeIntervalMs,
      timeoutMs: config.brokerProbeTimeoutMs,
      clientId: `${config.kafkaClientId}-probe`,
      ...(this.kafkaSecurity !== undefined ? { tls: { ca: this.kafkaSecurity.ca } } : {}),
      log: log.child({ component: 'broker-link' }),
    });
    // Read once, here: a missing or mismatched key file fails the start, before anything runs.
    this.eventKeys =
      config.security.eventSigning === undefined
        ? undefined
        : loadEventKeys(config.security.eventSigning, config.region);
    this.leadership = new Leadership({
      connection: {
        ...this.pool.options,
        application_name: leadershipApplicationName(config.region, process.pid),
      },
      log: log.child({ component: 'leadership' }),
      preferred: options.preferredLeader ?? false,
      // The 'lost' this step-down emits has queued the singletons' stop: wait for it.
      stepDown: () => this.leadershipApplied,
    });
    this.membership = new PeerMembership({
      region: config.region,
      peers: config.peerRegions,
      ...(config.peerRegionsFile !== undefined ? { peersFile: config.peerRegionsFile } : {}),
      ...(this.eventKeys !== undefined && config.security.eventSigning !== undefined
        ? {
            publicKeys: {
              file: config.security.eventSigning.publicKeysFile,
              keyring: this.eventKeys.keyring,
            },
          }
        : {}),
      pollMs: config.membershipReloadMs,
      log: log.child({ component: 'membership' }),
    });
  }

  /** Re-read the peers and public-keys files now (SIGHUP). */
  reloadMembership(reason: string): Promise<ReloadOutcome> {
    return this.membership.reload(reason);
  }

  /**
   * This region's event-signing key and every region's public keys (`config.security.eventSigning`),
   * or undefined: events published unsigned and peers' events taken unverified (insecure-dev only).
   */
  private readonly eventKeys: EventKeys | undefined;

  /** The API's base URL once listening. */
  get url(): string {
    const addr = this.server?.address() as AddressInfo | null | undefined;
    if (!addr) throw new Error('the API is not listening');
    return `http://${this.config.host}:${addr.port}`;
  }

  /**
   * Start: listen first (so `/healthz` answers and `/readyz` says "starting"), then migrate —
   * retrying while PostgreSQL is unreachable — then start the relay and applier, which keep
   * retrying by themselves while Kafka is unreachable.
   */
  async start(): Promise<void> {
    const { config, log } = this;
    const roles = config.roles;
    if (this.kafkaSecurity === undefined) {
      this.regionLog.warn(
        { brokers: config.kafkaBrokers, securityMode: config.security.mode },
        'INSECURE: Kafka over PLAINTEXT without authentication (SECURITY_MODE=insecure-dev and no ' +
          'KAFKA_SSL_CA_FILE / KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD_FILE): anyone who reaches the ' +
          'broker can read and forge every region’s changes. Local development only.',
      );
    }
    if (this.eventKeys === undefined) {
      this.regionLog.warn(
        { securityMode: config.security.mode },
        'INSECURE: events are neither signed nor verified (SECURITY_MODE=insecure-dev and no ' +
          'EVENT_SIGNING_KEY_FILE / EVENT_SIGNING_KEY_ID / EVENT_PUBLIC_KEYS_FILE): anyone who can write ' +
          'to Kafka can make this region apply anything. Local development only.',
      );
    } else {
      for (const w of this.eventKeys.warnings) this.regionLog.warn(w);
      this.regionLog.info(
        {
          keyId: this.eventKeys.signing.keyId,
          publicKeys: Object.fromEntries(
            [...this.eventKeys.keyring].map(([r, keys]) => [r, [...keys.keys()]]),
          ),
        },
        'events are signed and peers’ events verified',
      );
    }
    // Before migrations, so that /healthz answers and /readyz says "starting" — but not in a cluster
    // worker: the primary would hand it connections that another worker, already started, can serve.
    const listenEarly = roles.has(Role.Api) && this.options.listenWhenStarted !== true;
    if (listenEarly) await this.listen();
    // Before migrations: the link state is honest from the first seconds, even while PostgreSQL is down.
    this.brokerLink.start();

    await this.retryUntilDone('migrate', async () => {
      await migrate(this.pool, log.child({ component: 'migrate' }));
      if (config.security.bootstrapAdminKeyFile !== undefined)
        await bootstrapAdminKey(this.pool, config.security.bootstrapAdminKeyFile, log);
      const max = await maxItemStamp(this.pool);
      if (max) this.clock.observe(max);
      this.awaitingSnapshot = await pendingSnapshotSource(this.pool);
    });
    if (this.stopped) return;
    this.migrated = true;
    this.markMigrated();
    if (roles.has(Role.Api) && !listenEarly) await this.listen();
    // Everything else starts now (Kafka connections, the consumer's group join) so that a region
    // being added is ready when its copy ends; what depends on the data waits for `loaded`.
    const loaded =
      this.awaitingSnapshot === undefined
        ? undefined
        : this.inBackground('watch for the initial snapshot', this.waitForSnapshot(this.awaitingSnapshot));

    const kafkaOptions = {
      clientId: config.kafkaClientId,
      brokers: config.kafkaBrokers,
      connectionTimeoutMs: config.kafkaConnectionTimeoutMs,
      requestTimeoutMs: config.kafkaRequestTimeoutMs,
      ...(this.kafkaSecurity !== undefined ? { security: this.kafkaSecurity } : {}),
    };
    const kafka = createKafka(kafkaOptions, log);
    this.kafka = kafka;
    const ownTopic = changeTopic(config.topicPrefix, config.region);
    const peerTopics = this.membership.peers().map((r) => changeTopic(config.topicPrefix, r));
    let ownPartitions: number | undefined;
    const topicsReady = this.inBackground(
      'create topics',
      this.retryUntilDone('create topics', async () => {
        const partitions = await ensureTopics(kafka, [ownTopic, ...peerTopics], config.topicPartitions);
        ownPartitions = partitions.get(ownTopic);
      }),
    );
    // The publishing side's concern: the applier does not wait for it (one broker round trip fewer
    // before a starting region consumes).
    this.background.push(
      topicsReady.then((ok) =>
        !ok || this.stopped
          ? undefined
          : this.inBackground(
              'check the broker message limit',
              this.retryUntilDone('check the broker message limit', () =>
                this.checkMessageLimit(kafka, ownTopic),
              ),
            ),
      ),
    );

    if (roles.has(Role.Relay)) {
      this.publisher = new KafkaPublisher(kafka, log.child({ component: 'publisher' }));
      this.relay = new OutboxRelay({
        pool: this.pool,
        publisher: this.publisher,
        topic: ownTopic,
        batchSize: config.relayBatchSize,
        pollIntervalMs: config.outboxPollIntervalMs,
        publishTimeoutMs: config.publishTimeoutMs,
        messageLimit: this.messageLimit,
        log: log.child({ component: 'relay' }),
        ...(this.eventKeys !== undefined
          ? {
              signer: new EventSigner(this.eventKeys.signing, config.region),
              partitions: () => ownPartitions,
            }
          : {}),
        heartbeats: new Heartbeats({
          clock: this.clock,
          region: config.region,
          heartbeatIntervalMs: config.heartbeatIntervalMs,
          markIntervalMs: config.heartbeatMarkIntervalMs,
          marginMs: config.watermarkMarginMs,
          policies: config.collectionPolicies,
          partitions: () => ownPartitions,
        }),
      });
    }
    if (roles.has(Role.Applier)) {
      const applierLog = log.child({ component: 'applier' });
      // Restarts and joins wait for the link rather than trying through a cut (see retryNow below).
      const linkDown = () => this.brokerLink.linkState === LinkState.Down;
      // A client id of the applier's own (KAFKA_CLIENT_ID, "-apply-" and 8 random hex digits): its
      // group members are told apart from those of the region's other processes, so that a restart
      // can remove what its crashed consumers left in the group (shared/kafka/groupMembers.ts).
      const applierClientId = `${config.kafkaClientId}-apply-${randomBytes(4).toString('hex')}`;
      this.applier = new PeerApplier({
        pool: this.pool,
        consumer: new KafkaBatchConsumer(
          createKafka({ ...kafkaOptions, clientId: applierClientId }, log),
          {
            groupId: applyGroupId(config.topicPrefix, config.region),
            topics: peerTopics,
            partitionsConsumedConcurrently: 2,
            sessionTimeoutMs: config.kafkaSessionTimeoutMs,
            linkDown,
            memberClientId: applierClientId,
          },
          applierLog,
        ),
        clock: this.clock,
        topicPrefix: config.topicPrefix,
        region: config.region,
        policies: config.collectionPolicies,
        ...(this.eventKeys !== undefined ? { verification: { keyring: this.eventKeys.keyring } } : {}),
        log: applierLog,
        linkDown,
        notReadyReason: () =>
          this.awaitingSnapshot === undefined
            ? undefined
            : `the region awaits its initial snapshot of ${this.awaitingSnapshot}`,
      });
    }
    // With the appliers, or in a relay worker (it leads, so it runs them: the API workers stand by).
    if (roles.has(Role.Applier) || this.options.preferredLeader === true) {
      this.maintenance = new Maintenance({
        pool: this.pool,
        region: config.region,
        peerRegions: () => this.membership.peers(),
        intervalMs: config.maintenanceIntervalMs,
        tombstoneGraceMs: config.tombstoneGraceMs,
        peerSuspectAfterMs: config.peerSuspectAfterMs,
        conflictRetentionMs: config.conflictRetentionMs,
        conflictLogMaxRows: config.conflictLogMaxRows,
        historyMaxVersions: config.historyMaxVersions,
        applyContext: {
          clock: this.clock,
          topicPrefix: config.topicPrefix,
          region: config.region,
          policies: config.collectionPolicies,
        },
        log: log.child({ component: 'maintenance' }),
      });
      // Digests go beside the heartbeats (ANTI_ENTROPY_INTERVAL_MS; 0: off).
      this.antiEntropy = new AntiEntropy({
        pool: this.pool,
        clock: this.clock,
        region: config.region,
        peerRegions: () => this.membership.peers(),
        intervalMs: config.antiEntropyIntervalMs,
        marginMs: config.watermarkMarginMs,
        maxEventBytes: () => this.messageLimit.bytes,
        onCommitted: () => this.wakeRelay(),
        log: log.child({ component: 'anti-entropy' }),
      });
    }
    registerRegionMetrics({
      registry: this.metrics,
      pool: this.pool,
      config,
      peerRegions: () => this.membership.peers(),
      log,
      messageLimit: this.messageLimit,
      brokerLink: this.brokerLink,
      relay: this.relay,
      applier: this.applier,
      antiEntropy: this.antiEntropy,
    });
    this.relay?.on('published', () => this.brokerLink.recordPublishOk());
    // Back after a cut: backoffs that grew meanwhile are cut short, and a consumer start under way is
    // made again. Not at the first answer of a start (unknown → up): nothing has waited on a cut, and a
    // start under way would only be made twice.
    this.brokerLink.on('stateChanged', (state, previous) => {
      if (state !== LinkState.Up || previous !== LinkState.Down) return;
      this.relay?.retryNow();
      this.applier?.retryNow();
    });
    this.membership.on('changed', (change) => {
      this.membershipApplied = this.membershipApplied
        .then(() => this.applyMembership(change))
        .catch((err: unknown) => this.regionLog.error({ err, ...change }, 'a membership change failed'));
    });
    this.membership.start();
    // The singletons run in the leader only; a standby starts them when it takes over. Only processes
    // with the relay role contend (a ROLES=api process never leads); one without it runs
    // maintenance and anti-entropy with its applier, as before (their steps are idempotent).
    const whenLoaded = (work: () => void) => {
      if (loaded === undefined) work();
      else this.background.push(loaded.then((ok) => (!ok || this.stopped ? undefined : work())));
    };
    if (!roles.has(Role.Relay))
      whenLoaded(() => {
        this.maintenance?.start();
        this.antiEntropy?.start();
      });
    const applyLeadership = (change: () => void | Promise<void>) => {
      this.leadershipApplied = this.leadershipApplied
        .then(change)
        .catch((err: unknown) => this.regionLog.error({ err }, 'a leadership change failed'));
    };
    this.leadership.on('acquired', () =>
      applyLeadership(() => {
        if (this.stopped) return;
        this.relay?.start();
        this.maintenance?.start();
        this.antiEntropy?.start();
      }),
    );
    this.leadership.on('lost', () => applyLeadership(() => this.stopSingletons()));
    if (roles.has(Role.Relay)) whenLoaded(() => this.leadership.start());
    if (this.applier) {
      const applier = this.applier;
      this.background.push(topicsReady.then((ok) => (!ok || this.stopped ? undefined : applier.start())));
    } else {
      this.background.push(topicsReady);
    }
    whenLoaded(() => {
      this.ready = true;
      this.regionLog.info(
        { roles: [...roles], peers: this.membership.peers(), url: this.server ? this.url : undefined },
        'region started',
      );
    });
  }

  /**
   * Wait until the snapshot copy has deleted this database's snapshot_pending row (polled; stop()
   * ends the wait), then let the clock see the copied stamps before anything is written here.
   */
  private async waitForSnapshot(source: string): Promise<void> {
    const started = Date.now();
    this.regionLog.warn(
      { source },
      `this database awaits its initial snapshot of ${source} (snapshot_pending): the region serves ` +
        'no data, leads nothing and applies nothing until the copy has loaded it',
    );
    await this.retryUntilDone('watch for the initial snapshot', async () => {
      while (!this.stopped && (await pendingSnapshotSource(this.pool)) !== undefined)
        await sleep(SNAPSHOT_POLL_MS);
      if (this.stopped) return;
      const max = await maxItemStamp(this.pool);
      if (max) this.clock.observe(max);
    });
    if (this.stopped) return;
    this.awaitingSnapshot = undefined;
    this.regionLog.info({ source, waitedMs: Date.now() - started }, 'initial snapshot loaded');
  }

  /** Stop in reverse order: API, heartbeats, relay, applier, producer, pool. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.ready = false;
    this.membership.stop();
    if (this.server) {
      const server = this.server;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      });
    }
    await this.leadership.stop();
    await this.leadershipApplied;
    await this.stopSingletons();
    await Promise.allSettled(this.background);
    await this.membershipApplied;
    await this.applier?.stop();
    await this.brokerLink.stop();
    await this.publisher?.disconnect();
    await this.pool.end();
    this.regionLog.info('region stopped');
  }

  private async listen(): Promise<void> {
    const { config, log } = this;
    if (config.security.mode === SecurityMode.InsecureDev)
      this.regionLog.warn(
        { securityMode: config.security.mode },
        'INSECURE: the API accepts requests without credentials, with every scope (SECURITY_MODE=insecure-dev), ' +
          `and session tokens are MACed with ${config.security.sessionTokenKeys.length > 0 ? 'SESSION_TOKEN_KEYS' : 'a fixed public development key: anyone can forge them'}. ` +
          'Local development only: set SECURITY_MODE=on and provision API keys anywhere else.',
      );
    const app = createApp({
      auth: new Authenticator({ pool: this.pool, security: config.security }),
      sessionKeys: sessionTokenKeys(config.security),
      pool: this.pool,
      clock: this.clock,
      region: config.region,
      peerRegions: () => this.membership.peers(),
      roles: [...config.roles],
      apiProcesses: config.apiProcesses,
      peerSuspectAfterMs: config.peerSuspectAfterMs,
      peerDownAfterMs: config.peerDownAfterMs,
      maxBodyBytes: config.maxBodyBytes,
      messageLimit: this.messageLimit,
      metrics: this.metrics,
      regionMetrics: () => this.clusterMetrics?.() ?? this.metrics.metrics(),
      log,
      isReady: () => this.ready,
      awaitingSnapshot: () => this.awaitingSnapshot,
      starting: () => !this.migrated,
      untilStarted: () => this.migratedNow,
      onCommitted: () => this.wakeRelay(),
      policies: config.collectionPolicies,
      tombstoneGraceMs: config.tombstoneGraceMs,
      sessionWaitMs: config.sessionWaitMs,
      historyMaxVersions: config.historyMaxVersions,
      live: () => this.liveComponents(),
      leaderComponents: () => this.leaderComponents?.() ?? Promise.resolve(undefined),
    });
    const server = http.createServer(app);
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.regionLog.info({ url: this.url }, 'API listening');
  }

  /**
   * Compare the configured message limit with the one the broker enforces for our topic. A lower
   * broker limit is used from now on (writes whose events would not fit get 413) and said loudly:
   * the deployment's KAFKA_MESSAGE_MAX_BYTES and the broker's message.max.bytes disagree.
   */
  private async checkMessageLimit(kafka: ReturnType<typeof createKafka>, topic: string): Promise<void> {
    const brokerBytes = await describeTopicMessageMaxBytes(kafka, topic);
    const configured = this.config.kafkaMessageMaxBytes;
    if (this.messageLimit.observeBroker(brokerBytes)) {
      this.regionLog.error(
        { topic, brokerBytes, configuredBytes: configured },
        'the broker accepts smaller messages than KAFKA_MESSAGE_MAX_BYTES says: using the broker limit ' +
          '(writes whose events exceed it are refused with 413); set the same value on both',
      );
    } else {
      this.regionLog.info(
        { topic, brokerBytes, configuredBytes: configured },
        'broker message limit checked',
      );
    }
  }

  /**
   * A peer joined or left: make sure a new peer's topic exists (its region, or the operator, creates
   * it; retried until it does), then consume the new set of peer topics. Status, anti-entropy and
   * tombstone collection read the membership on every use.
   */
  private async applyMembership(change: MembershipChange): Promise<void> {
    const { config } = this;
    const kafka = this.kafka;
    if (this.stopped || kafka === undefined || this.applier === undefined) return;
    const topics = change.peers.map((r) => changeTopic(config.topicPrefix, r));
    const added = change.added.map((r) => changeTopic(config.topicPrefix, r));
    if (added.length > 0)
      await this.retryUntilDone('find the new peers’ topics', async () => {
        await ensureTopics(kafka, added, config.topicPartitions);
      });
    if (this.stopped) return;
    await this.applier.setTopics(topics);
    this.regionLog.info({ topics, ...change }, 'consuming the peers’ topics of the new membership');
  }

  /** Stop what only the leader runs (it lost the lock, or the process stops). */
  private async stopSingletons(): Promise<void> {
    await this.maintenance?.stop();
    await this.antiEntropy?.stop();
    await this.relay?.stop();
  }

  /** After a commit of outbox rows: wake this process's relay, or tell the leader's. */
  private wakeRelay(): void {
    if (this.leadership.isLeader) this.relay?.wake();
    else this.onCommittedElsewhere?.();
  }

  /** What this process runs as the leader, for another process's `/v1/status` (see leaderComponents). */
  ownLeaderComponents(): LeaderComponents {
    return {
      pid: process.pid,
      relay: this.relay ? this.relay.snapshot() : null,
      antiEntropy: this.antiEntropy?.snapshot() ?? null,
    };
  }

  /** What `/v1/status` shows about this process's components. */
  liveComponents(): LiveComponents {
    const consumer = this.applier?.consumerSnapshot();
    return {
      brokerLink: this.brokerLink.snapshot(),
      relay: this.relay ? this.relay.snapshot() : null,
      messageLimit: this.messageLimit.snapshot(),
      process: (() => {
        const l = this.leadership.snapshot();
        return { pid: process.pid, leader: l.leader, leaderSince: l.since, terms: l.terms };
      })(),
      applier: this.applier ? { consuming: consumer?.joined ?? this.applier.isConsuming, ...consumer } : null,
      antiEntropy: this.antiEntropy?.snapshot() ?? null,
    };
  }

  /**
   * A start-up step: transient failures (PostgreSQL or Kafka not reachable yet) are retried until it
   * succeeds or the region stops; a permanent one (refused credentials, a migration that cannot
   * apply) rejects, and a programmer error crashes (shared/lifecycle/retry.ts).
   */
  private async retryUntilDone(what: string, work: () => Promise<void>): Promise<void> {
    await retry(work, {
      what,
      log: this.regionLog,
      backoff: START_BACKOFF,
      stopped: () => this.stopped,
    });
  }

  /**
   * A start-up step that runs after start() returned: resolves true once done, false when it failed
   * for good, which ends the process as a failed start would (a region that cannot create its
   * topics or check its limits cannot replicate, and says so instead of limping on).
   */
  private inBackground(what: string, step: Promise<void>): Promise<boolean> {
    return step.then(
      () => true,
      (err: unknown) => {
        if (!this.stopped && failureKind(err) !== 'bug') {
          // (A programmer error was logged and is crashing already.)
          this.regionLog.fatal({ err }, `${what} failed and cannot succeed by retrying; the region stops`);
          crashLoudly(err);
        }
        return false;
      },
    );
  }
}
