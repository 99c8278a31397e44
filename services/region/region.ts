/**
 * One region process: wires config, logger, pool, Kafka and the components this process runs
 * (`api`, `relay`, `applier`), starts them and stops them in reverse order. No module singletons:
 * tests construct several regions in one process.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../../shared/config/loadConfig.js';
import { Role, SecurityMode } from '../../shared/config/loadConfig.js';
import { createPool } from '../../shared/db/pool.js';
import { migrate } from '../../shared/db/migrate.js';
import { maxItemStamp } from '../../shared/db/queries/item.js';
import { outboxBacklog, type OutboxBacklog } from '../../shared/db/queries/outbox.js';
import { readProgress } from '../../shared/db/queries/peerProgress.js';
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
import { EventSigner, QUARANTINE_KINDS } from '../../shared/security/eventAuth.js';
import { loadEventKeys, type EventKeys } from '../../shared/security/eventKeys.js';
import type { Logger } from '../../shared/logging/logger.js';
import { createApp } from '../api/app.js';
import { Authenticator } from '../api/http/auth.js';
import { sessionTokenKeys } from '../api/http/sessionToken.js';
import {
  PeerState,
  peerStatuses,
  replicationCompleteness,
  type LiveComponents,
} from '../api/useCases/readStatus.js';
import { openReplicationGaps } from '../../shared/db/queries/replicationGap.js';
import { AntiEntropy } from '../antiEntropy/antiEntropy.js';
import { PeerApplier } from '../applier/peerApplier.js';
import { Heartbeats } from '../relay/heartbeats.js';
import { Maintenance } from '../maintenance/maintenance.js';
import { OutboxRelay } from '../relay/outboxRelay.js';
import { bootstrapAdminKey } from './bootstrapAdminKey.js';

const RETRY_MS = 1000;

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
  private stopped = false;
  private background: Promise<unknown>[] = [];
  /** This class's own log lines (every line names its component). */
  private readonly regionLog: Logger;
  /** TLS + SCRAM to Kafka (from `config.security.kafka`), or undefined: PLAINTEXT (insecure-dev). */
  private readonly kafkaSecurity: KafkaClientSecurity | undefined;

  constructor(
    readonly config: Config,
    private readonly log: Logger,
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
    if (roles.has(Role.Api)) await this.listen();
    // Before migrations: the link state is honest from the first seconds, even while PostgreSQL is down.
    this.brokerLink.start();

    await this.retryUntilDone('migrate', async () => {
      await migrate(this.pool, log.child({ component: 'migrate' }));
      if (config.security.bootstrapAdminKeyFile !== undefined)
        await bootstrapAdminKey(this.pool, config.security.bootstrapAdminKeyFile, log);
      const max = await maxItemStamp(this.pool);
      if (max) this.clock.observe(max);
    });
    if (this.stopped) return;

    const kafka = createKafka(
      {
        clientId: config.kafkaClientId,
        brokers: config.kafkaBrokers,
        connectionTimeoutMs: config.kafkaConnectionTimeoutMs,
        requestTimeoutMs: config.kafkaRequestTimeoutMs,
        ...(this.kafkaSecurity !== undefined ? { security: this.kafkaSecurity } : {}),
      },
      log,
    );
    const ownTopic = changeTopic(config.topicPrefix, config.region);
    const peerTopics = config.peerRegions.map((r) => changeTopic(config.topicPrefix, r));
    let ownPartitions: number | undefined;
    const topicsReady = this.retryUntilDone('create topics', async () => {
      const partitions = await ensureTopics(kafka, [ownTopic, ...peerTopics], config.topicPartitions);
      ownPartitions = partitions.get(ownTopic);
      await this.checkMessageLimit(kafka, ownTopic);
    });

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
    if (roles.has(Role.Applier) && peerTopics.length > 0) {
      const applierLog = log.child({ component: 'applier' });
      this.applier = new PeerApplier({
        pool: this.pool,
        consumer: new KafkaBatchConsumer(
          kafka,
          {
            groupId: applyGroupId(config.topicPrefix, config.region),
            topics: peerTopics,
            partitionsConsumedConcurrently: 2,
            sessionTimeoutMs: config.kafkaSessionTimeoutMs,
          },
          applierLog,
        ),
        clock: this.clock,
        topicPrefix: config.topicPrefix,
        region: config.region,
        policies: config.collectionPolicies,
        ...(this.eventKeys !== undefined ? { verification: { keyring: this.eventKeys.keyring } } : {}),
        log: applierLog,
      });
    }
    if (roles.has(Role.Applier)) {
      this.maintenance = new Maintenance({
        pool: this.pool,
        region: config.region,
        peerRegions: config.peerRegions,
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
        peerRegions: config.peerRegions,
        intervalMs: config.antiEntropyIntervalMs,
        marginMs: config.watermarkMarginMs,
        maxEventBytes: () => this.messageLimit.bytes,
        onCommitted: () => this.relay?.wake(),
        log: log.child({ component: 'anti-entropy' }),
      });
    }
    this.registerPipelineMetrics();
    this.relay?.on('published', () => this.brokerLink.recordPublishOk());
    this.brokerLink.on('stateChanged', (state) => {
      if (state === LinkState.Up) this.relay?.retryNow();
    });
    this.relay?.start();
    this.maintenance?.start();
    this.antiEntropy?.start();
    if (this.applier) {
      const applier = this.applier;
      this.background.push(topicsReady.then(() => (this.stopped ? undefined : applier.start())));
    } else {
      this.background.push(topicsReady);
    }
    this.ready = true;
    this.regionLog.info(
      { roles: [...roles], peers: config.peerRegions, url: this.server ? this.url : undefined },
      'region started',
    );
  }

  /** Stop in reverse order: API, heartbeats, relay, applier, producer, pool. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.ready = false;
    if (this.server) {
      const server = this.server;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      });
    }
    await this.maintenance?.stop();
    await this.antiEntropy?.stop();
    await this.relay?.stop();
    await Promise.allSettled(this.background);
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
      peerRegions: config.peerRegions,
      roles: [...config.roles],
      peerSuspectAfterMs: config.peerSuspectAfterMs,
      peerDownAfterMs: config.peerDownAfterMs,
      maxBodyBytes: config.maxBodyBytes,
      messageLimit: this.messageLimit,
      metrics: this.metrics,
      log,
      isReady: () => this.ready,
      onCommitted: () => this.relay?.wake(),
      policies: config.collectionPolicies,
      tombstoneGraceMs: config.tombstoneGraceMs,
      sessionWaitMs: config.sessionWaitMs,
      historyMaxVersions: config.historyMaxVersions,
      live: () => this.liveComponents(),
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

  /** What `/v1/status` shows about this process's components. */
  liveComponents(): LiveComponents {
    const consumer = this.applier?.consumerSnapshot();
    return {
      brokerLink: this.brokerLink.snapshot(),
      relay: this.relay ? this.relay.snapshot() : null,
      messageLimit: this.messageLimit.snapshot(),
      applier: this.applier ? { consuming: consumer?.joined ?? this.applier.isConsuming, ...consumer } : null,
      antiEntropy: this.antiEntropy?.snapshot() ?? null,
    };
  }

  private async retryUntilDone(what: string, work: () => Promise<void>): Promise<void> {
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        await work();
        return;
      } catch (err) {
        this.regionLog.warn({ err, attempt, retryInMs: RETRY_MS }, `${what} failed; retrying`);
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }

  /** Digest anti-entropy (docs/anti-entropy.md): counters from the component's and the applier's events. */
  private registerAntiEntropyMetrics(): void {
    const registers = [this.metrics];
    const antiEntropy = this.antiEntropy;
    if (antiEntropy === undefined) return;
    const counter = (name: string, help: string) => new Counter({ name, help, registers });
    const compared = counter(
      'hothot_antientropy_buckets_compared_total',
      'Bucket digests compared with a peer where both sides had settled every write of the bucket',
    );
    const divergent = counter(
      'hothot_antientropy_buckets_divergent_total',
      'Buckets found divergent from a peer (once per peer until repaired)',
    );
    const repaired = counter(
      'hothot_antientropy_buckets_repaired_total',
      'Divergent buckets found equal to the peer again',
    );
    const republished = counter(
      'hothot_antientropy_keys_republished_total',
      'Stored versions this region republished (repair events) for keys that differ from a peer',
    );
    const rowsRepaired = counter(
      'hothot_antientropy_rows_repaired_total',
      'Rows of this region changed by a repair event from a peer',
    );
    new Gauge({
      name: 'hothot_antientropy_divergent_buckets',
      help: 'Buckets divergent from some peer now (per peer), as of the last anti-entropy round',
      registers,
      collect() {
        this.set(antiEntropy.snapshot().divergentNow);
      },
    });
    antiEntropy.on('round', (r) => {
      compared.inc(r.comparisons.reduce((n, c) => n + c.compared, 0));
      divergent.inc(r.newlyDivergent);
      repaired.inc(r.repaired);
      republished.inc(r.keysRepublished);
    });
    this.applier?.on('applied', (r) => {
      if (r.repaired > 0) rowsRepaired.inc(r.repaired);
    });
  }

  private registerPipelineMetrics(): void {
    const registers = [this.metrics];
    const published = new Counter({
      name: 'hothot_outbox_published_total',
      help: 'Outbox rows published to Kafka',
      registers,
    });
    const publishFailures = new Counter({
      name: 'hothot_outbox_publish_failures_total',
      help: 'Failed relay passes',
      registers,
    });
    const held = new Counter({
      name: 'hothot_outbox_held_total',
      help: 'Outbox rows this process set aside because Kafka would not take them',
      registers,
    });
    const applied = new Counter({
      name: 'hothot_applied_events_total',
      help: 'Peer events applied, by outcome',
      labelNames: ['outcome'] as const,
      registers,
    });
    const conflicts = new Counter({
      name: 'hothot_conflicts_total',
      help: 'Conflicts resolved by this region, by collection and rule',
      labelNames: ['collection', 'rule'] as const,
      registers,
    });
    const deadLetters = new Counter({
      name: 'hothot_dead_letters_total',
      help: 'Peer events dead-lettered, by code (invalid, clock_skew, policy_mismatch, rejected)',
      labelNames: ['code'] as const,
      registers,
    });
    const lag = new Histogram({
      name: 'hothot_replication_lag_seconds',
      help: 'Apply time in this region minus write time in the origin region',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    const pool = this.pool;
    const { config, log } = this;
    // Gauges read at scrape time. A failing read (PostgreSQL down) keeps the last value rather than
    // failing the whole scrape.
    const scrapeFailed = (err: unknown) => log.debug({ err }, 'metrics: a gauge could not be read');
    // prom-client collects every metric of a scrape concurrently: gauges that show one query's
    // results each await the same read (one per scrape) instead of setting each other's values,
    // which showed the previous scrape's value (an outbox 30 s old read as 0 s).
    const readBacklog = onePerScrape(() => outboxBacklog(pool));
    const readPeers = onePerScrape(async () =>
      peerStatuses(config.peerRegions, await readProgress(pool), config, Date.now()),
    );
    const backlogGauge = (name: string, help: string, value: (b: OutboxBacklog) => number) =>
      new Gauge({
        name,
        help,
        registers,
        async collect() {
          try {
            this.set(value(await readBacklog()));
          } catch (err) {
            scrapeFailed(err);
          }
        },
      });
    backlogGauge('hothot_outbox_backlog_rows', 'Outbox rows not yet acknowledged by Kafka', (b) => b.rows);
    backlogGauge(
      'hothot_outbox_oldest_age_seconds',
      'Age of the oldest outbox row not yet acknowledged by Kafka (0 when empty)',
      (b) => b.oldestAgeMs / 1000,
    );
    backlogGauge(
      'hothot_outbox_held_rows',
      'Outbox rows Kafka will not take (over its message limit), set aside and not published until an operator resolves them (hothot outbox)',
      (b) => b.heldRows,
    );
    new Gauge({
      name: 'hothot_peer_heartbeat_age_seconds',
      help: 'Age of the newest heartbeat applied from each peer: the end-to-end replication lag (absent until one arrives)',
      labelNames: ['peer'] as const,
      registers,
      async collect() {
        try {
          const peers = await readPeers();
          this.reset();
          for (const p of peers) {
            if (p.heartbeatAgeMs !== null) this.set({ peer: p.region }, p.heartbeatAgeMs / 1000);
          }
        } catch (err) {
          scrapeFailed(err);
        }
      },
    });
    new Gauge({
      name: 'hothot_peer_state',
      help: 'Peer region state from its heartbeats: 1 for the current state (up, suspect, down), 0 otherwise',
      labelNames: ['peer', 'state'] as const,
      registers,
      async collect() {
        try {
          for (const p of await readPeers()) {
            for (const state of Object.values(PeerState))
              this.set({ peer: p.region, state }, p.state === state ? 1 : 0);
          }
        } catch (err) {
          scrapeFailed(err);
        }
      },
    });
    const readGaps = onePerScrape(async () => replicationCompleteness(await openReplicationGaps(pool)));
    new Gauge({
      name: 'hothot_replication_complete',
      help: 'Whether this region holds every peer event (1), or Kafka deleted some before it read them (0: re-bootstrap it)',
      registers,
      async collect() {
        try {
          this.set((await readGaps()).complete ? 1 : 0);
        } catch (err) {
          scrapeFailed(err);
        }
      },
    });
    new Gauge({
      name: 'hothot_replication_lost_events',
      help: 'Peer events Kafka deleted (retention) before this region applied them, in ranges not yet repaired by a re-bootstrap',
      registers,
      async collect() {
        try {
          this.set((await readGaps()).lostEvents);
        } catch (err) {
          scrapeFailed(err);
        }
      },
    });
    const messageLimit = this.messageLimit;
    new Gauge({
      name: 'hothot_kafka_message_max_bytes',
      help: 'The largest record batch this region publishes: KAFKA_MESSAGE_MAX_BYTES, or the broker limit when lower',
      registers,
      collect() {
        this.set(messageLimit.bytes);
      },
    });
    const brokerLink = this.brokerLink;
    new Gauge({
      name: 'hothot_broker_link_up',
      help: "This process's link to Kafka: 1 up, 0 down, -1 unknown (not probed yet)",
      registers,
      collect() {
        const state = brokerLink.linkState;
        this.set(state === LinkState.Up ? 1 : state === LinkState.Down ? 0 : -1);
      },
    });
    const probes = new Counter({
      name: 'hothot_broker_probes_total',
      help: 'Broker-link probes (Kafka ApiVersions on a fresh connection), by outcome',
      labelNames: ['outcome'] as const,
      registers,
    });
    const probeSeconds = new Histogram({
      name: 'hothot_broker_probe_duration_seconds',
      help: 'Round-trip time of successful broker-link probes',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    brokerLink.on('probed', (r) => {
      probes.inc({ outcome: r.ok ? 'ok' : 'failed' });
      if (r.ok) probeSeconds.observe(r.rttMs / 1000);
    });
    const relay = this.relay;
    if (relay) {
      new Gauge({
        name: 'hothot_outbox_last_publish_timestamp_seconds',
        help: 'When Kafka last acknowledged a publish of this process (Unix time; absent before the first)',
        registers,
        collect() {
          const at = relay.snapshot().lastPublishOkAt;
          if (at !== null) this.set(Date.parse(at) / 1000);
        },
      });
    }
    const applier = this.applier;
    if (applier) {
      new Gauge({
        name: 'hothot_applier_lag_messages',
        help: "Messages behind the peer topics' high watermarks as of each partition's last batch",
        registers,
        collect() {
          const lag = applier.consumerSnapshot()?.lagMessages;
          if (lag !== null && lag !== undefined) this.set(lag);
        },
      });
      new Gauge({
        name: 'hothot_applier_consuming',
        help: 'Whether the applier is in its consumer group and fetching (1) or not (0)',
        registers,
        collect() {
          this.set((applier.consumerSnapshot()?.joined ?? applier.isConsuming) ? 1 : 0);
        },
      });
      new Gauge({
        name: 'hothot_applier_consumer_crashes',
        help: 'Times the Kafka consumer crashed since the process started (it is always restarted)',
        registers,
        collect() {
          this.set(applier.consumerSnapshot()?.crashes ?? 0);
        },
      });
    }
    this.relay?.on('published', ({ count }) => published.inc(count));
    this.relay?.on('publishFailed', () => publishFailures.inc());
    this.relay?.on('held', () => held.inc());
    this.applier?.on('applied', (r) => {
      for (const [outcome, n] of Object.entries(r.outcomes)) if (n > 0) applied.inc({ outcome }, n);
      for (const ms of r.lagsMs) lag.observe(ms / 1000);
    });
    this.applier?.on('conflict', (c) => conflicts.inc({ collection: c.collection, rule: c.rule }));
    this.applier?.on('deadLettered', (d) => deadLetters.inc({ code: d.code }));
    this.registerAntiEntropyMetrics();
    const quarantined = new Counter({
      name: 'hothot_quarantined_events_total',
      help: 'Peer messages quarantined (dead letters with code quarantined, never applied), by reason: unsigned, malformed, unknown_key, bad_signature, replayed',
      labelNames: ['reason'] as const,
      registers,
    });
    for (const reason of QUARANTINE_KINDS) quarantined.inc({ reason }, 0);
    this.applier?.on('quarantined', (x) => quarantined.inc({ reason: x.kind }));
  }
}

/**
 * `read`, shared by the gauges of one scrape: prom-client calls every collect of a scrape in the same
 * tick, so calls within `windowMs` of the first get its promise and later scrapes read afresh.
 */
function onePerScrape<T>(read: () => Promise<T>, windowMs = 10): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | undefined;
  return () => {
    const now = Date.now();
    if (last === undefined || now - last.at > windowMs) last = { at: now, value: read() };
    return last.value;
  };
}
