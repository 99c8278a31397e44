/**
 * The root pino logger and the kafkajs → pino bridge. JSON lines on stdout; every line carries the
 * region and the component. Payloads and secrets are redacted by path.
 */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { logLevel as KafkaLogLevel, type logCreator } from 'kafkajs';

export type { Logger } from 'pino';

export function createRootLogger(options: {
  region: string;
  level: LevelWithSilent;
  destination?: DestinationStream;
}): Logger {
  return pino(
    {
      level: options.level,
      base: { region: options.region, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          'value',
          '*.value',
          'payload',
          '*.payload',
          'req.headers.authorization',
          'databaseUrl',
          '*.databaseUrl',
        ],
        censor: '[redacted]',
      },
    },
    options.destination,
  );
}

const KAFKA_TO_PINO = {
  [KafkaLogLevel.NOTHING]: 'silent',
  [KafkaLogLevel.ERROR]: 'error',
  [KafkaLogLevel.WARN]: 'warn',
  [KafkaLogLevel.INFO]: 'info',
  [KafkaLogLevel.DEBUG]: 'debug',
} as const satisfies Record<KafkaLogLevel, string>;

/**
 * Retriable Kafka protocol errors a broker answers while it warms up — a fresh broker loading its group
 * and transaction coordinators, electing partition leaders, creating auto-created topics — by
 * kafkajs' type (Kafka's COORDINATOR_LOAD_IN_PROGRESS and NOT_COORDINATOR are kafkajs'
 * GROUP_LOAD_IN_PROGRESS and NOT_COORDINATOR_FOR_GROUP), with the message kafkajs gives each: its
 * request-level log lines carry only `error: <message>`. kafkajs retries every one of them itself.
 */
export const KAFKA_WARMUP_ERRORS = {
  GROUP_COORDINATOR_NOT_AVAILABLE: 'The group coordinator is not available',
  GROUP_LOAD_IN_PROGRESS: "The coordinator is loading and hence can't process requests for this group",
  NOT_COORDINATOR_FOR_GROUP: 'This is not the correct coordinator for this group',
  LEADER_NOT_AVAILABLE:
    'There is no leader for this topic-partition as we are in the middle of a leadership election',
  NOT_LEADER_FOR_PARTITION: 'This server is not the leader for that topic-partition',
  UNKNOWN_TOPIC_OR_PARTITION: 'This server does not host this topic-partition',
  REBALANCE_IN_PROGRESS: 'The group is rebalancing, so a rejoin is needed',
} as const satisfies Record<string, string>;

/**
 * How long after a kafkajs client is created its warm-up errors count as expected. The lab starts a
 * region once its broker answers, and the errors above stop within seconds of that.
 */
export const KAFKA_WARMUP_MS = 60_000;

/**
 * Two regions starting together both create the topics; the later one's CreateTopics answer is
 * TOPIC_ALREADY_EXISTS, which kafkajs' admin takes as success, but its connection logs the response
 * first, as `Topic creation errors` (the type is lost there). A real creation failure makes the admin
 * throw, and the region logs that itself (`create topics failed; retrying`).
 */
const CREATE_TOPICS_RACE = { request: /^Response CreateTopics\(/, error: 'Topic creation errors' };

const WARMUP_TYPES = new Set<string>(Object.keys(KAFKA_WARMUP_ERRORS));
const WARMUP_MESSAGES = new Set<string>(Object.values(KAFKA_WARMUP_ERRORS));
/** kafkajs' own reports of a failure it gave up on: never demoted. */
const TERMINAL_MESSAGE = /^(Crash:|Restarting the consumer|Caught error)/;

/** The fields of a kafkajs log entry the level rule looks at (`message` plus the entry's extras). */
export interface KafkaLogFields {
  message?: unknown;
  error?: unknown;
  type?: unknown;
  [extra: string]: unknown;
}

/**
 * Whether a kafkajs log entry reports one of {@link KAFKA_WARMUP_ERRORS}: its `error` (a message, or an
 * error with a `type`) or its message (`Failed to send messages: <message>`, or the bare message) — or
 * the CreateTopics answer of two regions creating the same topics at once. kafkajs' crash and restart
 * reports never are.
 */
export function isKafkaWarmupError(entry: KafkaLogFields): boolean {
  const message = typeof entry.message === 'string' ? entry.message : '';
  if (TERMINAL_MESSAGE.test(message)) return false;
  const error = entry.error;
  if (CREATE_TOPICS_RACE.request.test(message) && error === CREATE_TOPICS_RACE.error) return true;
  const candidates = [
    entry.type,
    error,
    typeof error === 'object' && error !== null ? (error as { type?: unknown }).type : undefined,
    typeof error === 'object' && error !== null ? (error as { message?: unknown }).message : undefined,
    message,
    message.replace(/^Failed to send messages: /, ''),
  ];
  return candidates.some((c) => typeof c === 'string' && (WARMUP_TYPES.has(c) || WARMUP_MESSAGES.has(c)));
}

/**
 * The pino level of a kafkajs log entry. kafkajs INFO becomes debug (it is chatty). An ERROR or WARN
 * that reports a retriable warm-up error ({@link isKafkaWarmupError}) becomes debug while the client
 * is warming up: it is expected then, and kafkajs retries it. After the warm-up it keeps its level, and
 * so does everything else at any time — a failure that persists still surfaces, as kafkajs' own
 * `Crash: …` / `Failed to send messages` errors once its retries run out, and as the consumer's CRASH
 * event, which the consumer logs itself.
 */
export function kafkaPinoLevel(
  level: KafkaLogLevel,
  entry: KafkaLogFields,
  warmingUp: boolean,
): (typeof KAFKA_TO_PINO)[KafkaLogLevel] {
  if (level === KafkaLogLevel.INFO) return 'debug';
  if (
    (level === KafkaLogLevel.ERROR || level === KafkaLogLevel.WARN) &&
    warmingUp &&
    isKafkaWarmupError(entry)
  )
    return 'debug';
  return KAFKA_TO_PINO[level];
}

export interface KafkaLogCreatorOptions {
  /** @default {@link KAFKA_WARMUP_MS} */
  warmupMs?: number;
  /** @default Date.now */
  now?: () => number;
}

/**
 * A kafkajs `logCreator` writing through `log` (component `kafkajs`), levels per {@link kafkaPinoLevel};
 * the warm-up runs from when kafkajs calls it (once per client, when the client is created).
 */
export function kafkaLogCreator(log: Logger, options: KafkaLogCreatorOptions = {}): logCreator {
  const child = log.child({ component: 'kafkajs' });
  const now = options.now ?? Date.now;
  const warmupMs = options.warmupMs ?? KAFKA_WARMUP_MS;
  return () => {
    const createdAt = now();
    return ({ level, log: entry }) => {
      const { message, timestamp: _ts, logger: _l, ...rest } = entry;
      const pinoLevel = kafkaPinoLevel(level, entry, now() - createdAt < warmupMs);
      if (pinoLevel === 'silent') return;
      child[pinoLevel](rest, message);
    };
  };
}
