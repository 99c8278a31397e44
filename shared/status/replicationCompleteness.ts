/** Whether this region still holds every peer event, as `/v1/status` and the metrics show it. */
import type { ReplicationGap } from '../db/queries/replicationGap.js';

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
