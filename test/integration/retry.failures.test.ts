/**
 * Failures retrying cannot cure, on real Kafka (secured: TLS, SCRAM, ACLs) and real PostgreSQL: the
 * relay, the consumer and the applier's group join stop and say why instead of looping, and lose
 * nothing; a programmer error while applying is thrown, never filed as a dead letter.
 * (The taxonomy and the retry loop themselves: test/unit/retry.taxonomy.test.ts.)
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { HybridLogicalClock } from '../../shared/domain/hlc.js';
import { dumpItems } from '../../shared/db/queries/item.js';
import { listDeadLetters } from '../../shared/db/queries/deadLetter.js';
import { insertOutbox, outboxBacklog } from '../../shared/db/queries/outbox.js';
import { failureKind } from '../../shared/errors/failureKind.js';
import { createKafka, ensureTopics } from '../../shared/kafka/client.js';
import { KafkaBatchConsumer, type IncomingMessage } from '../../shared/kafka/consumer.js';
import { encodeEvent } from '../../shared/kafka/envelope.js';
import { KafkaPublisher } from '../../shared/kafka/publisher.js';
import { applyGroupId, changeTopic, itemMessageKey } from '../../shared/kafka/topics.js';
import { PeerApplier } from '../../services/applier/peerApplier.js';
import { OutboxRelay } from '../../services/relay/outboxRelay.js';
import {
  kafkaClientSecurity,
  provisionTestRegions,
  randomId,
  sharedInfra,
  testLogger,
  type TestDatabase,
  waitFor,
} from '../support/harness.js';
import { databaseTest, DATABASE_START_MS } from '../support/fixtures.js';

const infra = sharedInfra();
const secured = infra.kafkaSecurity !== undefined;

const log = testLogger();
const prefix = `rf${randomId()}`;
const usTopic = changeTopic(prefix, 'us');
const euTopic = changeTopic(prefix, 'eu');
let db: TestDatabase;
let pool: pg.Pool;
const kafkaAs = (principal?: string) =>
  createKafka(
    {
      clientId: `retry-failures-${principal ?? 'admin'}`,
      brokers: infra.kafkaBrokers,
      connectionTimeoutMs: 2_000,
      requestTimeoutMs: 5_000,
      security: kafkaClientSecurity(principal),
    },
    log,
  );

const test = databaseTest(`${prefix}_us`, log);

describe('failures retrying cannot cure', () => {
  test.beforeAll(async ({ db: started }) => {
    db = started;
    pool = db.pool;
    await provisionTestRegions(prefix, ['us', 'eu']);
    await ensureTopics(kafkaAs(), [usTopic, euTopic], 2);
  }, DATABASE_START_MS);
  it.skipIf(!secured)(
    "when the broker refuses the relay its topic (eu's credentials, us's topic), then the relay stops once, says why, and the outbox keeps the row",
    async () => {
      await insertOutbox(pool, 'c/k1', { v: 1 });
      const publisher = new KafkaPublisher(kafkaAs('eu'), log);
      const relay = new OutboxRelay({
        pool,
        publisher,
        topic: usTopic,
        batchSize: 100,
        pollIntervalMs: 20,
        publishTimeoutMs: 10_000,
        messageLimit: { bytes: 1_000_000 },
        log,
      });
      const failures: unknown[] = [];
      relay.on('publishFailed', (err) => failures.push(err));
      try {
        relay.start();
        const stoppedBy = await waitFor('the relay to stop', () => relay.snapshot().stoppedBy ?? undefined, {
          timeoutMs: 30_000,
        });
        expect(stoppedBy).toMatch(/not authorized|TOPIC_AUTHORIZATION_FAILED|authoriz/i);
        const s = relay.snapshot();
        expect(s.running).toBe(false);
        // Not retried: one failed pass, no backoff counted.
        expect(s.consecutiveFailures).toBe(0);
        expect(failures).toHaveLength(1);
        expect(failureKind(failures[0])).toBe('permanent');
        expect((await outboxBacklog(pool)).rows).toBe(1);
      } finally {
        await relay.stop();
        await publisher.disconnect();
        await pool.query('DELETE FROM outbox');
      }
    },
  );

  it('when a batch handler fails in a way retrying cannot cure (PostgreSQL rejects the data), then the consumer stops after one attempt and commits no offset', async () => {
    const kafka = kafkaAs();
    const groupId = `${prefix}.permanent`;
    const publisher = new KafkaPublisher(kafka, log);
    await publisher.publish(euTopic, [{ key: 'c/bad', value: Buffer.from('not a number') }], 10_000);
    const consumer = new KafkaBatchConsumer(kafka, { groupId, topics: [euTopic] }, log);
    const seen: IncomingMessage[] = [];
    try {
      await consumer.start(async (batch) => {
        seen.push(...batch.messages);
        // A real permanent failure: PostgreSQL refuses the value (SQLSTATE 22P02).
        await pool.query('SELECT $1::int', [batch.messages[0]!.value!.toString()]);
      });
      const stoppedBy = await waitFor(
        'the consumer to stop',
        () => consumer.snapshot().stoppedBy ?? undefined,
        { timeoutMs: 30_000 },
      );
      expect(stoppedBy).toMatch(/invalid input syntax for type integer/);
      expect(seen).toHaveLength(1); // tried once, not retried
      await waitFor('the consumer to leave its group', () => !consumer.snapshot().joined || undefined);
      const admin = kafka.admin();
      await admin.connect();
      try {
        const [committed] = await admin.fetchOffsets({ groupId, topics: [euTopic] });
        expect(committed!.partitions.every((p) => p.offset === '-1')).toBe(true);
      } finally {
        await admin.disconnect();
      }
    } finally {
      await consumer.stop();
      await publisher.disconnect();
    }
  });

  it.skipIf(!secured)(
    "when the broker refuses the applier a topic (eu's credentials, a region's topic eu is not given), then the group join stops and the status says why",
    async () => {
      const apTopic = changeTopic(prefix, 'ap');
      await ensureTopics(kafkaAs(), [apTopic], 2);
      const kafka = kafkaAs('eu');
      const applier = new PeerApplier({
        pool,
        consumer: new KafkaBatchConsumer(
          kafka,
          { groupId: applyGroupId(prefix, 'eu'), topics: [apTopic] },
          log,
        ),
        clock: new HybridLogicalClock('eu'),
        topicPrefix: prefix,
        region: 'eu',
        policies: {},
        log,
        startRetryMs: 50,
      });
      try {
        applier.start();
        const stoppedBy = await waitFor(
          'the applier to give up joining',
          () => applier.consumerSnapshot()?.stoppedBy ?? undefined,
          { timeoutMs: 30_000 },
        );
        expect(stoppedBy).toMatch(/authoriz/i);
        expect(applier.isConsuming).toBe(false);
      } finally {
        await applier.stop();
      }
    },
  );

  it('when applying hits a programmer error, then the batch is refused with it, not filed as a dead letter, and nothing is written', async () => {
    const applier = new PeerApplier({
      pool,
      consumer: new KafkaBatchConsumer(kafkaAs(), { groupId: `${prefix}.unused`, topics: [] }, log),
      clock: new HybridLogicalClock('us'),
      topicPrefix: prefix,
      region: 'us',
      policies: {},
      log,
      // A defect inside the apply transaction (the wall clock it reads for lag figures).
      now: () => {
        throw new TypeError("Cannot read properties of undefined (reading 'now')");
      },
    });
    const event = {
      v: 1 as const,
      type: 'change' as const,
      origin: 'eu',
      collection: 'bug',
      key: 'k',
      value: { ok: true },
      deleted: false,
      hlc: { wall: Date.now(), logical: 0, region: 'eu' },
      vv: { eu: 1 },
      writtenAt: Date.now(),
    };
    const message: IncomingMessage = {
      topic: euTopic,
      partition: 0,
      offset: '0',
      key: Buffer.from(itemMessageKey('bug', 'k')),
      value: encodeEvent(event),
      headers: {},
    };
    const err = await applier.applyOnce({ topic: euTopic, partition: 0, messages: [message] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TypeError);
    expect(failureKind(err)).toBe('bug');
    expect(await listDeadLetters(pool)).toEqual([]);
    expect((await dumpItems(pool)).filter((i) => i.collection === 'bug')).toEqual([]);
  });
});
