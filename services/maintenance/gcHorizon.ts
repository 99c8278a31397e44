/**
 * The tombstone-GC cutoff: a tombstone may be removed only when every region has acknowledged
 * applying it and the grace period has passed.
 *
 * Acknowledgements are watermarks (shared/db/queries/watermark.ts): this region's own, per peer
 * origin, and each peer's, reported in its heartbeats. The horizon is the least of them all: below
 * it every region has applied every change of every origin. The cutoff is the horizon or
 * `now − grace`, whichever is earlier. Anything missing — a peer never heard from, a watermark not
 * yet established, a peer silent for longer than the grace period — blocks collection.
 */
import type { Queryable } from '../../shared/db/pool.js';
import { appliedWatermarks, readPeerReports } from '../../shared/db/queries/watermark.js';

export interface GcCutoff {
  /** Tombstones with a stamp wall below this (ms) may be collected; null when blocked. */
  readonly cutoffMs: number | null;
  /** The acknowledged horizon before the grace period is applied; null when blocked. */
  readonly acknowledgedMs: number | null;
  /** Why collection is blocked, or null. */
  readonly blockedBy: string | null;
}

export interface GcCutoffOptions {
  readonly region: string;
  readonly peerRegions: readonly string[];
  readonly graceMs: number;
  readonly now?: number;
}

export async function computeGcCutoff(q: Queryable, o: GcCutoffOptions): Promise<GcCutoff> {
  const now = o.now ?? Date.now();
  const blocked = (why: string): GcCutoff => ({ cutoffMs: null, acknowledgedMs: null, blockedBy: why });
  const regions = [o.region, ...o.peerRegions];
  const marks: number[] = [];
  const local = await appliedWatermarks(q);
  for (const origin of o.peerRegions) {
    const w = local.get(origin);
    if (w === undefined) return blocked(`${o.region} has not yet established a watermark for ${origin}`);
    marks.push(w);
  }
  const reports = await readPeerReports(q);
  for (const peer of o.peerRegions) {
    const report = reports.find((r) => r.reporter === peer);
    if (report === undefined) return blocked(`no heartbeat report from ${peer} yet`);
    const silentMs = now - report.sentAt.getTime();
    if (silentMs > o.graceMs) return blocked(`${peer} has been silent for ${Math.round(silentMs / 1000)} s, longer than the grace period`);
    for (const origin of regions) {
      if (origin === peer) continue;
      const w = report.watermarks[origin];
      if (w === undefined) return blocked(`${peer} has not yet acknowledged changes from ${origin}`);
      marks.push(w);
    }
  }
  const acknowledged = marks.length === 0 ? now : Math.min(...marks);
  return { cutoffMs: Math.min(acknowledged, now - o.graceMs), acknowledgedMs: acknowledged, blockedBy: null };
}
