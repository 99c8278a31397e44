import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import { logLevel as KafkaLogLevel, type logCreator } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { formatLogLine } from '../../infra/lab/logFormat.js';
import {
  KAFKA_WARMUP_ERRORS,
  KAFKA_WARMUP_MS,
  createRootLogger,
  isKafkaWarmupError,
  kafkaLogCreator,
  kafkaPinoLevel,
} from '../../shared/logging/logger.js';

/** kafkajs' table of protocol errors (not part of its typed API). */
const kafkajsErrorCodes = (
  createRequire(import.meta.url)('kafkajs/src/protocol/error.js') as {
    errorCodes: { type: string; code: number; retriable: boolean; message: string }[];
  }
).errorCodes;

// Entries as kafkajs logs them (the first two copied from a lab region's log during warm-up).
const coordinatorNotAvailable = {
  message: 'Response GroupCoordinator(key: 10, version: 2)',
  broker: '127.0.0.1:9621',
  clientId: 'hothot-us',
  error: 'The group coordinator is not available',
  correlationId: 2,
  size: 55,
};
const coordinatorLoading = {
  message: 'Response InitProducerId(key: 22, version: 1)',
  error: "The coordinator is loading and hence can't process requests for this group",
};
const noLeader = {
  message:
    'Failed to send messages: There is no leader for this topic-partition as we are in the middle of a leadership election',
  retryCount: 0,
};
const rebalancing = {
  message: 'The group is rebalancing, re-joining',
  error: 'The group is rebalancing, so a rejoin is needed',
};
// Both regions create the topics at once: the later one's answer is TOPIC_ALREADY_EXISTS (fine).
const createTopicsRace = {
  message: 'Response CreateTopics(key: 19, version: 3)',
  broker: '127.0.0.1:9522',
  clientId: 'hothot-eu',
  error: 'Topic creation errors',
  correlationId: 4,
  size: 140,
};
const crash = {
  message: 'Crash: KafkaJSNumberOfRetriesExceeded: The group coordinator is not available',
  groupId: 'hothot-eu',
  retryCount: 10,
};
const refused = {
  message: 'Connection error: connect ECONNREFUSED 127.0.0.1:9621',
  error: 'Connection error: connect ECONNREFUSED 127.0.0.1:9621',
};

describe('kafkajs log levels', () => {
  it('when kafkajs names the warm-up errors, then our messages are exactly its own', () => {
    for (const [type, message] of Object.entries(KAFKA_WARMUP_ERRORS)) {
      const known = kafkajsErrorCodes.find((e) => e.type === type);
      expect(known?.message, type).toBe(message);
      // kafkajs retries them (a rebalance by re-joining the group, which its runner does itself).
      if (type !== 'REBALANCE_IN_PROGRESS') expect(known?.retriable, type).toBe(true);
    }
  });

  it('when a retriable warm-up error is logged during the warm-up, then it is debug, not ERROR or WARN', () => {
    for (const entry of [coordinatorNotAvailable, coordinatorLoading, noLeader, createTopicsRace]) {
      expect(isKafkaWarmupError(entry), entry.message).toBe(true);
      expect(kafkaPinoLevel(KafkaLogLevel.ERROR, entry, true), entry.message).toBe('debug');
    }
    expect(kafkaPinoLevel(KafkaLogLevel.WARN, rebalancing, true)).toBe('debug');
    expect(
      kafkaPinoLevel(KafkaLogLevel.ERROR, { message: 'x', error: { type: 'LEADER_NOT_AVAILABLE' } }, true),
    ).toBe('debug');
  });

  it('when the same errors come after the warm-up, then they keep their level', () => {
    expect(kafkaPinoLevel(KafkaLogLevel.ERROR, coordinatorNotAvailable, false)).toBe('error');
    expect(kafkaPinoLevel(KafkaLogLevel.ERROR, noLeader, false)).toBe('error');
    expect(kafkaPinoLevel(KafkaLogLevel.ERROR, createTopicsRace, false)).toBe('error');
    expect(kafkaPinoLevel(KafkaLogLevel.WARN, rebalancing, false)).toBe('warn');
  });

  it('when kafkajs gives up (a crash, a restart) or the error is another one, then it stays ERROR even during the warm-up', () => {
    expect(isKafkaWarmupError(crash)).toBe(false);
    expect(kafkaPinoLevel(KafkaLogLevel.ERROR, crash, true)).toBe('error');
    expect(
      kafkaPinoLevel(
        KafkaLogLevel.ERROR,
        { message: 'Restarting the consumer in 100ms', retryCount: 10 },
        true,
      ),
    ).toBe('error');
    expect(kafkaPinoLevel(KafkaLogLevel.ERROR, refused, true)).toBe('error');
    expect(
      kafkaPinoLevel(
        KafkaLogLevel.ERROR,
        { message: 'Response Produce', error: 'Topic authorization failed' },
        true,
      ),
    ).toBe('error');
    // "Topic creation errors" only for a CreateTopics answer; only an exact message counts.
    expect(isKafkaWarmupError({ message: 'Response Produce(key: 0)', error: 'Topic creation errors' })).toBe(
      false,
    );
    expect(
      isKafkaWarmupError({ message: 'something else: The group coordinator is not available, and more' }),
    ).toBe(false);
  });

  it('when kafkajs logs INFO, DEBUG or NOTHING, then it is debug, debug, silent', () => {
    expect(kafkaPinoLevel(KafkaLogLevel.INFO, { message: 'Starting' }, false)).toBe('debug');
    expect(kafkaPinoLevel(KafkaLogLevel.DEBUG, { message: 'Request' }, true)).toBe('debug');
    expect(kafkaPinoLevel(KafkaLogLevel.NOTHING, { message: 'x' }, true)).toBe('silent');
  });

  it('when a client logs through the logCreator, then the warm-up runs from its creation and the lab console shows no ERROR for it', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(
          ...chunk
            .toString('utf8')
            .split('\n')
            .filter((l) => l !== ''),
        );
        done();
      },
    });
    let clock = 1_000_000;
    const log = createRootLogger({ region: 'us', level: 'info', destination });
    const create: logCreator = kafkaLogCreator(log, { now: () => clock });
    const write = create(KafkaLogLevel.INFO); // what kafkajs does once, in new Kafka()
    const emit = (level: KafkaLogLevel, entry: Record<string, unknown>) =>
      write({
        namespace: 'Connection',
        level,
        label: KafkaLogLevel[level],
        log: { timestamp: new Date(clock).toISOString(), logger: 'kafkajs', message: '', ...entry },
      });

    clock += 2_000;
    emit(KafkaLogLevel.ERROR, coordinatorNotAvailable);
    emit(KafkaLogLevel.ERROR, coordinatorLoading);
    emit(KafkaLogLevel.ERROR, crash);
    expect(lines.map((l) => formatLogLine(l))).toEqual([
      expect.stringMatching(/ ERROR Crash: KafkaJSNumberOfRetriesExceeded: .* component=kafkajs/),
    ]);

    lines.length = 0;
    clock += KAFKA_WARMUP_MS;
    emit(KafkaLogLevel.ERROR, coordinatorNotAvailable);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: 50,
      component: 'kafkajs',
      error: 'The group coordinator is not available',
      msg: 'Response GroupCoordinator(key: 10, version: 2)',
    });
  });
});
