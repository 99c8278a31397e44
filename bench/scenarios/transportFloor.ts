/**
 * #5 Transport floor: bare kafkajs produce → consume latency on the same broker and the same
 * listeners as hothot's events in #3 (produced on `us`'s, consumed on `eu`'s), using the project's
 * own wrappers (shared/kafka: idempotent producer with acks=all, batch consumer committing offsets
 * after each batch). Open loop at the same rates as #3; like the relay, one publish in flight at a
 * time carrying everything that accumulated meanwhile. Latency from the scheduled send to the
 * consumer's handler (same process, monotonic clock).
 */
import { randomBytes } from 'node:crypto';
import { createKafka, ensureTopics } from '../../shared/kafka/client.js';
import { KafkaBatchConsumer } from '../../shared/kafka/consumer.js';
import { KafkaPublisher, type OutgoingMessage } from '../../shared/kafka/publisher.js';
import { createRootLogger } from '../../shared/logging/logger.js';
import { seededRandom } from '../../infra/lab/seededRandom.js';
import { itemValue } from '../load/payloads.js';
import {
  distribution,
  percentileCurve,
  round,
  roundDistribution,
  type Distribution,
  type PercentileCurve,
} from '../measure/stats.js';
import { sleep } from '../../infra/lab/waitFor.js';
import type { BenchContext } from './benchContext.js';

const WARM_UP_S = 1;

export interface FloorPoint extends Distribution {
  readonly rate: number;
  readonly sent: number;
  readonly received: number;
  readonly curve: PercentileCurve;
}

export interface FloorResult {
  readonly durationS: number;
  readonly points: readonly FloorPoint[];
}

export async function transportFloor(ctx: BenchContext, rates: readonly number[]): Promise<FloorResult> {
  const { lab, quick, log } = ctx;
  const durationS = quick ? 3 : 5;
  const logger = createRootLogger({ region: 'bench', level: 'silent' });
  const security = lab.kafkaClientSecurity();
  const producerKafka = createKafka(
    { clientId: 'bench-floor-producer', brokers: [lab.kafkaDirect('us')], security },
    logger,
  );
  const consumerKafka = createKafka(
    { clientId: 'bench-floor-consumer', brokers: [lab.kafkaDirect('eu')], security },
    logger,
  );
  const publisher = new KafkaPublisher(producerKafka, logger);
  const points: FloorPoint[] = [];
  try {
    for (const rate of rates) {
      const topic = `bench.floor.${rate}.${randomBytes(3).toString('hex')}`;
      await ensureTopics(producerKafka, [topic], 3);
      const received = new Map<number, number>();
      let warm = false;
      const consumer = new KafkaBatchConsumer(
        consumerKafka,
        { groupId: `${topic}.group`, topics: [topic], partitionsConsumedConcurrently: 2 },
        logger,
      );
      await consumer.start((batch) => {
        const now = performance.now();
        for (const m of batch.messages) {
          const { i, t } = JSON.parse(m.value!.toString('utf8')) as { i: number; t: number };
          if (i < 0) warm = true;
          else received.set(i, now - t);
        }
        return Promise.resolve();
      });
      try {
        // Warm up until a message makes the round trip (the group has its partitions).
        const warmDeadline = Date.now() + 30_000;
        while (!warm && Date.now() < warmDeadline) {
          await publisher.publish(
            topic,
            [{ key: 'warm', value: Buffer.from(JSON.stringify({ i: -1, t: performance.now() })) }],
            5000,
          );
          await sleep(100);
        }
        // Like the relay: whatever accumulated while a publish was in flight goes out in the next one.
        const random = seededRandom(rate);
        const buffer: OutgoingMessage[] = [];
        let sending = false;
        let failedSends = 0;
        const pump = async (): Promise<void> => {
          if (sending) return;
          sending = true;
          try {
            while (buffer.length > 0) {
              const batch = buffer.splice(0);
              await publisher.publish(topic, batch, 10_000).catch(() => (failedSends += batch.length));
            }
          } finally {
            sending = false;
          }
        };
        // The first second warms the path (JIT, connections) and is not counted.
        const t0 = performance.now();
        const endMs = (durationS + WARM_UP_S) * 1000;
        let next = t0;
        let i = 0;
        let firstCounted = -1;
        while (next - t0 < endMs) {
          while (next <= performance.now() && next - t0 < endMs) {
            if (firstCounted < 0 && next - t0 >= WARM_UP_S * 1000) firstCounted = i;
            buffer.push({
              key: `floor/${i}`,
              value: Buffer.from(JSON.stringify({ i, t: next, v: itemValue(i) })),
            });
            i += 1;
            next += -Math.log(1 - random()) * (1000 / rate);
          }
          void pump();
          const wait = next - performance.now();
          await new Promise<void>((r) =>
            wait > 1.5 ? setTimeout(r, Math.floor(wait - 0.5)) : setImmediate(r),
          );
        }
        await pump();
        while (sending) await sleep(5);
        const deadline = Date.now() + 15_000;
        while (received.size < i && Date.now() < deadline) await sleep(50);
        const lats = [...received.entries()].filter(([k]) => k >= firstCounted).map(([, v]) => v);
        const point: FloorPoint = {
          rate,
          sent: i - firstCounted,
          received: lats.length,
          ...roundDistribution(distribution(lats)),
          curve: percentileCurve(lats).map(([q, v]) => [q, round(v)] as const),
        };
        points.push(point);
        log(
          `${rate}/s: kafkajs produce→consume p50 ${point.p50} p99 ${point.p99} max ${point.max} ms (${point.received}/${point.sent} received` +
            `${failedSends > 0 ? `, ${failedSends} failed to publish` : ''})`,
        );
      } finally {
        await consumer.stop();
      }
    }
  } finally {
    await publisher.disconnect();
  }
  return { durationS, points };
}
