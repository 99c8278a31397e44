import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { LAB_MESSAGE_MAX_BYTES } from '../../shared/kafka/messageSize.js';
import { insertOutbox } from '../../shared/db/queries/outbox.js';
import { createKafka, ensureTopics } from '../../shared/kafka/client.js';
import { KafkaBatchConsumer, type IncomingMessage } from '../../shared/kafka/consumer.js';
import { KafkaPublisher } from '../../shared/kafka/publisher.js';
import { OutboxRelay, type OutboxRelayOptions } from '../../services/relay/outboxRelay.js';
import {
  checkSignedMessagesAsync,
  EventSigner,
  HEADER_CHAIN_PREVIOUS,
  HEADER_CHAIN_SIGNATURE,
} from '../../shared/security/eventAuth.js';
import { generateSigningKeyPair, publicKeyFromPem } from '../../shared/security/eventSignature.js';
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

/** The suite's relay options; each test's relay overrides what it is about. */
function relayOptions(overrides: Partial<OutboxRelayOptions> = {}): OutboxRelayOptions {
  return {
    pool,
    publisher,
    topic,
    batchSize: 100,
    pollIntervalMs: 20,
    publishTimeoutMs: 10_000,
    messageLimit: { bytes: LAB_MESSAGE_MAX_BYTES },
    log,
    ...overrides,
  };
}

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
    relay = new OutboxRelay(relayOptions());
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

  it('when a signing relay publishes a chunk of several rows to one partition, then they go out chained, and the chain alone verifies them', async () => {
    const keys = generateSigningKeyPair('us-1');
    const signing = new OutboxRelay(
      relayOptions({ signer: new EventSigner(keys.signing, 'us'), partitions: () => 1 }),
    );
    const n = 6;
    for (let i = 0; i < n; i++) await insertOutbox(pool, `c/chain${i}`, { n: i });
    expect(await signing.drainOnce()).toBe(n);
    const chained = await waitFor('the chunk on the topic', () => {
      const got = received.filter((m) => m.key?.toString().startsWith('c/chain'));
      return got.length >= n ? got : undefined;
    });
    expect(chained.map((m) => HEADER_CHAIN_PREVIOUS in m.headers)).toEqual(chained.map(() => true));
    expect(chained.map((m) => HEADER_CHAIN_SIGNATURE in m.headers)).toEqual(
      chained.map((_, i) => i === n - 1),
    );
    // Each message's own signature spoiled: the chain's head is what vouches for them.
    const keyring = new Map([['us', new Map([['us-1', publicKeyFromPem(keys.publicKeyPem)]])]]);
    const checks = await checkSignedMessagesAsync(
      keyring,
      chained.map((m) => ({
        ...m,
        origin: 'us',
        headers: { ...m.headers, 'hothot-sig': Buffer.alloc(64, 7).toString('base64') },
      })),
    );
    expect(checks.map((c) => c?.ok)).toEqual(chained.map(() => true));
  });

  it('when the broker cannot be reached, then the rows stay in the outbox and go out on a later pass', async () => {
    // A real producer pointed at a port where nothing listens.
    const deadPublisher = new KafkaPublisher(
      createKafka({ clientId: 'relay-test-dead', brokers: ['127.0.0.1:1'] }, log),
      log,
    );
    const failing = new OutboxRelay(relayOptions({ publisher: deadPublisher, publishTimeoutMs: 1000 }));
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

  it('when the outbox commit after a publish fails, then the next pass reports it, backs off, and the rows go out again until a commit holds', async () => {
    // Deletes from the outbox fail (as a transient serialization failure) while refuse_delete has a row.
    await pool.query('CREATE TABLE refuse_delete (x int)');
    await pool.query(
      `CREATE FUNCTION refuse_outbox_delete() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF EXISTS (SELECT 1 FROM refuse_delete) THEN
           RAISE EXCEPTION 'test: outbox delete refused' USING ERRCODE = '40001';
         END IF;
         RETURN OLD;
       END $$`,
    );
    await pool.query(
      'CREATE TRIGGER refuse_outbox_delete BEFORE DELETE ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_outbox_delete()',
    );
    await pool.query('INSERT INTO refuse_delete VALUES (1)');
    const failures: unknown[] = [];
    const failedAt: number[] = [];
    const onFailure = (err: unknown) => {
      failures.push(err);
      failedAt.push(performance.now());
    };
    relay.on('publishFailed', onFailure);
    const copies = () => received.filter((m) => m.key?.toString() === 'c/r').length;
    try {
      relay.start();
      await insertOutbox(pool, 'c/r', { n: 'r' });
      relay.wake();
      await waitFor('the row published again after its commit failed', () => copies() >= 2 || undefined, {
        timeoutMs: 15_000,
      });
      // Each failed commit was reported by the pass after it, which backed off instead of claiming:
      // 40 ms, then 80 ms (doubling from twice the poll interval) between the first three reports.
      await waitFor('three failed commits reported', () => failures.length >= 3 || undefined, {
        timeoutMs: 15_000,
      });
      expect(failedAt[2]! - failedAt[0]!).toBeGreaterThanOrEqual(100);
      expect(failures.every((e) => String(e).includes('outbox delete refused'))).toBe(true);
      expect(relay.snapshot().lastFailure).toContain('outbox delete refused');
      expect((await pool.query('SELECT count(*)::int AS n FROM outbox')).rows[0]).toEqual({ n: 1 });
      await pool.query('DELETE FROM refuse_delete');
      await waitFor(
        'the outbox to drain once commits hold',
        async () =>
          (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox')).rows[0]!.n === 0 ||
          undefined,
        { timeoutMs: 15_000 },
      );
      await relay.stop();
      expect(relay.snapshot().consecutiveFailures).toBe(0);
    } finally {
      relay.off('publishFailed', onFailure);
      await relay.stop();
      await pool.query('DROP TRIGGER IF EXISTS refuse_outbox_delete ON outbox');
      await pool.query('DROP FUNCTION IF EXISTS refuse_outbox_delete()');
      await pool.query('DROP TABLE IF EXISTS refuse_delete');
    }
  });

  /** Transactions left open in the test database by anyone (the relay's, here). */
  async function openTransactions(q: pg.Pool | pg.PoolClient = pool): Promise<number> {
    const { rows } = await q.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND state LIKE 'idle in transaction%'`,
    );
    return rows[0]!.n;
  }

  it('when more rows wait than a pass takes, then each pass commits together with the next pass’s claim, and the drained relay keeps no transaction open', async () => {
    // No idle poll during the test: every checkout of a client is a pass's own.
    const chained = new OutboxRelay(relayOptions({ batchSize: 5, pollIntervalMs: 60_000 }));
    const writer = await pool.connect(); // the rows' inserts do not use the pool meanwhile
    let acquired = 0;
    const onAcquire = () => (acquired += 1);
    const passes: number[] = [];
    chained.on('published', ({ count }) => passes.push(count));
    try {
      for (let i = 0; i < 50; i++) await insertOutbox(writer, `c/chained${i}`, { n: i });
      pool.on('acquire', onAcquire);
      chained.start();
      // Ten full passes, then an eleventh (begun by the tenth's COMMIT) that finds the outbox empty.
      await waitFor('50 rows published and the client returned', async () =>
        passes.length >= 10 &&
        pool.idleCount === pool.totalCount - 1 &&
        (await openTransactions(writer)) === 0
          ? true
          : undefined,
      );
      expect(passes).toEqual(Array.from({ length: 10 }, () => 5));
      // One checkout for all of them: each pass began with the COMMIT of the one before.
      expect(acquired).toBe(1);
      await waitFor(
        'the 50 rows on the topic',
        () => received.filter((m) => m.key?.toString().startsWith('c/chained')).length >= 50 || undefined,
      );
    } finally {
      pool.off('acquire', onAcquire);
      writer.release();
      await chained.stop();
    }
  });

  it('when the relay stops with the next pass’s claim already made, then that transaction is rolled back, its client returned, and its rows stay for the next relay', async () => {
    const chained = new OutboxRelay(relayOptions({ batchSize: 5 }));
    for (let i = 0; i < 20; i++) await insertOutbox(pool, `c/stopped${i}`, { n: i });
    let stopping: Promise<void> | undefined;
    // Stopped at the end of the first pass: its COMMIT carried the second pass's claim.
    chained.once('published', () => (stopping = chained.stop()));
    chained.start();
    await waitFor('the relay to stop after one pass', () => (stopping === undefined ? undefined : true));
    await stopping;
    expect(await openTransactions()).toBe(0);
    expect(pool.idleCount).toBe(pool.totalCount);
    expect((await pool.query('SELECT count(*)::int AS n FROM outbox')).rows[0]).toEqual({ n: 15 });
    // Not left locked: the suite's relay claims them at once.
    let left = 15;
    await waitFor('the 15 rows published by the suite’s relay', async () => {
      left -= await relay.drainOnce();
      return left === 0 ? true : undefined;
    });
    expect(await relay.drainOnce()).toBe(0);
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
