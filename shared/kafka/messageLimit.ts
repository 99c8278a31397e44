/**
 * The largest record batch this region may publish: the configured `KAFKA_MESSAGE_MAX_BYTES`, lowered
 * to the broker's real limit for the region's topic once the broker has told it. The API refuses
 * writes whose event would not fit; the relay splits its publishes by it.
 */
import kafkajs, { type Kafka } from 'kafkajs';
import type { MessageLimitSnapshot } from '../status/liveStatus.js';
import { KAFKA_DEFAULT_MESSAGE_MAX_BYTES } from './messageSize.js';

export class MessageLimit {
  private brokerBytes: number | undefined;
  private checkedAt: number | undefined;

  constructor(readonly configuredBytes: number) {}

  /** The limit in force: the configured one, or the broker's when that is lower. */
  get bytes(): number {
    return this.brokerBytes === undefined
      ? this.configuredBytes
      : Math.min(this.configuredBytes, this.brokerBytes);
  }

  /** Record what the broker said; returns true when it is lower than the configured limit. */
  observeBroker(bytes: number, at = Date.now()): boolean {
    this.brokerBytes = bytes;
    this.checkedAt = at;
    return bytes < this.configuredBytes;
  }

  /** What `/v1/status` shows. */
  snapshot(): MessageLimitSnapshot {
    return {
      configuredBytes: this.configuredBytes,
      brokerBytes: this.brokerBytes ?? null,
      checkedAt: this.checkedAt === undefined ? null : new Date(this.checkedAt).toISOString(),
      bytes: this.bytes,
    };
  }
}

/**
 * The topic's effective `max.message.bytes` (the topic's own setting, or the broker's
 * `message.max.bytes` it inherits) as the broker reports it.
 */
export async function describeTopicMessageMaxBytes(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { resources } = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [
        { type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: ['max.message.bytes'] },
      ],
    });
    const entry = resources[0]?.configEntries.find((e) => e.configName === 'max.message.bytes');
    const value = Number(entry?.configValue);
    return Number.isInteger(value) && value > 0 ? value : KAFKA_DEFAULT_MESSAGE_MAX_BYTES;
  } finally {
    await admin.disconnect();
  }
}
