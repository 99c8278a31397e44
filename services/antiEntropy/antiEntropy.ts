/**
 * Digest anti-entropy (docs/anti-entropy.md): find and mend divergence between this region and its
 * peers without rescanning the item table.
 *
 * Every round (`intervalMs`):
 * 1. read how far this region is settled (its own safe-before mark and its applied watermark of
 *    every peer), then its bucket digests (kept by triggers, migration 0008), and publish them as a
 *    `digest` event through the outbox — signed by the relay like every event;
 * 2. compare them with each peer's newest digest, bucket by bucket, where both sides had settled
 *    every write of the bucket ({@link compareDigests}): a difference there is divergence, not
 *    replication in flight;
 * 3. for each divergent bucket, publish this region's items of it with their digests
 *    (`bucket-keys`, at most once per bucket per `bucketKeysCooldownMs`);
 * 4. for each peer's `bucket-keys` list received, republish this region's stored version of every
 *    key whose digest differs or that the peer lacks ({@link keysToRepublish}), unchanged, as a
 *    `repair` event through the outbox; the peer's applier merges it like any change.
 *
 * Both sides do 3 and 4, so a key damaged in one region is republished at most twice (once by
 * each side) and a key missing in one region once.
 */
import { EventEmitter } from 'node:events';
import type pg from 'pg';
import { IntervalTask } from '../../shared/lifecycle/intervalTask.js';
import {
  DIGEST_BUCKETS,
  compareDigests,
  digestHex,
  keysToRepublish,
  type RegionDigest,
} from '../../shared/domain/digest.js';
import type { HybridLogicalClock } from '../../shared/domain/hlc.js';
import { computeSettledBefore } from '../../shared/domain/watermark.js';
import {
  countSuspects,
  queueDigestEvent,
  readBucketItems,
  readOwnDigest,
  readPeerDigests,
  takePeerBucketKeys,
} from '../../shared/db/queries/digest.js';
import { findItems } from '../../shared/db/queries/item.js';
import { insertOutbox } from '../../shared/db/queries/outbox.js';
import { readGcState } from '../../shared/db/queries/gcState.js';
import { appliedWatermarks } from '../../shared/db/queries/peerPartitionProgress.js';
import { safeBeforeMs } from '../../shared/db/queries/pgStatActivity.js';
import { withTransaction } from '../../shared/db/withTransaction.js';
import type { BucketKeysEvent, DigestEvent, RepairEvent } from '../../shared/kafka/envelope.js';
import { itemMessageKey } from '../../shared/kafka/topics.js';
import type { Logger } from '../../shared/logging/logger.js';
import type { AntiEntropySnapshot, PeerComparison } from '../../shared/status/liveStatus.js';

/** Peer `bucket-keys` lists handled per round at most (the rest wait for the next round). */
const LISTS_PER_ROUND = 200;
/** Divergent buckets whose items are published per round at most. */
const BUCKET_LISTS_SENT_PER_ROUND = 200;

export interface AntiEntropyOptions {
  readonly pool: pg.Pool;
  readonly clock: HybridLogicalClock;
  readonly region: string;
  /** The peer regions now (membership can change while the region runs). */
  readonly peerRegions: () => readonly string[];
  /** Round period; 0 disables the timer (runOnce still works). */
  readonly intervalMs: number;
  /** Subtracted from this region's safe-before mark (clock differences between its hosts). */
  readonly marginMs: number;
  /** Least time between two `bucket-keys` lists of one bucket. @default 5 × intervalMs, at least 5 s */
  readonly bucketKeysCooldownMs?: number;
  /** The largest event this region may publish (bytes): a bigger `bucket-keys` list is skipped, loudly. */
  readonly maxEventBytes: () => number;
  /** Called after a round committed outbox rows (wakes the relay). */
  readonly onCommitted?: () => void;
  readonly log: Logger;
}

export interface RoundReport {
  readonly settledBefore: number;
  readonly comparisons: readonly PeerComparison[];
  readonly newlyDivergent: number;
  readonly repaired: number;
  readonly bucketListsSent: number;
  readonly keysRepublished: number;
}

export interface AntiEntropyEvents {
  /** One round done. */
  round: [report: RoundReport];
  /** A bucket found divergent with `peer` (not seen divergent before). */
  divergent: [d: { peer: string; bucket: number }];
  /** A divergent bucket found equal again, `afterMs` after it was first found divergent. */
  repaired: [r: { peer: string; bucket: number; afterMs: number }];
  /** Versions republished for a peer's bucket list. */
  republished: [r: { peer: string; bucket: number; keys: number }];
}

export class AntiEntropy extends EventEmitter<AntiEntropyEvents> {
  /** The round every `intervalMs` (0: no timer; runOnce still works). */
  private readonly task: IntervalTask;

  /** peer → bucket → when first found divergent (ms). */
  private readonly divergentSince = new Map<string, Map<number, number>>();
  /** bucket → when its item list was last published (ms). */
  private readonly listSentAt = new Map<number, number>();
  private counters = {
    rounds: 0,
    bucketsCompared: 0,
    bucketsDivergent: 0,
    bucketsRepaired: 0,
    bucketListsSent: 0,
    keysRepublished: 0,
    bucketListsTooLarge: 0,
  };
  private lastRoundAt: number | null = null;
  private suspectRows = 0;
  /** The outbox row of the digest queued by the last round (replaced if still unpublished). */
  private queuedDigestId: string | undefined;
  private lastComparisons: PeerComparison[] = [];

  constructor(private readonly options: AntiEntropyOptions) {
    super();
    this.task = new IntervalTask({
      intervalMs: options.intervalMs,
      run: () => this.runOnce(),
      log: options.log,
      failure: 'anti-entropy round failed',
    });
  }

  start(): void {
    this.task.start();
  }

  async stop(): Promise<void> {
    await this.task.stop();
  }

  snapshot(): AntiEntropySnapshot {
    let divergentNow = 0;
    for (const m of this.divergentSince.values()) divergentNow += m.size;
    return {
      intervalMs: this.options.intervalMs,
      ...this.counters,
      lastRoundAt: this.lastRoundAt === null ? null : new Date(this.lastRoundAt).toISOString(),
      divergentNow,
      suspectRows: this.suspectRows,
      peers: this.lastComparisons,
    };
  }

  /** One round (the deterministic step tests drive). */
  async runOnce(): Promise<RoundReport> {
    const { pool, region, log } = this.options;
    const report = await withTransaction(pool, async (client) => {
      // Settledness first, then the digest: every write below the mark is in the digest read after.
      const settledBefore = await this.settledBefore(client);
      const own = await readOwnDigest(client);
      const gcHorizon = (await readGcState(client)).horizonMs;
      const ownDigest: RegionDigest = { digests: own.digests, maxWalls: own.maxWalls, settledBefore };
      const now = Date.now();
      const digestEvent: DigestEvent = {
        v: 1,
        type: 'digest',
        origin: region,
        hlc: this.options.clock.now(),
        sentAt: now,
        settledBefore,
        gcHorizon,
        digests: own.digests.map(digestHex),
        maxWalls: own.maxWalls,
      };
      this.queuedDigestId = await queueDigestEvent(
        client,
        `_digest/${region}`,
        JSON.stringify(digestEvent),
        this.queuedDigestId,
      );

      // Compare with each peer's newest digest.
      const peers = new Map((await readPeerDigests(client)).map((p) => [p.reporter, p]));
      const comparisons: PeerComparison[] = [];
      const toList = new Set<number>();
      let newlyDivergent = 0;
      let repaired = 0;
      for (const peer of this.options.peerRegions()) {
        const theirs = peers.get(peer);
        if (theirs === undefined) {
          comparisons.push({
            peer,
            digestSentAt: null,
            compared: 0,
            unsettled: DIGEST_BUCKETS,
            divergent: [],
            divergentCount: 0,
          });
          continue;
        }
        const c = compareDigests(ownDigest, theirs);
        this.counters.bucketsCompared += c.compared.length;
        let since = this.divergentSince.get(peer);
        if (since === undefined) this.divergentSince.set(peer, (since = new Map<number, number>()));
        const divergent = new Set(c.divergent);
        for (const bucket of c.compared) {
          const first = since.get(bucket);
          if (divergent.has(bucket)) {
            toList.add(bucket);
            if (first === undefined) {
              since.set(bucket, now);
              newlyDivergent += 1;
              this.counters.bucketsDivergent += 1;
              this.emit('divergent', { peer, bucket });
            }
          } else if (first !== undefined) {
            since.delete(bucket);
            repaired += 1;
            this.counters.bucketsRepaired += 1;
            this.emit('repaired', { peer, bucket, afterMs: now - first });
          }
        }
        comparisons.push({
          peer,
          digestSentAt: theirs.sentAt.toISOString(),
          compared: c.compared.length,
          unsettled: c.unsettled,
          divergent: c.divergent.slice(0, 50),
          divergentCount: c.divergent.length,
        });
      }

      // Narrow divergent buckets down: publish this region's items of each.
      const cooldown = this.options.bucketKeysCooldownMs ?? Math.max(5000, 5 * this.options.intervalMs);
      let bucketListsSent = 0;
      for (const bucket of toList) {
        if (bucketListsSent >= BUCKET_LISTS_SENT_PER_ROUND) break;
        const last = this.listSentAt.get(bucket);
        if (last !== undefined && now - last < cooldown) continue;
        const items = await readBucketItems(client, bucket);
        const event: BucketKeysEvent = {
          v: 1,
          type: 'bucket-keys',
          origin: region,
          hlc: this.options.clock.now(),
          sentAt: now,
          gcHorizon,
          bucket,
          keys: items.map((i) => [i.collection, i.key, digestHex(i.digest)] as const),
        };
        const payload = JSON.stringify(event);
        this.listSentAt.set(bucket, now);
        if (Buffer.byteLength(payload) > this.options.maxEventBytes()) {
          this.counters.bucketListsTooLarge += 1;
          log.error(
            { bucket, items: items.length, bytes: Buffer.byteLength(payload) },
            'anti-entropy: the items of a divergent bucket do not fit one event: not narrowed down (raise KAFKA_MESSAGE_MAX_BYTES)',
          );
          continue;
        }
        await insertOutbox(client, `_digest/${region}`, payload);
        bucketListsSent += 1;
      }
      this.counters.bucketListsSent += bucketListsSent;

      // Answer peers' lists: republish this region's versions of the keys that differ.
      let keysRepublished = 0;
      for (const list of await takePeerBucketKeys(client, LISTS_PER_ROUND)) {
        const own = await readBucketItems(client, list.bucket);
        const differing = keysToRepublish(own, list.keys, list.gcHorizon);
        if (differing.length === 0) continue;
        const stored = await findItems(client, differing);
        for (const item of stored.values()) {
          const event: RepairEvent = {
            v: 1,
            type: 'repair',
            origin: region,
            collection: item.collection,
            key: item.key,
            value: item.deleted ? null : item.value,
            deleted: item.deleted,
            hlc: item.hlc,
            vv: item.vv,
            writtenAt: now,
            ...(item.policy === 'lww' ? {} : { policy: item.policy }),
            ...(item.crdt === undefined ? {} : { crdt: item.crdt }),
          };
          await insertOutbox(client, itemMessageKey(item.collection, item.key), JSON.stringify(event));
        }
        keysRepublished += stored.size;
        this.emit('republished', { peer: list.reporter, bucket: list.bucket, keys: stored.size });
      }
      this.counters.keysRepublished += keysRepublished;
      this.suspectRows = await countSuspects(client);
      return { settledBefore, comparisons, newlyDivergent, repaired, bucketListsSent, keysRepublished };
    });
    this.counters.rounds += 1;
    this.lastRoundAt = Date.now();
    this.lastComparisons = [...report.comparisons];
    this.options.onCommitted?.();
    if (report.newlyDivergent + report.repaired + report.keysRepublished > 0)
      log.info(
        {
          newlyDivergent: report.newlyDivergent,
          repaired: report.repaired,
          bucketListsSent: report.bucketListsSent,
          keysRepublished: report.keysRepublished,
        },
        'anti-entropy round',
      );
    this.emit('round', report);
    return report;
  }

  /** Below which stamp wall this region holds every write of every origin (see computeSettledBefore). */
  private async settledBefore(client: pg.PoolClient): Promise<number> {
    const own = await safeBeforeMs(client, this.options.marginMs);
    const marks = await appliedWatermarks(client);
    return computeSettledBefore(own, marks, this.options.peerRegions());
  }
}
