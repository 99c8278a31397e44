/**
 * Each peer's state as `/v1/status` and the metrics show it: `down` with lag `null`, never 0, for a
 * peer never heard from; `suspect`, then `down`, as its newest heartbeat ages.
 */
import { formatStamp } from '../domain/hlc.js';
import type { PeerProgress } from '../db/queries/peerProgress.js';

export const PeerState = { Up: 'up', Suspect: 'suspect', Down: 'down' } as const;
export type PeerState = (typeof PeerState)[keyof typeof PeerState];

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
