/**
 * Watermarks: how far this region has applied each origin's changes, correct across partitions, and
 * what follows from them — per-origin progress, the settled mark anti-entropy compares under and the
 * horizon every region has acknowledged for tombstone GC. Pure: the queries that store and read
 * these live in shared/db/queries (peerPartitionProgress, peerReport, peerProgress, gcState,
 * gcAckSample, pgStatActivity).
 *
 * Each origin sends heartbeats to every partition of its topic with a `safeBefore` mark: every
 * change it wrote with a stamp wall below the mark was published to that partition before the
 * heartbeat. Kafka keeps order within a partition and the applier commits a heartbeat with the
 * batch it came in, so once the marks of all partitions are past a stamp, every change of that
 * origin up to the stamp is applied here. The watermark is the minimum over the partitions.
 */
import { formatStamp, type HlcStamp } from './hlc.js';
import type { PolicyMap } from './mergePolicy.js';

/** One partition's newest mark from one origin. */
export interface PartitionMark {
  readonly origin: string;
  readonly partition: number;
  readonly partitions: number;
  readonly safeBefore: number;
  readonly sentAt: Date;
}

/** A peer's acknowledgements (its applied watermarks per origin) and policies, from its heartbeats. */
export interface PeerReport {
  readonly reporter: string;
  readonly watermarks: Readonly<Record<string, number>>;
  readonly policies: PolicyMap;
  readonly sentAt: Date;
}

/** What one applied batch adds to an origin's progress. */
export interface ProgressUpdate {
  readonly origin: string;
  /** Events applied in this batch (duplicates included). */
  readonly events: number;
  readonly lastEventId?: string | undefined;
  /** Greatest change stamp applied in this batch. */
  readonly maxHlc?: HlcStamp | undefined;
  /** Origin's send time of the newest heartbeat in this batch. */
  readonly heartbeatSentAt?: Date | undefined;
  /** Apply time minus origin write time of the newest change in this batch. */
  readonly lagMs?: number | undefined;
}

/** What a heartbeat carries besides its stamp (the heartbeat event on the wire adds the stamp). */
export interface HeartbeatMarks {
  readonly origin: string;
  /** Origin's wall clock (ms) when the heartbeat was sent. */
  readonly sentAt: number;
  /** The partition this copy was sent to, and how many the origin's topic has (sent to each). */
  readonly partition?: number;
  readonly partitions?: number;
  /**
   * Every change the origin wrote with a stamp wall below this (ms) was published to this
   * partition before this heartbeat.
   */
  readonly safeBefore?: number;
  /** The origin's applied watermarks per peer origin (ms): acknowledgements for tombstone GC. */
  readonly watermarks?: Readonly<Record<string, number>>;
  /** The origin's merge policies (collection → policy, lww omitted). */
  readonly policies?: PolicyMap;
}

/** What the progress fold reads of an applied change (a change event has all of it). */
export interface AppliedChange {
  readonly origin: string;
  readonly hlc: HlcStamp;
  /** Origin's wall clock (ms) when the change was written. */
  readonly writtenAt: number;
}

/** Each (origin, partition)'s highest mark among `heartbeats`; heartbeats without a mark are skipped. */
export function foldPartitionMarks(heartbeats: readonly HeartbeatMarks[]): PartitionMark[] {
  const marks = new Map<string, PartitionMark>();
  for (const h of heartbeats) {
    if (h.partition === undefined || h.partitions === undefined || h.safeBefore === undefined) continue;
    const id = `${h.origin}/${h.partition}`;
    const prev = marks.get(id);
    if (prev === undefined || h.safeBefore > prev.safeBefore) {
      marks.set(id, {
        origin: h.origin,
        partition: h.partition,
        partitions: h.partitions,
        safeBefore: h.safeBefore,
        sentAt: new Date(h.sentAt),
      });
    }
  }
  return [...marks.values()];
}

/**
 * origin → applied watermark (ms) from each partition's mark (one per origin and partition, as
 * stored): the least mark, for origins whose every partition has reported; others are absent. A
 * topic that grew counts as fully reported only once the added partitions have reported too.
 */
export function foldAppliedWatermarks(
  marks: readonly Pick<PartitionMark, 'origin' | 'partitions' | 'safeBefore'>[],
): Map<string, number> {
  const byOrigin = new Map<string, { reported: number; partitions: number; least: number }>();
  for (const m of marks) {
    const o = byOrigin.get(m.origin);
    if (o === undefined)
      byOrigin.set(m.origin, { reported: 1, partitions: m.partitions, least: m.safeBefore });
    else {
      o.reported += 1;
      o.partitions = Math.max(o.partitions, m.partitions);
      o.least = Math.min(o.least, m.safeBefore);
    }
  }
  const watermarks = new Map<string, number>();
  for (const [origin, o] of byOrigin) if (o.reported >= o.partitions) watermarks.set(origin, o.least);
  return watermarks;
}

/** Each origin's newest report among `heartbeats`; heartbeats without acknowledgements are skipped. */
export function foldPeerReports(heartbeats: readonly HeartbeatMarks[]): PeerReport[] {
  const reports = new Map<string, PeerReport>();
  for (const h of heartbeats) {
    if (h.watermarks === undefined || h.policies === undefined) continue;
    const prev = reports.get(h.origin);
    if (prev === undefined || h.sentAt > prev.sentAt.getTime()) {
      reports.set(h.origin, {
        reporter: h.origin,
        watermarks: h.watermarks,
        policies: h.policies,
        sentAt: new Date(h.sentAt),
      });
    }
  }
  return [...reports.values()];
}

/** Per origin, what the changes and heartbeats of one batch applied at `appliedAt` (ms) add to its progress. */
export function foldProgress(
  changes: readonly AppliedChange[],
  heartbeats: readonly HeartbeatMarks[],
  appliedAt: number,
): ProgressUpdate[] {
  const byOrigin = new Map<
    string,
    { events: number; last?: AppliedChange; maxWritten?: number; maxHlc?: HlcStamp; hb?: number }
  >();
  const entry = (origin: string) => {
    let e = byOrigin.get(origin);
    if (!e) byOrigin.set(origin, (e = { events: 0 }));
    return e;
  };
  for (const c of changes) {
    const e = entry(c.origin);
    e.events += 1;
    e.last = c;
    if (
      e.maxHlc === undefined ||
      c.hlc.wall > e.maxHlc.wall ||
      (c.hlc.wall === e.maxHlc.wall && c.hlc.logical > e.maxHlc.logical)
    )
      e.maxHlc = c.hlc;
    e.maxWritten = Math.max(e.maxWritten ?? 0, c.writtenAt);
  }
  for (const h of heartbeats) {
    const e = entry(h.origin);
    e.events += 1;
    e.hb = Math.max(e.hb ?? 0, h.sentAt);
  }
  return [...byOrigin.entries()].map(([origin, e]) => ({
    origin,
    events: e.events,
    lastEventId: e.last === undefined ? undefined : formatStamp(e.last.hlc),
    maxHlc: e.maxHlc,
    heartbeatSentAt: e.hb === undefined ? undefined : new Date(e.hb),
    lagMs: e.maxWritten === undefined ? undefined : Math.max(0, appliedAt - e.maxWritten),
  }));
}

/**
 * Below which stamp wall this region holds every write of every origin: its own writes below its
 * safe-before mark `ownSafeBeforeMs` (no transaction that could still commit one is older), each
 * peer's below its applied watermark — 0 while a peer has not reported on every partition.
 */
export function computeSettledBefore(
  ownSafeBeforeMs: number,
  watermarks: ReadonlyMap<string, number>,
  peerRegions: readonly string[],
): number {
  let settled = ownSafeBeforeMs;
  for (const peer of peerRegions) settled = Math.min(settled, watermarks.get(peer) ?? 0);
  return Math.max(0, settled);
}

/**
 * What every region has acknowledged, for tombstone GC.
 *
 * Acknowledgements are watermarks: this region's own, per peer origin, and each peer's, reported in
 * its heartbeats. The acknowledged horizon is the least of them all: below it every region has
 * applied every change of every origin. The maintenance job samples it and collects tombstones
 * below the horizon acknowledged at least a grace period ago.
 *
 * Anything missing blocks collection: a peer never heard from, a watermark not yet established, a
 * peer whose last heartbeat is older than the suspect threshold or the grace period (a cut link, a
 * stopped region). While blocked, no tombstone is collected at all.
 */
export interface AckHorizon {
  /** Every region has applied every change stamped below this (ms); null when blocked. */
  readonly acknowledgedMs: number | null;
  /** Why collection is blocked, or null. */
  readonly blockedBy: string | null;
}

export interface AckHorizonInput {
  readonly region: string;
  readonly peerRegions: readonly string[];
  readonly graceMs: number;
  /** A peer silent for longer than this (or the grace period) blocks collection. */
  readonly peerSuspectAfterMs: number;
  /** This region's applied watermarks, origin → ms. */
  readonly watermarks: ReadonlyMap<string, number>;
  /** Every peer's newest report. */
  readonly reports: readonly PeerReport[];
  readonly now: number;
}

/** The horizon every region has acknowledged (see {@link AckHorizon}), or why there is none. */
export function computeAckHorizon(o: AckHorizonInput): AckHorizon {
  const now = o.now;
  const blocked = (why: string): AckHorizon => ({ acknowledgedMs: null, blockedBy: why });
  const regions = [o.region, ...o.peerRegions];
  const marks: number[] = [];
  const local = o.watermarks;
  for (const origin of o.peerRegions) {
    const w = local.get(origin);
    if (w === undefined) return blocked(`${o.region} has not yet established a watermark for ${origin}`);
    marks.push(w);
  }
  const reports = o.reports;
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
