/** What `/v1/status` reports: this region, its peers and its pipeline. */
import type pg from 'pg';
import { formatStamp } from '../../../shared/domain/hlc.js';
import { countConflicts } from '../../../shared/db/queries/conflict.js';
import { countDeadLetters } from '../../../shared/db/queries/deadLetter.js';
import { outboxBacklog, type OutboxBacklog } from '../../../shared/db/queries/outbox.js';
import { readProgress } from '../../../shared/db/queries/peerProgress.js';

export const PeerState = { Up: 'up', Suspect: 'suspect', Down: 'down' } as const;
export type PeerState = (typeof PeerState)[keyof typeof PeerState];

export interface StatusDeps {
  readonly pool: pg.Pool;
  readonly region: string;
  readonly peerRegions: readonly string[];
  readonly roles: readonly string[];
  readonly peerSuspectAfterMs: number;
  readonly peerDownAfterMs: number;
  /** Live state of this process's components, when it runs them. */
  readonly components: () => Readonly<Record<string, unknown>>;
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
  readonly outbox: OutboxBacklog;
  readonly conflicts: number;
  readonly deadLetters: number;
  readonly components: Readonly<Record<string, unknown>>;
}

export async function readStatus(deps: StatusDeps): Promise<RegionStatus> {
  const [progress, outbox, conflicts, deadLetters] = await Promise.all([
    readProgress(deps.pool),
    outboxBacklog(deps.pool),
    countConflicts(deps.pool),
    countDeadLetters(deps.pool),
  ]);
  const now = Date.now();
  const peers = deps.peerRegions.map((region): PeerStatus => {
    const p = progress.find((x) => x.origin === region);
    const age = p?.heartbeatSentAt ? Math.max(0, now - p.heartbeatSentAt.getTime()) : null;
    const state =
      age === null || age > deps.peerDownAfterMs ? PeerState.Down : age > deps.peerSuspectAfterMs ? PeerState.Suspect : PeerState.Up;
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
  return {
    region: deps.region,
    roles: deps.roles,
    time: new Date(now).toISOString(),
    peers,
    outbox,
    conflicts,
    deadLetters,
    components: deps.components(),
  };
}
