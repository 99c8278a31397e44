/**
 * The consistency part of `/v1/status`: merge policies (and where peers differ), applied
 * watermarks per origin, tombstones and the GC horizon.
 */
import type pg from 'pg';
import { policyDifferences, policyFingerprint, type PolicyMap } from '../../../shared/domain/mergePolicy.js';
import { tombstoneStats } from '../../../shared/db/queries/item.js';
import { agedAckHorizon } from '../../../shared/db/queries/gcAckSample.js';
import { readGcState } from '../../../shared/db/queries/gcState.js';
import { appliedWatermarks } from '../../../shared/db/queries/peerPartitionProgress.js';
import { readPeerReports } from '../../../shared/db/queries/peerReport.js';
import { computeAckHorizon } from '../../../shared/domain/watermark.js';

export interface ConsistencyDeps {
  readonly pool: pg.Pool;
  readonly region: string;
  /** The peer regions now (membership can change while the region runs). */
  readonly peerRegions: () => readonly string[];
  readonly policies: PolicyMap;
  readonly tombstoneGraceMs: number;
  readonly peerSuspectAfterMs: number;
}

export async function readConsistency(deps: ConsistencyDeps) {
  const peerRegions = deps.peerRegions();
  const now = Date.now();
  const [reports, watermarks, tombstones, gcState, aged] = await Promise.all([
    readPeerReports(deps.pool),
    appliedWatermarks(deps.pool),
    tombstoneStats(deps.pool),
    readGcState(deps.pool),
    agedAckHorizon(deps.pool, deps.tombstoneGraceMs),
  ]);
  const ack = computeAckHorizon({
    region: deps.region,
    peerRegions,
    graceMs: deps.tombstoneGraceMs,
    peerSuspectAfterMs: deps.peerSuspectAfterMs,
    watermarks,
    reports,
    now,
  });
  const iso = (ms: number | null | undefined) =>
    ms === null || ms === undefined || ms <= 0 ? null : new Date(ms).toISOString();
  return {
    policies: {
      collections: deps.policies,
      fingerprint: policyFingerprint(deps.policies),
      peers: Object.fromEntries(
        peerRegions.map(
          (peer): [string, { fingerprint: string | null; differingCollections: string[] | null }] => {
            const report = reports.find((r) => r.reporter === peer);
            if (report === undefined) return [peer, { fingerprint: null, differingCollections: null }];
            const differing = policyDifferences(deps.policies, report.policies);
            return [
              peer,
              { fingerprint: policyFingerprint(report.policies), differingCollections: differing },
            ];
          },
        ),
      ),
    },
    /** Per origin: every change it wrote before this instant has been applied here. */
    appliedThrough: Object.fromEntries(peerRegions.map((o) => [o, iso(watermarks.get(o))])),
    tombstones: {
      count: tombstones.count,
      oldestVersionAt: iso(tombstones.oldestWallMs),
      graceMs: deps.tombstoneGraceMs,
      gcHorizon: iso(gcState.horizonMs),
      acknowledgedThrough: iso(ack.acknowledgedMs),
      nextCutoff: ack.blockedBy === null ? iso(aged) : null,
      gcBlockedBy: ack.blockedBy,
      collected: gcState.collected,
      lastGcRunAt: gcState.lastRunAt?.toISOString() ?? null,
    },
  };
}
