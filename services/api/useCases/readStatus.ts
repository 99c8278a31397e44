/**
 * What `/v1/status` reports: this region, its peers and its pipeline — honestly. A peer never heard
 * from is `down` with lag `null`, never 0; a cut broker link shows as `down` within a few seconds
 * (see shared/kafka/brokerLink.ts); backlog and lag keep growing while the link is cut.
 */
import type pg from 'pg';
import { countConflicts } from '../../../shared/db/queries/conflict.js';
import {
  DeadLetterCode,
  countDeadLetters,
  countDeadLettersWithCode,
} from '../../../shared/db/queries/deadLetter.js';
import { outboxBacklog, type OutboxBacklog } from '../../../shared/db/queries/outbox.js';
import { readLeaderPid } from '../../../shared/db/queries/pgStatActivity.js';
import { readProgress } from '../../../shared/db/queries/peerProgress.js';
import { openReplicationGaps } from '../../../shared/db/queries/replicationGap.js';
import type { BrokerLinkSnapshot } from '../../../shared/kafka/brokerLink.js';
import type {
  LeaderComponents,
  AntiEntropySnapshot,
  LiveComponents,
  MessageLimitSnapshot,
  ProcessSnapshot,
  RelaySnapshot,
} from '../../../shared/status/liveStatus.js';
import { peerStatuses, type PeerStatus } from '../../../shared/status/peerStatus.js';
import {
  replicationCompleteness,
  type ReplicationCompleteness,
} from '../../../shared/status/replicationCompleteness.js';

export interface StatusDeps {
  readonly pool: pg.Pool;
  readonly region: string;
  /** The peer regions now (membership can change while the region runs). */
  readonly peerRegions: () => readonly string[];
  readonly roles: readonly string[];
  readonly peerSuspectAfterMs: number;
  readonly peerDownAfterMs: number;
  /** `API_PROCESSES`: how many processes the region runs. */
  readonly apiProcesses: number;
  readonly live: () => LiveComponents;
  /**
   * The leader's relay and anti-entropy when another process leads (cluster workers; undefined: none
   * answered in time, or no other process). The relay and anti-entropy shown are then the leader's.
   */
  readonly leaderComponents?: () => Promise<LeaderComponents | undefined>;
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
  readonly antiEntropy: AntiEntropySnapshot | null;
  readonly conflicts: number;
  readonly deadLetters: number;
  /** Dead letters with code `quarantined`: peers' messages that failed authentication (never applied). */
  readonly quarantined: number;
  /** Whether this region still holds every peer event (see {@link ReplicationCompleteness}). */
  readonly replication: ReplicationCompleteness;
  /**
   * The region's processes: how many it runs (`API_PROCESSES`), which one leads (its pid, from the
   * leader lock; null while none holds it), and the one that answered.
   */
  readonly processes: {
    readonly configured: number;
    readonly leaderPid: number | null;
    readonly answeredBy: ProcessSnapshot;
  };
}

export async function readStatus(deps: StatusDeps): Promise<RegionStatus> {
  // Asked beside the database reads (the answer is the leader's own, whichever process answers).
  const fromLeader = deps.live().process.leader ? undefined : deps.leaderComponents?.();
  const [progress, outbox, conflicts, deadLetters, quarantined, gaps, leaderPid] = await Promise.all([
    readProgress(deps.pool),
    outboxBacklog(deps.pool),
    countConflicts(deps.pool),
    countDeadLetters(deps.pool),
    countDeadLettersWithCode(deps.pool, DeadLetterCode.Quarantined),
    openReplicationGaps(deps.pool),
    readLeaderPid(deps.pool),
  ]);
  const leader = await fromLeader;
  const own = deps.live();
  const live = leader === undefined ? own : { ...own, relay: leader.relay, antiEntropy: leader.antiEntropy };
  const now = Date.now();
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
    processes: { configured: deps.apiProcesses, leaderPid, answeredBy: live.process },
  };
}
