/**
 * What `/v1/status` reports: this region, its peers and its pipeline — honestly. A peer never heard
 * from is `down` with lag `null`, never 0; a cut broker link shows as `down` within a few seconds
 * (see shared/kafka/brokerLink.ts); backlog and lag keep growing while the link is cut.
 */
import type pg from 'pg';
import { formatStamp } from '../../../shared/domain/hlc.js';
import { countConflicts } from '../../../shared/db/queries/conflict.js';
import {
  DeadLetterCode,
  countDeadLetters,
  countDeadLettersWithCode,
} from '../../../shared/db/queries/deadLetter.js';
import { outboxBacklog, type OutboxBacklog } from '../../../shared/db/queries/outbox.js';
import { readProgress, type PeerProgress } from '../../../shared/db/queries/peerProgress.js';
import { openReplicationGaps, type ReplicationGap } from '../../../shared/db/queries/replicationGap.js';
import type { BrokerLinkSnapshot } from '../../../shared/kafka/brokerLink.js';
import type { ConsumerSnapshot } from '../../../shared/kafka/consumer.js';

export const PeerState = { Up: 'up', Suspect: 'suspect', Down: 'down' } as const;
export type PeerState = (typeof PeerState)[keyof typeof PeerState];

/** The relay as `/v1/status` shows it (see OutboxRelay.snapshot). */
export interface RelaySnapshot {
  readonly running: boolean;
  readonly consecutiveFailures: number;
  readonly lastPublishOkAt: string | null;
  readonly lastFailureAt: string | null;
  readonly lastFailure: string | null;
  readonly passRunningMs: number | null;
  readonly heldByThisProcess: number;
}

/** The message limit as `/v1/status` shows it (see MessageLimit.snapshot). */
export interface MessageLimitSnapshot {
  readonly configuredBytes: number;
  readonly brokerBytes: number | null;
  readonly checkedAt: string | null;
  readonly bytes: number;
}

/** Digest anti-entropy as `/v1/status` shows it (see AntiEntropy.snapshot, docs/anti-entropy.md). */
export interface AntiEntropyStatus {
  readonly intervalMs: number;
  readonly rounds: number;
  readonly lastRoundAt: string | null;
  readonly bucketsCompared: number;
  readonly bucketsDivergent: number;
  readonly bucketsRepaired: number;
  readonly divergentNow: number;
  readonly bucketListsSent: number;
  readonly keysRepublished: number;
  readonly bucketListsTooLarge: number;
  /** Rows changed by hand without a new version, as of the last round. */
  readonly suspectRows: number;
  readonly peers: readonly {
    readonly peer: string;
    readonly digestSentAt: string | null;
    readonly compared: number;
    readonly unsettled: number;
    readonly divergent: readonly number[];
    readonly divergentCount: number;
  }[];
}

/** Live state of the components this process runs; null for a component it does not run. */
export interface LiveComponents {
  readonly brokerLink: BrokerLinkSnapshot | null;
  readonly relay: RelaySnapshot | null;
  readonly messageLimit: MessageLimitSnapshot;
  readonly applier:
    (ConsumerSnapshot & { readonly consuming: boolean }) | { readonly consuming: boolean } | null;
  /** Absent or null: this process does not run anti-entropy (it runs with the applier). */
  readonly antiEntropy?: AntiEntropyStatus | null;
}

export interface StatusDeps {
  readonly pool: pg.Pool;
  readonly region: string;
  /** The peer regions now (membership can change while the region runs). */
  readonly peerRegions: () => readonly string[];
  readonly roles: readonly string[];
  readonly peerSuspectAfterMs: number;
  readonly peerDownAfterMs: number;
  readonly live: () => LiveComponents;
}

export interface PeerStatus {
  readonly region: string;
  readonly state: PeerState;
  /** Age of the newest heartbeat applied from this peer (now − its send time); null if none ever. */
  readonly heartbeatAgeMs: number | null;
  /**
   * End-to-end replication lag estimate: the heartbeat age. Null — never 0 — for a peer never heard from.
   */
  readonly lagMs: number | null;
  /** Apply time − write time of the newest change applied from this peer. */
  readonly lastChangeLagMs: number | null;
  readonly appliedEvents: number;
  readonly lastAppliedEventId: string | null;
  readonly lastAppliedVersion: string | null;
  readonly lastAppliedAt: string | null;
}

export interface RegionStatus {
  readonly region: string;
  readonly roles: readonly string[];
  readonly time: string;
  readonly peers: readonly PeerStatus[];
  /** This process's link to Kafka: `up | down | unknown`, probe and publish evidence. */
  readonly brokerLink: BrokerLinkSnapshot | null;
  /** Rows waiting for Kafka's acknowledgement and the age of the oldest; rows held as unpublishable. */
  readonly outbox: OutboxBacklog;
  readonly relay: RelaySnapshot | null;
  /** The largest record batch this region publishes: configured, the broker's, the one in force. */
  readonly messageLimit: MessageLimitSnapshot;
  /** The applier: joined or not, crashes, messages behind the peer topics' high watermarks. */
  readonly applier: LiveComponents['applier'];
  /** Digest anti-entropy: buckets compared, divergent, repaired, keys republished (null: not run here). */
  readonly antiEntropy: AntiEntropyStatus | null;
  readonly conflicts: number;
  readonly deadLetters: number;
  /** Dead letters with code `quarantined`: peers' messages that failed authentication (never applied). */
  readonly quarantined: number;
  /** Whether this region still holds every peer event (see {@link ReplicationCompleteness}). */
  readonly replication: ReplicationCompleteness;
}

/**
 * Peer events Kafka deleted (retention) before this region read them. While any range is open the
 * region is `complete: false` — it cannot converge by replication alone — until a re-bootstrap.
 */
export interface ReplicationCompleteness {
  readonly complete: boolean;
  /** Events lost over every open range. */
  readonly lostEvents: number;
  readonly gaps: readonly {
    readonly origin: string;
    readonly topic: string;
    readonly partition: number;
    readonly fromOffset: string;
    readonly toOffset: string;
    readonly detectedAt: string;
  }[];
}

/** Completeness from the open gaps: pure, shared by `/v1/status` and the metrics. */
export function replicationCompleteness(gaps: readonly ReplicationGap[]): ReplicationCompleteness {
  return {
    complete: gaps.length === 0,
    lostEvents: gaps.reduce((n, g) => n + Number(BigInt(g.toOffset) - BigInt(g.fromOffset)), 0),
    gaps: gaps.map((g) => ({ ...g, detectedAt: g.detectedAt.toISOString() })),
  };
}

/** Peer states from applied progress: pure, shared by `/v1/status` and the metrics. */
export function peerStatuses(
  peerRegions: readonly string[],
  progress: readonly PeerProgress[],
  thresholds: { readonly peerSuspectAfterMs: number; readonly peerDownAfterMs: number },
  now: number,
): PeerStatus[] {
  return peerRegions.map((region): PeerStatus => {
    const p = progress.find((x) => x.origin === region);
    const age = p?.heartbeatSentAt ? Math.max(0, now - p.heartbeatSentAt.getTime()) : null;
    const state =
      age === null || age > thresholds.peerDownAfterMs
        ? PeerState.Down
        : age > thresholds.peerSuspectAfterMs
          ? PeerState.Suspect
          : PeerState.Up;
    return {
      region,
      state,
      heartbeatAgeMs: age,
      lagMs: age,
      lastChangeLagMs: p?.lastLagMs ?? null,
      appliedEvents: p?.appliedEvents ?? 0,
      lastAppliedEventId: p?.lastEventId ?? null,
      lastAppliedVersion: p?.lastHlc ? formatStamp(p.lastHlc) : null,
      lastAppliedAt: p?.lastAppliedAt?.toISOString() ?? null,
    };
  });
}

export async function readStatus(deps: StatusDeps): Promise<RegionStatus> {
  const [progress, outbox, conflicts, deadLetters, quarantined, gaps] = await Promise.all([
    readProgress(deps.pool),
    outboxBacklog(deps.pool),
    countConflicts(deps.pool),
    countDeadLetters(deps.pool),
    countDeadLettersWithCode(deps.pool, DeadLetterCode.Quarantined),
    openReplicationGaps(deps.pool),
  ]);
  const now = Date.now();
  const live = deps.live();
  return {
    region: deps.region,
    roles: deps.roles,
    time: new Date(now).toISOString(),
    peers: peerStatuses(deps.peerRegions(), progress, deps, now),
    brokerLink: live.brokerLink,
    outbox,
    relay: live.relay,
    messageLimit: live.messageLimit,
    applier: live.applier,
    antiEntropy: live.antiEntropy ?? null,
    conflicts,
    deadLetters,
    quarantined,
    replication: replicationCompleteness(gaps),
  };
}
