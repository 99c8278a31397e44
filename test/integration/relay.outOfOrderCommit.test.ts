import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { LAB_MESSAGE_MAX_BYTES } from '../../shared/kafka/messageSize.js';
import { insertOutbox } from '../../shared/db/queries/outbox.js';
import { createKafka, ensureTopics } from '../../shared/kafka/client.js';
import { KafkaBatchConsumer, type IncomingMessage } from '../../shared/kafka/consumer.js';
import { KafkaPublisher } from '../../shared/kafka/publisher.js';
import { OutboxRelay } from '../../services/relay/outboxRelay.js';
import {
  kafkaClientSecurity,
  randomId,
  sharedInfra,
  testLogger,
  type TestDatabase,
  waitFor,
} from '../support/harness.js';
import { databaseTest, DATABASE_START_MS } from '../support/fixtures.js';

const log = testLogger();
const id = randomId();
const topic = `t${id}.changes.us`;
let db: TestDatabase;
let pool: pg.Pool;
let publisher: KafkaPublisher;
let relay: OutboxRelay;
let consumer: KafkaBatchConsumer;
const received: IncomingMessage[] = [];

const test = databaseTest(`t${id}`, log);

describe('OutboxRelay', () => {
  test.beforeAll(async ({ db: started }) => {
    const infra = sharedInfra();
    db = started;
    pool = db.pool;
    const kafka = createKafka(
      { clientId: 'relay-test', brokers: infra.kafkaBrokers, security: kafkaClientSecurity() },
      log,
    );
    await ensureTopics(kafka, [topic], 1);
    publisher = new KafkaPublisher(kafka, log);
    relay = new OutboxRelay({
      pool,
      publisher,
      topic,
      batchSize: 100,
      pollIntervalMs: 20,
      publishTimeoutMs: 10_000,
      messageLimit: { bytes: LAB_MESSAGE_MAX_BYTES },
      log,
    });
    consumer = new KafkaBatchConsumer(kafka, { groupId: `t${id}.reader`, topics: [topic] }, log);
    await consumer.start((batch) => {
      received.push(...batch.messages);
      return Promise.resolve();
    });
  }, DATABASE_START_MS);
  afterAll(async () => {
    await consumer?.stop();
    await relay?.stop();
    await publisher?.disconnect();
  });

  it('when a transaction holding a lower outbox id commits after a relay pass, then its row is still published', async () => {
    // A: takes the lower id and stays open across a relay pass.
    const a = await pool.connect();
    await a.query('BEGIN');
    await insertOutbox(a, 'c/a', { n: 'a' });
    const { rows: aRows } = await a.query<{ id: string }>('SELECT max(id) AS id FROM outbox');
    // B: takes a higher id and commits first.
    await insertOutbox(pool, 'c/b', { n: 'b' });
    const { rows: bRows } = await pool.query<{ id: string }>('SELECT max(id) AS id FROM outbox');
    expect(BigInt(bRows[0]!.id)).toBeGreaterThan(BigInt(aRows[0]!.id));

    expect(await relay.drainOnce()).toBe(1); // only B is visible
    await a.query('COMMIT');
    a.release();
    expect(await relay.drainOnce()).toBe(1); // A is not skipped
    expect(await relay.drainOnce()).toBe(0);

    await waitFor('both messages on the topic', () => received.length >= 2 || undefined);
    expect(received.map((m) => m.key?.toString()).sort()).toEqual(['c/a', 'c/b']);
    expect((await pool.query('SELECT count(*)::int AS n FROM outbox')).rows[0]).toEqual({ n: 0 });
  });

  it('when the broker cannot be reached, then the rows stay in the outbox and go out on a later pass', async () => {
    // A real producer pointed at a port where nothing listens.
    const deadPublisher = new KafkaPublisher(
      createKafka({ clientId: 'relay-test-dead', brokers: ['127.0.0.1:1'] }, log),
      log,
    );
    const failing = new OutboxRelay({
      pool,
      publisher: deadPublisher,
      topic,
      batchSize: 100,
      pollIntervalMs: 20,
      publishTimeoutMs: 1000,
      messageLimit: { bytes: LAB_MESSAGE_MAX_BYTES },
      log,
    });
    await insertOutbox(pool, 'c/f', { n: 'f' });
    await expect(failing.drainOnce()).rejects.toThrow();
    await deadPublisher.disconnect();
    expect((await pool.query('SELECT count(*)::int AS n FROM outbox')).rows[0]).toEqual({ n: 1 });
    expect(await relay.drainOnce()).toBe(1);
    await waitFor(
      'the retried message',
      () => received.some((m) => m.key?.toString() === 'c/f') || undefined,
    );
  });

  it('when started, then it wakes on wake() and drains rows without a manual pass', async () => {
    relay.start();
    await insertOutbox(pool, 'c/w', { n: 'w' });
    relay.wake();
    await waitFor(
      'the woken relay to publish',
      () => received.some((m) => m.key?.toString() === 'c/w') || undefined,
    );
    await relay.stop();
  });
});
