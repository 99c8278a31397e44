/**
 * The live state of a region process's components as `/v1/status` shows it: one declaration per
 * shape, shared by the components that take the snapshots (relay, message limit, anti-entropy), the
 * region that gathers them and the API that reports them.
 */
import type { BrokerLinkSnapshot } from '../kafka/brokerLink.js';
import type { ConsumerSnapshot } from '../kafka/consumer.js';

/** The relay (see OutboxRelay.snapshot). */
export interface RelaySnapshot {
  readonly running: boolean;
  readonly consecutiveFailures: number;
  readonly lastPublishOkAt: string | null;
  readonly lastFailureAt: string | null;
  readonly lastFailure: string | null;
  /** How long the pass in progress has been running (a publish waiting on Kafka), or null. */
  readonly passRunningMs: number | null;
  /** Outbox rows this process moved to `outbox_held` since it started. */
  readonly heldByThisProcess: number;
  /**
   * The failure retrying cannot cure that stopped the relay (e.g. Kafka refuses the topic to this
   * region's principal), or null. The outbox keeps its rows; a restart or a new leadership term
   * starts the relay again.
   */
  readonly stoppedBy: string | null;
}

/** The largest record batch this region publishes (see MessageLimit.snapshot). */
export interface MessageLimitSnapshot {
  readonly configuredBytes: number;
  readonly brokerBytes: number | null;
  readonly checkedAt: string | null;
  readonly bytes: number;
}

/** Anti-entropy's last comparison with one peer. */
export interface PeerComparison {
  readonly peer: string;
  /** When the peer sent the digest compared (ISO), or null: none received yet. */
  readonly digestSentAt: string | null;
  readonly compared: number;
  readonly unsettled: number;
  /** Divergent buckets (the first 50). */
  readonly divergent: readonly number[];
  readonly divergentCount: number;
}

/** Digest anti-entropy (see AntiEntropy.snapshot, docs/anti-entropy.md). */
export interface AntiEntropySnapshot {
  readonly intervalMs: number;
  readonly rounds: number;
  readonly lastRoundAt: string | null;
  /** Bucket comparisons made (a bucket compared with one peer in one round counts once). */
  readonly bucketsCompared: number;
  /** Buckets found divergent (counted once per peer until repaired). */
  readonly bucketsDivergent: number;
  /** Divergent buckets later found equal. */
  readonly bucketsRepaired: number;
  /** Divergent buckets now, over every peer. */
  readonly divergentNow: number;
  /** Bucket item lists published to narrow divergent buckets down. */
  readonly bucketListsSent: number;
  /** Versions this region republished (`repair` events). */
  readonly keysRepublished: number;
  /** Bucket item lists not published: larger than the event limit. */
  readonly bucketListsTooLarge: number;
  /** Rows changed by hand without a new version (`item_suspect`), as of the last round. */
  readonly suspectRows: number;
  readonly peers: readonly PeerComparison[];
}

/** This process among the region's processes (services/region/leadership.ts). */
export interface ProcessSnapshot {
  readonly pid: number;
  /** Whether this process leads the region (runs the relay, maintenance, anti-entropy). */
  readonly leader: boolean;
  readonly leaderSince: string | null;
  /** Times this process became leader since it started. */
  readonly terms: number;
}

/** Live state of the components this process runs; null for a component it does not run. */
export interface LiveComponents {
  readonly process: ProcessSnapshot;
  readonly brokerLink: BrokerLinkSnapshot | null;
  readonly relay: RelaySnapshot | null;
  readonly messageLimit: MessageLimitSnapshot;
  readonly applier:
    (ConsumerSnapshot & { readonly consuming: boolean }) | { readonly consuming: boolean } | null;
  /** Absent or null: this process does not run anti-entropy (it runs with the applier). */
  readonly antiEntropy?: AntiEntropySnapshot | null;
}

/**
 * The live state of what only the leader runs, as another process of the region obtains it from the
 * leader (cluster workers ask through the primary): `/v1/status` shows the region's relay and
 * anti-entropy, whichever process answers.
 */
export interface LeaderComponents {
  readonly pid: number;
  readonly relay: RelaySnapshot | null;
  readonly antiEntropy: AntiEntropySnapshot | null;
}
