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
import type { Admin, Kafka } from 'kafkajs';
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

/** How long one poll of the positioning consumer waits (kafkajs's default, 5 s, is most of its time). */
const POSITIONING_MAX_WAIT_MS = 100;

/**
 * Commit `positions` as consumer group `groupId`'s offsets (the group must have no live member: its
 * region is not running yet, or stopped). With `forwardOnly`, a partition where the group has
 * committed further already keeps its offset.
 *
 * kafkajs's `admin.setOffsets` joins the group with a consumer of its own once per topic and waits
 * a full default fetch (5 s) each time; this joins once for every topic, with short fetches, seeks
 * each partition (kafkajs commits a seek as the group's offset) and checks what the group holds after.
 */
export async function startGroupAt(
  kafka: Kafka,
  groupId: string,
  positions: PeerPositions,
  options: { readonly forwardOnly?: boolean } = {},
): Promise<void> {
  const topics = [...positions.keys()];
  if (topics.length === 0) return;
  const admin = kafka.admin();
  await admin.connect();
  try {
    const wanted = new Map<string, Map<number, string>>();
    const committed = await admin.fetchOffsets({ groupId, topics });
    for (const [topic, partitions] of positions) {
      const mine = new Map(
        (committed.find((c) => c.topic === topic)?.partitions ?? []).map((p) => [
          p.partition,
          BigInt(p.offset),
        ]),
      );
      wanted.set(
        topic,
        new Map(
          [...partitions].map(([partition, offset]) => {
            const current = mine.get(partition);
            const keep = options.forwardOnly === true && current !== undefined && current > BigInt(offset);
            return [partition, keep ? current.toString() : offset];
          }),
        ),
      );
    }
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: POSITIONING_MAX_WAIT_MS });
    await consumer.connect();
    try {
      for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true });
      const group = await consumer.describeGroup();
      if (!['Empty', 'Dead'].includes(group.state))
        throw new Error(
          `consumer group ${groupId} has running members (${group.state}): stop its region before setting its offsets`,
        );
      await new Promise<void>((resolve, reject) => {
        consumer.on(consumer.events.FETCH, () => resolve());
        consumer.run({ eachBatchAutoResolve: false, eachBatch: () => Promise.resolve() }).catch(reject);
        // Nothing is read: the seeks are committed before the first fetch.
        consumer.pause(topics.map((topic) => ({ topic })));
        for (const [topic, partitions] of wanted)
          for (const [partition, offset] of partitions) consumer.seek({ topic, partition, offset });
      });
      await consumer.stop();
    } finally {
      await consumer.disconnect().catch(() => undefined);
    }
    // What the group holds now must be what was asked for.
    const after = await admin.fetchOffsets({ groupId, topics });
    for (const [topic, partitions] of wanted)
      for (const [partition, offset] of partitions) {
        const got = after
          .find((t) => t.topic === topic)
          ?.partitions.find((p) => p.partition === partition)?.offset;
        if (got !== offset)
          throw new Error(`consumer group ${groupId} holds ${got} for ${topic}/${partition}, not ${offset}`);
      }
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
