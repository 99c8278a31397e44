/** The one place that constructs a kafkajs client. Services use the publisher and consumer wrappers. */
import { readFileSync } from 'node:fs';
import { Kafka, type KafkaConfig } from 'kafkajs';
import type { SecurityConfig } from '../config/loadConfig.js';
import { kafkaLogCreator, type Logger } from '../logging/logger.js';

/**
 * How a client proves itself to Kafka and checks the broker: TLS against `ca` (the broker's host name
 * is verified), then SASL SCRAM-SHA-512 as `username`. Absent: PLAINTEXT (SECURITY_MODE=insecure-dev).
 */
export interface KafkaClientSecurity {
  /** PEM text of the CA certificate(s) that signed the broker's certificate. */
  readonly ca: string;
  readonly username: string;
  readonly password: string;
}

export interface KafkaClientOptions {
  readonly clientId: string;
  readonly brokers: readonly string[];
  /** @default 3000 */
  readonly connectionTimeoutMs?: number;
  /** @default 10000 */
  readonly requestTimeoutMs?: number;
  /** TLS + SCRAM; absent (or undefined) means PLAINTEXT. */
  readonly security?: KafkaClientSecurity | undefined;
}

/**
 * Read the files `config.security.kafka` names (CA certificate, password file). Undefined when no
 * Kafka credentials are configured. The error names the variable and file, never the content.
 */
export function loadKafkaClientSecurity(security: SecurityConfig): KafkaClientSecurity | undefined {
  const kafka = security.kafka;
  if (kafka === undefined) return undefined;
  const read = (file: string, variable: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new Error(`${variable}: cannot read ${file} (${reason})`, { cause: err });
    }
  };
  const ca = read(kafka.caFile, 'KAFKA_SSL_CA_FILE');
  if (!ca.includes('-----BEGIN CERTIFICATE-----'))
    throw new Error(`KAFKA_SSL_CA_FILE: ${kafka.caFile} holds no PEM certificate`);
  const password =
    kafka.passwordFile !== undefined
      ? read(kafka.passwordFile, 'KAFKA_SASL_PASSWORD_FILE').replace(/\r?\n$/, '')
      : (kafka.password ?? '');
  if (password === '') throw new Error('the Kafka password (KAFKA_SASL_PASSWORD_FILE) is empty');
  return { ca, username: kafka.username, password };
}

/** The kafkajs `ssl` and `sasl` settings for `security` (none: PLAINTEXT). */
export function kafkaSecurityConfig(
  security: KafkaClientSecurity | undefined,
): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  if (security === undefined) return {};
  return {
    ssl: { ca: [security.ca] },
    sasl: { mechanism: 'scram-sha-512', username: security.username, password: security.password },
  };
}

export function createKafka(options: KafkaClientOptions, log: Logger): Kafka {
  return new Kafka({
    clientId: options.clientId,
    brokers: [...options.brokers],
    connectionTimeout: options.connectionTimeoutMs ?? 3000,
    requestTimeout: options.requestTimeoutMs ?? 10_000,
    ...kafkaSecurityConfig(options.security),
    logCreator: kafkaLogCreator(log),
    // Short, bounded retries: our own loops retry forever with backoff, so a cut link never wedges a
    // component inside kafkajs for long. Attempts at most 500 ms apart: after a heal a consumer
    // reconnects within about that rather than a longer retry gap (the catch-up bench's heal →
    // first apply, with 500 and with 2,000 ms: bench/README.md, "Figures quoted from code
    // comments"); a connection attempt to an unreachable broker costs next to nothing.
    retry: { initialRetryTime: 100, maxRetryTime: 500, retries: 8 },
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
