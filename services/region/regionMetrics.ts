/**
 * A region process's Prometheus metrics: declared here, fed by its components' events and read at
 * scrape time from PostgreSQL and the components' snapshots. The composition root (region.ts) only
 * calls {@link registerRegionMetrics} with what it built.
 */
import type pg from 'pg';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Config } from '../../shared/config/loadConfig.js';
import { outboxBacklog, type OutboxBacklog } from '../../shared/db/queries/outbox.js';
import { readProgress } from '../../shared/db/queries/peerProgress.js';
import { openReplicationGaps } from '../../shared/db/queries/replicationGap.js';
import { LinkState, type BrokerLinkMonitor } from '../../shared/kafka/brokerLink.js';
import type { MessageLimit } from '../../shared/kafka/messageLimit.js';
import type { Logger } from '../../shared/logging/logger.js';
import { QUARANTINE_KINDS } from '../../shared/security/eventAuth.js';
import { PeerState, peerStatuses } from '../../shared/status/peerStatus.js';
import { replicationCompleteness } from '../../shared/status/replicationCompleteness.js';
import type { AntiEntropy } from '../antiEntropy/antiEntropy.js';
import type { PeerApplier } from '../applier/peerApplier.js';
import type { OutboxRelay } from '../relay/outboxRelay.js';

/** What the metrics read and listen to; the components a process does not run are undefined. */
export interface RegionMetricsSources {
  readonly registry: Registry;
  readonly pool: pg.Pool;
  readonly config: Config;
  /** The peer regions now (membership can change while the region runs). */
  readonly peerRegions: () => readonly string[];
  readonly log: Logger;
  readonly messageLimit: MessageLimit;
  readonly brokerLink: BrokerLinkMonitor;
  readonly relay: OutboxRelay | undefined;
  readonly applier: PeerApplier | undefined;
  readonly antiEntropy: AntiEntropy | undefined;
}

/** Digest anti-entropy (docs/anti-entropy.md): counters from the component's and the applier's events. */
function registerAntiEntropyMetrics(d: RegionMetricsSources): void {
  const registers = [d.registry];
  const antiEntropy = d.antiEntropy;
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
    // Across a region's processes (API_PROCESSES): the largest value, not the sum.
    aggregator: 'max',
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
  d.applier?.on('applied', (r) => {
    if (r.repaired > 0) rowsRepaired.inc(r.repaired);
  });
}

/** Buckets of the stage histogram, seconds: fine below 50 ms, where a healthy pipeline's stages are. */
export const STAGE_BUCKETS = [
  0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15,
  0.25, 0.5, 1, 2.5, 5, 10,
];

/**
 * Where replication lag goes, per change and stage: in the origin's relay (written → claimed → sent
 * → acked, and acked → its outbox transaction committed) and in the peer's applier (sent → fetched
 * → applied → committed). Sent is the Kafka record's timestamp, so `sent_to_fetched` compares two
 * regions' clocks; `written_to_claimed` compares the write's HLC stamp with the relay's clock. The
 * consumer may fetch before the producer has its acknowledgement: `sent_to_acked` and
 * `acked_to_relay_committed` run beside the path, not on it.
 */
function registerStageMetrics(d: RegionMetricsSources): void {
  const stage = new Histogram({
    name: 'hothot_replication_stage_seconds',
    help: 'Time each replicated change spent in a stage of the pipeline (relay in the origin, applier in the peer)',
    labelNames: ['stage'] as const,
    buckets: STAGE_BUCKETS,
    registers: [d.registry],
  });
  const observe = (name: string, ms: number) => {
    if (Number.isFinite(ms)) stage.observe({ stage: name }, Math.max(0, ms) / 1000);
  };
  d.relay?.on('published', ({ timing: t }) => {
    for (const [i, writtenAt] of t.writtenAtMs.entries()) {
      observe('written_to_claimed', t.claimedWallMs - writtenAt);
      observe('claimed_to_sent', t.sentMono[i]! - t.claimedMono);
      observe('sent_to_acked', t.ackedMono[i]! - t.sentMono[i]!);
      observe('acked_to_relay_committed', t.committedMono - t.ackedMono[i]!);
    }
  });
  d.applier?.on('applied', (r) => {
    const fetched = r.fetchedAt;
    if (fetched === undefined) return;
    for (const t of r.timings) {
      for (const sentAt of t.sentAtMs) {
        observe('sent_to_fetched', fetched.wallMs - sentAt);
        observe('fetched_to_applied', t.resolvedMono - fetched.monoMs);
        observe('applied_to_committed', t.committedMono - t.resolvedMono);
      }
    }
  });
}

/** Every metric of a region process but the defaults, on `d.registry`. */
export function registerRegionMetrics(d: RegionMetricsSources): void {
  const registers = [d.registry];
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
  const { pool, config, log } = d;
  // Gauges read at scrape time. A failing read (PostgreSQL down) keeps the last value rather than
  // failing the whole scrape.
  const scrapeFailed = (err: unknown) => log.debug({ err }, 'metrics: a gauge could not be read');
  // prom-client collects every metric of a scrape concurrently: gauges that show one query's
  // results each await the same read (one per scrape) instead of setting each other's values,
  // which showed the previous scrape's value (an outbox 30 s old read as 0 s).
  const readBacklog = onePerScrape(() => outboxBacklog(pool));
  const readPeers = onePerScrape(async () =>
    peerStatuses(d.peerRegions(), await readProgress(pool), config, Date.now()),
  );
  /** A gauge of one number out of a read shared by the scrape (`onePerScrape`). */
  const scrapedGauge =
    <T>(read: () => Promise<T>) =>
    (name: string, help: string, value: (r: T) => number) =>
      new Gauge({
        // Across a region's processes (API_PROCESSES): the largest value, not the sum.
        aggregator: 'max',
        name,
        help,
        registers,
        async collect() {
          try {
            this.set(value(await read()));
          } catch (err) {
            scrapeFailed(err);
          }
        },
      });
  const backlogGauge = scrapedGauge<OutboxBacklog>(readBacklog);
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
    // Across a region's processes (API_PROCESSES): the largest value, not the sum.
    aggregator: 'max',
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
    // Across a region's processes (API_PROCESSES): the largest value, not the sum.
    aggregator: 'max',
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
  const gapsGauge = scrapedGauge(
    onePerScrape(async () => replicationCompleteness(await openReplicationGaps(pool))),
  );
  gapsGauge(
    'hothot_replication_complete',
    'Whether this region holds every peer event (1), or Kafka deleted some before it read them (0: re-bootstrap it)',
    (g) => (g.complete ? 1 : 0),
  );
  gapsGauge(
    'hothot_replication_lost_events',
    'Peer events Kafka deleted (retention) before this region applied them, in ranges not yet repaired by a re-bootstrap',
    (g) => g.lostEvents,
  );
  const messageLimit = d.messageLimit;
  new Gauge({
    // Across a region's processes (API_PROCESSES): the largest value, not the sum.
    aggregator: 'max',
    name: 'hothot_kafka_message_max_bytes',
    help: 'The largest record batch this region publishes: KAFKA_MESSAGE_MAX_BYTES, or the broker limit when lower',
    registers,
    collect() {
      this.set(messageLimit.bytes);
    },
  });
  const brokerLink = d.brokerLink;
  new Gauge({
    // Across a region's processes (API_PROCESSES): the largest value, not the sum.
    aggregator: 'max',
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
  const relay = d.relay;
  if (relay) {
    new Gauge({
      // Across a region's processes (API_PROCESSES): the largest value, not the sum.
      aggregator: 'max',
      name: 'hothot_outbox_last_publish_timestamp_seconds',
      help: 'When Kafka last acknowledged a publish of this process (Unix time; absent before the first)',
      registers,
      collect() {
        const at = relay.snapshot().lastPublishOkAt;
        if (at !== null) this.set(Date.parse(at) / 1000);
      },
    });
  }
  const applier = d.applier;
  if (applier) {
    new Gauge({
      // Across a region's processes (API_PROCESSES): the largest value, not the sum.
      aggregator: 'max',
      name: 'hothot_applier_lag_messages',
      help: "Messages behind the peer topics' high watermarks as of each partition's last batch",
      registers,
      collect() {
        const lag = applier.consumerSnapshot()?.lagMessages;
        if (lag !== null && lag !== undefined) this.set(lag);
      },
    });
    new Gauge({
      // Across a region's processes (API_PROCESSES): the largest value, not the sum.
      aggregator: 'max',
      name: 'hothot_applier_consuming',
      help: 'Whether the applier is in its consumer group and fetching (1) or not (0)',
      registers,
      collect() {
        this.set((applier.consumerSnapshot()?.joined ?? applier.isConsuming) ? 1 : 0);
      },
    });
    new Gauge({
      // Across a region's processes (API_PROCESSES): the largest value, not the sum.
      aggregator: 'max',
      name: 'hothot_applier_consumer_crashes',
      help: 'Times the Kafka consumer crashed since the process started (it is always restarted)',
      registers,
      collect() {
        this.set(applier.consumerSnapshot()?.crashes ?? 0);
      },
    });
  }
  d.relay?.on('published', ({ count }) => published.inc(count));
  registerStageMetrics(d);
  d.relay?.on('publishFailed', () => publishFailures.inc());
  d.relay?.on('held', () => held.inc());
  d.applier?.on('applied', (r) => {
    for (const [outcome, n] of Object.entries(r.outcomes)) if (n > 0) applied.inc({ outcome }, n);
    for (const ms of r.lagsMs) lag.observe(ms / 1000);
  });
  d.applier?.on('conflict', (c) => conflicts.inc({ collection: c.collection, rule: c.rule }));
  d.applier?.on('deadLettered', (d) => deadLetters.inc({ code: d.code }));
  registerAntiEntropyMetrics(d);
  const quarantined = new Counter({
    name: 'hothot_quarantined_events_total',
    help: 'Peer messages quarantined (dead letters with code quarantined, never applied), by reason: unsigned, malformed, unknown_key, bad_signature, replayed',
    labelNames: ['reason'] as const,
    registers,
  });
  for (const reason of QUARANTINE_KINDS) quarantined.inc({ reason }, 0);
  d.applier?.on('quarantined', (x) => quarantined.inc({ reason: x.kind }));
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
