/**
 * What every region has acknowledged, for tombstone GC.
 *
 * Acknowledgements are watermarks (shared/db/queries/watermark.ts): this region's own, per peer
 * origin, and each peer's, reported in its heartbeats. The acknowledged horizon is the least of
 * them all: below it every region has applied every change of every origin. The maintenance job
 * samples it and collects tombstones below the horizon acknowledged at least a grace period ago.
 *
 * Anything missing blocks collection: a peer never heard from, a watermark not yet established, a
 * peer whose last heartbeat is older than the suspect threshold or the grace period (a cut link, a
 * stopped region). While blocked, no tombstone is collected at all.
 */
import type { Queryable } from '../../shared/db/pool.js';
import { appliedWatermarks, readPeerReports } from '../../shared/db/queries/watermark.js';

export interface AckHorizon {
  /** Every region has applied every change stamped below this (ms); null when blocked. */
  readonly acknowledgedMs: number | null;
  /** Why collection is blocked, or null. */
  readonly blockedBy: string | null;
}

export interface AckHorizonOptions {
  readonly region: string;
  readonly peerRegions: readonly string[];
  readonly graceMs: number;
  /** A peer silent for longer than this (or the grace period) blocks collection. */
  readonly peerSuspectAfterMs: number;
  readonly now?: number;
}

export async function computeAckHorizon(q: Queryable, o: AckHorizonOptions): Promise<AckHorizon> {
  const now = o.now ?? Date.now();
  const blocked = (why: string): AckHorizon => ({ acknowledgedMs: null, blockedBy: why });
  const regions = [o.region, ...o.peerRegions];
  const marks: number[] = [];
  const local = await appliedWatermarks(q);
  for (const origin of o.peerRegions) {
    const w = local.get(origin);
    if (w === undefined) return blocked(`${o.region} has not yet established a watermark for ${origin}`);
    marks.push(w);
  }
  const reports = await readPeerReports(q);
  const silenceLimit = Math.min(o.graceMs, o.peerSuspectAfterMs);
  for (const peer of o.peerRegions) {
    const report = reports.find((r) => r.reporter === peer);
    if (report === undefined) return blocked(`no heartbeat report from ${peer} yet`);
    const silentMs = now - report.sentAt.getTime();
    if (silentMs > silenceLimit)
      return blocked(`${peer} has been silent for ${(silentMs / 1000).toFixed(1)} s`);
    for (const origin of regions) {
      if (origin === peer) continue;
      const w = report.watermarks[origin];
      if (w === undefined) return blocked(`${peer} has not yet acknowledged changes from ${origin}`);
      marks.push(w);
    }
  }
  return { acknowledgedMs: marks.length === 0 ? now : Math.min(...marks), blockedBy: null };
}
