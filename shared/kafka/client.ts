/** The one place that constructs a kafkajs client. Services use the publisher and consumer wrappers. */
import { Kafka } from 'kafkajs';
import { kafkaLogCreator, type Logger } from '../logging/logger.js';

export interface KafkaClientOptions {
  readonly clientId: string;
  readonly brokers: readonly string[];
  /** @default 3000 */
  readonly connectionTimeoutMs?: number;
  /** @default 10000 */
  readonly requestTimeoutMs?: number;
}

export function createKafka(options: KafkaClientOptions, log: Logger): Kafka {
  return new Kafka({
    clientId: options.clientId,
    brokers: [...options.brokers],
    connectionTimeout: options.connectionTimeoutMs ?? 3000,
    requestTimeout: options.requestTimeoutMs ?? 10_000,
    logCreator: kafkaLogCreator(log),
    // Short, bounded retries: our own loops retry forever with backoff, so a cut link never wedges a
    // component inside kafkajs for long.
    retry: { initialRetryTime: 200, maxRetryTime: 2000, retries: 5 },
  });
}

/**
 * Create the topics if missing (idempotent; concurrent creation by another region is fine).
 * Returns each topic's partition count.
 */
export async function ensureTopics(
  kafka: Kafka,
  topics: readonly string[],
  numPartitions: number,
): Promise<Map<string, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        // replication factor left to the broker default (`default.replication.factor`).
        topics: missing.map((topic) => ({ topic, numPartitions })),
      });
    }
    const { topics: metadata } = await admin.fetchTopicMetadata({ topics: [...topics] });
    return new Map(metadata.map((t) => [t.name, t.partitions.length]));
  } finally {
    await admin.disconnect();
  }
}
