/**
 * Where a region joining (or re-bootstrapped from) `source`'s snapshot starts reading each peer topic,
 * recorded BEFORE the snapshot transaction begins, so that the snapshot holds everything before them:
 *
 * - `source`'s own topic: its high watermarks. Every event below them was committed in `source`
 *   before it was published, so before the snapshot.
 * - every other peer's topic: `source`'s consumer group's committed offsets. The applier commits an
 *   offset only after the PostgreSQL transaction of its batch committed, so everything below them
 *   is in `source`'s database, so in the snapshot. A partition the group never committed starts at
 *   the earliest offset Kafka holds.
 *
 * Events at or after a position may be in the snapshot as well: applied again, they change nothing.
 */
import type { Admin } from 'kafkajs';
import { applyGroupId, changeTopic } from '../../../shared/kafka/topics.js';

/** topic → partition → next offset to read (decimal string). */
export type PeerPositions = Map<string, Map<number, string>>;

export async function recordPeerPositions(
  admin: Admin,
  options: { readonly prefix: string; readonly source: string; readonly peers: readonly string[] },
): Promise<PeerPositions> {
  const positions: PeerPositions = new Map();
  const sourceTopic = changeTopic(options.prefix, options.source);
  const high = await admin.fetchTopicOffsets(sourceTopic);
  positions.set(sourceTopic, new Map(high.map((p) => [p.partition, p.high])));
  const others = options.peers.filter((p) => p !== options.source).map((p) => changeTopic(options.prefix, p));
  if (others.length > 0) {
    const committed = await admin.fetchOffsets({
      groupId: applyGroupId(options.prefix, options.source),
      topics: others,
    });
    for (const t of committed) {
      const low = new Map((await admin.fetchTopicOffsets(t.topic)).map((p) => [p.partition, p.low]));
      positions.set(
        t.topic,
        new Map(
          t.partitions.map((p) => [
            p.partition,
            BigInt(p.offset) >= 0n ? p.offset : (low.get(p.partition) ?? '0'),
          ]),
        ),
      );
    }
  }
  return positions;
}

/**
 * Commit `positions` as consumer group `groupId`'s offsets (the group must have no live member: its
 * region is not running yet, or stopped). With `forwardOnly`, a partition where the group has
 * committed further already keeps its offset.
 */
export async function startGroupAt(
  admin: Admin,
  groupId: string,
  positions: PeerPositions,
  options: { readonly forwardOnly?: boolean } = {},
): Promise<void> {
  for (const [topic, partitions] of positions) {
    let current = new Map<number, bigint>();
    if (options.forwardOnly === true) {
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      current = new Map((committed?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
    }
    await admin.setOffsets({
      groupId,
      topic,
      partitions: [...partitions].map(([partition, offset]) => {
        const mine = current.get(partition);
        return {
          partition,
          offset: mine !== undefined && mine > BigInt(offset) ? mine.toString() : offset,
        };
      }),
    });
  }
}
