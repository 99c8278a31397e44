/**
 * #5 Transport floor: bare kafkajs produce → consume latency on the same broker and the same
 * listeners as hothot's events in #3 (produced on `us`'s, consumed on `eu`'s), using the project's
 * own wrappers (shared/kafka: idempotent producer with acks=all, batch consumer committing offsets
 * after each batch). Open loop at the same rates as #3; like the relay, one publish in flight at a
 * time carrying everything that accumulated meanwhile. Latency from the scheduled send to the
 * consumer's handler (same process, monotonic clock).
 *
 * Beside it, Kafka's own Java tool (org.apache.kafka.tools.EndToEndLatency, bench/load/endToEndLatency.ts):
 * one message at a time, acks=all, messages of the same size, on a one-partition topic of its own, through
 * `us`'s listener with the same security. A floor measured by the Java client, which says how much of
 * the kafkajs floor is the broker's and how much the client's. It runs after the kafkajs rows; when it
 * fails (no Maven, no Java, the tool erring), the rows stand and the failure is recorded beside them.
 */
import { sideHostCpu, readHostCpu, type HostCpuShare } from '../measure/hostCpu.js';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import { createKafka, ensureTopics } from '../../shared/kafka/client.js';
import { KafkaBatchConsumer } from '../../shared/kafka/consumer.js';
import { KafkaPublisher, type OutgoingMessage } from '../../shared/kafka/publisher.js';
import { createRootLogger } from '../../shared/logging/logger.js';
import { KAFKA_ADMIN_PRINCIPAL } from '../../infra/lab/labSecrets.js';
import { seededRandom } from '../../infra/lab/seededRandom.js';
import { kafkaClientProperties, properties } from '../lab/debeziumPeer.js';
import { endToEndLatency, type EndToEndLatencyResult } from '../load/endToEndLatency.js';
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
/** Messages the Java tool sends, one at a time (one round trip each: a few seconds in all). */
const JAVA_MESSAGES = { quick: 2000, full: 5000 } as const;

export interface FloorPoint extends Distribution {
  readonly rate: number;
  readonly sent: number;
  readonly received: number;
  readonly curve: PercentileCurve;
  /** The machine's CPU while this point ran (bench/measure/hostCpu.ts); absent in older results. */
  readonly host?: HostCpuShare;
}

export interface FloorResult {
  readonly durationS: number;
  readonly points: readonly FloorPoint[];
  /** Kafka's EndToEndLatency, one message at a time (absent from results made before it was added). */
  readonly java?: EndToEndLatencyResult;
  /** Why the Java tool gave no figures, when it did not. */
  readonly javaError?: string;
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
        const cpu0 = readHostCpu();
        const t0 = performance.now();
        const endMs = (durationS + WARM_UP_S) * 1000;
        let next = t0;
        let i = 0;
        let firstCounted = -1;
        while (next - t0 < endMs) {
          while (next <= performance.now() && next - t0 < endMs) {
            if (firstCounted < 0 && next - t0 >= WARM_UP_S * 1000) firstCounted = i;
            buffer.push({ key: `floor/${i}`, value: floorMessage(i, next) });
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
        const host = sideHostCpu(cpu0);
        const point: FloorPoint = {
          rate,
          sent: i - firstCounted,
          received: lats.length,
          ...roundDistribution(distribution(lats)),
          curve: percentileCurve(lats).map(([q, v]) => [q, round(v)] as const),
          ...(host === undefined ? {} : { host }),
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
  return { durationS, points, ...(await javaFloor(ctx, producerKafka)) };
}

/** A kafkajs floor message: its number, its scheduled send time and an item's value (~120 bytes). */
function floorMessage(i: number, t: number): Buffer {
  return Buffer.from(JSON.stringify({ i, t, v: itemValue(i) }));
}

/**
 * The Java row: Kafka's EndToEndLatency on a one-partition topic of its own (made here: the tool
 * would make a missing one itself, but with no say over it), through `us`'s direct listener, where
 * the kafkajs producer connects, as admin over TLS + SCRAM as the kafkajs clients are. Any failure
 * becomes `javaError` rather than failing the scenario.
 */
async function javaFloor(ctx: BenchContext, kafka: Kafka): Promise<Pick<FloorResult, 'java' | 'javaError'>> {
  const { lab, quick, log } = ctx;
  const messages = quick ? JAVA_MESSAGES.quick : JAVA_MESSAGES.full;
  const messageBytes = floorMessage(1000, performance.now()).length;
  try {
    const topic = `bench.floor.java.${randomBytes(3).toString('hex')}`;
    await ensureTopics(kafka, [topic], 1);
    log(`Kafka's EndToEndLatency: ${messages} messages of ${messageBytes} B, one at a time, acks=all…`);
    const java = await endToEndLatency({
      bootstrap: lab.kafkaDirect('us'),
      topic,
      messages,
      messageBytes,
      propertiesFile: writeJavaClientProperties(ctx),
      log,
    });
    log(
      `Java EndToEndLatency: p50 ${java.p50} p99 ${java.p99} p99.9 ${java.p999} ms (whole ms, truncated), avg ${round(java.avg)} ms`,
    );
    return { java: { ...java, avg: round(java.avg) } };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log(`Java EndToEndLatency gave no figures (the kafkajs rows stand): ${message}`);
    return { javaError: message };
  }
}

/** The Java clients' security as admin (as the Debezium peer's), in the lab's secrets directory (0600). */
function writeJavaClientProperties({ lab }: BenchContext): string {
  const secrets = lab.credentials;
  const file = join(secrets.dir, 'kafka-tools-client.properties');
  writeFileSync(
    file,
    properties(kafkaClientProperties(secrets.kafkaPassword(KAFKA_ADMIN_PRINCIPAL), secrets.caCertFile)),
    { mode: 0o600 },
  );
  return file;
}
