/**
 * Publishing to Kafka behind a narrow interface. The kafkajs producer is idempotent with acks=all;
 * every publish has its own deadline, because under a blackholed link kafkajs' send() neither
 * resolves nor rejects. After a deadline the producer is discarded and a fresh one is made on the
 * next publish, so a wedged connection cannot hold the relay.
 */
import { CompressionTypes, Partitioners, type Kafka, type Producer } from 'kafkajs';
import type { Logger } from '../logging/logger.js';

export interface OutgoingMessage {
  readonly key: string;
  readonly value: Buffer;
  /** Explicit partition (heartbeats go to every partition); by key hash when absent. */
  readonly partition?: number;
  /** Kafka record headers (the event signature: shared/security/eventAuth.ts). */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * The partition the producer's partitioner (kafkajs' DefaultPartitioner, Java-compatible murmur2 of
 * the key) puts a keyed message in, among `partitions`: the relay names it explicitly when it signs,
 * because the partition is part of what is signed. Same placement as leaving it to the producer.
 */
export function keyPartition(key: string, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1) throw new Error(`${partitions} partitions`);
  return defaultPartitioner({
    topic: '',
    partitionMetadata: Array.from({ length: partitions }, (_, partitionId) => ({
      partitionErrorCode: 0,
      partitionId,
      leader: 0,
      replicas: [0],
      isr: [0],
    })),
    message: { key, value: null },
  });
}
const defaultPartitioner = Partitioners.DefaultPartitioner();

export interface Publisher {
  /** Resolves once the broker acknowledged every message (acks=all); rejects otherwise. */
  publish(topic: string, messages: readonly OutgoingMessage[], timeoutMs: number): Promise<void>;
  disconnect(): Promise<void>;
}

export class PublishTimeoutError extends Error {
  override readonly name = 'PublishTimeoutError';
  readonly retryable = true;
  constructor(readonly timeoutMs: number) {
    super(`Kafka did not acknowledge the publish within ${timeoutMs} ms`);
  }
}

/** The broker refused the publish because a record batch was over its `message.max.bytes`. */
export class MessageTooLargeError extends Error {
  override readonly name = 'MessageTooLargeError';
  readonly retryable = false;
  constructor(readonly kafkaError: string) {
    super(`Kafka refused the publish as too large (${kafkaError})`);
  }
}

const TOO_LARGE_TYPES = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']);

/** The kafkajs error type naming a too-large publish, searched through causes and aggregates. */
function tooLargeType(err: unknown, depth = 0): string | undefined {
  if (typeof err !== 'object' || err === null || depth > 5) return undefined;
  const e = err as { type?: unknown; cause?: unknown; errors?: unknown; originalError?: unknown };
  if (typeof e.type === 'string' && TOO_LARGE_TYPES.has(e.type)) return e.type;
  const nested: unknown[] = [
    e.cause,
    e.originalError,
    ...(Array.isArray(e.errors) ? (e.errors as unknown[]) : []),
  ];
  for (const n of nested) {
    const t = tooLargeType(n, depth + 1);
    if (t !== undefined) return t;
  }
  return undefined;
}

export class KafkaPublisher implements Publisher {
  private producer: Producer | undefined;
  private connecting: Promise<Producer> | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly log: Logger,
  ) {}

  async publish(topic: string, messages: readonly OutgoingMessage[], timeoutMs: number): Promise<void> {
    if (messages.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new PublishTimeoutError(timeoutMs)), timeoutMs);
    });
    const attempt = (async () => {
      const producer = await this.connected();
      await producer.send({
        topic,
        acks: -1,
        compression: CompressionTypes.None,
        messages: messages.map((m) => ({
          key: m.key,
          value: m.value,
          ...(m.partition === undefined ? {} : { partition: m.partition }),
          ...(m.headers === undefined ? {} : { headers: { ...m.headers } }),
        })),
      });
    })();
    try {
      await Promise.race([attempt, deadline]);
    } catch (err) {
      attempt.catch(() => undefined); // the abandoned attempt may still settle later
      // A refusal for size is an answer, not a broken connection: the producer stays (kafkajs rolls
      // the idempotent sequence back when a produce fails).
      const tooLarge = tooLargeType(err);
      if (tooLarge !== undefined) throw new MessageTooLargeError(tooLarge);
      this.discard(err);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async disconnect(): Promise<void> {
    const producer = this.producer;
    this.producer = undefined;
    this.connecting = undefined;
    if (producer) await producer.disconnect().catch(() => undefined);
  }

  private connected(): Promise<Producer> {
    if (this.producer) return Promise.resolve(this.producer);
    this.connecting ??= (async () => {
      const producer = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: true,
        createPartitioner: Partitioners.DefaultPartitioner,
        // The idempotent producer wants unbounded retries; the per-publish deadline bounds them.
        retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: Number.MAX_SAFE_INTEGER },
      });
      try {
        await producer.connect();
      } catch (err) {
        this.connecting = undefined;
        await producer.disconnect().catch(() => undefined);
        throw err;
      }
      this.producer = producer;
      this.connecting = undefined;
      return producer;
    })();
    return this.connecting;
  }

  private discard(cause: unknown): void {
    this.log.warn({ err: cause }, 'publish failed; reconnecting the producer on the next attempt');
    const producer = this.producer;
    this.producer = undefined;
    this.connecting = undefined;
    // Do not await a disconnect that may hang on the same dead socket.
    if (producer) void producer.disconnect().catch(() => undefined);
  }
}
