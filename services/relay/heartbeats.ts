/**
 * Heartbeats, sent by the relay to every partition of this region's topic. They travel the same
 * relay → Kafka → apply path as data and are sent only once the outbox is drained, so a peer's
 * heartbeat age is the honest end-to-end replication lag: it grows with a backlog, a cut link or a
 * stopped relay, and is never reported as zero for a peer not heard from.
 *
 * Each copy carries a `safeBefore` mark (see shared/domain/watermark.ts): all changes this
 * region wrote below it were published to that partition before the heartbeat. Peers derive from
 * the marks of all partitions how far they have applied this region's changes — what session
 * tokens wait for and tombstone GC is acknowledged with. Heartbeats also carry this region's own
 * applied watermarks (the acknowledgements) and its merge policies.
 *
 * Cadence: every `heartbeatIntervalMs` when idle, and at most every `markIntervalMs` after data was
 * published, so a session read elsewhere waits about one replication lag, not a heartbeat period.
 */
import { type HybridLogicalClock } from '../../shared/domain/hlc.js';
import type { PolicyMap } from '../../shared/domain/mergePolicy.js';
import { appliedWatermarks } from '../../shared/db/queries/peerPartitionProgress.js';
import type { Queryable } from '../../shared/db/pool.js';
import { encodeEvent, type HeartbeatEvent } from '../../shared/kafka/envelope.js';
import type { OutgoingMessage } from '../../shared/kafka/publisher.js';
import { heartbeatMessageKey } from '../../shared/kafka/topics.js';

export interface HeartbeatsOptions {
  readonly clock: HybridLogicalClock;
  readonly region: string;
  /** Idle heartbeat period; 0 disables heartbeats. */
  readonly heartbeatIntervalMs: number;
  /** Least gap between heartbeats sent after data. */
  readonly markIntervalMs: number;
  /** Subtracted from `safeBefore` for clock differences between this region's hosts. */
  readonly marginMs: number;
  readonly policies: PolicyMap;
  /** Partitions of this region's topic; undefined until known (no heartbeats until then). */
  readonly partitions: () => number | undefined;
}

export class Heartbeats {
  private lastSentAt = 0;
  /** Greatest stamp wall of published data that no sent heartbeat's mark covers yet. */
  private uncoveredWall: number | undefined;
  private lastSafeBefore: number | undefined;

  constructor(readonly options: HeartbeatsOptions) {}

  /** Cheap check before a relay pass: could a heartbeat go out with it? */
  mayBeDue(now = Date.now()): boolean {
    const { heartbeatIntervalMs, markIntervalMs } = this.options;
    if (heartbeatIntervalMs <= 0 || this.options.partitions() === undefined) return false;
    const since = now - this.lastSentAt;
    return since >= heartbeatIntervalMs || since >= markIntervalMs;
  }

  /** A pass claimed data whose greatest stamp wall is `maxWall` (called on every pass with data). */
  noteClaimed(maxWall: number | undefined): void {
    if (maxWall !== undefined) this.uncoveredWall = Math.max(this.uncoveredWall ?? 0, maxWall);
  }

  /**
   * The heartbeat copies to publish with this pass, or none. `drained`: the pass claimed every
   * committed row; `safeBefore` was read before the claim.
   */
  async build(client: Queryable, pass: { drained: boolean; safeBefore: number }): Promise<OutgoingMessage[]> {
    const partitions = this.options.partitions();
    if (!pass.drained || partitions === undefined) return [];
    const since = Date.now() - this.lastSentAt;
    const due =
      since >= this.options.heartbeatIntervalMs ||
      (this.uncoveredWall !== undefined && since >= this.options.markIntervalMs);
    if (!due) return [];
    const watermarks = Object.fromEntries(await appliedWatermarks(client));
    const { clock, region, policies, marginMs } = this.options;
    const safeBefore = pass.safeBefore - marginMs;
    this.lastSafeBefore = safeBefore;
    const base = {
      v: 1,
      type: 'heartbeat',
      origin: region,
      hlc: clock.now(),
      sentAt: Date.now(),
      partitions,
      safeBefore,
      watermarks,
      policies,
    } as const;
    return Array.from({ length: partitions }, (_, partition) => {
      const event: HeartbeatEvent = { ...base, partition };
      return { key: heartbeatMessageKey(region), value: encodeEvent(event), partition };
    });
  }

  /** The heartbeats built for a pass were acknowledged by the broker. */
  sent(at = Date.now()): void {
    this.lastSentAt = at;
    // A write whose transaction was still open when the mark was read is not covered: keep
    // sending marks after data until one is past it.
    if (
      this.uncoveredWall !== undefined &&
      this.lastSafeBefore !== undefined &&
      this.lastSafeBefore > this.uncoveredWall
    ) {
      this.uncoveredWall = undefined;
    }
  }
}
