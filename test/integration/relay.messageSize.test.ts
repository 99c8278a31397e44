/**
 * The relay never sends Kafka a batch it will refuse, and a row Kafka will never take does not stall
 * the rows behind it: on real Kafka, with the lab's broker limit (2 MiB) and with a topic whose
 * `max.message.bytes` is lower than the relay believes.
 */
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import {
  dropHeld,
  insertOutbox,
  listHeld,
  outboxBacklog,
  requeueHeld,
} from '../../shared/db/queries/outbox.js';
import { createKafka, ensureTopics } from '../../shared/kafka/client.js';
import { KafkaBatchConsumer, type IncomingMessage } from '../../shared/kafka/consumer.js';
import { describeTopicMessageMaxBytes } from '../../shared/kafka/messageLimit.js';
import { LAB_MESSAGE_MAX_BYTES } from '../../shared/kafka/messageSize.js';
import { KafkaPublisher } from '../../shared/kafka/publisher.js';
import { OutboxRelay, type HeldEvent } from '../../services/relay/outboxRelay.js';
import {
  kafkaClientSecurity,
  randomId,
  sharedInfra,
  testLogger,
  type TestDatabase,
  waitFor,
} from '../support/harness.js';
import { databaseTest, DATABASE_START_MS } from '../support/fixtures.js';

const SMALL_TOPIC_LIMIT = 100_000;

const log = testLogger();
const id = randomId();
const bigTopic = `t${id}.changes.us`;
const smallTopic = `t${id}.changes.small`;
let db: TestDatabase;
let pool: pg.Pool;
let kafka: ReturnType<typeof createKafka>;
let publisher: KafkaPublisher;
let consumer: KafkaBatchConsumer;
const received = new Map<string, IncomingMessage[]>();

const relayFor = (topic: string, limitBytes: number) =>
  new OutboxRelay({
    pool,
    publisher,
    topic,
    batchSize: 500,
    pollIntervalMs: 20,
    publishTimeoutMs: 20_000,
    messageLimit: { bytes: limitBytes },
    log,
  });

/** A JSON payload of about `bytes` bytes naming itself. */
const payload = (name: string, bytes: number) => ({ name, pad: 'x'.repeat(Math.max(0, bytes - 30)) });

const keysOn = (topic: string) => (received.get(topic) ?? []).map((m) => m.key?.toString());

const test = databaseTest(`t${id}`, log);

describe('OutboxRelay and Kafka message limits', () => {
  test.beforeAll(async ({ db: started }) => {
    db = started;
    pool = db.pool;
    kafka = createKafka(
      { clientId: 'relay-size-test', brokers: sharedInfra().kafkaBrokers, security: kafkaClientSecurity() },
      log,
    );
    await ensureTopics(kafka, [bigTopic], 3);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic: smallTopic,
          numPartitions: 2,
          configEntries: [{ name: 'max.message.bytes', value: String(SMALL_TOPIC_LIMIT) }],
        },
      ],
    });
    await admin.disconnect();
    publisher = new KafkaPublisher(kafka, log);
    consumer = new KafkaBatchConsumer(
      kafka,
      { groupId: `t${id}.reader`, topics: [bigTopic, smallTopic] },
      log,
    );
    await consumer.start((batch) => {
      const list = received.get(batch.topic) ?? [];
      list.push(...batch.messages);
      received.set(batch.topic, list);
      return Promise.resolve();
    });
  }, DATABASE_START_MS);
  afterAll(async () => {
    await consumer?.stop();
    await publisher?.disconnect();
  });

  it('when the broker is asked for its limit, then it reports the one the test infrastructure set', async () => {
    expect(await describeTopicMessageMaxBytes(kafka, bigTopic)).toBe(LAB_MESSAGE_MAX_BYTES);
    expect(await describeTopicMessageMaxBytes(kafka, smallTopic)).toBe(SMALL_TOPIC_LIMIT);
  });

  it('when 300 rows of 50 KB are claimed at once (15 MB), then they are published in chunks under the limit, all of them, in order', async () => {
    for (let i = 0; i < 300; i++)
      await insertOutbox(pool, `big/k${String(i).padStart(3, '0')}`, payload(`k${i}`, 50_000));
    const relay = relayFor(bigTopic, LAB_MESSAGE_MAX_BYTES);
    expect(await relay.drainOnce()).toBe(300);
    expect((await outboxBacklog(pool)).rows).toBe(0);
    await waitFor('300 messages on the topic', () => keysOn(bigTopic).length >= 300 || undefined, {
      timeoutMs: 30_000,
    });
    const keys = keysOn(bigTopic);
    expect(new Set(keys).size).toBe(300);
    // Per partition, in outbox order.
    const byPartition = new Map<number, string[]>();
    for (const m of received.get(bigTopic)!) {
      const list = byPartition.get(m.partition) ?? [];
      list.push(m.key!.toString());
      byPartition.set(m.partition, list);
    }
    for (const list of byPartition.values()) expect(list).toEqual([...list].sort());
  });

  it('when a single event is over the limit the relay knows, then it is held without a publish and the rows behind it go on', async () => {
    const relay = relayFor(smallTopic, SMALL_TOPIC_LIMIT);
    const held: HeldEvent[] = [];
    relay.on('held', (h) => held.push(h));
    await insertOutbox(pool, 'small/a', payload('a', 1_000));
    await insertOutbox(pool, 'small/huge', payload('huge', 150_000));
    await insertOutbox(pool, 'small/b', payload('b', 1_000));
    expect(await relay.drainOnce()).toBe(2);
    expect(held.map((h) => h.msgKey)).toEqual(['small/huge']);
    expect(held[0]!.reason).toMatch(/more than Kafka's limit of 100000 bytes/);
    const backlog = await outboxBacklog(pool);
    expect(backlog).toMatchObject({ rows: 0, heldRows: 1 });
    expect(backlog.oldestHeldAt).not.toBeNull();
    await waitFor('a and b on the topic', () => keysOn(smallTopic).length >= 2 || undefined);
    expect(keysOn(smallTopic).sort()).toEqual(['small/a', 'small/b']);
    const [row] = await listHeld(pool, 10);
    expect(row).toMatchObject({ msgKey: 'small/huge' });
    expect(row!.bytes).toBeGreaterThan(SMALL_TOPIC_LIMIT);
    expect(await dropHeld(pool, [row!.id])).toBe(1);
  });

  it('when the broker limit is lower than the relay believes, then refused chunks are split, only the rows that can never fit are held, and retry after the limit is raised publishes them', async () => {
    // The relay thinks 2 MiB; the topic takes 100 KB. 20 rows of 40 KB and two of 150 KB.
    const relay = relayFor(smallTopic, LAB_MESSAGE_MAX_BYTES);
    const before = keysOn(smallTopic).length;
    const keys: string[] = [];
    for (let i = 0; i < 22; i++) {
      const key = `small/r${String(i).padStart(2, '0')}`;
      keys.push(key);
      await insertOutbox(pool, key, payload(key, i === 5 || i === 17 ? 150_000 : 40_000));
    }
    expect(await relay.drainOnce()).toBe(20);
    const held = await listHeld(pool, 10);
    expect(held.map((h) => h.msgKey)).toEqual(['small/r05', 'small/r17']);
    expect(held[0]!.reason).toMatch(/Kafka refused the event .*MESSAGE_TOO_LARGE|RECORD_LIST_TOO_LARGE/);
    expect((await outboxBacklog(pool)).rows).toBe(0);
    await waitFor('the 20 publishable rows', () => keysOn(smallTopic).length >= before + 20 || undefined);
    expect(new Set(keysOn(smallTopic).slice(before))).toEqual(
      new Set(keys.filter((k) => k !== 'small/r05' && k !== 'small/r17')),
    );

    // The operator raises the topic's limit and retries: both are published.
    const admin = kafka.admin();
    await admin.connect();
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: 2 /* TOPIC */,
          name: smallTopic,
          configEntries: [{ name: 'max.message.bytes', value: '1000000' }],
        },
      ],
    });
    await admin.disconnect();
    expect(await requeueHeld(pool, undefined)).toBe(2);
    await waitFor(
      'the broker to take the new limit',
      async () => (await describeTopicMessageMaxBytes(kafka, smallTopic)) === 1_000_000 || undefined,
    );
    expect(await relay.drainOnce()).toBe(2);
    expect(await listHeld(pool, 10)).toEqual([]);
    await waitFor('the retried rows', () =>
      ['small/r05', 'small/r17'].every((k) => keysOn(smallTopic).includes(k)) ? true : undefined,
    );
  });
});
