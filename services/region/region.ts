/**
 * One region process: wires config, logger, pool, Kafka and the components this process runs
 * (`api`, `relay`, `applier`), starts them and stops them in reverse order. No module singletons:
 * tests construct several regions in one process.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../../shared/config/loadConfig.js';
import { Role } from '../../shared/config/loadConfig.js';
import { createPool } from '../../shared/db/pool.js';
import { migrate } from '../../shared/db/migrate.js';
import { maxItemStamp } from '../../shared/db/queries/item.js';
import { outboxBacklog } from '../../shared/db/queries/outbox.js';
import { HybridLogicalClock } from '../../shared/domain/hlc.js';
import { createKafka, ensureTopics } from '../../shared/kafka/client.js';
import { KafkaBatchConsumer } from '../../shared/kafka/consumer.js';
import { KafkaPublisher } from '../../shared/kafka/publisher.js';
import { applyGroupId, changeTopic } from '../../shared/kafka/topics.js';
import type { Logger } from '../../shared/logging/logger.js';
import { createApp } from '../api/app.js';
import { PeerApplier } from '../applier/peerApplier.js';
import { HeartbeatEmitter } from '../relay/heartbeatEmitter.js';
import { OutboxRelay } from '../relay/outboxRelay.js';

const RETRY_MS = 1000;

export class Region {
  readonly pool: pg.Pool;
  readonly clock: HybridLogicalClock;
  readonly metrics = new Registry();
  relay: OutboxRelay | undefined;
  applier: PeerApplier | undefined;
  private heartbeat: HeartbeatEmitter | undefined;
  private publisher: KafkaPublisher | undefined;
  private server: http.Server | undefined;
  private ready = false;
  private stopped = false;
  private background: Promise<unknown>[] = [];

  constructor(
    readonly config: Config,
    private readonly log: Logger,
  ) {
    this.pool = createPool(
      { connectionString: config.databaseUrl, max: config.dbPoolSize, applicationName: `hothot-${config.region}` },
      log.child({ component: 'db' }),
    );
    this.clock = new HybridLogicalClock(config.region, { maxSkewMs: config.maxClockSkewMs });
    this.metrics.setDefaultLabels({ region: config.region });
    collectDefaultMetrics({ register: this.metrics });
  }

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
    if (roles.has(Role.Api)) await this.listen();

    await this.retryUntilDone('migrate', async () => {
      await migrate(this.pool, log.child({ component: 'migrate' }));
      const max = await maxItemStamp(this.pool);
      if (max) this.clock.observe(max);
    });
    if (this.stopped) return;

    const kafka = createKafka({ clientId: config.kafkaClientId, brokers: config.kafkaBrokers }, log);
    const ownTopic = changeTopic(config.topicPrefix, config.region);
    const peerTopics = config.peerRegions.map((r) => changeTopic(config.topicPrefix, r));
    const topicsReady = this.retryUntilDone('create topics', () =>
      ensureTopics(kafka, [ownTopic, ...peerTopics], config.topicPartitions),
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
        log: log.child({ component: 'relay' }),
      });
      this.heartbeat = new HeartbeatEmitter({
        pool: this.pool,
        clock: this.clock,
        region: config.region,
        intervalMs: config.heartbeatIntervalMs,
        log: log.child({ component: 'heartbeat' }),
        onWritten: () => this.relay?.wake(),
      });
    }
    if (roles.has(Role.Applier) && peerTopics.length > 0) {
      const applierLog = log.child({ component: 'applier' });
      this.applier = new PeerApplier({
        pool: this.pool,
        consumer: new KafkaBatchConsumer(
          kafka,
          { groupId: applyGroupId(config.topicPrefix, config.region), topics: peerTopics, partitionsConsumedConcurrently: 2 },
          applierLog,
        ),
        clock: this.clock,
        topicPrefix: config.topicPrefix,
        region: config.region,
        log: applierLog,
      });
    }
    this.registerPipelineMetrics();
    this.relay?.start();
    this.heartbeat?.start();
    if (this.applier) {
      const applier = this.applier;
      this.background.push(topicsReady.then(() => (this.stopped ? undefined : applier.start())));
    } else {
      this.background.push(topicsReady);
    }
    this.ready = true;
    log.info({ roles: [...roles], peers: config.peerRegions, url: this.server ? this.url : undefined }, 'region started');
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
    await this.heartbeat?.stop();
    await this.relay?.stop();
    await Promise.allSettled(this.background);
    await this.applier?.stop();
    await this.publisher?.disconnect();
    await this.pool.end();
    this.log.info('region stopped');
  }

  private async listen(): Promise<void> {
    const { config, log } = this;
    const app = createApp({
      pool: this.pool,
      clock: this.clock,
      region: config.region,
      peerRegions: config.peerRegions,
      roles: [...config.roles],
      peerSuspectAfterMs: config.peerSuspectAfterMs,
      peerDownAfterMs: config.peerDownAfterMs,
      maxBodyBytes: config.maxBodyBytes,
      metrics: this.metrics,
      log,
      isReady: () => this.ready,
      onCommitted: () => this.relay?.wake(),
      components: () => ({
        relay: this.relay ? { running: true, consecutiveFailures: this.relay.consecutiveFailures } : null,
        applier: this.applier ? { consuming: this.applier.isConsuming } : null,
      }),
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
    log.info({ url: this.url }, 'API listening');
  }

  private async retryUntilDone(what: string, work: () => Promise<void>): Promise<void> {
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        await work();
        return;
      } catch (err) {
        this.log.warn({ err, attempt, retryInMs: RETRY_MS }, `${what} failed; retrying`);
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }

  private registerPipelineMetrics(): void {
    const registers = [this.metrics];
    const published = new Counter({ name: 'hothot_outbox_published_total', help: 'Outbox rows published to Kafka', registers });
    const publishFailures = new Counter({ name: 'hothot_outbox_publish_failures_total', help: 'Failed relay passes', registers });
    const applied = new Counter({ name: 'hothot_applied_events_total', help: 'Peer events applied, by outcome', labelNames: ['outcome'] as const, registers });
    const conflicts = new Counter({ name: 'hothot_conflicts_total', help: 'Conflicts resolved by this region', labelNames: ['rule'] as const, registers });
    const deadLetters = new Counter({ name: 'hothot_dead_letters_total', help: 'Peer events dead-lettered', registers });
    const lag = new Histogram({
      name: 'hothot_replication_lag_seconds',
      help: 'Apply time in this region minus write time in the origin region',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    const pool = this.pool;
    new Gauge({
      name: 'hothot_outbox_backlog_rows',
      help: 'Outbox rows not yet acknowledged by Kafka',
      registers,
      async collect() {
        this.set((await outboxBacklog(pool)).rows);
      },
    });
    this.relay?.on('published', ({ count }) => published.inc(count));
    this.relay?.on('publishFailed', () => publishFailures.inc());
    this.applier?.on('applied', (r) => {
      for (const [outcome, n] of Object.entries(r.outcomes)) if (n > 0) applied.inc({ outcome }, n);
      for (const ms of r.lagsMs) lag.observe(ms / 1000);
    });
    this.applier?.on('conflict', (c) => conflicts.inc({ rule: c.rule }));
    this.applier?.on('deadLettered', () => deadLetters.inc());
  }
}
